"""Sparrow's load / compute / store queues: what the dependency tokens buy in cycles, and what
the simulator pays per instruction to run, check and time a program (docs/isa.md, "Queues and
dependency tokens").

    python benchmarks/bench_queues.py [--quick]

Cycles (no wall time): the bundled digits CNN as `spaq compile` builds it (schedule-tokens
included) against the same program run serially (tokens and SYNCs removed); a GELU over 4
tiles single- vs double-buffered (tests/backends/test_queues.py); the double-buffered tiled
GEMM programs of backends/sparrow/estimate.py given tokens by schedule-tokens. Wall time: the
simulator's cost per instruction on a program of 2002 tiny instructions (`vbin` on a 1x4 tile:
the numpy work is negligible), cold (first run of a program: decode, predicted costs, protocol
analysis) and warm (the same program again), and per digits image.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Result, measure  # noqa: E402

from spaq.backends.sparrow import simulator  # noqa: E402
from spaq.backends.sparrow.cost import program_timing  # noqa: E402
from spaq.backends.sparrow.estimate import GemmSpec, gemm_program  # noqa: E402
from spaq.backends.sparrow.image import MemoryImage  # noqa: E402
from spaq.backends.sparrow.isa import Buffer, DType, Instruction, encode_program, parse_instruction  # noqa: E402
from spaq.backends.sparrow.schedule import schedule_tokens  # noqa: E402
from spaq.backends.sparrow.simulator import simulate  # noqa: E402
from spaq.backends.sparrow.target import load_target  # noqa: E402
from spaq.compiler.pipeline import compile_model  # noqa: E402

DIGITS = REPO / "examples" / "digits"
CONFIGS = {"fp32": ("none", "fp32"), "int8": ("none", "int8"), "2:4+int8": ("2:4", "int8")}


def _serial(program: list[Instruction]) -> list[Instruction]:
    return [Instruction(i.spec, i.values[:-4] + (0, 0, 0, 0)) for i in program if i.mnemonic != "sync"]


def _tiny(n: int, tokens: bool) -> list[Instruction]:
    k = dict(push_next=1) if tokens else {}
    prog = [Instruction.make("load", buf=Buffer.ACT, dtype=DType.F32, sp=0, dram=0, rows=1, cols=4, rstride=4,
                             cstride=1, **k)]
    for i in range(n):
        k = dict(pop_prev=1) if tokens and i == 0 else {}
        prog.append(Instruction.make("vbin", op=0, src=0, src1=0, dst=16, rows=1, cols=4, **k))
    return prog + [Instruction.make("halt")]


def _gelu_tiles(double: bool) -> list[Instruction]:
    tile, lines = 8 * 256 * 4, []
    for t in range(4):
        b = t % 2 if double else 0
        src, dst = b * tile, 2 * tile + b * tile
        lines += [f"load buf=act dtype=f32 sp={src} dram={t * tile} rows=8 cols=256 rstride=256 cstride=1",
                  f"vun op=gelu src={src} dst={dst} rows=8 cols=256",
                  f"store buf=act dtype=f32 sp={dst} dram={(4 + t) * tile} rows=8 cols=256 rstride=256 cstride=1"]
    return [ins for _, ins in schedule_tokens([parse_instruction(s) for s in lines + ["halt"]])]


def main() -> Result:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer timed runs")
    a = p.parse_args()
    runs = 5 if a.quick else 20
    res = Result("queues", "Sparrow queues and tokens: overlapped cycles, simulator cost per instruction",
                 "python benchmarks/bench_queues.py",
                 "Cycles from cost.program_timing (= the simulator's, tested). Wall time: median over timed "
                 "simulate() calls after warm-up; 'cold' is one call after clearing the simulator's per-program "
                 "cache.")
    edge = load_target("edge")

    # -- what the tokens buy
    x = np.load(DIGITS / "digits_test.npz")["x"][:1]
    digits = {}
    for target in ("edge", "datacenter"):
        for label, (sparsity, precision) in CONFIGS.items():
            c = compile_model(DIGITS / "digits_cnn.onnx", target, sparsity, precision, DIGITS / "digits_calib.npz",
                              {"input": [1, 1, 8, 8]})
            t = program_timing(c.program, c.target)
            serial = program_timing(_serial(c.program), c.target)
            digits[(target, label)] = c
            res.add(f"digits {label} on {target}: cycles", t.cycles, "cycles",
                    f"serially {serial.cycles} ({serial.cycles / t.cycles:.2f}x); "
                    f"{sum(i.mnemonic == 'sync' for i in c.program)} syncs; busy load {t.utilisation['load']:.0%} "
                    f"compute {t.utilisation['compute']:.0%} store {t.utilisation['store']:.0%}",
                    key=target == "edge" and label == "int8")
    single, double = program_timing(_gelu_tiles(False), edge), program_timing(_gelu_tiles(True), edge)
    res.add("GELU over 4 tiles, edge: single-buffered", single.cycles, "cycles", f"serially {single.serial}")
    res.add("GELU over 4 tiles, edge: double-buffered", double.cycles, "cycles",
            f"{single.cycles / double.cycles:.2f}x faster than single-buffered", key=True)
    dc = load_target("datacenter")
    for target, spec in ((edge, GemmSpec(256, 512, 256, DType.I8)), (edge, GemmSpec(128, 256, 128, DType.I8, nm=(2, 4))),
                         (dc, GemmSpec(256, 512, 256, DType.I8)), (dc, GemmSpec(512, 512, 512, DType.F16))):
        prog = gemm_program(spec, target)
        t = program_timing([ins for _, ins in schedule_tokens(prog, target.token_depth)], target)
        sparse = "" if spec.nm is None else f" {spec.nm[0]}:{spec.nm[1]}"
        res.add(f"GEMM {spec.m}x{spec.k}x{spec.n} {spec.adtype.name.lower()}{sparse} on {target.name}, double-buffered",
                t.cycles, "cycles", f"serially {t.serial} ({t.speedup:.2f}x); busy load {t.utilisation['load']:.0%} "
                f"compute {t.utilisation['compute']:.0%} store {t.utilisation['store']:.0%}")

    # -- what the simulator pays
    img = MemoryImage.empty()
    img.add("x", DType.F32, (1, 4), "input")
    inputs = {"x": np.zeros((1, 4), np.float32)}
    for tokens in (False, True):
        prog = _tiny(2000, tokens)
        blob = encode_program(prog)
        simulator._PLANS.clear()
        t0 = time.perf_counter()
        simulate(blob, img, edge, inputs)
        cold = (time.perf_counter() - t0) / len(prog)
        warm = measure(lambda blob=blob: simulate(blob, img, edge, inputs), runs, 3).median_ms / 1e3 / len(prog)
        what = "with tokens" if tokens else "serial"
        res.add(f"simulator per instruction, warm ({what})", warm * 1e6, "µs", "2002 tiny vbin, same program again",
                key=tokens)
        res.add(f"simulator per instruction, cold ({what})", cold * 1e6, "µs", "first run: decode, predict, analyze")
    c = digits[("edge", "int8")]
    blob = encode_program(c.program)
    ms = measure(lambda: simulate(blob, c.image, c.target, {"input": x}), runs * 5, 5).median_ms
    res.add("digits int8 on edge: simulated image", ms, "ms", f"{len(c.program)} instructions")
    res.notes.append("Before the queues (commit f633179, serial execution, the cost model priced per executed "
                     "instruction, no per-program cache) the same tiny program took 25-26 µs per instruction and "
                     "a digits int8 image 1.66 ms (41 instructions).")
    res.finish()
    return res


if __name__ == "__main__":
    main()
