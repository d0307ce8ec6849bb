"""tile-layers: choose each layer's tile sizes for the target's array and scratchpads.

GEMM-like layers are tiled over output channels (N, in multiples of the array's columns)
and, for Gemm, over the reduction (K, in multiples of 64 — whole N:M groups and whole
metadata bytes) until every buffer fits, and if even that does not fit, over rows (M:
multiples of the array's rows, then halvings); conv layers keep their im2col rows whole,
and a Gemm on per-token activations its reduction (its row scales need whole rows). The other
layers take as much as fits, from the whole tensor down: a batched matmul batch elements
(`batch`), a gather and a vector region rows (`rows`: every vector op works row by row), a
copying view elements (`elems`). The choice is written on the layer as `sparrow.tiles`,
where a user or a later planner can read or pin it.

```mlir
// spaq-opt -p 'tile-layers{target=edge}'
%acc = quant.gemm %x, %w, %b {..., sparrow.tiles = {m = 1 : i64, n = 32 : i64, k = 64 : i64}} : ...
```
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import gcd, prod

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from spaq.backends.sparrow.isa import Buffer
from spaq.backends.sparrow.target import Target, TargetError, load_target
from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import main_func
from spaq.compiler.weights import weights_of
from spaq.passes.sparrow_layers import (
    MAX_DIM, POOLS, TILED, TILES_KEY, Layer, allocate, buffer_needs, find_layers, int_dict_attr, shape_of,
)

K_STEP = 64


def target_of(name: str) -> Target:
    try:
        return load_target(name)
    except TargetError as e:
        raise SpaqError(str(e)) from None


def capacities(target: Target) -> dict[Buffer, int]:
    return {b: target.capacity(b) for b in Buffer}


def _fits(layer: Layer, tiles: dict[str, int], caps: dict[Buffer, int], store) -> bool:
    try:
        allocate(buffer_needs(layer, tiles, store), caps, layer.name)
        return True
    except SpaqError:
        return False


def _largest(layer: Layer, key: str, total: int, caps: dict[Buffer, int], store,
             limit: int = MAX_DIM, base: Callable[[int], dict[str, int]] | None = None) -> dict[str, int]:
    """The tiles with the largest `key` in [1, min(total, limit)] that fit (buffers grow with
    it); if even 1 does not fit, allocate() names the buffer that overflows."""
    make = base or (lambda v: {key: v})
    hi = max(1, min(total, limit))
    if _fits(layer, make(hi), caps, store):
        return make(hi)
    lo = 1
    if not _fits(layer, make(lo), caps, store):
        allocate(buffer_needs(layer, make(lo), store), caps, layer.name)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _fits(layer, make(mid), caps, store) else (lo, mid)
    return make(lo)


def _row_options(m: int, rows: int) -> list[int]:
    """Row tiles, largest first: all m, multiples of the array's rows, then halvings to 1."""
    out = sorted({m, *range(rows, m, rows)}, reverse=True)
    r = rows
    while r > 1:
        r //= 2
        if r < m:
            out.append(r)
    return out


def choose_tiles(layer: Layer, target: Target, store=None) -> dict[str, int]:
    caps = capacities(target)
    if layer.kind == "matmul":
        m, _, _ = layer.mkn
        if _fits(layer, {"batch": 1}, caps, store):
            return _largest(layer, "batch", layer.batch, caps, store, limit=MAX_DIM // m)
        for mt in _row_options(m, target.array.rows):  # one batch element at a time, in row tiles
            if _fits(layer, {"batch": 1, "m": mt}, caps, store):
                return {"batch": 1, "m": mt}
        allocate(buffer_needs(layer, {"batch": 1, "m": 1}, store), caps, layer.name)
    if layer.kind == "gather":
        return _largest(layer, "rows", layer.gather_rows[0], caps, store)
    if layer.kind == "vector":
        return _largest(layer, "rows", layer.region.rows, caps, store)
    if layer.kind == "view":
        return _largest(layer, "elems", prod(shape_of(layer.output)), caps, store, limit=1 << 40)
    if layer.kind == "quantize":
        return _largest(layer, "rows", whole_tiles(layer)["rows"], caps, store)
    if layer.kind in POOLS:
        g = layer.pool
        limit = MAX_DIM // (g["oh"] * g["ow"]) if layer.kind == "avgpool" else MAX_DIM  # VRED's rows: pixels x channels
        return _largest(layer, "c", g["c"], caps, store, limit=max(1, limit))
    if layer.kind == "conv":
        return _conv_tiles(layer, target, caps, store)
    if layer.kind in ("move", "resample", "gathernd"):
        from spaq.passes.sparrow_moves import move_elements

        return _largest(layer, "elems", max(move_elements(layer), 1), caps, store, limit=1 << 40)
    m, k, n = layer.mkn
    cols = target.array.cols
    n_options = sorted({n, *range(cols, n, cols)}, reverse=True)
    whole_k = layer.kind == "conv" or layer.dynamic is not None
    k_options = [k] if whole_k else sorted({k, *range(K_STEP, k, K_STEP)}, reverse=True)
    m_options = [m] if layer.kind == "conv" else _row_options(m, target.array.rows)
    return _first_fit(layer, m_options, k_options, n_options, caps, store)  # all rows first, then fewest row tiles


def _first_fit(layer: Layer, m_options: list[int], k_options: list[int], n_options: list[int],
               caps: dict[Buffer, int], store) -> dict[str, int]:
    """The first (m, k, n) tiles, in the options' order, whose regions fit; if even the
    smallest do not, allocate() names the buffer that overflows."""
    for mt in m_options:
        for kt in k_options:
            for nt in n_options:
                tiles = {"m": mt, "n": nt, "k": kt}
                if _fits(layer, tiles, caps, store):
                    return tiles
    smallest = {"m": m_options[-1], "n": n_options[-1], "k": k_options[-1]}
    allocate(buffer_needs(layer, smallest, store), caps, layer.name)
    return smallest


def whole_tiles(layer: Layer) -> dict[str, int]:
    """A pooling or quantize layer's tiles when it takes the whole tensor at once (the
    default: `sparrow.tiles` is written on them only when it must be smaller)."""
    if layer.kind == "quantize":
        return {"rows": prod(shape_of(layer.input)[:-1])}
    return {"c": layer.pool["c"]}


def _conv_tiles(layer: Layer, target: Target, caps: dict[Buffer, int], store) -> dict[str, int]:
    """A conv's tiles: `m` output pixels (whole output rows: a band of the image, its input
    rows loaded with their halo), `k` reduction elements (whole input channels of one group:
    a multiple of kh·kw; of 64 too when the weights are N:M or sub-byte, so the stored columns
    and metadata of a chunk start on a byte) and `n` output channels of one group (multiples
    of the array's columns). The largest band first, then whole channels, then the widest N."""
    m, k, n = layer.mkn
    g = layer.conv
    kk, ow = g["kh"] * g["kw"], g["ow"]
    n_group = n // g["g"]
    cols = target.array.cols
    n_options = sorted({n_group, *range(cols, n_group, cols)}, reverse=True)
    step = kk if layer.nm is None and layer.wdtype.bits >= 8 else kk * 64 // gcd(kk, 64)
    k_options = sorted({k, *range(step, k, step)}, reverse=True)
    m_options = [r * ow for r in range(g["oh"], 0, -1) if r * ow <= MAX_DIM]
    return _first_fit(layer, m_options, k_options, n_options, caps, store)


def needs_tiles(layer: Layer) -> bool:
    return layer.kind in TILED and (layer.kind != "view" or layer.copy)


@dataclass(frozen=True)
class TileLayersPass(ModulePass):
    name = "tile-layers"

    target: str = "edge"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = target_of(self.target)
        store = weights_of(ctx)
        fused: set[Operation] = set()  # heads of the vector layers that became tails
        for layer in find_layers(main_func(op), store):
            if layer.kind in ("conv", "gemm"):  # a mode the target lacks: an error naming the layer, first
                from spaq.passes.gemm_modes import check_target

                if problem := check_target(layer.gemm_weights, layer.adtype, target):
                    raise SpaqError(f"layer '{layer.name}': {problem}")
            if layer.head in fused or TILES_KEY in layer.head.attributes:
                continue
            if layer.kind in POOLS or layer.kind == "quantize":  # tiled only when the whole tensor does not fit
                tiles = choose_tiles(layer, target, store)
                if tiles != whole_tiles(layer):
                    layer.head.attributes[TILES_KEY] = int_dict_attr(tiles)
                continue
            if not needs_tiles(layer):
                continue
            tail = layer.tail_candidate
            if tail is not None and TILES_KEY not in tail.head.attributes:
                tiles = fused_tiles(layer, tail, target, store)
                if tiles is not None:
                    layer.head.attributes[TILES_KEY] = int_dict_attr(tiles)
                    fused.add(tail.head)
                    continue
            layer.head.attributes[TILES_KEY] = int_dict_attr(choose_tiles(layer, target, store))


def fused_tiles(layer: Layer, tail: Layer, target: Target, store) -> dict[str, int] | None:
    """Whole tiles for a matrix layer with its vector tail, if they fit (`tail = 1` fuses
    them: the tail runs on the layer's result tile, which never goes to DRAM)."""
    if layer.kind == "matmul":
        tiles = {"batch": layer.batch}
    else:
        m, k, n = layer.mkn
        tiles = {"m": m, "n": n, "k": k}
    if layer.kind == "matmul" and layer.batch * layer.mkn[0] > MAX_DIM:
        return None
    layer.tail = tail
    try:
        ok = _fits(layer, tiles, capacities(target), store)
    finally:
        layer.tail = None
    return {**tiles, "tail": 1} if ok else None
