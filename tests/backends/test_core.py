import ml_dtypes
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from spaq.backends.sparrow import core
from spaq.backends.sparrow.isa import DType, EpilogueMode
from spaq.backends.sparrow.packing import nm_compress

SMALL_INTS = [DType.I8, DType.U8, DType.I4, DType.U4, DType.I2, DType.U2, DType.U1]
SEEDS = st.integers(0, 2**32 - 1)


def _ints(dtype, shape, rng):
    lo, hi = dtype.int_range
    return rng.integers(lo, hi, size=shape, endpoint=True)


# -- quantize ----------------------------------------------------------------------------------

_ONNX_Q = {DType.I8: (TensorProto.INT8, np.int8), DType.U8: (TensorProto.UINT8, np.uint8),
           DType.I4: (TensorProto.INT4, ml_dtypes.int4), DType.U4: (TensorProto.UINT4, ml_dtypes.uint4)}


def _onnx_quantize(x, scale, zp, dtype, axis):
    onnx_type, np_type = _ONNX_Q[dtype]
    node = helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["y"], axis=axis)
    graph = helper.make_graph(
        [node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
        [helper.make_tensor_value_info("y", onnx_type, x.shape)],
        initializer=[numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zp.astype(np_type), "zp")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return ReferenceEvaluator(model).run(None, {"x": x})[0].astype(np.int64)


@settings(max_examples=30, deadline=None)
@given(dtype=st.sampled_from(list(_ONNX_Q)), per_channel=st.booleans(), seed=SEEDS)
def test_quantize_matches_onnx_reference(dtype, per_channel, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((2, 3, 4)) * 4).astype(np.float32)
    x.flat[:7] = [0.5, 1.5, 2.5, -0.5, -2.5, 1e5, -1e5]  # ties and saturation (scale 1 below)
    scale = rng.uniform(0.01, 1, size=3 if per_channel else ()).astype(np.float32)
    if not per_channel:
        scale = np.float32(1.0) if seed % 2 else scale
    lo, hi = dtype.int_range
    zp = rng.integers(lo, hi, size=scale.shape, endpoint=True)
    ours = core.quantize(x, np.reshape(scale, (1, -1, 1)), np.reshape(zp, (1, -1, 1)), dtype)
    np.testing.assert_array_equal(ours, _onnx_quantize(x, np.asarray(scale), np.asarray(zp), dtype, axis=1))


def test_quantize_edge_cases():
    q = core.quantize(np.array([np.nan, np.inf, -np.inf, 0.5, 1.5]), 1.0, 3, DType.I8)
    assert q.tolist() == [3, 127, -128, 3, 5]
    assert core.quantize(np.array([1000.0, -0.3]), 1.0, 0, DType.F8E4M3).tolist() == [448.0, -0.3125]
    with pytest.raises(ValueError, match="scale must be finite and positive"):
        core.quantize(np.ones(2), 0.0, 0, DType.I8)
    np.testing.assert_array_equal(core.dequantize(np.array([-128, 5], np.int8), 0.5, 5), [-66.5, 0.0])


def test_round_to():
    assert core.round_to(np.array([1e6, -1e6]), DType.F8E4M3).tolist() == [448.0, -448.0]
    assert core.round_to(np.array([1e6, 1 + 2**-12]), DType.F16).tolist() == [np.inf, 1.0]
    assert core.round_to(np.array([1 + 2**-8 + 2**-9]), DType.BF16).tolist() == [1 + 2**-7]


# -- requantize -------------------------------------------------------------------------------


@given(st.floats(1e-9, 4.0))
def test_fixed_point_multiplier(real):
    mult, shift = core.fixed_point_multiplier(real)
    assert 2**30 <= mult < 2**31 and 1 <= shift <= 62
    assert abs(int(mult) * 2.0 ** -int(shift) - real) <= real * 2.0**-30


@pytest.mark.parametrize("real", [0.0, -1.0, 2.0**40, 1e-30])
def test_fixed_point_multiplier_errors(real):
    with pytest.raises(ValueError, match="requantization multiplier"):
        core.fixed_point_multiplier(real)


@settings(max_examples=50)
@given(seed=SEEDS, dtype=st.sampled_from([DType.I8, DType.U8, DType.I4]), relu=st.booleans())
def test_requantize_vs_float(seed, dtype, relu):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(2**20), 2**20, size=(16, 4)).astype(np.int32)
    bias = rng.integers(-1000, 1000, size=4).astype(np.int32)
    real = rng.uniform(1e-5, 1e-3, size=4)
    lo, hi = dtype.int_range
    zp = int(rng.integers(lo, hi, endpoint=True))
    mult, shift = core.fixed_point_multiplier(real)
    ours = core.requantize(acc, bias, mult, shift, zp, dtype, relu).astype(np.int64)
    y = np.floor((acc.astype(np.float64) + bias) * real + 0.5) + zp
    ref = np.clip(np.maximum(y, zp) if relu else y, lo, hi)
    assert np.abs(ours - ref).max() <= 1


def test_requantize_exact_cases():
    half = core.fixed_point_multiplier(0.5)
    assert (int(half[0]), int(half[1])) == (2**30, 31)
    acc = np.array([[3, -3, 5, -5, 300, -300, 2**31 - 1]], np.int32)
    out = core.requantize(acc, None, *half, 0, DType.I8, relu=False)
    assert out.tolist() == [[2, -1, 3, -2, 127, -128, 127]]  # round half up, saturate
    out = core.requantize(acc, None, *half, 10, DType.I8, relu=True)
    assert out.tolist() == [[12, 10, 13, 10, 127, 10, 127]]
    # t = acc + bias saturates to int32 before the multiply
    big = core.requantize(np.array([[2**31 - 1]], np.int32), np.array([100]), 2**30, 62, 0, DType.I32, False)
    assert big.tolist() == [[(2**31 - 1) * 2**30 // 2**62 + 0]]


def test_dequantize_acc_and_epilogue_modes():
    acc = np.array([[10, -20], [30, 40]], np.int32)
    bias, scale = np.array([1, 2]), np.array([0.5, 0.25], np.float32)
    np.testing.assert_array_equal(core.dequantize_acc(acc, bias, scale), [[5.5, -4.5], [15.5, 10.5]])
    y = core.epilogue(acc, EpilogueMode.DEQUANT, DType.F16, bias=bias, scale=scale, relu=True)
    np.testing.assert_array_equal(y, [[5.5, 0.0], [15.5, 10.5]])
    f = core.epilogue(acc.astype(np.float32), EpilogueMode.FLOAT, DType.F32, bias=np.float32([0.5, 0.5]))
    np.testing.assert_array_equal(f, [[10.5, -19.5], [30.5, 40.5]])
    mult, shift = core.fixed_point_multiplier(np.array([0.5, 0.25]))
    r = core.epilogue(acc, EpilogueMode.REQUANT, DType.I8, bias=bias, mult=mult, shift=shift, zero_point=-1)
    np.testing.assert_array_equal(r, core.requantize(acc, bias, mult, shift, -1, DType.I8, False))
    with pytest.raises(ValueError, match="REQUANT needs an integer output type"):
        core.epilogue(acc, EpilogueMode.REQUANT, DType.F32, mult=mult, shift=shift)


def test_dequantize_acc_rounds_the_exact_sum_once():
    """int32 acc + int32 bias beyond int32 and beyond 2^24: float32 of the exact sum, also
    when written into `out`."""
    acc = np.array([[2**31 - 1, -(2**31), 2**24 + 1, 3]], np.int32)
    bias = np.array([2**31 - 1, -(2**31), 2, -5], np.int32)
    exact = acc.astype(np.int64) + bias
    want = exact.astype(np.float32) * np.float32(0.75)
    np.testing.assert_array_equal(core.dequantize_acc(acc, bias, np.float32(0.75)), want)
    out = np.empty(acc.shape, np.float32)
    y = core.epilogue(acc, EpilogueMode.DEQUANT, DType.F32, bias=bias, scale=np.float32(0.75), relu=True, out=out)
    assert y is out
    np.testing.assert_array_equal(out, np.maximum(want, 0))
    with pytest.raises(ValueError, match="FLOAT needs a float output type"):
        core.epilogue(acc, EpilogueMode.FLOAT, DType.I8)


# -- gemm ---------------------------------------------------------------------------------------


@settings(max_examples=40)
@given(adtype=st.sampled_from(SMALL_INTS), wdtype=st.sampled_from(SMALL_INTS), m=st.integers(1, 9),
       n=st.integers(1, 9), k=st.integers(0, 3000), seed=SEEDS)
def test_int_gemm_exact(adtype, wdtype, m, n, k, seed):
    rng = np.random.default_rng(seed)
    a, w = _ints(adtype, (m, k), rng), _ints(wdtype, (n, k), rng)
    out = core.gemm(a, w, adtype, wdtype)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, a @ w.T)


def test_int_gemm_wraps_modulo_2_32():
    a = np.full((2, 40000), 255, np.uint8)
    w = np.full((3, 40000), 255, np.uint8)
    exact = 255 * 255 * 40000
    out = core.gemm(a, w, DType.U8, DType.U8)
    assert out[0, 0] == np.int64(exact).astype(np.int32) and exact > 2**31


@pytest.mark.parametrize("magnitude", [2**20, 2**30])  # float64 chunks, then int64
def test_int_gemm_exact_for_wide_values(magnitude):
    rng = np.random.default_rng(0)
    a = rng.integers(-magnitude, magnitude, size=(4, 300))
    w = rng.integers(-magnitude, magnitude, size=(5, 300))
    ref = ((a.astype(object) @ w.T.astype(object)) % 2**32).astype(np.int64)
    ref = np.where(ref >= 2**31, ref - 2**32, ref)
    np.testing.assert_array_equal(core.gemm(a, w, DType.I32, DType.I32), ref)


def test_float_gemm_rounds_operands_and_accumulates_in_f32():
    rng = np.random.default_rng(1)
    a, w = rng.standard_normal((5, 70)), rng.standard_normal((6, 70))
    for dt, np_type in [(DType.F16, np.float16), (DType.BF16, ml_dtypes.bfloat16)]:
        out = core.gemm(a, w, dt, dt)
        assert out.dtype == np.float32
        ref = a.astype(np_type).astype(np.float64) @ w.astype(np_type).astype(np.float64).T
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="must both be integer or both float"):
        core.gemm(a, w, DType.F32, DType.I8)


@pytest.mark.parametrize("k", [0, 5, 1024, 1536, 2500])  # 1536, 2500: float32 BLAS in 2 and 3 chunks
def test_int_gemm_out_accumulate_and_float_weights(k):
    rng = np.random.default_rng(k)
    a, w = _ints(DType.I8, (6, k), rng), _ints(DType.I8, (5, k), rng)
    a[0], w[0] = -128, -128  # the largest products
    exact = a.astype(np.int64) @ w.T.astype(np.int64)
    wf = core.float_weights(w)
    assert wf.shape == (k, 5) and wf.dtype == np.float32
    out = np.full((6, 5), 2**31 - 1, np.int32)
    got = core.gemm(a.astype(np.int8), w.astype(np.int8), DType.I8, DType.I8, operands_exact=True, w_float=wf,
                    out=out, accumulate=True)
    assert got is out
    np.testing.assert_array_equal(out, ((exact + 2**31 - 1 + 2**31) % 2**32 - 2**31).astype(np.int32))
    core.gemm(a, w, DType.I8, DType.I8, out=out)
    np.testing.assert_array_equal(out, exact)
    af, wf = a.astype(np.float32), w.astype(np.float32)
    f = np.ones((6, 5), np.float32)
    core.gemm(af, wf, DType.F32, DType.F32, out=f, accumulate=True)
    np.testing.assert_array_equal(f, np.float32(1) + af @ wf.T)
    with pytest.raises(ValueError, match="does not fit"):
        core.gemm(a, w, DType.I8, DType.I8, out=f)


def test_nm_gemm_equals_dense_gemm():
    rng = np.random.default_rng(2)
    w = rng.integers(-8, 8, size=(6, 10)) * (rng.random((6, 10)) < 0.3)
    w[:, 1::4] = w[:, 3::4] = 0  # at most 2 of every 4 non-zero
    a = rng.integers(-128, 128, size=(4, 10))
    values, indices = nm_compress(w, 2, 4)
    np.testing.assert_array_equal(core.nm_gemm(a, values, indices, 2, 4, 10, DType.I8, DType.I4),
                                  core.gemm(a, w, DType.I8, DType.I4))


# -- windows -----------------------------------------------------------------------------------


def _taps(h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow):
    """(oy, ox, ky, kx, iy, ix) of every in-bounds tap, by plain loops."""
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * sh - pt + ky * dh, ox * sw - pl + kx * dw
                    if 0 <= iy < h and 0 <= ix < w:
                        yield oy, ox, ky, kx, iy, ix


WINDOWS = st.tuples(*[st.integers(1, 3)] * 6, *[st.integers(0, 2)] * 4)  # kh kw sh sw dh dw pt pl pb pr


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 7), c=st.integers(1, 3), oc=st.integers(1, 3), win=WINDOWS, seed=SEEDS)
def test_im2col_conv_vs_loops(h, w, c, oc, win, seed):
    kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = win
    oh, ow = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1, (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(h, w, c))
    weight = rng.integers(-128, 128, size=(oc, c, kh, kw))
    cols = core.im2col(x, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw)
    assert cols.shape == (oh * ow, c * kh * kw)
    ref = np.zeros((oh, ow, oc), np.int64)
    for oy, ox, ky, kx, iy, ix in _taps(h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow):
        ref[oy, ox] += weight[:, :, ky, kx] @ x[iy, ix]
    np.testing.assert_array_equal(cols @ weight.reshape(oc, -1).T, ref.reshape(oh * ow, oc))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 7), w=st.integers(1, 7), c=st.integers(1, 3), win=WINDOWS, seed=SEEDS)
def test_maxpool_vs_loops(h, w, c, win, seed):
    kh, kw, sh, sw, dh, dw, pt, pl, pb, pr = win
    oh, ow = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1, (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    assume(oh >= 1 and ow >= 1)
    x = np.random.default_rng(seed).standard_normal((h, w, c)).astype(np.float32)
    ref = np.full((oh, ow, c), -np.inf, np.float32)
    for oy, ox, _, _, iy, ix in _taps(h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow):
        ref[oy, ox] = np.maximum(ref[oy, ox], x[iy, ix])
    np.testing.assert_array_equal(core.maxpool(x, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw), ref.reshape(-1, c))


def test_maxpool_int_padding_never_selected():
    x = np.full((2, 2, 1), -128, np.int8)
    assert core.maxpool(x, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1).tolist() == [[-128]] * 4
    assert core.maxpool(np.full((1, 1, 1), -8, np.int8), 2, 2, 1, 1, 1, 1, 0, 0, 1, 1, pad_value=-8).tolist() == [[-8]]


def test_window_errors():
    with pytest.raises(ValueError, match="at least 1"):
        core.window_output(4, 4, 3, 3, 0, 1, 0, 0, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="does not fit"):
        core.im2col(np.zeros((2, 2, 1)), 3, 3, 1, 1, 0, 0, 0, 0, 1, 1)


def test_softmax():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -np.inf]], np.float32)
    y = core.softmax(x)
    assert y.dtype == np.float32
    ref = np.exp(x[0] - 3.0) / np.exp(x[0] - 3.0).sum()
    np.testing.assert_allclose(y[0], ref, rtol=1e-6)
    assert y[1].tolist() == [0.5, 0.5, 0.0]


def test_int_gemm_checks_operand_ranges():
    with pytest.raises(ValueError, match="value 8 is outside the i4 range"):
        core.gemm(np.array([[8]]), np.array([[1]]), DType.I4, DType.I8)
