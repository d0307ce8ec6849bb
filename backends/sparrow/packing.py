"""Byte encodings of Sparrow element types, and the N:M sparse weight format.

Every array in DRAM or a scratchpad is stored as packed little-endian bytes:

    to_bytes(np.array([1, -2, 3], np.int8), DType.I4)   # -> [0xe1, 0x03]
    from_bytes(buf, DType.I4, 3)                        # -> array([ 1, -2,  3], int8)

Byte-aligned types (f32, f16, bf16, fp8, i8, u8, i32) are their IEEE / two's complement
bytes. Sub-byte types (i4, u4, i2, u2, u1, f4e2m1) pack LSB-first: element i of a byte occupies
bits [(i % per_byte) * bits, (i % per_byte + 1) * bits); signed ones are two's complement,
f4e2m1 is its 4-bit code (sign, 2 exponent bits, 1 mantissa bit; OCP MX FP4).
The last axis of an array is a *row*: each row starts on a byte boundary, so a [r, c] array
takes r * ceil(c * bits / 8) bytes. This is the layout in DRAM and in every scratchpad.

N:M sparsity keeps at most N non-zeros in each group of M consecutive columns; a row is
stored as its kept values plus their in-group indices (see `nm_compress`). The other
GEMM-family formats (docs/isa.md, "Weight formats" and "Sparse metadata"), each a pair of
packer and unpacker:

    binary_encode / binary_decode          +-1 weights  <-> u1 codes (bit = (w + 1) / 2)
    ternary_check                          -1 / 0 / +1 weights stored as i2
    codebook_encode / codebook_decode      values       <-> indices into a 2^bits table
    block_compress / block_decompress      dense        <-> block ids + stored br x bc blocks
    bitmask_compress / bitmask_decompress  dense        <-> [rows, k] mask + values in row-major order
    csr_compress / csr_decompress          dense        <-> row pointers + column indices + values
    pack_indices / unpack_indices          index lists  <-> little-endian 1-, 2- or 4-byte words
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
    DType.F8E4M3FNUZ: np.dtype(ml_dtypes.float8_e4m3fnuz),
    DType.F8E5M2FNUZ: np.dtype(ml_dtypes.float8_e5m2fnuz),
}
"""numpy storage type of each byte-aligned DType (little-endian)."""


def value_dtype(dtype: DType) -> np.dtype:
    """The numpy type arrays of `dtype` are computed in: float32 for every float type,
    int16 / uint16 / int32 / uint32 for i16 / u16 / i32 / u32, int8 for the other signed
    types, uint8 for the unsigned ones."""
    if dtype.is_float:
        return np.dtype(np.float32)
    if dtype.bits > 8:  # i16 u16 i32 u32: their own numpy types
        return NUMPY_DTYPE[dtype]
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
    if dtype is DType.F4E2M1:  # round to nearest even, saturate to +-6 (ml_dtypes' cast)
        v = np.ascontiguousarray(v.astype(ml_dtypes.float4_e2m1fn)).view(np.uint8)
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
    if dtype is DType.F4E2M1:  # the 4-bit codes as u4, then their values
        return _F4E2M1_VALUES[from_bytes(b, DType.U4, count)]
    # one table lookup per byte: the word holding its 8 / bits one-byte values, viewed as bytes
    codes = np.take(_UNPACK[dtype], b).view(value_dtype(dtype))
    return codes[..., :count]


def _unpack_table(dtype: DType) -> np.ndarray:
    """[256] words: word v holds the 8 / bits elements of byte value v (LSB first,
    sign-extended if signed), one byte each, in memory order."""
    bits, per_byte = dtype.bits, 8 // dtype.bits
    codes = (np.arange(256, dtype=np.int16)[:, None] >> (np.arange(per_byte) * bits)) & ((1 << bits) - 1)
    if dtype.is_signed:
        codes -= (codes >> (bits - 1)) << bits
    return np.ascontiguousarray(codes.astype(value_dtype(dtype))).view(f"u{per_byte}")[:, 0]


_UNPACK = {d: _unpack_table(d) for d in DType if d.bits < 8 and not d.is_float}
_F4E2M1_VALUES = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float32)
"""f4e2m1 code -> value (codes 0-7: 0, 0.5, 1, 1.5, 2, 3, 4, 6; 8-15: their negatives)."""


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


def nm_decompress(values: np.ndarray, indices: np.ndarray, n: int, m: int, k: int,
                  strict_padding: bool = True) -> np.ndarray:
    """Inverse of `nm_compress`: scatter [rows, G*n] kept values to a dense [rows, k].

    ValueError if an index is >= m, indices of a group are not strictly ascending, or (with
    `strict_padding`) a non-zero value lands in the padding beyond column k. The GEMMs pass
    strict_padding=False: a padding slot has no activation to meet, its value is ignored."""
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
    if strict_padding and dense[:, k:].any():
        raise ValueError(f"N:M values beyond column {k - 1} (padding of the last group) must be zero")
    return dense[:, :k]


# -- weight formats: binary, ternary, codebook -----------------------------------------------

CODEBOOK_INDEX_TYPES = (DType.U1, DType.U2, DType.U4, DType.U8)
"""Index types of codebook weights: a table of 2, 4, 16 or 256 entries."""


def binary_encode(w: np.ndarray) -> np.ndarray:
    """+-1 weights -> u1 codes (uint8 0 / 1): code = (w + 1) / 2. ValueError for other values."""
    w = np.asarray(w)
    if w.size and not ((w == 1) | (w == -1)).all():
        raise ValueError("binary weights must be -1 or +1")
    return (w > 0).astype(np.uint8)


def binary_decode(codes: np.ndarray) -> np.ndarray:
    """u1 codes -> int8 weights 2 * code - 1 (0 -> -1, 1 -> +1)."""
    return (np.asarray(codes).astype(np.int8) << 1) - np.int8(1)


def ternary_check(w: np.ndarray) -> np.ndarray:
    """Ternary weights (stored as i2) as int8: ValueError unless every value is -1, 0 or +1."""
    w = np.asarray(w)
    if w.size and (w.min() < -1 or w.max() > 1 or (w.dtype.kind == "f" and not np.array_equal(w, np.trunc(w)))):
        raise ValueError("ternary weights must be -1, 0 or +1 (i2 code -2 is not a ternary value)")
    return w.astype(np.int8)


def codebook_size(index_dtype: DType) -> int:
    """Entries of the table that `index_dtype` indices address: 2^bits."""
    if index_dtype not in CODEBOOK_INDEX_TYPES:
        raise ValueError(f"codebook indices must be u1, u2, u4 or u8, got {index_dtype.name.lower()}")
    return 1 << index_dtype.bits


def codebook_encode(w: np.ndarray, index_dtype: DType) -> tuple[np.ndarray, np.ndarray]:
    """Weights with at most 2^bits distinct values -> (uint8 indices of w's shape, table).

    The table holds the distinct values in ascending order, padded with zeros to 2^bits
    entries; ValueError if there are more distinct values than entries."""
    size = codebook_size(index_dtype)
    w = np.asarray(w)
    values = np.unique(w)
    if values.size > size:
        raise ValueError(f"{values.size} distinct weight values do not fit a {size}-entry codebook")
    table = np.zeros(size, w.dtype)
    table[: values.size] = values
    return np.searchsorted(values, w).astype(np.uint8), table


def codebook_decode(indices: np.ndarray, table: np.ndarray) -> np.ndarray:
    """table[indices]: ValueError if an index is outside the table."""
    indices, table = np.asarray(indices), np.asarray(table)
    if indices.size and int(indices.max()) >= table.size:
        raise ValueError(f"codebook index {int(indices.max())} is outside the {table.size}-entry table")
    return table[indices]


# -- sparse metadata: index words, block lists, bitmasks, CSR -----------------------------------


def index_bytes(limit: int) -> int:
    """Bytes of an index word holding 0..limit: 1, 2 or 4 (little-endian unsigned)."""
    for nbytes in (1, 2, 4):
        if limit < 1 << (8 * nbytes):
            return nbytes
    raise ValueError(f"index {limit} does not fit 32 bits")


def pack_indices(values: np.ndarray, nbytes: int) -> np.ndarray:
    """Non-negative integers -> uint8 [count * nbytes], each a little-endian word."""
    v = np.asarray(values, np.int64).ravel()
    if v.size and (v.min() < 0 or v.max() >= 1 << (8 * nbytes)):
        raise ValueError(f"indices must lie in [0, {(1 << (8 * nbytes)) - 1}]")
    return np.ascontiguousarray(v.astype(f"<u{nbytes}")).view(np.uint8)


def unpack_indices(buf: np.ndarray, nbytes: int, count: int) -> np.ndarray:
    """Inverse of `pack_indices`: `count` words from the start of `buf` (uint8), as int64."""
    b = np.ascontiguousarray(np.asarray(buf, np.uint8).ravel()[: count * nbytes])
    if b.size != count * nbytes:
        raise ValueError(f"{count} {nbytes}-byte indices need {count * nbytes} bytes, buffer has {b.size}")
    return b.view(f"<u{nbytes}").astype(np.int64)


def block_grid(rows: int, k: int, br: int, bc: int) -> tuple[int, int]:
    """Block rows and block columns covering a [rows, k] matrix with br x bc blocks."""
    if br < 1 or bc < 1:
        raise ValueError(f"block shape {br}x{bc} is impossible")
    return -(-rows // br), -(-k // bc)


def block_index_bytes(rows: int, k: int, br: int, bc: int) -> int:
    """Bytes of one block index: the fewest of 1, 2, 4 holding the largest block id."""
    gr, gc = block_grid(rows, k, br, bc)
    return index_bytes(max(gr * gc - 1, 0))


def block_compress(dense: np.ndarray, br: int, bc: int) -> tuple[np.ndarray, np.ndarray]:
    """A [rows, k] matrix -> (ids [nb], blocks [nb * br, bc]).

    The matrix is viewed zero-padded to whole br x bc blocks, block (i, j) with id
    i * ceil(k / bc) + j; the stored blocks are those with a non-zero element, in ascending
    id order, each br rows of bc values."""
    dense = np.asarray(dense)
    if dense.ndim != 2:
        raise ValueError(f"block_compress expects a [rows, k] matrix, got shape {dense.shape}")
    rows, k = dense.shape
    gr, gc = block_grid(rows, k, br, bc)
    padded = np.pad(dense, [(0, gr * br - rows), (0, gc * bc - k)])
    grid = padded.reshape(gr, br, gc, bc).transpose(0, 2, 1, 3).reshape(gr * gc, br, bc)
    ids = np.flatnonzero(grid.reshape(gr * gc, -1).any(axis=1))
    return ids, grid[ids].reshape(ids.size * br, bc)


def block_decompress(ids: np.ndarray, blocks: np.ndarray, br: int, bc: int, rows: int, k: int) -> np.ndarray:
    """Inverse of `block_compress`: a dense [rows, k]. Elements of stored blocks beyond row
    `rows` or column `k` (the padding) are ignored. ValueError if an id is out of range or
    the ids are not strictly ascending."""
    gr, gc = block_grid(rows, k, br, bc)
    ids, blocks = np.asarray(ids, np.int64).ravel(), np.asarray(blocks)
    if blocks.shape != (ids.size * br, bc):
        raise ValueError(f"{ids.size} blocks of {br}x{bc} need values of shape {(ids.size * br, bc)}, got {blocks.shape}")
    if ids.size and (ids.min() < 0 or ids.max() >= gr * gc):
        raise ValueError(f"block index {int(ids.max())} is out of range for {gr}x{gc} blocks")
    if (np.diff(ids) <= 0).any():
        at = int(np.argmax(np.diff(ids) <= 0))
        raise ValueError(f"block indices are not strictly ascending at position {at + 1}")
    grid = np.zeros((gr * gc, br, bc), blocks.dtype)
    grid[ids] = blocks.reshape(ids.size, br, bc)
    return grid.reshape(gr, gc, br, bc).transpose(0, 2, 1, 3).reshape(gr * br, gc * bc)[:rows, :k]


def bitmask_compress(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A [rows, k] matrix -> (mask uint8 0 / 1 [rows, k], non-zero values in row-major order)."""
    dense = np.asarray(dense)
    if dense.ndim != 2:
        raise ValueError(f"bitmask_compress expects a [rows, k] matrix, got shape {dense.shape}")
    mask = dense != 0
    return mask.astype(np.uint8), dense[mask]


def bitmask_decompress(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Inverse of `bitmask_compress`: values scattered, in row-major order, to the set bits of
    the [rows, k] mask. ValueError unless there is exactly one value per set bit."""
    mask, values = np.asarray(mask).astype(bool), np.asarray(values).ravel()
    count = int(np.count_nonzero(mask))
    if count != values.size:
        raise ValueError(f"the bitmask has {count} set bits for {values.size} stored values")
    dense = np.zeros(mask.shape, values.dtype)
    dense[mask] = values
    return dense


def csr_compress(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A [rows, k] matrix -> (row_ptr [rows + 1], col_idx [nnz], values [nnz]) (int64 indices):
    row r's non-zeros are values[row_ptr[r]:row_ptr[r + 1]] at columns col_idx[...], ascending."""
    dense = np.asarray(dense)
    if dense.ndim != 2:
        raise ValueError(f"csr_compress expects a [rows, k] matrix, got shape {dense.shape}")
    r, c = np.nonzero(dense)
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=dense.shape[0]))]).astype(np.int64)
    return row_ptr, c.astype(np.int64), dense[r, c]


def csr_decompress(row_ptr: np.ndarray, col_idx: np.ndarray, values: np.ndarray, k: int) -> np.ndarray:
    """Inverse of `csr_compress`: a dense [len(row_ptr) - 1, k]. ValueError unless row_ptr
    starts at 0, never decreases and ends at nnz, and every row's columns are strictly
    ascending and < k."""
    row_ptr, col_idx = np.asarray(row_ptr, np.int64).ravel(), np.asarray(col_idx, np.int64).ravel()
    values = np.asarray(values).ravel()
    nnz, rows = values.size, row_ptr.size - 1
    if rows < 0 or col_idx.size != nnz:
        raise ValueError(f"CSR needs row pointers and {nnz} column indices, got {row_ptr.size} and {col_idx.size}")
    counts = np.diff(row_ptr)
    if row_ptr[0] != 0 or row_ptr[-1] != nnz or (counts < 0).any():
        raise ValueError(f"CSR row pointers must rise from 0 to nnz = {nnz}, got {row_ptr[:8].tolist()}...")
    if nnz and (col_idx.min() < 0 or col_idx.max() >= k):
        raise ValueError(f"CSR column index {int(col_idx.max())} is out of range for k = {k}")
    rising = np.diff(col_idx) > 0
    starts = row_ptr[1:-1]
    rising[starts[(starts > 0) & (starts < nnz)] - 1] = True  # a new row may start anywhere
    if not rising.all():
        at = int(np.argmin(rising)) + 1
        row = int(np.searchsorted(row_ptr, at, side="right")) - 1
        raise ValueError(f"CSR row {row}: column indices are not strictly ascending")
    dense = np.zeros((rows, k), values.dtype)
    dense[np.repeat(np.arange(rows), counts), col_idx] = values
    return dense


def csr_index_bytes(nnz: int, k: int) -> tuple[int, int]:
    """(row pointer bytes, column index bytes): the fewest of 1, 2, 4 holding nnz and k - 1."""
    return index_bytes(nnz), index_bytes(max(k - 1, 0))


def csr_meta_nbytes(rows: int, nnz: int, k: int) -> int:
    """Bytes of CSR metadata: (rows + 1) row pointers, then nnz column indices."""
    pb, cb = csr_index_bytes(nnz, k)
    return (rows + 1) * pb + nnz * cb


def csr_meta_to_bytes(row_ptr: np.ndarray, col_idx: np.ndarray, k: int) -> np.ndarray:
    """CSR metadata as META holds it: the row pointers, then the column indices, each a
    little-endian word of `csr_index_bytes(nnz, k)` bytes, no gap."""
    col_idx = np.asarray(col_idx).ravel()
    pb, cb = csr_index_bytes(col_idx.size, k)
    return np.concatenate([pack_indices(row_ptr, pb), pack_indices(col_idx, cb)])


def csr_meta_from_bytes(buf: np.ndarray, rows: int, nnz: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `csr_meta_to_bytes`: (row_ptr [rows + 1], col_idx [nnz]) from uint8 bytes."""
    pb, cb = csr_index_bytes(nnz, k)
    buf = np.asarray(buf, np.uint8).ravel()
    return unpack_indices(buf, pb, rows + 1), unpack_indices(buf[(rows + 1) * pb :], cb, nnz)
