"""Fit the `h100` target preset so the cost model reproduces the measured H100 GEMM data.

    .venv/bin/python backends/sparrow/calibration/fit_h100.py           # fit (~5 min); write targets/h100.toml + h100_fit.json
    .venv/bin/python backends/sparrow/calibration/fit_h100.py --check   # evaluate the committed preset, no fit

Data: `data/h100_{dense,sparse24}_gemm.csv` beside this script (copied from the project's
../shared/data; data/README.md says how they were measured): Y = X·Wᵀ, 12 shapes, dense time per
dtype and the best 2:4 time for fp16 / bf16 / fp8 / int8.

Model: every GEMM is the tiled Sparrow program `estimate.gemm_program` emits for it (loads of
X / W / 2:4-metadata tiles, gemm or spgemm, epilogue, store, with its dependency tokens), each
instruction priced by cost.py on the candidate target, timed as the load / compute / store queues
run it (`estimate.estimate_gemm` = `cost.program_timing` of that program), with the tiling a
planner picks (`estimate.choose_tiling`: the fastest that fits). Nothing else is fitted.

dtype → Sparrow mode (`cost.mac_type`): fp32 → f32 (output f32 from ACC), fp16 / bf16 → f16
(output fp16 / bf16 via EPILOGUE), fp8 (e4m3, fp32 accumulate) → f8 (output bf16, as
torch._scaled_mm), int8 → i8 (output i32 from ACC, as torch._int_mm). Not fitted: tf32 (Sparrow's
f32 mode computes exact float32 products; tf32 rounds operands to 10 mantissa bits, which no
Sparrow mode does) and fp8_fastacc (Hopper's fp8 with a reduced-precision accumulator; the f8
mode promises the float32 accumulation bound) — both are printed for reference.

Fixed (not fitted): the 128 x 128 array (16384 PEs: an f32 mode of 1 MAC per PE per cycle is the
H100's 16896 fp32 lanes), f32 k_per_cycle 1, 2:4 only, the scratchpads (16 MiB ACT / WGT / ACC,
the 24-bit address limit, about the H100's shared memory + register file), and the energy table
(the data has no power figures).
Fixed too: the vector unit (16384 lanes, 32 fixed cycles; the GEMM epilogue hardly matters).
Fitted: the clock, k_per_cycle and nm_k_per_cycle of f16 / f8 / i8, fixed cycles of gemm /
spgemm / dma, DRAM bytes per cycle (at most the HBM3 peak, 3.35 TB/s) and latency — by
coordinate search over grids (numpy only; deterministic, from START), minimising

    mean over (dtype, shape) of log(predicted / measured dense time)²
  + mean over (dtype, shape) of log(predicted / measured 2:4 speed-up)²
  + 10 · mean of hinge(0.02 − sign(log measured) · log predicted speed-up)²   (crossover sign)

alternating with re-choosing each GEMM's tiling under the current parameters (`search`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spaq.backends.sparrow.cost import mac_type
from spaq.backends.sparrow.estimate import GemmEstimate, GemmSpec, Prices, Tiling, estimate_gemm
from spaq.backends.sparrow.isa import DType
from spaq.backends.sparrow.target import TARGETS_DIR, Target, load_target

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
TOML = TARGETS_DIR / "h100.toml"
RESULTS = HERE / "h100_fit.json"
COMMAND = ".venv/bin/python backends/sparrow/calibration/fit_h100.py"

MODES: dict[str, DType] = {"fp32": DType.F32, "fp16": DType.F16, "bf16": DType.BF16, "fp8": DType.F8E4M3,
                           "int8": DType.I8}
"""Measured dtypes the preset models, as the Sparrow operand type (both operands)."""

UNMAPPED = {
    "tf32": "no Sparrow mode: f32 computes exact float32 products, tf32 rounds operands to 10 mantissa bits",
    "fp8_fastacc": "no Sparrow mode: Hopper's fast fp8 accumulates in reduced precision; f8 promises fp32 accumulation",
}
SPARSE_DTYPES = ("fp16", "bf16", "fp8", "int8")
NM = (2, 4)
SIGN_MARGIN = 0.02   # the fit pushes predicted log speed-ups at least this far to the measured side of 0
SIGN_WEIGHT = 10.0


def is_large(k: int, n: int) -> bool:
    """The compute-bound layers of the data: K, N >= 4096 (the small ones have K, N <= 1536)."""
    return k >= 4096 and n >= 4096


# -- data -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    dtype: str
    m: int
    k: int
    n: int
    dense_s: float                 # measured dense time
    speedup: float | None = None   # measured dense / best 2:4 time

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.m, self.k, self.n

    def spec(self, sparse: bool = False) -> GemmSpec:
        return GemmSpec(self.m, self.k, self.n, MODES[self.dtype], nm=NM if sparse else None)

    @property
    def tflops(self) -> float:
        return 2 * self.m * self.k * self.n / self.dense_s / 1e12


def load_data(data: Path = DATA) -> list[Point]:
    """Every dense measurement (all dtypes) with its 2:4 speed-up where measured."""
    speedups = {}
    with open(data / "h100_sparse24_gemm.csv") as f:
        for r in csv.DictReader(f):
            speedups[(r["dtype"], int(r["M"]), int(r["K"]), int(r["N"]))] = float(r["speedup"])
    out = []
    with open(data / "h100_dense_gemm.csv") as f:
        for r in csv.DictReader(f):
            key = (r["dtype"], int(r["M"]), int(r["K"]), int(r["N"]))
            m, k, n = key[1:]
            out.append(Point(r["dtype"], m, k, n, 2 * m * k * n / (float(r["tflops"]) * 1e12), speedups.get(key)))
    return out


# -- the preset ----------------------------------------------------------------------------------

FIXED = {
    "rows": 128, "cols": 128, "kpc_f32": 1, "vector_lanes": 16384, "fixed_vector": 32,
    "act": 16 << 20, "wgt": 16 << 20, "acc": 16 << 20, "meta": 2 << 20, "param": 1 << 20,
}
"""Not fitted (module docstring)."""

GRIDS: dict[str, list[float]] = {
    "clock_mhz": list(range(1200, 2001, 10)),
    "kpc_f16": list(range(6, 33)),
    "kpc_f8": list(range(10, 65)),
    "kpc_i8": list(range(6, 65)),
    "nm_kpc_f16": list(range(4, 49)),
    "nm_kpc_f8": list(range(6, 97)),
    "nm_kpc_i8": list(range(6, 97)),
    "fixed_gemm": [0, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096],
    "fixed_spgemm": [0, 16, 32, 64, 128, 192, 256, 384, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584,
                     4096, 5120, 6144, 7168, 8192, 10240, 12288, 16384],
    "fixed_dma": [0, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048],
    "dram_bytes_per_cycle": list(range(1000, 2601, 20)),
    "dram_latency": list(range(100, 8001, 100)),
}
"""The fitted parameters and the values the search tries (refined to +-1 / +-step afterwards)."""

START = {"clock_mhz": 1600, "kpc_f16": 16, "kpc_f8": 29, "kpc_i8": 18, "nm_kpc_f16": 12, "nm_kpc_f8": 22,
         "nm_kpc_i8": 22, "fixed_gemm": 32, "fixed_spgemm": 1024, "fixed_dma": 32,
         "dram_bytes_per_cycle": 1800, "dram_latency": 1500}
"""Where the search starts: round numbers near the H100's datasheet rates at ~80 % (f16 16, f8 29,
i8 18 per PE per cycle at 1.6 GHz), 2:4 at 1.5x, ~3 TB/s, ~1 us latency."""

ENERGY = """[energy_pj]               # not fitted: the data has no power figures (datacenter preset's values)
dram_byte = 7.0
sram_byte = 0.6
mac = { f32 = 2.0, f16 = 0.5, f8 = 0.25, i8 = 0.15 }
vector_element = 0.3
meta_decode = 0.03
"""


def toml_text(p: dict[str, float], summary: str = "") -> str:
    """The target file for parameters `p` (fitted + FIXED)."""
    p = FIXED | p
    head = "\n".join(f"# {line}".rstrip() for line in summary.splitlines()) + "\n" if summary else ""
    return f"""# NVIDIA H100 SXM (80 GB HBM3) as a Sparrow target: FITTED, not designed. Every number marked
# "fitted" was chosen by `{COMMAND}` so that the cost model
# (the tiled GEMM program of backends/sparrow/estimate.py with its dependency tokens, priced by
# cost.py, timed as its queues run it) reproduces the measured H100 GEMM data in
# backends/sparrow/calibration/data/: per-shape dense speed ratios between dtypes and the 2:4
# speed-up with its crossovers. Do not edit by hand: re-run the fit. Rates are achieved (cuBLAS /
# cuSPARSELt), not datasheet peaks. docs/isa.md, "The h100 preset", states the fit error.
{head}name = "h100"
description = "NVIDIA H100 SXM fitted to measured GEMM data: 128x128 array, f32/f16/f8/i8, 2:4, HBM3-class DRAM"
clock_mhz = {p['clock_mhz']:<12g} # fitted (an effective sustained clock; per-cycle numbers below are at it)

[array]
rows = {p['rows']}               # fixed: 16384 PEs ~ the H100's 16896 fp32 lanes (f32: 1 MAC per PE per cycle)
cols = {p['cols']}
# fitted except f32: reduction elements per PE per cycle by mode (fp32 -> f32, fp16/bf16 -> f16,
# fp8 e4m3 with fp32 accumulate -> f8, int8 -> i8); the H100 has no int4 tensor cores
k_per_cycle = {{ f32 = {p['kpc_f32']}, f16 = {p['kpc_f16']}, f8 = {p['kpc_f8']}, i8 = {p['kpc_i8']} }}
# fitted: kept values per PE per cycle of 2:4 SPGEMM (the array's sparse speed-up is 2 x nm / kpc).
# An i8 rate above its dense one reflects cuBLAS's weak dense int8 kernels next to cuSPARSELt's.
# f32 is not listed (default: its dense rate, i.e. 2x): an H100 has no 2:4 fp32 path, and Sparrow
# cannot exclude one mode from N:M — 2:4 f32 on this preset is unmeasured and hypothetical
nm_k_per_cycle = {{ f16 = {p['nm_kpc_f16']}, f8 = {p['nm_kpc_f8']}, i8 = {p['nm_kpc_i8']} }}

[sparsity]
nm = [[2, 4]]            # fixed: the H100's sparse tensor cores do 2:4 only

[scratchpad]             # fixed: 16 MiB is the 24-bit address limit; ~ the H100's shared memory + registers
act = {p['act']}
wgt = {p['wgt']}
acc = {p['acc']}
meta = {p['meta']}
param = {p['param']}

[dram]
bytes_per_cycle = {p['dram_bytes_per_cycle']:<6g} # fitted, per DMA engine (x clock = {p['dram_bytes_per_cycle'] * p['clock_mhz'] / 1e6:.2f} TB/s; at most the HBM3 peak 3.35)
latency = {p['dram_latency']:<14} # fitted

[vector]
lanes = {p['vector_lanes']}            # fixed: ~ the H100's 16896 fp32 lanes (the GEMM epilogue hardly matters to the fit)

[fixed_cycles]           # issue + pipeline latency per instruction; fitted ones also carry the launch cost
gemm = {p['fixed_gemm']:<16} # fitted
spgemm = {p['fixed_spgemm']:<14} # fitted: the sparse path's fixed cost; with the metadata loads, the 2:4 crossover
vector = {p['fixed_vector']:<14} # fixed
dma = {p['fixed_dma']:<17} # fitted

{ENERGY}"""


def make_target(p: dict[str, float], path: Path | None = None) -> Target:
    """Write the target file for `p` (to `path`, else a temporary file) and load (validate) it."""
    text = toml_text(p)
    if path is not None:
        path.write_text(text)
        return load_target(path)
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as f:
        f.write(text)
        f.flush()
        return load_target(f.name)


def params_of(target: Target) -> dict[str, float]:
    """The fitted parameters as a target file holds them (the inverse of `toml_text`)."""
    a, f = target.array, target.fixed_cycles
    return {"clock_mhz": target.clock_mhz, "kpc_f16": a.k_per_cycle["f16"], "kpc_f8": a.k_per_cycle["f8"],
            "kpc_i8": a.k_per_cycle["i8"], "nm_kpc_f16": a.nm_k_per_cycle["f16"], "nm_kpc_f8": a.nm_k_per_cycle["f8"],
            "nm_kpc_i8": a.nm_k_per_cycle["i8"], "fixed_gemm": f["gemm"], "fixed_spgemm": f["spgemm"],
            "fixed_dma": f["dma"], "dram_bytes_per_cycle": target.dram_bytes_per_cycle,
            "dram_latency": target.dram_latency}


# -- prediction and error ------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    point: Point
    dense: GemmEstimate
    sparse: GemmEstimate | None

    @property
    def speedup(self) -> float | None:
        return None if self.sparse is None else self.dense.seconds / self.sparse.seconds


def predict(points: list[Point], target: Target,
            tilings: dict[tuple, Tiling] | None = None) -> list[Prediction]:
    """The estimate of every modeled point, dense and (where measured) 2:4; `tilings` pins the
    tiling per (dtype, shape, sparse), else each is chosen."""
    price = Prices(target)
    out = []
    for p in points:
        if p.dtype not in MODES:
            continue
        t = tilings or {}
        dense = estimate_gemm(p.spec(), target, t.get((p.dtype, p.shape, False)), price)
        sparse = None
        if p.speedup is not None:
            sparse = estimate_gemm(p.spec(True), target, t.get((p.dtype, p.shape, True)), price)
        out.append(Prediction(p, dense, sparse))
    return out


def tilings_of(preds: list[Prediction]) -> dict[tuple, Tiling]:
    out = {}
    for r in preds:
        out[(r.point.dtype, r.point.shape, False)] = r.dense.tiling
        if r.sparse is not None:
            out[(r.point.dtype, r.point.shape, True)] = r.sparse.tiling
    return out


def loss(preds: list[Prediction]) -> float:
    dense = np.array([math.log(r.dense.seconds / r.point.dense_s) for r in preds])
    sp = [(math.log(r.speedup), math.log(r.point.speedup)) for r in preds if r.sparse is not None]
    pred, meas = np.array(sp).T
    hinge = np.maximum(0.0, SIGN_MARGIN - np.sign(meas) * pred)
    return float(np.mean(dense ** 2) + np.mean((pred - meas) ** 2) + SIGN_WEIGHT * np.mean(hinge ** 2))


# -- the search ----------------------------------------------------------------------------------


def _neighbours(name: str, value: float) -> list[float]:
    grid = GRIDS[name]
    step = max(1, min(abs(b - a) for a, b in zip(grid, grid[1:])) // 2 if name != "vector_lanes" else 256)
    if name.startswith(("kpc", "nm_kpc")):
        step = 1
    out = [value + d * step for d in (-3, -2, -1, 1, 2, 3)]
    return [v for v in out if v >= (0 if name.startswith("fixed") else 1)]  # the target file's bounds


def rescaled(p: dict[str, float], clock: float) -> dict[str, float]:
    """`p` at another clock with every time in seconds kept as far as integers allow: rates per
    cycle scaled by old / new clock, cycle counts by new / old (f32's fixed rate of 1 cannot
    follow, so this move is how the search trades f32 against the other modes)."""
    r = p["clock_mhz"] / clock
    q = dict(p, clock_mhz=clock, dram_bytes_per_cycle=round(p["dram_bytes_per_cycle"] * r))
    for name in p:
        if name.startswith(("kpc", "nm_kpc")):
            q[name] = max(1, round(p[name] * r))
        elif name.startswith("fixed") or name == "dram_latency":
            q[name] = round(p[name] / r)
    return q


COORDINATES = ("rescale", *GRIDS)
DRAM_TBPS_MAX = 3.35
"""The H100 SXM's HBM3 peak (TB/s): the search stays at or below it. (The queue model gives the
load and the store queue a DMA engine each that do not share bandwidth, so the fitted rate is
per engine; a rate from the measured copy, 3.0 TB/s read + write = 1.5 per engine, fits the
GEMMs far worse: loss 0.045, the crossover right on 41/48.)"""


def feasible(p: dict[str, float]) -> bool:
    return p["dram_bytes_per_cycle"] * p["clock_mhz"] <= DRAM_TBPS_MAX * 1e6


def _moves(p: dict[str, float], name: str, grid: bool) -> list[dict[str, float]]:
    """Candidate points one coordinate away from `p`: every grid value (grid=True) or the
    neighbours; "rescale" moves the clock with everything else rescaled to it."""
    key = "clock_mhz" if name == "rescale" else name
    out = []
    for v in (GRIDS[key] if grid else _neighbours(key, p[key])):
        q = rescaled(p, v) if name == "rescale" else p | {name: v}
        if q != p and feasible(q):
            out.append(q)
    return out


def search(points: list[Point], start: dict[str, float], rounds: int = 4, log=print) -> dict[str, float]:
    """Coordinate search. Each round: with every GEMM's tiling pinned (as chosen at the round's
    start), each parameter over its grid, then over its neighbours until that stops helping, the
    others fixed (fast: no tiling search). After the rounds, the best point by the true loss (tilings chosen
    per evaluation) is polished over its neighbours with the true loss until nothing improves."""
    p = dict(start)
    evals = 0
    t0 = time.time()

    def score(q: dict[str, float], tilings=None) -> float:
        nonlocal evals
        evals += 1
        return loss(predict(points, make_target(q), tilings))

    kept, kept_loss = dict(p), score(p)
    for rnd in range(rounds):
        tilings = tilings_of(predict(points, make_target(p)))
        best = score(p, tilings)
        for grid in (True, *[False] * 50):   # a pass over the grids, then neighbours until settled
            before = best
            for name in COORDINATES:
                for q in _moves(p, name, grid):
                    s = score(q, tilings)
                    if s < best - 1e-12:
                        best, p = s, q
            if not grid and best >= before - 1e-9:
                break
        true = score(p)
        log(f"round {rnd + 1}: loss {best:.5f} with pinned tilings, {true:.5f} re-tiled "
            f"({evals} evaluations, {time.time() - t0:.0f} s)")
        if true < kept_loss:
            kept, kept_loss = dict(p), true
    improved = True
    while improved:
        improved = False
        for name in COORDINATES:
            for q in _moves(kept, name, False):
                s = score(q)
                if s < kept_loss - 1e-12:
                    kept, kept_loss, improved = q, s, True
        log(f"polish: loss {kept_loss:.5f} ({evals} evaluations, {time.time() - t0:.0f} s)")
    return kept


# -- the report ----------------------------------------------------------------------------------


def summarize(preds: list[Prediction], points: list[Point]) -> dict:
    """Every figure the table prints (and the JSON / bench / test read)."""
    per_dtype = {}
    for d in MODES:
        rs = [r for r in preds if r.point.dtype == d]
        err = [r.dense.tflops / r.point.tflops - 1 for r in rs]
        big = [e for r, e in zip(rs, err) if is_large(r.point.k, r.point.n)]
        per_dtype[d] = {"mean_abs_err": float(np.mean(np.abs(err))), "max_abs_err": float(np.max(np.abs(err))),
                        "large_mean_abs_err": float(np.mean(np.abs(big))), "large_max_abs_err": float(np.max(np.abs(big))),
                        "mean_signed_err": float(np.mean(err))}
    # per shape: dtype / bf16 throughput ratio, measured vs predicted
    by = {(r.point.dtype, r.point.shape): r for r in preds}
    ratio_err = []
    for (d, shape), r in by.items():
        ref = by[("bf16", shape)]
        meas = r.point.tflops / ref.point.tflops
        pred = r.dense.tflops / ref.dense.tflops
        ratio_err.append({"dtype": d, "shape": shape, "measured": meas, "predicted": pred, "rel_err": pred / meas - 1,
                          "large": is_large(shape[1], shape[2])})
    sparse = []
    for r in preds:
        if r.sparse is None:
            continue
        sparse.append({"dtype": r.point.dtype, "shape": r.point.shape, "measured": r.point.speedup,
                       "predicted": r.speedup, "sign_ok": (r.speedup > 1) == (r.point.speedup > 1),
                       "large": is_large(r.point.k, r.point.n), "dense_tiling": list(vars(r.dense.tiling).values()),
                       "sparse_tiling": list(vars(r.sparse.tiling).values()), "sparse_bound": r.sparse.bound})
    sp_err = [s["predicted"] / s["measured"] - 1 for s in sparse]
    sp_large = [s["predicted"] / s["measured"] - 1 for s in sparse if s["large"]]
    unmapped = {}
    for d, why in UNMAPPED.items():
        big = [p for p in points if p.dtype == d and is_large(p.k, p.n)]
        ref = {p.shape: p for p in points if p.dtype == ("fp8" if d.startswith("fp8") else "bf16")}
        unmapped[d] = {"why": why, "vs": "fp8" if d.startswith("fp8") else "bf16",
                       "large_ratio": float(np.mean([p.tflops / ref[p.shape].tflops for p in big]))}
    return {
        "per_dtype": per_dtype,
        "ratios_vs_bf16": ratio_err,
        "ratio_large_max_abs_err": float(max(abs(e["rel_err"]) for e in ratio_err if e["large"])),
        "sparse": sparse,
        "sparse_mean_abs_err": float(np.mean(np.abs(sp_err))),
        "sparse_max_abs_err": float(np.max(np.abs(sp_err))),
        "sparse_large_max_abs_err": float(np.max(np.abs(sp_large))),
        "sign_ok": sum(s["sign_ok"] for s in sparse), "sign_total": len(sparse),
        "loss": loss(preds),
        "unmapped": unmapped,
        "points": [{"dtype": r.point.dtype, "shape": r.point.shape, "measured_tflops": r.point.tflops,
                    "predicted_tflops": r.dense.tflops, "bound": r.dense.bound,
                    "tiling": list(vars(r.dense.tiling).values())} for r in preds],
    }


def table(s: dict) -> str:
    """The printed report: per dtype throughput error, per shape 2:4 speed-up."""
    lines = ["dense throughput, predicted vs measured, |relative error| over the 12 shapes (large: K, N >= 4096)",
             "", f"{'dtype':<6} {'mode':<5} {'mean':>6} {'max':>6} {'large mean':>11} {'large max':>10}"]
    for d, e in s["per_dtype"].items():
        lines.append(f"{d:<6} {mac_type(MODES[d], MODES[d]):<5} {e['mean_abs_err']:6.1%} {e['max_abs_err']:6.1%} "
                     f"{e['large_mean_abs_err']:11.1%} {e['large_max_abs_err']:10.1%}")
    for d, u in s["unmapped"].items():
        lines.append(f"{d:<6} {'-':<5} not fitted: {u['why']} (measured {u['large_ratio']:.2f}x {u['vs']} on large shapes)")
    lines += ["", f"dtype / bf16 throughput ratio on large shapes: max |relative error| {s['ratio_large_max_abs_err']:.1%}",
              "", "2:4 speed-up (dense time / 2:4 time), measured vs predicted",
              "", f"{'M':>5} {'K':>5} {'N':>6}  " + "  ".join(f"{d:>15}" for d in SPARSE_DTYPES)]
    sp = {(x["dtype"], tuple(x["shape"])): x for x in s["sparse"]}
    for shape in sorted({tuple(x["shape"]) for x in s["sparse"]}, key=lambda t: (t[0], t[1] * t[2], t[1])):
        cells = []
        for d in SPARSE_DTYPES:
            x = sp[(d, shape)]
            cells.append(f"{x['measured']:5.2f} / {x['predicted']:5.2f}{' ' if x['sign_ok'] else '!'}")
        lines.append(f"{shape[0]:>5} {shape[1]:>5} {shape[2]:>6}  " + "  ".join(f"{c:>15}" for c in cells))
    lines += ["", f"(measured / predicted; '!' = crossover on the wrong side of 1) "
              f"crossover sign right on {s['sign_ok']}/{s['sign_total']}; speed-up |relative error| "
              f"mean {s['sparse_mean_abs_err']:.1%}, max {s['sparse_max_abs_err']:.1%}, "
              f"large shapes max {s['sparse_large_max_abs_err']:.1%}"]
    return "\n".join(lines)


def fit_summary(s: dict) -> str:
    """The comment block the target file carries."""
    errs = ", ".join(f"{d} {e['mean_abs_err']:.0%}/{e['max_abs_err']:.0%}" for d, e in s["per_dtype"].items())
    return (f"Fit error, dense throughput |rel. error| mean/max over 12 shapes: {errs}.\n"
            f"2:4 speed-up: crossover sign right on {s['sign_ok']}/{s['sign_total']} (dtype, shape); |rel. error| "
            f"mean {s['sparse_mean_abs_err']:.0%}, max {s['sparse_max_abs_err']:.0%}.")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="evaluate the committed targets/h100.toml, do not fit")
    ap.add_argument("--rounds", type=int, default=4, help="search rounds (each re-chooses the tilings)")
    ap.add_argument("--warm", action="store_true", help="start from the existing target file instead of START")
    ap.add_argument("--toml", type=Path, default=TOML, help="where to write the fitted target")
    ap.add_argument("--json", type=Path, default=RESULTS, help="where to write the results")
    a = ap.parse_args(argv)
    points = load_data()
    t0 = time.time()
    if a.check:
        target = load_target(TOML)
        p = params_of(target)
    else:
        start = params_of(load_target(a.toml)) if a.warm and a.toml.exists() else START
        p = search(points, start, a.rounds)
        s = summarize(predict(points, make_target(p)), points)
        a.toml.write_text(toml_text(p, fit_summary(s)))
        target = load_target(a.toml)
    s = summarize(predict(points, target), points)
    print(table(s))
    print(f"\nparameters: {json.dumps(p)}")
    if not a.check:
        record = {"command": " ".join([COMMAND, *(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))]),
                  "target": str(a.toml.relative_to(TOML.parents[3])) if a.toml.is_relative_to(TOML.parents[3]) else str(a.toml),
                  "params": p, "fixed": FIXED} | s
        a.json.write_text(json.dumps(record, indent=1) + "\n")
        print(f"written {a.toml} and {a.json} (fit: {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
