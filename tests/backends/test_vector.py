"""The vector unit (VBIN VUN VRED VSEL VQUANT VREQ): numerics against independent references,
programs run from their binary, counted costs against the cost model, encodings, errors.

References are plain Python / numpy computed another way: math.exp / math.erf / math.tanh in
float64 (np.vectorize), element loops for the tree sum and IEEE maximum, float64 formulas for
LayerNorm, GELU and softmax. The accuracy bounds are the ones docs/isa.md states (measured
there over every float32 input).
"""

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spaq.backends.sparrow import core, vector
from spaq.backends.sparrow.cost import instruction_cost, program_cost
from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import (
    INSTRUCTIONS, Bcast, BinaryOp, DType, Instruction, ReduceOp, UnaryOp, decode, encode, encode_program,
    format_instruction, parse_instruction,
)
from spaq.backends.sparrow.simulator import SimulationError, simulate
from spaq.backends.sparrow.target import load_target

EDGE = load_target("edge")
DC = load_target("datacenter")
VECTOR = [s for s in INSTRUCTIONS if s.mnemonic in ("vbin", "vun", "vred", "vsel", "vquant", "vreq")]
F = np.float32


def imm(x) -> str:
    return f"0x{vector.imm(x):08x}"


def _ulp(ref: np.ndarray) -> np.ndarray:
    """float32 spacing at each float64 reference value (2^-149 for subnormals)."""
    a = np.abs(np.asarray(ref, np.float64))
    e = np.floor(np.log2(np.maximum(a, 2.0**-126)))
    return np.exp2(e - 23)


def _ulp_error(y, ref) -> np.ndarray:
    return np.abs(np.asarray(y, np.float64) - ref) / _ulp(ref)


def _samples(lo, hi, n=200_000, seed=0):
    """Uniform samples plus every float32 in a small window around 0 and the interval ends."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, n).astype(F)
    edges = np.concatenate([np.linspace(lo, hi, 4001), [lo, hi, 0.0, 1e-30, -1e-30, 1e-3, -1e-3]]).astype(F)
    return np.concatenate([x, edges[(edges >= lo) & (edges <= hi)]])


# -- the approximations against math.* (float64) ----------------------------------------------

_EXP = np.vectorize(math.exp, otypes=[np.float64])
_ERF = np.vectorize(math.erf, otypes=[np.float64])
_TANH = np.vectorize(math.tanh, otypes=[np.float64])


def test_exp_within_one_ulp():
    x = np.concatenate([_samples(-104, 88.72, seed=1), _samples(-2, 2, seed=2)])
    y = vector.exp(x)
    assert y.dtype == F
    err = _ulp_error(y, _EXP(x.astype(np.float64)))
    assert err.max() < 1.0, x[np.argmax(err)]


def test_exp_edges():
    x = np.array([0.0, -0.0, 1.0, np.inf, -np.inf, np.nan, 88.72283, 88.7229, 1e30, -1e30, -103.97, -104.5,
                  -87.3, -100.0], F)
    y = vector.exp(x)
    assert y[0] == y[1] == 1 and y[2] == F(math.e)
    assert y[3] == np.inf and y[4] == 0 and np.isnan(y[5])
    assert np.isfinite(y[6]) and y[7] == np.inf and y[8] == np.inf and y[9] == 0
    assert y[10] == F(2.0**-149) and y[11] == 0  # gradual underflow to the last subnormal, then 0
    for i in (12, 13):  # subnormal results are the correctly scaled ones (within 1 ulp of 2^-149 / normal)
        assert _ulp_error(y[i : i + 1], _EXP(x[i : i + 1].astype(np.float64)))[0] < 1.0


@pytest.mark.parametrize("fn, ref, clamp, bound_abs, bound_ulp", [
    (vector.erf, _ERF, 4.0, 4.3e-7, 7.3),
    (vector.tanh, _TANH, 9.0, 3.7e-7, 6.3),
])
def test_erf_tanh_within_documented_bounds(fn, ref, clamp, bound_abs, bound_ulp):
    x = np.concatenate([_samples(-clamp - 1, clamp + 1, seed=3), _samples(-1e-3, 1e-3, 20_000, seed=4),
                        _samples(3.0, 3.6, 50_000, seed=5)])
    y, r = fn(x), ref(x.astype(np.float64))
    assert np.abs(y - r).max() <= bound_abs
    assert _ulp_error(y, r).max() <= bound_ulp
    assert np.abs(y).max() <= 1.0
    np.testing.assert_array_equal(fn(-x), -y)  # odd, bit for bit


def test_erf_tanh_edges():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, 100.0], F)
    for fn in (vector.erf, vector.tanh):
        y = fn(x)
        assert y[0] == 0 and not np.signbit(y[0]) and np.signbit(y[1])
        assert y[2] == 1 and y[3] == -1 and np.isnan(y[4]) and y[6] == 1
    assert vector.tanh(x)[5] == F(1e-30)  # P(0) = Q(0) = 1: tanh(x) = x for tiny x
    assert vector.erf(np.array([3.9, 4.0, 1e6], F)).tolist() == [1.0, 1.0, 1.0]


def test_gelu_is_the_erf_formula():
    x = _samples(-12, 12, seed=6)
    y = vector.gelu(x)
    e = vector.erf(x * vector._SQRT1_2)
    np.testing.assert_array_equal(y, (x * F(0.5)) * (F(1) + e))  # the defining order of operations
    ref = 0.5 * x.astype(np.float64) * (1 + _ERF(x.astype(np.float64) / math.sqrt(2)))
    err = np.abs(y - ref)
    assert (err <= 2.54e-7 * np.maximum(np.abs(x), 1.0)).all()  # docs/isa.md: |err| <= 2.54e-7 max(|x|, 1)
    assert (y[x < 0] <= 0).all() and (y[x > 0] >= 0).all()  # erf clamped to [-1, 1]: no sign flips
    edge = vector.gelu(np.array([np.inf, -np.inf, -0.0, -20.0], F))
    assert edge[0] == np.inf and np.isnan(edge[1]) and np.signbit(edge[2]) and edge[3] == 0


def test_exact_unary_functions():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(50_000) * np.exp2(rng.integers(-60, 60, 50_000))).astype(F)
    x64 = x.astype(np.float64)
    np.testing.assert_array_equal(vector.unary(UnaryOp.RCP, x), (1 / x64).astype(F))  # correctly rounded
    p = np.abs(x)
    np.testing.assert_array_equal(vector.unary(UnaryOp.SQRT, p), np.sqrt(p.astype(np.float64)).astype(F))
    assert _ulp_error(vector.rsqrt(p), 1 / np.sqrt(p.astype(np.float64))).max() < 1.5
    np.testing.assert_array_equal(vector.unary(UnaryOp.NEG, x), -x)
    np.testing.assert_array_equal(vector.unary(UnaryOp.ABS, x), np.abs(x))
    np.testing.assert_array_equal(vector.unary(UnaryOp.EXP, x[:100], scale=0.5), vector.exp(x[:100] * F(0.5)))
    edge = np.array([0.0, -0.0, np.inf, -1.0], F)
    with np.errstate(all="ignore"):
        r, s = vector.unary(UnaryOp.RCP, edge), vector.unary(UnaryOp.RSQRT, edge)
    assert r[:3].tolist() == [np.inf, -np.inf, 0.0] and s[:3].tolist() == [np.inf, -np.inf, 0.0] and np.isnan(s[3])


def test_golden_bits():
    """The definitions pin every bit: a few values, as float32 bit patterns."""
    x = np.array([-3.0, -0.5, 0.1, 1.0, 2.5, 20.0], F)
    got = {name: [hex(int(b)) for b in fn(x).view(np.uint32)] for name, fn in
           [("exp", vector.exp), ("erf", vector.erf), ("tanh", vector.tanh), ("gelu", vector.gelu)]}
    assert got == GOLDEN


GOLDEN = {  # generated once from the definitions; a change here is a change of the ISA
    "exp": ["0x3d4bed86", "0x3f1b4598", "0x3f8d763e", "0x402df854", "0x4142eb7f", "0x4de75844"],
    "erf": ["0xbf7ffe8a", "0xbf053f7a", "0x3de652f5", "0x3f57bb3d", "0x3f7fe554", "0x3f800000"],
    "tanh": ["0xbf7ebbe9", "0xbeec9aa0", "0x3dcc1ebc", "0x3f42f7d6", "0x3f7c92c1", "0x3f800000"],
    "gelu": ["0xbb84b280", "0xbe1df8a2", "0x3d5d1d0d", "0x3f57625e", "0x401f01a8", "0x41a00000"],
}


# -- elementwise arithmetic, broadcasts, comparisons, select ----------------------------------

def _ieee_max(a, b, is_max=True):
    """IEEE 754-2019 maximum / minimum of two float32 scalars, by cases."""
    if math.isnan(a) or math.isnan(b):
        return F(np.nan)
    if a == b == 0:
        neg = (np.signbit(a) and np.signbit(b)) if is_max else (np.signbit(a) or np.signbit(b))
        return F(-0.0) if neg else F(0.0)
    return F(max(a, b) if is_max else min(a, b))


def test_binary_ops_exact():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((6, 9)).astype(F)
    b = rng.standard_normal((6, 9)).astype(F)
    a[0, :9] = [0.0, -0.0, 0.0, -0.0, np.nan, 1.0, 0.0, -0.0, 5.0]
    b[0, :9] = [-0.0, 0.0, 0.0, -0.0, 1.0, np.nan, -5.0, -5.0, -0.0]
    a[2, :4] = [0.0, -0.0, 5.0, -5.0]  # a zero against a non-zero: the zero, with its own sign
    b[2, :4] = [5.0, 5.0, 0.0, -0.0]
    b[1, :3] = a[1, :3]  # equal pairs for the comparisons
    numpy_ops = {BinaryOp.ADD: np.add, BinaryOp.SUB: np.subtract, BinaryOp.MUL: np.multiply,
                 BinaryOp.DIV: np.divide, BinaryOp.EQ: np.equal, BinaryOp.NE: np.not_equal, BinaryOp.LT: np.less,
                 BinaryOp.LE: np.less_equal, BinaryOp.GT: np.greater, BinaryOp.GE: np.greater_equal}
    with np.errstate(all="ignore"):
        for op, fn in numpy_ops.items():
            np.testing.assert_array_equal(vector.binary(op, a, b), fn(a, b).astype(F), err_msg=op.name)
    for op, is_max in ((BinaryOp.MAX, True), (BinaryOp.MIN, False)):
        y = vector.binary(op, a, b)
        ref = np.array([[_ieee_max(p, q, is_max) for p, q in zip(ra, rb)] for ra, rb in zip(a, b)], F)
        np.testing.assert_array_equal(y.view(np.uint32)[~np.isnan(y)], ref.view(np.uint32)[~np.isnan(ref)])
        assert np.array_equal(np.isnan(y), np.isnan(ref))


def _image(**arrays):
    """A memory image with every array as an `input` (f32 unless given as (array, dtype, kind))."""
    image = MemoryImage.empty()
    inputs, syms = {}, {}
    for name, spec in arrays.items():
        arr, dtype, kind = spec if isinstance(spec, tuple) else (spec, DType.F32, "input")
        if kind == "input":
            syms[name] = image.add(name, dtype, arr.shape, "input")
            inputs[name] = arr
        else:
            syms[name] = image.add(name, dtype, arr.shape, kind, data=None if kind == "output" else arr)
    return image, inputs, syms


def _run(lines, image, inputs, syms, target=DC, **values):
    """Assemble (`{name}` = symbol address), simulate from the binary, check every counted
    cost against the cost model; the result."""
    fmt = {k: s.addr for k, s in syms.items()} | values
    program = [parse_instruction(line.strip().format(**fmt)) for line in lines if line.strip()]
    program.append(parse_instruction("halt"))
    result = simulate(encode_program(program), image, target, inputs)
    assert result.stats.per_instruction == [instruction_cost(ins, target) for ins in program]
    total = program_cost(program, target)
    assert result.stats.total.sram_bytes == total.sram_bytes and result.stats.total.cycles == total.cycles
    return result


def _load(name, buf, sp, rows, cols, dtype="f32"):
    return f"load buf={buf} dtype={dtype} sp={sp} dram={{{name}}} rows={rows} cols={cols} rstride={cols} cstride=1"


def _store(name, buf, sp, rows, cols, dtype="f32"):
    return f"store buf={buf} dtype={dtype} sp={sp} dram={{{name}}} rows={rows} cols={cols} rstride={cols} cstride=1"


@pytest.mark.parametrize("bcast", list(Bcast))
def test_vbin_broadcasts(bcast):
    R, C, G = 5, 11, 4
    rng = np.random.default_rng(9)
    x = rng.standard_normal((R, C)).astype(F)
    shape = {Bcast.TILE: (R, C), Bcast.ROW: (1, C), Bcast.COL: (R, 1), Bcast.SCALAR: (1, 1),
             Bcast.GROUP: (R, -(-C // G)), Bcast.IMM: (1, 1)}[bcast]
    b = rng.standard_normal(shape).astype(F)
    image, inputs, syms = _image(x=x, b=b, y=(np.zeros((R, C), F), DType.F32, "output"))
    lines = [_load("x", "act", 0, R, C), _load("b", "param", 64, *shape),
             f"vbin op=sub src=0 bcast={bcast.name.lower()} buf1=param src1=64 group={G} imm={imm(b[0, 0])} "
             f"dst=0 rows={R} cols={C}",
             _store("y", "act", 0, R, C)]
    y = _run(lines, image, inputs, syms).outputs["y"]
    full = np.array([[b[r if shape[0] > 1 else 0, (c // G if bcast is Bcast.GROUP else c) if shape[1] > 1 else 0]
                      for c in range(C)] for r in range(R)], F)
    np.testing.assert_array_equal(y, x - full)


def test_vbin_dequantize_int32_per_channel_and_int4_per_group():
    """Dequantize = VBIN MUL with an integer first operand: i32 from ACC with per-column
    scales (as core.dequantize), int4 weights with one scale per 8 columns."""
    rng = np.random.default_rng(10)
    M, N, K, G = 4, 6, 20, 8
    acc = rng.integers(-(2**31), 2**31, (M, N), dtype=np.int64).astype(np.int32)
    acc[0, :3] = [2**24 + 1, -(2**31), 2**31 - 1]  # rounded to nearest float32 first
    scale = rng.uniform(1e-4, 1e-2, (1, N)).astype(F)
    w4 = rng.integers(-8, 8, (N, K))
    gscale = rng.uniform(0.01, 0.1, (N, -(-K // G))).astype(F)
    image, inputs, syms = _image(acc=(acc, DType.I32, "input"), s=scale, w=(w4, DType.I4, "input"), g=gscale,
                                 y=(np.zeros((M, N), F), DType.F32, "output"),
                                 wd=(np.zeros((N, K), F), DType.F16, "output"))
    lines = [_load("acc", "acc", 0, M, N, "i32"), _load("s", "param", 0, 1, N),
             "vbin op=mul dtype=i32 buf=acc src=0 bcast=row buf1=param src1=0 dst=0 rows={M} cols={N}",
             _store("y", "act", 0, M, N),
             f"load buf=wgt dtype=i4 sp=0 dram={{w}} rows={N} cols={K} rstride={2 * (-(-K // 2))} cstride=1",
             _load("g", "param", 64, N, -(-K // G)),
             f"vbin op=mul dtype=i4 buf=wgt src=0 bcast=group buf1=param src1=64 group={G} odtype=f16 obuf=wgt "
             f"dst=1024 rows={N} cols={K}",
             _store("wd", "wgt", 1024, N, K, "f16")]
    out = _run(lines, image, inputs, syms, M=M, N=N).outputs
    np.testing.assert_array_equal(out["y"], core.dequantize(acc, scale, 0))
    ref = (w4.astype(F) * np.repeat(gscale, G, axis=1)[:, :K]).astype(np.float16).astype(F)
    np.testing.assert_array_equal(out["wd"], ref)


def test_output_conversions_and_masks():
    """Results round to f16 / saturate to i8 like core.quantize (scale 1); a comparison writes a
    packed u1 mask that VSEL reads."""
    x = np.array([[0.5, 1.5, 2.5, -2.5, 1e6, -1e6, np.nan, np.inf, 70000.0, 1e-9]], F)
    image, inputs, syms = _image(x=x, q=(np.zeros(x.shape), DType.I8, "output"), h=(np.zeros(x.shape), DType.F16, "output"),
                                 m=(np.zeros(x.shape), DType.U1, "output"), s=(np.zeros(x.shape), DType.F32, "output"))
    C = x.shape[1]
    lines = [_load("x", "act", 0, 1, C),
             f"vun op=copy src=0 odtype=i8 dst=64 rows=1 cols={C}", _store("q", "act", 64, 1, C, "i8"),
             f"vun op=copy src=0 odtype=f16 dst=128 rows=1 cols={C}", _store("h", "act", 128, 1, C, "f16"),
             f"vbin op=gt src=0 bcast=imm imm={imm(1.0)} odtype=u1 dst=192 rows=1 cols={C}",
             _store("m", "act", 192, 1, C, "u1"),
             f"vsel mdtype=u1 mask=192 src=0 bcast=imm imm={imm(-1.0)} dst=256 rows=1 cols={C}",
             _store("s", "act", 256, 1, C)]
    with np.errstate(all="ignore"):
        out = _run(lines, image, inputs, syms).outputs
        np.testing.assert_array_equal(out["q"], core.quantize(x, 1.0, 0, DType.I8))
        np.testing.assert_array_equal(out["h"], x.astype(np.float16).astype(F))
    np.testing.assert_array_equal(out["m"], (x > 1).astype(np.uint8))
    np.testing.assert_array_equal(out["s"], np.where(x > 1, x, F(-1)))


def test_vsel_broadcast_mask_and_nan_is_true():
    R, C = 3, 4
    a = np.arange(R * C, dtype=F).reshape(R, C)
    m = np.array([[1.0, 0.0, -0.0, np.nan]], F)
    image, inputs, syms = _image(a=a, m=m, y=(np.zeros((R, C), F), DType.F32, "output"))
    lines = [_load("a", "act", 0, R, C), _load("m", "act", 256, 1, C),
             f"vsel mbcast=row mask=256 src=0 bcast=imm imm={imm(-np.inf)} dst=0 rows={R} cols={C}",
             _store("y", "act", 0, R, C)]
    y = _run(lines, image, inputs, syms).outputs["y"]
    np.testing.assert_array_equal(y, np.where([True, False, False, True], a, -np.inf))


def test_in_place_and_overlapping_destinations():
    """Every operand is read before the result is written: dst may equal or overlap src."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 8)).astype(F)
    image, inputs, syms = _image(x=x, y=(np.zeros((4, 8), F), DType.F32, "output"),
                                 z=(np.zeros((4, 8), F), DType.F32, "output"))
    lines = [_load("x", "act", 0, 4, 8), "vun op=exp src=0 dst=4 rows=4 cols=8",  # shifted by one element
             _store("y", "act", 4, 4, 8), _load("x", "act", 0, 4, 8), "vun op=gelu src=0 dst=0 rows=4 cols=8",
             "vbin op=add src=0 src1=0 dst=0 rows=4 cols=8", _store("z", "act", 0, 4, 8)]
    out = _run(lines, image, inputs, syms).outputs
    np.testing.assert_array_equal(out["y"], vector.exp(x))
    g = vector.gelu(x)
    np.testing.assert_array_equal(out["z"], g + g)


# -- reductions --------------------------------------------------------------------------------

def _tree_ref(values) -> np.float32:
    """The tree sum by its definition, one float32 addition at a time."""
    a = [F(v) for v in values]
    size = 1
    while size < len(a):
        size *= 2
    a += [F(-0.0)] * (size - len(a))
    while len(a) > 1:
        h = len(a) // 2
        a = [F(a[j] + a[j + h]) for j in range(h)]
    return a[0]


@pytest.mark.parametrize("cols", [1, 2, 3, 7, 8, 33, 384])
def test_tree_sum_is_the_defined_tree(cols):
    rng = np.random.default_rng(cols)
    x = (rng.standard_normal((3, cols)) * np.exp2(rng.integers(-20, 20, (3, cols)))).astype(F)
    got = vector.tree_sum(x, 1)
    assert got.shape == (3, 1)
    np.testing.assert_array_equal(got[:, 0], [_tree_ref(r) for r in x])
    np.testing.assert_array_equal(vector.tree_sum(x.T.copy(), 0), got.T)  # axis 0 is the transpose
    bound = math.ceil(math.log2(max(cols, 2))) * 2.0**-24 * np.abs(x.astype(np.float64)).sum(1)
    assert (np.abs(got[:, 0] - x.astype(np.float64).sum(1)) <= bound * 1.01).all()
    assert np.signbit(vector.tree_sum(np.full((1, cols), -0.0, F), 1)[0, 0])  # -0 padding keeps -0


def test_reductions_via_vred():
    rng = np.random.default_rng(12)
    R, C = 6, 13
    x = rng.standard_normal((R, C)).astype(F)
    x[0] = -x[0] ** 2  # all non-positive...
    x[0, [3, 5]] = [0.0, -0.0]  # ... so the maximum is the zero: +0
    x[1] = np.abs(x[1])
    x[1, [2, 4]] = [-0.0, 0.0]  # minimum is a zero: -0
    x[2, 7] = np.nan
    image, inputs, syms = _image(x=x, **{n: (np.zeros(s, F), DType.F32, "output") for n, s in
                                         [("s", (R, 1)), ("q", (R, 1)), ("mx", (R, 1)), ("mn", (R, 1)),
                                          ("ma", (R, 1)), ("c", (1, C))]})
    lines = [_load("x", "act", 0, R, C)]
    for i, (name, op, extra) in enumerate([("s", "sum", f"imm={imm(1 / C)}"), ("q", "sumsq", ""), ("mx", "max", ""),
                                           ("mn", "min", ""), ("ma", "maxabs", "")]):
        lines += [f"vred op={op} src=0 {extra} dst={1024 + 64 * i} rows={R} cols={C}", _store(name, "act", 1024 + 64 * i, R, 1)]
    lines += [f"vred op=sum axis=0 src=0 obuf=param dst=0 rows={R} cols={C}", _store("c", "param", 0, 1, C)]
    out = _run(lines, image, inputs, syms).outputs
    np.testing.assert_array_equal(out["s"][:, 0], [_tree_ref(r) * F(1 / C) for r in x])
    np.testing.assert_array_equal(out["q"][:, 0], [_tree_ref(r * r) for r in x])
    np.testing.assert_array_equal(out["c"][0], [_tree_ref(col) for col in x.T])
    mx, mn, ma = out["mx"][:, 0], out["mn"][:, 0], out["ma"][:, 0]
    assert mx[0] == 0 and not np.signbit(mx[0]) and mn[1] == 0 and np.signbit(mn[1])
    assert np.isnan(mx[2]) and np.isnan(mn[2]) and np.isnan(ma[2])
    keep = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(mx[keep], x[keep].max(1))
    np.testing.assert_array_equal(mn[keep], x[keep].min(1))
    np.testing.assert_array_equal(ma[keep], np.abs(x[keep]).max(1))


# -- quantization ------------------------------------------------------------------------------

def _dynamic_ref(x, dtype, axis):
    """Per-row (axis 1) / per-column (axis 0) symmetric quantization, written out plainly."""
    xs = x if axis == 1 else x.T
    qs, scales = [], []
    for row in xs:
        finite = np.abs(row[np.isfinite(row)])
        amax = F(finite.max()) if finite.size else F(0)
        top = F(ml_dtypes.finfo(ml_dtypes.float8_e4m3fn).max) if dtype is DType.F8E4M3 else F(dtype.int_range[1])
        s = F(amax / top)
        s = F(1) if s == 0 else s
        with np.errstate(all="ignore"):
            t = (row / s).astype(F)
        if dtype is DType.F8E4M3:
            q = np.clip(t, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(F)
        else:
            q = np.clip(np.where(np.isnan(t), 0, np.rint(t)), *dtype.int_range)
        qs.append(q)
        scales.append(s)
    q, s = np.array(qs), np.array(scales, F)[:, None]
    return (q, s) if axis == 1 else (q.T, s.T)


@pytest.mark.parametrize("dtype", [DType.I8, DType.I4, DType.U8, DType.F8E4M3])
@pytest.mark.parametrize("axis", [1, 0])
@pytest.mark.parametrize("specials", [True, False])  # False: finite values with normal scales
def test_vquant_dynamic_per_token_bit_exact(dtype, axis, specials):
    rng = np.random.default_rng(13)
    R, C = 7, 24
    x = (rng.standard_normal((R, C)) * np.exp2(rng.integers(-8, 8, (R, 1)))).astype(F)
    x[1] = 0.0  # an all-zero row: scale 1, all q 0
    if specials:
        x[2, :3] = [np.nan, np.inf, -np.inf]  # ignored by max |x|; NaN -> 0 (fp8: NaN), +-inf saturate
        x[3, 0] = 1e-44  # a subnormal maximum
    sshape = (R, 1) if axis == 1 else (1, C)
    image, inputs, syms = _image(x=x, q=(np.zeros((R, C)), dtype, "output"), s=(np.zeros(sshape, F), DType.F32, "output"))
    name = dtype.name.lower()
    lines = [_load("x", "act", 0, R, C),
             f"vquant odtype={name} axis={axis} src=0 dst=1024 sbuf=param scale=0 rows={R} cols={C}",
             f"store buf=act dtype={name} sp=1024 dram={{q}} rows={R} cols={C} rstride={C} cstride=1",
             _store("s", "param", 0, *sshape)]
    out = _run(lines, image, inputs, syms).outputs
    q, s = _dynamic_ref(x, dtype, axis)
    np.testing.assert_array_equal(out["s"], s)
    np.testing.assert_array_equal(out["q"], q)
    if axis == 1:
        assert s[1, 0] == 1 and (out["q"][1] == 0).all()


def test_vreq_attention_scores_to_int8():
    """int32 attention scores -> int8 with one fixed-point multiplier (no PARAM block)."""
    rng = np.random.default_rng(14)
    S = 16
    acc = rng.integers(-(2**20), 2**20, (S, S)).astype(np.int32)
    acc[0, :2] = [2**31 - 1, -(2**31)]
    (mult,), (shift,) = core.fixed_point_multiplier(np.array([3.1e-5]))
    zp = -5
    image, inputs, syms = _image(acc=(acc, DType.I32, "input"), y=(np.zeros((S, S)), DType.I8, "output"))
    lines = [_load("acc", "acc", 0, S, S, "i32"),
             f"vreq buf=acc src=0 odtype=i8 dst=0 rows={S} cols={S} mult={mult} shift={shift} zp={zp & 0xFF} relu=1",
             _store("y", "act", 0, S, S, "i8")]
    y = _run(lines, image, inputs, syms).outputs["y"]
    t = acc.astype(np.int64)
    ref = np.clip(np.maximum((t * int(mult) + 2 ** (int(shift) - 1)) // 2 ** int(shift) + zp, zp), -128, 127)
    np.testing.assert_array_equal(y, ref)


# -- composed: LayerNorm, GELU, softmax from the primitives, run from the binary ---------------

def test_layernorm_from_primitives():
    """mean, centre, variance, rsqrt, scale, gamma, beta: 8 instructions; within 2e-6 of float64."""
    rng = np.random.default_rng(15)
    R, C, eps = 16, 384, 1e-12
    x = (rng.standard_normal((R, C)) * 2 + rng.standard_normal((R, 1)) * 5).astype(F)
    gb = rng.standard_normal((2, C)).astype(F)
    image, inputs, syms = _image(x=x, gb=gb, y=(np.zeros((R, C), F), DType.F32, "output"))
    M, V = 4 * R * C, 4 * R * C + 4 * R
    lines = [_load("x", "act", 0, R, C), _load("gb", "param", 0, 2, C),
             f"vred op=sum src=0 imm={imm(1 / C)} dst={M} rows={R} cols={C}",
             f"vbin op=sub src=0 bcast=col src1={M} dst=0 rows={R} cols={C}",
             f"vred op=sumsq src=0 imm={imm(1 / C)} dst={V} rows={R} cols={C}",
             f"vbin op=add src={V} bcast=imm imm={imm(eps)} dst={V} rows={R} cols=1",
             f"vun op=rsqrt src={V} dst={V} rows={R} cols=1",
             f"vbin op=mul src=0 bcast=col src1={V} dst=0 rows={R} cols={C}",
             f"vbin op=mul src=0 bcast=row buf1=param src1=0 dst=0 rows={R} cols={C}",
             f"vbin op=add src=0 bcast=row buf1=param src1={4 * C} dst=0 rows={R} cols={C}",
             _store("y", "act", 0, R, C)]
    result = _run(lines, image, inputs, syms)
    x64 = x.astype(np.float64)
    mean = x64.mean(1, keepdims=True)
    ref = (x64 - mean) / np.sqrt(((x64 - mean) ** 2).mean(1, keepdims=True) + eps) * gb[0] + gb[1]
    err = np.abs(result.outputs["y"] - ref)
    assert (err <= 2e-6 * (1 + np.abs(ref))).all(), err.max()
    total = result.stats.total
    assert total.vector_elements == 6 * R * C + 3 * R  # six full-tile passes; on [R, 1]: add, rsqrt (2)
    assert total.sram_bytes == program_cost(_program(lines, syms), DC).sram_bytes


def _program(lines, syms, **values):
    fmt = {k: s.addr for k, s in syms.items()} | values
    return [parse_instruction(line.format(**fmt)) for line in lines] + [parse_instruction("halt")]


def test_gelu_from_primitives_and_fused():
    """erf(x / sqrt 2), + 1, * x, * 0.5 (4 instructions) equals the one-instruction GELU bit for
    bit, and both are within 2.54e-7 max(|x|, 1) of the float64 GELU."""
    rng = np.random.default_rng(16)
    R, C = 8, 96
    x = (rng.standard_normal((R, C)) * 3).astype(F)
    image, inputs, syms = _image(x=x, y=(np.zeros((R, C), F), DType.F32, "output"),
                                 g=(np.zeros((R, C), F), DType.F32, "output"))
    T, G = 4 * R * C, 8 * R * C
    lines = [_load("x", "act", 0, R, C),
             f"vun op=erf src=0 imm={imm(1 / math.sqrt(2))} dst={T} rows={R} cols={C}",
             f"vbin op=add src={T} bcast=imm imm={imm(1.0)} dst={T} rows={R} cols={C}",
             f"vbin op=mul src={T} src1=0 dst={T} rows={R} cols={C}",
             f"vbin op=mul src={T} bcast=imm imm={imm(0.5)} dst={T} rows={R} cols={C}",
             _store("y", "act", T, R, C),
             f"vun op=gelu src=0 dst={G} rows={R} cols={C}", _store("g", "act", G, R, C)]
    out = _run(lines, image, inputs, syms).outputs
    np.testing.assert_array_equal(out["y"], out["g"])
    x64 = x.astype(np.float64)
    ref = 0.5 * x64 * (1 + _ERF(x64 / math.sqrt(2)))
    assert (np.abs(out["y"] - ref) <= 2.54e-7 * np.maximum(np.abs(x64), 1)).all()


def test_softmax_from_primitives():
    """max, subtract, exp (with the 1/sqrt(d) attention scale folded in), sum, rcp, multiply;
    within 1e-6 relative (+ 1e-9 absolute) of float64, and close to the SOFTMAX instruction
    (the same max, exp and tree sum, then a division)."""
    rng = np.random.default_rng(17)
    H, S, d = 3, 32, 32
    x = (rng.standard_normal((H * S, S)) * 8).astype(F)
    image, inputs, syms = _image(x=x, y=(np.zeros(x.shape, F), DType.F32, "output"),
                                 z=(np.zeros(x.shape, F), DType.F32, "output"))
    R, C = x.shape
    M, Z = 4 * R * C, 4 * R * C + 4 * R
    scale = 1 / math.sqrt(d)
    lines = [_load("x", "act", 0, R, C),
             f"vred op=max src=0 dst={M} rows={R} cols={C}",
             f"vbin op=sub src=0 bcast=col src1={M} dst=0 rows={R} cols={C}",
             f"vun op=exp src=0 imm={imm(scale)} dst=0 rows={R} cols={C}",
             f"vred op=sum src=0 dst={Z} rows={R} cols={C}",
             f"vun op=rcp src={Z} dst={Z} rows={R} cols=1",
             f"vbin op=mul src=0 bcast=col src1={Z} dst=0 rows={R} cols={C}",
             _store("y", "act", 0, R, C),
             _load("x", "act", 0, R, C),
             f"vbin op=mul src=0 bcast=imm imm={imm(scale)} dst=0 rows={R} cols={C}",
             f"softmax src=0 dst=0 rows={R} cols={C}", _store("z", "act", 0, R, C)]
    out = _run(lines, image, inputs, syms).outputs
    s64 = x.astype(np.float64) * np.float64(F(scale))
    e = np.exp(s64 - s64.max(1, keepdims=True))
    ref = e / e.sum(1, keepdims=True)
    assert (np.abs(out["y"] - ref) <= 1e-6 * ref + 1e-9).all()
    np.testing.assert_allclose(out["y"], out["z"], rtol=2e-6, atol=1e-9)
    np.testing.assert_array_equal(out["z"], core.softmax(x * F(scale)))  # SOFTMAX is core.softmax
    np.testing.assert_allclose(out["y"].sum(1), 1, rtol=1e-5)


# -- cost model --------------------------------------------------------------------------------

def _cost(line, target=EDGE):
    return instruction_cost(parse_instruction(line), target)


def test_vector_cost_formulas():
    # edge: fixed.vector = 4, 16 lanes
    c = _cost("vbin op=add dtype=f16 src=0 bcast=row dtype1=f32 buf1=param src1=0 odtype=i8 dst=0 rows=10 cols=7")
    assert c.sram_bytes == 10 * 14 + 4 * 7 + 10 * 7 and c.vector_elements == 70 and c.cycles == 4 + 5
    g = _cost("vbin op=div dtype=i4 src=0 bcast=group dtype1=f16 src1=0 group=4 dst=0 rows=3 cols=10")
    assert g.sram_bytes == 3 * 5 + 3 * 3 * 2 + 3 * 40 and g.vector_elements == 2 * 30  # DIV: 2 passes
    assert _cost("vbin op=mul src=0 bcast=imm imm=0x3f000000 dst=0 rows=2 cols=2").sram_bytes == 16 + 16
    e = _cost("vun op=exp src=0 dst=0 rows=4 cols=7")
    assert e.vector_elements == 4 * 28 and e.cycles == 4 + 7 and e.sram_bytes == 2 * 112
    assert _cost("vun op=gelu src=0 dst=0 rows=4 cols=8").vector_elements == 5 * 32
    r = _cost("vred op=sum src=0 dst=0 rows=4 cols=8")
    assert r.sram_bytes == 128 + 16 and r.vector_elements == 32
    assert _cost("vred op=max axis=0 src=0 odtype=f16 dst=0 rows=4 cols=8").sram_bytes == 128 + 16
    s = _cost("vsel mdtype=u1 mbcast=row mask=0 src=0 bcast=scalar src1=0 dst=0 rows=4 cols=9")
    assert s.sram_bytes == 2 + 4 * 36 + 4 + 4 * 36
    q = _cost("vquant odtype=i4 src=0 dst=0 scale=0 rows=4 cols=9")
    assert q.sram_bytes == 4 * 36 + 4 * 5 + 4 * 4 and q.vector_elements == 2 * 36
    v = _cost("vreq src=0 odtype=i8 dst=0 rows=4 cols=9 mult=1073741824 shift=31")
    assert v.sram_bytes == 4 * 36 + 4 * 9 and v.vector_elements == 36
    assert c.energy_pj == pytest.approx(1.0 * c.sram_bytes + 0.5 * c.vector_elements)


# -- encoding ----------------------------------------------------------------------------------

def _field_values(spec):
    return st.tuples(*[st.sampled_from([int(v) for v in f.enum]) if f.enum else st.integers(0, (1 << f.bits) - 1)
                       for f in spec.fields])


@st.composite
def _vector_instructions(draw):
    spec = draw(st.sampled_from(VECTOR))
    return Instruction(spec, draw(_field_values(spec)))


@settings(max_examples=300)
@given(_vector_instructions())
def test_vector_instructions_round_trip(ins):
    word = encode(ins)
    assert 0x30 <= word[0] <= 0x3E and decode(word) == ins
    assert parse_instruction(format_instruction(ins)) == ins


def test_assembly_text():
    ins = parse_instruction("vun op=erf src=64 imm=0x3f3504f3 dst=0 rows=2 cols=3")
    assert vector.imm_value(ins.imm) == F(1 / math.sqrt(2)) and ins.odtype is DType.F32
    assert format_instruction(ins) == "vun op=erf src=64 imm=0x3f3504f3 dst=0 rows=2 cols=3"
    assert format_instruction(parse_instruction("vun op=exp src=0 dst=0 rows=1 cols=1")) == \
        "vun op=exp src=0 dst=0 rows=1 cols=1"  # imm = 1.0 is the default
    red = parse_instruction("vred op=sum src=0 dst=0 rows=1 cols=1")
    assert red.axis == 1 and red.imm == vector.ONE and red.op is ReduceOp.SUM


# -- errors ------------------------------------------------------------------------------------

def _word(mnemonic, **overrides):
    """An encoded instruction with a raw field value (which may be an undefined enum code)."""
    spec = next(s for s in INSTRUCTIONS if s.mnemonic == mnemonic)
    base = parse_instruction({"vbin": "vbin op=add src=0 dst=0 rows=1 cols=1",
                              "vun": "vun op=exp src=0 dst=0 rows=1 cols=1",
                              "vred": "vred op=sum src=0 dst=0 rows=1 cols=1"}[mnemonic])
    values = tuple(overrides.get(f.name, v) for f, v in zip(spec.fields, base.values))
    word = spec.opcode
    shift = 8
    for f, v in zip(spec.fields, values):
        word |= v << shift
        shift += f.bits
    return word.to_bytes(32, "little")


@pytest.mark.parametrize("mnemonic, code", [("vbin", 31), ("vun", 31), ("vred", 15)])
def test_bad_op_code_is_a_simulation_error(mnemonic, code):
    blob = _word(mnemonic, op=code) + encode(parse_instruction("halt"))
    with pytest.raises(SimulationError, match=rf"instruction 0 \(\?\): {mnemonic}: bad op code {code}"):
        simulate(blob, MemoryImage.empty(), EDGE, {})


@pytest.mark.parametrize("line, match", [
    ("vbin op=add src=0 bcast=group src1=0 group=0 dst=0 rows=2 cols=4", "bcast=group needs group >= 1"),
    ("vbin op=add src=0 dst=32760 rows=2 cols=4", "ACT overflow"),
    ("vsel mbuf=param mask=4090 src=0 dst=0 rows=2 cols=4", "PARAM overflow"),
    ("vred op=sum axis=0 src=0 obuf=param dst=4094 rows=2 cols=4", "PARAM overflow"),
    ("vun op=exp src=0 dst=0 rows=0 cols=4", "empty 0x4 tile"),
    ("vquant odtype=f32 src=0 dst=0 scale=0 rows=1 cols=4", "needs an integer or fp8 output type"),
    ("vquant odtype=i32 src=0 dst=0 scale=0 rows=1 cols=4", "at most 8 bits"),
    ("vreq dtype=f32 src=0 odtype=i8 dst=0 rows=1 cols=1 mult=1 shift=1", "needs an integer operand"),
    ("vreq src=0 odtype=f16 dst=0 rows=1 cols=1 mult=1 shift=1", "integer output type"),
    ("vreq src=0 odtype=i8 dst=0 rows=1 cols=1 mult=1 shift=0", "shift must be in"),
    ("vreq src=0 odtype=u4 dst=0 rows=1 cols=1 mult=1 shift=1 zp=200", "zero point 200 is outside the u4 range"),
])
def test_errors_are_simulation_errors(line, match):
    program = [parse_instruction(line), parse_instruction("halt")]
    with pytest.raises(SimulationError, match=match) as info:
        simulate(program, MemoryImage.empty(), EDGE, {})
    assert str(info.value).startswith(f"instruction 0 ({line.split()[0]}): ")
