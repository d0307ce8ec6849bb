"""Model forms seen in the wild (issue 4): opsets 7 to 21 and IR versions 3 to 10, weights as
initializers or Constant nodes, chains of Identity — each compiled for Sparrow, simulated,
and compared with onnxruntime on the same file."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper, version_converter

from spaq.backends.sparrow.simulator import simulate
from spaq.compiler.pipeline import compile_model


def _opset7_cnn(constants_as_nodes: bool = False) -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Clip (opset-7 attribute form: min/max) -> MaxPool ->
    Identity chain -> Reshape -> Gemm -> Relu -> Gemm -> Softmax, written at opset 7 / IR version 3 (where
    initializers are graph inputs too)."""
    rng = np.random.default_rng(0)
    arrays = {
        "w": rng.standard_normal((4, 1, 3, 3)).astype(np.float32) * 0.5,
        "b": rng.standard_normal(4).astype(np.float32) * 0.1,
        "scale": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "shift": rng.standard_normal(4).astype(np.float32) * 0.1,
        "mean": rng.standard_normal(4).astype(np.float32) * 0.1,
        "var": rng.uniform(0.5, 1.5, 4).astype(np.float32),
        "shape": np.array([1, 36], np.int64),
        "fc1_w": rng.standard_normal((48, 36)).astype(np.float32) * 0.3,  # large: memory-mapped on import
        "fc1_b": rng.standard_normal(48).astype(np.float32) * 0.1,
        "fc2_w": rng.standard_normal((10, 48)).astype(np.float32) * 0.3,
        "fc2_b": rng.standard_normal(10).astype(np.float32) * 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["n"], epsilon=1e-5),
        helper.make_node("Clip", ["n"], ["r"], min=0.0, max=6.0),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Identity", ["p"], ["i1"]),
        helper.make_node("Identity", ["i1"], ["i2"]),
        helper.make_node("Reshape", ["i2", "shape"], ["f"]),
        helper.make_node("Gemm", ["f", "fc1_w", "fc1_b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "fc2_w", "fc2_b"], ["g"], transB=1),
        helper.make_node("Softmax", ["g"], ["y"], axis=1),
    ]
    inits = []
    if constants_as_nodes:
        nodes = [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(a, n))
                 for n, a in arrays.items()] + nodes
    else:
        inits = [numpy_helper.from_array(a, n) for n, a in arrays.items()]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])]
    inputs += [helper.make_tensor_value_info(t.name, t.data_type, t.dims) for t in inits]  # IR 3 lists them
    graph = helper.make_graph(nodes, "cnn", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)])
    model.ir_version = 3
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("opset,ir_version", [(7, 3), (9, 4), (11, 6), (13, 7), (17, 8), (21, 10)])
def test_opsets_and_ir_versions(tmp_path, opset, ir_version):
    model = _opset7_cnn()
    if opset != 7:
        model = version_converter.convert_version(model, opset)
        model.ir_version = ir_version
    onnx.checker.check_model(model)
    _check(tmp_path, model)


def test_weights_as_constant_nodes(tmp_path):
    _check(tmp_path, _opset7_cnn(constants_as_nodes=True))


def _check(tmp_path, model: onnx.ModelProto) -> None:
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    x = np.random.default_rng(1).standard_normal((1, 1, 6, 6)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    for target in ("edge", "datacenter"):
        c = compile_model(path, target=target)
        got = simulate(c.program, c.image, c.target, {"x": x}).outputs["y"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
