"""`make demo`: compile the bundled digits CNN for Sparrow three ways on two targets,
simulate every test image, and compare with onnxruntime.

For each (configuration, target): `spaq compile` writes the program, then the simulator
runs it on the 450-image test split. The table shows accuracy (onnxruntime fp32 is the
reference), simulated cycles per image, DRAM bytes per image split into values /
metadata / scales, energy, and the speed-up over fp32 dense on the same target.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import decode_program
from spaq.backends.sparrow.simulator import simulate
from spaq.backends.sparrow.target import load_target
from spaq.compiler.report import format_table

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
MODEL = HERE / "digits_cnn.onnx"
CONFIGS = [("fp32", "none", "fp32"), ("int8", "none", "int8"), ("2:4+int8", "2:4", "int8")]
TARGETS = ["edge", "datacenter"]


def main() -> None:
    test = np.load(HERE / "digits_test.npz")
    x, y = test["x"], test["y"]
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    ort_acc = float((session.run(None, {"input": x})[0].argmax(1) == y).mean())
    print(f"digits CNN, {len(y)} test images; onnxruntime fp32 accuracy {ort_acc:.2%}\n")
    rows, fp32_cycles = [], {}
    for target_name in TARGETS:
        target = load_target(target_name)
        for label, sparsity, precision in CONFIGS:
            out = ROOT / "out" / "digits" / f"{target_name}-{label.replace(':', '_').replace('+', '-')}"
            subprocess.run([sys.executable, "-m", "spaq.compiler.spaq_main", "compile", str(MODEL),
                            "--target", target_name, "-o", str(out), "--sparsity", sparsity,
                            "--precision", precision, "--calibration", str(HERE / "digits_calib.npz"),
                            "--shape", "input=1x1x8x8"], check=True, stdout=subprocess.DEVNULL)
            program = decode_program((out / "program.bin").read_bytes())
            image = MemoryImage.load(out)
            start = time.perf_counter()
            correct = 0
            for i in range(len(y)):
                result = simulate(program, image, target, {"input": x[i : i + 1]})
                correct += int(result.outputs["probs"].argmax() == y[i])
            seconds = time.perf_counter() - start
            total = result.stats.total
            if label == "fp32":
                fp32_cycles[target_name] = total.cycles
            rows.append({
                "target": target_name, "config": label, "accuracy": correct / len(y),
                "cycles": total.cycles, "time_us": total.cycles / target.clock_mhz, "speedup": fp32_cycles[target_name] / total.cycles,
                "values": total.dram_values, "metadata": total.dram_metadata, "scales": total.dram_scales,
                "energy_nj": total.energy_pj / 1000, "sim_ms": 1000 * seconds / len(y),
            })
    columns = [("target", "{}"), ("config", "{}"), ("accuracy", "{:.2%}"), ("cycles", "{:,}"),
               ("time_us", "{:.2f}"), ("speedup", "{:.2f}x"), ("values", "{:,}"), ("metadata", "{:,}"), ("scales", "{:,}"),
               ("energy_nj", "{:,.1f}"), ("sim_ms", "{:.2f}")]
    print(format_table(rows, columns))
    print("\ncycles, time at the target's clock, DRAM bytes (values / metadata / scales) and energy are per image, from the "
          "simulator's counters;\nspeedup is against fp32 dense on the same target; sim_ms is "
          "wall time per simulated image.\nPrograms, memory images and per-layer reports are in out/digits/.")


if __name__ == "__main__":
    main()
