"""Sparrow's vector unit: simulation time of a transformer's elementwise layers, and the accuracy of
the defined float32 approximations (docs/isa.md, "The vector unit").

    python benchmarks/bench_vector_unit.py [--quick] [--exhaustive]

Times, per call, the decoded instructions of GELU (128 x 1536), LayerNorm (128 x 384) and
softmax (12 heads x 128 x 128) on the simulator's machine model (operands already in the
scratchpad), next to numpy float32 doing the same in plain numpy, and scipy's erf as the cost the
ISA's defined erf avoids. Accuracy: the approximations against float64 references on a sample
(or, with --exhaustive, on every float32 input; needs scipy, a few minutes).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, measure  # noqa: E402

from spaq.backends.sparrow import vector  # noqa: E402
from spaq.backends.sparrow.isa import decode, encode, parse_instruction  # noqa: E402
from spaq.backends.sparrow.simulator import Machine  # noqa: E402
from spaq.backends.sparrow.target import load_target  # noqa: E402


def _imm(x: float) -> str:
    return f"0x{vector.imm(x):08x}"


def programs() -> dict[str, tuple[tuple[int, int], list[str]]]:
    """name -> ((rows, cols) of the input tile at ACT 0, instructions)."""
    R, C = 128, 384
    M, V = 4 * R * C, 4 * R * C + 4 * R
    layernorm = [
        f"vred op=sum src=0 imm={_imm(1 / C)} dst={M} rows={R} cols={C}",
        f"vbin op=sub src=0 bcast=col src1={M} dst=0 rows={R} cols={C}",
        f"vred op=sumsq src=0 imm={_imm(1 / C)} dst={V} rows={R} cols={C}",
        f"vbin op=add src={V} bcast=imm imm={_imm(1e-12)} dst={V} rows={R} cols=1",
        f"vun op=rsqrt src={V} dst={V} rows={R} cols=1",
        f"vbin op=mul src=0 bcast=col src1={V} dst=0 rows={R} cols={C}",
        f"vbin op=mul src=0 bcast=row buf1=param src1=0 dst=0 rows={R} cols={C}",
        f"vbin op=add src=0 bcast=row buf1=param src1={4 * C} dst=0 rows={R} cols={C}",
    ]
    S = 128
    SR = 12 * S
    M, Z = 4 * SR * S, 4 * SR * S + 4 * SR
    softmax = [
        f"vred op=max src=0 dst={M} rows={SR} cols={S}",
        f"vbin op=sub src=0 bcast=col src1={M} dst=0 rows={SR} cols={S}",
        f"vun op=exp src=0 imm={_imm(1 / math.sqrt(32))} dst=0 rows={SR} cols={S}",
        f"vred op=sum src=0 dst={Z} rows={SR} cols={S}",
        f"vun op=rcp src={Z} dst={Z} rows={SR} cols=1",
        f"vbin op=mul src=0 bcast=col src1={Z} dst=0 rows={SR} cols={S}",
    ]
    G, F = 128, 1536
    T = 4 * G * F
    return {
        "GELU 128x1536 (vun gelu)": ((G, F), [f"vun op=gelu src=0 dst=0 rows={G} cols={F}"]),
        "GELU 128x1536 (erf, add, mul, mul)": ((G, F), [
            f"vun op=erf src=0 imm={_imm(1 / math.sqrt(2))} dst={T} rows={G} cols={F}",
            f"vbin op=add src={T} bcast=imm imm={_imm(1.0)} dst={T} rows={G} cols={F}",
            f"vbin op=mul src={T} src1=0 dst=0 rows={G} cols={F}",
            f"vbin op=mul src=0 bcast=imm imm={_imm(0.5)} dst=0 rows={G} cols={F}"]),
        "LayerNorm 128x384": ((R, C), layernorm),
        "softmax 12x128x128 (6 primitives)": ((SR, S), softmax),
        "softmax 12x128x128 (SOFTMAX instruction)": ((SR, S), [f"softmax src=0 dst=0 rows={SR} cols={S}"]),
        "dynamic int8 quantize 128x1536 (vquant)": ((G, F), [f"vquant odtype=i8 src=0 dst={T} scale={T + G * F} "
                                                              f"rows={G} cols={F}"]),
    }


def numpy_baselines(runs: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    g = rng.standard_normal((128, 1536)).astype(np.float32)
    x = rng.standard_normal((128, 384)).astype(np.float32)
    s = rng.standard_normal((12, 128, 128)).astype(np.float32)

    def layernorm():
        m = x.mean(-1, keepdims=True)
        d = x - m
        return d / np.sqrt((d * d).mean(-1, keepdims=True) + 1e-12)

    def softmax():
        e = np.exp(s - s.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    out = {"numpy LayerNorm 128x384": measure(layernorm, runs).median_ms,
           "numpy softmax 12x128x128": measure(softmax, runs).median_ms,
           "numpy GELU tanh form 128x1536": measure(
               lambda: 0.5 * g * (1 + np.tanh(0.7978846 * (g + 0.044715 * g * g * g))), runs).median_ms,
           "vector.erf 128x1536 (the ISA's erf, plain call)": measure(lambda: vector.erf(g), runs).median_ms}
    try:
        from scipy.special import erf
    except ImportError:
        return out
    out["scipy.special.erf 128x1536"] = measure(lambda: erf(g), runs).median_ms
    return out


def _ulp(ref):
    e = np.floor(np.log2(np.maximum(np.abs(ref), 2.0**-126)))
    return np.exp2(e - 23)


def accuracy(exhaustive: bool) -> list[tuple[str, float, float]]:
    """(function, max ulp error, max |error|) against float64 references."""
    erf64 = None
    try:
        from scipy.special import erf as erf64
    except ImportError:
        erf64 = np.vectorize(math.erf, otypes=[np.float64])
        if exhaustive:
            raise SystemExit("--exhaustive needs scipy (for a fast float64 erf)")
    cases = [("exp", vector.exp, np.exp, -104.0, 89.0), ("erf", vector.erf, erf64, 0.0, 4.5),
             ("tanh", vector.tanh, np.tanh, 0.0, 9.5), ("rsqrt", vector.rsqrt, lambda v: 1 / np.sqrt(v), 1e-38, 3e38)]
    out = []
    rng = np.random.default_rng(0)
    for name, fn, ref, lo, hi in cases:
        worst_u = worst_a = 0.0
        if exhaustive:  # bit patterns: [+0, hi], and [-0, lo] when lo < 0
            bits = lambda v: int(np.float32(v).view(np.uint32))  # noqa: E731
            spans = [(0, bits(hi))] + ([(0x80000000, bits(lo))] if lo < 0 else [])
            chunks = (np.arange(s, min(s + (1 << 24), e + 1), dtype=np.uint32).view(np.float32)
                      for s0, e in spans for s in range(s0, e + 1, 1 << 24))
        else:
            chunks = [np.concatenate([rng.uniform(lo, min(hi, 20.0), 1_000_000),
                                      np.exp(rng.uniform(math.log(max(lo, 1e-38)) if lo > 0 else -40, math.log(hi), 200_000))
                                      if lo >= 0 else rng.uniform(lo, hi, 200_000)]).astype(np.float32)]
        for x in chunks:
            with np.errstate(all="ignore"):
                r = ref(x.astype(np.float64))
                ok = np.isfinite(r.astype(np.float32))
                err = np.abs(fn(x).astype(np.float64) - r)[ok]
                worst_u = max(worst_u, float((err / np.maximum(_ulp(r[ok]), 2.0**-149)).max()))
                worst_a = max(worst_a, float(err.max()) if name in ("erf", "tanh") else 0.0)
        out.append((name, worst_u, worst_a))
    return out


def main() -> Result:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer timed runs")
    p.add_argument("--exhaustive", action="store_true", help="accuracy over every float32 input (minutes)")
    a = p.parse_args()
    runs = 10 if a.quick else 50
    res = Result("vector_unit", "Sparrow vector unit: simulation time and accuracy",
                 "python benchmarks/bench_vector_unit.py" + (" --exhaustive" if a.exhaustive else ""),
                 "Median wall time per call over decoded instructions executed by the simulator's Machine "
                 "(the tile already in the scratchpad, datacenter target), after warm-up calls; numpy "
                 "baselines in the same process. Accuracy against float64 references "
                 + ("on every float32 input." if a.exhaustive else "on 1.2 million samples per function."))
    machine = Machine(np.zeros(16, np.uint8), load_target("datacenter"))
    rng = np.random.default_rng(0)
    for name, ((rows, cols), lines) in programs().items():
        prog = [decode(encode(parse_instruction(line))) for line in lines]
        x = (rng.standard_normal((rows, cols)) * 3).astype(np.float32).view(np.uint8).ravel()
        act = machine.sp[next(iter(machine.sp))]

        def run(prog=prog, x=x, act=act):
            act[: x.size] = x
            for ins in prog:
                machine.execute(ins)

        reset = measure(lambda x=x, act=act: act.__setitem__(slice(0, x.size), x), runs).median_ms
        res.add(name, measure(run, runs).median_ms - reset, "ms", f"{len(prog)} instruction(s)",
                key=name.startswith(("GELU 128x1536 (vun", "LayerNorm", "softmax 12x128x128 (6")))
    for name, ms in numpy_baselines(runs).items():
        res.add(name, ms, "ms")
    for name, u, err in accuracy(a.exhaustive):
        res.add(f"{name}: max error", u, "ulp", f"max |error| {err:.2e}" if err else "")
    res.notes.append("The ISA defines exp / erf / tanh / GELU as fixed float32 operation sequences "
                     "(backends/sparrow/vector.py); docs/isa.md states their bounds, measured with --exhaustive.")
    res.finish()
    return res


if __name__ == "__main__":
    main()
