"""The h100 preset reproduces the measured H100 GEMM data (backends/sparrow/calibration/).

The fit runs in backends/sparrow/calibration/fit_h100.py (and `make bench`); these tests only
evaluate the committed backends/sparrow/targets/h100.toml on the committed CSVs, with the same
model (backends/sparrow/estimate.py priced by cost.py), and check what docs/isa.md ("The h100
preset") claims: the dtype ordering and ratios on the large shapes within the reported error, the
2:4 crossover on the measured side of 1 for every (dtype, shape), and the large-shape 2:4
speed-up. Also: the single-GEMM program is a valid program (simulated) whose summed cost the
analytical estimate reproduces exactly (the timing of the queues with its dependency tokens), and
`array.nm_k_per_cycle` is validated.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from spaq.backends.sparrow import packing
from spaq.backends.sparrow.cost import instruction_cost, program_cost, program_timing
from spaq.backends.sparrow.estimate import GemmSpec, Tiling, _layout, estimate_gemm, gemm_program
from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import DType, parse_instruction
from spaq.backends.sparrow.simulator import simulate
from spaq.backends.sparrow.target import TargetError, load_target

ROOT = Path(__file__).resolve().parents[2]
CAL = ROOT / "backends" / "sparrow" / "calibration"
RESULTS = json.loads((CAL / "h100_fit.json").read_text())
RESOLUTION_MS = 1e-4  # the sparse CSV's times are given to 0.1 us

RATIO_TOL = 0.20      # dtype / bf16 throughput ratio, large shapes: the reported error must stay below
SPEEDUP_TOL = 0.25    # 2:4 speed-up, large shapes


def _fit_module():
    spec = importlib.util.spec_from_file_location("fit_h100", CAL / "fit_h100.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["fit_h100"] = mod
    spec.loader.exec_module(mod)
    return mod


FIT = _fit_module()
H100 = load_target("h100")


@pytest.fixture(scope="module")
def preds():
    """Every modeled (dtype, shape): dense and 2:4 estimates on the committed preset (~2 s)."""
    points = FIT.load_data()
    return {(r.point.dtype, r.point.shape): r for r in FIT.predict(points, H100)}


@pytest.fixture(scope="module")
def summary(preds):
    return FIT.summarize(list(preds.values()), FIT.load_data())


def _large(preds):
    return sorted({s for _, s in preds if FIT.is_large(s[1], s[2])})


# -- the committed files -------------------------------------------------------------------------


def test_committed_preset_is_the_fit_output(tmp_path):
    params = RESULTS["params"]
    assert FIT.params_of(H100) == params
    assert (FIT.TOML).read_text() == FIT.toml_text(params, FIT.fit_summary(RESULTS))
    t = FIT.make_target(params, tmp_path / "h100.toml")  # the script's writer: loads and validates
    assert t.array == H100.array and t.fixed_cycles == H100.fixed_cycles and t.clock_mhz == H100.clock_mhz
    assert "FITTED" in FIT.TOML.read_text() and FIT.COMMAND in FIT.TOML.read_text()


def test_reported_errors_are_the_models(summary):
    for d, e in summary["per_dtype"].items():
        assert e == pytest.approx(RESULTS["per_dtype"][d], abs=1e-9), d
    for key in ("ratio_large_max_abs_err", "sparse_mean_abs_err", "sparse_max_abs_err", "sparse_large_max_abs_err",
                "sign_ok", "sign_total"):
        assert summary[key] == pytest.approx(RESULTS[key], abs=1e-9), key


def test_docs_state_the_fit_error():
    text = (ROOT / "docs" / "isa.md").read_text()
    section = text[text.index("### The h100 preset"):]
    for d, e in RESULTS["per_dtype"].items():
        row = (rf"\| {d} \| \w+ \| {e['mean_abs_err']:.1%} \| {e['max_abs_err']:.1%} \| "
               rf"{e['large_mean_abs_err']:.1%} \| {e['large_max_abs_err']:.1%} \|")
        assert re.search(row.replace("%", r"\s?%"), section), f"docs/isa.md: no row for {d}: {row}"
    assert f"{RESULTS['sign_ok']}/{RESULTS['sign_total']}" in section


# -- dense: dtype ordering and ratios on the large shapes ----------------------------------------


def test_dtype_ordering_on_large_shapes(preds):
    """Every pair of dtypes the measurements order the same way on all large shapes is ordered
    that way by the model (strictly where the measured gap is over 10 %); fp16 and bf16 share
    the f16 mode, so the model ties them."""
    large = _large(preds)
    checked = 0
    for a, b in itertools.permutations(FIT.MODES, 2):
        meas = [preds[(a, s)].point.tflops / preds[(b, s)].point.tflops for s in large]
        if min(meas) <= 1:
            continue
        pred = [preds[(a, s)].dense.tflops / preds[(b, s)].dense.tflops for s in large]
        for s, m, p in zip(large, meas, pred):
            assert p >= 1 - 1e-12, (a, b, s, m, p)
            if m > 1.1:
                assert p > 1, (a, b, s, m, p)
        checked += 1
    assert checked >= 6  # fp8 > fp16, bf16, int8, fp32; the 16-bit floats and int8 > fp32; bf16 > fp16


def test_dtype_ratios_on_large_shapes(preds):
    assert RESULTS["ratio_large_max_abs_err"] <= RATIO_TOL
    for s in _large(preds):
        ref = preds[("bf16", s)]
        for d in FIT.MODES:
            r = preds[(d, s)]
            meas = r.point.tflops / ref.point.tflops
            pred = r.dense.tflops / ref.dense.tflops
            assert abs(pred / meas - 1) <= RESULTS["ratio_large_max_abs_err"] + 1e-9, (d, s, meas, pred)
            assert abs(r.dense.tflops / r.point.tflops - 1) <= RESULTS["per_dtype"][d]["large_max_abs_err"] + 1e-9


# -- 2:4: the crossover and the large-shape speed-up ---------------------------------------------


def _resolved(point) -> bool:
    """Whether the measured speed-up is on one side of 1 even if either time was off by the
    CSV's resolution (0.1 us)."""
    dense_ms = point.dense_s * 1e3
    sparse_ms = dense_ms / point.speedup
    lo = (dense_ms - RESOLUTION_MS) / (sparse_ms + RESOLUTION_MS)
    hi = (dense_ms + RESOLUTION_MS) / (sparse_ms - RESOLUTION_MS)
    return lo > 1 or hi < 1


def test_24_crossover_sign_on_every_shape(preds):
    """2:4 is slower than dense where measured slower (every small layer but int8's store-heavy
    ones), faster where measured faster — on every (dtype, shape) the data resolves."""
    wrong, unresolved = [], []
    for (d, s), r in preds.items():
        if r.sparse is None:
            continue
        if not _resolved(r.point):
            unresolved.append((d, s))
            continue
        if (r.speedup > 1) != (r.point.speedup > 1):
            wrong.append((d, s, r.point.speedup, round(r.speedup, 3)))
    assert not wrong
    assert len(unresolved) <= 1  # int8 1024x1536x384: 6.0 vs 5.9 us (measured 1.02)
    small = [r for (d, s), r in preds.items() if r.sparse is not None and max(s[1], s[2]) <= 1536 and d != "int8"]
    assert small and all(r.speedup < 1 for r in small)


def test_24_speedup_on_large_shapes(preds):
    assert RESULTS["sparse_large_max_abs_err"] <= SPEEDUP_TOL
    for s in _large(preds):
        for d in FIT.SPARSE_DTYPES:
            r = preds[(d, s)]
            assert abs(r.speedup / r.point.speedup - 1) <= SPEEDUP_TOL, (d, s, r.point.speedup, r.speedup)
            if d != "int8":
                assert 1.2 < r.speedup < 1.75, (d, s, r.speedup)  # "about 1.5x", not the datasheet's 2x


# -- the program behind the estimate -------------------------------------------------------------

DC = load_target("datacenter")
CASES = [  # spec, tiling on datacenter (64 x 64 array): edge tiles in every dimension
    (GemmSpec(96, 200, 80, DType.I8), Tiling(64, 64, 128)),
    (GemmSpec(96, 200, 80, DType.I8, nm=(2, 4)), Tiling(64, 64, 128)),
    (GemmSpec(70, 130, 66, DType.F16), Tiling(64, 64, 64)),
    (GemmSpec(64, 256, 128, DType.F8E4M3, nm=(2, 4)), Tiling(64, 128, 128)),
]


def _image(spec: GemmSpec, t: Tiling, x: np.ndarray, w: np.ndarray) -> MemoryImage:
    """The DRAM image gemm_program reads: X, W (or its 2:4 values), the indices, Y."""
    img = MemoryImage.empty()
    img.add("x", spec.adtype, x.shape, "input")
    if spec.nm is None:
        img.add("w", spec.w, w.shape, "values", w)
    else:
        values, idx = packing.nm_compress(w, *spec.nm)
        img.add("w", spec.w, values.shape, "values", values)
        img.add("meta", packing.nm_index_dtype(spec.nm[1]), idx.shape, "metadata", idx)
    y = img.add("y", spec.out, (spec.m, spec.n), "output")
    lay = _layout(spec, t)
    assert img.symbols["w"].addr == lay.w and y.addr == lay.y
    return img


@pytest.mark.parametrize("spec, tiling", CASES)
def test_gemm_program_runs_and_estimate_matches_it(spec, tiling):
    rng = np.random.default_rng(0)
    if spec.adtype is DType.I8:
        x = rng.integers(-128, 128, (spec.m, spec.k)).astype(np.int8)
        w = rng.integers(-128, 128, (spec.n, spec.k)).astype(np.int8)
    else:
        x = rng.choice([-1.0, -0.5, 0.25, 1.0, 2.0], (spec.m, spec.k)).astype(np.float32)
        w = rng.choice([-1.0, -0.5, 0.25, 1.0, 2.0], (spec.n, spec.k)).astype(np.float32)
    if spec.nm is not None:  # prune to 2:4: the two smallest |w| of each group of four become 0
        groups = w.reshape(spec.n, -1, 4)
        drop = np.argsort(np.abs(groups.astype(np.float64)), axis=-1, kind="stable")[..., :2]
        np.put_along_axis(groups, drop, 0, axis=-1)
        w = groups.reshape(spec.n, spec.k)
    program = gemm_program(spec, DC, tiling)  # with the tokens schedule-tokens gives it
    assert any(ins.pop_prev or ins.pop_next for ins in program)
    result = simulate(program, _image(spec, tiling, x, w), DC, {"x": x})
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    np.testing.assert_allclose(result.outputs["y"].astype(np.float64), ref, rtol=1e-2 if spec.out.is_float else 0)
    est = estimate_gemm(spec, DC, tiling)
    total = program_cost(program, DC)
    assert result.stats.total.cycles == program_timing(program, DC).cycles == total.cycles == est.cycles
    serial = program_cost(gemm_program(spec, DC, tiling, tokens=False), DC)
    assert est.serial == est.cost.cycles == serial.cycles > est.cycles
    assert est.cost.to_dict() | {"energy_pj": 0, "cycles": 0} == total.to_dict() | {"energy_pj": 0, "cycles": 0}
    assert est.cost.energy_pj == pytest.approx(total.energy_pj)
    assert est.instructions == len(gemm_program(spec, DC, tiling, tokens=False))  # tokens may add SYNCs


@pytest.mark.parametrize("spec, tiling", [
    (GemmSpec(1000, 2000, 300, DType.BF16, nm=(2, 4)), Tiling(256, 128, 128)),
    (GemmSpec(1024, 4096, 1024, DType.I8), Tiling(512, 256, 256)),
    (GemmSpec(4096, 384, 1536, DType.F8E4M3), Tiling(1024, 512, 384)),
    (GemmSpec(100, 300, 7, DType.F32), Tiling(128, 7, 64)),
])
def test_estimate_is_the_token_timing(spec, tiling):
    """No program is built for the estimate, yet it is the tokened program's queue timing."""
    assert estimate_gemm(spec, H100, tiling).cycles == program_timing(gemm_program(spec, H100, tiling), H100).cycles


def test_double_buffered_step_hides_the_latency_only_behind_a_long_step():
    """In the steady state a reduction step takes max(gemm, loads, (gemm + loads + latency) / 2)."""
    from spaq.backends.sparrow.estimate import Prices, _zstep

    price = Prices(H100)
    for tk in (128, 2048):  # short steps: latency-bound; long ones: compute-bound
        spec, t = GemmSpec(1024, 64 * tk, 1024, DType.BF16), Tiling(1024, 1024, tk)
        ins = _zstep(spec, 1024, 1024, tk, True)
        gemm, loads = price.cycles(ins[-1]), sum(price.occupancy(i) for i in ins[:-1])
        period = max(gemm, loads, (gemm + loads + H100.dram_latency) / 2)
        a, b = (estimate_gemm(GemmSpec(1024, n * tk, 1024, DType.BF16), H100, t).cycles for n in (64, 128))
        assert (b - a) / 64 == pytest.approx(period, abs=0.5)
        assert (period > max(gemm, loads)) == (tk == 128)


def test_choose_tiling_is_the_fastest_candidate():
    from spaq.backends.sparrow.estimate import candidate_tilings

    spec = GemmSpec(1024, 384, 1536, DType.BF16, nm=(2, 4))
    best = estimate_gemm(spec, H100)
    tilings = candidate_tilings(spec, H100)
    assert best.tiling in tilings and len(tilings) > 20
    assert all(best.cycles <= estimate_gemm(spec, H100, t).cycles for t in tilings)


# -- array.nm_k_per_cycle ------------------------------------------------------------------------


def test_nm_k_per_cycle_sets_the_spgemm_rate():
    line = "spgemm adtype=f16 wdtype=f16 acc=0 act=0 wgt=0 m=128 k=512 n=128 accumulate=0 meta=0 nm_n=2 nm_m=4"
    ins = parse_instruction(line)
    nm = H100.array.nm_k_per_cycle["f16"]
    assert instruction_cost(ins, H100).cycles == H100.fixed_cycles["spgemm"] + -(-256 // nm)
    assert dict(DC.array.nm_k_per_cycle) == {}  # absent: kept values stream at k_per_cycle
    assert instruction_cost(ins, DC).cycles == DC.fixed_cycles["spgemm"] + 2 * 2 * -(-256 // 4)


@pytest.mark.parametrize("line, match", [
    ("nm_k_per_cycle = { i4 = 8 }", r"'array\.nm_k_per_cycle\.i4': the array has no i4 GEMM mode"),
    ("nm_k_per_cycle = { fp4 = 8 }", r"unknown key 'array\.nm_k_per_cycle\.fp4'"),
    ("nm_k_per_cycle = { f16 = 0 }", r"'array\.nm_k_per_cycle\.f16' must be positive"),
    ("nm_k_per_cycle = { f16 = 1.5 }", r"'array\.nm_k_per_cycle\.f16' must be int"),
])
def test_nm_k_per_cycle_is_validated(tmp_path, line, match):
    text = re.sub(r"^nm_k_per_cycle = .*$", line, FIT.TOML.read_text(), flags=re.M)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(TargetError, match=match):
        load_target(path)
