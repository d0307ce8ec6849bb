"""ONNX backend node cases that run on the vector unit: import, the full pipeline (datacenter),
the simulator — the simulated outputs equal ONNX's expected ones (conformance's tolerance).
A few cases per newly lowered form: activations, integer arithmetic, casts, reductions on any
axes, arg reductions, softmax / layer norm on any axis, Q/DQ, a Gemm by an activation."""

from __future__ import annotations

import numpy as np
import pytest
from xdsl.passes import PassPipeline

from spaq.backends.sparrow.emitter import assemble
from spaq.backends.sparrow.simulator import simulate
from spaq.compiler import conformance as C
from spaq.compiler.context import make_context
from spaq.compiler.onnx_import import import_model
from spaq.compiler.pipeline import passes
from spaq.compiler.weights import weights_of
from spaq.passes.tile_layers import target_of

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
    "test_gemm_all_attributes",
)


def _simulate(case) -> list[tuple[np.ndarray, np.ndarray]]:
    model = case.model
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    inputs, outputs = ([C._array(v) for v in vs] for vs in case.data_sets[0])
    feeds = dict(zip(names, inputs))
    ctx = make_context()
    module = import_model(model, ctx, {n: list(np.shape(v)) for n, v in feeds.items()})
    PassPipeline(tuple(passes("datacenter")), lambda *a: None).apply(ctx, module)
    program, image = assemble(module, weights_of(ctx))
    got = simulate(program, image, target_of("datacenter"), feeds).outputs
    return [(np.asarray(v), np.asarray(w)) for v, w in zip(got.values(), outputs)]


@pytest.fixture(scope="module")
def cases():
    return {c.name: c for c in C.node_cases("^(" + "|".join(CASES) + ")$")}


@pytest.mark.parametrize("name", CASES)
def test_simulator_matches_onnx(cases, name):
    with np.errstate(all="ignore"):
        pairs = _simulate(cases[name])
    for got, want in pairs:
        assert C._compare(got, want) is None, C._compare(got, want)
