#!/usr/bin/env python3
"""CNN building blocks for spaq: ResNet-, MobileNetV3- and Inception-style, in torch.

Defines the three block families with the shapes real networks use (torchvision's layouts),
and exports each, random-initialised and seeded, with both torch exporters:

* ``resnet_basic``   -- ResNet BasicBlock with a stride-2 downsample: 3x3/2 conv, BN, ReLU,
  3x3 conv, BN; skip = 1x1/2 conv + BN; add; ReLU.       [1,32,16,16] -> [1,64,8,8]
* ``mobilenet_ir``   -- MobileNetV3 inverted residual: 1x1 expand, BN, HardSwish, 5x5
  depthwise (groups = channels), BN, HardSwish, squeeze-excite (GlobalAveragePool, 1x1
  conv, ReLU, 1x1 conv, HardSigmoid, Mul), 1x1 project, BN, residual add.
                                                         [1,40,14,14] -> [1,40,14,14]
* ``mobilenet_ir_s2`` -- the same with a 3x3/2 depthwise and no residual (channels change).
                                                         [1,16,16,16] -> [1,24,8,8]
* ``inception_a``    -- Inception-v3 "A" module: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 |
  3x3/1 average pool -> 1x1, concatenated on channels.   [1,48,12,12] -> [1,96,12,12]

``python examples/cnn/cnn_blocks.py`` writes ``<block>.onnx`` (TorchScript exporter,
``dynamo=False``) and ``<block>.dynamo.onnx`` (``dynamo=True``) next to this file, checks each
against torch with onnxruntime, and prints the op histogram. Batch-norm statistics are given
non-trivial values so the folded weights are not the identity. torch is needed only here (the
``train`` extra); ``make test`` uses the committed files.

The network `BlocksNet` (one block of each family) is trained on real MNIST digits by
``train.py`` beside this file.
"""

from __future__ import annotations

import argparse
import io
import random
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
SEED = 0
OPSET = 17


def seed_everything(seed: int = SEED) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)


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


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, eps: float = 1e-5) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout, eps=eps))


class ResNetBasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock, with the stride-2 1x1 downsample of a stage's first block."""

    def __init__(self, cin: int, cout: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = conv_bn(cout, cout, 3)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.relu(self.conv1(x)))
        return self.relu(out + identity)


def make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class SqueezeExcite(nn.Module):
    """torchvision.ops.SqueezeExcitation as MobileNetV3 uses it (ReLU, then HardSigmoid)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeeze = make_divisible(channels // 4)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.relu = nn.ReLU()
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    """torchvision.models.mobilenetv3.InvertedResidual (HardSwish variant)."""

    def __init__(self, cin: int, cexp: int, cout: int, k: int, stride: int, se: bool = True) -> None:
        super().__init__()
        self.expand = nn.Sequential(conv_bn(cin, cexp, 1, eps=1e-3), nn.Hardswish()) if cexp != cin else None
        self.depthwise = nn.Sequential(conv_bn(cexp, cexp, k, stride, groups=cexp, eps=1e-3), nn.Hardswish())
        self.se = SqueezeExcite(cexp) if se else None
        self.project = conv_bn(cexp, cout, 1, eps=1e-3)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x if self.expand is None else self.expand(x)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class BasicConv(nn.Sequential):
    """torchvision.models.inception.BasicConv2d: conv (no bias), BN (eps 1e-3), ReLU."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, bias=False), nn.BatchNorm2d(cout, eps=1e-3),
                         nn.ReLU())


class InceptionA(nn.Module):
    """torchvision.models.inception.InceptionA, channels scaled down (1x1 | 5x5 | double 3x3 | pool)."""

    def __init__(self, cin: int, c1: int = 24, c5: tuple[int, int] = (16, 24), c3: tuple[int, int] = (24, 32),
                 pool: int = 16) -> None:
        super().__init__()
        self.branch1x1 = BasicConv(cin, c1, 1)
        self.branch5x5 = nn.Sequential(BasicConv(cin, c5[0], 1), BasicConv(c5[0], c5[1], 5))
        self.branch3x3dbl = nn.Sequential(BasicConv(cin, c3[0], 1), BasicConv(c3[0], c3[1], 3),
                                          BasicConv(c3[1], c3[1], 3))
        self.branch_pool = BasicConv(cin, pool, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.avg_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch5x5(x), self.branch3x3dbl(x), self.branch_pool(pooled)], 1)


class BlocksNet(nn.Module):
    """A small MNIST classifier built from one block of each family.

    [N,1,28,28] -> 3x3/2 conv 16 + BN + ReLU [16,14,14] -> ResNet block 16->32 /2 [32,7,7]
    -> inverted residual 32 -(96, 3x3 dw, SE)-> 32 [32,7,7] -> Inception-A [64,7,7]
    -> 3x3/2 max pool [64,3,3] -> GlobalAveragePool -> Flatten -> Gemm 64->10 (logits).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn(1, 16, 3, 2), nn.ReLU())
        self.resnet = ResNetBasicBlock(16, 32, 2)
        self.mobilenet = InvertedResidual(32, 96, 32, 3, 1, se=True)
        self.inception = InceptionA(32, c1=16, c5=(8, 16), c3=(16, 16), pool=16)
        self.pool = nn.MaxPool2d(3, 2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inception(self.mobilenet(self.resnet(self.stem(x))))
        x = nn.functional.adaptive_avg_pool2d(self.pool(x), 1)
        return self.fc(torch.flatten(x, 1))


BLOCKS = {
    "resnet_basic": (lambda: ResNetBasicBlock(32, 64, 2), (1, 32, 16, 16)),
    "mobilenet_ir": (lambda: InvertedResidual(40, 120, 40, 5, 1, se=True), (1, 40, 14, 14)),
    "mobilenet_ir_s2": (lambda: InvertedResidual(16, 64, 24, 3, 2, se=False), (1, 16, 16, 16)),
    "inception_a": (lambda: InceptionA(48), (1, 48, 12, 12)),
}
KINDS = ("torchscript", "dynamo")


def randomise_bn(model: nn.Module, gen: torch.Generator) -> None:
    """Running statistics and affine parameters away from 0 / 1, as a trained network has."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(0.75 + 0.5 * torch.rand(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))


def block(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The named block, seeded and in eval mode, and its seeded sample input."""
    seed_everything()
    make, shape = BLOCKS[name]
    model = make()
    randomise_bn(model, torch.Generator().manual_seed(SEED + 1))
    model.eval()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(SEED + 2))
    return model, x


def path_of(name: str, kind: str, out_dir: Path = HERE) -> Path:
    return out_dir / (f"{name}.onnx" if kind == "torchscript" else f"{name}.{kind}.onnx")


def export(model: nn.Module, x: torch.Tensor, path: Path, kind: str) -> None:
    """Export with one of the two torch exporters: input `input`, output `output`, static shapes."""
    import onnx

    if kind == "torchscript":
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=OPSET, input_names=["input"],
                          output_names=["output"], do_constant_folding=True)
    else:
        program = torch.onnx.export(model, (x,), dynamo=True, opset_version=18, input_names=["input"],
                                    output_names=["output"], optimize=True, verbose=False)
        program.save(str(path), external_data=False)
    m = onnx.load(str(path))
    strip_metadata(m)
    m.producer_name, m.producer_version = "spaq-examples-cnn", "1"
    onnx.save(m, str(path))


def strip_metadata(m) -> None:
    """Drop doc strings and metadata (the dynamo exporter records stack traces with file paths
    and line numbers on every node), so an export is the same bytes wherever it runs."""
    del m.metadata_props[:]
    m.doc_string = ""
    del m.graph.metadata_props[:]
    m.graph.doc_string = ""
    for n in m.graph.node:
        del n.metadata_props[:]
        n.doc_string = ""
    for v in [*m.graph.input, *m.graph.output, *m.graph.value_info, *m.graph.initializer]:
        if hasattr(v, "metadata_props"):
            del v.metadata_props[:]
        v.doc_string = ""


def check(path: Path, model: nn.Module, x: torch.Tensor) -> float:
    import onnxruntime as ort

    with torch.no_grad():
        want = model(x).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    return float(np.abs(got - want).max())


def ops_of(path: Path) -> str:
    import onnx

    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(n.op_type for n in onnx.load(str(path)).graph.node).items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=HERE)
    ap.add_argument("blocks", nargs="*", default=list(BLOCKS))
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.blocks:
        for kind in KINDS:
            model, x = block(name)
            path = path_of(name, kind, args.out_dir)
            export(model, x, path, kind)
            diff = check(path, model, x)
            print(f"{path.name:28s} {path.stat().st_size:8d} B  max|ort - torch| {diff:.2e}  [{ops_of(path)}]")
            if diff > 1e-4:
                raise SystemExit(f"{path.name}: onnxruntime differs from torch by {diff}")


if __name__ == "__main__":
    main()
