"""The reference numerics of Sparrow: what every instruction and quantized op computes.

The simulator and the IR evaluator (compiler/evaluator.py) both call these functions, so
integer results agree bit for bit by construction. All functions are pure numpy.

Integer values travel as numpy int arrays (int8 / uint8 / int32, see
`packing.value_dtype`), float values as float32 holding numbers exactly representable in
their DType. Conversions to a float DType round to nearest even; fp8 types saturate to
their largest finite value (ONNX `saturate=1`), f16 / bf16 overflow to infinity.
"""

from __future__ import annotations

import functools
import math

import ml_dtypes
import numpy as np

from spaq.backends.sparrow.isa import DType, EpilogueMode, WeightFormat
from spaq.backends.sparrow.packing import (
    STORAGE_DTYPE, binary_decode, check_int_range, codebook_decode, nm_decompress, ternary_check, value_dtype,
)

class Workspace:
    """Reusable work arrays, one per tag, grown to the largest size asked for: temporaries
    live here, so a call on a large tile allocates (almost) nothing. (A fresh tile-sized
    array costs page faults each time malloc hands memory back to the system, several times
    the arithmetic on it.) Results handed to a caller are never work arrays."""

    def __init__(self) -> None:
        self._arrays: dict[tuple[str, np.dtype], np.ndarray] = {}

    def __call__(self, tag: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        key = (tag, np.dtype(dtype))
        n = math.prod(shape)
        a = self._arrays.get(key)
        if a is None or a.size < n:
            a = self._arrays[key] = np.empty(max(n, 1), dtype)
        return a[:n].reshape(shape)


_work = Workspace()


# -- element conversions -----------------------------------------------------------------


def round_to(x: np.ndarray, dtype: DType) -> np.ndarray:
    """Round float values to `dtype` (a float DType), returned as float32."""
    if not dtype.is_float:
        raise ValueError(f"round_to needs a float type, got {dtype.name.lower()}")
    x = np.asarray(x, np.float32)
    if dtype is DType.F32:
        return x
    if dtype is DType.F4E2M1:  # nearest even, saturating to +-6 (no infinity or NaN; NaN -> -0)
        return x.astype(ml_dtypes.float4_e2m1fn).astype(np.float32)
    if dtype.bits == 8:  # fp8: saturate
        fmax = float(ml_dtypes.finfo(STORAGE_DTYPE[dtype]).max)
        x = np.clip(x, -fmax, fmax)
    with np.errstate(over="ignore"):  # f16 / bf16 overflow to infinity
        return x.astype(STORAGE_DTYPE[dtype]).astype(np.float32)


def saturate(x: np.ndarray, dtype: DType) -> np.ndarray:
    """Clamp integer-valued `x` to `dtype`'s range and cast to its value type."""
    lo, hi = dtype.int_range
    return np.clip(x, lo, hi).astype(value_dtype(dtype))


# -- quantization ------------------------------------------------------------------------


def quantize(x: np.ndarray, scale, zero_point, dtype: DType) -> np.ndarray:
    """ONNX QuantizeLinear: q = saturate(round_half_even(x / scale) + zero_point).

    x and scale are cast to float32 and divided in float32; scale and zero_point
    broadcast against x (callers reshape per-channel values onto the right axis). NaN
    quantizes to the zero point. For an fp8 `dtype` the result is round_to(x / scale)
    (zero_point must be 0), as ONNX does with saturate=1. Scales must be finite and > 0."""
    scale = np.asarray(scale, np.float32)
    if not (np.isfinite(scale) & (scale > 0)).all():
        raise ValueError("quantization scale must be finite and positive")
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.asarray(x, np.float32) / scale
    if dtype.is_float:
        if np.any(zero_point):
            raise ValueError("float quantization requires a zero point of 0")
        return round_to(y, dtype)
    y = np.nan_to_num(np.rint(y), nan=0.0) + np.asarray(zero_point, np.float64)
    return saturate(y, dtype)


def dequantize(q: np.ndarray, scale, zero_point) -> np.ndarray:
    """ONNX DequantizeLinear: (q - zero_point) * scale in float32."""
    diff = np.asarray(q, np.int64) - np.asarray(zero_point, np.int64)
    return diff.astype(np.float32) * np.asarray(scale, np.float32)


def fixed_point_multiplier(real) -> tuple[np.ndarray, np.ndarray]:
    """(mult, shift) with mult in [2^30, 2^31) and mult * 2^-shift = real to 31 bits.

    ValueError if a real multiplier is not positive or needs a shift outside [1, 62]."""
    real = np.asarray(real, np.float64)
    if not (np.isfinite(real) & (real > 0)).all():
        raise ValueError("requantization multiplier must be finite and positive")
    frac, exp = np.frexp(real)  # real = frac * 2^exp, frac in [0.5, 1)
    mult = np.rint(frac * (1 << 31)).astype(np.int64)
    carry = mult == 1 << 31  # frac rounded up to 1.0
    mult = np.where(carry, mult >> 1, mult)
    shift = 31 - (exp.astype(np.int64) + carry)
    if ((shift < 1) | (shift > 62)).any():
        bad = real.ravel()[((shift < 1) | (shift > 62)).ravel()][0]
        raise ValueError(f"requantization multiplier {bad:g} needs a shift outside [1, 62]")
    return mult, shift


def requantize(acc, bias, mult, shift, zero_point: int, dtype: DType, relu: bool) -> np.ndarray:
    """Fixed-point requantization of an int32 accumulator, channel = last axis.

    t = saturate_int32(int64(acc) + bias)          (bias may be None)
    y = (t * mult + 2^(shift-1)) >> shift         (int64, arithmetic shift: round half up)
    y = y + zero_point;  if relu: y = max(y, zero_point)
    return saturate(y, dtype)

    mult is an int32 (normally [2^30, 2^31)), shift in [1, 62]: |t * mult| < 2^62, so the
    int64 product never overflows."""
    shift = np.asarray(shift, np.int64)
    if ((shift < 1) | (shift > 62)).any():
        raise ValueError(f"requantization shift must be in [1, 62], got {shift.ravel().tolist()[:4]}")
    t = np.asarray(acc, np.int64)
    if bias is not None:
        t = t + np.asarray(bias, np.int64)
    t = np.clip(t, -(1 << 31), (1 << 31) - 1)
    y = (t * np.asarray(mult, np.int64) + (np.int64(1) << (shift - 1))) >> shift
    y = y + zero_point
    if relu:
        y = np.maximum(y, zero_point)
    return saturate(y, dtype)


def dequantize_acc(acc, bias, scale, out: np.ndarray | None = None) -> np.ndarray:
    """float32(int64(acc) + bias) * float32(scale), channel = last axis (bias may be None).
    `out`: a float32 array for the result, not overlapping `acc`."""
    t = np.asarray(acc)
    scale = np.asarray(scale, np.float32)
    if bias is not None:
        if t.dtype.itemsize <= 4 and np.asarray(bias).dtype.itemsize <= 4:
            # the exact sum in float64 (|sum| < 2^33), rounded once to float32 in the multiply's
            # input cast: the same rounding as int64 -> float32
            t = np.add(t, bias, out=_work("deq", t.shape, np.float64), dtype=np.float64)
        else:
            t = np.asarray(acc, np.int64) + np.asarray(bias, np.int64)
    elif t.dtype.itemsize > 4:  # int32 converts to float32 as int64 does
        t = np.asarray(acc, np.int64)
    # the input cast to float32 rounds to nearest even, then one float32 multiply
    return np.multiply(t, scale, out=out, dtype=np.float32, casting="unsafe")


def epilogue(acc, mode: EpilogueMode, odtype: DType, *, bias=None, mult=None, shift=None,
             scale=None, zero_point: int = 0, relu: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """EPILOGUE: accumulator [rows, cols] -> activations, per-column parameters.

    FLOAT:   round_to(relu?(acc + bias), odtype)                 float32 acc and bias
    REQUANT: requantize(acc, bias, mult, shift, zero_point, odtype, relu)
    DEQUANT: round_to(relu?(dequantize_acc(acc, bias, scale)), odtype)
    ReLU is max(y, 0) for the float modes. `out` (odtype F32 only): a float32 array the
    result is written to and returned, not overlapping `acc`."""
    if mode is EpilogueMode.REQUANT:
        if odtype.is_float:
            raise ValueError(f"REQUANT needs an integer output type, got {odtype.name.lower()}")
        return requantize(acc, bias, mult, shift, zero_point, odtype, relu)
    if not odtype.is_float:
        raise ValueError(f"{mode.name} needs a float output type, got {odtype.name.lower()}")
    if odtype is not DType.F32:
        out = None
    if mode is EpilogueMode.FLOAT:
        y = np.asarray(acc, np.float32)
        if bias is not None:
            y = np.add(y, np.asarray(bias, np.float32), out=out)
        elif out is not None:
            np.copyto(out, y)
            y = out
    else:
        y = dequantize_acc(acc, bias, scale, out=out)
    if relu:
        y = np.maximum(y, np.float32(0), out=y if y is out else None)
    return round_to(y, odtype)


# -- matrix products ---------------------------------------------------------------------

_EXACT_FLOAT = ((np.float32, 1 << 24), (np.float64, 1 << 53))
_MIN_CHUNK = 64


def _max_abs(x: np.ndarray) -> int:
    return max(-int(x.min()), int(x.max())) if x.size else 0


def _float_copy(x: np.ndarray, ftype, tag: str) -> np.ndarray:
    """x converted to `ftype` in a work array."""
    out = _work(tag, x.shape, ftype)
    np.copyto(out, x, casting="unsafe")
    return out


def float_weights(w: np.ndarray) -> np.ndarray:
    """An integer weight W[n, k] as the float32 Wᵀ [k, n] (C order) that `gemm`'s `w_float`
    takes: BLAS multiplies A · Wᵀ faster from this layout than from W's."""
    return np.ascontiguousarray(np.asarray(w).T, np.float32)


def _exact_int_matmul(a: np.ndarray, w: np.ndarray, bound: int | None = None, wrap32: bool = False,
                      w_float: np.ndarray | None = None, out: np.ndarray | None = None,
                      accumulate: bool = False) -> np.ndarray:
    """a @ w.T exactly, as int64 (`wrap32`: modulo 2^32, as int32): float BLAS over k-chunks
    whose sums of |products| stay within the float type's exact-integer range (so every
    partial sum is exact in any summation order), int64 matmul when no float type is exact.
    `bound`: a known bound on |a_ik · w_jk| (else measured from the data). `w_float`:
    `float_weights(w)`. `out` (int32 [m, n], with `wrap32`): written, or with `accumulate`
    added to (wrapping), and returned."""
    m, k = a.shape
    n = w.shape[0]
    if bound is None:
        bound = max(_max_abs(a) * _max_abs(w), 1)
    if out is None:
        out = np.empty((m, n), np.int32 if wrap32 else np.int64)
        accumulate = False
    for ftype, limit in _EXACT_FLOAT:
        chunk = limit // bound
        if chunk < max(min(k, _MIN_CHUNK), 1):
            continue
        af = _float_copy(a, ftype, "a")
        wt = w_float if w_float is not None and ftype is np.float32 else _float_copy(w, ftype, "w").T
        parts = max(-(-k // chunk), 1)
        size = max(-(-k // parts), 1)  # equal chunks: BLAS runs best on even shapes
        prod = _work("prod", (m, n), ftype)
        # |partial sums| <= limit: float32 ones convert to int32 exactly, float64 ones to int64
        wide = ftype is np.float64 and out.dtype != np.int64
        acc = _work("acc64", (m, n), np.int64) if wide else out
        part = _work("part", (m, n), acc.dtype)
        for i, s in enumerate(range(0, max(k, 1), size)):
            np.matmul(af[:, s : s + size], wt[s : s + size], out=prod)
            if i == 0 and not (accumulate and not wide):
                np.copyto(acc, prod, casting="unsafe")
            else:
                np.copyto(part, prod, casting="unsafe")
                np.add(acc, part, out=acc)  # int32 wraps modulo 2^32
        if wide:
            if accumulate:
                acc += out
            np.copyto(out, acc, casting="unsafe")  # int64 -> int32: modulo 2^32
        return out
    exact = a.astype(np.int64) @ w.astype(np.int64).T
    if accumulate:
        exact += out
    np.copyto(out, exact, casting="unsafe")  # to int32: modulo 2^32
    return out


@functools.cache
def _gemm_types(adtype: DType, wdtype: DType) -> tuple[bool, int]:
    """(float operands?, the bound on |a * w| the integer types give); ValueError for a mix."""
    if adtype.is_float != wdtype.is_float:
        raise ValueError(
            f"gemm operands must both be integer or both float, got {adtype.name.lower()} and {wdtype.name.lower()}"
        )
    if adtype.is_float:
        return True, 0
    return False, max(-adtype.int_range[0], adtype.int_range[1]) * max(-wdtype.int_range[0], wdtype.int_range[1])


def gemm(a: np.ndarray, w: np.ndarray, adtype: DType, wdtype: DType, *,
         skip_zero_activations: bool = False, operands_exact: bool = False,
         w_float: np.ndarray | None = None, out: np.ndarray | None = None, accumulate: bool = False) -> np.ndarray:
    """A[m, k] . W[n, k]^T.

    Integer operands (values must lie in their types): the exact sum of products,
    wrapped modulo 2^32 to int32.
    Float operands: each operand rounded to its type (`round_to`), products and
    accumulation in float32 (np.matmul; summation order is BLAS's). Returns int32 / float32.
    Mixing an integer and a float operand is a ValueError.

    skip_zero_activations (GEMM `askip`): products with a zero activation are not formed.
    The result is the same except that a zero activation meeting an Inf / NaN weight adds
    nothing (IEEE would make the product NaN).

    w_float: integer `w` as `float_weights(w)` (a caller's memo; same result).

    out: the [m, n] int32 / float32 array the result is written to (and returned), not
    overlapping the operands; with `accumulate` the result is added to it (int32 wrapping,
    float32 one rounded add).

    operands_exact: the caller guarantees operands already hold values of their types (as
    the simulator's, read from packed bytes, do), so float rounding and integer range checks
    are skipped, and the exactness bound of the integer product comes from the types."""
    a, w = np.asarray(a), np.asarray(w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[1]:
        raise ValueError(f"gemm needs A[m, k] and W[n, k], got {a.shape} and {w.shape}")
    is_float, bound = _gemm_types(adtype, wdtype)
    if out is not None and (out.shape != (a.shape[0], w.shape[0]) or out.dtype != (
            np.float32 if is_float else np.int32)):
        raise ValueError(f"gemm result of shape {(a.shape[0], w.shape[0])} does not fit `out` {out.shape} {out.dtype}")
    if is_float:
        if not operands_exact:
            a, w = round_to(a, adtype), round_to(w, wdtype)
        bad = ~np.isfinite(w).all(axis=0) if skip_zero_activations else None
        if bad is None or not bad.any():
            if out is not None and not accumulate:
                return np.matmul(a, w.T, out=out)
            y = np.matmul(a, w.T)
        else:
            # columns holding an Inf / NaN weight: their products are formed only for non-zero activations
            y = np.matmul(a, np.where(bad, np.float32(0), w).T)
            ab, wb = a[:, bad], w[:, bad]
            with np.errstate(invalid="ignore", over="ignore"):
                prod = np.where(ab[:, None, :] == 0, np.float32(0), ab[:, None, :] * wb[None, :, :])
            y += prod.sum(axis=-1, dtype=np.float32)
        if out is None:
            return y
        if accumulate:
            return np.add(out, y, out=out)
        out[...] = y
        return out
    if not operands_exact:
        check_int_range(a, adtype)
        check_int_range(w, wdtype)
        bound = None
    return _exact_int_matmul(a, w, max(bound, 1) if bound else None, wrap32=True, w_float=w_float, out=out,
                             accumulate=accumulate)


def weight_type(wdtype: DType, wfmt: WeightFormat, cdtype: DType) -> DType:
    """The type a GEMM's weight values have once read through their format: `wdtype` for
    PLAIN, i2 for BINARY (+-1) and TERNARY, the entry type `cdtype` for CODEBOOK."""
    if wfmt is WeightFormat.CODEBOOK:
        return cdtype
    return wdtype if wfmt is WeightFormat.PLAIN else DType.I2


def weight_values(stored: np.ndarray, wfmt: WeightFormat, table: np.ndarray | None = None) -> np.ndarray:
    """Stored weight elements -> weight values (docs/isa.md, "Weight formats"): PLAIN as is,
    BINARY u1 code c -> 2c - 1, TERNARY i2 checked to be -1 / 0 / +1, CODEBOOK index i ->
    table[i]. ValueError for a ternary -2."""
    if wfmt is WeightFormat.BINARY:
        return binary_decode(stored)
    if wfmt is WeightFormat.TERNARY:
        return ternary_check(stored)
    if wfmt is WeightFormat.CODEBOOK:
        return codebook_decode(stored, table)
    return np.asarray(stored)


def nm_gemm(a, values, indices, n: int, m: int, k: int, adtype: DType, wdtype: DType) -> np.ndarray:
    """A[m, k] . W^T with W given N:M compressed: gemm(a, nm_decompress(...)), same numerics."""
    return gemm(a, nm_decompress(values, indices, n, m, k), adtype, wdtype)


# -- windows: im2col and max pooling -------------------------------------------------------


def window_output(h: int, w: int, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int, pb: int,
                  pr: int, dh: int, dw: int) -> tuple[int, int]:
    """(oh, ow) of a sliding window; ValueError for a zero kernel, stride or dilation or an
    empty output."""
    if min(kh, kw, sh, sw, dh, dw) < 1:
        raise ValueError("window kernel, stride and dilation must be at least 1")
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if h < 1 or w < 1 or oh < 1 or ow < 1:
        raise ValueError(f"window {kh}x{kw} (dilation {dh}x{dw}) does not fit a padded {h}x{w} input")
    return oh, ow


def _windows(x, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, pad_value) -> np.ndarray:
    """View [oh, ow, c, kh, kw] of the windows of a padded [h, w, c] input."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"window ops need an [h, w, c] input, got shape {x.shape}")
    oh, ow = window_output(x.shape[0], x.shape[1], kh, kw, sh, sw, pt, pl, pb, pr, dh, dw)
    xp = np.pad(x, [(pt, pb), (pl, pr), (0, 0)], constant_values=pad_value)
    view = np.lib.stride_tricks.sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(0, 1))
    return view[: (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw, :, ::dh, ::dw]


def im2col(x, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, pad_value=0) -> np.ndarray:
    """Patches of x [h, w, c] as [oh*ow, c*kh*kw], columns in (c, ky, kx) order, so ONNX
    Conv weights W[oc, c, kh, kw].reshape(oc, -1) multiply directly. Padding = pad_value."""
    v = _windows(x, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, pad_value)
    return v.reshape(v.shape[0] * v.shape[1], -1)


def maxpool(x, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, pad_value=None) -> np.ndarray:
    """Max pooling of x [h, w, c] into [oh*ow, c]. Padding is never selected: it holds
    pad_value, by default -inf for floats and the numpy type's minimum for integers (pass
    the DType's minimum for sub-byte types); a window of padding only yields pad_value."""
    x = np.asarray(x)
    if pad_value is None:
        pad_value = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    v = _windows(x, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, pad_value)
    return v.max(axis=(3, 4)).reshape(v.shape[0] * v.shape[1], -1)


# -- vector ops ----------------------------------------------------------------------------


def softmax(x, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along `axis`, all in float32, with the vector unit's
    definitions of max, exp and the tree sum (`vector.softmax`; the SOFTMAX instruction)."""
    from spaq.backends.sparrow import vector  # vector.py builds on this module

    x = np.moveaxis(np.asarray(x, np.float32), axis, -1)
    if x.size == 0:
        return np.moveaxis(x.copy(), -1, axis)
    return np.moveaxis(vector.softmax(x.reshape(-1, x.shape[-1])).reshape(x.shape), -1, axis)
