"""session.Session runs a program many times from one loaded image: every run computes what a
fresh `simulate()` computes (outputs and counters), whatever the previous run left in DRAM and
the scratchpads, and the float32 memo of integer weight tiles never outlives their bytes."""

from __future__ import annotations

import numpy as np

from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import DType, parse_instruction
from spaq.backends.sparrow.session import Session
from spaq.backends.sparrow.simulator import simulate
from spaq.backends.sparrow.target import load_target

DC = load_target("datacenter")


def _image(rng):
    img = MemoryImage.empty()
    img.add("x", DType.I8, (4, 8), "input")
    img.add("w", DType.I8, (3, 8), "values", data=rng.integers(-128, 128, (3, 8)))
    img.add("scratch", DType.I32, (4, 3), "activation")
    img.add("y", DType.I32, (4, 3), "output")
    img.add("y2", DType.I32, (4, 3), "output")
    return img


def _program(img: MemoryImage, text: str):
    s = {n: sym.addr for n, sym in img.symbols.items()}
    return [parse_instruction(line.strip().format(**s)) for line in text.strip().splitlines()]


GEMM_TWICE = """
load buf=act dtype=i8 sp=0 dram={x} rows=4 cols=8 rstride=8 cstride=1
load buf=wgt dtype=i8 sp=0 dram={w} rows=3 cols=8 rstride=8 cstride=1
gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=4 k=8 n=3 accumulate=0
store buf=acc dtype=i32 sp=0 dram={y} rows=4 cols=3 rstride=3 cstride=1
vbin op=mul dtype=i8 buf=wgt src=0 bcast=imm imm=0xbf800000 odtype=i8 obuf=wgt dst=0 rows=3 cols=8
gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=4 k=8 n=3 accumulate=0
store buf=acc dtype=i32 sp=0 dram={y2} rows=4 cols=3 rstride=3 cstride=1
halt
"""


def test_runs_equal_fresh_simulations():
    rng = np.random.default_rng(0)
    img = _image(rng)
    prog = _program(img, GEMM_TWICE)
    s = Session(prog, img, DC)
    for seed in range(3):
        x = np.random.default_rng(seed).integers(-128, 128, (4, 8))
        got, want = s.run({"x": x}), simulate(prog, img, DC, {"x": x})
        for name in ("y", "y2"):
            np.testing.assert_array_equal(got.outputs[name], want.outputs[name])
        assert got.stats.total == want.stats.total
    negated = np.clip(-img.read("w").astype(np.int64), -128, 127)  # the VBIN negates WGT in place (saturating)
    np.testing.assert_array_equal(got.outputs["y2"], x @ negated.T)
    assert len(s._machine.float_weights) == 1  # the LOADed tile was memoised; the negated one was not


def test_weights_a_store_overwrites_are_not_memoised():
    rng = np.random.default_rng(1)
    img = _image(rng)
    prog = _program(img, """
        load buf=act dtype=i8 sp=0 dram={x} rows=4 cols=8 rstride=8 cstride=1
        load buf=wgt dtype=i8 sp=0 dram={w} rows=3 cols=8 rstride=8 cstride=1
        gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=4 k=8 n=3 accumulate=0
        store buf=acc dtype=i32 sp=0 dram={y} rows=4 cols=3 rstride=3 cstride=1
        store buf=act dtype=i8 sp=0 dram={w} rows=3 cols=8 rstride=8 cstride=1
        halt
    """)
    s = Session(prog, img, DC)
    for seed in range(3):
        x = np.random.default_rng(seed).integers(-128, 128, (4, 8))
        np.testing.assert_array_equal(s.run({"x": x}).outputs["y"], simulate(prog, img, DC, {"x": x}).outputs["y"])
    assert not s._machine.float_weights
