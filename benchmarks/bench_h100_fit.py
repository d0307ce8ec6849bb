"""How well the h100 target preset reproduces the measured H100 GEMM data.

    python benchmarks/bench_h100_fit.py            # evaluate the committed backends/sparrow/targets/h100.toml
    python benchmarks/bench_h100_fit.py --refit    # run the fit first (~2 min; rewrites h100.toml + h100_fit.json)

Every (dtype, shape) of backends/sparrow/calibration/data/ is estimated on the preset as the tiled
Sparrow program a compiler emits for it (backends/sparrow/estimate.py, priced by cost.py) and
compared with the measurement: dense throughput error per dtype, the 2:4 speed-up per shape.
No wall time is measured; the figures depend only on the preset and the cost model.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Result  # noqa: E402

FIT = REPO / "backends" / "sparrow" / "calibration" / "fit_h100.py"


def fit_module():
    spec = importlib.util.spec_from_file_location("fit_h100", FIT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fit_h100"] = mod
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> Result:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refit", action="store_true", help="run the fit (fit_h100.py) before evaluating")
    a = ap.parse_args(argv)
    fit = fit_module()
    if a.refit:
        fit.main([])
    from spaq.backends.sparrow.target import load_target

    target = load_target(fit.TOML)
    points = fit.load_data()
    s = fit.summarize(fit.predict(points, target), points)
    res = Result(
        name="h100_fit",
        title="h100 target preset vs measured H100 GEMMs: fit error",
        command="make bench  # or: .venv/bin/python benchmarks/bench_h100_fit.py",
        method=("Each GEMM Y = X·Wᵀ of the measured data (12 shapes; dense fp32 / fp16 / bf16 / fp8 / int8, 2:4 for "
                "fp16 / bf16 / fp8 / int8) is estimated on backends/sparrow/targets/h100.toml as the tiled Sparrow "
                "program estimate.gemm_program emits (loads, gemm / spgemm, epilogue, store; the fastest tiling that "
                "fits, with its dependency tokens), priced per instruction by cost.py and timed as its load / "
                "compute / store queues run it (estimate.py = cost.program_timing of that program). Error = "
                "predicted / measured throughput - 1. The preset was fitted by `" + fit.COMMAND + "`."),
        timed=False,
    )
    for d, e in s["per_dtype"].items():
        res.add(f"{d}: dense throughput |error| mean / max", f"{e['mean_abs_err']:.1%} / {e['max_abs_err']:.1%}", "",
                f"large shapes (K, N >= 4096): {e['large_mean_abs_err']:.1%} / {e['large_max_abs_err']:.1%}",
                key=True)
    res.add("dtype / bf16 throughput ratio, large shapes: max |error|", f"{s['ratio_large_max_abs_err']:.1%}")
    res.add("2:4 crossover on the measured side of 1", f"{s['sign_ok']} / {s['sign_total']}", "(dtype, shape)",
            "2:4 slower than dense on small layers, faster on large", key=True)
    res.add("2:4 speed-up |error| mean / max", f"{s['sparse_mean_abs_err']:.1%} / {s['sparse_max_abs_err']:.1%}", "",
            f"large shapes max {s['sparse_large_max_abs_err']:.1%}", key=True)
    by_shape: dict[tuple, list] = {}
    for x in s["sparse"]:
        by_shape.setdefault(tuple(x["shape"]), []).append(x)
    for (m, k, n), xs in sorted(by_shape.items(), key=lambda kv: (kv[0][0], kv[0][1] * kv[0][2], kv[0][1])):
        wrong = [x["dtype"] for x in xs if not x["sign_ok"]]
        res.add(f"2:4 speed-up M={m} K={k} N={n}",
                "  ".join(f"{x['dtype']} {x['measured']:.2f}/{x['predicted']:.2f}" for x in xs), "measured/predicted",
                f"crossover on the wrong side of 1: {', '.join(wrong)}" if wrong else "")
    for d, u in s["unmapped"].items():
        res.notes.append(f"{d}: not fitted — {u['why']} (measured {u['large_ratio']:.2f}x {u['vs']} on large shapes).")
    res.notes.append("Parameters: " + ", ".join(f"{k} {v:g}" for k, v in fit.params_of(target).items()))
    res.data = {"params": fit.params_of(target)} | s
    print(fit.table(s))
    res.finish()
    return res


if __name__ == "__main__":
    main()
