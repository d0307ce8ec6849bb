"""A fast, fixed subset of ONNX's backend tests through spaq's two paths (`spaq conformance`
runs all of them and writes docs/conformance.md): import + evaluator, and import + the whole
compile pipeline (datacenter, fp32) + the Sparrow simulator."""

import pytest

from spaq.compiler.conformance import bind_parameters, cases, node_cases, run_case

SUBSET = r"^test_(conv_with_strides_padding|gemm_default_vector_bias|" \
         r"convtranspose|convtranspose_(1d|pad|pads|kernel_shape|output_shape|dilations|autopad_same|group_2|group_2_image_3)|" \
         r"matmul_4d|relu|" \
         r"softmax_axis_1|layer_normalization_4d_axis1|reduce_mean_default_axes_keepdims_example|" \
         r"maxpool_2d_pads|averagepool_2d_same_upper|gather_1|slice$|transpose_default|concat_2d_axis_0|" \
         r"split_equal_parts_1d_opset18|erf|gelu_tanh_2|where_example|resize_upsample_scales_nearest|" \
         r"quantizelinear$|dequantizelinear$|batchnorm_example|einsum_batch_matmul|pad$|expand_dim_changed|" \
         r"unsqueeze_axis_0|reshape_reduced_dims|cast_FLOAT_to_FLOAT16|hardswish|lrn|" \
         r"cast_FLOAT_to_FLOAT4E2M1|cast_FLOAT4E2M1_to_FLOAT16|castlike_FLOAT16_to_FLOAT4E2M1_expanded|cast_FLOAT_to_INT2|" \
         r"castlike_UINT2_to_FLOAT16_expanded)$"
CASES = node_cases(SUBSET)

SIM_SUBSET = r"^test_(matmul_4d|relu|" \
             r"convtranspose|convtranspose_(1d|pad|pads|kernel_shape|output_shape|dilations|autopad_same|group_2|group_2_image_3)|" \
             r"maxpool_2d_pads|gather_1|slice|transpose_default|concat_2d_axis_0|split_equal_parts_1d_opset18|" \
             r"erf|where_example|resize_upsample_scales_nearest|pad|expand_dim_changed|unsqueeze_axis_0|" \
             r"reshape_reduced_dims|concat_3d_axis_negative_2|split_variable_parts_2d_opset18|" \
             r"split_zero_size_splits_opset18|constant_pad|edge_pad|reflect_pad|wrap_pad|tile|" \
             r"depthtospace_crd_mode_example|spacetodepth|resize_upsample_scales_linear|" \
             r"resize_downsample_scales_cubic|resize_upsample_sizes_nearest_ceil_half_pixel|" \
             r"resize_tf_crop_and_resize|gather_2d_indices|gather_negative_indices|slice_neg_steps|" \
             r"slice_negative_axes|flatten_axis2|squeeze_negative_axes|unsqueeze_unsorted_axes|" \
             r"reshape_negative_extended_dims|identity|constantofshape_int_zeros|shape_start_1|" \
             r"expand_dim_unchanged|transpose_all_permutations_3|rotary_embedding_expanded|" \
             r"center_crop_pad_crop_axes_chw_expanded|gathernd_example_float32|gathernd_example_int32_batch_dim1|dropout_default_mask|" \
             r"cast_FLOAT_to_FLOAT4E2M1|cast_FLOAT4E2M1_to_FLOAT16|castlike_FLOAT16_to_FLOAT4E2M1_expanded|cast_FLOAT_to_INT2|" \
             r"castlike_UINT2_to_FLOAT16_expanded)$"
SIM_CASES = node_cases(SIM_SUBSET)
MODELS = {"pytorch-converted": r"^test_(Linear|PixelShuffle|ReflectionPad2d|Embedding|Softmax|ConvTranspose2d|"
                                  r"ConvTranspose2d_no_bias)$",
          "pytorch-operator": r"^test_operator_(chunk|concat2|pad|repeat|permute2|index|convtranspose)$",
          "simple": r"^test_(expand_shape_model1|single_relu_model)$"}
MODEL_CASES = [c for kind, pattern in MODELS.items() for c in cases(kind, pattern)]


def test_subsets_are_not_empty():
    assert len(CASES) >= 25
    assert len(SIM_CASES) >= 40
    assert len(MODEL_CASES) >= 12


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_passes(case):
    result = run_case(case)
    assert result.status == "passed", result.detail


@pytest.mark.parametrize("case", SIM_CASES, ids=lambda c: c.name)
def test_case_passes_on_the_simulator(case):
    result = run_case(case, "simulator")
    assert result.status == "passed", result.detail


@pytest.mark.parametrize("case", MODEL_CASES, ids=lambda c: f"{c.kind}/{c.name}")
@pytest.mark.parametrize("path", ["evaluator", "simulator"])
def test_model_case_passes(case, path):
    result = run_case(case, path)
    assert result.status == "passed", result.detail


def test_parameters_are_bound_and_data_stays_an_input():
    """Reshape's shape input becomes a constant on the simulator path; the data stays a
    run-time input, and so does an input that reaches data through shape arithmetic."""
    import numpy as np
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    s = helper.make_tensor_value_info("s", TensorProto.INT64, [2])
    k = helper.make_tensor_value_info("k", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 2])
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "s"], ["y"]),
                               helper.make_node("Mul", ["y", "k"], ["z"])], "g", [x, s, k], [y, z])
    model = helper.make_model(graph)
    feeds = {"x": np.zeros((2, 3), np.float32), "s": np.array([3, 2]), "k": np.ones(1, np.float32)}
    bound, rest = bind_parameters(model, feeds)
    assert sorted(rest) == ["k", "x"]
    assert [i.name for i in bound.graph.initializer] == ["s"]
