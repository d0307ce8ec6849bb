"""CNN blocks exported from torch (examples/cnn/cnn_blocks.py, both exporters): ResNet basic
block, MobileNetV3 inverted residuals (depthwise, HardSwish, squeeze-excite) and an Inception-A
module compile for edge and datacenter; fp32 simulation matches onnxruntime within 1e-4, int8
simulation equals the reference evaluator bit for bit."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from spaq.backends.sparrow.simulator import simulate
from spaq.compiler.evaluator import evaluate
from spaq.compiler.pipeline import compile_model

CNN = Path(__file__).parents[2] / "examples" / "cnn"
BLOCKS = ["resnet_basic", "mobilenet_ir", "mobilenet_ir_s2", "inception_a"]
EXPORTS = {"torchscript": "{}.onnx", "dynamo": "{}.dynamo.onnx"}


def block_input(path: Path, count: int = 1, seed: int = 0) -> np.ndarray:
    dims = [d.dim_value for d in onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(seed).standard_normal([count] + dims[1:]).astype(np.float32)


FP32_CASES = [(b, "torchscript", t) for b in BLOCKS for t in ("edge", "datacenter")] + \
    [(b, "dynamo", "datacenter") for b in BLOCKS]  # the dynamo graphs import to the same ops


@pytest.mark.parametrize("block, export, target", FP32_CASES)
def test_fp32_block_matches_onnxruntime(block, export, target):
    path = CNN / EXPORTS[export].format(block)
    x = block_input(path)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    c = compile_model(path, target)
    got = simulate(c.program, c.image, c.target, {"input": x}).outputs["output"]
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("block, sparsity", [("resnet_basic", "2:4"), ("mobilenet_ir", "none"),
                                             ("mobilenet_ir_s2", "2:4"), ("inception_a", "none")])
def test_int8_block_equals_the_reference_evaluator(block, sparsity, tmp_path):
    """On edge, where every conv is tiled (bands of rows, channel chunks, one GEMM per group)."""
    path = CNN / EXPORTS["torchscript"].format(block)
    calib = tmp_path / "calib.npz"
    np.savez(calib, input=block_input(path, 4, seed=1))
    target = "edge"
    c = compile_model(path, target, sparsity, "int8", calib)
    ref = compile_model(path, target, sparsity, "int8", calib, stop_before="tile-layers")
    x = block_input(path, seed=2)
    got = simulate(c.program, c.image, c.target, {"input": x}).outputs["output"]
    want = evaluate(ref.module, ref.ctx, {"input": x})["output"]
    assert np.array_equal(got, want)
