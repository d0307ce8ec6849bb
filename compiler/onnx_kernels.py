"""ONNX operator semantics for the reference evaluator (opset 21, the importer's canonical
opset), in numpy float32 where ONNX says float.

Each kernel takes the op and its input arrays (None for an omitted optional input) and
returns the output arrays. Conv, pooling, Gemm and Softmax go through the reference core
(backends/sparrow/core.py) so that the evaluator computes what the machine computes;
elementwise and data-movement ops are plain numpy. Registered into the evaluator's
KERNELS table by `onnx.<OpType>` name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
from xdsl.ir import Operation

from spaq.backends.sparrow import vector
from spaq.backends.sparrow.isa import BinaryOp, ReduceOp, UnaryOp
from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import Evaluation, conv_nchw, float_gemm, kernel, kernel_2d, result_shape, where

# ------------------------------------------------------------------ elementwise


def erf(x: np.ndarray) -> np.ndarray:
    """erf in float64 by math.erf's definition (for inputs wider than float32)."""
    flat = np.asarray(x, np.float64).ravel()
    return np.fromiter((math.erf(v) for v in flat), np.float64, flat.size).reshape(np.shape(x))


def _vector_or(fn32: Callable[[np.ndarray], np.ndarray], fallback: Callable[[np.ndarray], np.ndarray]):
    """float32 tensors compute with the vector unit's defined float32 function (vector.py:
    what VUN computes on the machine, so the simulator equals the evaluator bit for bit);
    other types (float64, float16, ...) with `fallback`."""
    def run(op: Operation, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.float32:
            return fn32(x)
        return fallback(x)

    return run


def _same_type(fn: Callable[..., np.ndarray]) -> Callable[[Evaluation, Operation, list[Any]], list[np.ndarray]]:
    def run(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
        out = fn(op, *args)
        return [np.asarray(out).astype(args[0].dtype, copy=False)]

    return run


UNARY: dict[str, Callable[..., np.ndarray]] = {
    "Abs": lambda op, x: np.abs(x),
    "Neg": lambda op, x: np.negative(x),
    "Sqrt": lambda op, x: np.sqrt(x),
    "Reciprocal": lambda op, x: np.reciprocal(x),
    "Exp": _vector_or(lambda x: vector.exp(x), np.exp),
    "Log": _vector_or(lambda x: vector.log(x), np.log),  # VUN log
    "Tanh": _vector_or(lambda x: vector.tanh(x), np.tanh),
    "Erf": _vector_or(lambda x: vector.erf(x), erf),
    "Floor": lambda op, x: np.floor(x),
    "Ceil": lambda op, x: np.ceil(x),
    "Sigmoid": lambda op, x: 1 / (1 + np.exp(-x.astype(np.float64))),
    "LeakyRelu": lambda op, x: np.where(x >= 0, x, x * np.float32(op.attr("alpha", 0.01))),
    "HardSigmoid": lambda op, x: np.clip(x * np.float32(op.attr("alpha", 0.2)) + np.float32(op.attr("beta", 0.5)), 0, 1),
    "HardSwish": lambda op, x: x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1),
    "Gelu": lambda op, x: _gelu(x, op.attr("approximate", "none")),
    "Sign": lambda op, x: np.sign(x),
    "Round": lambda op, x: np.round(x),
    "Sin": _vector_or(lambda x: vector.sin(x), np.sin),  # VUN sin
    "Cos": _vector_or(lambda x: vector.cos(x), np.cos),  # VUN cos
    "Softplus": lambda op, x: np.logaddexp(0, x.astype(np.float64)),
    "Softsign": lambda op, x: x / (1 + np.abs(x)),
    "Elu": lambda op, x: np.where(x > 0, x, np.float32(op.attr("alpha", 1.0)) * np.expm1(x)),
    "Selu": lambda op, x: np.float32(op.attr("gamma", 1.0507009873554805)) * np.where(
        x > 0, x, np.float32(op.attr("alpha", 1.6732632423543772)) * np.expm1(x)),
    "Celu": lambda op, x: np.maximum(0, x) + np.minimum(0, np.float32(op.attr("alpha", 1.0)) * np.expm1(
        x / np.float32(op.attr("alpha", 1.0)))),
    "ThresholdedRelu": lambda op, x: np.where(x > np.float32(op.attr("alpha", 1.0)), x, 0),
}

BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
    "Div": lambda a, b: (np.fix(a / b) if np.issubdtype(a.dtype, np.integer) else np.divide(a, b)),
    "Pow": lambda a, b: np.power(a.astype(np.float64), b).astype(a.dtype),
    "PRelu": lambda x, s: np.where(x >= 0, x, x * s),
}


@kernel("onnx.Mod")
def _mod(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    a, b = args
    out = np.fmod(a, b) if op.attr("fmod", 0) else np.mod(a, b)
    return [out.astype(a.dtype)]


@kernel("onnx.IsNaN", "onnx.IsInf")
def _is_special(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x = args[0]
    if op.name == "onnx.IsNaN":
        return [np.isnan(x)]
    pos, neg = op.attr("detect_positive", 1), op.attr("detect_negative", 1)
    return [(np.isposinf(x) & bool(pos)) | (np.isneginf(x) & bool(neg))]


@kernel("onnx.CastLike")
def _cast_like(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    return [_saturating_cast(args[0], args[1].dtype, op.attr("saturate", 1))]


@kernel("onnx.ArgMax", "onnx.ArgMin")
def _arg(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, axis = args[0], op.attr("axis", 0)
    pick = np.argmax if op.name == "onnx.ArgMax" else np.argmin
    if op.attr("select_last_index", 0):
        flipped = np.flip(x, axis=axis)
        idx = x.shape[axis] - 1 - pick(flipped, axis=axis)
    else:
        idx = pick(x, axis=axis)
    if op.attr("keepdims", 1):
        idx = np.expand_dims(idx, axis)
    return [idx.astype(np.int64)]


@kernel("onnx.InstanceNormalization")
def _instance_norm(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, scale, bias = args
    axes = tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + np.float32(op.attr("epsilon", 1e-5))) * scale.reshape(shape) + bias.reshape(shape)
    return [y.astype(x.dtype)]


@kernel("onnx.DepthToSpace", "onnx.SpaceToDepth")
def _depth_space(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, b = args[0], op.attr("blocksize")
    n, c, h, w = x.shape
    if op.name == "onnx.SpaceToDepth":
        y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
        return [y.reshape(n, c * b * b, h // b, w // b)]
    if op.attr("mode", "DCR") == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [y.reshape(n, c // (b * b), h * b, w * b)]

COMPARE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
}

VARIADIC: dict[str, Callable[[list[np.ndarray]], np.ndarray]] = {
    "Max": lambda xs: _fold(np.maximum, xs), "Min": lambda xs: _fold(np.minimum, xs),
    "Sum": lambda xs: _fold(np.add, xs), "Mean": lambda xs: _fold(np.add, xs) / np.float32(len(xs)),
}


def _fold(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], xs: list[np.ndarray]) -> np.ndarray:
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "none" and x.dtype == np.float32:
        return vector.gelu(x)  # VUN gelu: (0.5 x) * (1 + erf(x * 0.70710677)) in float32
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        return 0.5 * x64 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x64 + 0.044715 * x64**3)))
    return 0.5 * x64 * (1 + erf(x64 / math.sqrt(2)))


for _name, _fn in UNARY.items():
    kernel(f"onnx.{_name}")(_same_type(_fn))

for _name, _fn in BINARY.items():
    kernel(f"onnx.{_name}")(_same_type(lambda op, a, b, _f=_fn: _f(a, b)))


def _compare(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    return lambda ev, op, args: [fn(args[0], args[1])]


for _name, _fn in COMPARE.items():
    kernel(f"onnx.{_name}")(_compare(_fn))

for _name, _fn in VARIADIC.items():
    kernel(f"onnx.{_name}")(lambda ev, op, args, _f=_fn: [np.asarray(_f(args)).astype(args[0].dtype)])


@kernel("onnx.Not")
def _not(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    return [np.logical_not(args[0])]


@kernel("onnx.Where")
def _where(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    return [np.where(args[0], args[1], args[2])]


@kernel("onnx.Clip")
def _clip(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, lo, hi = (args + [None, None])[:3]
    y = x
    if lo is not None:
        y = np.maximum(y, lo)
    if hi is not None:
        y = np.minimum(y, hi)
    return [y.astype(x.dtype)]


@kernel("onnx.Cast")
def _cast(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    from onnx import helper

    return [_saturating_cast(args[0], np.dtype(helper.tensor_dtype_to_np_dtype(op.attr("to"))), op.attr("saturate", 1))]


def _saturating_cast(x: np.ndarray, to: np.dtype, saturate: int) -> np.ndarray:
    """Cast; to float8 with ONNX's `saturate` rule (clip finite values to the largest)."""
    if to.name.startswith("float8") and saturate and x.dtype.kind == "f":
        limit = float(ml_dtypes.finfo(to).max)
        x = np.clip(x, -limit, limit)  # infinities too; NaN stays NaN
    return x.astype(to)


# ------------------------------------------------------------------ reductions and normalisation


def _axes(op: Operation, args: list[Any], rank: int) -> tuple[int, ...] | None:
    """Reduction axes from the `axes` input (opset 18+) or attribute; None = all."""
    axes = args[1] if len(args) > 1 and args[1] is not None else op.attr("axes")
    if axes is None or len(axes) == 0:
        return () if op.attr("noop_with_empty_axes", 0) else None
    return tuple(int(a) % rank for a in np.asarray(axes).ravel())


REDUCE: dict[str, Callable[..., np.ndarray]] = {
    "ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max, "ReduceMin": np.min,
    "ReduceL2": lambda x, axis, keepdims: np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=axis, keepdims=keepdims)),
    "ReduceL1": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "ReduceProd": np.prod,
    "ReduceSumSquare": lambda x, axis, keepdims: np.sum(x.astype(np.float64) ** 2, axis=axis, keepdims=keepdims),
    "ReduceLogSum": lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "ReduceLogSumExp": lambda x, axis, keepdims: np.log(np.sum(np.exp(x.astype(np.float64)), axis=axis,
                                                               keepdims=keepdims)),
}


def _identity(dtype: np.dtype, maximum: bool):
    """ReduceMax's (maximum) or ReduceMin's value over no elements: -inf / +inf, the integer
    type's min / max, false / true."""
    if dtype == np.bool_:
        return not maximum
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return info.min if maximum else info.max
    return -np.inf if maximum else np.inf


def _reduce(fn: Callable[..., np.ndarray]):
    def run(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
        x = args[0]
        axes = _axes(op, args, x.ndim)
        if axes == ():
            return [x]
        if x.size == 0 and fn in (np.max, np.min):  # an empty reduction is ONNX's identity
            y = fn(x, axis=axes, keepdims=bool(op.attr("keepdims", 1)), initial=_identity(x.dtype, fn is np.max))
        else:
            y = fn(x, axis=axes, keepdims=bool(op.attr("keepdims", 1)))
        return [np.asarray(y).astype(x.dtype)]

    return run


for _name, _fn in REDUCE.items():
    kernel(f"onnx.{_name}")(_reduce(_fn))


@kernel("onnx.LogSoftmax")
def _log_softmax(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x = args[0].astype(np.float64)
    axis = op.attr("axis", -1)
    shifted = x - x.max(axis=axis, keepdims=True)
    return [(shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))).astype(args[0].dtype)]


def layer_norm_rows(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None,
                    epsilon: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LayerNormalization of each row of x [R, C] (float32) as the vector unit computes it,
    one vector.py call per instruction lower-to-sparrow emits (docs/isa.md, "Idioms"):

        mean = vred sum   (x, scale 1/C)          [R, 1]
        d    = vbin sub   (x, mean: bcast col)
        var  = vred sumsq (d, scale 1/C)          [R, 1]
        inv  = vun rsqrt  (vbin add (var, imm epsilon))
        y    = vbin add   (vbin mul (vbin mul (d, inv: col), gamma: row), beta: row)

    Returns (y, mean, inv)."""
    c = x.shape[1]
    inv_c = np.float32(1.0 / c)
    mean = vector.reduce(ReduceOp.SUM, x, 1, inv_c)
    d = vector.binary(BinaryOp.SUB, x, mean)
    var = vector.reduce(ReduceOp.SUMSQ, d, 1, inv_c)
    inv = vector.unary(UnaryOp.RSQRT, vector.binary(BinaryOp.ADD, var, np.float32(epsilon)))
    y = vector.binary(BinaryOp.MUL, d, inv)
    y = vector.binary(BinaryOp.MUL, y, gamma, out=y)
    if beta is not None:
        y = vector.binary(BinaryOp.ADD, y, beta, out=y)
    return y, mean, inv


@kernel("onnx.LayerNormalization")
def _layer_norm(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, scale, bias = (args + [None])[:3]
    axis = op.attr("axis", -1) % x.ndim
    if x.dtype == np.float32 and scale.dtype == np.float32 and (bias is None or bias.dtype == np.float32):
        rows = int(np.prod(x.shape[:axis], dtype=np.int64))
        cols = int(np.prod(x.shape[axis:], dtype=np.int64))
        if rows and cols:  # normalise each row of the [rows, cols] view, as the machine does
            row_of = lambda p: np.ascontiguousarray(np.broadcast_to(p, x.shape[axis:]).reshape(1, cols))  # noqa: E731
            y, mean, inv = layer_norm_rows(np.ascontiguousarray(x).reshape(rows, cols), row_of(scale),
                                           None if bias is None else row_of(bias), op.attr("epsilon", 1e-5))
            stat_shape = x.shape[:axis] + (1,) * (x.ndim - axis)
            outs = [y.reshape(x.shape), mean.reshape(stat_shape), inv.reshape(stat_shape)]
            return outs[: len(op.results)]
    axes = tuple(range(axis, x.ndim))
    x32 = x.astype(np.float32)
    mean = x32.mean(axis=axes, keepdims=True)
    var = ((x32 - mean) ** 2).mean(axis=axes, keepdims=True)
    inv = 1 / np.sqrt(var + np.float32(op.attr("epsilon", 1e-5)))
    y = (x32 - mean) * inv * scale
    if bias is not None:
        y = y + bias
    outs = [y.astype(x.dtype), mean, inv]
    return outs[: len(op.results)]


@kernel("onnx.LRN")
def _lrn(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x = args[0].astype(np.float64)
    size = op.attr("size")
    alpha, beta, bias = op.attr("alpha", 1e-4), op.attr("beta", 0.75), op.attr("bias", 1.0)
    sq = np.pad(x**2, [(0, 0), ((size - 1) // 2, size // 2)] + [(0, 0)] * (x.ndim - 2))
    window = sum(sq[:, i : i + x.shape[1]] for i in range(size))
    return [(x / (bias + alpha / size * window) ** beta).astype(args[0].dtype)]


# ------------------------------------------------------------------ data movement


@kernel("onnx.Shape")
def _shape(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    shape = np.asarray(args[0].shape, np.int64)
    start, end = op.attr("start", 0), op.attr("end", None)
    return [shape[start:end]]


@kernel("onnx.Reshape", "onnx.Squeeze", "onnx.Unsqueeze", "onnx.Expand")
def _to_result_shape(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    """Shape-changing ops whose result shape the IR type already states."""
    shape = result_shape(op)
    x = args[0]
    if op.name == "onnx.Expand":
        return [np.broadcast_to(x, shape).copy()]
    return [x.reshape(shape)]


@kernel("onnx.Concat")
def _concat(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    return [np.concatenate(args, axis=op.attr("axis"))]


@kernel("onnx.Split")
def _split(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, axis = args[0], op.attr("axis", 0)
    sizes = [result_shape(op, i)[axis] for i in range(len(op.results))]
    return np.split(x, np.cumsum(sizes)[:-1], axis=axis)


@kernel("onnx.Slice")
def _slice(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, starts, ends = args[0], args[1], args[2]
    axes = args[3] if len(args) > 3 and args[3] is not None else np.arange(len(starts))
    steps = args[4] if len(args) > 4 and args[4] is not None else np.ones(len(starts), np.int64)
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        dim = x.shape[int(a)]
        s, e, st = int(s), int(e), int(st)
        if st > 0:
            s, e = (max(0, min(dim, v + dim if v < 0 else v)) for v in (s, e))
        else:
            s = max(-1, min(dim - 1, s + dim if s < 0 else s))
            e = max(-1, min(dim - 1, e + dim if e < 0 else e))
            e = None if e == -1 else e
        index[int(a)] = slice(s, e, st)
    return [x[tuple(index)].copy()]


@kernel("onnx.Gather")
def _gather(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, idx = args
    axis = op.attr("axis", 0) % x.ndim
    idx = np.where(idx < 0, idx + x.shape[axis], idx)
    return [np.take(x, idx, axis=axis)]


@kernel("onnx.GatherND")
def _gather_nd(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, idx = args
    b = op.attr("batch_dims", 0)
    depth = idx.shape[-1]
    batch = x.shape[:b]
    xb = x.reshape((-1,) + x.shape[b:])
    ib = idx.reshape((xb.shape[0], -1, depth))
    out = np.stack([xb[i][tuple(np.moveaxis(ib[i], -1, 0))] for i in range(xb.shape[0])])
    return [out.reshape(batch + idx.shape[b:-1] + x.shape[b + depth:])]


@kernel("onnx.Tile")
def _tile(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    return [np.tile(args[0], args[1])]


@kernel("onnx.Pad")
def _pad(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, pads = args[0], np.asarray(args[1])
    value = args[2] if len(args) > 2 and args[2] is not None else 0
    axes = args[3] if len(args) > 3 and args[3] is not None else np.arange(x.ndim)
    width = [(0, 0)] * x.ndim
    for i, a in enumerate(axes):
        width[int(a) % x.ndim] = (int(pads[i]), int(pads[i + len(axes)]))
    if min(min(w) for w in width) < 0:
        raise SpaqError(f"negative Pad amounts are not supported{where(op)}")
    mode = op.attr("mode", "constant")
    if mode == "constant":
        return [np.pad(x, width, constant_values=np.asarray(value).item() if np.size(value) else 0)]
    return [np.pad(x, width, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])]


@kernel("onnx.ConstantOfShape")
def _constant_of_shape(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    value = op.attr("value")
    fill = np.zeros(1, np.float32) if value is None else np.asarray(value).ravel()
    return [np.full(tuple(int(d) for d in args[0]), fill[0], dtype=fill.dtype)]


@kernel("onnx.Range")
def _range(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    start, limit, delta = (np.asarray(a).item() for a in args)
    return [np.arange(start, limit, delta).astype(args[0].dtype)]


@kernel("onnx.Einsum")
def _einsum(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    return [np.einsum(op.attr("equation"), *args).astype(args[0].dtype)]


# ------------------------------------------------------------------ pooling, resize


@kernel("onnx.GlobalAveragePool", "onnx.GlobalMaxPool")
def _global_pool(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x = args[0]
    if x.dtype == np.float32 and x.ndim >= 3:
        return [global_pool_rows(x, op.name.endswith("AveragePool"))]
    fn = np.mean if op.name.endswith("AveragePool") else np.max
    return [fn(x, axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype)]


def global_pool_rows(x: np.ndarray, average: bool) -> np.ndarray:
    """A float32 global pool as the vector unit computes it on each image's [C, H·W] rows:
    VRED max, or VRED sum (the tree sum) then VBIN div by H·W (a `globalpool` layer)."""
    rows = np.ascontiguousarray(x, np.float32).reshape(-1, math.prod(x.shape[2:]))
    if not average:
        y = vector.reduce(ReduceOp.MAX, rows, 1)
    else:
        y = vector.binary(BinaryOp.DIV, vector.reduce(ReduceOp.SUM, rows, 1), np.float32(rows.shape[1]))
    return y.reshape(x.shape[:2] + (1,) * (x.ndim - 2))


def _window_sums(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
                 oh: int, ow: int) -> np.ndarray:
    """Sums over the (oh, ow) windows of the last two axes of x (already padded)."""
    view = np.lib.stride_tricks.sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(-2, -1))
    view = view[..., : sh * oh : sh, : sw * ow : sw, ::dh, ::dw]
    return view.sum(axis=(-2, -1))


def average_pool_counts(op: Operation) -> np.ndarray:
    """How many input elements each output pixel of an AveragePool averages over, [oh, ow]
    float32: the window's taps inside the image, plus the declared padding when
    count_include_pad (never the far-side extension ceil_mode adds)."""
    from spaq.compiler.evaluator import conv_attributes

    kh, kw = kernel_2d(op)
    a = conv_attributes(op, kh, kw)  # pads include the far-side extension of ceil_mode
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = a["strides"], a["dilations"], a["pads"]
    oh, ow = (1, 1, *result_shape(op)[2:])[-2:]
    h, w = (1, 1, *op.operands[0].type.get_shape()[2:])[-2:]
    declared = list(op.attr("pads", [0, 0, 0, 0])) if op.attr("auto_pad", "NOTSET") == "NOTSET" else [pt, pl, pb, pr]
    if len(declared) == 2:
        declared = [0, declared[0], 0, declared[1]]
    extent = ((kh - 1) * dh + 1 + sh * (oh - 1), (kw - 1) * dw + 1 + sw * (ow - 1))
    region = np.ones((h, w))
    if op.attr("count_include_pad", 0):  # count declared padding, not the ceil_mode extension
        region = np.pad(region, [(declared[0], declared[2]), (declared[1], declared[3])], constant_values=1)
        shift = [(pt - declared[0], 0), (pl - declared[1], 0)]
    else:
        shift = [(pt, 0), (pl, 0)]
    region = np.pad(region, shift)
    region = np.pad(region, [(0, max(0, extent[0] - region.shape[0])), (0, max(0, extent[1] - region.shape[1]))])
    return _window_sums(region, kh, kw, sh, sw, dh, dw, oh, ow).astype(np.float32)


@kernel("onnx.AveragePool")
def _average_pool(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    from spaq.backends.sparrow import core
    from spaq.compiler.evaluator import conv_attributes

    x = args[0]
    if x.ndim == 3:  # 1-D pooling: 2-D over rows of height 1
        return [y[:, :, 0] for y in _average_pool(ev, op, [x[:, :, None, :]])]
    kh, kw = kernel_2d(op)
    a = conv_attributes(op, kh, kw)  # pads include the far-side extension of ceil_mode
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = a["strides"], a["dilations"], a["pads"]
    oh, ow = (1, 1, *result_shape(op)[2:])[-2:]
    h, w = x.shape[2:]
    count = average_pool_counts(op)
    if x.dtype == np.float32:  # as an `avgpool` layer computes it: IM2COL, VRED sum of each window, VBIN div
        out = np.empty((x.shape[0], x.shape[1], oh, ow), np.float32)
        for b, img in enumerate(x):
            cols = core.im2col(np.ascontiguousarray(img.transpose(1, 2, 0)), kh, kw, sh, sw, pt, pl, pb, pr, dh, dw)
            sums = vector.reduce(ReduceOp.SUM, cols.reshape(-1, kh * kw), 1).reshape(oh * ow, -1)
            y = vector.binary(BinaryOp.DIV, sums, count.reshape(-1, 1))
            out[b] = y.reshape(oh, ow, -1).transpose(2, 0, 1)
        return [out]
    extent = ((kh - 1) * dh + 1 + sh * (oh - 1), (kw - 1) * dw + 1 + sw * (ow - 1))
    widths = [(pt, max(0, extent[0] - h - pt)), (pl, max(0, extent[1] - w - pl))]
    total = _window_sums(np.pad(x.astype(np.float64), [(0, 0), (0, 0), *widths]), kh, kw, sh, sw, dh, dw, oh, ow)
    return [(total / count).astype(x.dtype)]


def onnx_reference(op: Operation, args: list[Any]) -> list[np.ndarray]:
    """Run one op through ONNX's own reference implementation (onnx.reference): the
    definition of the operator, used for variants spaq does not implement natively."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    from spaq.dialects.onnx import OnnxOp

    assert isinstance(op, OnnxOp)
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(args)]
    attrs = {}
    for key in op.attributes:
        if "." in key:
            continue
        value = op.attr(key)
        attrs[key] = numpy_helper.from_array(value) if isinstance(value, np.ndarray) else value
    node = helper.make_node(op.op_type, names, [f"out{i}" for i in range(len(op.results))], **attrs)
    feeds = {n: a for n, a in zip(names, args) if n}
    with np.errstate(all="ignore"):
        return list(ReferenceEvaluator(node).run(None, feeds))


@kernel("onnx.Resize")
def _resize(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x = args[0]
    native = (op.attr("mode", "nearest") in ("nearest", "linear") and not op.attr("antialias", 0)
              and op.attr("axes") is None and op.attr("coordinate_transformation_mode", "half_pixel")
              in ("asymmetric", "half_pixel", "pytorch_half_pixel"))
    if not native:
        return [np.asarray(onnx_reference(op, args)[0]).astype(x.dtype)]
    out_shape = result_shape(op)
    scales = args[2] if len(args) > 2 and args[2] is not None and np.size(args[2]) else None
    mode = op.attr("mode", "nearest")
    ctm = op.attr("coordinate_transformation_mode", "half_pixel")
    y = x.astype(np.float64)
    for axis, (n_in, n_out) in enumerate(zip(x.shape, out_shape)):
        if n_in == n_out:
            continue
        scale = float(scales[axis]) if scales is not None else n_out / n_in
        o = np.arange(n_out, dtype=np.float64)
        if ctm == "asymmetric":
            src = o / scale
        elif ctm in ("half_pixel", "pytorch_half_pixel"):
            src = (o + 0.5) / scale - 0.5
            if ctm == "pytorch_half_pixel" and n_out == 1:
                src = np.zeros_like(o)
        else:
            raise SpaqError(f"Resize coordinate_transformation_mode '{ctm}' is not supported{where(op)}")
        if mode == "nearest":
            rule = op.attr("nearest_mode", "round_prefer_floor")
            idx = {"floor": np.floor, "ceil": np.ceil,
                   "round_prefer_floor": lambda v: np.ceil(v - 0.5),
                   "round_prefer_ceil": lambda v: np.floor(v + 0.5)}[rule](src)
            y = np.take(y, np.clip(idx.astype(np.int64), 0, n_in - 1), axis=axis)
        elif mode == "linear":
            src = np.clip(src, 0, n_in - 1)
            lo = np.floor(src).astype(np.int64)
            hi = np.minimum(lo + 1, n_in - 1)
            frac = (src - lo).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
            y = np.take(y, lo, axis=axis) * (1 - frac) + np.take(y, hi, axis=axis) * frac
        else:
            raise SpaqError(f"Resize mode '{mode}' is not supported{where(op)}")
    return [y.astype(x.dtype)]


# ------------------------------------------------------------------ convolution family


@kernel("onnx.ConvTranspose")
def _conv_transpose(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, w, *rest = args
    if x.ndim != 4 or op.attr("group", 1) != 1:
        raise SpaqError(f"ConvTranspose supports 2-D, group 1 only{where(op)}")
    n, c, h, wd = x.shape
    _, oc, kh, kw = w.shape
    sh, sw = op.attr("strides", [1, 1])
    dh, dw = op.attr("dilations", [1, 1])
    pt, pl, _, _ = op.attr("pads", [0, 0, 0, 0])
    full = np.zeros((n, oc, (h - 1) * sh + (kh - 1) * dh + 1 + 2 * kh, (wd - 1) * sw + (kw - 1) * dw + 1 + 2 * kw))
    cols = np.einsum("nchw,cokl->nohwkl", x.astype(np.float64), w.astype(np.float64))
    for i in range(kh):
        for j in range(kw):
            full[:, :, i * dh : i * dh + (h - 1) * sh + 1 : sh, j * dw : j * dw + (wd - 1) * sw + 1 : sw] += cols[..., i, j]
    _, _, oh, ow = result_shape(op)
    y = full[:, :, pt : pt + oh, pl : pl + ow]
    if rest and rest[0] is not None:
        y = y + rest[0].reshape(1, -1, 1, 1)
    return [y.astype(x.dtype)]


def _along_axis(op: Operation, x: np.ndarray, value: np.ndarray | None, dtype: Any) -> np.ndarray:
    """A QDQ scale or zero point (None: 0) as `dtype`, shaped to broadcast along the op's axis."""
    if value is None:
        return np.zeros((), dtype)
    if np.size(value) == 1:
        return value.astype(dtype).reshape(())
    axis = op.attr("axis", 1) % x.ndim
    if op.attr("block_size", 0) and np.ndim(value) == x.ndim:  # blocked: one value per block along the axis
        return np.repeat(value.astype(dtype), op.attr("block_size"), axis=axis)[
            tuple(slice(0, n) if a == axis else slice(None) for a, n in enumerate(x.shape))]
    shape = [1] * x.ndim
    shape[axis] = -1
    return value.astype(dtype).reshape(shape)


@kernel("onnx.DequantizeLinear")
def _dequantize_linear(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, scale, zp = (args + [None])[:3]
    wide = np.float32 if x.dtype.name.startswith(("float8", "float4")) else np.int64
    y = (x.astype(wide) - _along_axis(op, x, zp, wide)) * _along_axis(op, x, scale, scale.dtype)
    return [y.astype(scale.dtype)]


@kernel("onnx.QuantizeLinear")
def _quantize_linear(ev: Evaluation, op: Operation, args: list[Any]) -> list[np.ndarray]:
    x, scale, zp = (args + [None])[:3]
    out_dtype = np.dtype(np.uint8) if zp is None else zp.dtype
    if zp is None and op.attr("output_dtype", 0):
        from onnx.helper import tensor_dtype_to_np_dtype

        out_dtype = np.dtype(tensor_dtype_to_np_dtype(op.attr("output_dtype")))
    scaled = x.astype(np.float32) / _along_axis(op, x, scale, np.float32)
    if out_dtype.name.startswith(("float8", "float4")):
        return [_saturating_cast(scaled + _along_axis(op, x, zp, np.float32), out_dtype, op.attr("saturate", 1))]
    info = ml_dtypes.iinfo(out_dtype)  # also int4 / uint4
    return [np.clip(np.rint(scaled) + _along_axis(op, x, zp, np.int64), int(info.min), int(info.max)).astype(out_dtype)]
