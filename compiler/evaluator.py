"""The reference evaluator: runs `onnx` / `quant` / `sparse` IR on numpy arrays.

    outputs = evaluate(module, ctx, {"input": x})        # {"probs": array}

Every op computes through the reference core (backends/sparrow/core.py), the same
functions the simulator executes, so a quantized program's simulated output equals the
evaluator's bit for bit. It runs the IR after any pass, which is what calibration uses
and what a miscompile is bisected with. Tensors keep ONNX layouts (NCHW).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr, TensorType
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Operation, SSAValue

from spaq.backends.sparrow import core
from spaq.backends.sparrow.isa import DType
from spaq.compiler.errors import SpaqError
from spaq.compiler.types import isa_dtype, numpy_dtype
from spaq.compiler.weights import WeightStore, weights_of
from spaq.dialects import onnx as onnx_d
from spaq.dialects import quant, sparse
from spaq.dialects.onnx import dense_to_numpy

Kernel = Callable[["Evaluation", Operation, list[Any]], list[np.ndarray]]
KERNELS: dict[str, Kernel] = {}


def kernel(*names: str) -> Callable[[Kernel], Kernel]:
    def register(fn: Kernel) -> Kernel:
        for n in names:
            KERNELS[n] = fn
        return fn

    return register


def main_func(module: ModuleOp) -> FuncOp:
    for op in module.ops:
        if isinstance(op, FuncOp) and op.sym_name.data == "main":
            return op
    raise SpaqError("module has no func.func @main")


def io_names(func: FuncOp) -> tuple[list[str], list[str]]:
    """ONNX names of the graph inputs and outputs (from `onnx.name` arg/result attributes)."""

    def names(attrs: Any, prefix: str, count: int) -> list[str]:
        out = []
        for i in range(count):
            d = attrs.data[i].data if attrs is not None else {}
            name = d.get("onnx.name")
            out.append(name.data if isinstance(name, StringAttr) else f"{prefix}{i}")
        return out

    return (names(func.arg_attrs, "arg", len(func.args)),
            names(func.res_attrs, "result", len(func.function_type.outputs)))


class Evaluation:
    def __init__(self, store: WeightStore,
                 record: Callable[[Operation, list[np.ndarray]], None] | None = None):
        self.store = store
        self.record = record
        self.env: dict[SSAValue, Any] = {}

    def run_op(self, op: Operation, args: list[Any]) -> list[Any]:
        """Results of one op on `args` (constant folding uses this)."""
        fn = KERNELS.get(op.name)
        if fn is None:
            raise SpaqError(f"the reference evaluator cannot run '{op.name}'{where(op)}")
        return fn(self, op, args)

    def run(self, func: FuncOp, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        in_names, out_names = io_names(func)
        for arg, name in zip(func.args, in_names):
            if name not in inputs:
                raise SpaqError(f"missing input '{name}'")
            value = np.asarray(inputs[name])
            expected = tuple(arg.type.get_shape())
            if value.shape != expected:
                raise SpaqError(f"input '{name}' has shape {value.shape}, the program expects {expected}")
            self.env[arg] = value.astype(np.float32) if value.dtype == np.float64 else value
        for op in func.body.block.ops:
            if isinstance(op, ReturnOp):
                return {n: self.env[v] for n, v in zip(out_names, op.operands)}
            results = self.run_op(op, [self.env.get(v) for v in op.operands])
            if self.record is not None:
                self.record(op, results)
            for r, value in zip(op.results, results):
                self.env[r] = value
        raise SpaqError("func.func @main has no func.return")


def evaluate(module: ModuleOp, ctx: Context, inputs: dict[str, np.ndarray],
             record: Callable[[Operation, list[np.ndarray]], None] | None = None) -> dict[str, np.ndarray]:
    """Run @main on `inputs` (by ONNX input name); returns outputs by ONNX output name.
    `record(op, results)` is called after every op (calibration uses it)."""
    return Evaluation(weights_of(ctx), record).run(main_func(module), inputs)


def where(op: Operation) -> str:
    """` (node 'conv1')` for messages, or nothing."""
    node = op.attributes.get("onnx.node")
    return f" (node '{node.data}')" if isinstance(node, StringAttr) else ""


def _result_type(op: Operation, i: int = 0) -> TensorType:
    t = op.results[i].type
    assert isinstance(t, TensorType)
    return t


def result_shape(op: Operation, i: int = 0) -> tuple[int, ...]:
    return tuple(_result_type(op, i).get_shape())


def _prop_array(op: Operation, name: str, default: Any = None) -> np.ndarray | None:
    attr = op.properties.get(name) or op.attributes.get(name)
    if attr is None:
        return None if default is None else np.asarray(default)
    return np.asarray(attr.get_values())


def _prop_int(op: Operation, name: str, default: int) -> int:
    attr = op.properties.get(name) or op.attributes.get(name)
    return default if attr is None else attr.value.data


# ---------------------------------------------------------------- weights and plumbing

@kernel("onnx.Initializer")
def _initializer(ev: Evaluation, op: onnx_d.InitializerOp, _: list[Any]) -> list[np.ndarray]:
    if op.value is not None:
        return [dense_to_numpy(op.value)]
    return [ev.store[op.weight_name.data]]


@kernel("onnx.NoValue")
def _no_value(ev: Evaluation, op: Operation, _: list[Any]) -> list[Any]:
    return [None]


@kernel("onnx.Identity", "onnx.Dropout")
def _identity(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    """Identity, and Dropout at inference (its optional mask output is all true)."""
    mask = [np.ones(args[0].shape, dtype=bool)] if len(op.results) > 1 else []
    return [args[0], *mask]


@kernel("onnx.Transpose")
def _transpose(ev: Evaluation, op: onnx_d.OnnxOp, args: list[Any]) -> list[np.ndarray]:
    return [np.ascontiguousarray(np.transpose(args[0], op.attr("perm")))]


# ---------------------------------------------------------------- float compute (ONNX)

def conv_nchw(x: np.ndarray, w: np.ndarray, op: Operation, gemm: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """ONNX Conv as the machine does it: per image and group, HWC im2col then one GEMM
    (a depthwise conv is `group` = channels GEMMs of one input channel each)."""
    if x.ndim == 3:  # 1-D: a 2-D convolution over rows of height 1
        return conv_nchw(x[:, :, None, :], w[:, :, None, :], op, gemm)[:, :, 0, :]
    if x.ndim != 4:
        raise SpaqError(f"only 1-D and 2-D convolution is supported{where(op)}")
    n, c, h, wd = x.shape
    oc, cg, kh, kw = w.shape
    attr = conv_attributes(op, kh, kw)
    groups = attr["group"]
    oh, ow = (1, 1, 1, *result_shape(op)[2:])[-2:]
    per_group = oc // groups
    out = None
    for b, img in enumerate(x):
        hwc = np.ascontiguousarray(img.transpose(1, 2, 0))
        for g in range(groups):
            cols = core.im2col(np.ascontiguousarray(hwc[:, :, g * cg : (g + 1) * cg]), kh, kw, *attr["strides"],
                               *attr["pads"], *attr["dilations"])
            y = gemm(cols, w[g * per_group : (g + 1) * per_group].reshape(per_group, -1))
            if out is None:
                out = np.empty((n, oc, oh, ow), dtype=y.dtype)
            out[b, g * per_group : (g + 1) * per_group] = y.reshape(oh, ow, per_group).transpose(2, 0, 1)
    return out


def kernel_2d(op: Operation) -> tuple[int, int]:
    """A pooling op's 2-D kernel_shape (1-D and 3-D windows are not supported yet)."""
    kernel = list(op.attr("kernel_shape"))
    if len(kernel) == 1:
        return 1, kernel[0]
    if len(kernel) != 2:
        raise SpaqError(f"only 2-D windows are supported, got kernel_shape {kernel}{where(op)}")
    return kernel[0], kernel[1]


def conv_attributes(op: Operation, kh: int, kw: int) -> dict[str, Any]:
    """Conv / MaxPool window attributes with ONNX defaults: group, strides, pads [t, l, b, r],
    dilations. auto_pad and ceil_mode become explicit pads that give the result's shape."""
    get = op.attr if isinstance(op, onnx_d.OnnxOp) else (lambda k, d=None: _list_attr(op, k, d))
    strides = list(get("strides", [1, 1]))
    dilations = list(get("dilations", [1, 1]))
    pads = list(get("pads", [0, 0, 0, 0]))  # ONNX: [top, left, bottom, right]
    auto_pad = get("auto_pad", "NOTSET")
    in_hw = op.operands[0].type.get_shape()[2:]
    out_hw = result_shape(op)[2:]
    if len(in_hw) == 1:  # 1-D windows as 2-D windows of height 1
        in_hw, out_hw = (1, *in_hw), (1, *out_hw)
        strides, dilations = [1, *strides[-1:]], [1, *dilations[-1:]]
        pads = [0, pads[0], 0, pads[1]] if len(pads) == 2 else pads
    if len(in_hw) != 2:
        raise SpaqError(f"only 1-D and 2-D windows are supported{where(op)}")
    if auto_pad not in ("NOTSET", "VALID"):
        pads = [0, 0, 0, 0]
        for i, (n, o, k) in enumerate(zip(in_hw, out_hw, (kh, kw))):
            total = max(0, (o - 1) * strides[i] + (k - 1) * dilations[i] + 1 - n)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + 2] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0, 0, 0, 0]
    for i, (n, o, k) in enumerate(zip(in_hw, out_hw, (kh, kw))):  # ceil_mode: pad the far side
        needed = (o - 1) * strides[i] + (k - 1) * dilations[i] + 1 - n - pads[i]
        pads[i + 2] = max(pads[i + 2], needed)
    return {"group": int(get("group", 1)), "strides": strides, "pads": pads, "dilations": dilations}


def _list_attr(op: Operation, key: str, default: Any) -> Any:
    attr = op.properties.get(key) or op.attributes.get(key)
    if attr is None:
        return default
    return onnx_d.attribute_value(attr)


def float_gemm(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    return core.gemm(a.astype(np.float32), w.astype(np.float32), DType.F32, DType.F32)


@kernel("onnx.Conv")
def _conv(ev: Evaluation, op: onnx_d.OnnxOp, args: list[Any]) -> list[np.ndarray]:
    x, w, *rest = args
    if x.dtype.kind == "V" or (x.dtype.kind == "f" and x.dtype.itemsize == 1):  # bf16 / fp8: exact in float32
        x = x.astype(np.float32)  # (float_gemm multiplies in float32 anyway)
    y = conv_nchw(x, w, op, float_gemm)
    if rest and rest[0] is not None:
        bias = rest[0].astype(np.float32).reshape([1, -1] + [1] * (y.ndim - 2))  # 1-D or 2-D windows
        y = (y + bias).astype(np.float32)
    return [_float_result(op, y)]


def _float_result(op: Operation, y: np.ndarray) -> np.ndarray:
    """A float32 GEMM / conv result in the op's result type: f16 / bf16 / fp8 round to
    nearest even (fp8 saturating), as Sparrow's EPILOGUE writes them (`core.round_to`)."""
    t = _result_type(op).element_type
    try:
        dtype = isa_dtype(t)
    except ValueError:  # f64 and other types Sparrow does not store: float32 as before
        return y.astype(np.float32)
    if dtype is DType.F32 or not dtype.is_float:
        return y.astype(np.float32)
    return core.round_to(y, dtype).astype(numpy_dtype(t))


@kernel("onnx.Gemm")
def _gemm(ev: Evaluation, op: onnx_d.OnnxOp, args: list[Any]) -> list[np.ndarray]:
    a, b, *rest = args
    if op.attr("transA", 0):
        a = a.T
    w = b if op.attr("transB", 0) else b.T  # W as [N, K]
    y = float_gemm(a, w) * np.float32(op.attr("alpha", 1.0))
    if rest and rest[0] is not None:
        y = y + np.float32(op.attr("beta", 1.0)) * rest[0].astype(np.float32)
    return [_float_result(op, y)]


def batched_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float32 MatMul of [..., M, K] by [..., K, N] (batch dimensions broadcast) as the machine
    computes it: one GEMM per batch element, A_g [M, K] . W_g [N, K]^T with W_g = B_g^T, both
    contiguous (what a batched `matmul` layer loads into ACT and WGT), through `float_gemm`."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    (m, k), n = a.shape[-2:], b.shape[-1]
    av = np.broadcast_to(a, batch + (m, k)).reshape(-1, m, k)
    bv = np.broadcast_to(b, batch + (k, n)).reshape(-1, k, n)
    out = np.empty((av.shape[0], m, n), np.float32)
    for g in range(av.shape[0]):
        out[g] = float_gemm(np.ascontiguousarray(av[g]), np.ascontiguousarray(bv[g].T))
    return out.reshape(batch + (m, n))


@kernel("onnx.MatMul")
def _matmul(ev: Evaluation, op: onnx_d.OnnxOp, args: list[Any]) -> list[np.ndarray]:
    a, b = args
    if np.issubdtype(a.dtype, np.integer):
        return [np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(a.dtype)]
    if a.dtype == b.dtype == np.float32 and a.ndim >= 2 and b.ndim >= 2:
        return [batched_matmul(a, b)]
    return [np.matmul(a.astype(np.float32), b.astype(np.float32))]


@kernel("onnx.BatchNormalization")
def _batchnorm(ev: Evaluation, op: onnx_d.OnnxOp, args: list[Any]) -> list[np.ndarray]:
    x, scale, bias, mean, var = args
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = (scale / np.sqrt(var + np.float32(op.attr("epsilon", 1e-5)))).astype(np.float32)
    return [((x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)).astype(np.float32)]


@kernel("onnx.Relu")
def _relu(ev: Evaluation, op: onnx_d.OnnxOp, args: list[Any]) -> list[np.ndarray]:
    """On a symmetric quantized tensor (zero point 0) Relu is max(q, 0) on the integers."""
    q = quant.quant_type_of(op.results[0].type)
    if q is not None and not q.symmetric:
        raise SpaqError(f"Relu on an asymmetric quantized tensor is not supported{where(op)}")
    return [np.maximum(args[0], np.zeros((), args[0].dtype))]


@kernel("onnx.MaxPool")
def _maxpool(ev: Evaluation, op: onnx_d.OnnxOp, args: list[Any]) -> list[np.ndarray]:
    x = args[0]
    if x.dtype.kind == "V" or (x.dtype.kind == "f" and x.dtype.itemsize == 1):  # bf16 / fp8 (ml_dtypes): exact in float32
        out = _maxpool(ev, op, [x.astype(np.float32)])
        return [out[0].astype(x.dtype), *out[1:]]
    if x.ndim == 3:  # 1-D pooling: 2-D over rows of height 1
        return [y[:, :, 0] for y in _maxpool(ev, op, [x[:, :, None, :]])]
    kh, kw = kernel_2d(op)
    a = conv_attributes(op, kh, kw)
    c = x.shape[1]
    oh, ow = (1, 1, *result_shape(op)[2:])[-2:]
    out = [core.maxpool(np.ascontiguousarray(img.transpose(1, 2, 0)), kh, kw, *a["strides"], *a["pads"],
                        *a["dilations"]).reshape(oh, ow, c).transpose(2, 0, 1) for img in x]
    y = np.stack(out).astype(x.dtype)
    if len(op.results) == 1:
        return [y]
    return [y, _maxpool_indices(x, y, kh, kw, a, op.attr("storage_order", 0))]


def _maxpool_indices(x: np.ndarray, y: np.ndarray, kh: int, kw: int, a: dict[str, Any], column_major: int) -> np.ndarray:
    """MaxPool's optional Indices output: the flat index (per image, over C×H×W) of the
    first maximum in each window."""
    n, c, h, w = x.shape
    (sh, sw), (dh, dw), (pt, pl, _, _) = a["strides"], a["dilations"], a["pads"]
    _, _, oh, ow = y.shape
    rows = np.arange(oh)[:, None] * sh - pt + np.arange(kh)[None, :] * dh  # [oh, kh]
    cols = np.arange(ow)[:, None] * sw - pl + np.arange(kw)[None, :] * dw  # [ow, kw]
    valid = (rows[:, None, :, None] >= 0) & (rows[:, None, :, None] < h) & \
            (cols[None, :, None, :] >= 0) & (cols[None, :, None, :] < w)  # [oh, ow, kh, kw]
    r = np.clip(rows, 0, h - 1)[:, None, :, None]
    q = np.clip(cols, 0, w - 1)[None, :, None, :]
    windows = x[:, :, r, q]  # [n, c, oh, ow, kh, kw]
    windows = np.where(valid, windows, -np.inf)
    flat = windows.reshape(n, c, oh, ow, -1).argmax(axis=-1)
    wr = np.take_along_axis(np.broadcast_to(r + 0 * q, (oh, ow, kh, kw)).reshape(oh, ow, -1)[None, None],
                            flat[..., None], axis=-1)[..., 0]
    wc = np.take_along_axis(np.broadcast_to(q + 0 * r, (oh, ow, kh, kw)).reshape(oh, ow, -1)[None, None],
                            flat[..., None], axis=-1)[..., 0]
    chan = np.arange(c)[None, :, None, None]
    index = chan * h * w + (wc * h + wr if column_major else wr * w + wc)
    return (index + np.arange(n)[:, None, None, None] * c * h * w).astype(np.int64)


@kernel("onnx.Softmax")
def _softmax(ev: Evaluation, op: onnx_d.OnnxOp, args: list[Any]) -> list[np.ndarray]:
    return [core.softmax(args[0].astype(np.float32), axis=op.attr("axis", -1))]


# ---------------------------------------------------------------- sparse

@kernel("sparse.pack")
def _pack(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    encoding = sparse.encoding_of(_result_type(op))
    problem = sparse.check_pattern(args[0], encoding)
    if problem:
        raise SpaqError(f"sparse.pack: the tensor does not fit {encoding}: {problem}")
    return [args[0]]


@kernel("sparse.unpack")
def _unpack(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    return [args[0]]


@kernel("sparse.matmul")
def _sparse_matmul(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, w, *rest = args
    if np.issubdtype(x.dtype, np.integer):
        y = core.gemm(x, w, isa_dtype(op.operands[0].type.element_type), isa_dtype(op.operands[1].type.element_type))
    else:
        y = float_gemm(x, w)
    if rest and rest[0] is not None:
        y = (y.astype(np.int64) + rest[0]).astype(np.int32) if y.dtype == np.int32 else (y + rest[0]).astype(np.float32)
    return [y]


# ---------------------------------------------------------------- quantized

def _per_axis(values: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Broadcast per-channel `values` along `axis` of an ndim tensor (a scalar stays one)."""
    if values.size == 1:
        return values.reshape(())
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def _scale_and_zero_point(op: Operation, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """A quantize/dequantize op's scale (f32) and zero point (i32), broadcast along its axis."""
    axis = _prop_int(op, "axis", 0)
    scale = _per_axis(_prop_array(op, "scale").astype(np.float32), ndim, axis)
    return scale, _per_axis(_prop_array(op, "zero_point", [0]).astype(np.int32), ndim, axis)


def value_dtype(t: Any) -> DType:
    """The Sparrow type holding the values of element type `t`: binary (si1, ±1) values
    compute as i2; everything else as its storage type."""
    if isinstance(t, quant.QuantType) and t.is_binary:
        return DType.I2
    return isa_dtype(t)


@kernel("quant.quantize")
def _quantize(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    scale, zp = _scale_and_zero_point(op, args[0].ndim)
    q = quant.quant_type_of(_result_type(op))
    y = core.quantize(args[0], scale, zp, value_dtype(q))
    if q.is_binary or q.is_ternary:  # the value sets -1 / +1 and -1 / 0 / +1 (0: a pruned binary weight)
        y = np.clip(y, -1, 1).astype(y.dtype)
    return [y]


@kernel("quant.dequantize")
def _dequantize(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    scale, zp = _scale_and_zero_point(op, args[0].ndim)
    y = core.dequantize(args[0], scale, zp)
    if len(args) > 1:  # per-token accumulator: the run-time row scales come after
        y = (y * args[1].astype(np.float32)).astype(np.float32)
    return [y]


@kernel("quant.quantize_dynamic")
def _quantize_dynamic(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    from spaq.backends.sparrow import vector

    x = args[0]
    q, scales = vector.dynamic_quantize(x.reshape(-1, x.shape[-1]), isa_dtype(_result_type(op).element_type), axis=1)
    return [q.reshape(x.shape), scales.reshape(*x.shape[:-1], 1)]


def _channels_last(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(x, axis, -1)
    return np.moveaxis(fn(moved), -1, axis)


@kernel("quant.requantize")
def _requantize(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    acc = args[0]
    axis = _prop_int(op, "axis", acc.ndim - 1)
    real = _prop_array(op, "scale").astype(np.float64)
    mult, shift = core.fixed_point_multiplier(real)
    zp = int(_prop_array(op, "zero_point", [0])[0])
    dtype = isa_dtype(_result_type(op).element_type)
    if real.size == 1:
        mult, shift = np.broadcast_to(mult, acc.shape[axis]), np.broadcast_to(shift, acc.shape[axis])
    return [_channels_last(lambda a: core.requantize(a, None, mult, shift, zp, dtype, False), acc, axis)]


def _int_gemm_fn(op: Operation) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    adt = value_dtype(op.operands[0].type.element_type)
    wdt = value_dtype(op.operands[1].type.element_type)
    return lambda a, w: core.gemm(a, w, adt, wdt)


def _add_bias_i32(y: np.ndarray, bias: np.ndarray | None, axis: int) -> np.ndarray:
    if bias is None:
        return y
    t = y.astype(np.int64) + _per_axis(bias.astype(np.int64), y.ndim, axis)
    return t.astype(np.int32)  # wraps like the int32 accumulator (docs/isa.md)


@kernel("quant.conv")
def _qconv(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, w, *rest = args
    y = conv_nchw(x, w, op, _int_gemm_fn(op))
    return [_add_bias_i32(y, rest[0] if rest else None, 1)]


@kernel("quant.gemm")
def _qgemm(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, w, *rest = args
    y = _int_gemm_fn(op)(x, w)
    return [_add_bias_i32(y, rest[0] if rest else None, 1)]


@kernel("onnx.Flatten")
def _flatten(ev: Evaluation, op: onnx_d.OnnxOp, args: list[Any]) -> list[np.ndarray]:
    return [args[0].reshape(result_shape(op))]


from spaq.compiler import onnx_kernels  # noqa: E402,F401  (registers the rest of ONNX)
