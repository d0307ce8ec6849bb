"""quantize: apply every layer's precision decision: integer layers with static int8
activations (or per-token dynamic ones), float layers in f16 / bf16 / fp8.

Calibration runs the reference evaluator on sample inputs and records max|x| of every
tensor. Then, per quantized layer:
- its input is quantized per tensor, symmetric, to its activation type (si8, or si4 / si2
  for W·A4 / W·A2): s_x = max|x| / qmax (127, 7, 1) (an input that is already quantized,
  e.g. the previous layer's output, is used as it is);
- its weight is quantized as its type says (the sparse encoding stays in the type):
  int8 / int4 per output channel, s_w[c] = max|W[c]| / (2^(b−1) − 1); int2 per channel
  over all four levels, s_w[c] = max|W[c]| / 2, q in [−2, 1]; ternary (BitNet b1.58)
  s_w = mean|W| over the kept weights, q = clip(round(W / s_w), −1, 1); binary (XNOR-Net)
  s_w = mean|W|, q = sign(W) (pruned zeros stay 0); codebook-K per channel: the weights
  scaled to ±127 by s_w[c] = max|W[c]| / 127 are clustered by k-means (K centroids, or
  K − 1 and 0 for a sparse layer, linear initialisation, Lloyd iterations), the centroids
  rounded to integers: q = the nearest one (the table, `gemm_modes.codebook_table`, is
  the sorted distinct q). Formats whose values are a subset of the storage type's
  store the weight as s_w · q (`<name>.<format>`), so quant.quantize recomputes q exactly;
- the bias becomes int32 in the accumulator's scale s_x·s_w;
- the integer layer (`quant.conv` / `quant.gemm`) accumulates in i32;
- the accumulator is requantized (s_y = max|y| / qmax, taken after a directly following
  Relu) to the one activation type all its consumers take — quantized layers, through the
  scale-preserving Relu / MaxPool / Flatten / Reshape — and dequantized to f32 otherwise.

A float layer (weights and activations f16, bf16, f8E4M3FN or f8E5M2) gets its weight
rounded to the type (`<name>.<type>`, saturating for fp8) and its input cast to it
(`onnx.Cast`, one per value and type); it computes in float32 and writes its result in
the type when every consumer is a float layer of that type (through Relu / MaxPool /
Flatten / Reshape), in f32 otherwise. No scales: the formats' exponent covers the
weights' range.

```mlir
// after quantize{calibration="calib.npz"}
%xq = quant.quantize %x {scale = array<f32: 0.0078>} : tensor<1x64xf32> -> tensor<1x64x!quant.q<si8:f32>>
%wq = quant.quantize %w {axis = 0 : i64, scale = array<f32: ...>} : tensor<32x64xf32> -> tensor<32x64x!quant.q<si8:f32, per_channel axis=0>>
%b = onnx.Initializer "fc1.bias.i32" : tensor<32xi32>
%acc = quant.gemm %xq, %wq, %b : (...) -> tensor<1x32xi32>
%y = quant.requantize %acc {axis = 1 : i64, scale = array<f64: ...>} : tensor<1x32xi32> -> tensor<1x32x!quant.q<si8:f32>>
```
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, TensorType, i32, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.transforms.dead_code_elimination import dce
from xdsl.rewriter import InsertPoint, Rewriter

from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import evaluate, io_names, main_func
from spaq.compiler.types import numpy_dtype, onnx_element_type
from spaq.compiler.weights import WeightStore, weights_of
from spaq.dialects import quant
from spaq.dialects.onnx import OPS, InitializerOp, OnnxOp
from spaq.dialects.quant import QuantType, with_element_type
from spaq.dialects.sparse import PackOp, encoding_of
from spaq.passes.compression import decision_of, is_compressible_layer, layer_name
from spaq.passes.onnx_canonicalize import constant_of, has_input, new_initializer, weight_name

SCALE_PRESERVING = ("Relu", "MaxPool", "Flatten", "Reshape")
ACTIVATIONS = (QuantType(8), QuantType(4), QuantType(2), QuantType(8, granularity="per_token"))
"""Activation types integer layers take: static symmetric per tensor (8, 4 or 2 bits), or
dynamic per-token int8."""
QMAX = 127


def load_calibration(path: str, input_names: list[str], shapes: list[tuple[int, ...]],
                     dtypes: list[np.dtype]) -> list[dict[str, np.ndarray]]:
    """Samples from an .npz holding one array per graph input (or one array for a
    single-input graph), cut into runs of the compiled input shape."""
    if not path:
        raise SpaqError("quantize needs calibration data: calibration=<file.npz>")
    if not Path(path).exists():
        raise SpaqError(f"calibration file '{path}' does not exist")
    data = np.load(path)
    runs = {}
    for name, shape, dtype in zip(input_names, shapes, dtypes):
        key = name if name in data.files else (data.files[0] if len(input_names) == 1 else None)
        if key is None:
            raise SpaqError(f"calibration file '{path}' has no array '{name}'")
        array = data[key].astype(dtype)
        if prod(array.shape[1:]) != prod(shape[1:]) or len(array) % shape[0]:
            raise SpaqError(f"calibration array '{key}' has shape {array.shape}; input '{name}' needs "
                            f"samples of {prod(shape[1:])} values in batches of {list(shape)}")
        runs[name] = array.reshape((-1, *shape))
    count = min(len(r) for r in runs.values())
    return [{name: r[i] for name, r in runs.items()} for i in range(count)]


def calibrate(module: ModuleOp, ctx: Context, samples: list[dict[str, np.ndarray]]) -> dict[SSAValue, float]:
    """max|x| of every op result and graph input over the samples."""
    ranges: dict[SSAValue, float] = {}

    def note(value: SSAValue, array: np.ndarray) -> None:
        if isinstance(array, np.ndarray) and array.size and array.dtype.kind == "f":
            ranges[value] = max(ranges.get(value, 0.0), float(np.abs(array).max()))

    func = main_func(module)
    in_names, _ = io_names(func)
    for sample in samples:
        for arg, name in zip(func.args, in_names):
            note(arg, sample[name])
        evaluate(module, ctx, sample, lambda op, outs: [note(r, a) for r, a in zip(op.results, outs)])
    return ranges


def _scale(max_abs: float, qt: QuantType = QuantType(8)) -> float:
    """Symmetric scale mapping max|x| to the type's ±qmax (si8: 127, si4: 7, si2: 1)."""
    return max_abs / qt.symmetric_qmax if max_abs > 0 else 1.0


class _Quantizer:
    def __init__(self, store: WeightStore, ranges: dict[SSAValue, float]):
        self.store = store
        self.ranges = ranges
        self.scales: dict[SSAValue, float] = {}  # int8 value -> its scale
        self.casts: dict[tuple[SSAValue, object], SSAValue] = {}  # (value, float type) -> its Cast

    def _range(self, value: SSAValue) -> float:
        if value not in self.ranges:
            raise SpaqError(f"no calibration range for '{value.name_hint or value}'")
        return self.ranges[value]

    def _insert(self, ops: list[Operation], anchor: Operation) -> None:
        Rewriter.insert_op(ops, InsertPoint.before(anchor))

    def int8_input(self, value: SSAValue, anchor: Operation, qt: QuantType = QuantType(8)) -> tuple[SSAValue, float]:
        """The layer input quantized to `qt` (already quantized inputs are used as they are:
        their producer chose `qt`, `consumer_type`)."""
        if value in self.scales:
            return value, self.scales[value]
        s = _scale(self._range(value), qt)
        t = value.type
        assert isinstance(t, TensorType)
        q = quant.QuantizeOp(value, with_element_type(t, qt), [s])
        q.output.name_hint = f"{value.name_hint or 'x'}.q"
        self._insert([q], anchor)
        return q.output, s

    def weight(self, value: SSAValue, anchor: Operation, qt: QuantType) -> tuple[SSAValue, np.ndarray]:
        """The weight quantized to `qt`, and its scales broadcast to the output channels."""
        pack = value.owner if isinstance(value.owner, PackOp) else None
        dense = pack.input if pack is not None else value
        w = constant_of(self.store, dense)
        if w is None:
            raise SpaqError("quantized layers need a constant weight")
        t = value.type
        assert isinstance(t, TensorType)
        s_w, q = quantize_weight(w.reshape(w.shape[0], -1), qt, encoding_of(t) is not None)
        if q is not None:  # a value subset: store s_w * q, which quant.quantize maps back to q exactly
            exact = (np.broadcast_to(s_w[:, None] if s_w.size > 1 else s_w, q.shape) * q).astype(np.float32)
            suffix = "ternary" if qt.is_ternary else "binary" if qt.is_binary else f"codebook{qt.codebook}"
            init = new_initializer(self.store, weight_name(dense), suffix, exact.reshape(w.shape))
            new: list[Operation] = [init]
            if pack is not None:
                new.append(PackOp(init.output, encoding_of(t)))
            self._insert(new, anchor)
            value = new[-1].results[0]
        per_channel = qt.is_per_channel
        op = quant.QuantizeOp(value, with_element_type(t, qt), s_w.astype(np.float32).tolist(),
                              axis=0 if per_channel else None)
        self._insert([op], anchor)
        return op.output, np.broadcast_to(s_w, (w.shape[0],)).astype(np.float32)

    def int8_weight(self, value: SSAValue, anchor: Operation) -> tuple[SSAValue, np.ndarray]:
        return self.weight(value, anchor, QuantType(8, granularity="per_channel", axis=0))

    def float_layer(self, layer: OnnxOp, ftype) -> None:
        """Weight rounded to `ftype`, input cast to it; f32 result."""
        value = layer.operands[1]
        pack = value.owner if isinstance(value.owner, PackOp) else None
        dense = pack.input if pack is not None else value
        w = constant_of(self.store, dense)
        if w is None:
            raise SpaqError(f"layer '{layer_name(layer)}': the weight must be a constant")
        rounded = _saturating(w, numpy_dtype(ftype))
        init = new_initializer(self.store, weight_name(dense), str(ftype).lower(), rounded)
        new: list[Operation] = [init]
        if pack is not None:
            new.append(PackOp(init.output, encoding_of(value.type)))
        self._insert(new, layer)
        layer.operands[1] = new[-1].results[0]
        x = layer.operands[0]
        if element_type_of(x) != ftype:
            key = (x, ftype)
            if key not in self.casts:
                t = x.type
                assert isinstance(t, TensorType)
                to = onnx_element_type(ftype)
                cast = OPS["Cast"]([x], [with_element_type(t, ftype)], {"to": IntegerAttr(to, i64)})
                cast.results[0].name_hint = f"{x.name_hint or 'x'}.{str(ftype).lower()}"
                self._insert([cast], layer)
                self.casts[key] = cast.results[0]
            layer.operands[0] = self.casts[key]
        self.float_result(layer, ftype)

    def float_result(self, layer: OnnxOp, ftype) -> None:
        """The layer writes its result in `ftype` (EPILOGUE rounds to it) when every consumer
        is a float layer of that type, through Relu / MaxPool / Flatten / Reshape: no Cast
        between them."""
        chain: list[OnnxOp] = []

        def takes(v: SSAValue) -> bool:
            for use in v.uses:
                op = use.operation
                if use.index == 0 and _float_type(op) == ftype and is_compressible_layer(op):
                    continue
                if isinstance(op, OnnxOp) and op.op_type in SCALE_PRESERVING and use.index == 0 \
                        and len(op.results) == 1 and takes(op.results[0]):
                    chain.append(op)
                    continue
                return False
            return bool(v.uses)

        if not takes(layer.results[0]):
            return
        for op in [layer, *chain]:
            t = op.results[0].type
            assert isinstance(t, TensorType)
            new = type(op)(list(op.operands), [with_element_type(t, ftype)], dict(op.attributes))
            new.results[0].name_hint = op.results[0].name_hint
            Rewriter.replace_op(op, [new])

    def quantize_layer_per_token(self, layer: OnnxOp) -> None:
        """Gemm with dynamic per-token activations: the row scales exist only at run time,
        so the accumulator is dequantized with them and the float bias added after."""
        if layer.op_type != "Gemm":
            raise SpaqError(f"layer '{layer_name(layer)}': per-token activations need a Gemm, not {layer.op_type}")
        xq = quant.QuantizeDynamicOp(layer.operands[0])
        xq.output.name_hint = f"{layer.operands[0].name_hint or 'x'}.q"
        self._insert([xq], layer)
        w, s_w = self.weight(layer.operands[1], layer, decision_of(layer).weights)
        out_t = layer.results[0].type
        assert isinstance(out_t, TensorType)
        compute = quant.GemmOp(xq.output, w, None, TensorType(i32, out_t.get_shape()))
        compute.attributes.update({k: v for k, v in layer.attributes.items() if k.startswith(("onnx.", "spaq."))})
        y = quant.DequantizeOp(compute.output, s_w.tolist(), axis=1, result_type=out_t, token_scale=xq.scales)
        new: list[Operation] = [compute, y]
        if has_input(layer, 2):
            new.append(OPS["Add"]([y.output, layer.operands[2]], [out_t]))
        new[-1].results[0].name_hint = layer.results[0].name_hint
        Rewriter.replace_op(layer, new, [new[-1].results[0]])

    def quantize_layer(self, layer: OnnxOp) -> None:
        if decision_of(layer).activations.is_per_token:
            return self.quantize_layer_per_token(layer)
        x, s_x = self.int8_input(layer.operands[0], layer, decision_of(layer).activations)
        w, s_w = self.weight(layer.operands[1], layer, decision_of(layer).weights)
        acc_scale = (np.float64(s_x) * s_w.astype(np.float64))
        new: list[Operation] = []
        bias = None
        if has_input(layer, 2):
            b = constant_of(self.store, layer.operands[2])
            if b is None:
                raise SpaqError(f"layer '{layer_name(layer)}': the bias must be a constant")
            b32 = np.clip(np.round(b.astype(np.float64) / acc_scale), -2**31, 2**31 - 1).astype(np.int32)
            new.append(new_initializer(self.store, weight_name(layer.operands[2]), "i32", b32))
            bias = new[-1].output
        out_t = layer.results[0].type
        assert isinstance(out_t, TensorType)
        acc_t = TensorType(i32, out_t.get_shape())
        if layer.op_type == "Conv":
            kh, kw = layer.operands[1].type.get_shape()[2:]
            compute = quant.ConvOp(x, w, acc_t, bias, dilations=layer.attr("dilations", [1, 1]),
                                   group=layer.attr("group", 1), kernel_shape=[kh, kw],
                                   pads=layer.attr("pads", [0, 0, 0, 0]), strides=layer.attr("strides", [1, 1]))
        else:
            compute = quant.GemmOp(x, w, bias, acc_t)
        new.append(compute)
        compute.attributes.update({k: v for k, v in layer.attributes.items() if k.startswith(("onnx.", "spaq."))})
        compute.results[0].name_hint = (layer.results[0].name_hint or "acc") + ".acc"

        observed = layer.results[0]
        users = [u.operation for u in observed.uses]
        if len(users) == 1 and isinstance(users[0], OnnxOp) and users[0].op_type == "Relu":
            observed = users[0].results[0]
        out_q = self.consumer_type(layer.results[0])
        if out_q is not None and layer.op_type == "Conv" and out_q.storage_bits < 8:
            out_q = None  # a conv stores HWC -> NCHW by strides: whole bytes only (the consumer quantizes)
        if out_q is not None:
            s_y = _scale(self._range(observed), out_q)
            epilogue = quant.RequantizeOp(compute.output, with_element_type(out_t, out_q),
                                          (acc_scale / s_y).tolist(), axis=1)
            self.scales[epilogue.output] = s_y
        else:
            epilogue = quant.DequantizeOp(compute.output, acc_scale.astype(np.float32).tolist(), axis=1,
                                          result_type=out_t)
        epilogue.results[0].name_hint = layer.results[0].name_hint
        new.append(epilogue)
        Rewriter.replace_op(layer, new, [epilogue.results[0]])

    def consumer_type(self, value: SSAValue) -> QuantType | None:
        """The one static activation type that every consumer of `value` takes — quantized
        layers, through the scale-preserving Relu / MaxPool / Flatten / Reshape — or None."""
        types: set[QuantType] = set()

        def takes(v: SSAValue) -> bool:
            for use in v.uses:
                op = use.operation
                if _is_quantized_layer(op) and use.index == 0 and not decision_of(op).activations.is_per_token:
                    types.add(decision_of(op).activations)
                    continue
                if isinstance(op, OnnxOp) and op.op_type in SCALE_PRESERVING and use.index == 0 and takes(op.results[0]):
                    continue
                return False
            return bool(v.uses)

        return types.pop() if takes(value) and len(types) == 1 else None

    def propagate(self, op: OnnxOp) -> None:
        """A scale-preserving op on an int8 input computes in int8 with the same scale."""
        src = op.operands[0]
        t = op.results[0].type
        assert isinstance(t, TensorType) and isinstance(src.type, TensorType)
        new_t = with_element_type(t, src.type.element_type)
        new = type(op)(list(op.operands), [new_t], dict(op.attributes))
        new.results[0].name_hint = op.results[0].name_hint
        self.scales[new.results[0]] = self.scales[src]
        Rewriter.replace_op(op, [new])

    def dequantize_operands(self, op: Operation) -> None:
        """An op that needs floats gets its int8 operands dequantized."""
        for i, value in enumerate(op.operands):
            if value in self.scales:
                d = quant.DequantizeOp(value, [self.scales[value]])
                self._insert([d], op)
                op.operands[i] = d.output


def _is_quantized_layer(op: Operation) -> bool:
    d = decision_of(op)
    return d is not None and isinstance(d.weights, QuantType) and d.activations is not None


def _float_type(op: Operation):
    """The float type a float layer's decision asks for, or None."""
    d = decision_of(op)
    if d is None or d.weights is None or isinstance(d.weights, QuantType):
        return None
    return d.weights


def element_type_of(value: SSAValue):
    t = value.type
    return t.element_type if isinstance(t, TensorType) else None


def _saturating(w: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """w rounded to a float type; fp8 clipped to its largest finite value (ONNX saturate)."""
    import ml_dtypes

    if dtype.name.startswith("float8"):
        limit = float(ml_dtypes.finfo(dtype).max)
        w = np.clip(w, -limit, limit)
    return np.asarray(w, np.float32).astype(dtype)


def _kmeans_1d(values: np.ndarray, k: int, iterations: int = 30) -> np.ndarray:
    """k centroids of 1-D values: linear initialisation over [min, max] (Deep Compression's
    choice), then Lloyd iterations; deterministic."""
    if values.size == 0:
        return np.zeros(0)
    centroids = np.linspace(values.min(), values.max(), k)
    for _ in range(iterations):
        assign = np.abs(values[:, None] - centroids[None, :]).argmin(axis=1)
        sums = np.bincount(assign, weights=values, minlength=k)
        counts = np.bincount(assign, minlength=k)
        moved = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(moved, centroids):
            break
        centroids = moved
    return centroids


def quantize_weight(w: np.ndarray, qt: QuantType, sparse: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Scales ([n] per channel, [1] per tensor) of the [n, K] weight for `qt`, and — for the
    formats whose values are a subset of the storage type (binary, ternary, codebook) — the
    integer values q (else None: quant.quantize rounds and saturates)."""
    absw = np.abs(w)
    kept = absw[w != 0]
    if qt.is_binary or qt.is_ternary:
        s = np.array([kept.mean() if kept.size else 1.0])
        if qt.is_ternary:
            q = np.clip(np.rint(w / s[0]), -1, 1)
        else:
            q = np.sign(w) if sparse else np.where(w >= 0, 1.0, -1.0)
        return s, q
    bits = qt.storage_bits
    top = 2.0 if bits == 2 else float(qt.symmetric_qmax)  # int2 uses all four levels [-2, 1]
    if qt.is_per_channel:
        m = absw.max(axis=1)
    else:
        m = np.array([absw.max()])
    s = np.where(m > 0, m / top, 1.0)
    if not qt.codebook:
        return s, None
    scaled = w / (s[:, None] if s.size > 1 else s[0])
    k = qt.codebook - (1 if sparse else 0)
    pool = scaled[w != 0] if sparse else scaled.ravel()
    table = np.unique(np.clip(np.rint(_kmeans_1d(pool, k)), qt.qmin, qt.qmax))
    if sparse:
        table = np.union1d(table, [0.0])
    nearest = table[np.abs(scaled[..., None] - table).argmin(axis=-1)]
    return s, np.where(w == 0, 0.0, nearest) if sparse else nearest


@dataclass(frozen=True)
class QuantizePass(ModulePass):
    name = "quantize"

    calibration: str = ""
    samples: int = 64

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        layers = [o for o in op.walk() if _is_quantized_layer(o)]
        floats = [o for o in op.walk() if _float_type(o) is not None]
        if not layers and not floats:
            return
        for layer in layers + floats:
            if not is_compressible_layer(layer):
                raise SpaqError(f"layer '{layer_name(layer)}' cannot be quantized (no constant weight)")
        for layer in layers:
            d = decision_of(layer)
            w = d.weights
            if not (w.is_per_tensor or (w.is_per_channel and w.axis == 0)) or not w.symmetric or not w.signed \
                    or d.activations not in ACTIVATIONS:
                raise SpaqError(f"layer '{layer_name(layer)}': integer layers take symmetric signed weights per "
                                f"tensor or per output channel with int8 / int4 / int2 per-tensor or int8 per-token "
                                f"activations, "
                                f"got {d.weights} / {d.activations}")
        for layer in floats:
            d = decision_of(layer)
            if d.activations != d.weights:
                raise SpaqError(f"layer '{layer_name(layer)}': a float layer takes weights and activations of one "
                                f"type, got {d.weights} / {d.activations}")
        func = main_func(op)
        names, _ = io_names(func)
        shapes = [tuple(a.type.get_shape()) for a in func.args]
        dtypes = [numpy_dtype(a.type.element_type) for a in func.args]
        static = any(not decision_of(layer).activations.is_per_token for layer in layers)
        quantizer = _Quantizer(weights_of(ctx), {})
        for layer in floats:  # no calibration needed
            quantizer.float_layer(layer, _float_type(layer))
        ranges = {}
        if static:  # per-token layers compute their activation scales at run time
            samples = load_calibration(self.calibration, names, shapes, dtypes)[: self.samples]
            ranges = calibrate(op, ctx, samples)
        quantizer.ranges = ranges
        for node in list(func.body.block.ops):
            if _is_quantized_layer(node):
                quantizer.quantize_layer(node)
            elif isinstance(node, OnnxOp) and node.op_type in SCALE_PRESERVING and node.operands[0] in quantizer.scales:
                quantizer.propagate(node)
            else:
                quantizer.dequantize_operands(node)
        dce(op)  # the float weights the int8 ones replaced
