"""import-qdq: already-quantized QDQ models (QuantizeLinear / DequantizeLinear around float
layers, as onnxruntime's `quantize_static` writes them) become the `quant` IR that the
quantize pass writes for the same layers.

A layer is a Conv (2-D), Gemm or MatMul whose
- input is DQ(Q(x)) with one per-tensor int8 scale s_x and zero point 0;
- weight is DQ of an int8 constant with zero point 0, per tensor or per output channel
  (Conv: axis 0; Gemm: axis 0 with transB = 1, axis 1 with transB = 0; MatMul [K, N]:
  axis 1), transposed to W[N, K] where needed;
- bias, if any, is DQ of an int32 constant (zero point 0) or a float constant.

It becomes quant.quantize of x (s_x), quant.quantize of the weight (stored as DQ(W) in
float, which quantizes back to exactly the stored integers), an i32 bias in the
accumulator's scale s_x·s_w (the model's own integers when its bias scale is s_x·s_w,
else rescaled), quant.conv / quant.gemm, and the epilogue:
- the layer's output Q(s_y) → DQ — or Relu → Q(s_y) → DQ, or Q → DQ → Relu → Q(s_y) → DQ
  (the Relu fused, one rounding at s_y instead of two) — is requantized to int8 with
  s_x·s_w / s_y when every consumer can take int8: such layers, and Relu / MaxPool /
  Flatten / Reshape re-quantized with their input's scale (which then run on the int8
  values, as after the quantize pass);
- otherwise it is dequantized (s_x·s_w), as the quantize pass does: the float consumers
  get the value before its rounding to the int8 grid and its clamping to [−128, 127]·s_y (more
  precise than the QDQ model, and different from it where s_y is too small for the
  values), and int8 layers among them quantize it again with their input scale.

A MatMul by a constant of a rank > 2 input becomes the Gemm between two Reshapes (as
onnx-canonicalize makes it). A Q → DQ pair on any other float value whose consumers all
take int8 goes: the ops after it run in float and the layers quantize their input (the
same integers: rounding to one grid commutes with those ops). The numerics are the quantize pass's: round half to even
at quant.quantize, fixed-point requantization (round half up) where onnxruntime's kernels
requantize in float — the integers can differ by one step. The pass runs before
onnx-canonicalize, which would fold the weights' DQ into float constants and lose their
scales.

Left as float ops (still correct: the evaluator runs QuantizeLinear / DequantizeLinear,
onnx-canonicalize folds the weights' DQ): layers with asymmetric weights (zero point ≠ 0),
uint8 or asymmetric activations, per-axis or blocked activation scales, weight scales
along the reduction axis, non-int8 storage (int4, int16, fp8), Gemm with transA, alpha ≠ 1
or beta ≠ 1, Conv with auto_pad, 1-D / 3-D Conv, non-constant weights or biases. Q and DQ
nodes outside these patterns stay as they are.

```mlir
// before
%xq = onnx.QuantizeLinear(%x, %sx, %zx) : (tensor<1x64xf32>, tensor<f32>, tensor<si8>) -> tensor<1x64xsi8>
%xd = onnx.DequantizeLinear(%xq, %sx, %zx) : (tensor<1x64xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x64xf32>
%wd = onnx.DequantizeLinear(%wq, %sw, %zw) {axis = 0 : i64} : (tensor<32x64xsi8>, tensor<32xf32>, tensor<32xsi8>) -> tensor<32x64xf32>
%bd = onnx.DequantizeLinear(%bq, %sb, %zb) {axis = 0 : i64} : (tensor<32xi32>, tensor<32xf32>, tensor<32xi32>) -> tensor<32xf32>
%y = onnx.Gemm(%xd, %wd, %bd) {transB = 1 : i64} : (...) -> tensor<1x32xf32>
%yq = onnx.QuantizeLinear(%y, %sy, %zy) : (tensor<1x32xf32>, tensor<f32>, tensor<si8>) -> tensor<1x32xsi8>
%yd = onnx.DequantizeLinear(%yq, %sy, %zy) : (tensor<1x32xsi8>, tensor<f32>, tensor<si8>) -> tensor<1x32xf32>
// after import-qdq (%yd feeds another layer)
%x.q = quant.quantize %x {scale = array<f32: 0.0078>} : tensor<1x64xf32> -> tensor<1x64x!quant.q<si8:f32>>
%w = onnx.Initializer "fc1.weight.qdq" : tensor<32x64xf32>
%w.q = quant.quantize %w {axis = 0 : i64, scale = array<f32: ...>} : tensor<32x64xf32> -> tensor<32x64x!quant.q<si8:f32, per_channel axis=0>>
%acc = quant.gemm %x.q, %w.q, %bq : (...) -> tensor<1x32xi32>
%y = quant.requantize %acc {axis = 1 : i64, scale = array<f64: ...>} : tensor<1x32xi32> -> tensor<1x32x!quant.q<si8:f32>>
```
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import Float32Type, IntegerType, ModuleOp, Signedness, TensorType, i32
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter

from spaq.backends.sparrow import core
from spaq.backends.sparrow.isa import DType
from spaq.compiler.evaluator import main_func
from spaq.compiler.weights import WeightStore, weights_of
from spaq.dialects import quant
from spaq.dialects.onnx import OPS, InitializerOp, OnnxOp
from spaq.dialects.quant import QuantType, with_element_type
from spaq.passes.onnx_canonicalize import constant_of, has_input, is_op, new_initializer, weight_name
from spaq.passes.quantize import SCALE_PRESERVING, element_type_of

INT8 = QuantType(8)


def _is_si8(t) -> bool:
    return isinstance(t, IntegerType) and t.width.data == 8 and t.signedness.data == Signedness.SIGNED


def _shape(value: SSAValue) -> list[int]:
    t = value.type
    assert isinstance(t, TensorType)
    return list(t.get_shape())


def _params(store: WeightStore, op: Operation) -> tuple[np.ndarray, np.ndarray | None] | None:
    """Constant (scale, zero point or None) of a Q / DQ without blocks, else None."""
    if op.attr("block_size", 0):
        return None
    scale = constant_of(store, op.operands[1])
    zp = constant_of(store, op.operands[2]) if has_input(op, 2) else None
    if scale is None or (has_input(op, 2) and zp is None) or scale.dtype != np.float32:
        return None
    if not (np.isfinite(scale).all() and (scale > 0).all()):
        return None
    return scale, zp


def activation_scale(store: WeightStore, op: Operation) -> float | None:
    """The scale of a per-tensor, symmetric int8 QuantizeLinear / DequantizeLinear of an
    activation (zero point 0, or none with an int8 tensor: opset 21's `output_dtype`), else
    None. Without a zero point an older QuantizeLinear writes uint8, which is not int8."""
    if not is_op(op, "QuantizeLinear", "DequantizeLinear"):
        return None
    p = _params(store, op)
    if p is None:
        return None
    scale, zp = p
    if scale.size != 1 or (zp is not None and (zp.dtype != np.int8 or zp.size != 1 or zp.any())):
        return None
    int8 = op.results[0] if op.op_type == "QuantizeLinear" else op.operands[0]
    if not _is_si8(element_type_of(int8)):
        return None
    return float(scale.reshape(()))


def pair_scale(store: WeightStore, dq: Operation) -> float | None:
    """s if `dq` is DQ(Q(x, s, 0), s, 0) of a float32 x, else None."""
    s = activation_scale(store, dq)
    if s is None or dq.op_type != "DequantizeLinear":
        return None
    q = dq.operands[0].owner
    if activation_scale(store, q) != s or not isinstance(element_type_of(q.operands[0]), Float32Type):
        return None
    return s


@dataclass
class Match:
    """A QDQ layer, with its weight in W[N, K...] form."""

    layer: OnnxOp
    s_x: float
    w_float: np.ndarray  # DQ(W) in float32, [N, K] (Gemm / MatMul) or [OC, C/g, kh, kw] (Conv)
    w_scale: np.ndarray  # float32, [N] per channel or [1] per tensor
    w_name: str
    bias: np.ndarray | None  # int32 [N] in the bias scale `bias_scale`, or float32 [N]
    bias_scale: np.ndarray | None  # [N] or [1] for an int32 bias, None for a float one
    bias_value: SSAValue | None  # the int32 initializer, usable as it is when in [N] form
    bias_name: str = ""


def _weight(store: WeightStore, value: SSAValue, channel_axis: int) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(int8 W, scales, name) of DQ(int8 constant W, s, 0), per tensor or along `channel_axis`."""
    dq = value.owner
    if not is_op(dq, "DequantizeLinear") or not isinstance(dq.operands[0].owner, InitializerOp):
        return None
    if not _is_si8(element_type_of(dq.operands[0])):
        return None
    w = constant_of(store, dq.operands[0])
    p = _params(store, dq)
    if w is None or p is None or w.dtype != np.int8:
        return None
    scale, zp = p
    if zp is not None and (zp.dtype != np.int8 or zp.any()):
        return None  # asymmetric weights: Sparrow's integer layers take zero point 0
    if scale.size != 1:
        if scale.ndim != 1 or dq.attr("axis", 1) % w.ndim != channel_axis or scale.size != w.shape[channel_axis]:
            return None
    return w, scale.reshape(-1), weight_name(dq.operands[0])


def _bias(store: WeightStore, value: SSAValue, n: int):
    """(bias [N], its scale or None for float, the [N] int32 value or None) or None."""
    owner = value.owner
    if isinstance(owner, InitializerOp):
        b = constant_of(store, value)
        if b is None or b.dtype != np.float32 or b.size != n or (b.ndim == 2 and b.shape[0] != 1) or b.ndim > 2:
            return None
        return b.reshape(n), None, None
    if not is_op(owner, "DequantizeLinear") or not isinstance(owner.operands[0].owner, InitializerOp):
        return None
    b, p = constant_of(store, owner.operands[0]), _params(store, owner)
    if b is None or p is None or b.dtype != np.int32 or b.shape != (n,):
        return None
    scale, zp = p
    if (zp is not None and zp.any()) or scale.size not in (1, n):
        return None
    return b, scale.reshape(-1), owner.operands[0]


def match_layer(store: WeightStore, op: Operation) -> Match | None:
    """The QDQ pattern around a Conv / Gemm / MatMul, or None if it is not one Sparrow's
    integer layers compute."""
    if not is_op(op, "Conv", "Gemm", "MatMul") or len(op.results) != 1:
        return None
    if not isinstance(element_type_of(op.results[0]), Float32Type) or any(d < 0 for d in _shape(op.results[0])):
        return None
    dq_x = op.operands[0].owner
    s_x = pair_scale(store, dq_x) if isinstance(dq_x, OnnxOp) else None
    if s_x is None:
        return None
    x_shape = _shape(op.operands[0])
    if op.op_type == "Conv":
        if len(x_shape) != 4 or op.attr("auto_pad", "NOTSET") != "NOTSET":
            return None
        weight = _weight(store, op.operands[1], 0)
    elif op.op_type == "Gemm":
        if op.attr("transA", 0) or op.attr("alpha", 1.0) != 1.0 or (has_input(op, 2) and op.attr("beta", 1.0) != 1.0):
            return None
        trans_b = op.attr("transB", 0)
        weight = _weight(store, op.operands[1], 0 if trans_b else 1)
        if weight is not None and not trans_b:
            weight = (weight[0].T, *weight[1:])
    else:
        if len(x_shape) < 2 or len(_shape(op.operands[1])) != 2:
            return None
        weight = _weight(store, op.operands[1], 1)
        if weight is not None:
            weight = (weight[0].T, *weight[1:])
    if weight is None:
        return None
    w, s_w, name = weight
    # the weight as DQ(W) in float, which quant.quantize must map back to the stored integers
    per_row = s_w.reshape((-1,) + (1,) * (w.ndim - 1)) if s_w.size > 1 else s_w[0]
    w_float = core.dequantize(w, per_row, 0)
    if not np.array_equal(core.quantize(w_float, per_row, 0, DType.I8), w):
        return None
    bias = None
    if op.op_type != "MatMul" and has_input(op, 2):
        bias = _bias(store, op.operands[2], w.shape[0])
        if bias is None:
            return None
    b, s_b, b_value = bias if bias is not None else (None, None, None)
    b_name = ""
    if bias is not None:
        b_init = op.operands[2] if isinstance(op.operands[2].owner, InitializerOp) else op.operands[2].owner.operands[0]
        b_name = weight_name(b_init).removesuffix("_quantized")
    return Match(op, s_x, np.ascontiguousarray(w_float), s_w.astype(np.float32), name, b, s_b, b_value, b_name)


class _Importer:
    def __init__(self, store: WeightStore, block: Block):
        self.store = store
        self.block = block
        self.matches: dict[Operation, Match] = {}
        for op in block.ops:
            m = match_layer(store, op)
            if m is not None:
                self.matches[op] = m
        self.int8_of: dict[SSAValue, SSAValue] = {}  # DQ output -> the !quant.q value it dequantizes
        self.quantized: dict[tuple[SSAValue, float], SSAValue] = {}
        self.handled: set[Operation] = set()  # Q ops already turned into int8 values
        self.retired: set[Operation] = set()  # replaced ops, erased once nothing uses them

    # ------------------------------------------------------------------ which values go int8

    def takes_int8(self, d: SSAValue) -> bool:
        """Every consumer of the DQ output `d` can take its int8 values instead: a layer
        (as its input), or a scale-preserving op re-quantized with the same scale whose
        consumers take int8 in turn."""
        dq = d.owner
        s = activation_scale(self.store, dq)
        if s is None or not d.uses:
            return False
        for use in d.uses:
            op = use.operation
            if op in self.matches and use.index == 0:
                continue
            if is_op(op, *SCALE_PRESERVING) and use.index == 0 and len(op.results) == 1:
                dqs = self._requantized(op.results[0], s)
                if dqs is not None and all(self.takes_int8(x) for x in dqs):
                    continue
            return False
        return True

    def _requantized(self, value: SSAValue, s: float) -> list[SSAValue] | None:
        """The DQ outputs of `value` if its only consumers are Q(value, s) → DQ(s), else None."""
        out = []
        if not value.uses:
            return None
        for use in value.uses:
            q = use.operation
            if activation_scale(self.store, q) != s or q.op_type != "QuantizeLinear" or not q.results[0].uses:
                return None
            for u in q.results[0].uses:
                if activation_scale(self.store, u.operation) != s or u.operation.op_type != "DequantizeLinear":
                    return None
                out.append(u.operation.results[0])
        return out

    def _retire(self, value: SSAValue) -> None:
        """The Q → DQ ops after `value` (and their DQs) are replaced."""
        for use in value.uses:
            self.retired.add(use.operation)
            self.handled.add(use.operation)
            for u in use.operation.results[0].uses:
                self.retired.add(u.operation)

    # ------------------------------------------------------------------ rewrites

    def _insert(self, ops: list[Operation], anchor: Operation) -> None:
        Rewriter.insert_op(ops, InsertPoint.before(anchor))

    def _reshape(self, value: SSAValue, shape: list[int], anchor: Operation) -> SSAValue:
        init = new_initializer(self.store, "shape", "2d" if len(shape) == 2 else "nd", np.array(shape, np.int64))
        t = value.type
        assert isinstance(t, TensorType)
        r = OPS["Reshape"]([value, init.output], [TensorType(t.element_type, shape)])
        self._insert([init, r], anchor)
        return r.results[0]

    def _quantize(self, value: SSAValue, s: float, anchor: Operation) -> SSAValue:
        key = (value, s)
        if key not in self.quantized:
            t = value.type
            assert isinstance(t, TensorType)
            q = quant.QuantizeOp(value, with_element_type(t, INT8), [s])
            q.output.name_hint = f"{value.name_hint or 'x'}.q"
            self._insert([q], anchor)
            self.quantized[key] = q.output
        return self.quantized[key]

    def drop_pair(self, q: Operation) -> None:
        """Q(x, s) → DQ on a float value whose consumers all take int8 goes: its consumers
        take x, and the layers at the end of the chain quantize their input with s. Exact:
        rounding to the grid of s commutes with the scale-preserving ops between (Relu, and
        MaxPool with zero point 0, are monotonic), so the layers' integers are the QDQ
        graph's, and the ops between run in float as after the quantize pass."""
        s = activation_scale(self.store, q)
        if s is None or q.op_type != "QuantizeLinear" or not isinstance(element_type_of(q.operands[0]), Float32Type):
            return
        dqs = []
        for use in q.results[0].uses:
            if activation_scale(self.store, use.operation) != s or use.operation.op_type != "DequantizeLinear":
                return
            dqs.append(use.operation.results[0])
        if not dqs or not all(self.takes_int8(d) for d in dqs):
            return
        for d in dqs:
            d.replace_all_uses_with(q.operands[0])
            self.retired.add(d.owner)
        self.retired.add(q)

    def propagate(self, op: OnnxOp) -> None:
        """A scale-preserving op on int8 values (its Q → DQ after it has the same scale)."""
        x = self.int8_of[op.operands[0]]
        t = op.results[0].type
        assert isinstance(t, TensorType)
        new = type(op)([x, *op.operands[1:]], [with_element_type(t, INT8)], dict(op.attributes))
        new.results[0].name_hint = op.results[0].name_hint
        self._insert([new], op)
        for use in op.results[0].uses:
            for u in use.operation.results[0].uses:
                self.int8_of[u.operation.results[0]] = new.results[0]
        self._retire(op.results[0])
        self.retired.add(op)

    def _layer_input(self, m: Match) -> SSAValue:
        layer = m.layer
        x = layer.operands[0]
        if x in self.int8_of:
            value = self.int8_of[x]
        else:
            dq = x.owner
            if is_op(dq, "DequantizeLinear") and pair_scale(self.store, dq) == m.s_x:
                self.retired.add(dq)
                x = dq.operands[0].owner.operands[0]  # quantize the float the Q rounds
            value = None
        if layer.op_type == "MatMul" and len(_shape(x)) > 2:
            k = _shape(x)[-1]
            src = value if value is not None else x
            flat = self._reshape(src, [prod(_shape(x)[:-1]), k], layer)
            return flat if value is not None else self._quantize(flat, m.s_x, layer)
        return value if value is not None else self._quantize(x, m.s_x, layer)

    def _output_chain(self, y: SSAValue):
        """(relu or None, s_y, DQ outputs, ops it replaces) of y → [Relu] → Q(s_y) → DQ, or
        y → Q → DQ → Relu → Q(s_y) → DQ; None if y goes on as a float."""
        if not y.has_one_use():
            return None
        u = y.get_user_of_unique_use()
        relu = None
        if is_op(u, "Relu") and u.results[0].has_one_use():
            relu, u = u, u.results[0].get_user_of_unique_use()
        s = activation_scale(self.store, u)
        if s is None or u.op_type != "QuantizeLinear":
            return None
        src = relu.results[0] if relu is not None else y
        dqs = self._requantized(src, s)
        if dqs is None:
            return None
        replaced = [u, *(d.owner for d in dqs)] + ([relu] if relu is not None else [])
        if relu is None and len(dqs) == 1 and dqs[0].has_one_use():
            r = dqs[0].get_user_of_unique_use()
            if is_op(r, "Relu") and r.operands[0] is dqs[0] and r.results[0].has_one_use():
                q2 = r.results[0].get_user_of_unique_use()
                s2 = activation_scale(self.store, q2)
                if s2 is not None and q2.op_type == "QuantizeLinear":
                    dqs2 = self._requantized(r.results[0], s2)
                    if dqs2 is not None:
                        return r, s2, dqs2, replaced + [r, q2, *(d.owner for d in dqs2)]
        return relu, s, dqs, replaced

    def rewrite_layer(self, m: Match) -> None:
        layer = m.layer
        x = self._layer_input(m)
        new: list[Operation] = []
        init = new_initializer(self.store, m.w_name.removesuffix("_quantized"), "qdq", m.w_float)
        per_channel = m.w_scale.size > 1
        w_type = with_element_type(init.output.type, QuantType(8, granularity="per_channel", axis=0) if per_channel
                                   else INT8)
        wq = quant.QuantizeOp(init.output, w_type, m.w_scale.tolist(), axis=0 if per_channel else None)
        new += [init, wq]
        n = m.w_float.shape[0]
        s_w = np.broadcast_to(m.w_scale.astype(np.float64), (n,))
        acc_scale = np.float64(m.s_x) * s_w
        bias = None
        if m.bias is not None:
            if m.bias_scale is not None and m.bias_value is not None and \
                    np.allclose(m.bias_scale.astype(np.float64), acc_scale, rtol=1e-6, atol=0):
                bias = m.bias_value  # the model's own integers
            else:
                real = m.bias.astype(np.float64) * (1.0 if m.bias_scale is None else m.bias_scale.astype(np.float64))
                b32 = np.clip(np.round(real / acc_scale), -2**31, 2**31 - 1).astype(np.int32)
                new.append(new_initializer(self.store, m.bias_name, "i32", b32))
                bias = new[-1].output
        y = layer.results[0]
        out_shape = _shape(y)
        acc_shape = [prod(out_shape[:-1]), n] if layer.op_type == "MatMul" else out_shape
        acc_t = TensorType(i32, acc_shape)
        if layer.op_type == "Conv":
            kh, kw = m.w_float.shape[2:]
            compute = quant.ConvOp(x, wq.output, acc_t, bias, dilations=layer.attr("dilations", [1, 1]),
                                   group=layer.attr("group", 1), kernel_shape=[kh, kw],
                                   pads=layer.attr("pads", [0, 0, 0, 0]), strides=layer.attr("strides", [1, 1]))
        else:
            compute = quant.GemmOp(x, wq.output, bias, acc_t)
        compute.attributes.update({k: v for k, v in layer.attributes.items() if k.startswith(("onnx.", "spaq."))})
        compute.results[0].name_hint = (y.name_hint or "acc") + ".acc"
        new.append(compute)

        chain = self._output_chain(y)
        relu, s_y, dqs, replaced = chain if chain is not None else (None, None, [], [])
        int8 = chain is not None and all(self.takes_int8(d) for d in dqs)
        if int8:
            try:
                core.fixed_point_multiplier(acc_scale / s_y)
            except ValueError:
                int8 = False
        f32_t = TensorType(y.type.element_type, acc_shape)
        if int8:
            epilogue = quant.RequantizeOp(compute.output, TensorType(INT8, acc_shape), (acc_scale / s_y).tolist(), axis=1)
        else:
            epilogue = quant.DequantizeOp(compute.output, acc_scale.astype(np.float32).tolist(), axis=1,
                                          result_type=f32_t)
        epilogue.results[0].name_hint = y.name_hint
        new.append(epilogue)
        value = epilogue.results[0]
        if relu is not None:
            r = OPS["Relu"]([value], [value.type], {k: v for k, v in relu.attributes.items() if "." in k})
            r.results[0].name_hint = relu.results[0].name_hint
            new.append(r)
            value = r.results[0]
        self._insert(new, layer)
        if layer.op_type == "MatMul" and len(out_shape) > 2:
            name = value.name_hint
            value.name_hint = f"{name}.2d"
            value = self._reshape(value, out_shape, layer)
            value.name_hint = name
        self.retired.add(layer)
        if chain is None:
            y.replace_all_uses_with(value)
            return
        self.retired.update(replaced)
        for op in replaced:
            if op.op_type == "QuantizeLinear":
                self.handled.add(op)
        if int8:
            for d in dqs:
                self.int8_of[d] = value
        else:
            for d in dqs:
                d.replace_all_uses_with(value)

    def run(self) -> None:
        for op in list(self.block.ops):
            if op in self.retired and op not in self.matches:
                continue
            if op in self.matches:
                self.rewrite_layer(self.matches[op])
            elif is_op(op, "QuantizeLinear") and op not in self.handled:
                self.drop_pair(op)
            elif is_op(op, *SCALE_PRESERVING) and op.operands and op.operands[0] in self.int8_of:
                self.propagate(op)
        self.erase_dead()

    def erase_dead(self) -> None:
        """Erase the replaced ops, and the constants and Q / DQ only they used."""
        changed = True
        while changed:
            changed = False
            for op in reversed(list(self.block.ops)):
                if op not in self.retired or any(r.uses for r in op.results):
                    continue
                owners = [v.owner for v in op.operands if isinstance(v.owner, Operation)]
                Rewriter.erase_op(op)
                changed = True
                for o in owners:
                    if isinstance(o, InitializerOp) or is_op(o, "QuantizeLinear", "DequantizeLinear"):
                        self.retired.add(o)


@dataclass(frozen=True)
class ImportQdqPass(ModulePass):
    name = "import-qdq"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        _Importer(weights_of(ctx), main_func(op).body.block).run()
