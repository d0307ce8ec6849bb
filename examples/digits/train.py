#!/usr/bin/env python3
"""Regenerate the bundled ``digits`` example model for spaq.

Trains a small CNN on scikit-learn's bundled 8x8 digits data set (CPU, seeded,
deterministic) and writes, next to this file:

* ``digits_cnn.onnx``   -- the trained model as an ONNX graph (opset 17,
  ir_version 8), built directly with ``onnx.helper`` from the torch
  ``state_dict`` (no ``torch.onnx.export``, so BatchNormalization stays an
  explicit node and the node/initializer names are stable);
* ``digits_test.npz``   -- ``x`` float32 [n_test,1,8,8] in [0,1], ``y`` int64;
* ``digits_calib.npz``  -- ``x`` float32 [64,1,8,8], 64 *training* images for
  quantization calibration.

Only needed to regenerate the artifacts (``pip install -e '.[train]'``);
``make test`` / ``make demo`` use the committed files.

Usage: python examples/digits/train.py [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

SEED = 0
TEST_SIZE = 0.25
N_CALIB = 64
EPOCHS = 40
BATCH_SIZE = 32
LR = 3e-3
OPSET = 17
IR_VERSION = 8
ORT_TOL = 1e-5

HERE = Path(__file__).resolve().parent


class DigitsCNN(nn.Module):
    """[N,1,8,8] -> conv/bn/relu/pool x2 -> fc(64->32) -> relu -> fc(32->10) logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1, bias=True)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 2 * 2, 32)
        self.fc2 = nn.Linear(32, 10)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.bn1(self.conv1(x))))  # [N,8,4,4]
        x = self.pool(self.relu(self.bn2(self.conv2(x))))  # [N,16,2,2]
        x = torch.flatten(x, 1)  # [N,64]
        x = self.relu(self.fc1(x))
        return self.fc2(x)  # logits; softmax only in the exported graph


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SEED, stratify=y
    )
    return (
        np.ascontiguousarray(x_tr, dtype=np.float32),
        np.ascontiguousarray(x_te, dtype=np.float32),
        np.ascontiguousarray(y_tr, dtype=np.int64),
        np.ascontiguousarray(y_te, dtype=np.int64),
    )


def train(x_tr: np.ndarray, y_tr: np.ndarray) -> DigitsCNN:
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(SEED)
    n = xt.shape[0]
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, BATCH_SIZE):
            idx = perm[i : i + BATCH_SIZE]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            total += loss.item() * idx.numel()
        sched.step()
        if epoch % 10 == 9 or epoch == EPOCHS - 1:
            print(f"epoch {epoch + 1:3d}/{EPOCHS}  train loss {total / n:.4f}")
    model.eval()
    return model


def build_onnx(model: DigitsCNN) -> onnx.ModelProto:
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()
          if v.dtype.is_floating_point}
    initializers: list[TensorProto] = []

    def init(name: str) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(sd[name]), name))
        return name

    def conv(name: str) -> onnx.NodeProto:
        return helper.make_node(
            "Conv", [prev, init(f"{name}.weight"), init(f"{name}.bias")], [name], name=name,
            kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1], dilations=[1, 1], group=1,
        )

    def bn(name: str, eps: float) -> onnx.NodeProto:
        ins = [prev] + [init(f"{name}.{p}") for p in ("weight", "bias", "running_mean", "running_var")]
        return helper.make_node("BatchNormalization", ins, [name], name=name, epsilon=eps)

    nodes: list[onnx.NodeProto] = []
    prev = "input"

    def add(node: onnx.NodeProto) -> None:
        nonlocal prev
        nodes.append(node)
        prev = node.output[0]

    for i, bn_mod in ((1, model.bn1), (2, model.bn2)):
        add(conv(f"conv{i}"))
        add(bn(f"bn{i}", float(bn_mod.eps)))
        add(helper.make_node("Relu", [prev], [f"relu{i}"], name=f"relu{i}"))
        add(helper.make_node("MaxPool", [prev], [f"pool{i}"], name=f"pool{i}",
                             kernel_shape=[2, 2], strides=[2, 2]))
    add(helper.make_node("Flatten", [prev], ["flatten"], name="flatten", axis=1))
    add(helper.make_node("Gemm", [prev, init("fc1.weight"), init("fc1.bias")], ["fc1"],
                         name="fc1", alpha=1.0, beta=1.0, transB=1))
    add(helper.make_node("Relu", [prev], ["relu3"], name="relu3"))
    add(helper.make_node("Gemm", [prev, init("fc2.weight"), init("fc2.bias")], ["fc2"],
                         name="fc2", alpha=1.0, beta=1.0, transB=1))
    nodes.append(helper.make_node("Softmax", [prev], ["probs"], name="softmax", axis=1))

    graph = helper.make_graph(
        nodes,
        "digits_cnn",
        inputs=[helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        outputs=[helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])],
        initializer=initializers,
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="spaq-examples-digits-train",
        producer_version="1",
        doc_string="Small CNN on sklearn digits (8x8, pixels/16 in [0,1]); output = class probabilities.",
    )
    onnx.checker.check_model(m, full_check=True)
    m = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    onnx.checker.check_model(m, full_check=True)
    out_shape = [d.dim_param or d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim]
    assert out_shape == ["N", 10], out_shape
    return m


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez_compressed, but byte-reproducible (fixed zip timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=HERE)
    args = ap.parse_args()
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    seed_everything(SEED)
    x_tr, x_te, y_tr, y_te = load_data()
    print(f"train {x_tr.shape[0]}  test {x_te.shape[0]}")

    model = train(x_tr, y_tr)
    with torch.no_grad():
        p_torch = torch.softmax(model(torch.from_numpy(x_te)), dim=1).numpy()
    acc_torch = float((p_torch.argmax(1) == y_te).mean())

    onnx_path = out / "digits_cnn.onnx"
    onnx.save(build_onnx(model), onnx_path)

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    (p_ort,) = sess.run(["probs"], {"input": x_te})
    acc_ort = float((p_ort.argmax(1) == y_te).mean())
    diff = float(np.abs(p_ort - p_torch).max())

    print(f"test accuracy  torch {acc_torch:.4f}  onnxruntime {acc_ort:.4f}  (n_test={len(y_te)})")
    print(f"max |ort - torch| = {diff:.3g}")
    if diff >= ORT_TOL:
        raise SystemExit(f"onnxruntime/torch mismatch: {diff} >= {ORT_TOL}")
    if acc_torch < 0.95:
        raise SystemExit(f"test accuracy {acc_torch:.4f} below 0.95")

    save_npz(out / "digits_test.npz", x=x_te, y=y_te)
    save_npz(out / "digits_calib.npz", x=x_tr[:N_CALIB])
    for name in ("digits_cnn.onnx", "digits_test.npz", "digits_calib.npz"):
        print(f"wrote {out / name} ({(out / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
