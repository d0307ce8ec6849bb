"""ONNX backend cases that used to fail (issue 4's conformance goal), on both paths, and the
kernels behind them on small graphs checked against ONNX's reference implementation."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from spaq.compiler.conformance import _evaluate, node_cases, run_case

GAPS = r"^test_(reduce_max_empty_set|reduce_max_empty_set_bool|reduce_min_empty_set|" \
       r"batchnorm_example_training_mode|batchnorm_epsilon_training_mode|" \
       r"averagepool_2d_ceil_last_window_starts_on_pad|maxpool_2d_ceil_output_size_reduce_by_one|" \
       r"quantizelinear_int4|quantizelinear_uint4|quantizelinear_blocked_asymmetric|" \
       r"quantizelinear_blocked_symmetric|dequantizelinear_blocked|" \
       r"causal_conv_with_state_with_bias_expanded|causal_conv_with_state_decode_step_expanded|" \
       r"causal_conv_with_state_with_bias_and_past_state_expanded)$"
GAP_CASES = node_cases(GAPS)


def test_gap_cases_are_all_found():
    assert len(GAP_CASES) == 15


@pytest.mark.parametrize("case", GAP_CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("path", ["evaluator", "simulator"])
def test_gap_case_passes(case, path):
    result = run_case(case, path)
    assert result.status == "passed", result.detail


def _run(node: onnx.NodeProto, inputs: dict[str, np.ndarray], inits: dict[str, np.ndarray], outputs: list[str],
         opset: int = 21) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(spaq's evaluator, ONNX's reference) on a one-node graph."""
    ref = ReferenceEvaluator(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                      for n, a in inputs.items()],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        [numpy_helper.from_array(a, n) for n, a in inits.items()]), opsets={"": opset})
    want = ref.run(None, inputs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                      for n, a in inputs.items()],
        [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(w.dtype), w.shape)
         for o, w in zip(outputs, want)],
        [numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return _evaluate(model, dict(inputs)), want


@pytest.mark.parametrize("dtype, want", [(np.float32, -np.inf), (np.int32, np.iinfo(np.int32).min),
                                         (np.bool_, False)])
def test_empty_reduce_max_is_the_identity(dtype, want):
    node = helper.make_node("ReduceMax", ["x", "axes"], ["y"], keepdims=1)
    got, _ = _run(node, {}, {"x": np.zeros((2, 0, 3), dtype), "axes": np.array([1], np.int64)}, ["y"])
    assert got[0].shape == (2, 1, 3) and got[0].dtype == dtype and (got[0] == want).all()


def test_empty_reduce_min_is_the_identity():
    node = helper.make_node("ReduceMin", ["x", "axes"], ["y"], keepdims=0)
    got, _ = _run(node, {}, {"x": np.zeros((0, 4), np.uint8), "axes": np.array([0], np.int64)}, ["y"])
    assert (got[0] == 255).all() and got[0].shape == (4,)


def test_conv_1d_bias_is_per_channel():
    rng = np.random.default_rng(0)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3])
    inits = {"w": rng.standard_normal((4, 2, 3)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    got, want = _run(node, {"x": rng.standard_normal((2, 2, 8)).astype(np.float32)}, inits, ["y"])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)


def test_blocked_quantize_linear_repeats_each_scale_over_its_block():
    rng = np.random.default_rng(1)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=1, block_size=3)
    inits = {"s": rng.uniform(0.5, 2, (2, 3)).astype(np.float32), "z": rng.integers(-3, 3, (2, 3)).astype(np.int8)}
    got, want = _run(node, {"x": rng.standard_normal((2, 8)).astype(np.float32) * 10}, inits, ["y"])
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("dtype", [ml_dtypes.int4, ml_dtypes.uint4])
def test_quantize_linear_into_4_bits_saturates(dtype):
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], axis=0)
    inits = {"s": np.array([0.5, 2.0], np.float32), "z": np.array([1, 2], dtype)}
    x = np.array([[-30, -1, 0, 1.4], [3, 9, 40, 100]], np.float32)
    got, want = _run(node, {"x": x}, inits, ["y"])
    np.testing.assert_array_equal(got[0].astype(np.int64), want[0].astype(np.int64))
