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
    exact = x.astype(STORAGE_DTYPE[dtype]).astype(np.float32)  # values the type holds
    back = from_bytes(to_bytes(exact, dtype), dtype, count)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, exact)


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
