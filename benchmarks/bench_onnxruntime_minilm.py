"""onnxruntime fp32 wall time for all-MiniLM-L6-v2 (batch 1, sequence 128): the baseline the spaq
simulator is measured against (issue 3: a W8A8 simulation in <= 1.5x this time, side by side).

    python benchmarks/bench_onnxruntime_minilm.py [--quick]

Measured in one process, side by side in alternating blocks (common.measure_side_by_side):
onnxruntime on both exports (TorchScript- and dynamo-based) with 2 intra-op threads, numpy float32
running only the model's GEMMs (the floor for a numpy-based executor) and the whole model in numpy
(a check that the floor's weights and shapes are the model's); then onnxruntime with 1 thread.

The hook for the simulator (or anything else): `compare_with_onnxruntime(run)` times a callable
`run(inputs) -> last_hidden_state` side by side with onnxruntime in the same process and reports
both medians, their ratio and the output difference. `spaq_simulator_run()` builds such a `run`
from spaq (compile + simulate) and says why not when spaq cannot do it yet.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, Timing, measure, measure_side_by_side  # noqa: E402
from models.export_minilm import KINDS, OUTPUT_NAME, SEQ, feeds_for, load_minilm, sample_inputs, weights_file  # noqa: E402

THREADS = 2


def ort_session(path: str | Path, threads: int = THREADS):
    """An onnxruntime CPU session as a user would make it: default graph optimisations and
    thread spinning, `threads` intra-op threads, sequential execution."""
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def compare_with_onnxruntime(run: Callable[[dict[str, np.ndarray]], object], inputs: dict[str, np.ndarray] | None = None,
                             kind: str = "torchscript", threads: int = THREADS, name: str = "candidate",
                             rounds: int = 6, runs: int = 20, warmup: int = 3) -> dict:
    """Time `run(inputs)` side by side with onnxruntime fp32 (`kind` export, `threads` threads) in
    this process. `run` returns the last hidden state [1, 128, 384] (or a dict holding it, or
    anything: then no difference is reported). Returns both timings, ratio = run / onnxruntime and
    max_abs_diff of the output against onnxruntime's."""
    inputs = inputs if inputs is not None else sample_inputs()
    sess = ort_session(load_minilm(kind), threads)
    feeds = feeds_for(sess, inputs)
    ref = sess.run([OUTPUT_NAME], feeds)[0]
    got = run(inputs)
    if isinstance(got, dict):
        got = got.get(OUTPUT_NAME, next(iter(got.values())) if len(got) == 1 else None)
    diff = None
    if got is not None and np.shape(got) == ref.shape:
        diff = float(np.abs(np.asarray(got, dtype=np.float64) - ref).max())
    t = measure_side_by_side({"onnxruntime": lambda: sess.run([OUTPUT_NAME], feeds), name: lambda: run(inputs)},
                             rounds=rounds, runs=runs, warmup=warmup)
    return {"onnxruntime": t["onnxruntime"], name: t[name], "ratio": t[name].median_ms / t["onnxruntime"].median_ms,
            "max_abs_diff": diff, "kind": kind, "threads": threads}


def spaq_simulator_run(kind: str = "torchscript", target: str = "datacenter", precision: str = "fp32",
                       calibration: str = "") -> tuple[Callable | None, str]:
    """(run, description) where run(inputs) compiles nothing and simulates the compiled MiniLM on
    spaq's simulator, or (None, why not) if spaq cannot compile or simulate it yet."""
    try:
        from spaq.backends.sparrow.simulator import simulate
        from spaq.compiler.pipeline import compile_model
    except Exception as e:  # noqa: BLE001
        return None, f"spaq is not importable: {type(e).__name__}: {e}"
    path = load_minilm(kind)
    shapes = {n: [1, SEQ] for n in ("input_ids", "attention_mask", "token_type_ids")}
    try:
        c = compile_model(path, target=target, precision=precision, calibration=calibration, shapes=shapes)
    except Exception as e:  # noqa: BLE001 - the first error is the finding
        first = (str(e).strip().splitlines() or [""])[0]
        return None, f"spaq cannot compile MiniLM yet ({kind}, {precision}, {target}): {type(e).__name__}: {first}"
    wanted = [n for n, s in c.image.symbols.items() if s.kind == "input"]

    def run(inputs: dict[str, np.ndarray]):
        return simulate(c.program, c.image, c.target, {n: inputs[n] for n in wanted}).outputs

    try:
        run(sample_inputs())
    except Exception as e:  # noqa: BLE001
        first = (str(e).strip().splitlines() or [""])[0]
        return None, f"spaq compiles MiniLM but cannot simulate it yet: {type(e).__name__}: {first}"
    return run, f"spaq simulator, {kind} export, {precision}, target {target}, {len(c.program)} instructions"


def main(argv: list[str] | None = None) -> Result:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs (a smoke test, not a measurement)")
    ap.add_argument("--no-spaq", action="store_true", help="do not try spaq's simulator")
    a = ap.parse_args(argv)
    rounds, runs, warmup = (2, 5, 2) if a.quick else (6, 20, 3)

    from minilm_numpy import NumpyMiniLM, load_weights

    res = Result(
        name="onnxruntime_minilm",
        title="onnxruntime fp32 vs numpy on all-MiniLM-L6-v2 (batch 1, seq 128)",
        command="make bench  # or: .venv/bin/python benchmarks/bench_onnxruntime_minilm.py",
        method=(f"Wall time of one inference (time.perf_counter around session.run / the numpy call), median over "
                f"{rounds}x{runs} timed calls in one process: the engines run in alternating blocks, each block "
                f"preceded by {warmup} untimed calls. onnxruntime: CPUExecutionProvider, default graph optimisations "
                f"and spinning, {THREADS} intra-op threads, 1 inter-op thread. Inputs: the sample sentence "
                f"(84 tokens + 44 padding, models/export_minilm.py). numpy: float32, its own BLAS with its default "
                f"threads (see the machine section)."),
    )
    x = sample_inputs()
    sessions = {k: ort_session(load_minilm(k)) for k in KINDS}
    feeds = {k: feeds_for(s, x) for k, s in sessions.items()}
    outs = {k: s.run([OUTPUT_NAME], feeds[k])[0] for k, s in sessions.items()}
    npm = NumpyMiniLM(load_weights(weights_file()))
    np_out = npm.forward(x)
    fns: dict[str, Callable[[], object]] = {f"onnxruntime {k}": (lambda s=s, f=feeds[k]: s.run([OUTPUT_NAME], f))
                                            for k, s in sessions.items()}
    fns["numpy GEMMs only"] = npm.gemms_only
    fns["numpy full model"] = lambda: npm.forward(x)
    t = measure_side_by_side(fns, rounds=rounds, runs=runs, warmup=warmup)
    one = ort_session(load_minilm("torchscript"), threads=1)
    t1 = measure(lambda: one.run([OUTPUT_NAME], feeds["torchscript"]), runs=rounds * runs, warmup=warmup)

    gflop = 2 * npm.macs() / 1e9
    ort_ms = t["onnxruntime torchscript"].median_ms

    def row(label: str, tm: Timing, note: str = "", key: bool = False) -> None:
        res.add(label, tm.median_ms, "ms", f"min {tm.min_ms:.2f}, p90 {tm.p90_ms:.2f}; "
                f"{gflop / (tm.median_ms / 1e3):.0f} GFLOP/s model-equivalent" + (f"; {note}" if note else ""), key)

    for k in KINDS:
        row(f"onnxruntime fp32, {k} export, {THREADS} threads", t[f"onnxruntime {k}"], key=True)
    row("onnxruntime fp32, torchscript export, 1 thread", t1)
    row("numpy float32, the model's GEMMs only (floor)", t["numpy GEMMs only"],
        f"{npm.macs() / 1e9:.2f} GMAC = {gflop:.2f} GFLOP", key=True)
    row("numpy float32, full model", t["numpy full model"],
        f"max |numpy - onnxruntime| = {np.abs(np_out - outs['torchscript']).max():.1e}")
    from minilm_numpy import FFN, LAYERS, erf

    h = np.random.default_rng(0).standard_normal((SEQ, FFN), dtype=np.float32)
    te = measure(lambda: erf(h), runs=rounds * runs, warmup=warmup)
    res.add("numpy full model: of which erf (GELU)", LAYERS * te.median_ms, "ms",
            f"{LAYERS} x {te.median_ms:.2f} ms for erf over 128x1536 (scipy.special.erf)")
    res.add("numpy GEMM floor / onnxruntime (2 threads)", t["numpy GEMMs only"].median_ms / ort_ms, "x")
    res.add("numpy full model / onnxruntime (2 threads)", t["numpy full model"].median_ms / ort_ms, "x")
    res.add("max |dynamo - torchscript| (onnxruntime outputs)", float(np.abs(outs["dynamo"] - outs["torchscript"]).max()))

    data = {k: vars(v) for k, v in t.items()}
    data["onnxruntime torchscript 1 thread"] = vars(t1)
    if a.no_spaq:
        res.add("spaq simulator / onnxruntime", None, "x", "not tried (--no-spaq)", key=True)
    else:
        run, what = spaq_simulator_run()
        if run is None:
            res.add("spaq simulator / onnxruntime", None, "x", what, key=True)
        else:
            cmp = compare_with_onnxruntime(run, x, name="spaq", rounds=max(2, rounds // 2), runs=max(3, runs // 4),
                                           warmup=1)
            res.add("spaq simulator (side by side)", cmp["spaq"].median_ms, "ms", what)
            res.add("onnxruntime in the same comparison", cmp["onnxruntime"].median_ms, "ms")
            res.add("spaq simulator / onnxruntime", cmp["ratio"], "x",
                    f"issue 3 target <= 1.5 (W8A8); max |spaq - onnxruntime| = {cmp['max_abs_diff']}", key=True)
            data["spaq"] = {"onnxruntime": vars(cmp["onnxruntime"]), "spaq": vars(cmp["spaq"]),
                            "ratio": cmp["ratio"], "max_abs_diff": cmp["max_abs_diff"], "what": what}
    res.data = data
    res.notes.append("The numpy GEMM floor runs the graph's own products (separate Q, K, V projections, per-head "
                     "Q·Kᵀ and P·V, output projection, two FFN projections) into preallocated buffers, nothing else.")
    res.finish()
    return res


if __name__ == "__main__":
    main()
