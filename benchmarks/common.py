"""Shared helpers for the benchmark scripts: timing, the machine description, result files.

Every `benchmarks/bench_*.py` builds a result with `Result(...)`, adds rows, prints it as a table
and saves it as JSON under `benchmarks/results/<name>.json` (`Result.finish()`); `run_all.py`
collects those files into `benchmarks/results.md`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

# BLAS variables that this workplace sets for old OpenBLAS builds; they select a slower kernel for
# a current numpy. run_all.py removes them for the benchmark processes and records which kernel ran.
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# --------------------------------------------------------------------------------------- timing

@dataclass
class Timing:
    """Wall times in milliseconds of `runs` calls made after `warmup` untimed calls."""

    median_ms: float
    min_ms: float
    p90_ms: float
    runs: int
    warmup: int

    def summary(self) -> str:
        return f"median {self.median_ms:.2f} ms (min {self.min_ms:.2f}, p90 {self.p90_ms:.2f}; {self.runs} runs)"


def timing_of(samples_s: list[float], warmup: int) -> Timing:
    ms = sorted(s * 1e3 for s in samples_s)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return Timing(statistics.median(ms), ms[0], p90, len(ms), warmup)


def measure(fn: Callable[[], object], runs: int = 50, warmup: int = 10) -> Timing:
    """Median wall time of `fn()` over `runs` calls after `warmup` calls (time.perf_counter)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return timing_of(samples, warmup)


def measure_side_by_side(fns: dict[str, Callable[[], object]], rounds: int = 6, runs: int = 20,
                         warmup: int = 3) -> dict[str, Timing]:
    """Time several callables side by side in one process, in alternating blocks: each of `rounds`
    rounds runs every callable `warmup` times untimed and then `runs` times timed (the order
    rotating between rounds); the median is over all timed calls. Drifts in machine load hit all
    callables alike, and blocks (rather than call-by-call alternation) keep one engine's spinning
    worker threads (onnxruntime's, OpenBLAS's) from stealing the cores of the next call."""
    names = list(fns)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            fn = fns[n]
            for _ in range(warmup):
                fn()
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                samples[n].append(time.perf_counter() - t0)
    return {n: timing_of(samples[n], warmup * rounds) for n in names}


def run_measured(cmd: list[str], timeout: float | None = None, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None) -> dict:
    """Run `cmd` as a child process and return its wall seconds, its peak resident memory in MiB
    (ru_maxrss from os.wait4 on that child: the larger of its own peak and its descendants'),
    its exit code (None on time-out) and the tails of its stdout/stderr (kept in temporary
    files, so a chatty child cannot block on a full pipe)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, cwd=cwd, text=True)
        deadline = None if timeout is None else t0 + timeout
        timed_out = False
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                timed_out = True
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)   # reaped here; keep Popen consistent
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    return {"wall_s": wall, "peak_rss_mib": ru.ru_maxrss / 1024.0,
            "returncode": None if timed_out else proc.returncode, "timeout": timed_out,
            "stdout": out[-4000:], "stderr": err[-4000:]}


# ------------------------------------------------------------------------------------ machine load

def _machine_busy_s() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores, from /proc/stat)."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return float("nan")
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_busy_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class LoadMeter:
    """How busy the machine was with *other* processes between start and stop, in cores: the
    machine's busy CPU time minus this process's (and its reaped children's), over wall time.
    The benchmarks share the machine with whatever else runs; this says how much did."""

    def __init__(self) -> None:
        self.t0, self.m0, self.o0 = time.perf_counter(), _machine_busy_s(), _own_busy_s()

    def other_cores(self) -> float:
        dt = time.perf_counter() - self.t0
        other = (_machine_busy_s() - self.m0) - (_own_busy_s() - self.o0)
        return max(0.0, other / dt) if dt > 0 else 0.0


def other_load(window_s: float = 1.0) -> float:
    """Cores used by other processes over the next `window_s` seconds."""
    m = LoadMeter()
    time.sleep(window_s)
    return m.other_cores()


def wait_for_quiet(max_wait_s: float = 300.0, threshold_cores: float = 0.25, window_s: float = 2.0) -> dict:
    """Wait until other processes use less than `threshold_cores` over a window (or give up after
    `max_wait_s`); return what was seen."""
    t0 = time.perf_counter()
    load = other_load(window_s)
    while load >= threshold_cores and time.perf_counter() - t0 < max_wait_s:
        load = other_load(window_s)
    return {"waited_s": round(time.perf_counter() - t0, 1), "other_cores_at_start": round(load, 2),
            "quiet": load < threshold_cores}


# -------------------------------------------------------------------------------------- machine

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(mod: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(mod)
    except metadata.PackageNotFoundError:
        return None


def blas_info() -> list[dict]:
    """numpy's BLAS as threadpoolctl sees it (library, version, kernel architecture, threads)."""
    try:
        import numpy  # noqa: F401  (load numpy's BLAS first)
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "version", "architecture", "num_threads", "threading_layer", "prefix")
    return [{k: i.get(k) for k in keep if i.get(k) is not None} for i in threadpool_info() if i.get("user_api") == "blas"]


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        return rev + (" (work tree modified)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine_info() -> dict:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _mem_total_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "onnxruntime": _version("onnxruntime"),
        "onnx": _version("onnx"),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "onnxscript": _version("onnxscript"),
        "iree-base-compiler": _version("iree-base-compiler"),
        "xdsl": _version("xdsl"),
        "blas": blas_info(),
        "openblas_env": {v: os.environ.get(v) for v in OPENBLAS_VARS},
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "git": git_revision(),
    }


# -------------------------------------------------------------------------------------- results

@dataclass
class Row:
    figure: str
    value: float | str | None
    unit: str = ""
    note: str = ""
    key: bool = False      # also shown in the summary at the top of results.md


@dataclass
class Result:
    """One benchmark's output: rows of (figure, value, unit, note) plus how they were measured."""

    name: str                     # file stem under results/, e.g. "onnxruntime_minilm"
    title: str
    command: str                  # how to run this benchmark alone
    method: str                   # how the figures were measured
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict = field(default_factory=dict)    # anything machine-readable beyond the rows
    timed: bool = True            # False: no figure depends on wall time (no re-run on a busy machine)
    machine: dict = field(default_factory=machine_info)
    other_cores: float | None = None          # mean cores used by other processes while it ran
    _meter: LoadMeter = field(default_factory=LoadMeter, repr=False)

    def add(self, figure: str, value: float | str | None, unit: str = "", note: str = "", key: bool = False) -> None:
        self.rows.append(Row(figure, value, unit, note, key))

    def table(self) -> str:
        return markdown_table(["figure", "value", "unit", "note"],
                              [[r.figure, fmt(r.value), r.unit, r.note] for r in self.rows])

    def finish(self) -> Path:
        """Print the table and write results/<name>.json; return the file."""
        print(f"\n## {self.title}\n")
        print(self.table())
        for n in self.notes:
            print(f"\n- {n}")
        self.other_cores = round(self._meter.other_cores(), 2)
        print(f"\n(other processes used {self.other_cores:.2f} of {os.cpu_count()} cores meanwhile)")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{self.name}.json"
        record = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        path.write_text(json.dumps(record, indent=2, default=str) + "\n")
        print(f"\n(written {path.relative_to(REPO)})")
        return path


def fmt(v: object) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if v == 0:
            return "0"
        a = abs(v)
        if a >= 100:
            return f"{v:.1f}"
        if a >= 1:
            return f"{v:.2f}"
        if a >= 1e-2:
            return f"{v:.3f}"
        return f"{v:.2e}"
    return str(v)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(s: object) -> str:
        return str(s).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
