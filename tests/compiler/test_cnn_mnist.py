"""BlocksNet (examples/cnn: a ResNet, a MobileNetV3 and an Inception block), trained on real
MNIST digits by examples/cnn/train.py, through the simulator: fp32 matches onnxruntime, and the
accuracy survives int8 and 2:4+int8 (examples/cnn/demo.py measures all 1,000 test images)."""

from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from spaq.backends.sparrow.session import Session
from spaq.compiler.pipeline import compile_model

CNN = Path(__file__).parents[2] / "examples" / "cnn"

N_IMAGES = 40  # of the 1,000 test images; examples/cnn/demo.py measures all of them


@cache
def mnist_test():
    d = np.load(CNN / "mnist_test.npz")
    return d["x"][:N_IMAGES].astype(np.float32) / np.float32(255), d["y"][:N_IMAGES]


@cache
def logits(model: str, config: str) -> np.ndarray:
    x, _ = mnist_test()
    path = CNN / model
    if config == "onnxruntime":
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    sparsity, precision = {"fp32": ("none", "fp32"), "int8": ("none", "int8"), "2:4+int8": ("2:4", "int8")}[config]
    c = compile_model(path, "datacenter", sparsity, precision, CNN / "mnist_calib.npz", {"input": [1, 1, 28, 28]})
    session = Session(c.program, c.image, c.target)
    return np.concatenate([session.run({"input": x[i : i + 1]}).outputs["logits"] for i in range(len(x))])


def accuracy(model: str, config: str) -> float:
    return float((logits(model, config).argmax(1) == mnist_test()[1]).mean())


def test_trained_fp32_program_matches_onnxruntime():
    np.testing.assert_allclose(logits("blocksnet_mnist.onnx", "fp32"), logits("blocksnet_mnist.onnx", "onnxruntime"),
                               atol=1e-4, rtol=0)


@pytest.mark.parametrize("model, config, floor", [
    ("blocksnet_mnist.onnx", "int8", 0.95),
    ("blocksnet_mnist_24.onnx", "2:4+int8", 0.95),
])
def test_trained_accuracy_survives_compression(model, config, floor):
    assert accuracy(model, "onnxruntime") >= 0.95
    assert accuracy(model, config) >= floor
