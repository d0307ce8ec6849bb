"""The planner's analytical estimator: what a GEMM or conv layer costs on a target, from its
shapes, tiles and compression decision alone — no lowering, no weight packing, no simulation.

    costs = estimate_layers(layers, target)   # layer name -> Cost, for the kinds it models

The layer (from `sparrow_layers.analyze`, after tile-layers) is priced as the instructions
lower-to-sparrow emits for it (`_gemm`, `_gemm_dynamic`, `_conv`): each distinct instruction
shape once (`cost.instruction_cost`, through `estimate.Prices`), times how often the tile loops repeat it — edge tiles
included, so the DRAM bytes it predicts are the bytes the simulator counts, exactly. Its
cycles are the instructions' cycles summed, as the report's per-layer cycles are; under
activation skipping (`askip`) the simulator counts fewer MACs than predicted. A fused tail
(a vector layer on the GEMM's result tile) is its own layer and not priced here. Not modelled
yet (no estimate rather than a wrong one): block and unstructured weights (compressed tile by
tile, their sizes depend on the values), convs in bands of output rows, reduction chunks or
groups, per-token GEMMs with codebook weights.

For the MiniLM W8A8 query projection (m=128, k=384, n=384, tiles n=128):

    VQUANT 1x, per N tile (3x): LOAD WGT 128x384 i8, GEMM, LOAD PARAM, EPILOGUE, 2 VBIN, STORE
"""

from __future__ import annotations

import functools
from collections import Counter

from spaq.backends.sparrow import packing
from spaq.backends.sparrow.cost import Cost
from spaq.backends.sparrow.estimate import Prices
from spaq.backends.sparrow.isa import BY_MNEMONIC, BinaryOp, Bcast, Buffer, DType, EpilogueMode, Instruction
from spaq.backends.sparrow.target import Target
from spaq.passes.compression import skips_zero_activations
from spaq.passes.sparrow_layers import Layer, dram_dtype, element_type, meta_pitch, weight_columns


def _sizes(total: int, tile: int) -> list[tuple[int, int]]:
    """(tile size, how many) of the tiles covering `total`: the full ones and the edge."""
    full, rest = divmod(total, tile)
    return [(s, c) for s, c in ((tile, full), (rest, 1)) if s and c]


class _Tally:
    """Instructions counted by shape; priced once per shape. `of(layer)` is the tally of a
    layer whose instructions the lowering emits inside this one's (a sibling GEMM)."""

    def __init__(self, name: str, askip: bool = False) -> None:
        self.name = name
        self.askip = askip  # the layer's GEMMs skip zero activations
        self.counts: Counter = Counter()
        self.others: dict[str, _Tally] = {}

    def of(self, layer: Layer) -> _Tally:
        if layer.name == self.name:
            return self
        return self.others.setdefault(layer.name, _Tally(layer.name, self.askip))

    def add(self, count: int, mnemonic: str, **fields: int) -> None:
        if count:
            self.counts[(mnemonic, tuple(sorted((k, int(v)) for k, v in fields.items())))] += count

    def dma(self, count: int, mnemonic: str, buf: Buffer, dtype: DType, rows: int, cols: int) -> None:
        self.add(count, mnemonic, buf=buf, dtype=dtype, rows=rows, cols=cols, rstride=cols, cstride=1)

    def cost(self, prices: Prices) -> Cost:
        total = Cost()
        for key, n in self.counts.items():
            total = total + prices.cost(_instruction(key)) * n
        return total


@functools.cache
def _instruction(key: tuple) -> Instruction:
    """The instruction of a counted shape, its addresses zero (they do not change a cost)."""
    mnemonic, given = key
    values = {f.name: 0 if f.default is None else f.default for f in BY_MNEMONIC[mnemonic].fields}
    return Instruction.make(mnemonic, **(values | dict(given)))


def param_blocks(layer: Layer) -> list[tuple[DType, int]]:
    """The per-channel parameter blocks a GEMM layer loads per N tile, as (dtype, rows)."""
    if layer.dynamic is not None:
        return [(DType.F32, 1 + (layer.bias is not None))]
    if layer.mode == EpilogueMode.FLOAT:
        return [(DType.F32, 1)]
    if layer.mode == EpilogueMode.REQUANT:
        return [(DType.I32, 3)]
    return [(DType.I32, 1), (DType.F32, 1)]


def _gemm_tile(t: _Tally, layer: Layer, count: int, m: int, k: int, n: int, accumulate: bool) -> None:
    """LOAD WGT (+ LOAD META) and the GEMM of one tile, `count` times, in the layer's mode
    (`gemm_modes`); a codebook layer's table LOAD is `_codebook`'s."""
    gw = layer.gemm_weights
    if not gw.sliced:
        raise NotImplementedError("block and unstructured weights")  # their tiles are compressed one by one
    wd = gw.wdtype
    t.dma(count, "load", Buffer.WGT, wd, n, weight_columns(layer, k))
    fields_ = dict(adtype=layer.adtype, wdtype=wd, m=m, k=k, n=n, accumulate=int(accumulate), **gw.fields())
    if t.askip:
        fields_["askip"] = 1
    if layer.nm is None:
        t.add(count, "gemm", **fields_)
        return
    t.dma(count, "load", Buffer.META, packing.nm_index_dtype(layer.nm[1]), n, meta_pitch(layer, k))
    t.add(count, "spgemm", **fields_, nm_n=layer.nm[0], nm_m=layer.nm[1])


def _codebook(t: _Tally, layer: Layer) -> None:
    """A codebook layer LOADs its table into PARAM once."""
    gw = layer.gemm_weights
    if gw.entries:
        t.dma(1, "load", Buffer.PARAM, gw.cdtype, 1, gw.entries)


def _finish(t: _Tally, layer: Layer, count: int, m: int, n: int) -> None:
    """Per output tile: the parameter loads, the epilogue and the store (unless a tail takes it)."""
    for dtype, rows in param_blocks(layer):
        t.dma(count, "load", Buffer.PARAM, dtype, rows, n)
    if layer.dynamic is not None:
        t.add(count, "epilogue", mode=EpilogueMode.DEQUANT, odtype=DType.F32, bias=0, rows=m, cols=n)
        t.add(count, "vbin", op=BinaryOp.MUL, bcast=Bcast.COL, rows=m, cols=n)
        if layer.bias is not None:
            t.add(count, "vbin", op=BinaryOp.ADD, bcast=Bcast.ROW, buf1=Buffer.PARAM, rows=m, cols=n)
        if layer.relu:
            t.add(count, "vbin", op=BinaryOp.MAX, bcast=Bcast.IMM, rows=m, cols=n)
    else:
        t.add(count, "epilogue", mode=layer.mode, odtype=layer.odtype, bias=1, relu=int(layer.relu), rows=m, cols=n)
    if layer.tail is None:
        t.dma(count, "store", Buffer.ACT, layer.odtype, m, n)


def _gemm(t: _Tally, layer: Layer) -> None:
    tiles = layer.tiles()
    m, k, n = layer.mkn
    _codebook(t, layer)
    for mt, cm in _sizes(m, tiles.get("m", m)):
        for nt, cn in _sizes(n, tiles["n"]):
            for kt, ck in _sizes(k, tiles["k"]):
                t.dma(cm * cn * ck, "load", Buffer.ACT, layer.adtype, mt, kt)
            first = k if k <= tiles["k"] else tiles["k"]  # the k0 = 0 tile starts the sum
            _gemm_tile(t, layer, cm * cn, mt, first, nt, False)
            for kt, ck in _sizes(k - first, tiles["k"]):
                _gemm_tile(t, layer, cm * cn * ck, mt, kt, nt, True)
            _finish(t, layer, cm * cn, mt, nt)


def _gemm_dynamic(t: _Tally, layer: Layer) -> None:
    """The VQUANT and the head's own tiles; each sibling (sharing the quantized input) is
    tallied under its own name, as its instructions are tagged."""
    tiles = layer.tiles()
    m, k, _ = layer.mkn
    xd = dram_dtype(element_type(layer.input))
    if any(one.gemm_weights.entries for one in [layer, *layer.siblings]):
        raise NotImplementedError("codebook tables shared by per-token siblings")
    for mt, cm in _sizes(m, tiles.get("m", m)):
        t.dma(cm, "load", Buffer.ACT, xd, mt, k)
        t.add(cm, "vquant", odtype=layer.adtype, dtype=xd, rows=mt, cols=k)
        for one in [layer, *layer.siblings]:
            for nt, cn in _sizes(one.mkn[2], tiles["n"]):
                _gemm_tile(t.of(one), one, cm * cn, mt, k, nt, False)
                _finish(t.of(one), one, cm * cn, mt, nt)


def _conv(t: _Tally, layer: Layer) -> None:
    """A conv whose output rows form one band and whose reduction is one chunk: per image,
    LOAD the input (HWC), IM2COL, then per N tile the GEMM, epilogue and STORE."""
    g, tiles = layer.conv, layer.tiles()
    m, k, n = layer.mkn
    if g.get("g", 1) != 1 or tiles.get("m", m) < m or tiles.get("k", k) < k:
        raise NotImplementedError("grouped convolutions, bands of output rows, reduction chunks")
    images = layer.batch
    _codebook(t, layer)
    t.dma(images, "load", Buffer.ACT, layer.adtype, g["h"] * g["w"], g["c"])
    t.add(images, "im2col", dtype=layer.adtype, **{f: g[f] for f in ("c", "h", "w", "kh", "kw", "sh", "sw", "pt",
                                                                      "pl", "pb", "pr", "dh", "dw")})
    for nt, cn in _sizes(n, tiles.get("n", n)):
        _gemm_tile(t, layer, images * cn, m, k, nt, False)
        _finish(t, layer, images * cn, m, nt)


ESTIMATORS = {"gemm": lambda t, layer: (_gemm_dynamic if layer.dynamic is not None else _gemm)(t, layer),
              "conv": _conv}
"""Layer kinds the estimator models: the compressible ones, where the planner's choices are."""


def estimate_layers(layers: list[Layer], target: Target, prices: Prices | None = None) -> dict[str, Cost]:
    """Predicted cost (instructions' cycles summed) of every modelled layer, by layer name —
    a per-token GEMM's siblings under their own names. A planner asking again and again
    passes one `estimate.Prices` of the target, which remembers each shape's price."""
    prices = Prices(target) if prices is None else prices
    out: dict[str, Cost] = {}
    for layer in layers:
        model = ESTIMATORS.get(layer.kind)
        if model is None:
            continue
        t = _Tally(layer.name, skips_zero_activations(layer.head, target))
        try:
            model(t, layer)
        except NotImplementedError:
            continue
        for one in (t, *t.others.values()):
            out[one.name] = one.cost(prices)
    return out
