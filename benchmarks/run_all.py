"""Run every benchmarks/bench_*.py and write benchmarks/results.md (what `make bench` runs).

    python benchmarks/run_all.py [--only onnxruntime] [--max-wait 120] [--keep-openblas-env]

Each script runs in its own process (alphabetical order; bench_export_minilm makes the cached
model files first; with --only, the other benchmarks' last figures stay in results.md, marked), its output shown here and kept in benchmarks/results/<script>.log; it writes
its figures to benchmarks/results/<name>.json, from which results.md is assembled: a summary of
the key figures, the machine, then per benchmark the table, how it was measured, the command, the
script's wall time and how busy the machine was with other processes meanwhile.

Before each script, run_all waits (up to --max-wait seconds) for other processes to use less than
a quarter of a core, since the figures are wall times on a shared 2-core machine; a script during
which other processes used more is run again (--retries, default 2) and the quietest run is kept.

The benchmark processes run without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (set on these machines
for old OpenBLAS builds; they select a slower kernel for a current numpy): numpy's kernel as used
is recorded in the machine section. --keep-openblas-env keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (BENCH_DIR, OPENBLAS_VARS, REPO, RESULTS_DIR, fmt, markdown_table,  # noqa: E402
                    wait_for_quiet)

RESULTS_MD = BENCH_DIR / "results.md"
BUSY = 0.25   # cores used by other processes above which a figure is flagged


def scripts(only: list[str] | None) -> list[Path]:
    found = sorted(BENCH_DIR.glob("bench_*.py"))
    if only:
        found = [p for p in found if any(o in p.stem for o in only)]
    return found


def run_script(path: Path, env: dict[str, str]) -> dict:
    """Run one benchmark script, teeing its output to the console and results/<stem>.log; return
    its exit code, wall time and the result files it wrote."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log = RESULTS_DIR / f"{path.stem}.log"
    before = {p: p.stat().st_mtime for p in RESULTS_DIR.glob("*.json")}
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=env, cwd=REPO, text=True, bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            f.write(line)
            if "Loading weights" not in line:   # transformers' progress bars
                sys.stdout.write(line)
        rc = proc.wait()
    wall = time.time() - t0
    written = sorted(p for p in RESULTS_DIR.glob("*.json") if p.stat().st_mtime > before.get(p, 0) and p.stat().st_mtime >= t0 - 1)
    tail = log.read_text().strip().splitlines()[-15:]
    return {"script": path.name, "returncode": rc, "wall_s": wall, "results": written, "tail": tail, "log": log}


def machine_section(m: dict, removed: dict[str, str | None], kept: bool) -> str:
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')}, {b.get('architecture')} kernel, "
                     f"{b.get('num_threads')} threads" for b in m.get("blas", [])[:1]) or "unknown"
    if kept:
        ob = "kept: " + ", ".join(f"{k}={v}" for k, v in removed.items() if v) if any(removed.values()) else "not set"
    else:
        ob = ("removed for the benchmark processes (were " + ", ".join(f"{k}={v}" for k, v in removed.items() if v) + ")"
              if any(removed.values()) else "not set")
    rows = [
        ["CPU", f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB"],
        ["OS", m.get("os")],
        ["python", m.get("python")],
        ["numpy", f"{m.get('numpy')} (BLAS: {blas})"],
        ["OPENBLAS_*", ob],
        ["onnxruntime", m.get("onnxruntime")],
        ["onnx", m.get("onnx")],
        ["torch", m.get("torch")],
        ["transformers", m.get("transformers")],
        ["onnxscript", m.get("onnxscript")],
        ["iree-base-compiler", m.get("iree-base-compiler") or "not installed"],
        ["xdsl", m.get("xdsl")],
        ["spaq (git)", m.get("git")],
        ["date", m.get("date")],
    ]
    return markdown_table(["", ""], [[a, str(b)] for a, b in rows])


def result_section(r: dict, run: dict) -> str:
    out = [f"## {r['title']}", ""]
    other = r.get("other_cores")
    busy = ""
    if other is not None and other > BUSY and r.get("timed", True):
        busy = f" — **the machine was busy: other processes used {other:.2f} cores meanwhile; treat times with care**"
    elif other is not None:
        busy = f" (other processes used {other:.2f} cores meanwhile)"
    tries = f" (kept the quietest of {run['attempts']} runs)" if run.get("attempts", 1) > 1 else ""
    if "earlier" in run:
        out.append(f"Command: `{r['command']}` · **from an earlier run, {run['earlier']}**{busy}")
    else:
        out.append(f"Command: `{r['command']}` · script wall time {run['wall_s']:.0f} s{busy}{tries}")
    out.append("")
    out.append(f"How measured: {r['method']}")
    out.append("")
    out.append(markdown_table(["figure", "value", "unit", "note"],
                              [[x["figure"], fmt(x["value"]), x["unit"], x["note"]] for x in r["rows"]]))
    if r.get("notes"):
        out.append("")
        out.extend(f"- {n}" for n in r["notes"])
    out.append("")
    return "\n".join(out)


def write_results(runs: list[dict], removed: dict, kept: bool, total_s: float, waits: dict[str, dict],
                  keep_earlier: bool) -> None:
    from common import machine_info

    results = []
    for run in runs:
        for p in run["results"]:
            results.append((json.loads(p.read_text()), run))
    if keep_earlier:   # --only: the other benchmarks' figures from their last run stay in results.md
        fresh = {p for run in runs for p in run["results"]}
        for p in sorted(RESULTS_DIR.glob("*.json")):
            if p not in fresh:
                r = json.loads(p.read_text())
                results.append((r, {"wall_s": float("nan"), "earlier": r.get("machine", {}).get("date", "?")}))
    machine = next((r["machine"] for r, run in results if "earlier" not in run), None) or machine_info()
    lines = ["# spaq benchmark results", "",
             f"Written by `make bench` (`benchmarks/run_all.py`) on {machine.get('date')} in {total_s / 60:.1f} min; "
             "every figure below was measured in that run. benchmarks/README.md says what each benchmark measures.", ""]
    key = [[x["figure"], fmt(x["value"]), x["unit"], x["note"]] for r, _ in results for x in r["rows"] if x.get("key")]
    if key:
        lines += ["## Summary", "", markdown_table(["figure", "value", "unit", "note"], key), ""]
    failed = [r for r in runs if r["returncode"] != 0 or not r["results"]]
    if failed:
        lines += ["## Failed", ""]
        for r in failed:
            lines.append(f"- `{r['script']}` exited {r['returncode']} after {r['wall_s']:.0f} s "
                         f"(log: benchmarks/results/{r['log'].name}); last lines:")
            lines += ["", "```", *r["tail"], "```", ""]
    lines += ["## Machine", "", machine_section(machine, removed, kept), ""]
    quiet = [f"`{s}`: waited {w['waited_s']:.0f} s, other processes at start {w['other_cores_at_start']:.2f} cores"
             + ("" if w["quiet"] else " (**never quiet: ran anyway**)") for s, w in waits.items()]
    if quiet:
        lines += ["Before each script: " + "; ".join(quiet) + ".", ""]
    for r, run in results:
        lines.append(result_section(r, run))
    RESULTS_MD.write_text("\n".join(lines).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="run only scripts whose name contains this (repeatable)")
    ap.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for a quiet machine per script")
    ap.add_argument("--retries", type=int, default=2,
                    help="run a script again (at most this often) when other processes were busy during it; "
                         "the quietest attempt is kept")
    ap.add_argument("--keep-openblas-env", action="store_true", help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
    a = ap.parse_args(argv)

    removed = {v: os.environ.get(v) for v in OPENBLAS_VARS}
    env = dict(os.environ)
    if not a.keep_openblas_env:
        for v in OPENBLAS_VARS:
            env.pop(v, None)
            os.environ.pop(v, None)   # so this process's machine description matches the children's
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    env["PYTHONUNBUFFERED"] = "1"

    t0 = time.time()
    runs, waits = [], {}
    for path in scripts(a.only):
        attempts = []
        for attempt in range(1 + a.retries):
            print(f"\n=== {path.name}" + (f" (again: the machine was busy, try {attempt + 1})" if attempt else ""), flush=True)
            w = wait_for_quiet(a.max_wait, BUSY)
            if w["waited_s"] > 3 or not w["quiet"]:
                print(f"(waited {w['waited_s']:.0f} s for a quiet machine; other processes use "
                      f"{w['other_cores_at_start']:.2f} cores)", flush=True)
            run = run_script(path, env)
            run["contents"] = {p: p.read_text() for p in run["results"]}
            run["other"] = max((json.loads(c).get("other_cores") or 0.0 for c in run["contents"].values()
                                if json.loads(c).get("timed", True)), default=0.0)
            attempts.append((run, w))
            if run["returncode"] != 0 or run["other"] <= BUSY:
                break
        run, w = min(attempts, key=lambda rw: (rw[0]["returncode"] != 0, rw[0]["other"]))
        for p, c in run["contents"].items():   # keep the quietest attempt's figures
            p.write_text(c)
        run["attempts"] = len(attempts)
        waits[path.name] = w
        runs.append(run)
    write_results(runs, removed, a.keep_openblas_env, time.time() - t0, waits, keep_earlier=bool(a.only))
    print(f"\nwrote {RESULTS_MD.relative_to(REPO)} ({(time.time() - t0) / 60:.1f} min)")
    bad = [r["script"] for r in runs if r["returncode"] != 0]
    if bad:
        print("failed: " + ", ".join(bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
