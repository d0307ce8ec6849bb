import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spaq.backends.sparrow.isa import DType
from spaq.backends.sparrow.packing import (
    STORAGE_DTYPE, from_bytes, nm_compress, nm_decompress, nm_groups, nm_index_dtype, packed_nbytes,
    to_bytes, value_dtype,
)

INT_TYPES = [d for d in DType if not d.is_float]
FLOAT_TYPES = [d for d in DType if d.is_float]


def _ints(dtype: DType, shape, seed: int) -> np.ndarray:
    lo, hi = dtype.int_range
    return np.random.default_rng(seed).integers(lo, hi, size=shape, endpoint=True)


SEEDS = st.integers(0, 2**32 - 1)


@given(dtype=st.sampled_from(INT_TYPES), rows=st.integers(0, 4), count=st.integers(0, 37), seed=SEEDS)
def test_int_round_trip(dtype, rows, count, seed):
    x = _ints(dtype, (rows, count), seed)
    packed = to_bytes(x, dtype)
    assert packed.dtype == np.uint8 and packed.shape == (rows, dtype.nbytes(count))
    back = from_bytes(packed, dtype, count)
    assert back.dtype == value_dtype(dtype)
    np.testing.assert_array_equal(back, x)


@given(dtype=st.sampled_from(FLOAT_TYPES), count=st.integers(0, 37), seed=SEEDS)
def test_float_round_trip(dtype, count, seed):
    x = (np.random.default_rng(seed).standard_normal(count) * 10).astype(np.float32)
    storage = STORAGE_DTYPE.get(dtype, ml_dtypes.float4_e2m1fn)  # f4e2m1: packed, not in the table
    exact = x.astype(storage).astype(np.float32)  # values the type holds
    back = from_bytes(to_bytes(exact, dtype), dtype, count)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, exact)


def test_f4e2m1_packing():
    # 4-bit codes (sign, 2 exponent bits, 1 mantissa bit), packed LSB first like i4
    assert to_bytes(np.array([1.0, -2.0, 6.0]), DType.F4E2M1).tolist() == [0xC2, 0x07]
    assert from_bytes(bytes([0xC2, 0x07]), DType.F4E2M1, 3).tolist() == [1.0, -2.0, 6.0]
    every = np.arange(16, dtype=np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    assert from_bytes(to_bytes(every, DType.F4E2M1), DType.F4E2M1, 16).tobytes() == every.tobytes()  # -0 too
    # a plain cast: nearest even, saturating to +-6
    assert from_bytes(to_bytes(np.array([[1.25, 5.0, 100.0, -7.0]]), DType.F4E2M1), DType.F4E2M1, 4).tolist() == \
        [[1.0, 4.0, 6.0, -6.0]]
    assert DType.F4E2M1.nbytes(3) == 2 and packed_nbytes((2, 3), DType.F4E2M1) == 4


def test_sub_byte_bit_layout():
    # element i of a byte occupies bits [(i % per_byte) * bits, ...): LSB first, two's complement
    assert to_bytes(np.array([1, -2, 3]), DType.I4).tolist() == [0xE1, 0x03]
    assert to_bytes(np.array([3, 0, 1, 2, 1]), DType.U2).tolist() == [0b10_01_00_11, 0b01]
    assert to_bytes(np.array([-2, 1, -1, 0]), DType.I2).tolist() == [0b00_11_01_10]
    assert to_bytes(np.array([1, 0, 0, 1, 1, 1, 0, 0, 1]), DType.U1).tolist() == [0b00111001, 0b1]
    assert from_bytes(bytes([0xE1, 0x03]), DType.I4, 3).tolist() == [1, -2, 3]


def test_byte_aligned_types_are_little_endian_ieee():
    assert to_bytes(np.array([1.0]), DType.F32).tolist() == [0, 0, 0x80, 0x3F]
    assert to_bytes(np.array([1.0]), DType.BF16).tolist() == [0x80, 0x3F]
    assert to_bytes(np.array([-2]), DType.I32).tolist() == [0xFE, 0xFF, 0xFF, 0xFF]
    assert to_bytes(np.array([1.0]), DType.F8E4M3).tolist() == [0x38]
    assert to_bytes(np.array([1.0]), DType.F8E5M2).tolist() == [0x3C]
    assert from_bytes(np.array([0x38], np.uint8), DType.F8E4M3, 1).tolist() == [1.0]


@pytest.mark.parametrize("dtype, bad", [(DType.I4, 8), (DType.I4, -9), (DType.U2, 4), (DType.U1, -1), (DType.I8, 128)])
def test_out_of_range_is_an_error(dtype, bad):
    with pytest.raises(ValueError, match=f"value {bad} is outside the {dtype.name.lower()} range"):
        to_bytes(np.array([0, bad]), dtype)


def test_short_buffer_is_an_error():
    with pytest.raises(ValueError, match="need 2 bytes"):
        from_bytes(bytes([1]), DType.I4, 3)


def test_packed_nbytes_aligns_rows():
    assert packed_nbytes((3, 5), DType.U2) == 3 * 2
    assert packed_nbytes((2, 3, 4), DType.F32) == 96
    assert packed_nbytes((), DType.I4) == 1
    assert ml_dtypes.bfloat16 == STORAGE_DTYPE[DType.BF16]


def test_nm_index_dtype():
    assert nm_index_dtype(2) is DType.U1
    assert nm_index_dtype(4) is DType.U2
    assert nm_index_dtype(8) is DType.U4 and nm_index_dtype(16) is DType.U4
    with pytest.raises(ValueError, match="M=17"):
        nm_index_dtype(17)


@st.composite
def _pruned(draw):
    m = draw(st.integers(2, 16))
    n = draw(st.integers(1, m - 1))
    rows, k = draw(st.integers(1, 5)), draw(st.integers(1, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dense = rng.integers(-8, 8, size=(rows, nm_groups(k, m) * m))
    # keep a random subset of at most n positions per group
    groups = dense.reshape(rows, -1, m)
    rank = rng.random(groups.shape).argsort(axis=-1).argsort(axis=-1)
    keep = rank < rng.integers(0, n + 1, size=groups.shape[:2])[..., None]
    return n, m, (groups * keep).reshape(rows, -1)[:, :k]


@given(_pruned())
def test_nm_round_trip(case):
    n, m, dense = case
    values, indices = nm_compress(dense, n, m)
    groups = nm_groups(dense.shape[1], m)
    assert values.shape == indices.shape == (dense.shape[0], groups * n)
    assert indices.max(initial=0) < m
    assert (np.diff(indices.reshape(dense.shape[0], groups, n).astype(int), axis=-1) > 0).all()
    np.testing.assert_array_equal(nm_decompress(values, indices, n, m, dense.shape[1]), dense)
    # indices survive their DRAM encoding
    dt = nm_index_dtype(m)
    np.testing.assert_array_equal(from_bytes(to_bytes(indices, dt), dt, indices.shape[1]), indices)


def test_nm_padding_uses_lowest_zero_positions():
    values, indices = nm_compress(np.array([[0, 0, 0, 5, 0, 0]]), 2, 4)
    assert indices.tolist() == [[0, 3, 0, 1]] and values.tolist() == [[0, 5, 0, 0]]


def test_nm_violation_names_row_and_group():
    dense = np.zeros((3, 8), int)
    dense[2, 4:7] = 1
    with pytest.raises(ValueError, match=r"row 2 group 1 \(columns 4..7\) has 3 non-zeros, more than 2"):
        nm_compress(dense, 2, 4)


def test_nm_decompress_rejects_bad_metadata():
    v = np.ones((1, 2), np.int8)
    with pytest.raises(ValueError, match="not strictly ascending"):
        nm_decompress(v, np.array([[1, 1]]), 2, 4, 4)
    with pytest.raises(ValueError, match="out of range"):
        nm_decompress(v, np.array([[0, 5]]), 2, 4, 4)
    with pytest.raises(ValueError, match="beyond column"):
        nm_decompress(v, np.array([[0, 3]]), 2, 4, 2)


@settings(max_examples=25)
@given(st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_nm_random_dense_rejected_or_exact(n, seed):
    dense = np.random.default_rng(seed).integers(-1, 2, size=(4, 12))
    try:
        values, indices = nm_compress(dense, n, 4)
    except ValueError as e:
        assert "non-zeros, more than" in str(e)
        assert ((dense.reshape(4, 3, 4) != 0).sum(-1) > n).any()
    else:
        np.testing.assert_array_equal(nm_decompress(values, indices, n, 4, 12), dense)


# -- the matrix unit's formats: weight formats and sparse metadata (docs/isa.md) ------------------

from spaq.backends.sparrow import packing as pk  # noqa: E402

SMALL = st.integers(1, 9)


def _sparse(rows: int, k: int, density: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random((rows, k)) < density, rng.integers(-8, 8, size=(rows, k)), 0)


@given(rows=SMALL, k=SMALL, seed=SEEDS)
def test_binary_round_trip(rows, k, seed):
    w = np.random.default_rng(seed).choice([-1, 1], size=(rows, k))
    codes = pk.binary_encode(w)
    back = pk.binary_decode(from_bytes(to_bytes(codes, DType.U1), DType.U1, k))
    np.testing.assert_array_equal(back, w)


@given(rows=SMALL, k=SMALL, seed=SEEDS)
def test_ternary_round_trip(rows, k, seed):
    w = np.random.default_rng(seed).integers(-1, 2, size=(rows, k))
    np.testing.assert_array_equal(pk.ternary_check(from_bytes(to_bytes(w, DType.I2), DType.I2, k)), w)


@given(index=st.sampled_from(pk.CODEBOOK_INDEX_TYPES), rows=SMALL, k=SMALL, seed=SEEDS,
       floats=st.booleans())
def test_codebook_round_trip(index, rows, k, seed, floats):
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(pk.codebook_size(index)).astype(np.float16) if floats else \
        rng.integers(-128, 128, size=pk.codebook_size(index))
    w = rng.choice(shared, size=(rows, k))
    idx, table = pk.codebook_encode(w, index)
    assert table.size == 1 << index.bits and idx.max() < table.size
    packed = to_bytes(idx, index)
    np.testing.assert_array_equal(pk.codebook_decode(from_bytes(packed, index, k), table), w)


@given(rows=SMALL, k=SMALL, br=st.integers(1, 4), bc=st.integers(1, 4), density=st.floats(0, 1), seed=SEEDS)
def test_block_round_trip(rows, k, br, bc, density, seed):
    gr, gc = pk.block_grid(rows, k, br, bc)
    rng = np.random.default_rng(seed)
    keep = np.repeat(np.repeat(rng.random((gr, gc)) < density, br, 0), bc, 1)[:rows, :k]
    dense = np.where(keep, rng.integers(-8, 8, size=(rows, k)), 0)
    ids, blocks = pk.block_compress(dense, br, bc)
    assert blocks.shape == (ids.size * br, bc) and (np.diff(ids) > 0).all()
    ib = pk.block_index_bytes(rows, k, br, bc)
    ids_back = pk.unpack_indices(pk.pack_indices(ids, ib), ib, ids.size)
    blocks_back = from_bytes(to_bytes(blocks, DType.I4), DType.I4, bc)
    np.testing.assert_array_equal(pk.block_decompress(ids_back, blocks_back, br, bc, rows, k), dense)


@given(rows=SMALL, k=SMALL, density=st.floats(0, 1), seed=SEEDS)
def test_bitmask_round_trip(rows, k, density, seed):
    dense = _sparse(rows, k, density, seed)
    mask, values = pk.bitmask_compress(dense)
    mask_back = from_bytes(to_bytes(mask, DType.U1), DType.U1, k)
    assert values.size == np.count_nonzero(dense)
    np.testing.assert_array_equal(pk.bitmask_decompress(mask_back, values), dense)


@given(rows=SMALL, k=st.integers(1, 300), density=st.floats(0, 1), seed=SEEDS)
def test_csr_round_trip(rows, k, density, seed):
    dense = _sparse(rows, k, density, seed)
    row_ptr, col_idx, values = pk.csr_compress(dense)
    meta = pk.csr_meta_to_bytes(row_ptr, col_idx, k)
    assert meta.size == pk.csr_meta_nbytes(rows, values.size, k)
    rp, ci = pk.csr_meta_from_bytes(meta, rows, values.size, k)
    np.testing.assert_array_equal(pk.csr_decompress(rp, ci, values, k), dense)


@given(nbytes=st.sampled_from([1, 2, 4]), data=st.data())
def test_index_words_round_trip(nbytes, data):
    values = data.draw(st.lists(st.integers(0, (1 << (8 * nbytes)) - 1), max_size=20))
    assert pk.index_bytes(max(values, default=0)) <= nbytes
    np.testing.assert_array_equal(pk.unpack_indices(pk.pack_indices(values, nbytes), nbytes, len(values)), values)


def test_matrix_unit_formats_bit_for_bit():
    """The examples of docs/isa.md, "The matrix unit"."""
    assert to_bytes(pk.binary_encode(np.array([1, -1, -1, 1, 1])), DType.U1).tolist() == [0x19]
    assert to_bytes(np.array([1, 0, -1]), DType.I2).tolist() == [0x31]
    assert to_bytes(np.array([3, 0, 1]), DType.U2).tolist() == [0x13]
    assert to_bytes(np.array([0, -3, 5, 12]), DType.I8).tolist() == [0x00, 0xFD, 0x05, 0x0C]
    assert pk.codebook_decode(np.array([3, 0, 1]), np.array([0, -3, 5, 12])).tolist() == [12, 0, -3]
    w = np.zeros((6, 10), int)
    w[0, 5], w[5, 9] = 1, 2  # blocks (0, 1) and (1, 2) of 4x4
    ids, blocks = pk.block_compress(w, 4, 4)
    assert pk.pack_indices(ids, pk.block_index_bytes(6, 10, 4, 4)).tolist() == [1, 5] and blocks.shape == (8, 4)
    w = np.array([[0, 5, 0, 0, 7], [0, 0, 0, 0, 0]])
    mask, values = pk.bitmask_compress(w)
    assert to_bytes(mask, DType.U1).ravel().tolist() == [0x12, 0x00] and values.tolist() == [5, 7]
    row_ptr, col_idx, _ = pk.csr_compress(w)
    assert pk.csr_meta_to_bytes(row_ptr, col_idx, 5).tolist() == [0, 2, 2, 1, 4]
    assert pk.csr_index_bytes(256, 257) == (2, 2) and pk.csr_index_bytes(255, 256) == (1, 1)
    assert pk.block_index_bytes(16, 16 * 17, 1, 1) == 2  # 4352 blocks: ids need 2 bytes


@pytest.mark.parametrize("call, match", [
    (lambda: pk.binary_encode(np.array([1, 0])), "binary weights must be -1 or \\+1"),
    (lambda: pk.ternary_check(np.array([-2])), "ternary weights must be"),
    (lambda: pk.codebook_encode(np.arange(5), DType.U2), "5 distinct weight values do not fit a 4-entry"),
    (lambda: pk.codebook_size(DType.I4), "codebook indices must be u1, u2, u4 or u8"),
    (lambda: pk.codebook_decode(np.array([4]), np.zeros(4)), "codebook index 4 is outside"),
    (lambda: pk.block_decompress([3], np.zeros((2, 2)), 2, 2, 2, 4), "block index 3 is out of range"),
    (lambda: pk.block_decompress([1, 0], np.zeros((4, 2)), 2, 2, 2, 4), "not strictly ascending"),
    (lambda: pk.bitmask_decompress(np.ones((1, 2)), np.ones(1)), "2 set bits for 1 stored values"),
    (lambda: pk.csr_decompress([0, 1, 1], [2, 0], np.ones(2), 3), "row pointers must rise from 0 to nnz = 2"),
    (lambda: pk.csr_decompress([0, 2], [1, 1], np.ones(2), 3), "CSR row 0: column indices are not strictly"),
    (lambda: pk.csr_decompress([0, 1], [3], np.ones(1), 3), "column index 3 is out of range"),
    (lambda: pk.pack_indices([256], 1), "indices must lie in"),
    (lambda: pk.unpack_indices(np.zeros(3, np.uint8), 2, 2), "need 4 bytes"),
])
def test_matrix_unit_format_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
