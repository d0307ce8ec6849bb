"""Byte encodings of Sparrow element types, and the N:M sparse weight format.

Every array in DRAM or a scratchpad is stored as packed little-endian bytes:

    to_bytes(np.array([1, -2, 3], np.int8), DType.I4)   # -> [0xe1, 0x03]
    from_bytes(buf, DType.I4, 3)                        # -> array([ 1, -2,  3], int8)

Byte-aligned types (f32, f16, bf16, fp8, i8, u8, i32) are their IEEE / two's complement
bytes. Sub-byte types (i4, u4, i2, u2, u1) pack LSB-first: element i of a byte occupies
bits [(i % per_byte) * bits, (i % per_byte + 1) * bits); signed ones are two's complement.
The last axis of an array is a *row*: each row starts on a byte boundary, so a [r, c] array
takes r * ceil(c * bits / 8) bytes. This is the layout in DRAM and in every scratchpad.

N:M sparsity keeps at most N non-zeros in each group of M consecutive columns; a row is
stored as its kept values plus their in-group indices (see `nm_compress`).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from spaq.backends.sparrow.isa import NUMPY_DTYPE, DType

STORAGE_DTYPE: dict[DType, np.dtype] = {
    **{d: t.newbyteorder("<") for d, t in NUMPY_DTYPE.items()},
    DType.BF16: np.dtype(ml_dtypes.bfloat16),
    DType.F8E4M3: np.dtype(ml_dtypes.float8_e4m3fn),
    DType.F8E5M2: np.dtype(ml_dtypes.float8_e5m2),
}
"""numpy storage type of each byte-aligned DType (little-endian)."""


def value_dtype(dtype: DType) -> np.dtype:
    """The numpy type arrays of `dtype` are computed in: float32 for every float type,
    int32 for i32, int8 for the other signed types, uint8 for the unsigned ones."""
    if dtype.is_float:
        return np.dtype(np.float32)
    if dtype is DType.I32:
        return np.dtype(np.int32)
    return np.dtype(np.int8 if dtype.is_signed else np.uint8)


def check_int_range(values: np.ndarray, dtype: DType) -> None:
    """ValueError unless every value is an integer inside `dtype`'s range."""
    v = np.asarray(values)
    lo, hi = dtype.int_range
    if v.size == 0 or (v.dtype.kind in "iu" and lo <= np.iinfo(v.dtype).min and np.iinfo(v.dtype).max <= hi):
        return
    if v.dtype.kind not in "iub" and not np.array_equal(v, np.trunc(v)):
        raise ValueError(f"{dtype.name.lower()} values must be integers")
    vmin, vmax = v.min(), v.max()
    if vmin < lo or vmax > hi:
        bad = vmin if vmin < lo else vmax
        raise ValueError(f"value {bad} is outside the {dtype.name.lower()} range [{lo}, {hi}]")


def to_bytes(values: np.ndarray, dtype: DType) -> np.ndarray:
    """Pack `values` ([..., count]) into uint8 [..., nbytes(count)], one row per last-axis row.

    Floats round to nearest even (a plain cast); integers must be in range (ValueError)."""
    v = np.asarray(values)
    if v.ndim == 0:
        v = v.reshape(1)
    if not dtype.is_float:
        check_int_range(v, dtype)
    if dtype in STORAGE_DTYPE:
        return np.ascontiguousarray(v.astype(STORAGE_DTYPE[dtype])).view(np.uint8)
    bits, per_byte = dtype.bits, 8 // dtype.bits
    count = v.shape[-1]
    codes = v.astype(np.int64) & ((1 << bits) - 1)  # two's complement for signed types
    pad = -count % per_byte
    codes = np.pad(codes, [(0, 0)] * (v.ndim - 1) + [(0, pad)])
    codes = codes.reshape(*v.shape[:-1], (count + pad) // per_byte, per_byte)
    codes <<= np.arange(per_byte) * bits
    return np.bitwise_or.reduce(codes, axis=-1).astype(np.uint8)


def from_bytes(buf: np.ndarray | bytes, dtype: DType, count: int) -> np.ndarray:
    """Unpack `count` elements from each row of `buf` ([..., >= nbytes(count)] uint8).

    Returns [..., count] in `value_dtype(dtype)`: floats widened to float32 exactly."""
    b = np.frombuffer(buf, np.uint8) if isinstance(buf, (bytes, bytearray)) else np.asarray(buf)
    if b.dtype != np.uint8:
        raise ValueError(f"packed buffer must be uint8, got {b.dtype}")
    nbytes = dtype.nbytes(count)
    if b.ndim == 0 or b.shape[-1] < nbytes:
        have = b.shape[-1] if b.ndim else 0
        raise ValueError(f"{count} {dtype.name.lower()} elements need {nbytes} bytes, buffer has {have}")
    b = b[..., :nbytes]
    if dtype in STORAGE_DTYPE:
        return np.ascontiguousarray(b).view(STORAGE_DTYPE[dtype]).astype(value_dtype(dtype))
    bits, per_byte = dtype.bits, 8 // dtype.bits
    codes = (b[..., None] >> (np.arange(per_byte, dtype=np.uint8) * bits)) & ((1 << bits) - 1)
    codes = codes.reshape(*b.shape[:-1], nbytes * per_byte)[..., :count]
    if dtype.is_signed:
        codes = codes.astype(np.int8)
        codes -= (codes >> (bits - 1)) << bits  # sign-extend
    return codes.astype(value_dtype(dtype))


def packed_nbytes(shape: tuple[int, ...], dtype: DType) -> int:
    """Bytes an array of `shape` occupies: its rows (last axis) each start on a byte boundary."""
    if not shape:
        return dtype.nbytes(1)
    return int(np.prod(shape[:-1], dtype=np.int64)) * dtype.nbytes(shape[-1])


def nm_index_dtype(m: int) -> DType:
    """Storage type of N:M in-group indices: u1 for M = 2, u2 for M <= 4, u4 for M <= 16."""
    for dtype in (DType.U1, DType.U2, DType.U4):
        if 2 <= m <= 1 << dtype.bits:
            return dtype
    raise ValueError(f"N:M group size M={m} is not supported (need 2 <= M <= 16)")


def nm_groups(k: int, m: int) -> int:
    """Number of M-column groups in a row of k columns (the last group may be short)."""
    return -(-k // m)


def _check_nm(n: int, m: int) -> None:
    nm_index_dtype(m)
    if not 0 < n < m:
        raise ValueError(f"N:M pattern {n}:{m} is impossible (need 0 < N < M)")


def nm_compress(dense: np.ndarray, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a pruned [rows, k] matrix into kept values and in-group indices, both
    [rows, G*n] with G = ceil(k / m).

    The matrix is viewed as zero-padded to G*m columns. In each group the kept positions
    are its non-zeros, filled up to n with the group's lowest-index zero positions, in
    ascending order. A group with more than n non-zeros is a ValueError naming it."""
    _check_nm(n, m)
    dense = np.asarray(dense)
    if dense.ndim != 2:
        raise ValueError(f"nm_compress expects a [rows, k] matrix, got shape {dense.shape}")
    rows, k = dense.shape
    groups = nm_groups(k, m)
    padded = np.pad(dense, [(0, 0), (0, groups * m - k)]).reshape(rows, groups, m)
    nonzero = padded != 0
    counts = nonzero.sum(axis=-1)
    if (counts > n).any():
        r, g = np.argwhere(counts > n)[0]
        raise ValueError(
            f"row {r} group {g} (columns {g * m}..{min(g * m + m, k) - 1}) has {counts[r, g]} "
            f"non-zeros, more than {n} for {n}:{m} sparsity"
        )
    keep = np.sort(np.argsort(~nonzero, axis=-1, kind="stable")[..., :n], axis=-1)
    values = np.take_along_axis(padded, keep, axis=-1).reshape(rows, groups * n)
    return values, keep.reshape(rows, groups * n).astype(np.uint8)


def nm_decompress(values: np.ndarray, indices: np.ndarray, n: int, m: int, k: int) -> np.ndarray:
    """Inverse of `nm_compress`: scatter [rows, G*n] kept values to a dense [rows, k].

    ValueError if an index is >= m, indices of a group are not strictly ascending, or a
    non-zero value lands in the padding beyond column k."""
    _check_nm(n, m)
    values, indices = np.asarray(values), np.asarray(indices)
    groups = nm_groups(k, m)
    if values.ndim != 2 or values.shape[1] != groups * n or indices.shape != values.shape:
        raise ValueError(
            f"{n}:{m} sparse rows of k={k} need values and indices of shape [rows, {groups * n}], "
            f"got {values.shape} and {indices.shape}"
        )
    rows = values.shape[0]
    idx = indices.astype(np.int64).reshape(rows, groups, n)
    if (idx >= m).any():
        raise ValueError(f"N:M index {idx.max()} is out of range for groups of {m}")
    if n > 1 and (np.diff(idx, axis=-1) <= 0).any():
        r, g = np.argwhere((np.diff(idx, axis=-1) <= 0).any(axis=-1))[0]
        raise ValueError(f"row {r} group {g}: N:M indices {idx[r, g].tolist()} are not strictly ascending")
    dense = np.zeros((rows, groups * m), values.dtype)
    positions = (idx + np.arange(groups)[:, None] * m).reshape(rows, groups * n)
    np.put_along_axis(dense, positions, values, axis=1)
    if dense[:, k:].any():
        raise ValueError(f"N:M values beyond column {k - 1} (padding of the last group) must be zero")
    return dense[:, :k]
