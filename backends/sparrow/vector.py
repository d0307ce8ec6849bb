"""The reference numerics of Sparrow's vector unit (docs/isa.md, "The vector unit").

VBIN, VUN, VRED, VSEL, VQUANT and VREQ compute through these functions, in the simulator and
(later) in the IR evaluator, so both agree bit for bit by construction. Everything is float32
arithmetic in a fixed order of IEEE-754 operations (+ - * /, sqrt, rint, comparisons, ldexp,
each correctly rounded, no fused multiply-add), so a result is the same on every machine:

    y = binary(BinaryOp.ADD, x, bias_row)            # broadcasts like numpy
    y = unary(UnaryOp.GELU, x)                       # 0.5 x (1 + erf(x / sqrt 2))
    m = reduce(ReduceOp.SUM, x, axis=1, scale=1/384) # row means, [rows, 1]
    q, s = dynamic_quantize(x, DType.I8, axis=1)     # per-token int8 + per-row scales

The transcendental functions are *defined* by the float32 approximations below (range
reduction + fixed polynomial / rational, as hardware computes them); their measured maximum
errors are stated in docs/isa.md and checked by tests/backends/test_vector.py.

Values travel as float32 arrays (integer operands are converted first, `to_f32`), results
as float32 until `convert` rounds / saturates them to the output element type. NaN results
are quiet NaNs with an unspecified payload.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import ml_dtypes
import numpy as np

from spaq.backends.sparrow import core
from spaq.backends.sparrow.isa import Bcast, BinaryOp, DType, ReduceOp, UnaryOp
from spaq.backends.sparrow.packing import STORAGE_DTYPE, value_dtype

F32 = np.dtype("<f4")


def _f(bits: int) -> np.float32:
    """The float32 with these IEEE-754 bits (constants are written as bits: no decimal doubt)."""
    return np.uint32(bits).view(np.float32)


_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("spaq_vector_quiet", default=False)


@contextlib.contextmanager
def ieee_errors():
    """numpy's floating-point warnings off for a block of calls: overflow to infinity,
    division by zero and invalid operations are defined IEEE results here, not accidents.
    (The simulator runs a whole program in one such block.)"""
    with np.errstate(all="ignore"):
        token = _QUIET.set(True)
        try:
            yield
        finally:
            _QUIET.reset(token)


def _ieee(fn):
    """Run `fn` inside `ieee_errors` (at once when already inside one)."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        if _QUIET.get():
            return fn(*args, **kwargs)
        with ieee_errors():
            return fn(*args, **kwargs)

    return wrapped


_work = core.Workspace()


def imm(x: float) -> int:
    """The `imm` field encoding of x: its float32 bits (x rounded to float32 first)."""
    return int(np.float32(x).view(np.uint32))


def imm_value(bits: int) -> np.float32:
    """The float32 an `imm` field holds."""
    return _f(bits)


ONE = imm(1.0)  # 0x3f800000, the default `imm` of VUN (input scale) and VRED (output scale)

# -- lane passes (the cost model's per-element multiplier, docs/isa.md) ---------------------

BINARY_PASSES = {op: {BinaryOp.DIV: 2, BinaryOp.MOD: 3, BinaryOp.FMOD: 3, BinaryOp.POW: 8}.get(op, 1)
                 for op in BinaryOp}
UNARY_PASSES = {
    UnaryOp.COPY: 1, UnaryOp.NEG: 1, UnaryOp.ABS: 1, UnaryOp.RCP: 2, UnaryOp.SQRT: 2,
    UnaryOp.RSQRT: 2, UnaryOp.EXP: 4, UnaryOp.ERF: 4, UnaryOp.TANH: 4, UnaryOp.GELU: 5,
    UnaryOp.LOG: 4, UnaryOp.FLOOR: 1, UnaryOp.CEIL: 1, UnaryOp.ROUND: 1, UnaryOp.TRUNC: 1,
    UnaryOp.SIGN: 1, UnaryOp.SIN: 4, UnaryOp.COS: 4,
}
REDUCE_PASSES = {op: 1 for op in ReduceOp}
SELECT_PASSES = 1
DYNAMIC_QUANT_PASSES = 2  # |x| max, then divide / round
REQUANT_PASSES = 1

# -- operands and conversions ---------------------------------------------------------------


def operand_shape(bcast: Bcast, rows: int, cols: int, group: int) -> tuple[int, int] | None:
    """Shape of the tile a broadcast operand reads ([rows, cols] result); None for IMM.

    TILE [rows, cols], ROW [1, cols] (one value per column), COL [rows, 1] (one per row),
    SCALAR [1, 1], GROUP [rows, ceil(cols / group)] (one per `group` consecutive columns)."""
    if bcast is Bcast.TILE:
        return rows, cols
    if bcast is Bcast.ROW:
        return 1, cols
    if bcast is Bcast.COL:
        return rows, 1
    if bcast is Bcast.SCALAR:
        return 1, 1
    if bcast is Bcast.GROUP:
        if group < 1:
            raise ValueError("bcast=group needs group >= 1")
        return rows, -(-cols // group)
    return None


def expand(v: np.ndarray, bcast: Bcast, cols: int, group: int) -> np.ndarray:
    """A broadcast operand read with `operand_shape`, made broadcastable to [rows, cols]."""
    if bcast is Bcast.GROUP and group > 1:
        return np.repeat(v, group, axis=1)[:, :cols]
    return v


def to_f32(values: np.ndarray) -> np.ndarray:
    """Element values as float32: floats exactly, integers rounded to nearest even (exact up
    to 2^24 in magnitude)."""
    return np.asarray(values).astype(np.float32, copy=False)


@_ieee
def to_int(y: np.ndarray, dtype: DType) -> np.ndarray:
    """float32 -> an integer type: round half to even, NaN -> 0, saturate (core.quantize's
    rule with scale 1 and zero point 0)."""
    y = np.asarray(y, np.float32)
    r = np.rint(y, out=_work("int.r", y.shape))
    nan = np.isnan(r, out=_work("int.nan", y.shape, np.bool_))
    if nan.any():
        r[nan] = 0
    lo, hi = dtype.int_range
    if dtype.bits > 24:  # the bounds are not float32 numbers: clamp in float64
        r = r.astype(np.float64)
    return np.clip(r, lo, hi).astype(value_dtype(dtype))


@_ieee
def convert(y: np.ndarray, dtype: DType) -> np.ndarray:
    """A float32 result in the output type: floats round to nearest even (`core.round_to`:
    fp8 saturates, f16/bf16 overflow to infinity), integers as `to_int`."""
    if dtype.is_float:
        return core.round_to(y, dtype)
    return to_int(y, dtype)


# -- elementwise binary ---------------------------------------------------------------------

_ARITH = {BinaryOp.ADD: np.add, BinaryOp.SUB: np.subtract, BinaryOp.MUL: np.multiply, BinaryOp.DIV: np.divide}
_COMPARE = {BinaryOp.EQ: np.equal, BinaryOp.NE: np.not_equal, BinaryOp.LT: np.less,
            BinaryOp.LE: np.less_equal, BinaryOp.GT: np.greater, BinaryOp.GE: np.greater_equal}


def _finish(y: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    if out is None:
        return y
    out[...] = y
    return out


def _zero_sign(y: np.ndarray, a, b, both: bool) -> np.ndarray:
    """Fix the sign of the zero results of an elementwise maximum (`both`: -0 only if both
    operands carry a sign bit; the other one is then negative or -0) or minimum (-0 if
    either does). numpy leaves max(-0, +0) to the operand order."""
    zero = np.equal(y, 0, out=_work("max.zero", y.shape, np.bool_))
    if zero.any():
        sa = np.signbit(np.broadcast_to(a, y.shape)[zero])
        sb = np.signbit(np.broadcast_to(b, y.shape)[zero])
        y[zero] = np.where(sa & sb if both else sa | sb, np.float32(-0.0), np.float32(0.0))
    return y


def maximum(a, b) -> np.ndarray:
    """IEEE 754-2019 maximum: NaN if either is NaN, and -0 < +0."""
    return _zero_sign(np.maximum(a, b, dtype=np.float32), a, b, True)


def minimum(a, b) -> np.ndarray:
    """IEEE 754-2019 minimum: NaN if either is NaN, and -0 < +0."""
    return _zero_sign(np.minimum(a, b, dtype=np.float32), a, b, False)


@_ieee
def binary(op: BinaryOp, a: np.ndarray, b, out: np.ndarray | None = None) -> np.ndarray:
    """a op b, elementwise in float32 (b broadcasts against a [rows, cols]).

    ADD SUB MUL DIV: IEEE float32 (x/0 = +-inf, 0/0 = NaN). MAX MIN: IEEE 754-2019
    maximum / minimum. EQ NE LT LE GT GE: 1.0 where the IEEE comparison holds, else 0.0
    (any comparison with NaN is false except NE). `out` may alias a or b."""
    op = BinaryOp(op)
    if op in _ARITH:
        return _ARITH[op](a, b, out=out, dtype=np.float32)
    if op in _MORE_BINARY:
        return _finish(_MORE_BINARY[op](a, b), out)
    if op is BinaryOp.MAX:
        return _finish(maximum(a, b), out)
    if op is BinaryOp.MIN:
        return _finish(minimum(a, b), out)
    mask = _COMPARE[op](a, b)
    if out is None:
        return mask.astype(np.float32)
    out[...] = mask
    return out


@_ieee
def select(mask: np.ndarray, a, b, out: np.ndarray | None = None) -> np.ndarray:
    """a where mask != 0 (NaN counts as non-zero, -0 as zero), else b; broadcasting."""
    shape = np.broadcast_shapes(np.shape(mask), np.shape(a), np.shape(b))
    y = np.empty(shape, np.float32) if out is None else _work("sel.y", shape)
    np.copyto(y, b)
    np.copyto(y, a, where=np.not_equal(mask, 0))
    return _finish(y, out)


# -- unary functions: the float32 approximations --------------------------------------------
#
# exp(x): Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for
#   e^r, then an exact scaling by 2^n (ldexp: one rounding, gradual underflow).
_EXP_LO, _EXP_HI = _f(0xC2D00000), _f(0x42B20000)  # -104, 89: beyond, e^x is 0 / inf in float32
_LOG2E = _f(0x3FB8AA3B)  # 1.44269502
_LN2_HI = _f(0x3F318000)  # 0.693359375 = 355/512: n * _LN2_HI is exact for |n| < 2^15
_LN2_LO = _f(0xB95E8083)  # -2.12194442e-4 = ln 2 - _LN2_HI, rounded
_EXP_C = tuple(_f(b) for b in (0x3AB5121D, 0x3C091CF0, 0x3D2AAC79, 0x3E2AAA49, 0x3EFFFFFE))  # c6 .. c2

# erf(x) and tanh(x): t = clamp(x, +-c); s = t*t; y = clamp(t * P(s) / Q(s), -1, 1), P and Q
#   evaluated by Horner from the highest coefficient, Q(0) = 1. Minimax (relative) fits.
_ERF_C = _f(0x40800000)  # 4: erf(x) rounds to 1 in float32 from x = 3.8325
_ERF_P = tuple(_f(b) for b in (0x360554A3, 0x399531F6, 0x3B7E8058, 0x3D598157, 0x3E4630E6, 0x3F906EBA))  # p5 .. p0
_ERF_Q = tuple(_f(b) for b in (0x381CF3AA, 0x3A9B6582, 0x3C792826, 0x3DEC3CCE, 0x3F013E62, 0x3F800000))  # q5 .. q0
_TANH_C = _f(0x41100000)  # 9: tanh(x) rounds to 1 in float32 from x = 9.01
_TANH_P = tuple(_f(b) for b in (0x32668D0C, 0x37AD51BD, 0x3B654F6C, 0x3E090D4D, 0x3F800000))  # p4 .. p0
_TANH_Q = tuple(_f(b) for b in (0x355181B8, 0x39AC8B94, 0x3CD417B4, 0x3EEF314D, 0x3F800000))  # q4 .. q0
_SQRT1_2 = _f(0x3F3504F3)  # 0.707106769
_HALF, _ONE = np.float32(0.5), np.float32(1.0)
_TINY = np.finfo(np.float32).tiny  # the smallest normal float32


def _horner(coeffs: tuple[np.float32, ...], s: np.ndarray, p: np.ndarray) -> np.ndarray:
    """((c_n s + c_{n-1}) s + ...) s + c_0 into p, each operation rounded to float32."""
    np.multiply(s, coeffs[0], out=p)
    p += coeffs[1]
    for c in coeffs[2:]:
        p *= s
        p += c
    return p


@_ieee
def exp(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """e^x: t = clamp(x, -104, 89); n = rint(t * log2e); r = (t - n*LN2_HI) - n*LN2_LO;
    p = ((c6 r + c5) r + c4) r + c3) r + c2; y = ldexp(p * r^2 + r + 1, n).
    Error < 1 ulp; +inf for x > 88.7228, 0 for x < -103.97 (subnormals kept); NaN -> NaN."""
    shape = np.shape(x)
    t = np.clip(x, _EXP_LO, _EXP_HI, out=_work("exp.t", shape))
    n = np.multiply(t, _LOG2E, out=_work("exp.n", shape))
    np.rint(n, out=n)
    r = np.multiply(n, _LN2_HI, out=_work("exp.r", shape))
    np.subtract(t, r, out=r)
    r -= np.multiply(n, _LN2_LO, out=t)
    p = _horner(_EXP_C, r, _work("exp.p", shape))
    p *= np.multiply(r, r, out=t)
    p += r
    p += _ONE
    k = _work("exp.k", shape, np.int32)
    np.copyto(k, n, casting="unsafe")  # NaN lanes: k is garbage, p is NaN
    return np.ldexp(p, k, out=np.empty(shape, np.float32) if out is None else out)


def _odd_rational(x, c, pc, qc, out):
    shape = np.shape(x)
    t = np.clip(x, -c, c, out=_work("rat.t", shape))
    s = np.multiply(t, t, out=_work("rat.s", shape))
    p = _horner(pc, s, _work("rat.p", shape))
    p *= t
    p /= _horner(qc, s, t)
    return np.clip(p, -_ONE, _ONE, out=np.empty(shape, np.float32) if out is None else out)


@_ieee
def erf(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """erf(x) as the odd rational t P(t^2) / Q(t^2), t = clamp(x, +-4), degrees 5 / 5 in t^2,
    clamped to [-1, 1]. Odd exactly; |error| <= 4.3e-7 (docs/isa.md)."""
    return _odd_rational(x, _ERF_C, _ERF_P, _ERF_Q, out)


@_ieee
def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """tanh(x) as the odd rational t P(t^2) / Q(t^2), t = clamp(x, +-9), degrees 4 / 4 in t^2,
    P(0) = Q(0) = 1 (so tanh(x) = x for tiny x), clamped to [-1, 1]. Odd exactly."""
    return _odd_rational(x, _TANH_C, _TANH_P, _TANH_Q, out)


@_ieee
def gelu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """GELU (ONNX Gelu, approximate="none"): (0.5 x) * (1 + erf(x * 0.70710677)), each step
    rounded to float32, with the `erf` above. GELU(-inf) is NaN (-inf * 0)."""
    shape = np.shape(x)
    e = erf(np.multiply(x, _SQRT1_2, out=_work("gelu.e", shape)), out=_work("gelu.e", shape))
    e += _ONE
    h = np.multiply(x, _HALF, out=_work("gelu.h", shape))
    return np.multiply(h, e, out=out)


@_ieee
def rsqrt(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """1 / sqrt(x) as two correctly rounded float32 operations: 1 / fl(sqrt(x))."""
    return np.divide(_ONE, np.sqrt(x, out=_work("rsqrt", np.shape(x))), out=out)


def _copy(x, out=None):
    return np.array(x, np.float32) if out is None else _finish(x, out)


def _float64_rounded(fn):
    """f computed in float64 and rounded once to float32: the float32 nearest f(x) (LOG, SIN,
    COS, POW; a second rounding can differ from the correctly rounded result only when f(x)
    lies within 2^-29 relative of a float32 midpoint)."""

    def run(*args, out=None):
        y = fn(*(np.asarray(a, np.float64) for a in args)).astype(np.float32)
        return _finish(y, out)

    return _ieee(run)


log = _float64_rounded(np.log)
sin = _float64_rounded(np.sin)
cos = _float64_rounded(np.cos)
power = _float64_rounded(np.power)


@_ieee
def mod(a, b) -> np.ndarray:
    """Floored remainder a - floor(a / b) * b with the sign of b (Python's %, ONNX Mod with
    fmod=0): r = fmod(a, b) (exact), plus b where r != 0 and its sign differs from b's.
    x mod 0 is NaN."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    r = np.fmod(a, b)
    fix = (r != 0) & (np.signbit(r) != np.signbit(b))
    return np.where(fix, r + b, r).astype(np.float32)


_MORE_BINARY = {
    BinaryOp.MOD: mod,
    BinaryOp.FMOD: lambda a, b: np.fmod(a, b, dtype=np.float32),
    BinaryOp.POW: lambda a, b: power(a, b),
}


def _sign(x, out=None):
    return np.sign(x, out=out)


_UNARY = {
    UnaryOp.LOG: log,
    UnaryOp.SIN: sin,
    UnaryOp.COS: cos,
    UnaryOp.FLOOR: lambda x, out=None: np.floor(x, out=out),
    UnaryOp.CEIL: lambda x, out=None: np.ceil(x, out=out),
    UnaryOp.ROUND: lambda x, out=None: np.rint(x, out=out),
    UnaryOp.TRUNC: lambda x, out=None: np.trunc(x, out=out),
    UnaryOp.SIGN: _sign,
    UnaryOp.COPY: _copy,
    UnaryOp.NEG: lambda x, out=None: np.negative(x, out=out),
    UnaryOp.ABS: lambda x, out=None: np.abs(x, out=out),
    UnaryOp.EXP: exp,
    UnaryOp.RCP: lambda x, out=None: np.divide(_ONE, x, out=out),
    UnaryOp.SQRT: lambda x, out=None: np.sqrt(x, out=out),
    UnaryOp.RSQRT: rsqrt,
    UnaryOp.ERF: erf,
    UnaryOp.TANH: tanh,
    UnaryOp.GELU: gelu,
}


@_ieee
def unary(op: UnaryOp, x: np.ndarray, scale=_ONE, out: np.ndarray | None = None) -> np.ndarray:
    """f(fl(scale * x)) elementwise; `out` may alias x. With scale 1 the product is x itself."""
    x = np.asarray(x, np.float32)
    scale = np.float32(scale)
    if scale != _ONE:
        x = np.multiply(x, scale, out=_work("unary.x", x.shape))
    return _UNARY[UnaryOp(op)](x, out=out)


# -- reductions -----------------------------------------------------------------------------


def _tree(x: np.ndarray, axis: int, fold, tag: str) -> np.ndarray:
    """Reduce along `axis` (keepdims) by the balanced binary tree of `tree_sum`, with `fold`
    (np.add or np.maximum / np.minimum) as the combining operation and -0.0 as the padding."""
    v = np.asarray(x, np.float32)
    n = v.shape[axis]
    if n == 1:
        return v.copy()
    h = 1 << ((n - 1).bit_length() - 1)  # P / 2
    if axis == 0:  # fold whole rows: every operation is on contiguous memory
        acc = _work(tag, (h, v.shape[1]))
        fold(v[: n - h], v[h:], out=acc[: n - h])
        np.copyto(acc[n - h :], v[n - h : h])  # their partners are padding: a op -0.0 = a
        while h > 1:
            h //= 2
            fold(acc[:h], acc[h : 2 * h], out=acc[:h])
        return acc[:1].copy()
    rows = v.shape[0]
    if v.size <= 1 << 16:  # a small tile: transposed whole (by row blocks, cache-friendly), then rows fold
        t = _work(tag + ".t", (n, rows))
        for r in range(0, rows, 64):
            np.copyto(t[:, r : r + 64], v[r : r + 64].T)
        return _tree(t, 0, fold, tag + ".u").T
    acc = _work(tag, (rows, h))
    fold(v[:, : n - h], v[:, h:], out=acc[:, : n - h])
    np.copyto(acc[:, n - h :], v[:, n - h : h])
    while h > 32:  # numpy runs a narrow strided operation row by row: ~10 ns a row
        h //= 2
        fold(acc[:, :h], acc[:, h : 2 * h], out=acc[:, :h])
    # the last levels on the transpose, so each operation runs along all rows at once
    if h == 1:
        return acc[:, :1].copy()
    t = _work(tag + ".t", (h, rows))
    np.copyto(t, acc[:, :h].T)
    return _tree(t, 0, fold, tag + ".u").T


@_ieee
def tree_sum(x: np.ndarray, axis: int) -> np.ndarray:
    """Sum along `axis` (keepdims) by a balanced binary tree: pad the n values with -0.0 to
    P = 2^ceil(log2 n), then repeatedly add the upper half to the lower half
    (a[j] = a[j] + a[j + P/2], j < P/2) until one value is left. Every add is float32."""
    return _tree(x, axis, np.add, "sum")


def _fold_along(x: np.ndarray, axis: int, fold) -> np.ndarray:
    """fold.reduce along `axis` (keepdims), in an unspecified order (for np.maximum /
    np.minimum, whose result does not depend on it but for the sign of a zero). Rows go
    through reduceat: numpy reduces a short contiguous axis row by row, several times slower."""
    if axis == 1 and x.shape[0] > 1:
        x = np.ascontiguousarray(x)
        return fold.reduceat(x.reshape(-1), np.arange(0, x.size, x.shape[1])).reshape(-1, 1)
    return fold.reduce(x, axis=axis, keepdims=True)


def _extreme(x: np.ndarray, axis: int, is_max: bool) -> np.ndarray:
    """IEEE 754-2019 maximum / minimum along axis (keepdims): NaN if any NaN, -0 < +0."""
    y = _fold_along(x, axis, np.maximum if is_max else np.minimum)  # NaN propagates
    zero = y == 0
    if zero.any():  # the extreme is a zero: its sign depends on which zeros the lane holds
        want = ~np.signbit(x) if is_max else np.signbit(x)
        hit = ((x == 0) & want).any(axis=axis, keepdims=True)
        signed = np.where(hit == is_max, np.float32(0.0), np.float32(-0.0))
        y = np.where(zero, signed, y)
    return y.astype(np.float32, copy=False)


@_ieee
def reduce(op: ReduceOp, x: np.ndarray, axis: int = 1, scale=_ONE) -> np.ndarray:
    """fl(scale * r) with r the reduction of x [rows, cols] along `axis` (1: each row ->
    [rows, 1]; 0: each column -> [1, cols]): SUM (tree_sum), SUMSQ (tree_sum of fl(x*x)),
    MAX / MIN (IEEE maximum / minimum), MAXABS (maximum of |x|)."""
    op = ReduceOp(op)
    x = np.asarray(x, np.float32)
    if op in _ARG:
        return arg_extreme(x, axis, op) * np.float32(scale)
    if op is ReduceOp.PROD:
        r = _tree(x, axis, _product, "prod")
    elif op is ReduceOp.SUM:
        r = tree_sum(x, axis)
    elif op is ReduceOp.SUMSQ:
        r = tree_sum(np.multiply(x, x, out=_work("sumsq", x.shape)), axis)
    elif op is ReduceOp.MAXABS:
        r = _extreme(np.abs(x, out=_work("maxabs", x.shape)), axis, True)
    else:
        r = _extreme(x, axis, op is ReduceOp.MAX)
    return r * np.float32(scale)


def _product(a, b, out=None):
    """The combining step of PROD's tree (`tree_sum`'s tree, float32 products; a value whose
    partner is padding passes through unchanged)."""
    return np.multiply(a, b, out=out)


_ARG = (ReduceOp.ARGMAX, ReduceOp.ARGMIN, ReduceOp.ARGMAX_LAST, ReduceOp.ARGMIN_LAST)


@_ieee
def arg_extreme(x: np.ndarray, axis: int, op: ReduceOp) -> np.ndarray:
    """The position (0-based, as a float32) along `axis` of the first (ARGMAX / ARGMIN) or last
    (ARGMAX_LAST / ARGMIN_LAST) element equal to the maximum / minimum; a NaN counts as
    larger and smaller than every number (the position of the first / last NaN)."""
    x = np.asarray(x, np.float32)
    is_max = op in (ReduceOp.ARGMAX, ReduceOp.ARGMAX_LAST)
    last = op in (ReduceOp.ARGMAX_LAST, ReduceOp.ARGMIN_LAST)
    v = np.flip(x, axis) if last else x
    i = (np.argmax if is_max else np.argmin)(v, axis=axis)
    nan = np.isnan(v)
    if nan.any():
        i = np.where(nan.any(axis=axis), np.argmax(nan, axis=axis), i)
    if last:
        i = x.shape[axis] - 1 - i
    return np.expand_dims(i, axis).astype(np.float32)


# -- integer mode ---------------------------------------------------------------------------
#
# VBIN, VUN and VSEL whose operands (every one read from a tile) and result are all integer
# types compute on the integers exactly, not through float32: the operations below in int64,
# the result saturated to the result type's range. Other operations on integers go through
# float32 as usual.

INT_BINARY = (BinaryOp.ADD, BinaryOp.SUB, BinaryOp.MUL, BinaryOp.DIV, BinaryOp.MAX, BinaryOp.MIN,
              BinaryOp.EQ, BinaryOp.NE, BinaryOp.LT, BinaryOp.LE, BinaryOp.GT, BinaryOp.GE,
              BinaryOp.MOD, BinaryOp.FMOD)
INT_UNARY = (UnaryOp.COPY, UnaryOp.NEG, UnaryOp.ABS, UnaryOp.SIGN, UnaryOp.FLOOR, UnaryOp.CEIL,
             UnaryOp.ROUND, UnaryOp.TRUNC)


def int_mode(op, dtypes: list[DType], odtype: DType) -> bool:
    """Whether an instruction computes in integer mode: its op has one and every type is an
    integer type."""
    return op in (INT_BINARY if isinstance(op, BinaryOp) else INT_UNARY) and \
        not odtype.is_float and not any(d.is_float for d in dtypes)


def to_i64(values: np.ndarray) -> np.ndarray:
    return np.asarray(values).astype(np.int64)


def imm_int(bits: int) -> np.int64:
    """An immediate in integer mode: the float32's value truncated to an integer."""
    return np.int64(np.trunc(imm_value(bits)))


def int_binary(op: BinaryOp, a: np.ndarray, b) -> np.ndarray:
    """a op b on int64 values (exact for operands of at most 32 bits): ADD SUB MUL, DIV truncated toward zero,
    MOD floored (sign of b), FMOD truncated (sign of a) — x / 0 and x mod 0 are 0 — MAX MIN,
    and comparisons (1 / 0)."""
    op = BinaryOp(op)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    with np.errstate(all="ignore"):
        if op is BinaryOp.ADD:
            return a + b
        if op is BinaryOp.SUB:
            return a - b
        if op is BinaryOp.MUL:
            return a * b
        if op is BinaryOp.MAX:
            return np.maximum(a, b)
        if op is BinaryOp.MIN:
            return np.minimum(a, b)
        if op in _COMPARE:
            return _COMPARE[op](a, b).astype(np.int64)
        zero = b == 0
        safe = np.where(zero, 1, b)
        if op is BinaryOp.DIV:
            q = np.abs(a) // np.abs(safe) * np.sign(a) * np.sign(safe)
        elif op is BinaryOp.MOD:
            q = np.mod(a, safe)
        else:
            q = np.fmod(a, safe)
        return np.where(zero, 0, q)


def int_unary(op: UnaryOp, x: np.ndarray) -> np.ndarray:
    """COPY, NEG, ABS, SIGN on int64 values; FLOOR CEIL ROUND TRUNC leave integers unchanged."""
    op = UnaryOp(op)
    x = np.asarray(x, np.int64)
    if op is UnaryOp.NEG:
        return -x
    if op is UnaryOp.ABS:
        return np.abs(x)
    if op is UnaryOp.SIGN:
        return np.sign(x)
    return x.copy()


@_ieee
def softmax(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Row softmax of x [rows, cols] (the SOFTMAX instruction): m = the IEEE maximum of the row,
    e = exp(fl(x - m)), s = tree_sum(e), y = fl(e / s). `out` may alias x."""
    x = np.asarray(x, np.float32)
    e = np.subtract(x, reduce(ReduceOp.MAX, x, 1), out=_work("softmax.e", x.shape))
    exp(e, out=e)
    return np.divide(e, tree_sum(e, 1), out=np.empty(x.shape, np.float32) if out is None else out)


# -- quantization ---------------------------------------------------------------------------


def qmax(dtype: DType) -> float:
    """Largest magnitude a dynamic quantization maps to: the integer type's maximum, or the
    fp8 type's largest finite value. ValueError for other types."""
    if dtype.is_float:
        if dtype not in (DType.F8E4M3, DType.F8E5M2):
            raise ValueError(f"dynamic quantization needs an integer or fp8 output type, got {dtype.name.lower()}")
        return float(ml_dtypes.finfo(STORAGE_DTYPE[dtype]).max)
    if dtype.bits > 8:
        raise ValueError(f"dynamic quantization needs an output type of at most 8 bits, got {dtype.name.lower()}")
    return float(dtype.int_range[1])


@_ieee
def dynamic_quantize(x: np.ndarray, dtype: DType, axis: int = 1,
                     out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric dynamic quantization with one scale per row (axis 1, per token) or per
    column (axis 0). Returns (q in `dtype`'s value type, float32 scales, keepdims).

    amax = max |x| over the finite elements (NaN and +-inf do not count);
    scale = fl(amax / qmax(dtype)), replaced by 1.0 where it is 0 (an all-zero row);
    q = core.quantize(x, scale, 0, dtype): sat(round_half_even(fl(x / scale))), NaN -> 0,
    +-inf saturate; fp8: round_to(x / scale), saturating.

    `out`: an array of the value type the integer q is written to (and returned); it may
    alias x, which is read in full first."""
    top = np.float32(qmax(dtype))
    x = np.asarray(x, np.float32)
    a = np.abs(x, out=_work("dq.a", x.shape))
    amax = _fold_along(a, axis, np.maximum)  # NaN if the lane holds a NaN
    finite = bool(np.isfinite(amax).all())
    if not finite:  # rare: recompute over the finite elements only
        amax = np.where(np.isfinite(a), a, np.float32(0)).max(axis=axis, keepdims=True)
    scale = amax / top
    scale[scale == 0] = _ONE
    y = np.divide(x, scale, out=a)
    if dtype.is_float:
        return core.round_to(y, dtype), scale
    if finite and dtype.int_range[0] <= -top and scale.min() >= _TINY:
        # No NaN or inf, and with a normal scale |fl(x / scale)| <= qmax (1 + 2^-24)^2 / (1 - 2^-24)
        # < qmax + 1/2 rounds to at most qmax: saturation and the NaN rule change nothing.
        np.rint(y, out=y)
        if out is None:
            return y.astype(value_dtype(dtype)), scale
        np.copyto(out, y, casting="unsafe")
        return out, scale
    q = to_int(y, dtype)
    if out is None:
        return q, scale
    out[...] = q
    return out, scale


def requantize(acc: np.ndarray, mult: int, shift: int, zero_point: int, dtype: DType, relu: bool) -> np.ndarray:
    """Per-tensor fixed-point requantization of integer values (`core.requantize` with one
    multiplier and shift, no bias)."""
    if dtype.is_float:
        raise ValueError(f"requantization needs an integer output type, got {dtype.name.lower()}")
    lo, hi = dtype.int_range
    if not lo <= zero_point <= hi:
        raise ValueError(f"zero point {zero_point} is outside the {dtype.name.lower()} range [{lo}, {hi}]")
    return core.requantize(acc, None, mult, shift, zero_point, dtype, relu)

