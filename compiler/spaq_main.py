"""`spaq`: the user's compiler driver.

    spaq compile model.onnx --target edge -o out/ [--sparsity 2:4] [--precision int8]
                 [--calibration calib.npz] [--shape input=1x1x8x8] [--emit mlir]
    spaq run out/ --input x.npy [-o outputs.npz]
    spaq targets
    spaq conformance [-o docs/conformance.md]

`compile` writes program.s, program.bin, image.bin + layout.json and report.json (the
cost model's per-layer prediction); `run` simulates the program on the target it was
compiled for and writes the outputs and the counted statistics. Errors are one line
naming what is wrong, exit status 1; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from spaq.compiler.errors import SpaqError, run_for_people
from spaq.compiler.options import parse_shapes


def _compile(args: argparse.Namespace) -> None:
    from xdsl.printer import Printer

    from spaq.backends.sparrow.emitter import write_program
    from spaq.compiler.pipeline import compile_model
    from spaq.compiler.report import format_table, layer_report

    out = Path(args.output)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        staging = Path(tmp) / "out"
        staging.mkdir()
        c = compile_model(args.model, args.target, args.sparsity, args.precision, args.calibration or "",
                          parse_shapes(args.shape), args.skip, density=args.density, askip=args.askip,
                          image_file=staging / "image.bin")  # the image goes straight to its file
        rows = layer_report(c.program, c.image, c.target, estimates=c.estimates)
        write_program(staging, c.program, c.image)
        report = {"model": str(args.model), "target": c.target.name, "sparsity": args.sparsity,
                  "precision": args.precision, "instructions": len(c.program), "layers": rows,
                  "estimates": {name: cost.to_dict() for name, cost in c.estimates.items()}}
        (staging / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        if args.emit == "mlir":
            with open(staging / "program.mlir", "w") as f:
                Printer(stream=f).print_op(c.module)
                f.write("\n")
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(staging), out)  # all or nothing: no half-written output directory
    print(f"spaq: compiled {args.model} for {c.target.name}: {len(c.program)} instructions, "
          f"{c.image.size:,} bytes of DRAM image -> {out}/")
    print(format_table(rows))
    print(_queues_line(rows[-1]))


def _queues_line(total: dict) -> str:
    """The total row's overlap: program cycles against the serial sum, and each queue's load."""
    busy = ", ".join(f"{q} {b / total['cycles']:.0%}" for q, b in total["busy"].items()) if total["cycles"] else "-"
    return (f"load / compute / store overlapped: {total['cycles']:,} cycles (serially {total['serial_cycles']:,}); "
            f"queues busy: {busy}")


def _run(args: argparse.Namespace) -> None:
    from spaq.backends.sparrow.image import MemoryImage
    from spaq.backends.sparrow.simulator import simulate
    from spaq.backends.sparrow.target import load_target
    from spaq.compiler.report import ESTIMATE_COLUMNS, format_table, layer_report

    d = Path(args.program_dir)
    for f in ("program.bin", "image.bin", "layout.json", "report.json"):
        if not (d / f).exists():
            raise SpaqError(f"{d}: no {f} (is this a directory written by 'spaq compile'?)")
    report = json.loads((d / "report.json").read_text())
    target = load_target(args.target or report["target"])
    image = MemoryImage.load(d)
    inputs_needed = [n for n, s in image.symbols.items() if s.kind == "input"]
    inputs = {}
    for spec in args.input:
        name, sep, path = spec.rpartition("=")
        name = name if sep else inputs_needed[0]
        if not Path(path).exists():
            raise SpaqError(f"--input {spec}: no such file")
        try:
            array = np.load(path)
        except Exception:
            raise SpaqError(f"--input {spec}: not a .npy file") from None
        if name not in image.symbols:
            raise SpaqError(f"--input {spec}: the program has no input '{name}' (inputs: {', '.join(inputs_needed)})")
        expected = image.symbols[name].shape
        if array.shape != expected:
            raise SpaqError(f"--input {name}: shape {array.shape}, the program expects {expected}")
        inputs[name] = array.astype(np.float32)
    missing = set(inputs_needed) - set(inputs)
    if missing:
        raise SpaqError(f"missing --input for {', '.join(sorted(missing))}")
    result = simulate((d / "program.bin").read_bytes(), image, target, inputs)
    estimates = _estimates(report) if target.name == report["target"] else None
    out = Path(args.output) if args.output else d / "outputs.npz"
    np.savez(out, **result.outputs)
    stats = {"target": target.name, "total": result.stats.total.to_dict(),
             "layers": layer_report(_program(d), image, target, result.stats, estimates)}
    (out.parent / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    print(f"spaq: simulated {d}/ on {target.name}; outputs -> {out}")
    print(format_table(stats["layers"]))
    print(_queues_line(stats["layers"][-1]))
    if estimates:
        print("the planner's estimate (from the layers' shapes, before lowering) beside the simulator's counters:")
        print(format_table([r for r in stats["layers"] if "est_cycles" in r], ESTIMATE_COLUMNS))


def _estimates(report: dict) -> dict:
    """The compile-time estimates of report.json as Costs."""
    from spaq.backends.sparrow.cost import Cost

    return {name: Cost.from_dict(cost) for name, cost in report.get("estimates", {}).items()}


def _program(d: Path):
    from spaq.backends.sparrow.isa import decode_program

    return decode_program((d / "program.bin").read_bytes())


def _conformance(args: argparse.Namespace) -> None:
    from spaq.compiler.conformance import (
        MODEL_KINDS, PATHS, SIM_TARGET, markdown_table, model_cases, node_cases, run_cases,
    )
    from spaq.dialects.onnx import SUPPORTED_OPS

    paths = PATHS if args.path == "both" else (args.path,)
    supported = set(SUPPORTED_OPS)
    nodes, models = node_cases(args.filter), model_cases(args.filter)
    table = markdown_table({p: run_cases(nodes, p) for p in paths}, supported)
    model_table = markdown_table({p: run_cases(models, p) for p in paths}, supported) if models else ""
    if args.output:
        text = (
            "# ONNX conformance\n\n"
            "ONNX's backend test cases, expected outputs included, through spaq on two paths: **evaluator** "
            "(import, onnx-canonicalize, the reference evaluator) and **simulator** (import, the whole "
            f"`spaq compile` pipeline for the `{SIM_TARGET}` target in fp32, the emitted program and memory image, "
            "the Sparrow simulator). Outputs must match ONNX's within rtol 1e-3, atol 1e-5 (integers exactly). "
            "A case is in scope when all its operators are in `spaq.dialects.onnx.SUPPORTED_OPS`. On both "
            "paths, graph inputs whose values decide compile-time parameters (Reshape's shape, Slice's "
            "starts, Pad's pads, Resize's scales, reduction axes, Range's bounds, ...; `conformance.PARAMETERS`, "
            "directly or through shape arithmetic) are bound to the case's values as constants: spaq's IR and "
            "Sparrow programs have static shapes. The per-op tables count every case that uses the op; the "
            "problem shown is a case of the op alone where there is one. Regenerate with "
            f"`spaq conformance -o {args.output}`.\n\n"
            "## Node cases\n\n`onnx.backend.test.loader.load_model_tests(kind=\"node\")`.\n\n" + table
        )
        if model_table:
            text += ("\n## Model cases\n\n"
                     f"The {', '.join(f'`{k}`' for k in MODEL_KINDS)} cases of `load_model_tests`: the onnx package "
                     "ships their model.onnx and test data, so they run offline. (The `real` cases name models by "
                     "download URL and are not run; the package ships only reduced `light` copies of a few of them, "
                     "without input data.)\n\n" + model_table)
        Path(args.output).write_text(text)
    print("\n".join(line for line in table.splitlines() if line.startswith("- ")))


def _targets(args: argparse.Namespace) -> None:
    from spaq.backends.sparrow.target import available_targets, load_target

    for name in available_targets():
        print(f"{name:12} {load_target(name).description}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spaq", description="Compile ONNX models for the Sparrow accelerator.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile an ONNX model")
    c.add_argument("model")
    c.add_argument("--target", default="edge", help="target name or .toml path (see 'spaq targets')")
    c.add_argument("-o", "--output", default="out", help="output directory")
    c.add_argument("--sparsity", default="none",
                   help="none (default), N:M (e.g. 2:4), block-RxC (e.g. block-4x4), unstructured-bitmask or "
                        "unstructured-csr, for every layer")
    c.add_argument("--density", default="0.5",
                   help="fraction of weights (blocks) block and unstructured pruning keeps (default 0.5)")
    c.add_argument("--precision", default="fp32",
                   help="fp32 (default), fp16, bf16, fp8-e4m3, fp8-e5m2, int8, int4, int2, ternary, binary, "
                        "codebook[-K] (these with static int8 activations: need --calibration; a suffix -a4 / -a2, "
                        "e.g. int4-a4, makes Gemm layers' activations 4 / 2-bit) or int8-dynamic (per-token "
                        "activations)")
    c.add_argument("--askip", default="none", help="relu: skip zero activations in layers fed by a ReLU "
                                                   "(where the target detects them); none (default)")
    c.add_argument("--calibration", help=".npz of sample inputs for int8 calibration")
    c.add_argument("--shape", action="append", default=[], metavar="NAME=D0xD1...")
    c.add_argument("--skip", default="", help="comma-separated layers to leave uncompressed")
    c.add_argument("--emit", choices=["mlir"], help="also write the lowered IR")
    c.set_defaults(fn=_compile)
    r = sub.add_parser("run", help="simulate a compiled program")
    r.add_argument("program_dir")
    r.add_argument("--input", action="append", default=[], metavar="[NAME=]FILE.npy")
    r.add_argument("-o", "--output", help="outputs file (.npz; default <dir>/outputs.npz)")
    r.add_argument("--target", help="simulate on another target than the one compiled for")
    r.set_defaults(fn=_run)
    k = sub.add_parser("conformance", help="run ONNX's backend test cases (node and shipped model cases) through spaq on both paths")
    k.add_argument("--filter", default="", help="regular expression on the case names")
    k.add_argument("-o", "--output", help="write the per-operator table (markdown)")
    k.add_argument("--path", default="both", choices=["both", "evaluator", "simulator"],
                   help="evaluator: import + reference evaluator; simulator: compile + Sparrow simulator")
    k.set_defaults(fn=_conformance)
    t = sub.add_parser("targets", help="list the targets")
    t.set_defaults(fn=_targets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return run_for_people("spaq", lambda: args.fn(args), args.debug)


if __name__ == "__main__":
    sys.exit(main())
