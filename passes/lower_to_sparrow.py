"""lower-to-sparrow: the tiled, allocated layers become Sparrow instructions.

Every tensor gets a DRAM segment (inputs, outputs, activations in ONNX's layout; weights
as packed values, N:M metadata and per-channel parameters); every layer becomes a block of
instructions tagged with its name; the program ends with `halt`. Weight data for the
segments goes to the WeightStore under the segment's name. Reads `sparrow.tiles` and
`sparrow.sram` (tile-layers, allocate-scratchpad).

```mlir
// after lower-to-sparrow{target=edge}
func.func @main() {
  sparrow.segment "input" kind=input dtype=f32 addr=0 shape=[1, 64]
  sparrow.segment "fc1.wgt" kind=values dtype=i8 addr=256 shape=[32, 32]
  sparrow.segment "fc1.meta" kind=metadata dtype=u2 addr=1280 shape=[32, 32]
  ...
  sparrow.load buf=act dtype=i8 sp=0 dram=... rows=1 cols=64 rstride=64 cstride=1 {layer = "fc1"}
  sparrow.spgemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=1 k=64 n=32 accumulate=0 meta=0 nm_n=2 nm_m=4 {layer = "fc1"}
  ...
  sparrow.halt
  func.return
}
```
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass

from spaq.backends.sparrow import core, packing
from spaq.backends.sparrow.cost import mac_type
from spaq.backends.sparrow.isa import Buffer, DType, EpilogueMode, Instruction
from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import Evaluation, io_names, main_func
from spaq.compiler.types import isa_dtype
from spaq.compiler.weights import WeightStore, weights_of
from spaq.dialects.sparrow import SegmentOp, SparrowInstruction
from spaq.passes.sparrow_layers import ALIGN, Layer, find_layers, meta_pitch, weight_columns
from spaq.passes.tile_layers import target_of


class _Program:
    """Collects segments (DRAM bump allocation) and instructions."""

    def __init__(self, store: WeightStore):
        self.store = store
        self.top = 0
        self.segments: list[SegmentOp] = []
        self.instructions: list[SparrowInstruction] = []
        self.layer = ""

    def segment(self, sym: str, kind: str, dtype: DType, shape: tuple[int, ...],
                data: np.ndarray | None = None) -> int:
        addr = self.top
        seg = SegmentOp(sym, kind, dtype, addr, shape)
        self.segments.append(seg)
        self.top = -(-(addr + seg.nbytes) // ALIGN) * ALIGN
        if data is not None:
            self.store.set(sym, np.ascontiguousarray(data).reshape(shape))
        return addr

    def emit(self, mnemonic: str, **fields: int) -> None:
        self.instructions.append(SparrowInstruction.from_instruction(Instruction.make(mnemonic, **fields), self.layer))


def _constant(store: WeightStore, value: SSAValue) -> np.ndarray:
    """Evaluate a constant chain (initializer -> sparse.pack -> quant.quantize)."""
    op = value.owner
    ev = Evaluation(store)
    args = [_constant(store, v) for v in op.operands]
    return ev.run_op(op, args)[0]


def _dma(p: _Program, mnemonic: str, buf: Buffer, dtype: DType, sp: int, dram: int,
         rows: int, cols: int, rstride: int, cstride: int) -> None:
    p.emit(mnemonic, buf=buf, dtype=dtype, sp=sp, dram=dram, rows=rows, cols=cols, rstride=rstride, cstride=cstride)


class _Lowering:
    def __init__(self, store: WeightStore, program: _Program, outputs: dict[SSAValue, str]):
        self.store = store
        self.p = program
        self.outputs = outputs  # graph outputs: their own, named segments
        self.addr: dict[SSAValue, int] = {}

    # ---- segments
    def activation(self, value: SSAValue, sym: str, kind: str = "activation") -> int:
        if value in self.outputs:
            sym, kind = self.outputs[value], "output"
        t = value.type
        assert isinstance(t, TensorType)
        self.addr[value] = self.p.segment(sym, kind, isa_dtype(t.element_type), tuple(t.get_shape()))
        return self.addr[value]

    def params(self, layer: Layer) -> list[tuple[int, DType, int]]:
        """Per-channel parameter segments as (addr, dtype, rows): loaded one after another."""
        _, _, n = layer.mkn
        bias = _constant(self.store, layer.bias) if layer.bias is not None else None
        if layer.mode == EpilogueMode.FLOAT:
            b = np.zeros(n, np.float32) if bias is None else bias.astype(np.float32)
            return [(self.p.segment(f"{layer.name}.bias", "scales", DType.F32, (1, n), b), DType.F32, 1)]
        b = np.zeros(n, np.int32) if bias is None else bias.astype(np.int32)
        real = np.asarray(layer.epilogue.scale.get_values(), np.float64)
        real = np.broadcast_to(real, (n,)) if real.size == 1 else real
        if layer.mode == EpilogueMode.REQUANT:
            mult, shift = core.fixed_point_multiplier(real)
            block = np.stack([b, mult.astype(np.int32), shift.astype(np.int32)])
            return [(self.p.segment(f"{layer.name}.requant", "scales", DType.I32, (3, n), block), DType.I32, 3)]
        return [(self.p.segment(f"{layer.name}.bias", "scales", DType.I32, (1, n), b), DType.I32, 1),
                (self.p.segment(f"{layer.name}.scale", "scales", DType.F32, (1, n), real.astype(np.float32)),
                 DType.F32, 1)]

    def weights(self, layer: Layer) -> tuple[int, int | None, int, int]:
        """Weight segments: (values addr, metadata addr or None, stored columns, meta pitch)."""
        w = _constant(self.store, layer.weight)
        _, k, n = layer.mkn
        w = w.reshape(n, k)
        wd = layer.wdtype
        if layer.nm is None:
            return self.p.segment(f"{layer.name}.wgt", "values", wd, (n, k), w), None, k, 0
        nn, mm = layer.nm
        values, idx = packing.nm_compress(w, nn, mm)
        cols, pitch = weight_columns(layer, k), meta_pitch(layer, k)
        meta = np.zeros((n, pitch), idx.dtype)
        meta[:, :cols] = idx
        v_addr = self.p.segment(f"{layer.name}.wgt", "values", wd, (n, cols), values)
        m_addr = self.p.segment(f"{layer.name}.meta", "metadata", packing.nm_index_dtype(mm), (n, pitch), meta)
        return v_addr, m_addr, cols, pitch

    # ---- layers
    def lower(self, layer: Layer) -> None:
        self.p.layer = layer.name
        if layer.kind == "alias":
            self.addr[layer.output] = self.addr[layer.input]
            return
        getattr(self, f"_{layer.kind}")(layer)

    def _gemm_tile(self, layer: Layer, sram: dict[str, int], m: int, k0: int, kt: int, n0: int, nt: int,
                   w: tuple[int, int | None, int, int], accumulate: bool) -> None:
        v_addr, m_addr, cols_total, pitch_total = w
        wd = layer.wdtype
        c0, ct = weight_columns(layer, k0), weight_columns(layer, kt)
        _dma(self.p, "load", Buffer.WGT, wd, sram["wgt"], v_addr + wd.nbytes(n0 * cols_total + c0),
             nt, ct, cols_total, 1)
        fields = dict(adtype=layer.adtype, wdtype=wd, acc=sram["acc"], act=sram["cols" if layer.kind == "conv" else "in"],
                      wgt=sram["wgt"], m=m, k=kt, n=nt, accumulate=int(accumulate))
        if m_addr is None:
            self.p.emit("gemm", **fields)
            return
        md = packing.nm_index_dtype(layer.nm[1])
        mt = meta_pitch(layer, kt)
        _dma(self.p, "load", Buffer.META, md, sram["meta"], m_addr + md.nbytes(n0 * pitch_total + c0),
             nt, mt, pitch_total, 1)
        self.p.emit("spgemm", **fields, meta=sram["meta"], nm_n=layer.nm[0], nm_m=layer.nm[1])

    def _epilogue(self, layer: Layer, sram: dict[str, int], params: list[tuple[int, DType, int]],
                  m: int, n: int, n0: int, nt: int) -> None:
        sp = sram["param"]
        for addr, dtype, rows in params:
            _dma(self.p, "load", Buffer.PARAM, dtype, sp, addr + dtype.nbytes(n0), rows, nt, n, 1)
            sp += dtype.nbytes(rows * nt)
        self.p.emit("epilogue", mode=layer.mode, odtype=layer.odtype, bias=1, relu=int(layer.relu),
                    src=sram["acc"], dst=sram["out"], param=sram["param"], rows=m, cols=nt, zp=0)

    def _conv(self, layer: Layer) -> None:
        sram, tiles, g = layer.sram(), layer.tiles(), layer.conv
        m, k, n = layer.mkn
        w, params = self.weights(layer), self.params(layer)
        x, y = self.addr[layer.input], self.activation(layer.output, layer.name)
        ad, od = layer.adtype, layer.odtype
        hw = g["h"] * g["w"]
        for b in range(layer.batch):
            _dma(self.p, "load", Buffer.ACT, ad, sram["in"], x + ad.nbytes(b * g["c"] * hw), hw, g["c"], 1, hw)
            self.p.emit("im2col", dtype=ad, src=sram["in"], dst=sram["cols"],
                        **{f: g[f] for f in ("c", "h", "w", "kh", "kw", "sh", "sw", "pt", "pl", "pb", "pr", "dh", "dw")})
            for n0 in range(0, n, tiles["n"]):
                nt = min(tiles["n"], n - n0)
                self._gemm_tile(layer, sram, m, 0, k, n0, nt, w, False)
                self._epilogue(layer, sram, params, m, n, n0, nt)
                _dma(self.p, "store", Buffer.ACT, od, sram["out"], y + od.nbytes(b * n * m + n0 * m), m, nt, 1, m)

    def _gemm(self, layer: Layer) -> None:
        sram, tiles = layer.sram(), layer.tiles()
        m, k, n = layer.mkn
        w, params = self.weights(layer), self.params(layer)
        x, y = self.addr[layer.input], self.activation(layer.output, layer.name)
        ad, od = layer.adtype, layer.odtype
        for n0 in range(0, n, tiles["n"]):
            nt = min(tiles["n"], n - n0)
            for k0 in range(0, k, tiles["k"]):
                kt = min(tiles["k"], k - k0)
                _dma(self.p, "load", Buffer.ACT, ad, sram["in"], x + ad.nbytes(k0), m, kt, k, 1)
                self._gemm_tile(layer, sram, m, k0, kt, n0, nt, w, k0 > 0)
            self._epilogue(layer, sram, params, m, n, n0, nt)
            _dma(self.p, "store", Buffer.ACT, od, sram["out"], y + od.nbytes(n0), m, nt, n, 1)

    def _rows_cols(self, t: TensorType) -> tuple[int, int]:
        shape = t.get_shape()
        return prod(shape[:-1]), shape[-1]

    def _quantize(self, layer: Layer) -> None:
        sram = layer.sram()
        scale = np.asarray(layer.head.scale.get_values(), np.float32)
        if scale.size != 1:
            raise SpaqError(f"layer '{layer.name}': only per-tensor activation quantization runs on Sparrow")
        s_addr = self.p.segment(f"{layer.name}.scale", "scales", DType.F32, (1,), scale)
        x, y = self.addr[layer.input], self.activation(layer.output, layer.name)
        rows, cols = self._rows_cols(layer.in_type)
        _dma(self.p, "load", Buffer.PARAM, DType.F32, sram["param"], s_addr, 1, 1, 1, 1)
        _dma(self.p, "load", Buffer.ACT, layer.adtype, sram["in"], x, rows, cols, cols, 1)
        self.p.emit("quant", odtype=layer.odtype, src=sram["in"], dst=sram["out"], param=sram["param"],
                    rows=rows, cols=cols)
        _dma(self.p, "store", Buffer.ACT, layer.odtype, sram["out"], y, rows, cols, cols, 1)

    def _maxpool(self, layer: Layer) -> None:
        from spaq.compiler.evaluator import conv_attributes, kernel_2d

        sram, dt = layer.sram(), layer.adtype
        (nb, c, h, w), (_, _, oh, ow) = layer.in_type.get_shape(), layer.out_type.get_shape()
        kh, kw = kernel_2d(layer.head)
        a = conv_attributes(layer.head, kh, kw)
        x, y = self.addr[layer.input], self.activation(layer.output, layer.name)
        for b in range(nb):
            _dma(self.p, "load", Buffer.ACT, dt, sram["in"], x + dt.nbytes(b * c * h * w), h * w, c, 1, h * w)
            self.p.emit("maxpool", dtype=dt, src=sram["in"], dst=sram["out"], c=c, h=h, w=w, kh=kh, kw=kw,
                        sh=a["strides"][0], sw=a["strides"][1], pt=a["pads"][0], pl=a["pads"][1],
                        pb=a["pads"][2], pr=a["pads"][3], dh=a["dilations"][0], dw=a["dilations"][1])
            _dma(self.p, "store", Buffer.ACT, dt, sram["out"], y + dt.nbytes(b * c * oh * ow), oh * ow, c, 1, oh * ow)

    def _softmax(self, layer: Layer) -> None:
        sram = layer.sram()
        if layer.adtype != DType.F32:
            raise SpaqError(f"layer '{layer.name}': Softmax runs on fp32 inputs")
        x, y = self.addr[layer.input], self.activation(layer.output, layer.name)
        rows, cols = self._rows_cols(layer.in_type)
        _dma(self.p, "load", Buffer.ACT, DType.F32, sram["in"], x, rows, cols, cols, 1)
        self.p.emit("softmax", src=sram["in"], dst=sram["out"], rows=rows, cols=cols)
        _dma(self.p, "store", Buffer.ACT, DType.F32, sram["out"], y, rows, cols, cols, 1)


@dataclass(frozen=True)
class LowerToSparrowPass(ModulePass):
    name = "lower-to-sparrow"

    target: str = "edge"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = target_of(self.target)
        func = main_func(op)
        store = weights_of(ctx)
        program = _Program(store)
        in_names, out_names = io_names(func)
        ret = func.body.block.last_op
        assert isinstance(ret, ReturnOp)
        lowering = _Lowering(store, program, dict(zip(ret.operands, out_names)))
        for arg, name in zip(func.args, in_names):
            lowering.activation(arg, name, "input")
        for layer in find_layers(func):
            _check_support(layer, target)
            lowering.lower(layer)
        program.layer = ""
        program.emit("halt")
        body: list[Operation] = [*program.segments, *program.instructions, ReturnOp()]
        new = FuncOp("main", ([], []), Region(Block(body)))
        func.detach()
        func.erase()
        op.body.block.add_op(new)


def _check_support(layer: Layer, target) -> None:
    if layer.kind in ("conv", "gemm"):
        try:
            kind = mac_type(layer.adtype, layer.wdtype)  # the one decision of the GEMM mode
        except ValueError as e:
            raise SpaqError(f"layer '{layer.name}': {e}") from None
        if kind not in target.array.k_per_cycle:
            raise SpaqError(f"layer '{layer.name}': target {target.name} has no {kind} GEMM")
        if layer.nm is not None and not target.supports_nm(*layer.nm):
            raise SpaqError(f"layer '{layer.name}': target {target.name} does not support "
                            f"{layer.nm[0]}:{layer.nm[1]} sparsity")
