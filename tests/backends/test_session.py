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


def test_kept_steps_read_each_runs_data():
    """The steps a machine keeps per instruction read their operands when they run: sub-byte
    and f16 tiles (decoded on every run), a DEQUANT epilogue with bias, VQUANT into int4,
    VRED and VUN over changing data give what fresh simulations give."""
    img = MemoryImage.empty()
    img.add("x", DType.F32, (4, 6), "input")
    img.add("a", DType.I4, (4, 5), "input")
    img.add("w", DType.I4, (3, 5), "values", data=np.array([[1, -2, 3, -4, 5], [7, 0, -8, 2, 1], [0, 1, 0, -1, 6]]))
    img.add("p", DType.I32, (2, 3), "scales",
            data=np.array([[5, -7, 1 << 30], [np.float32(0.5).view(np.int32), np.float32(-0.25).view(np.int32),
                                                np.float32(3.0).view(np.int32)]]))
    img.add("q", DType.I4, (4, 6), "output")
    img.add("s", DType.F32, (4, 1), "output")
    img.add("h", DType.F16, (4, 6), "output")
    img.add("y", DType.F32, (4, 3), "output")
    img.add("r", DType.F32, (4, 1), "output")
    prog = _program(img, """
        load buf=act dtype=f32 sp=0 dram={x} rows=4 cols=6 rstride=6 cstride=1
        vquant odtype=i4 axis=1 src=0 dst=1024 sbuf=param scale=0 rows=4 cols=6
        store buf=act dtype=i4 sp=1024 dram={q} rows=4 cols=6 rstride=6 cstride=1
        store buf=param dtype=f32 sp=0 dram={s} rows=4 cols=1 rstride=1 cstride=1
        vun op=exp src=0 odtype=f16 dst=2048 rows=4 cols=6
        store buf=act dtype=f16 sp=2048 dram={h} rows=4 cols=6 rstride=6 cstride=1
        vun op=neg dtype=f16 src=2048 dst=2048 odtype=f16 rows=4 cols=6
        vred op=max dtype=f16 src=2048 dst=3072 rows=4 cols=6
        store buf=act dtype=f32 sp=3072 dram={r} rows=4 cols=1 rstride=1 cstride=1
        load buf=act dtype=i4 sp=4096 dram={a} rows=4 cols=5 rstride=6 cstride=1
        load buf=wgt dtype=i4 sp=0 dram={w} rows=3 cols=5 rstride=6 cstride=1
        load buf=param dtype=i32 sp=64 dram={p} rows=2 cols=3 rstride=3 cstride=1
        gemm adtype=i4 wdtype=i4 acc=0 act=4096 wgt=0 m=4 k=5 n=3 accumulate=0
        epilogue mode=dequant odtype=f32 bias=1 relu=1 zp=0 src=0 dst=5120 param=64 rows=4 cols=3
        store buf=act dtype=f32 sp=5120 dram={y} rows=4 cols=3 rstride=3 cstride=1
        halt
    """)
    s = Session(prog, img, DC)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        inputs = {"x": rng.standard_normal((4, 6)).astype(np.float32) * (seed + 1), "a": rng.integers(-8, 8, (4, 5))}
        got, want = s.run(inputs), simulate(prog, img, DC, inputs)
        for name in ("q", "s", "h", "y", "r"):
            np.testing.assert_array_equal(got.outputs[name], want.outputs[name])
        assert got.stats.per_instruction == want.stats.per_instruction
    np.testing.assert_array_equal(got.outputs["r"], -want.outputs["h"].astype(np.float32).min(axis=1, keepdims=True))


def test_deferred_weight_loads_are_there_when_read():
    """A session defers LOADs of stable weight bytes into WGT until something other than a
    memoised GEMM touches them: a STORE from WGT, a GEMM over a tile that a second LOAD
    partly overwrote, and a GEMM whose tile straddles two LOADs see the loaded bytes."""
    rng = np.random.default_rng(2)
    img = MemoryImage.empty()
    img.add("x", DType.I8, (4, 8), "input")
    img.add("w", DType.I8, (6, 8), "values", data=rng.integers(-128, 128, (6, 8)))
    img.add("wcopy", DType.I8, (6, 8), "output")
    img.add("y", DType.I32, (4, 3), "output")
    img.add("y2", DType.I32, (4, 3), "output")
    img.add("y3", DType.I32, (4, 3), "output")
    prog = _program(img, """
        load buf=act dtype=i8 sp=0 dram={x} rows=4 cols=8 rstride=8 cstride=1
        load buf=wgt dtype=i8 sp=0 dram={w} rows=3 cols=8 rstride=8 cstride=1
        load buf=wgt dtype=i8 sp=24 dram={w}+24 rows=3 cols=8 rstride=8 cstride=1
        gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=4 k=8 n=3 accumulate=0
        store buf=acc dtype=i32 sp=0 dram={y} rows=4 cols=3 rstride=3 cstride=1
        gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=8 m=4 k=8 n=3 accumulate=0
        store buf=acc dtype=i32 sp=0 dram={y2} rows=4 cols=3 rstride=3 cstride=1
        load buf=wgt dtype=i8 sp=16 dram={w}+40 rows=1 cols=8 rstride=8 cstride=1
        gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=4 k=8 n=3 accumulate=0
        store buf=acc dtype=i32 sp=0 dram={y3} rows=4 cols=3 rstride=3 cstride=1
        store buf=wgt dtype=i8 sp=0 dram={wcopy} rows=6 cols=8 rstride=8 cstride=1
        halt
    """.replace("{w}+24", str(img.symbols["w"].addr + 24)).replace("{w}+40", str(img.symbols["w"].addr + 40)))
    s = Session(prog, img, DC)
    w = img.read("w").astype(np.int64)
    for seed in range(3):
        x = np.random.default_rng(seed).integers(-128, 128, (4, 8))
        got, want = s.run({"x": x}), simulate(prog, img, DC, {"x": x})
        for name in ("y", "y2", "y3", "wcopy"):
            np.testing.assert_array_equal(got.outputs[name], want.outputs[name])
    np.testing.assert_array_equal(got.outputs["y2"], x @ w[1:4].T)  # straddles the two LOADs
    np.testing.assert_array_equal(got.outputs["y3"], x @ w[[0, 1, 5]].T)  # row 2 overwritten
    np.testing.assert_array_equal(got.outputs["wcopy"], w[[0, 1, 5, 3, 4, 5]])


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
