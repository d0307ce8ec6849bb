"""lower-to-sparrow: the tiled, allocated layers become Sparrow instructions.

Every tensor gets a DRAM segment (inputs, outputs, activations in ONNX's layout; weights
as packed values, N:M metadata and per-channel parameters; constants a vector region or a
gather reads); every layer becomes a block of instructions tagged with its name; the
program ends with `halt`. A view (Reshape, Transpose, ...) gets no segment: the layers
that read it load its elements through DMA strides (`dma_plan`). Weight data for the
segments goes to the WeightStore under the segment's name. Reads `sparrow.tiles` and
`sparrow.sram` (tile-layers, allocate-scratchpad).

A weight's type picks its instruction and packing (`gemm_modes`, the one table): dense
and N:M weights are packed once per layer, block and unstructured ones per (N, K) tile
(each tile its values and metadata segments); binary weights become u1 codes, codebook
weights indices plus the layer's table (a `scales` segment loaded into PARAM once). A
layer whose decision says `askip` gets `askip=1` on its GEMMs when the target has the zero
detector (skipping changes no result, so elsewhere the flag is dropped).

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

The transformer layers, in outline (docs/architecture.md has the table):
- a per-token int8 gemm: LOAD x (f32), VQUANT (int8 + row scales), per N tile LOAD W, GEMM,
  LOAD PARAM (weight scales, bias), EPILOGUE dequant, VBIN mul by the row scales, VBIN add
  the bias, STORE;
- a batched matmul: LOAD every A_g into ACT and W_g = B_gᵀ into WGT (the transposition is
  in the DMA strides), one GEMM per batch element into consecutive ACC tiles, one STORE
  from ACC;
- a vector region: LOAD its inputs (broadcast ones as row / column vectors, immediates or
  expanded by zero strides), one VBIN / VUN / VSEL / VRED / SOFTMAX per step (LayerNorm is
  eight), STORE its outputs; tiled by rows when it does not fit;
- a gather: LOAD the indices, GATHER the table rows, STORE.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from math import prod

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, TensorType, f32
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Block, Operation, Region, SSAValue
from xdsl.passes import ModulePass

from spaq.backends.sparrow import core, packing, vector
from spaq.backends.sparrow.cost import mac_type
from spaq.backends.sparrow.isa import Bcast, BinaryOp, Buffer, DType, EpilogueMode, Instruction, ReduceOp, UnaryOp
from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import io_names, main_func
from spaq.compiler.weights import WeightStore, weights_of
from spaq.dialects.sparrow import SegmentOp, SparrowInstruction
from spaq.passes.compression import skips_zero_activations
from spaq.passes.sparrow_layers import (
    ALIGN, MAX_DIM, DramPlan, Layer, Operand, RegionPlan, View, analyze, constant_value, dram_dtype, element_type,
    meta_pitch, plan_region, shape_of, vector_in_param, weight_columns,
)
from spaq.passes.gemm_modes import GemmWeights, check_target, codebook_table, gemm_weights, pack
from spaq.passes.tile_layers import target_of

STRIDE_LIMIT = 1 << 24  # rstride / cstride fields are 24 bits


@dataclass
class _Weights:
    """A layer's weight as lowered: its `gemm_modes` row, the [n, k] values, the codebook
    table; for sliced formats the packed segments (values, N:M metadata: columns, pitch and
    instruction fields), for per-tile ones the tiles made so far."""

    gw: GemmWeights
    dense: np.ndarray
    table: np.ndarray | None = None
    table_addr: int = 0
    v_addr: int = 0
    m_addr: int | None = None
    cols: int = 0
    pitch: int = 0
    fields: dict = field(default_factory=dict)
    tiles: dict = field(default_factory=dict)


class _Program:
    """Collects segments (DRAM bump allocation) and instructions."""

    def __init__(self, store: WeightStore):
        self.store = store
        self.top = 0
        self.segments: list[SegmentOp] = []
        self.instructions: list[SparrowInstruction] = []
        self.layer = ""
        self.names: set[str] = set()
        self.free: list[tuple[int, int]] = []  # (addr, bytes) of dead activations' blocks
        self.reserved: set[str] = set()  # the graph's input and output names: only their segments take them

    def segment(self, sym: str, kind: str, dtype: DType, shape: tuple[int, ...],
                data: np.ndarray | None = None, reuse: bool = False) -> int:
        """A new segment at the end of DRAM, or (`reuse`: an intermediate activation) in the
        first freed block it fits."""
        base, i = sym, 1
        while sym in self.names or (data is not None and sym in self.store) or (
                kind not in ("input", "output") and sym in self.reserved):
            sym, i = f"{base}.{i}", i + 1  # symbols are unique; a new array never replaces a weight
        self.names.add(sym)
        seg = SegmentOp(sym, kind, dtype, self.top, shape)
        size = -(-seg.nbytes // ALIGN) * ALIGN
        block = next((b for b in self.free if b[1] >= size), None) if reuse else None
        if block is not None:
            addr = block[0]
            self.free.remove(block)
            if block[1] > size:
                self.free.append((addr + size, block[1] - size))
            seg = SegmentOp(sym, kind, dtype, addr, shape)
        else:
            addr = self.top
            self.top = addr + size
        self.segments.append(seg)
        if data is not None:
            self.store.set(sym, np.asarray(data).reshape(shape))  # views stay views until emission
        return addr

    def release(self, addr: int, nbytes: int) -> None:
        """An intermediate activation is dead: its block can hold a later one."""
        size = -(-nbytes // ALIGN) * ALIGN
        self.free.append((addr, size))
        self.free.sort()
        merged: list[tuple[int, int]] = []
        for a, n in self.free:
            if merged and merged[-1][0] + merged[-1][1] == a:
                merged[-1] = (merged[-1][0], merged[-1][1] + n)
            else:
                merged.append((a, n))
        self.free = merged

    def emit(self, mnemonic: str, **fields: int) -> None:
        self.instructions.append(SparrowInstruction.from_instruction(Instruction.make(mnemonic, **fields), self.layer))


_constant = constant_value  # a constant chain's array (initializer -> sparse.pack -> quant.quantize)


def _dma(p: _Program, mnemonic: str, buf: Buffer, dtype: DType, sp: int, dram: int,
         rows: int, cols: int, rstride: int, cstride: int) -> None:
    p.emit(mnemonic, buf=buf, dtype=dtype, sp=sp, dram=dram, rows=rows, cols=cols, rstride=rstride, cstride=cstride)


# ----------------------------------------------------------------------------- DMA planning

@dataclass(frozen=True)
class Piece:
    """One 2-D DMA: `rows` x `cols` elements from element offset `offset` (rows `rstride`
    apart, columns `cstride` apart), covering rows·cols consecutive elements of the view's
    row-major order."""

    offset: int
    rows: int
    cols: int
    rstride: int
    cstride: int


def _split(n: int, s: int) -> list[tuple[int, int]]:
    """A dimension of n > MAX_DIM elements (stride s) as two of at most MAX_DIM each."""
    for c in range(MAX_DIM, 1, -1):
        if n % c == 0:
            outer = n // c
            return (_split(outer, c * s) if outer > MAX_DIM else [(outer, c * s)]) + [(c, s)]
    raise SpaqError(f"a dimension of {n} elements does not split into DMA rows and columns")


def dma_plan(view: View) -> list[Piece]:
    """The fewest 2-D DMAs that visit a view's elements in row-major order: dimensions of
    one element drop out, neighbours whose strides chain merge, the last two remaining are
    a DMA's rows and columns and any further ones become a loop of DMAs."""
    dims: list[tuple[int, int]] = []
    for n, s in zip(view.shape, view.strides):
        if n == 1:
            continue
        if dims and dims[-1][1] == n * s:
            dims[-1] = (dims[-1][0] * n, s)
        else:
            dims.append((n, s))
    fitted: list[tuple[int, int]] = []
    for n, s in dims:
        fitted.extend(_split(n, s) if n > MAX_DIM else [(n, s)])
    for _, s in fitted:
        if s >= STRIDE_LIMIT:
            raise SpaqError(f"a DMA stride of {s} elements does not fit the 24-bit stride fields")
    if not fitted:
        return [Piece(view.offset, 1, 1, 1, 1)]
    if len(fitted) == 1:
        (n, s), = fitted
        return [Piece(view.offset, 1, n, n * s if n * s < STRIDE_LIMIT else 0, s)]
    (a, sa), (b, sb) = fitted[-2], fitted[-1]
    outer = fitted[:-2]
    pieces = []
    for idx in itertools.product(*(range(n) for n, _ in outer)):
        off = view.offset + sum(i * s for i, (_, s) in zip(idx, outer))
        pieces.append(Piece(off, a, b, sa, sb))
    return pieces


def dma_cut(plan: list[Piece], start: int, stop: int) -> list[Piece]:
    """The DMAs that visit elements [start, stop) of the row-major order (pieces of rows)."""
    out: list[Piece] = []
    f = 0
    for p in plan:
        n = p.rows * p.cols
        lo, hi = max(start, f) - f, min(stop, f + n) - f
        f += n
        if lo >= hi:
            continue
        c = p.cols
        if lo % c:
            r, e = lo // c, min(hi, (lo // c + 1) * c)
            out.append(Piece(p.offset + r * p.rstride + (lo % c) * p.cstride, 1, e - lo, p.rstride, p.cstride))
            lo = e
        if hi - lo >= c:
            k = (hi - lo) // c
            out.append(Piece(p.offset + (lo // c) * p.rstride, k, c, p.rstride, p.cstride))
            lo += k * c
        if lo < hi:
            out.append(Piece(p.offset + (lo // c) * p.rstride, 1, hi - lo, p.rstride, p.cstride))
    return out


# --------------------------------------------------------------------------------- lowering

class _Lowering:
    def __init__(self, store: WeightStore, program: _Program, outputs: dict[SSAValue, str], plan: DramPlan,
                 target):
        self.store = store
        self.target = target
        self.p = program
        self.outputs = outputs  # graph outputs: their own, named segments
        self.plan = plan
        self.addr: dict[SSAValue, int] = {}  # DRAM address of each root's (and constant's) segment
        self.reusable: dict[SSAValue, int] = {}  # intermediate activations: bytes, freed once dead
        self.placed: dict[SSAValue, tuple[Buffer, int]] = {}  # a tail's input: where its layer left it
        self.table_loaded: _Weights | None = None  # the codebook table in PARAM

    # ---- segments
    def activation(self, value: SSAValue, sym: str, kind: str = "activation") -> int:
        """The segment holding `value` (made on first use: its root's), and the DRAM address
        of `value`'s element 0."""
        view = self.plan.views.get(value)
        root = value if view is None else view.root
        if root not in self.addr:
            sym = self.plan.names.get(root, sym)
            if root in self.outputs:
                sym, kind = self.outputs[root], "output"
            t = root.type
            assert isinstance(t, TensorType)
            self.addr[root] = self.p.segment(sym, kind, dram_dtype(t.element_type), tuple(t.get_shape()),
                                             reuse=kind == "activation")
            if kind == "activation":
                self.reusable[root] = self.p.segments[-1].nbytes
        return self.addr[root] if view is None else self.base(view)

    def reads(self, layer: Layer) -> set[SSAValue]:
        """The roots (segments) whose bytes `layer` reads."""
        if layer.kind == "view" and not layer.copy:
            return set()
        produced = {r for op in layer.ops for r in op.results}
        values = {v for op in layer.ops for v in op.operands if v not in produced}
        return {self.plan.views[v].root for v in values if v in self.plan.views}

    def lower_all(self, layers: list[Layer]) -> None:
        """Lower every layer; an intermediate activation's block is freed after the last
        layer that reads it (activations share DRAM by liveness; inputs, outputs and
        constants keep theirs)."""
        last: dict[SSAValue, int] = {}
        for i, layer in enumerate(layers):
            for root in self.reads(layer):
                last[root] = i
        dying: dict[int, list[SSAValue]] = {}
        for root, i in last.items():
            dying.setdefault(i, []).append(root)
        for i, layer in enumerate(layers):
            self.lower(layer)
            for root in dying.get(i, []):
                if root in self.reusable:
                    self.p.release(self.addr[root], self.reusable.pop(root))

    def constant(self, value: SSAValue, kind: str = "values") -> View:
        """A constant's own segment (made once), as a view."""
        if value not in self.addr:
            data = np.asarray(_constant(self.store, value))
            dtype = dram_dtype(element_type(value))
            if dtype is DType.I32 and data.dtype.itemsize > 4 and data.size and (
                    data.min() < -(1 << 31) or data.max() >= 1 << 31):
                raise SpaqError(f"constant '{value.name_hint}' does not fit int32")
            sym = (value.name_hint or "const").replace("/", "_") + ".const"
            shape = shape_of(value)
            data = data.astype(np.uint8) if dtype is DType.U8 else data
            self.addr[value] = self.p.segment(sym, kind, dtype, shape or (1,), data.reshape(shape or (1,)))
        return View.whole(value)

    def view(self, value: SSAValue) -> View:
        from spaq.passes.compression import is_constant

        if is_constant(value):
            return self.constant(value)
        v = self.plan.views.get(value)
        if v is None:
            raise SpaqError(f"no DRAM placement for '{value.name_hint or value}'")
        return v

    def dtype_of(self, view: View) -> DType:
        return dram_dtype(element_type(view.root))

    def base(self, view: View) -> int:
        """DRAM byte address of a view's element 0 (its root must have a segment already)."""
        dtype = self.dtype_of(view)
        if view.offset and dtype.bits < 8:
            raise SpaqError(f"a {dtype.name.lower()} view must start at its segment's start")
        return self.addr[view.root] + dtype.nbytes(view.offset)

    def contiguous_base(self, view: View, layer: Layer) -> int:
        if not view.contiguous:
            raise SpaqError(f"layer '{layer.name}' needs its input contiguous in DRAM (insert no transpose before it)")
        return self.base(view)

    def transfer(self, mnemonic: str, buf: Buffer, sp: int, view: View, start: int = 0, stop: int | None = None) -> int:
        """LOAD (or STORE) elements [start, stop) of `view` in row-major order from (into)
        consecutive scratchpad bytes at `sp`; returns the bytes moved."""
        dtype = self.dtype_of(view)
        if dtype.bits < 8:
            return self._transfer_packed(mnemonic, buf, sp, view, start, stop)
        stop = prod(view.shape) if stop is None else stop
        root = self.addr[view.root]
        e = dtype.bits // 8
        moved = 0
        for piece in dma_cut(dma_plan(view), start, stop):
            _dma(self.p, mnemonic, buf, dtype, sp + moved, root + piece.offset * e, piece.rows, piece.cols,
                 piece.rstride, piece.cstride)
            moved += piece.rows * piece.cols * e
        return moved

    def _transfer_packed(self, mnemonic: str, buf: Buffer, sp: int, view: View, start: int, stop: int | None) -> int:
        """`transfer` of a sub-byte tensor: whole rows of a whole tensor, which the image stores
        with every row starting on a byte (row pitch ⌈cols · bits / 8⌉, docs/isa.md), into a
        tile with the same rows."""
        dtype = self.dtype_of(view)
        shape = view.shape or (1,)
        cols = shape[-1]
        stop = prod(shape) if stop is None else stop
        if view != View.whole(view.root) or start % cols or stop % cols:
            raise SpaqError(f"strided DMA plans of {dtype.name.lower()} tensors are not supported")
        pitch = dtype.nbytes(cols)
        r0, rows = start // cols, (stop - start) // cols
        _dma(self.p, mnemonic, buf, dtype, sp, self.addr[view.root] + r0 * pitch, rows, cols, 8 * pitch // dtype.bits, 1)
        return rows * pitch

    def params(self, layer: Layer) -> list[tuple[int, DType, int]]:
        """Per-channel parameter segments as (addr, dtype, rows): loaded one after another."""
        _, _, n = layer.mkn
        bias = _constant(self.store, layer.bias) if layer.bias is not None else None
        if layer.dynamic is not None:  # weight scales for EPILOGUE dequant, then the float bias for a VBIN
            real = np.asarray(layer.epilogue.scale.get_values(), np.float32)
            rows = [np.broadcast_to(real, (n,))] + ([bias.reshape(n).astype(np.float32)] if bias is not None else [])
            block = np.stack(rows)
            addr = self.p.segment(f"{layer.name}.dequant", "scales", DType.F32, block.shape, block)
            return [(addr, DType.F32, len(rows))]
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

    def weights(self, layer: Layer) -> _Weights:
        """A layer's weight in DRAM, as `gemm_modes` says: dense and N:M weights packed once
        (values, N:M indices padded to whole bytes per row), block and unstructured ones per
        tile when `_gemm_tile` first needs the tile; a codebook table in its own segment."""
        _, k, n = layer.mkn
        gw = layer.gemm_weights
        w = np.asarray(_constant(self.store, layer.weight)).reshape(n, k)
        try:
            table = codebook_table(gw, w)
            out = _Weights(gw, w, table)
            if table is not None:
                out.table_addr = self.p.segment(f"{layer.name}.codebook", "scales", gw.cdtype, (1, gw.entries), table)
            if not gw.sliced:
                return out
            packed = pack(gw, w, table)
        except ValueError as e:
            raise SpaqError(f"layer '{layer.name}': {e}") from None
        wd = gw.wdtype
        if packed.meta is None:
            out.v_addr, out.cols = self.p.segment(f"{layer.name}.wgt", "values", wd, (n, k), packed.values), k
            return out
        cols, pitch = weight_columns(layer, k), meta_pitch(layer, k)
        meta = np.zeros((n, pitch), packed.meta.dtype)
        meta[:, :cols] = packed.meta
        out.v_addr = self.p.segment(f"{layer.name}.wgt", "values", wd, (n, cols), packed.values)
        out.m_addr = self.p.segment(f"{layer.name}.meta", "metadata", packed.meta_dtype, (n, pitch), meta)
        out.cols, out.pitch, out.fields = cols, pitch, packed.fields
        return out

    def _tile_segments(self, layer: Layer, w: _Weights, n0: int, nt: int, k0: int, kt: int) -> tuple:
        """A block / unstructured tile's (values addr, metadata addr, packed), made once."""
        key = (n0, nt, k0, kt)
        if key not in w.tiles:
            try:
                p = pack(w.gw, w.dense[n0 : n0 + nt, k0 : k0 + kt], w.table)
            except ValueError as e:
                raise SpaqError(f"layer '{layer.name}': {e}") from None
            tag = f"n{n0}k{k0}"
            v = self.p.segment(f"{layer.name}.wgt.{tag}", "values", w.gw.wdtype, p.values.shape, p.values) \
                if p.values.size else None
            m = self.p.segment(f"{layer.name}.meta.{tag}", "metadata", p.meta_dtype, p.meta.shape, p.meta) \
                if p.meta.size else None
            w.tiles[key] = (v, m, p)
        return w.tiles[key]

    def _load_tile(self, buf: Buffer, dtype: DType, sp: int, dram: int, rows: int, cols: int, pitch: int) -> None:
        """LOAD a packed [rows, cols] tile whose DRAM rows are `pitch` bytes apart, in pieces
        that fit the 16-bit rows / cols fields (a long one-row tile in byte-aligned chunks)."""
        rstride = pitch * 8 // dtype.bits
        if rows == 1 and cols > MAX_DIM:
            step = 1 << 15
            for c0 in range(0, cols, step):
                _dma(self.p, "load", buf, dtype, sp + dtype.nbytes(c0), dram + dtype.nbytes(c0), 1,
                     min(step, cols - c0), rstride, 1)
            return
        for r0 in range(0, rows, MAX_DIM):
            _dma(self.p, "load", buf, dtype, sp + r0 * dtype.nbytes(cols), dram + r0 * pitch, min(MAX_DIM, rows - r0),
                 cols, rstride, 1)

    # ---- layers
    def lower(self, layer: Layer) -> None:
        self.p.layer = layer.name
        getattr(self, f"_{layer.kind}")(layer)

    def _gemm_tile(self, layer: Layer, sram: dict[str, int], m: int, k0: int, kt: int, n0: int, nt: int,
                   w: _Weights, accumulate: bool) -> None:
        """LOAD the weight tile [n0 : n0 + nt, k0 : k0 + kt] (values, metadata, the codebook
        table once) and emit its GEMM-family instruction with the fields of `gemm_modes`."""
        gw, wd = w.gw, w.gw.wdtype
        fields = dict(adtype=layer.adtype, wdtype=wd, acc=sram["acc"], act=sram["cols" if layer.kind == "conv" else "in"],
                      wgt=sram["wgt"], m=m, k=kt, n=nt, accumulate=int(accumulate), **gw.fields())
        if gw.entries:
            fields["cb"] = sram["cb"]
            if self.table_loaded is not w:  # once per layer (siblings share the PARAM slot)
                _dma(self.p, "load", Buffer.PARAM, gw.cdtype, sram["cb"], w.table_addr, 1, gw.entries, gw.entries, 1)
                self.table_loaded = w
        if skips_zero_activations(layer.head, self.target):
            fields["askip"] = 1
        if gw.sliced:
            c0, ct = weight_columns(layer, k0), weight_columns(layer, kt)
            pitch = wd.nbytes(w.cols)
            if (c0 * wd.bits) % 8:
                raise SpaqError(f"layer '{layer.name}': a {wd.name.lower()} weight tile must start on a byte")
            self._load_tile(Buffer.WGT, wd, sram["wgt"], w.v_addr + n0 * pitch + wd.nbytes(c0), nt, ct, pitch)
            if w.m_addr is None:
                self.p.emit("gemm", **fields)
                return
            md = packing.nm_index_dtype(layer.nm[1])
            mt = meta_pitch(layer, kt)
            _dma(self.p, "load", Buffer.META, md, sram["meta"], w.m_addr + md.nbytes(n0 * w.pitch + c0),
                 nt, mt, w.pitch, 1)
            self.p.emit("spgemm", **fields, meta=sram["meta"], **w.fields)
            return
        v_addr, m_addr, p = self._tile_segments(layer, w, n0, nt, k0, kt)
        if v_addr is not None:
            rows, cols = p.values.shape
            self._load_tile(Buffer.WGT, wd, sram["wgt"], v_addr, rows, cols, wd.nbytes(cols))
        if m_addr is not None:
            rows, cols = p.meta.shape
            self._load_tile(Buffer.META, p.meta_dtype, sram["meta"], m_addr, rows, cols, p.meta_dtype.nbytes(cols))
        self.p.emit(gw.mnemonic, **fields, meta=sram["meta"], **p.fields)

    def _load_params(self, sram: dict[str, int], params: list[tuple[int, DType, int]], n: int, n0: int,
                     nt: int) -> None:
        sp = sram["param"]
        for addr, dtype, rows in params:
            _dma(self.p, "load", Buffer.PARAM, dtype, sp, addr + dtype.nbytes(n0), rows, nt, n, 1)
            sp += dtype.nbytes(rows * nt)

    def _epilogue(self, layer: Layer, sram: dict[str, int], params: list[tuple[int, DType, int]],
                  m: int, n: int, n0: int, nt: int) -> None:
        self._load_params(sram, params, n, n0, nt)
        self.p.emit("epilogue", mode=layer.mode, odtype=layer.odtype, bias=1, relu=int(layer.relu),
                    src=sram["acc"], dst=sram["out"], param=sram["param"], rows=m, cols=nt, zp=0)

    def _hwc(self, mnemonic: str, sp: int, value: SSAValue, b: int, c0: int, cs: int, y0: int, rows: int) -> None:
        """LOAD (STORE) the [rows·W, cs] HWC tile at `sp` from (into) image `b`, channels
        [c0, c0 + cs), rows [y0, y0 + rows) of the NCHW tensor `value`: one DMA (pixels by
        the column stride, channels by the channel stride) when its rows are evenly spaced."""
        v = self.view(value)
        if len(v.shape) == 3:  # a 1-D image: one row
            v = View(v.root, v.offset, (v.shape[0], v.shape[1], 1, v.shape[2]),
                     (v.strides[0], v.strides[1], v.shape[2] * v.strides[2], v.strides[2]))
        (sn, sc, sy, sx), w = v.strides, v.shape[3]
        offset = v.offset + b * sn + c0 * sc + y0 * sy
        dtype = self.dtype_of(v)
        if rows == 1 or sy == w * sx:
            r_stride = sx if rows * w > 1 else max(1, w * sx)
            _dma(self.p, mnemonic, Buffer.ACT, dtype, sp, self.addr[v.root] + dtype.nbytes(offset), rows * w, cs,
                 r_stride, sc if cs > 1 else max(1, sc))
            return
        self.transfer(mnemonic, Buffer.ACT, sp, View(v.root, offset, (rows, w, cs), (sy, sx, sc)))

    def _conv(self, layer: Layer) -> None:
        """Per image, per band of output rows (tiles `m`), per group, per N tile: per K chunk
        (whole input channels) LOAD the band's input rows with their halo (NCHW -> HWC by the
        DMA's strides), IM2COL with the band's own top / bottom padding, LOAD W, GEMM
        (accumulating over chunks); then LOAD PARAM, EPILOGUE, STORE (HWC -> NCHW). A chunk's
        columns stay in ACT for the next N tile when it is the whole reduction. A grouped /
        depthwise conv is one GEMM per group, on the group's input channels."""
        sram, tiles, g = layer.sram(), layer.tiles(), layer.conv
        m, k, n = layer.mkn
        w, params = self.weights(layer), self.params(layer)
        self.activation(layer.output, layer.name)
        ad = layer.adtype
        kk, groups = g["kh"] * g["kw"], g["g"]
        cg, ng = g["c"] // groups, n // groups
        band = max(1, tiles.get("m", m) // g["ow"])
        kt, nt_max = tiles.get("k", k), tiles.get("n", ng)
        if k % kk or kt % kk or g["c"] % groups or n % groups:
            raise SpaqError(f"layer '{layer.name}': reduction tiles must hold whole input channels")
        for b in range(layer.batch):
            for oy0 in range(0, g["oh"], band):
                rows = min(band, g["oh"] - oy0)
                top = oy0 * g["sh"] - g["pt"]  # the band's first input row (negative: padding)
                end = (oy0 + rows - 1) * g["sh"] - g["pt"] + g["dh"] * (g["kh"] - 1) + 1
                r0, r1 = max(0, top), min(g["h"], end)
                if r1 <= r0:
                    raise SpaqError(f"layer '{layer.name}': a band of output rows reads only padding")
                window = {f: g[f] for f in ("w", "kh", "kw", "sh", "sw", "pl", "pr", "dh", "dw")}
                window.update(h=r1 - r0, pt=r0 - top, pb=max(0, end - g["h"]))
                mt = rows * g["ow"]
                for gi in range(groups):
                    resident = None  # the K chunk whose columns are in ACT
                    for n0 in range(gi * ng, (gi + 1) * ng, nt_max):
                        nt = min(nt_max, (gi + 1) * ng - n0)
                        for k0 in range(0, k, kt):
                            kc = min(kt, k - k0)
                            if resident != k0:
                                self._hwc("load", sram["in"], layer.input, b, gi * cg + k0 // kk, kc // kk, r0, r1 - r0)
                                self.p.emit("im2col", dtype=ad, src=sram["in"], dst=sram["cols"], c=kc // kk, **window)
                                resident = k0
                            self._gemm_tile(layer, sram, mt, k0, kc, n0, nt, w, k0 > 0)
                        if k > kt:
                            resident = None  # the next N tile starts again from the first chunk
                        self._epilogue(layer, sram, params, mt, n, n0, nt)
                        self._hwc("store", sram["out"], layer.output, b, n0, nt, oy0, rows)

    def _matrix(self, layer: Layer, value: SSAValue) -> tuple[int, int, int]:
        """A 2-D operand's (base address, row stride, column stride)."""
        v = self.view(value)
        if len(v.shape) != 2:
            raise SpaqError(f"layer '{layer.name}': a GEMM operand must be 2-D")
        if v.strides[1] != 1 and v.shape[1] > 1 and self.dtype_of(v).bits < 8:
            raise SpaqError(f"layer '{layer.name}': a sub-byte operand must have contiguous rows")
        rstride = v.strides[0] if v.shape[0] > 1 else v.shape[1] * max(v.strides[1], 1)
        return self.base(v), rstride, v.strides[1] if v.shape[1] > 1 else 1

    def _result(self, layer: Layer) -> tuple[int, int, int]:
        """A gemm's result as a 2-D DRAM matrix — none when a tail takes it in the scratchpad."""
        if layer.tail is not None:
            return 0, 0, 0
        self.activation(layer.output, layer.name)
        return self._matrix(layer, layer.output)

    def _gemm(self, layer: Layer) -> None:
        if layer.dynamic is not None:
            return self._gemm_dynamic(layer)
        sram, tiles = layer.sram(), layer.tiles()
        m, k, n = layer.mkn
        w, params = self.weights(layer), self.params(layer)
        x, xr, xc = self._matrix(layer, layer.input)
        y, yr, yc = self._result(layer)
        ad, od = layer.adtype, layer.odtype
        step = tiles.get("m", m)
        for m0 in range(0, m, step):  # row tiles (one, unless the rows do not fit)
            mt = min(step, m - m0)
            for n0 in range(0, n, tiles["n"]):
                nt = min(tiles["n"], n - n0)
                for k0 in range(0, k, tiles["k"]):
                    kt = min(tiles["k"], k - k0)
                    _dma(self.p, "load", Buffer.ACT, ad, sram["in"], x + ad.nbytes(m0 * xr + k0 * xc), mt, kt, xr, xc)
                    self._gemm_tile(layer, sram, mt, k0, kt, n0, nt, w, k0 > 0)
                self._epilogue(layer, sram, params, mt, n, n0, nt)
                if layer.tail is not None:
                    self._tail(layer, Buffer.ACT, sram["out"])
                else:
                    _dma(self.p, "store", Buffer.ACT, od, sram["out"], y + od.nbytes(m0 * yr + n0 * yc), mt, nt, yr, yc)

    def _gemm_dynamic(self, layer: Layer) -> None:
        """quant.quantize_dynamic -> quant.gemm -> quant.dequantize (weight scales, row scales)
        -> Add(bias): VQUANT once, then per N tile GEMM, EPILOGUE dequant (f32(acc) · s_w),
        VBIN mul by the row scales (bcast col), VBIN add the bias (bcast row, from PARAM)."""
        sram, tiles = layer.sram(), layer.tiles()
        m, k, n = layer.mkn
        if tiles["k"] != k:
            raise SpaqError(f"layer '{layer.name}': per-token activations need the whole reduction in one tile")
        x, xr, xc = self._matrix(layer, layer.input)
        xd, ad = dram_dtype(element_type(layer.input)), layer.adtype
        group = [layer, *layer.siblings]  # the projections that share the quantized input
        parts = [(one, self.weights(one), self.params(one), self._result(one)) for one in group]
        step = tiles.get("m", m)
        for m0 in range(0, m, step):  # row tiles (one, unless the rows do not fit): each row is a token
            mt = min(step, m - m0)
            self.p.layer = layer.name
            _dma(self.p, "load", Buffer.ACT, xd, sram["xf"], x + xd.nbytes(m0 * xr), mt, k, xr, xc)
            self.p.emit("vquant", odtype=ad, dtype=xd, src=sram["xf"], dst=sram["in"], scale=sram["scales"],
                        rows=mt, cols=k)
            for one, w, params, result in parts:
                self.p.layer = one.name
                self._gemm_dynamic_tiles(one, sram, tiles, w, params, result, m0, mt)

    def _gemm_dynamic_tiles(self, layer: Layer, sram: dict[str, int], tiles: dict[str, int], w, params,
                            result: tuple[int, int, int], m0: int, m: int) -> None:
        _, k, n = layer.mkn
        y, yr, yc = result
        od = layer.odtype
        has_bias = layer.bias is not None
        for n0 in range(0, n, tiles["n"]):
            nt = min(tiles["n"], n - n0)
            self._gemm_tile(layer, sram, m, 0, k, n0, nt, w, False)
            self._load_params(sram, params, n, n0, nt)
            self.p.emit("epilogue", mode=EpilogueMode.DEQUANT, odtype=DType.F32, bias=0, relu=0,
                        src=sram["acc"], dst=sram["out"], param=sram["param"], rows=m, cols=nt, zp=0)
            out = dict(dst=sram["out"], rows=m, cols=nt)
            self.p.emit("vbin", op=BinaryOp.MUL, src=sram["out"], bcast=Bcast.COL, src1=sram["scales"], **out)
            if has_bias:
                self.p.emit("vbin", op=BinaryOp.ADD, src=sram["out"], bcast=Bcast.ROW, buf1=Buffer.PARAM,
                            src1=sram["param"] + 4 * nt, **out)
            if layer.relu:
                self.p.emit("vbin", op=BinaryOp.MAX, src=sram["out"], bcast=Bcast.IMM, imm=0, **out)
            if od is not DType.F32:
                raise SpaqError(f"layer '{layer.name}': per-token layers produce f32")
            if layer.tail is not None:
                self._tail(layer, Buffer.ACT, sram["out"])
            else:
                _dma(self.p, "store", Buffer.ACT, od, sram["out"], y + od.nbytes(m0 * yr + n0 * yc), m, nt, yr, yc)

    def _matmul(self, layer: Layer) -> None:
        """One GEMM per batch element; A_g and W_g = B_gᵀ (the transposition is in the DMA
        strides) are loaded for a group of batch elements at once, the results gathered in
        consecutive ACC tiles and stored straight from ACC."""
        sram, group = layer.sram(), layer.tiles()["batch"]
        m, k, n = layer.mkn
        count = layer.batch
        batch = shape_of(layer.output)[:-2]
        a = self.view(layer.input).broadcast_to(batch + (m, k))
        wv = self.view(layer.weight).broadcast_to(batch + (k, n)).transposed_last2()
        if layer.tail is None:
            self.activation(layer.output, layer.name)
        y = self.view(layer.output)
        a_once = all(s == 0 for s in a.strides[:-2])  # the same A for every batch element
        w_once = all(s == 0 for s in wv.strides[:-2])
        rows = layer.tiles().get("m", m)
        if rows < m:  # one batch element at a time, in row tiles (its W loaded once)
            for g in range(count):
                ab = 0 if a_once else g * m * k
                self.transfer("load", Buffer.WGT, sram["w"], wv, 0 if w_once else g * n * k,
                              (0 if w_once else g * n * k) + n * k)
                for m0 in range(0, m, rows):
                    mt = min(rows, m - m0)
                    self.transfer("load", Buffer.ACT, sram["a"], a, ab + m0 * k, ab + (m0 + mt) * k)
                    self.p.emit("gemm", adtype=DType.F32, wdtype=DType.F32, acc=sram["acc"], act=sram["a"],
                                wgt=sram["w"], m=mt, k=k, n=n, accumulate=0)
                    self.transfer("store", Buffer.ACC, sram["acc"], y, g * m * n + m0 * n, g * m * n + (m0 + mt) * n)
            return
        for g0 in range(0, count, group):
            gn = min(group, count - g0)
            if not a_once or g0 == 0:
                lo = 0 if a_once else g0 * m * k
                self.transfer("load", Buffer.ACT, sram["a"], a, lo, lo + (m * k if a_once else gn * m * k))
            if not w_once or g0 == 0:
                lo = 0 if w_once else g0 * n * k
                self.transfer("load", Buffer.WGT, sram["w"], wv, lo, lo + (n * k if w_once else gn * n * k))
            for j in range(gn):
                self.p.emit("gemm", adtype=DType.F32, wdtype=DType.F32, acc=sram["acc"] + 4 * j * m * n,
                            act=sram["a"] + (0 if a_once else 4 * j * m * k),
                            wgt=sram["w"] + (0 if w_once else 4 * j * n * k), m=m, k=k, n=n, accumulate=0)
            if layer.tail is not None:  # whole batch in one group (tile-layers): the tail reads ACC
                self._tail(layer, Buffer.ACC, sram["acc"])
            else:
                self.transfer("store", Buffer.ACC, sram["acc"], y, g0 * m * n, (g0 + gn) * m * n)

    def _gather(self, layer: Layer) -> None:
        """Slices of a table (a constant, or an activation contiguous in DRAM) picked along
        `axis` by run-time indices: LOAD the indices, then per index of the dimensions before
        the axis one GATHER of rows of d elements (the dimensions after it), STORE."""
        sram, step = layer.sram(), layer.tiles()["rows"]
        count, d = layer.gather_rows
        table_shape = shape_of(layer.weight)
        axis = layer.head.attr("axis", 0) % len(table_shape)
        n, outer = table_shape[axis], prod(table_shape[:axis])
        table = self.view(layer.weight)
        if not table.contiguous:
            raise SpaqError(f"layer '{layer.name}': GATHER needs its table contiguous in DRAM")
        dtype = self.dtype_of(table)
        if dtype.bits < 8:
            raise SpaqError(f"layer '{layer.name}': GATHER of {dtype.name.lower()} rows is not supported")
        if d > MAX_DIM:
            raise SpaqError(f"layer '{layer.name}': gathered rows of {d} elements exceed GATHER's {MAX_DIM}")
        index = self.view(layer.input)
        idtype = self.dtype_of(index)
        self.activation(layer.output, layer.name)
        y = self.view(layer.output)
        if count == 0 or d == 0 or outer == 0:
            return
        for o in range(outer):
            for r0 in range(0, count, step):
                r = min(step, count - r0)
                if o == 0 or count > step:  # the indices stay in ACT when they fit
                    self.transfer("load", Buffer.ACT, sram["idx"], index, r0, r0 + r)
                self.p.emit("gather", buf=Buffer.ACT, dtype=dtype, sp=sram["out"],
                            dram=self.base(table) + dtype.nbytes(o * n * d), rows=r, cols=d, rstride=d, limit=n,
                            ibuf=Buffer.ACT, idtype=idtype, idx=sram["idx"])
                self.transfer("store", Buffer.ACT, sram["out"], y, (o * count + r0) * d, (o * count + r0 + r) * d)

    def _view(self, layer: Layer) -> None:
        """A view moves no data, unless it copies (`Layer.copy`): LOAD through the source's
        strides, STORE contiguous, a chunk of `elems` elements at a time."""
        if not layer.copy:
            return
        sram, step = layer.sram(), layer.tiles()["elems"]
        src = self.plan.source[layer.output]
        self.activation(layer.output, layer.name)
        dst = self.view(layer.output)
        total = prod(dst.shape)
        for e0 in range(0, total, step):
            e1 = min(total, e0 + step)
            self.transfer("load", Buffer.ACT, sram["buf"], src, e0, e1)
            self.transfer("store", Buffer.ACT, sram["buf"], dst, e0, e1)

    def _move(self, layer: Layer) -> None:
        """Concat, Split, Pad, Tile, ...: DMA pieces or element GATHERs (sparrow_moves.py)."""
        from spaq.passes.sparrow_moves import lower_move

        lower_move(self, layer)

    def _resample(self, layer: Layer) -> None:
        """Linear / cubic Resize: per tap a gather, a VBIN mul by its weights, a VBIN add."""
        from spaq.passes.sparrow_moves import lower_resample

        lower_resample(self, layer)

    def _gathernd(self, layer: Layer) -> None:
        """GatherND by run-time index tuples: the row numbers on the vector unit, then GATHER."""
        from spaq.passes.sparrow_moves import lower_gathernd

        lower_gathernd(self, layer)

    def _quantize(self, layer: Layer) -> None:
        sram = layer.sram()
        scale = np.asarray(layer.head.scale.get_values(), np.float32)
        if scale.size != 1:
            raise SpaqError(f"layer '{layer.name}': only per-tensor activation quantization runs on Sparrow")
        s_addr = self.p.segment(f"{layer.name}.scale", "scales", DType.F32, (1,), scale)
        x = self.contiguous_base(self.view(layer.input), layer)
        y = self.activation(layer.output, layer.name)
        total, cols = _rows_cols(layer.in_type)
        step = layer.optional_tiles().get("rows", total)
        _dma(self.p, "load", Buffer.PARAM, DType.F32, sram["param"], s_addr, 1, 1, 1, 1)
        for r0 in range(0, total, step):
            rows = min(step, total - r0)
            _dma(self.p, "load", Buffer.ACT, layer.adtype, sram["in"], x + layer.adtype.nbytes(r0 * cols), rows, cols,
                 cols, 1)
            self.p.emit("quant", odtype=layer.odtype, src=sram["in"], dst=sram["out"], param=sram["param"],
                        rows=rows, cols=cols)
            _dma(self.p, "store", Buffer.ACT, layer.odtype, sram["out"], y + layer.odtype.nbytes(r0 * cols), rows, cols,
                 cols, 1)

    def _pool_chunks(self, layer: Layer):
        """(image, first channel, channels) of a pooling layer's channel tiles."""
        cs, c = layer.optional_tiles().get("c", layer.pool["c"]), layer.pool["c"]
        for b in range(layer.batch):
            for c0 in range(0, c, cs):
                yield b, c0, min(cs, c - c0)

    @staticmethod
    def _window(g: dict[str, int]) -> dict[str, int]:
        return {f: g[f] for f in ("h", "w", "kh", "kw", "sh", "sw", "pt", "pl", "pb", "pr", "dh", "dw")}

    def _maxpool(self, layer: Layer) -> None:
        """Per image and channel tile: LOAD (NCHW -> HWC), MAXPOOL, STORE (HWC -> NCHW)."""
        sram, dt, g = layer.sram(), layer.adtype, layer.pool
        self.activation(layer.output, layer.name)
        for b, c0, cs in self._pool_chunks(layer):
            self._hwc("load", sram["in"], layer.input, b, c0, cs, 0, g["h"])
            self.p.emit("maxpool", dtype=dt, src=sram["in"], dst=sram["out"], c=cs, **self._window(g))
            self._hwc("store", sram["out"], layer.output, b, c0, cs, 0, g["oh"])

    def _avgpool(self, layer: Layer) -> None:
        """Per image and channel tile: LOAD (NCHW -> HWC), IM2COL (padding reads 0), VRED sum
        of each window (the [oh·ow, cs·kh·kw] columns seen as [oh·ow·cs, kh·kw] rows), VBIN div
        by the window's count (an immediate, or the per-pixel counts as a column vector), STORE
        (HWC -> NCHW). `onnx_kernels.average_pool_counts` and the evaluator's AveragePool
        compute the same."""
        from spaq.passes.sparrow_layers import avgpool_counts

        sram, dt, g = layer.sram(), layer.adtype, layer.pool
        if dt is not DType.F32 or layer.odtype is not DType.F32:
            raise SpaqError(f"layer '{layer.name}': AveragePool runs on fp32 tensors")
        self.activation(layer.output, layer.name)
        m, kk = g["oh"] * g["ow"], g["kh"] * g["kw"]
        counts = avgpool_counts(layer)
        uniform = len(set(counts.tolist())) == 1
        if not uniform:
            addr = self.p.segment(f"{layer.name}.count", "scales", DType.F32, (m, 1), counts.reshape(m, 1))
            _dma(self.p, "load", Buffer.ACT, DType.F32, sram["count"], addr, 1, m, m, 1)
        for b, c0, cs in self._pool_chunks(layer):
            self._hwc("load", sram["in"], layer.input, b, c0, cs, 0, g["h"])
            self.p.emit("im2col", dtype=dt, src=sram["in"], dst=sram["cols"], c=cs, **self._window(g))
            self.p.emit("vred", op=ReduceOp.SUM, src=sram["cols"], dst=sram["sum"], rows=m * cs, cols=kk)
            div = dict(bcast=Bcast.IMM, imm=vector.imm(np.float32(counts[0]))) if uniform else \
                dict(bcast=Bcast.COL, src1=sram["count"])
            self.p.emit("vbin", op=BinaryOp.DIV, src=sram["sum"], dst=sram["out"], rows=m, cols=cs, **div)
            self._hwc("store", sram["out"], layer.output, b, c0, cs, 0, g["oh"])

    def _globalpool(self, layer: Layer) -> None:
        """Per image and channel tile: LOAD the [cs, h·w] rows (NCHW as it is), VRED max, or
        VRED sum then VBIN div by h·w (`onnx_kernels.global_pool_rows`), STORE [cs, 1]."""
        from spaq.passes.sparrow_layers import _is

        sram, g = layer.sram(), layer.pool
        hw = g["h"] * g["w"]
        if hw > MAX_DIM:
            raise SpaqError(f"layer '{layer.name}': a global pool over more than {MAX_DIM} pixels")
        average = not _is(layer.head, "GlobalMaxPool", "ReduceMax")
        self.activation(layer.output, layer.name)
        x, y = self.view(layer.input), self.view(layer.output)
        for b, c0, cs in self._pool_chunks(layer):
            first = b * g["c"] * hw + c0 * hw
            self.transfer("load", Buffer.ACT, sram["in"], x, first, first + cs * hw)
            if average:
                self.p.emit("vred", op=ReduceOp.SUM, dtype=layer.adtype, src=sram["in"], dst=sram["sum"], rows=cs, cols=hw)
                self.p.emit("vbin", op=BinaryOp.DIV, src=sram["sum"], bcast=Bcast.IMM, imm=vector.imm(np.float32(hw)),
                            odtype=layer.odtype, dst=sram["out"], rows=cs, cols=1)
            else:
                self.p.emit("vred", op=ReduceOp.MAX, dtype=layer.adtype, src=sram["in"], odtype=layer.odtype,
                            dst=sram["out"], rows=cs, cols=hw)
            self.transfer("store", Buffer.ACT, sram["out"], y, b * g["c"] + c0, b * g["c"] + c0 + cs)

    def _softmax(self, layer: Layer) -> None:
        sram = layer.sram()
        if layer.adtype != DType.F32:
            raise SpaqError(f"layer '{layer.name}': Softmax runs on fp32 inputs")
        x = self.contiguous_base(self.view(layer.input), layer)
        y = self.activation(layer.output, layer.name)
        rows, cols = _rows_cols(layer.in_type)
        _dma(self.p, "load", Buffer.ACT, DType.F32, sram["in"], x, rows, cols, cols, 1)
        self.p.emit("softmax", src=sram["in"], dst=sram["out"], rows=rows, cols=cols)
        _dma(self.p, "store", Buffer.ACT, DType.F32, sram["out"], y, rows, cols, cols, 1)

    def _rowwise(self, layer: Layer) -> None:
        from spaq.passes import sparrow_rowwise

        sparrow_rowwise.lower(self, layer)

    # ---- vector regions
    def _vector(self, layer: Layer) -> None:
        self._region(layer, layer.sram(), layer.tiles()["rows"])

    def _tail(self, layer: Layer, buf: Buffer, addr: int) -> None:
        """The fused vector layer, on the result tile this layer left at `buf`:`addr`."""
        tail = layer.tail
        self.p.layer = tail.name
        sram = {role[2:]: a for role, a in layer.sram().items() if role.startswith("v.")}
        self.placed[layer.tail_input] = (buf, addr)
        self._region(tail, sram, tail.region.rows)
        self.p.layer = layer.name

    def _region_view(self, region, v: SSAValue) -> View:
        """A region input's view, reshaped where the region reads it so (`Region.shapes`)."""
        view = self.view(v)
        if v in region.shapes:
            view = view.reshaped(region.shapes[v])
            if view is None:
                raise SpaqError(f"no DMA strides read '{v.name_hint or v}' reshaped")
        return view

    def _region(self, layer: Layer, sram: dict[str, int], step: int) -> None:
        region = layer.region
        plan = plan_region(region, self.store)
        shape, rows, cols = region.shape, region.rows, region.cols
        if cols > MAX_DIM:
            raise SpaqError(f"layer '{layer.name}': rows of {cols} elements exceed the vector unit's {MAX_DIM}")
        for v in region.outputs:
            self.activation(v, layer.name if v is layer.output else f"{layer.name}.{region.outputs.index(v)}")
        fixed = [v for v, role in plan.vectors.items() if plan.forms[v] in (Bcast.ROW, Bcast.SCALAR)]
        for v in fixed:  # the same for every chunk of rows: loaded once
            self._load_vector(plan, sram, v, 0, 1)
        for r0 in range(0, rows, step):
            r = min(step, rows - r0)
            for v in region.inputs:
                if v in self.placed:
                    continue  # already in the scratchpad: the result of the layer this region is the tail of
                if plan.forms[v] is Bcast.TILE:
                    self.transfer("load", Buffer.ACT, sram[plan.slot[v]], self._region_view(region, v).broadcast_to(shape),
                                  r0 * cols, (r0 + r) * cols)
                elif plan.forms[v] is Bcast.COL and v in plan.vectors:
                    self._load_vector(plan, sram, v, r0, r)
            for st in plan.steps:
                self._step(plan, sram, st, r, cols)
            for v in region.outputs:
                self.transfer("store", Buffer.ACT, sram[plan.slot[v]], self.view(v), r0 * cols, (r0 + r) * cols)

    def _load_vector(self, plan: RegionPlan, sram: dict[str, int], v: SSAValue, r0: int, r: int) -> None:
        form, shape = plan.forms[v], plan.region.shape
        full = self._region_view(plan.region, v).broadcast_to(shape)
        buf = Buffer.PARAM if vector_in_param(plan, v) else Buffer.ACT
        if form is Bcast.ROW:
            part = View(full.root, full.offset, shape[-1:], full.strides[-1:])
        elif form is Bcast.COL:
            part = View(full.root, full.offset, shape[:-1], full.strides[:-1])
        else:
            part = View(full.root, full.offset, (1,), (1,))
        lo = r0 if form is Bcast.COL else 0
        self.transfer("load", buf, sram[plan.vectors[v]], part, lo, lo + (r if form is Bcast.COL else prod(part.shape)))

    def _operand(self, plan: RegionPlan, sram: dict[str, int], o: Operand) -> tuple[Bcast, DType, Buffer, int, int]:
        """(bcast, dtype, buffer, address, imm bits) of a step's operand."""
        if o.form is Bcast.IMM:
            return Bcast.IMM, DType.F32, Buffer.ACT, 0, vector.imm(o.imm)
        dtype = dram_dtype(element_type(o.value))
        if o.value in self.placed:
            buf, addr = self.placed[o.value]
            return Bcast.TILE, dtype, buf, addr, 0
        if o.form is Bcast.TILE:
            return Bcast.TILE, dtype, Buffer.ACT, sram[plan.slot[o.value]], 0
        buf = Buffer.PARAM if vector_in_param(plan, o.value) else Buffer.ACT
        return o.form, dtype, buf, sram[plan.vectors[o.value]], 0

    def _step(self, plan: RegionPlan, sram: dict[str, int], st, rows: int, cols: int) -> None:
        if st.kind == "alias":
            return
        out = dict(odtype=dram_dtype(element_type(st.result)), obuf=Buffer.ACT, dst=sram[plan.slot[st.result]],
                   rows=rows, cols=cols)
        if st.kind == "vbin":
            _, d0, b0, a0, _ = self._operand(plan, sram, st.operands[0])
            bc, d1, b1, a1, imm = self._operand(plan, sram, st.operands[1])
            self.p.emit("vbin", op=st.binary, dtype=d0, buf=b0, src=a0, bcast=bc, dtype1=d1, buf1=b1, src1=a1,
                        imm=imm, **out)
        elif st.kind == "vun":
            _, d0, b0, a0, _ = self._operand(plan, sram, st.operands[0])
            self.p.emit("vun", op=st.unary, dtype=d0, buf=b0, src=a0, **out)
        elif st.kind == "vsel":
            mc, md, mb, ma, _ = self._operand(plan, sram, st.operands[0])
            _, d0, b0, a0, _ = self._operand(plan, sram, st.operands[1])
            bc, d1, b1, a1, imm = self._operand(plan, sram, st.operands[2])
            self.p.emit("vsel", mdtype=md, mbcast=mc, mbuf=mb, mask=ma, dtype=d0, buf=b0, src=a0, bcast=bc,
                        dtype1=d1, buf1=b1, src1=a1, imm=imm, **out)
        elif st.kind == "softmax":
            _, _, b0, a0, _ = self._operand(plan, sram, st.operands[0])
            if b0 is not Buffer.ACT:  # SOFTMAX reads ACT: bring the tile over first
                self.p.emit("vun", op=UnaryOp.COPY, buf=b0, src=a0, dst=out["dst"], rows=rows, cols=cols)
                a0 = out["dst"]
            self.p.emit("softmax", src=a0, dst=out["dst"], rows=rows, cols=cols)
        elif st.kind == "layernorm":
            self._layernorm(plan, sram, st, out, rows, cols)
        elif st.kind == "seq":
            self._sequence(plan, sram, st, out, rows, cols)
        else:  # pragma: no cover - plan_region makes only these
            raise SpaqError(f"no vector lowering for {st.kind}")

    def _sequence(self, plan: RegionPlan, sram: dict[str, int], st, out: dict, rows: int, cols: int) -> None:
        """A 'seq' step: its vector_expand instructions, temporaries in the region's `s` slots."""
        from spaq.passes.vector_expand import OUT, Imm, Tmp

        ex = st.expansion
        by_value = {o.value: o for o in st.operands}
        tmp_dtype = out["odtype"] if ex.tmp_like_result else DType.F32

        def source(a) -> tuple[Bcast, DType, Buffer, int, int]:
            if isinstance(a, Tmp):
                return Bcast.TILE, a.dtype or tmp_dtype, Buffer.ACT, sram[f"s{a.index}"], 0
            if isinstance(a, Imm):
                return Bcast.IMM, DType.F32, Buffer.ACT, 0, vector.imm(a.value)
            return self._operand(plan, sram, by_value[a.value])

        for m in ex.micro:
            dst = dict(out) if m.dst == OUT else dict(out, odtype=tmp_dtype, dst=sram[f"s{m.dst.index}"])
            if m.odtype is not None:
                dst["odtype"] = m.odtype
            if m.mnemonic == "vun":
                _, d0, b0, a0, _ = source(m.args[0])
                self.p.emit("vun", op=m.op, dtype=d0, buf=b0, src=a0, imm=vector.imm(m.scale), **dst)
            elif m.mnemonic == "vbin":
                _, d0, b0, a0, _ = source(m.args[0])
                bc, d1, b1, a1, imm = source(m.args[1])
                self.p.emit("vbin", op=m.op, dtype=d0, buf=b0, src=a0, bcast=bc, dtype1=d1, buf1=b1, src1=a1,
                            imm=imm, **dst)
            else:
                mc, md, mb, ma, mimm = source(m.args[0])
                _, d0, b0, a0, _ = source(m.args[1])
                bc, d1, b1, a1, imm = source(m.args[2])
                if mc is Bcast.IMM:
                    raise SpaqError(f"'{st.op.name}': a select's mask must be a tensor")
                self.p.emit("vsel", mdtype=md, mbcast=mc, mbuf=mb, mask=ma, dtype=d0, buf=b0, src=a0, bcast=bc,
                            dtype1=d1, buf1=b1, src1=a1, imm=imm, **dst)

    def _layernorm(self, plan: RegionPlan, sram: dict[str, int], st, out: dict, rows: int, cols: int) -> None:
        """The eight instructions of `onnx_kernels.layer_norm_rows` (the evaluator's definition)."""
        _, _, xb, x, _ = self._operand(plan, sram, st.operands[0])
        y, mean, var = out["dst"], sram["mean"], sram["var"]
        inv_c = vector.imm(np.float32(1.0 / cols))
        eps = vector.imm(np.float32(st.op.attr("epsilon", 1e-5)))
        col = dict(rows=rows, cols=1)
        self.p.emit("vred", op=ReduceOp.SUM, buf=xb, src=x, imm=inv_c, dst=mean, rows=rows, cols=cols)
        self.p.emit("vbin", op=BinaryOp.SUB, buf=xb, src=x, bcast=Bcast.COL, src1=mean, dst=y, rows=rows, cols=cols)
        self.p.emit("vred", op=ReduceOp.SUMSQ, src=y, imm=inv_c, dst=var, rows=rows, cols=cols)
        self.p.emit("vbin", op=BinaryOp.ADD, src=var, bcast=Bcast.IMM, imm=eps, dst=var, **col)
        self.p.emit("vun", op=UnaryOp.RSQRT, src=var, dst=var, **col)
        self.p.emit("vbin", op=BinaryOp.MUL, src=y, bcast=Bcast.COL, src1=var, dst=y, rows=rows, cols=cols)
        for operand, bop in zip(st.operands[1:], (BinaryOp.MUL, BinaryOp.ADD)):
            bc, d1, b1, a1, imm = self._operand(plan, sram, operand)
            self.p.emit("vbin", op=bop, src=y, bcast=bc, dtype1=d1, buf1=b1, src1=a1, imm=imm, dst=y,
                        rows=rows, cols=cols)


def _rows_cols(t: TensorType) -> tuple[int, int]:
    shape = t.get_shape()
    return prod(shape[:-1]), shape[-1]


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
        program.reserved = set(in_names) | set(out_names)
        ret = func.body.block.last_op
        assert isinstance(ret, ReturnOp)
        layers, plan = analyze(func, store)
        written: dict[SSAValue, str] = {}  # outputs a layer writes into their own segment
        copies: list[tuple[SSAValue, str]] = []  # inputs, constants, views, repeats: copied at the end
        for v, name in zip(ret.operands, out_names):
            if v in plan.views and plan.views[v].root is v and v not in func.args and v not in written:
                written[v] = name
            else:
                copies.append((v, name))
        lowering = _Lowering(store, program, written, plan, target)
        for arg, name in zip(func.args, in_names):
            lowering.activation(arg, name, "input")
        for layer in layers:
            _check_support(layer, target)
        lowering.lower_all(layers)
        if copies:
            from spaq.passes.sparrow_moves import copy_out

            for v, name in copies:
                copy_out(lowering, v, name, target.capacity(Buffer.ACT))
        program.layer = ""
        program.emit("halt")
        body: list[Operation] = [*program.segments, *program.instructions, ReturnOp()]
        new = FuncOp("main", ([], []), Region(Block(body)))
        func.detach()
        func.erase()
        op.body.block.add_op(new)


def _check_support(layer: Layer, target) -> None:
    if layer.kind in ("conv", "gemm", "matmul"):
        if layer.kind == "matmul":
            problem = check_target(gemm_weights(TensorType(f32, [1])), layer.adtype, target)
        else:
            problem = check_target(layer.gemm_weights, layer.adtype, target)  # the one decision of the mode
        if problem:
            raise SpaqError(f"layer '{layer.name}': {problem}")
