"""What Sparrow executes as one unit: the layers of a compressed graph.

`find_layers(func, store)` groups the live ops of @main into layers, each lowered as one
block of instructions with its tensors in DRAM between layers:

- `conv` / `gemm`: onnx.Conv / onnx.Gemm (fp32) or quant.conv / quant.gemm (int8), with the
  epilogue ops that follow (quant.requantize or quant.dequantize, then a Relu) fused. A
  quant.gemm on per-token activations also takes in the quant.quantize_dynamic of its input
  (VQUANT), the dequantization by the run-time row scales and the float bias Add after it;
- `matmul`: onnx.MatMul between two activations (attention's Q·Kᵀ and P·V), batched: one
  GEMM per batch element, the right operand loaded into WGT transposed by DMA strides;
- `gather`: onnx.Gather of rows of a constant table by run-time indices (embeddings): GATHER;
- `vector`: a region of elementwise ops, LayerNormalization and Softmax (last axis) that
  share one result shape, computed on the vector unit with the intermediates in the
  scratchpad (`Region`); a lone Softmax is the `softmax` layer (one SOFTMAX instruction);
- `quantize` (of an activation), `maxpool`;
- `view`: Reshape, Flatten, Squeeze, Unsqueeze, Transpose, Expand, Identity, and Gather /
  GatherND / Slice with constant indices: they move no data — the result is the input's
  DRAM bytes seen through other strides (`View`) — unless those strides cannot describe it
  (a Reshape of a transposed tensor), in which case the layer copies (`Layer.copy`).

Ops whose results nothing uses are dead and left out. tile-layers, allocate-scratchpad and
lower-to-sparrow all read this one analysis; the decisions they make are written on the
layer's head op (`sparrow.tiles`, `sparrow.sram`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

import numpy as np
from xdsl.dialects.builtin import DictionaryAttr, Float64Type, IntegerAttr, IntegerType, Signedness, TensorType, i64
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Attribute, BlockArgument, Operation, SSAValue

from spaq.backends.sparrow.isa import Bcast, BinaryOp, Buffer, DType, EpilogueMode, UnaryOp
from spaq.compiler.errors import SpaqError
from spaq.compiler.types import isa_dtype
from spaq.dialects.onnx import InitializerOp, NoValueOp, OnnxOp
from spaq.dialects.sparse import NMAttr, encoding_of
from spaq.passes.compression import is_constant, layer_name

TILES_KEY = "sparrow.tiles"
SRAM_KEY = "sparrow.sram"
ALIGN = 64
MAX_DIM = (1 << 16) - 1  # rows / cols / m / k / n fields are 16 bits


# ---------------------------------------------------------------------------------- types

def dram_dtype(t: Attribute) -> DType:
    """The Sparrow element type a tensor of element type `t` has in DRAM: its storage type;
    bool as u8 (0 / 1); int64 (index inputs such as token ids) as i32, uint64 as u32 and
    float64 as f32 — the runtime narrows such inputs when it writes them into the image (the
    integers must fit; doubles round to nearest float32)."""
    if isinstance(t, IntegerType):
        if t.width.data == 1:
            return DType.U8
        if t.width.data == 64:
            return DType.U32 if t.signedness.data == Signedness.UNSIGNED else DType.I32
    if isinstance(t, Float64Type):
        return DType.F32
    return isa_dtype(t)


def shape_of(value: SSAValue) -> tuple[int, ...]:
    t = value.type
    assert isinstance(t, TensorType)
    return tuple(t.get_shape())


def element_type(value: SSAValue) -> Attribute:
    t = value.type
    assert isinstance(t, TensorType)
    return t.element_type


# ---------------------------------------------------------------------------------- layers

@dataclass
class Layer:
    kind: str
    name: str
    head: Operation
    input: SSAValue
    output: SSAValue
    ops: list[Operation] = field(default_factory=list)
    weight: SSAValue | None = None
    bias: SSAValue | None = None
    epilogue: Operation | None = None  # quant.requantize / quant.dequantize
    relu: bool = False
    dynamic: Operation | None = None  # quant.quantize_dynamic of a per-token gemm's input
    bias_add: Operation | None = None  # onnx.Add of the float bias after a per-token dequantize
    region: Region | None = None  # vector layers
    copy: bool = False  # view layers whose result needs its own bytes
    siblings: list[Layer] = field(default_factory=list)  # per-token gemms sharing this one's VQUANT
    tail: Layer | None = None  # a vector layer computed on this layer's result in the scratchpad
    tail_input: SSAValue | None = None  # the value of the tail's region that is this layer's result
    tail_candidate: Layer | None = None  # could be fused (tile-layers decides: `tail = 1` in the tiles)

    @property
    def outputs(self) -> list[SSAValue]:
        """Every result the layer writes to DRAM."""
        if self.region is not None:
            return list(self.region.outputs)
        if self.kind == "move":
            return list(self.head.results)
        if self.kind == "rowwise":
            return [r for r in self.head.results if r.uses]
        return [self.output] + [s.output for s in self.siblings]

    # ---- types and geometry
    @property
    def in_type(self) -> TensorType:
        return self.input.type  # type: ignore[return-value]

    @property
    def out_type(self) -> TensorType:
        return self.output.type  # type: ignore[return-value]

    @property
    def adtype(self) -> DType:
        """The element type of the layer's input (for a GEMM: of the activation operand it
        multiplies — the quantized one for a per-token layer)."""
        if self.kind in ("conv", "gemm"):
            return isa_dtype(self.head.operands[0].type.element_type)
        return dram_dtype(self.in_type.element_type)

    @property
    def wdtype(self) -> DType:
        """The stored weight element type (`gemm_modes`: u1 codes for binary weights,
        indices for codebook weights)."""
        assert self.weight is not None
        return self.gemm_weights.wdtype

    @property
    def gemm_weights(self):
        """How the weight is stored and multiplied (`gemm_modes.gemm_weights`)."""
        from spaq.passes.gemm_modes import gemm_weights

        return gemm_weights(self.weight.type)

    @property
    def odtype(self) -> DType:
        return dram_dtype(self.out_type.element_type)

    @property
    def mode(self) -> EpilogueMode:
        if self.epilogue is None:
            return EpilogueMode.FLOAT
        return EpilogueMode.REQUANT if self.epilogue.name == "quant.requantize" else EpilogueMode.DEQUANT

    @property
    def nm(self) -> tuple[int, int] | None:
        enc = encoding_of(self.weight.type) if self.weight is not None else None
        return (enc.n, enc.m) if isinstance(enc, NMAttr) else None

    @property
    def conv(self) -> dict[str, int]:
        """Conv geometry: c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, oh, ow."""
        from spaq.compiler.evaluator import conv_attributes

        _, c, h, w = image_shape(self.in_type.get_shape())
        _, _, kh, kw = image_shape(self.weight.type.get_shape())
        a = conv_attributes(self.head, kh, kw)
        _, _, oh, ow = image_shape(self.out_type.get_shape())
        pt, pl, pb, pr = a["pads"]
        (sh, sw), (dh, dw) = a["strides"], a["dilations"]
        return dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, pt=pt, pl=pl, pb=pb, pr=pr, dh=dh, dw=dw, oh=oh, ow=ow,
                    g=a["group"])

    @property
    def pool(self) -> dict[str, int]:
        """Pooling geometry (maxpool, avgpool; a global pool is a window of the whole image):
        c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, oh, ow."""
        from spaq.compiler.evaluator import conv_attributes, kernel_2d

        _, c, h, w = image_shape(self.in_type.get_shape())
        _, _, oh, ow = image_shape(self.out_type.get_shape())
        if self.kind == "globalpool":
            return dict(c=c, h=h, w=w, kh=h, kw=w, sh=1, sw=1, pt=0, pl=0, pb=0, pr=0, dh=1, dw=1, oh=1, ow=1)
        kh, kw = kernel_2d(self.head)
        a = conv_attributes(self.head, kh, kw)
        pt, pl, pb, pr = a["pads"]
        (sh, sw), (dh, dw) = a["strides"], a["dilations"]
        return dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, pt=pt, pl=pl, pb=pb, pr=pr, dh=dh, dw=dw, oh=oh, ow=ow)

    @property
    def mkn(self) -> tuple[int, int, int]:
        """GEMM sizes per image: M rows (pixels or batch), K reduction, N output channels.
        For a matmul layer: per batch element."""
        if self.kind == "matmul":
            (m, k), n = shape_of(self.input)[-2:], shape_of(self.weight)[-1]
            return m, k, n
        n_out = self.weight.type.get_shape()[0]
        k = prod(self.weight.type.get_shape()[1:])
        if self.kind == "conv":
            g = self.conv
            return g["oh"] * g["ow"], k, n_out
        return self.in_type.get_shape()[0], k, n_out

    @property
    def batch(self) -> int:
        """Images (conv, maxpool) or batch elements (matmul) the layer loops over."""
        if self.kind == "matmul":
            return prod(shape_of(self.output)[:-2])
        return self.in_type.get_shape()[0] if self.kind in ("conv",) + POOLS else 1

    @property
    def gather_rows(self) -> tuple[int, int]:
        """A gather layer's (indices, elements per table row: after the gathered axis)."""
        axis = self.head.attr("axis", 0) % len(shape_of(self.weight))
        return prod(shape_of(self.input)), prod(shape_of(self.weight)[axis + 1:])

    def tiles(self) -> dict[str, int]:
        return _int_dict(self.head.attributes.get(TILES_KEY), self.name, TILES_KEY)

    def optional_tiles(self) -> dict[str, int]:
        """`sparrow.tiles` where tile-layers wrote it (pooling layers: only when needed), else {}."""
        return self.tiles() if TILES_KEY in self.head.attributes else {}

    def sram(self) -> dict[str, int]:
        return _int_dict(self.head.attributes.get(SRAM_KEY), self.name, SRAM_KEY)


def image_shape(shape) -> tuple[int, ...]:
    """An NCHW shape; a 1-D image [N, C, W] is one row, [N, C, 1, W]."""
    shape = tuple(shape)
    return shape[:2] + (1,) + shape[2:] if len(shape) == 3 else shape


def _int_dict(attr: Attribute | None, name: str, key: str) -> dict[str, int]:
    if not isinstance(attr, DictionaryAttr):
        raise SpaqError(f"layer '{name}' has no {key} (run the pass that writes it first)")
    return {k: v.value.data for k, v in attr.data.items()}


def int_dict_attr(values: dict[str, int]) -> DictionaryAttr:
    return DictionaryAttr({k: IntegerAttr(v, i64) for k, v in values.items()})


def _single_user(value: SSAValue) -> Operation | None:
    return value.get_user_of_unique_use() if value.has_one_use() else None


def _is(op, *names: str) -> bool:
    return isinstance(op, Operation) and (op.name in names or (isinstance(op, OnnxOp) and op.op_type in names))


COMPUTE = ("onnx.Conv", "onnx.Gemm", "quant.conv", "quant.gemm")
POOLS = ("maxpool", "avgpool", "globalpool")
"""Pooling layers: tiled by channels (`c`, which pool independently) only when the whole
image does not fit; without `sparrow.tiles` they take every channel at once."""
TILED = ("conv", "gemm", "matmul", "gather", "vector", "view", "move", "resample", "gathernd")
"""Layer kinds tile-layers chooses tiles for (views only when they copy)."""


def live_ops(func: FuncOp) -> set[Operation]:
    """The ops whose results reach the graph's outputs."""
    block = func.body.block
    live: set[Operation] = set()
    ops = list(block.ops)
    for op in reversed(ops):
        if isinstance(op, ReturnOp) or any(u.operation in live for r in op.results for u in r.uses):
            live.add(op)
    return live


def find_layers(func: FuncOp, store=None) -> list[Layer]:
    """The layers of @main in program order. `store` (the WeightStore) is needed to see
    through views with constant indices (Gather, GatherND, Slice) and to read constants
    that vector regions take as immediates."""
    return analyze(func, store)[0]


def analyze(func: FuncOp, store=None) -> tuple[list[Layer], DramPlan]:
    """The layers and the DRAM view of every activation (`DramPlan`)."""
    layers: list[Layer] = []
    fused: set[Operation] = set()
    live = live_ops(func)
    order = {op: i for i, op in enumerate(func.body.block.ops)}
    for op in func.body.block.ops:
        if op in fused or op not in live or isinstance(op, (InitializerOp, NoValueOp, ReturnOp)):
            continue
        if op.results and all(is_constant(r) for r in op.results):
            continue  # weights: sparse.pack / quant.quantize of constants
        layer = _layer_at(op, fused, order, live, store)
        if layer is not None:
            layers.append(layer)
    plan = DramPlan(func, layers, store, live)  # the plan also marks the views that copy
    return _fuse_tails(_merge_siblings(layers, plan), plan), plan


def readers(layers: list[Layer], plan: DramPlan) -> dict[SSAValue, set[int]]:
    """Which layers (by index) read each root's bytes."""
    out: dict[SSAValue, set[int]] = {}
    for i, layer in enumerate(layers):
        if layer.kind == "view" and not layer.copy:
            continue
        produced = {r for op in layer.ops for r in op.results}
        for op in layer.ops:
            for v in op.operands:
                if v not in produced and v in plan.views:
                    out.setdefault(plan.views[v].root, set()).add(i)
    return out


def _tail_input(p: Layer, v: Layer, plan: DramPlan, read_by: dict[SSAValue, set[int]], iv: int) -> SSAValue | None:
    """The value of vector layer `v`'s region that is exactly matrix layer `p`'s result, if `v`
    can run on `p`'s result tile in the scratchpad: `p` writes its whole result as the
    region's [rows, cols] tiles (a gemm: [M, N]; a matmul: the batch's [M, N] stacked), and
    nothing else reads it."""
    if p.kind not in ("gemm", "matmul") or p.siblings or v.kind != "vector" or p.tail is not None:
        return None
    root = p.output
    if plan.views.get(root) != View.whole(root) or read_by.get(root) != {iv}:
        return None
    if any(isinstance(u.operation, ReturnOp) for u in root.uses):
        return None  # a graph output must reach DRAM
    if dram_dtype(element_type(root)) != DType.F32:
        return None
    region = v.region
    found = [u for u in region.inputs if u in plan.views and plan.views[u].root is root]
    if len(found) != 1:
        return None
    u = found[0]
    view = plan.views[u]
    rows = prod(shape_of(root)[:-1])
    if not view.contiguous or view.offset or natural_form(u, region.shape) is not Bcast.TILE:
        return None
    if (region.rows, region.cols) != (rows, shape_of(root)[-1]):
        return None
    if any(vector_op(op) == "alias" and region_operands(op)[0] is u for op in region.ops):
        return None
    return u


def _fuse_tails(layers: list[Layer], plan: DramPlan) -> list[Layer]:
    """Vector layers right after the matrix layer whose result they take become its tail
    where tile-layers decided so (`tail = 1` in the matrix layer's tiles); elsewhere the pair
    is only marked as a candidate."""
    read_by = readers(layers, plan)
    out: list[Layer] = []
    prev: Layer | None = None
    for i, layer in enumerate(layers):
        if layer.kind == "view" and not layer.copy:
            out.append(layer)
            continue
        u = _tail_input(prev, layer, plan, read_by, i) if prev is not None else None
        if u is not None:
            tiles = prev.head.attributes.get(TILES_KEY)
            if isinstance(tiles, DictionaryAttr) and "tail" in tiles.data and tiles.data["tail"].value.data:
                prev.tail, prev.tail_input = layer, u
                prev.ops.extend(layer.ops)
                prev = None
                continue
            prev.tail_candidate = layer
        out.append(layer)
        prev = layer
    return out


def _merge_siblings(layers: list[Layer], plan: DramPlan) -> list[Layer]:
    """Per-token gemms that quantize the same DRAM tensor (attention's Q, K and V
    projections of one LayerNorm output) become one layer: one LOAD and one VQUANT, then each
    projection's GEMMs. Only neighbours (views between them move no data) with the same
    weight shape merge, so the merged layer's tiles and buffers are the first one's."""
    out: list[Layer] = []
    head: Layer | None = None
    for layer in layers:
        if layer.kind == "view" and not layer.copy:
            out.append(layer)
            continue
        if (head is not None and layer.kind == "gemm" and layer.dynamic is not None
                and plan.views.get(layer.input) == plan.views.get(head.input)
                and shape_of(layer.weight) == shape_of(head.weight) and layer.nm == head.nm
                and layer.adtype == head.adtype and layer.wdtype == head.wdtype):
            head.siblings.append(layer)
            head.ops.extend(layer.ops)
            continue
        head = layer if layer.kind == "gemm" and layer.dynamic is not None else None
        out.append(layer)
    return out


def _spatial_reduction(op: Operation, store) -> bool:
    """ReduceMean / ReduceMax over both spatial axes of an NCHW image, keeping them (what the
    dynamo exporter writes for adaptive_avg_pool2d(x, 1)): a global pool."""
    if not _is(op, "ReduceMean", "ReduceMax") or len(shape_of(op.operands[0])) != 4 or not op.attr("keepdims", 1):
        return False
    axes = op.attr("axes")
    if axes is None and len(op.operands) > 1 and not isinstance(op.operands[1].owner, NoValueOp):
        if store is None or not is_constant(op.operands[1]):
            return False
        axes = constant_value(store, op.operands[1]).reshape(-1).tolist()
    return axes is not None and sorted(int(a) % 4 for a in axes) == [2, 3]


def _layer_at(op: Operation, fused: set[Operation], order: dict[Operation, int],
              live: set[Operation], store=None) -> Layer | None:
    name = layer_name(op)
    if op.name in COMPUTE:
        return _compute_layer(op, name, fused)
    if op.name == "quant.quantize_dynamic":
        user = _single_user(op.results[0])
        if _is(user, "quant.gemm") and user.operands[0] is op.results[0]:
            fused.add(op)  # lowered with its gemm (VQUANT)
            return None
        raise SpaqError(f"layer '{name}': quant.quantize_dynamic runs on Sparrow only as the input of one quant.gemm")
    if op.name == "quant.quantize":
        return Layer("quantize", name, op, op.operands[0], op.results[0], [op])
    if _is(op, "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool") or _spatial_reduction(op, store):
        if len(op.results) != 1 or len(shape_of(op.operands[0])) not in (3, 4):
            raise SpaqError(f"layer '{name}': {op.name} runs on Sparrow over 1-D and 2-D images with one result")
        kind = {"MaxPool": "maxpool", "AveragePool": "avgpool"}.get(op.op_type, "globalpool")
        return Layer(kind, name, op, op.operands[0], op.results[0], [op])
    if is_view_op(op):
        return Layer("view", name, op, op.operands[0], op.results[0], [op])
    from spaq.passes.sparrow_moves import is_move_op, is_resample_op

    if is_move_op(op):  # Concat, Split, Pad, Tile, ...: a selection of elements (sparrow_moves.py)
        return Layer("move", name, op, op.operands[0], op.results[0], [op])
    if is_resample_op(op):  # linear / cubic Resize: weighted sums of gathered elements
        return Layer("resample", name, op, op.operands[0], op.results[0], [op])
    if _is(op, "GatherND") and not is_constant(op.operands[1]):  # run-time index tuples: rows by GATHER
        return Layer("gathernd", name, op, op.operands[1], op.results[0], [op], weight=op.operands[0])
    if _is(op, "Gather") and not is_constant(op.operands[1]):  # run-time indices, any table, any axis
        return Layer("gather", name, op, op.operands[1], op.results[0], [op], weight=op.operands[0])
    if _is(op, "MatMul") and not is_constant(op.operands[0]) and not is_constant(op.operands[1]):
        a, b = op.operands
        if len(shape_of(a)) < 2 or len(shape_of(b)) < 2:
            raise SpaqError(f"layer '{name}': MatMul runs on Sparrow with operands of rank 2 or more")
        if element_type(a) != element_type(op.results[0]) or dram_dtype(element_type(a)) != DType.F32:
            raise SpaqError(f"layer '{name}': MatMul between activations runs on Sparrow in fp32")
        return Layer("matmul", name, op, a, op.results[0], [op], weight=b)
    from spaq.passes.sparrow_rowwise import is_rowwise

    if is_rowwise(op) and (vector_op(op) is None or (_is(op, "Softmax") and _single_op_region(op))):
        return Layer("rowwise", name, op, op.operands[0], op.results[0], [op])
    if vector_op(op) is not None:
        region = grow_region(op, fused, order, live)
        if len(region.ops) == 1 and _is(op, "Softmax") and not is_constant(op.operands[0]):
            return Layer("softmax", name, op, op.operands[0], op.results[0], [op])  # one SOFTMAX
        return Layer("vector", name, op, region.inputs[0] if region.inputs else op.operands[0],
                     region.outputs[0], list(region.ops), region=region)
    if _is(op, "Softmax"):
        raise SpaqError(f"layer '{name}': Softmax runs on the last axis only")
    raise SpaqError(f"'{op.name}'{'' if name == op.name else f' (layer {name!r})'} cannot run on Sparrow yet")


def _single_op_region(op: Operation) -> bool:
    """A Softmax not on the last axis (the vector region's SOFTMAX takes the last one)."""
    rank = len(shape_of(op.operands[0]))
    return op.attr("axis", -1) % rank != rank - 1


def _compute_layer(op: Operation, name: str, fused: set[Operation]) -> Layer:
    kind = "conv" if op.name.endswith("onv") else "gemm"
    layer = Layer(kind, name, op, op.operands[0], op.results[0], [op], weight=op.operands[1])
    if len(op.operands) > 2 and not isinstance(op.operands[2].owner, NoValueOp):
        layer.bias = op.operands[2]
    if not is_constant(op.operands[1]):
        raise SpaqError(f"layer '{name}': the weight must be a constant to run on Sparrow")
    x_owner = op.operands[0].owner
    if _is(x_owner, "quant.quantize_dynamic") and x_owner in fused:
        layer.dynamic = x_owner
        layer.input = x_owner.operands[0]
        layer.ops.insert(0, x_owner)
    out = op.results[0]
    nxt = _single_user(out)
    if op.name.startswith("quant."):
        if not _is(nxt, "quant.requantize", "quant.dequantize"):
            raise SpaqError(f"layer '{name}': the i32 accumulator must feed one requantize or dequantize")
        if layer.dynamic is not None and (len(nxt.operands) < 2 or nxt.operands[1] is not layer.dynamic.results[1]):
            raise SpaqError(f"layer '{name}': per-token activations must be dequantized with their own row scales")
        if layer.dynamic is None and len(nxt.operands) > 1:
            raise SpaqError(f"layer '{name}': dequantization by run-time scales needs the layer's quantize_dynamic")
        layer.epilogue = nxt
        out = nxt.results[0]
        fused.add(nxt)
        layer.ops.append(nxt)
        nxt = _single_user(out)
        if layer.dynamic is not None and _is(nxt, "Add") and _row_bias(nxt, out) is not None:
            layer.bias_add = nxt  # the float bias, added after the token scales
            layer.bias = _row_bias(nxt, out)
            out = nxt.results[0]
            fused.add(nxt)
            layer.ops.append(nxt)
            nxt = _single_user(out)
    if _is(nxt, "Relu"):
        layer.relu = True
        out = nxt.results[0]
        fused.add(nxt)
        layer.ops.append(nxt)
    if op.name == "onnx.Gemm" and (op.attr("transB", 0) != 1 or op.attr("transA", 0) or
                                   op.attr("alpha", 1.0) != 1.0 or op.attr("beta", 1.0) != 1.0):
        raise SpaqError(f"layer '{name}': Gemm must be in Y = X·Wᵀ + b form (run onnx-canonicalize)")
    layer.output = out
    return layer


def _row_bias(add: Operation, y: SSAValue) -> SSAValue | None:
    """The constant [N] bias of `Add(y, b)` (either order) whose result has y's shape."""
    other = add.operands[1] if add.operands[0] is y else add.operands[0]
    n = shape_of(y)[-1]
    if other is y or not is_constant(other) or shape_of(add.results[0]) != shape_of(y):
        return None
    s = shape_of(other)
    if prod(s) != n or (s and s[-1] != n) or element_type(other) != element_type(y):
        return None
    return other


# ---------------------------------------------------------------------------- vector regions

VBIN = {
    "Add": BinaryOp.ADD, "Sub": BinaryOp.SUB, "Mul": BinaryOp.MUL, "Div": BinaryOp.DIV,
    "Max": BinaryOp.MAX, "Min": BinaryOp.MIN, "Equal": BinaryOp.EQ, "Less": BinaryOp.LT,
    "LessOrEqual": BinaryOp.LE, "Greater": BinaryOp.GT, "GreaterOrEqual": BinaryOp.GE,
    "And": BinaryOp.MIN, "Or": BinaryOp.MAX, "Xor": BinaryOp.NE,  # on bools (0 / 1)
}
VUN = {
    "Neg": UnaryOp.NEG, "Abs": UnaryOp.ABS, "Exp": UnaryOp.EXP, "Sqrt": UnaryOp.SQRT,
    "Reciprocal": UnaryOp.RCP, "Erf": UnaryOp.ERF, "Tanh": UnaryOp.TANH, "Gelu": UnaryOp.GELU,
}
ARITHMETIC = ("Add", "Sub", "Mul", "Div", "Max", "Min")
SWAPPED = {BinaryOp.ADD: BinaryOp.ADD, BinaryOp.MUL: BinaryOp.MUL, BinaryOp.MAX: BinaryOp.MAX,
           BinaryOp.MIN: BinaryOp.MIN, BinaryOp.EQ: BinaryOp.EQ, BinaryOp.NE: BinaryOp.NE,
           BinaryOp.LT: BinaryOp.GT, BinaryOp.GT: BinaryOp.LT, BinaryOp.LE: BinaryOp.GE, BinaryOp.GE: BinaryOp.LE}
"""b op a as a' op' b' for the operations that have a mirror (a VBIN's first operand is a tile)."""

_EXACT_INTS = (DType.U8, DType.I8, DType.U4, DType.I4, DType.U2, DType.I2, DType.U1)


def _is_float(value: SSAValue) -> bool:
    t = element_type(value)
    return dram_dtype(t).is_float if not isinstance(t, IntegerType) else False


def _is_bool(value: SSAValue) -> bool:
    t = element_type(value)
    return isinstance(t, IntegerType) and t.width.data == 1


def vector_op(op: Operation) -> str | None:
    """How the vector unit computes `op` ('vbin', 'vun', 'vsel', 'alias', 'layernorm',
    'softmax', 'cast', or 'seq': a short program of vector instructions, vector_expand.py),
    or None if it does not."""
    kind = _one_instruction(op)
    if kind is None and isinstance(op, OnnxOp) and len(op.results) == 1:
        from spaq.passes.vector_expand import expansion

        if expansion(op) is not None:
            return "seq"
    return kind


def _one_instruction(op: Operation) -> str | None:
    """The ops one vector instruction (or LayerNorm's idiom) computes. Float arithmetic is
    float32 IEEE, exactly what the evaluator's numpy float32 computes; integers only where
    float32 is exact."""
    if not isinstance(op, OnnxOp) or len(op.results) != 1:
        return None
    t = op.op_type
    try:
        out = dram_dtype(element_type(op.results[0]))
        ins = [dram_dtype(element_type(v)) for v in op.operands if not isinstance(v.owner, NoValueOp)]
    except (ValueError, AssertionError):
        return None
    if t in VBIN:
        if len(op.operands) != 2:
            return None
        if t in ARITHMETIC:
            return "vbin" if out == DType.F32 and all(d == DType.F32 for d in ins) else None
        if t in ("And", "Or", "Xor"):
            return "vbin" if all(_is_bool(v) for v in op.operands) else None
        ok = all(d.is_float or d in _EXACT_INTS for d in ins)  # comparisons: exact in float32
        return "vbin" if ok and _is_bool(op.results[0]) else None
    if t == "Not":
        return "vbin" if _is_bool(op.operands[0]) else None
    if t in VUN:
        if t == "Gelu" and op.attr("approximate", "none") != "none":
            return None
        return "vun" if out == DType.F32 and ins == [DType.F32] else None
    if t == "Relu":
        return "vbin" if out == DType.F32 and ins == [DType.F32] else None
    if t == "Where":
        return "vsel" if out == DType.F32 and ins[1:] == [DType.F32, DType.F32] else None
    if t == "Expand":
        return "alias"
    if t == "Cast":
        if element_type(op.operands[0]) == element_type(op.results[0]):
            return "alias"
        if _is_bool(op.results[0]):
            return "cast"  # x != 0
        if out == DType.F32 and (ins[0].is_float or not _is_float(op.operands[0])):
            return "cast"  # a float32 copy: integers round to nearest as numpy's astype does
        if out.is_float and ins[0] == DType.F32 and op.attr("saturate", 1):
            return "cast"  # float32 rounded to f16 / bf16 / fp8 (saturating), as core.round_to does
        return None
    if t == "LayerNormalization":
        rank = len(shape_of(op.operands[0]))
        ok = op.attr("axis", -1) % rank == rank - 1 and out == DType.F32 and all(d == DType.F32 for d in ins)
        return "layernorm" if ok and len(op.results) == 1 else None
    if t == "Softmax":
        rank = len(shape_of(op.operands[0]))
        return "softmax" if op.attr("axis", -1) % rank == rank - 1 and out == ins[0] == DType.F32 else None
    return None


def region_operands(op: Operation) -> list[SSAValue]:
    """The operands a region op computes with (Expand's shape and LayerNormalization's
    absent bias are not data)."""
    if _is(op, "Expand"):
        return [op.operands[0]]
    return [v for v in op.operands if not isinstance(v.owner, NoValueOp)]


@dataclass
class Region:
    """Vector ops with one result shape, computed as [rows, cols] tiles (rows = the product
    of all dimensions but the last, cols = the last) in the scratchpad.

    `inputs` are the operands defined outside (activations and constants), each read in a
    `form`: a whole tile (TILE; a broadcast input is expanded by the DMA's zero strides), a
    row vector (ROW), a column vector (COL), one value (SCALAR) or an immediate (IMM: a
    constant with one value). `outputs` are the values used after the region (stored)."""

    ops: list[Operation]
    shape: tuple[int, ...]
    inputs: list[SSAValue] = field(default_factory=list)
    outputs: list[SSAValue] = field(default_factory=list)
    shapes: dict[SSAValue, tuple[int, ...]] = field(default_factory=dict)  # inputs read reshaped (per-axis scales)

    @property
    def rows(self) -> int:
        return prod(self.shape[:-1]) if self.shape else 1

    @property
    def cols(self) -> int:
        return self.shape[-1] if self.shape else 1


def grow_region(start: Operation, fused: set[Operation], order: dict[Operation, int],
                live: set[Operation]) -> Region:
    """The region that starts at `start`: every later op of the same result shape that uses
    a value of the region and whose other operands were computed before `start` (so the
    region can run where it starts)."""
    shape = shape_of(start.results[0])
    ops = [start]
    produced = {start.results[0]}
    begin = order[start]
    grew = True
    while grew:
        grew = False
        users = sorted({u.operation for v in produced for u in v.uses}, key=lambda o: order.get(o, 1 << 60))
        for user in users:
            if user in fused or user in ops or user not in live or user not in order:
                continue
            if vector_op(user) is None or shape_of(user.results[0]) != shape:
                continue
            outside = [v for v in region_operands(user) if v not in produced]
            if all(is_constant(v) or isinstance(v, BlockArgument) or order[v.owner] < begin for v in outside):
                ops.append(user)
                produced.add(user.results[0])
                grew = True
    ops.sort(key=lambda o: order[o])
    fused.update(ops)
    region = Region(ops, shape)
    for op in ops:
        for v in region_operands(op):
            if v not in produced and v not in region.inputs:
                region.inputs.append(v)
    members = set(ops)
    for op in ops:
        r = op.results[0]
        if any(u.operation not in members for u in r.uses):
            region.outputs.append(r)
    return region


# ------------------------------------------------------------- the vector region's schedule

@dataclass
class Operand:
    """How a vector instruction reads a value: `form` (a Bcast) and where — the region
    input or value it is (`value`), or the float32 immediate `imm`."""

    form: Bcast
    value: SSAValue | None = None
    imm: float = 0.0


@dataclass
class Step:
    """One region op as the vector unit computes it: `kind` (vector_op), the ONNX op type,
    its result and operands in the order the instruction takes them."""

    op: Operation
    kind: str
    result: SSAValue
    operands: list[Operand]
    binary: BinaryOp | None = None
    unary: UnaryOp | None = None
    expansion: object | None = None  # kind 'seq': its vector_expand.Expansion


@dataclass
class RegionPlan:
    """The region's instructions and scratchpad slots, decided once from the IR alone (so
    allocate-scratchpad and lower-to-sparrow agree):

    - `steps`: the ops in order with their operands;
    - `forms`: how each input is read;
    - `slot`: the tile slot ("t0", "t1", ...) of every tile value (TILE inputs, results;
      an alias shares its source's slot), reused once a value is dead;
    - `vectors`: the slot of each ROW / COL / SCALAR input ("v0", ... in ACT; constants
      read as rows go to PARAM);
    - `stats`: LayerNorm's [rows, 1] mean and variance slots."""

    region: Region
    steps: list[Step]
    forms: dict[SSAValue, Bcast]
    imms: dict[SSAValue, float]
    slot: dict[SSAValue, str]
    tile_slots: int
    vectors: dict[SSAValue, str]
    stats: bool
    temps: int = 0  # scratch tiles "s0", "s1", ... for the 'seq' steps


def constant_value(store, value: SSAValue) -> np.ndarray:
    """The array of a constant chain (initializer -> sparse.pack -> quant.quantize)."""
    from spaq.compiler.evaluator import Evaluation

    op = value.owner
    args = [constant_value(store, v) for v in op.operands]
    return Evaluation(store).run_op(op, args)[value.index]


def uniform_value(store, value: SSAValue) -> float | None:
    """The one value (as float32) of a constant whose elements are all equal, else None."""
    if store is None or not is_constant(value):
        return None
    a = np.asarray(constant_value(store, value))
    if a.size == 0:
        return None
    first = a.reshape(-1)[0]
    if not ((a == first).all() or (np.isnan(first) and np.isnan(a).all())):
        return None
    f = np.float32(first)
    if a.dtype.kind in "iub" and float(f) != float(first):
        return None  # not exact in float32
    return float(f)


def natural_form(value: SSAValue, shape: tuple[int, ...], as_shape: tuple[int, ...] | None = None) -> Bcast:
    """How a `value` (seen with shape `as_shape`, by default its own) broadcast to the region
    `shape` can be read without expanding it."""
    s = shape_of(value) if as_shape is None else as_shape
    s = (1,) * (len(shape) - len(s)) + s
    if s == shape:
        return Bcast.TILE
    rows, last = s[:-1], s[-1] if s else 1
    if all(d == 1 for d in s):
        return Bcast.SCALAR
    if all(d == 1 for d in rows) and last == (shape[-1] if shape else 1):
        return Bcast.ROW
    if last == 1 and rows == shape[:-1]:
        return Bcast.COL
    return Bcast.TILE


def plan_region(region: Region, store=None) -> RegionPlan:
    shape = region.shape
    forms: dict[SSAValue, Bcast] = {}
    imms: dict[SSAValue, float] = {}
    for op in region.ops:  # per-axis operands of 'seq' steps are read reshaped onto their axis
        if vector_op(op) == "seq":
            from spaq.passes.vector_expand import expansion

            region.shapes.update(expansion(op).reshape)
    for v in region.inputs:
        forms[v] = natural_form(v, shape, region.shapes.get(v))
        u = uniform_value(store, v)
        if u is not None:  # one value: an immediate where the instruction takes one
            imms[v] = u
            forms[v] = Bcast.SCALAR

    internal = {op.results[0] for op in region.ops}

    def is_tile(v: SSAValue) -> bool:
        return v in internal or forms.get(v) is Bcast.TILE

    def need_tile(v: SSAValue) -> None:
        if v not in internal:
            forms[v] = Bcast.TILE

    def any_form(v: SSAValue, imm_ok: bool = True) -> Operand:
        if v in internal:
            return Operand(Bcast.TILE, v)
        if imm_ok and v in imms and forms[v] is not Bcast.TILE:
            return Operand(Bcast.IMM, v, imms[v])
        return Operand(forms[v], v)

    steps: list[Step] = []
    temps = 0  # scratch tiles of 'seq' steps
    for op in region.ops:
        kind = vector_op(op)
        t = op.op_type
        r = op.results[0]
        ops_ = region_operands(op)
        if kind == "vbin":
            if t == "Relu":
                need_tile(ops_[0])
                steps.append(Step(op, kind, r, [Operand(Bcast.TILE, ops_[0]), Operand(Bcast.IMM, None, 0.0)],
                                  binary=BinaryOp.MAX))
                continue
            if t == "Not":
                need_tile(ops_[0])
                steps.append(Step(op, kind, r, [Operand(Bcast.TILE, ops_[0]), Operand(Bcast.IMM, None, 0.0)],
                                  binary=BinaryOp.EQ))
                continue
            a, b = ops_
            bop = VBIN[t]
            if not is_tile(a) and is_tile(b) and bop in SWAPPED:
                a, b, bop = b, a, SWAPPED[bop]
            need_tile(a)
            steps.append(Step(op, kind, r, [Operand(Bcast.TILE, a), any_form(b)], binary=bop))
        elif kind == "vun":
            need_tile(ops_[0])
            steps.append(Step(op, kind, r, [Operand(Bcast.TILE, ops_[0])], unary=VUN[t]))
        elif kind == "cast":
            need_tile(ops_[0])
            if _is_bool(r):
                steps.append(Step(op, "vbin", r, [Operand(Bcast.TILE, ops_[0]), Operand(Bcast.IMM, None, 0.0)],
                                  binary=BinaryOp.NE))
            else:
                steps.append(Step(op, "vun", r, [Operand(Bcast.TILE, ops_[0])], unary=UnaryOp.COPY))
        elif kind == "vsel":
            c, x, y = ops_
            need_tile(x)
            steps.append(Step(op, kind, r, [any_form(c, imm_ok=False), Operand(Bcast.TILE, x), any_form(y)]))
        elif kind == "alias":
            need_tile(ops_[0])
            steps.append(Step(op, kind, r, [Operand(Bcast.TILE, ops_[0])]))
        elif kind == "layernorm":
            x, *params = ops_
            need_tile(x)
            steps.append(Step(op, kind, r, [Operand(Bcast.TILE, x)] + [any_form(p, imm_ok=False) for p in params]))
        elif kind == "softmax":
            need_tile(ops_[0])
            steps.append(Step(op, kind, r, [Operand(Bcast.TILE, ops_[0])]))
        elif kind == "seq":
            from spaq.passes.vector_expand import expansion

            ex = expansion(op)
            for v in ex.tiles:
                need_tile(v)
            used = list(dict.fromkeys(a.value for m in ex.micro for a in m.args if hasattr(a, "value")
                                      and isinstance(a.value, SSAValue)))
            masks = {m.args[0].value for m in ex.micro if m.mnemonic == "vsel" and hasattr(m.args[0], "value")
                     and isinstance(m.args[0].value, SSAValue)}
            steps.append(Step(op, kind, r, [Operand(Bcast.TILE, v) if v in ex.tiles else any_form(v, v not in masks)
                                            for v in used], expansion=ex))
            temps = max(temps, ex.temps)
    # operands decided before a later op forced their input to TILE read it as a tile too
    for st in steps:
        for o in st.operands:
            if o.value is not None and o.value not in internal and forms[o.value] is Bcast.TILE:
                o.form = Bcast.TILE

    # tile slots: TILE inputs are loaded first, each op's result takes a free slot (an operand
    # that dies at the op frees its slot first: the instruction computes in place)
    root: dict[SSAValue, SSAValue] = {}
    for st in steps:
        if st.kind == "alias":
            src = st.operands[0].value
            root[st.result] = root.get(src, src)
    last: dict[SSAValue, int] = {}
    end = len(steps)
    for i, st in enumerate(steps):
        for o in st.operands:
            if o.value is not None:
                last[root.get(o.value, o.value)] = i
    for v in region.outputs:
        last[root.get(v, v)] = end
    slot: dict[SSAValue, str] = {}
    free: list[int] = []
    count = 0

    def take() -> str:
        nonlocal count
        if free:
            free.sort()
            return f"t{free.pop(0)}"
        count += 1
        return f"t{count - 1}"

    for v in region.inputs:
        if forms[v] is Bcast.TILE:
            slot[v] = take()
    for i, st in enumerate(steps):
        if st.kind == "alias":
            slot[st.result] = slot[root[st.result]]
            continue
        dying = {root.get(o.value, o.value) for o in st.operands if o.value is not None}
        for v in dying:
            if last.get(v) == i and v in slot:
                free.append(int(slot[v][1:]))
        slot[st.result] = take()
    vectors: dict[SSAValue, str] = {}
    for v in region.inputs:
        if forms[v] in (Bcast.ROW, Bcast.COL, Bcast.SCALAR) and not all(
                o.form is Bcast.IMM for st in steps for o in st.operands if o.value is v):
            vectors[v] = f"v{len(vectors)}"
    stats = any(st.kind == "layernorm" for st in steps)
    return RegionPlan(region, steps, forms, imms, slot, count, vectors, stats, temps)


def vector_in_param(plan: RegionPlan, v: SSAValue) -> bool:
    """A constant read as a row vector (LayerNorm's γ and β, a bias) lives in PARAM."""
    return plan.forms[v] is Bcast.ROW and is_constant(v)


# ------------------------------------------------------------------------------ DRAM views

VIEW_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Expand")


def is_view_op(op: Operation) -> bool:
    """An op whose result is its (first) input's elements rearranged by constants alone."""
    if not isinstance(op, OnnxOp) or len(op.results) != 1 or not op.operands:
        return False
    if any(not is_constant(v) for v in op.operands[1:] if not isinstance(v.owner, NoValueOp)):
        return False
    if is_constant(op.operands[0]):
        return False
    t = op.op_type
    if t in VIEW_OPS:
        return True
    if t in ("Gather", "GatherND", "Slice"):
        return True
    return t == "Cast" and element_type(op.operands[0]) == element_type(op.results[0])


@dataclass(frozen=True)
class View:
    """Where a tensor's elements are in DRAM: element i (row-major over `shape`) of the value
    is at element offset `offset` + Σ index_k · strides_k of the segment of `root`."""

    root: SSAValue
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]

    @staticmethod
    def whole(root: SSAValue) -> View:
        shape = shape_of(root)
        return View(root, 0, shape, contiguous_strides(shape))

    @property
    def contiguous(self) -> bool:
        return all(n == 1 or s == c for n, s, c in zip(self.shape, self.strides, contiguous_strides(self.shape)))

    def offsets(self) -> np.ndarray:
        out = np.full(self.shape, self.offset, np.int64)
        for k, (n, s) in enumerate(zip(self.shape, self.strides)):
            out += (np.arange(n, dtype=np.int64) * s).reshape([n if j == k else 1 for j in range(len(self.shape))])
        return out

    def broadcast_to(self, shape: tuple[int, ...]) -> View:
        """The view numpy-broadcast to `shape` (zero strides on the new and size-1 dims)."""
        pad = len(shape) - len(self.shape)
        s0 = (1,) * pad + self.shape
        st0 = (0,) * pad + self.strides
        strides = tuple(0 if n == 1 and m != 1 else s for n, m, s in zip(s0, shape, st0))
        return View(self.root, self.offset, tuple(shape), strides)

    def reshaped(self, shape: tuple[int, ...]) -> View | None:
        """The same elements in row-major order as `shape`, if strides can say it."""
        return affine_view(self.root, np.asarray(self.offsets()).reshape(shape))

    def transposed_last2(self) -> View:
        p = list(range(len(self.shape)))
        p[-2], p[-1] = p[-1], p[-2]
        return View(self.root, self.offset, tuple(self.shape[i] for i in p), tuple(self.strides[i] for i in p))


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    out, s = [], 1
    for n in reversed(shape):
        out.append(s)
        s *= n
    return tuple(reversed(out))


def affine_view(root: SSAValue, offsets: np.ndarray) -> View | None:
    """The view whose element offsets are `offsets` (an array of the view's shape), or None
    if they are not an affine function of the index with non-negative strides."""
    shape = offsets.shape
    if offsets.size == 0:
        return View(root, 0, shape, contiguous_strides(shape))
    o0 = int(offsets.reshape(-1)[0])
    strides = []
    for k, n in enumerate(shape):
        if n == 1:
            strides.append(0)
            continue
        idx = [0] * len(shape)
        idx[k] = 1
        strides.append(int(offsets[tuple(idx)]) - o0)
    if any(s < 0 for s in strides):
        return None
    v = View(root, o0, shape, tuple(strides))
    return v if np.array_equal(v.offsets(), offsets) else None


class DramPlan:
    """The DRAM view of every activation: graph inputs and layer results own a segment (they
    are roots); a view op's result is its input's view through the op's index map, computed
    by running the op's evaluator kernel on the element indices. A view op whose result is
    not an affine view of its input (a Reshape of a transposed tensor), or is a graph output,
    copies: its result becomes a root of its own (`Layer.copy`)."""

    def __init__(self, func: FuncOp, layers: list[Layer], store=None, live: set[Operation] | None = None):
        self.views: dict[SSAValue, View] = {}
        self.source: dict[SSAValue, View] = {}  # a copying view layer: where its elements come from
        self.names: dict[SSAValue, str] = {}  # the layer whose name a root's segment takes
        ret = func.body.block.last_op
        outputs = set(ret.operands) if isinstance(ret, ReturnOp) else set()
        live = live if live is not None else live_ops(func)
        producer: dict[SSAValue, Layer] = {}
        for arg in func.args:
            self.views[arg] = View.whole(arg)
        for layer in layers:
            if layer.kind != "view":
                for v in layer.outputs:
                    self.views[v] = View.whole(v)
                    producer[v] = layer
                continue
            producer[layer.output] = layer
            src = self.views.get(layer.input)
            if src is None:
                raise SpaqError(f"layer '{layer.name}': its input has no DRAM placement")
            view = self._through(layer.head, src, store)
            if view is None and layer.output not in outputs and self._place_back(layer, producer, live, store):
                continue
            if view is None and not _is(layer.head, "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast"):
                layer.kind = "move"  # a selection no strides describe: sparrow_moves.py copies it
                producer[layer.output] = layer
                self.views[layer.output] = View.whole(layer.output)
                continue
            layer.copy = view is None or layer.output in outputs
            if layer.copy:
                self.source[layer.output] = view if view is not None else self._order_preserving(layer, src)
                self.views[layer.output] = View.whole(layer.output)
            else:
                self.views[layer.output] = view

    BIJECTIONS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Cast")

    def _place_back(self, layer: Layer, producer: dict[SSAValue, Layer], live: set[Operation], store) -> bool:
        """Instead of copying: when the view's input comes, through views that only
        rearrange (Transpose, Reshape, ...), from one layer's result that nothing else reads,
        that layer writes its result straight into the layout the view needs. The view's
        result becomes the root; the layer's result (and the views between) are views of it.
        (Attention's P·V, transposed back to [tokens, heads, dh] and reshaped to
        [tokens, hidden]: the matmul stores each head's columns into place.)"""
        chain = [layer.head]
        v = layer.input
        while True:
            users = [u.operation for u in v.uses if u.operation in live]
            if len(users) != 1 or isinstance(v, BlockArgument) or v not in producer:
                return False
            p = producer[v]
            if p.kind != "view":
                if p.kind not in ("gemm", "matmul", "vector", "gather"):
                    return False  # these store through any strides; the others write whole tensors
                break
            if not _is(p.head, *self.BIJECTIONS):
                return False
            chain.insert(0, p.head)
            v = p.input
        source = v
        from spaq.compiler.evaluator import Evaluation

        ev = Evaluation(store)
        n = prod(shape_of(source))
        index = np.arange(n, dtype=np.int64).reshape(shape_of(source))
        maps = []
        for op in chain:
            consts = [None if isinstance(c.owner, NoValueOp) else constant_value(store, c) for c in op.operands[1:]]
            index = np.asarray(ev.run_op(op, [index, *consts])[0])
            maps.append((op.results[0], index))
        if index.size != n or len(np.unique(index)) != n:
            return False
        position = np.empty(n, np.int64)
        position[index.reshape(-1)] = np.arange(n)
        root = layer.output
        placed = affine_view(root, position.reshape(shape_of(source)))
        if placed is None:
            return False
        self.views[source] = placed
        for value, idx in maps[:-1]:  # the views in between, for completeness
            between = affine_view(root, position[idx])
            if between is not None:
                self.views[value] = between
        self.views[root] = View.whole(root)
        self.names[root] = layer.name
        return True

    @staticmethod
    def _through(op: Operation, src: View, store) -> View | None:
        shape_in, shape_out = src.shape, shape_of(op.results[0])
        if _is(op, "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast"):
            if src.contiguous:
                return View(src.root, src.offset, shape_out, contiguous_strides(shape_out))
            return src.reshaped(shape_out)
        if _is(op, "Transpose"):
            perm = list(op.attr("perm") or reversed(range(len(shape_in))))
            return View(src.root, src.offset, tuple(src.shape[p] for p in perm), tuple(src.strides[p] for p in perm))
        if _is(op, "Expand"):
            return src.broadcast_to(shape_out)
        from spaq.compiler.evaluator import Evaluation

        if store is None:
            raise SpaqError(f"layer '{layer_name(op)}': seeing through {op.name} needs the weights")
        index = np.arange(prod(shape_in), dtype=np.int64).reshape(shape_in)
        args = [index] + [None if isinstance(v.owner, NoValueOp) else constant_value(store, v) for v in op.operands[1:]]
        picked = np.asarray(Evaluation(store).run_op(op, args)[0])
        return affine_view(src.root, src.offsets().reshape(-1)[picked])

    @staticmethod
    def _order_preserving(layer: Layer, src: View) -> View:
        """A reshape-like op keeps the row-major order: copying reads the input as it is."""
        if not _is(layer.head, "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Cast"):
            raise SpaqError(f"layer '{layer.name}': {layer.head.name} selects elements no DMA strides describe")
        return src


# ------------------------------------------------------------------------------ allocation

def _align(x: int) -> int:
    return -(-x // ALIGN) * ALIGN


def weight_columns(layer: Layer, k: int) -> int:
    """Stored weight columns for k reduction elements (N:M keeps n per group of m)."""
    if layer.nm is None:
        return k
    n, m = layer.nm
    return -(-k // m) * n


def meta_pitch(layer: Layer, k: int) -> int:
    """Stored metadata columns per row for k reduction elements: whole bytes per row."""
    cols = weight_columns(layer, k)
    per_byte = 8 // _meta_bits(layer)
    return -(-cols // per_byte) * per_byte


def _meta_bits(layer: Layer) -> int:
    from spaq.backends.sparrow.packing import nm_index_dtype

    return nm_index_dtype(layer.nm[1]).bits


PARAM_ROWS = {EpilogueMode.FLOAT: 1, EpilogueMode.REQUANT: 3, EpilogueMode.DEQUANT: 2}


def buffer_needs(layer: Layer, tiles: dict[str, int], store=None) -> dict[str, tuple[Buffer, int]]:
    """Scratchpad regions (role -> buffer, bytes) a layer uses with the given tiles (a tail's
    regions follow, their roles prefixed `v.`)."""
    need = _own_needs(layer, tiles, store)
    if layer.tail is not None:
        tail = layer.tail
        for role, region in region_needs(plan_region(tail.region, store), tail.region.rows).items():
            need[f"v.{role}"] = region
    return need


def _own_needs(layer: Layer, tiles: dict[str, int], store=None) -> dict[str, tuple[Buffer, int]]:
    from spaq.passes.gemm_modes import tile_nbytes

    ab, ob = layer.adtype, layer.odtype
    if layer.kind in ("conv", "gemm"):
        m, k, _ = layer.mkn
        nt, kt = tiles["n"], tiles["k"]
        m = tiles.get("m", m)  # rows per tile (a conv's: whole output rows, `m` pixels)
        need = {
            "out": (Buffer.ACT, ob.nbytes(m * nt)),
            "wgt": (Buffer.WGT, tile_nbytes(layer.gemm_weights, nt, kt)[0]),
            "acc": (Buffer.ACC, 4 * m * nt),
            "param": (Buffer.PARAM, 4 * PARAM_ROWS[layer.mode] * nt),
        }
        if layer.kind == "conv":  # the input rows a band of m pixels reads, kt / (kh·kw) channels
            g = layer.conv
            band = -(-m // g["ow"])
            rows = min(g["h"], (band - 1) * g["sh"] + g["dh"] * (g["kh"] - 1) + 1)
            need["in"] = (Buffer.ACT, rows * g["w"] * ab.nbytes(kt // (g["kh"] * g["kw"])))
            need["cols"] = (Buffer.ACT, m * ab.nbytes(kt))
        elif layer.dynamic is not None:  # the f32 input, its quantized copy and its row scales
            need["in"] = (Buffer.ACT, ab.nbytes(m * k))
            need["xf"] = (Buffer.ACT, 4 * m * k)
            need["scales"] = (Buffer.ACT, 4 * m)
        else:
            need["in"] = (Buffer.ACT, ab.nbytes(m * kt))
        gw = layer.gemm_weights
        if gw.encoding is not None:
            need["meta"] = (Buffer.META, tile_nbytes(gw, nt, kt)[1])
        if gw.entries:  # the codebook table
            need["cb"] = (Buffer.PARAM, gw.cdtype.nbytes(gw.entries))
        return need
    if layer.kind == "matmul":
        m, k, n = layer.mkn
        g, m = tiles["batch"], tiles.get("m", m)  # batch elements per group; rows per tile (one element)
        return {"a": (Buffer.ACT, 4 * g * m * k), "w": (Buffer.WGT, 4 * g * n * k), "acc": (Buffer.ACC, 4 * g * m * n)}
    if layer.kind == "gather":
        rows, d = tiles["rows"], layer.gather_rows[1]
        return {"idx": (Buffer.ACT, 4 * rows), "out": (Buffer.ACT, layer.odtype.nbytes(rows * d))}
    if layer.kind == "vector":
        return region_needs(plan_region(layer.region, store), tiles["rows"])
    if layer.kind == "view":
        return {"buf": (Buffer.ACT, layer.odtype.nbytes(tiles["elems"]))} if layer.copy else {}
    if layer.kind == "rowwise":
        from spaq.passes import sparrow_rowwise

        return sparrow_rowwise.needs(layer, store)
    if layer.kind in ("move", "resample", "gathernd"):
        from spaq.passes.sparrow_moves import move_needs

        return move_needs(layer, tiles)
    if layer.kind in POOLS:
        return pool_needs(layer, tiles.get("c", layer.pool["c"]))
    count = prod(layer.in_type.get_shape()) // layer.batch
    out_count = prod(layer.out_type.get_shape()) // layer.batch
    if layer.kind == "quantize" and "rows" in tiles:  # tiled by rows only when the whole tensor does not fit
        count = out_count = tiles["rows"] * (layer.in_type.get_shape() or [1])[-1]
    need = {"in": (Buffer.ACT, ab.nbytes(count)), "out": (Buffer.ACT, ob.nbytes(out_count))}
    if layer.kind == "quantize":
        need["param"] = (Buffer.PARAM, 4)
    return need


def pool_needs(layer: Layer, cs: int) -> dict[str, tuple[Buffer, int]]:
    """A pooling layer on `cs` channels at a time: its [h·w, cs] input (a global pool's
    [cs, h·w]) and [oh·ow, cs] output; an average pool also its im2col columns
    [oh·ow, cs·kh·kw], their f32 window sums and, where windows count different numbers of
    elements, the [oh·ow, 1] counts."""
    g, ab, ob = layer.pool, layer.adtype, layer.odtype
    m = g["oh"] * g["ow"]
    need = {"in": (Buffer.ACT, g["h"] * g["w"] * ab.nbytes(cs)), "out": (Buffer.ACT, m * ob.nbytes(cs))}
    if layer.kind == "avgpool":
        need["cols"] = (Buffer.ACT, m * ab.nbytes(cs * g["kh"] * g["kw"]))
        need["sum"] = (Buffer.ACT, 4 * m * cs)
        if len(set(avgpool_counts(layer).tolist())) > 1:
            need["count"] = (Buffer.ACT, 4 * m)
    elif layer.kind == "globalpool":
        need["sum"] = (Buffer.ACT, 4 * cs)
    return need


def avgpool_counts(layer: Layer) -> np.ndarray:
    """How many elements each output pixel's window averages over (float32, [oh·ow])."""
    from spaq.compiler.onnx_kernels import average_pool_counts

    return average_pool_counts(layer.head).reshape(-1)


def region_needs(plan: RegionPlan, rows: int) -> dict[str, tuple[Buffer, int]]:
    cols = plan.region.cols
    need = {f"t{i}": (Buffer.ACT, 4 * rows * cols) for i in range(plan.tile_slots)}
    need.update({f"s{i}": (Buffer.ACT, 4 * rows * cols) for i in range(plan.temps)})
    for v, role in plan.vectors.items():
        form = plan.forms[v]
        n = {Bcast.ROW: cols, Bcast.COL: rows, Bcast.SCALAR: 1}[form]
        need[role] = (Buffer.PARAM if vector_in_param(plan, v) else Buffer.ACT, 4 * n)
    if plan.stats:
        need["mean"] = (Buffer.ACT, 4 * rows)
        need["var"] = (Buffer.ACT, 4 * rows)
    return need


def allocate(needs: dict[str, tuple[Buffer, int]], capacity: dict[Buffer, int], layer: str) -> dict[str, int]:
    """Bump allocation per buffer, 64-byte aligned; an overflow names the layer and buffer."""
    top = {b: 0 for b in Buffer}
    out = {}
    for role, (buf, nbytes) in needs.items():
        out[role] = top[buf]
        top[buf] = _align(top[buf] + nbytes)
    for buf, used in top.items():
        if used > capacity[buf]:
            raise SpaqError(f"layer '{layer}' needs {used} bytes of {buf.name} scratchpad, "
                            f"the target has {capacity[buf]}")
    return out
