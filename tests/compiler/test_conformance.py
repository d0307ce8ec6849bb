"""A fast, fixed subset of ONNX's backend node tests through import + evaluator
(`spaq conformance` runs all of them and writes docs/conformance.md)."""

import pytest

from spaq.compiler.conformance import node_cases, run_case

SUBSET = r"^test_(conv_with_strides_padding|convtranspose$|gemm_default_vector_bias|matmul_4d|relu|" \
         r"softmax_axis_1|layer_normalization_4d_axis1|reduce_mean_default_axes_keepdims_example|" \
         r"maxpool_2d_pads|averagepool_2d_same_upper|gather_1|slice$|transpose_default|concat_2d_axis_0|" \
         r"split_equal_parts_1d_opset18|erf|gelu_tanh_2|where_example|resize_upsample_scales_nearest|" \
         r"quantizelinear$|dequantizelinear$|batchnorm_example|einsum_batch_matmul|pad$|expand_dim_changed|" \
         r"unsqueeze_axis_0|reshape_reduced_dims|cast_FLOAT_to_FLOAT16|hardswish|lrn)$"
CASES = node_cases(SUBSET)


def test_subset_is_not_empty():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_passes(case):
    result = run_case(case)
    assert result.status == "passed", result.detail
