"""ONNX backend node cases that run on the vector unit, through conformance's simulator path
(import, the full pipeline on datacenter, the simulator): the simulated outputs equal ONNX's
expected ones (conformance's tolerance).
A few cases per newly lowered form: activations, integer arithmetic, casts, reductions on any
axes, arg reductions, softmax / layer norm on any axis, Q/DQ, a Gemm by an activation, and
onnx-canonicalize's forms (1-D MatMul, Einsum, empty reductions, BatchNorm / InstanceNorm)."""

from __future__ import annotations

import pytest

from spaq.compiler import conformance as C

CASES = (
    "test_elu", "test_selu_default", "test_celu", "test_leakyrelu", "test_hardswish", "test_softplus",
    "test_sigmoid", "test_thresholdedrelu", "test_clip", "test_isinf", "test_isnan", "test_mod_mixed_sign_int32",
    "test_mod_mixed_sign_float32", "test_pow", "test_div_int32_trunc", "test_add_uint16", "test_max_int16",
    "test_mean_example", "test_where_long_example", "test_cast_FLOAT_to_FLOAT16", "test_cast_FLOAT16_to_FLOAT",
    "test_castlike_FLOAT_to_BFLOAT16", "test_cast_FLOAT_to_FLOAT8E4M3FNUZ", "test_reduce_sum_keepdims_random",
    "test_reduce_mean_keepdims_random", "test_reduce_log_sum_exp_keepdims_random", "test_reduce_l2_keep_dims_random",
    "test_reduce_prod_negative_axes_keepdims_random", "test_argmax_keepdims_random_select_last_index",
    "test_argmin_no_keepdims_random", "test_softmax_axis_0", "test_logsoftmax_axis_1",
    "test_layer_normalization_4d_axis1", "test_quantizelinear_axis", "test_dequantizelinear_axis",
    "test_gemm_all_attributes", "test_cast_FLOAT_to_INT4", "test_cast_UINT4_to_FLOAT",
    "test_cast_no_saturate_FLOAT_to_FLOAT8E4M3FN", "test_einsum_batch_matmul", "test_einsum_sum", "test_matmul_1d_3d",
    "test_reduce_sum_empty_set", "test_batchnorm_example", "test_instancenorm_example",
    "test_cast_no_saturate_FLOAT_to_FLOAT8E5M2", "test_lrn",
)


@pytest.fixture(scope="module")
def cases():
    return {c.name: c for c in C.node_cases("^(" + "|".join(CASES) + ")$")}


@pytest.mark.parametrize("name", CASES)
def test_simulator_matches_onnx(cases, name):
    result = C.run_case(cases[name], "simulator")  # conformance's simulator path (parameters bound)
    assert result.status == "passed", result.detail
