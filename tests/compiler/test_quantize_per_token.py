"""Per-token dynamic int8 activations: the evaluator's integer path tracks the float model."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from xdsl.passes import PassPipeline

from spaq.compiler.context import make_context
from spaq.compiler.evaluator import evaluate
from spaq.compiler.onnx_import import import_model
from spaq.passes.choose_compression import ChooseCompressionPass
from spaq.passes.onnx_canonicalize import OnnxCanonicalizePass
from spaq.passes.quantize import QuantizePass


def test_per_token_gemm_tracks_float_and_scales_rows_independently():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(64, 48)).astype(np.float32)
    b = rng.normal(size=48).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [16, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [16, 48])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    ctx = make_context()
    module = import_model(model, ctx)
    PassPipeline((OnnxCanonicalizePass(), ChooseCompressionPass(precision="int8-dynamic"), QuantizePass()),
                 lambda *a: None).apply(ctx, module)
    names = {op.name for op in module.walk()}
    assert {"quant.quantize_dynamic", "quant.gemm", "quant.dequantize"} <= names
    # rows of very different magnitude: a per-tensor scale would crush the small rows
    x = rng.normal(size=(16, 64)).astype(np.float32) * np.logspace(-3, 2, 16, dtype=np.float32)[:, None]
    got = evaluate(module, ctx, {"x": x})["y"]
    want = x @ w + b
    rel = np.abs(got - want).max(axis=1) / np.abs(x @ w).max(axis=1)
    assert rel.max() < 0.03, rel
