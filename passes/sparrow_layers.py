"""What Sparrow executes as one unit: the layers of a compressed graph.

`find_layers(func)` groups the ops of @main into layers, each lowered as one block of
instructions with its tensors in DRAM between layers:

- `conv` / `gemm`: onnx.Conv / onnx.Gemm (fp32) or quant.conv / quant.gemm (int8), with the
  epilogue ops that follow (quant.requantize or quant.dequantize, then a Relu) fused;
- `quantize` (of an activation), `maxpool`, `softmax`;
- `alias`: Flatten / Reshape, which move no data (DRAM tensors keep ONNX's row-major layout).

tile-layers, allocate-scratchpad and lower-to-sparrow all read this one analysis; the
decisions they make are written on the layer's head op (`sparrow.tiles`, `sparrow.sram`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from xdsl.dialects.builtin import DictionaryAttr, IntegerAttr, TensorType, i64
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Attribute, Operation, SSAValue

from spaq.backends.sparrow.isa import Buffer, DType, EpilogueMode
from spaq.compiler.errors import SpaqError
from spaq.compiler.types import isa_dtype
from spaq.dialects.onnx import InitializerOp, NoValueOp, OnnxOp
from spaq.dialects.sparse import NMAttr, encoding_of
from spaq.passes.compression import is_constant, layer_name

TILES_KEY = "sparrow.tiles"
SRAM_KEY = "sparrow.sram"
ALIGN = 64


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

    # ---- types and geometry
    @property
    def in_type(self) -> TensorType:
        return self.input.type  # type: ignore[return-value]

    @property
    def out_type(self) -> TensorType:
        return self.output.type  # type: ignore[return-value]

    @property
    def adtype(self) -> DType:
        return isa_dtype(self.in_type.element_type)

    @property
    def wdtype(self) -> DType:
        assert self.weight is not None
        return isa_dtype(self.weight.type.element_type)

    @property
    def odtype(self) -> DType:
        return isa_dtype(self.out_type.element_type)

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

        _, c, h, w = self.in_type.get_shape()
        _, _, kh, kw = self.weight.type.get_shape()
        a = conv_attributes(self.head, kh, kw)
        _, _, oh, ow = self.out_type.get_shape()
        pt, pl, pb, pr = a["pads"]
        (sh, sw), (dh, dw) = a["strides"], a["dilations"]
        return dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, pt=pt, pl=pl, pb=pb, pr=pr, dh=dh, dw=dw, oh=oh, ow=ow)

    @property
    def mkn(self) -> tuple[int, int, int]:
        """GEMM sizes per image: M rows (pixels or batch), K reduction, N output channels."""
        n_out = self.weight.type.get_shape()[0]
        k = prod(self.weight.type.get_shape()[1:])
        if self.kind == "conv":
            g = self.conv
            return g["oh"] * g["ow"], k, n_out
        return self.in_type.get_shape()[0], k, n_out

    @property
    def batch(self) -> int:
        return self.in_type.get_shape()[0] if self.kind in ("conv", "maxpool") else 1

    def tiles(self) -> dict[str, int]:
        return _int_dict(self.head.attributes.get(TILES_KEY), self.name, TILES_KEY)

    def sram(self) -> dict[str, int]:
        return _int_dict(self.head.attributes.get(SRAM_KEY), self.name, SRAM_KEY)


def _int_dict(attr: Attribute | None, name: str, key: str) -> dict[str, int]:
    if not isinstance(attr, DictionaryAttr):
        raise SpaqError(f"layer '{name}' has no {key} (run the pass that writes it first)")
    return {k: v.value.data for k, v in attr.data.items()}


def int_dict_attr(values: dict[str, int]) -> DictionaryAttr:
    return DictionaryAttr({k: IntegerAttr(v, i64) for k, v in values.items()})


def _single_user(value: SSAValue) -> Operation | None:
    return value.get_user_of_unique_use() if value.has_one_use() else None


def _is(op: Operation | None, *names: str) -> bool:
    return op is not None and (op.name in names or (isinstance(op, OnnxOp) and op.op_type in names))


COMPUTE = ("onnx.Conv", "onnx.Gemm", "quant.conv", "quant.gemm")


def find_layers(func: FuncOp) -> list[Layer]:
    layers: list[Layer] = []
    fused: set[Operation] = set()
    for op in func.body.block.ops:
        if op in fused or isinstance(op, (InitializerOp, NoValueOp, ReturnOp)):
            continue
        if op.results and all(is_constant(r) for r in op.results):
            continue  # weights: sparse.pack / quant.quantize of constants
        layers.append(_layer_at(op, fused))
    return layers


def _layer_at(op: Operation, fused: set[Operation]) -> Layer:
    name = layer_name(op)
    if op.name in COMPUTE:
        kind = "conv" if op.name.endswith("onv") else "gemm"
        layer = Layer(kind, name, op, op.operands[0], op.results[0], [op], weight=op.operands[1])
        if len(op.operands) > 2 and not isinstance(op.operands[2].owner, NoValueOp):
            layer.bias = op.operands[2]
        if not is_constant(op.operands[1]):
            raise SpaqError(f"layer '{name}': the weight must be a constant to run on Sparrow")
        out = op.results[0]
        nxt = _single_user(out)
        if op.name.startswith("quant."):
            if not _is(nxt, "quant.requantize", "quant.dequantize"):
                raise SpaqError(f"layer '{name}': the i32 accumulator must feed one requantize or dequantize")
            layer.epilogue = nxt
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
    if op.name == "quant.quantize":
        return Layer("quantize", name, op, op.operands[0], op.results[0], [op])
    if _is(op, "MaxPool"):
        return Layer("maxpool", name, op, op.operands[0], op.results[0], [op])
    if _is(op, "Softmax"):
        rank = len(op.results[0].type.get_shape())
        if op.attr("axis", -1) not in (-1, rank - 1):
            raise SpaqError(f"layer '{name}': Softmax runs on the last axis only")
        return Layer("softmax", name, op, op.operands[0], op.results[0], [op])
    if _is(op, "Flatten", "Reshape"):
        return Layer("alias", name, op, op.operands[0], op.results[0], [op])
    raise SpaqError(f"'{op.name}'{'' if name == op.name else f' (layer {name!r})'} cannot run on Sparrow yet")


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


def buffer_needs(layer: Layer, tiles: dict[str, int]) -> dict[str, tuple[Buffer, int]]:
    """Scratchpad regions (role -> buffer, bytes) a layer uses with the given tiles."""
    ab, ob = layer.adtype, layer.odtype
    if layer.kind in ("conv", "gemm"):
        m, k, _ = layer.mkn
        nt, kt = tiles["n"], tiles["k"]
        need = {
            "out": (Buffer.ACT, ob.nbytes(m * nt)),
            "wgt": (Buffer.WGT, layer.wdtype.nbytes(nt * weight_columns(layer, kt))),
            "acc": (Buffer.ACC, 4 * m * nt),
            "param": (Buffer.PARAM, 4 * PARAM_ROWS[layer.mode] * nt),
        }
        if layer.kind == "conv":
            g = layer.conv
            need["in"] = (Buffer.ACT, ab.nbytes(g["h"] * g["w"] * g["c"]))
            need["cols"] = (Buffer.ACT, ab.nbytes(m * k))
        else:
            need["in"] = (Buffer.ACT, ab.nbytes(m * kt))
        if layer.nm is not None:
            need["meta"] = (Buffer.META, nt * meta_pitch(layer, kt) * _meta_bits(layer) // 8)
        return need
    count = prod(layer.in_type.get_shape()) // layer.batch
    out_count = prod(layer.out_type.get_shape()) // layer.batch
    need = {"in": (Buffer.ACT, ab.nbytes(count)), "out": (Buffer.ACT, ob.nbytes(out_count))}
    if layer.kind == "quantize":
        need["param"] = (Buffer.PARAM, 4)
    return need if layer.kind != "alias" else {}


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
