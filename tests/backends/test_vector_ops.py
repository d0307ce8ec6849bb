"""The vector unit's newer operations (docs/isa.md, "The vector unit"): MOD / FMOD / POW,
LOG / SIN / COS and the exact rounding functions, PROD and the arg reductions, the integer
mode, and the 16-bit / u32 / fp8-fnuz element types, each against an independent numpy
definition and through the simulator (binary program, counted cost == cost model)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from spaq.backends.sparrow import core, vector
from spaq.backends.sparrow.isa import BinaryOp, DType, ReduceOp, UnaryOp, decode, encode, parse_instruction
from spaq.backends.sparrow.packing import from_bytes, to_bytes

from tests.backends.test_vector import _image, _load, _run, _store

F = np.float32


def test_float64_rounded_functions():
    rng = np.random.default_rng(0)
    x = rng.uniform(1e-3, 1e3, 10_000).astype(F)
    for op, ref in ((UnaryOp.LOG, np.log), (UnaryOp.SIN, np.sin), (UnaryOp.COS, np.cos)):
        np.testing.assert_array_equal(vector.unary(op, x), ref(x.astype(np.float64)).astype(F))
    assert vector.unary(UnaryOp.LOG, np.array([0.0, -1.0, np.inf], F)).tolist()[0] == -np.inf
    assert np.isnan(vector.unary(UnaryOp.LOG, np.array([-1.0], F))[0])
    a, b = rng.uniform(0.1, 4, 100).astype(F), rng.uniform(-3, 3, 100).astype(F)
    np.testing.assert_array_equal(vector.binary(BinaryOp.POW, a, b), np.power(a.astype(np.float64), b).astype(F))
    assert vector.binary(BinaryOp.POW, np.array([-2.0], F), np.array([3.0], F))[0] == -8.0


def test_rounding_functions_are_exact():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.7, 1.7, 0.0], F)
    np.testing.assert_array_equal(vector.unary(UnaryOp.ROUND, x), np.rint(x))
    np.testing.assert_array_equal(vector.unary(UnaryOp.TRUNC, x), np.trunc(x))
    np.testing.assert_array_equal(vector.unary(UnaryOp.FLOOR, x), np.floor(x))
    np.testing.assert_array_equal(vector.unary(UnaryOp.CEIL, x), np.ceil(x))
    np.testing.assert_array_equal(vector.unary(UnaryOp.SIGN, x), np.sign(x))


def test_float_remainders():
    a = np.array([5.5, -5.5, 5.5, -5.5, 3.0], F)
    b = np.array([2.0, 2.0, -2.0, -2.0, 3.0], F)
    np.testing.assert_array_equal(vector.binary(BinaryOp.MOD, a, b), np.mod(a, b))
    np.testing.assert_array_equal(vector.binary(BinaryOp.FMOD, a, b), np.fmod(a, b))


def test_integer_mode():
    a = np.array([7, -7, 7, -7, 5, 2**30], np.int64)
    b = np.array([2, 2, -2, -2, 0, 4], np.int64)
    assert vector.int_binary(BinaryOp.DIV, a, b).tolist() == [3, -3, -3, 3, 0, 2**28]
    assert vector.int_binary(BinaryOp.MOD, a, b).tolist() == [1, 1, -1, -1, 0, 0]
    assert vector.int_binary(BinaryOp.FMOD, a, b).tolist() == [1, -1, 1, -1, 0, 0]
    assert core.saturate(np.array([300, -300, 5]), DType.I8).tolist() == [127, -128, 5]
    assert vector.int_mode(BinaryOp.ADD, [DType.I32, DType.I16], DType.I32)
    assert not vector.int_mode(BinaryOp.ADD, [DType.I32, DType.F32], DType.I32)
    assert not vector.int_mode(BinaryOp.POW, [DType.I32, DType.I32], DType.I32)  # POW goes through float32


def test_arg_reductions():
    x = np.array([[1, 3, 3, 0], [np.nan, 2, np.nan, 2], [-1, -1, -5, -5]], F)
    assert vector.reduce(ReduceOp.ARGMAX, x).ravel().tolist() == [1, 0, 0]
    assert vector.reduce(ReduceOp.ARGMAX_LAST, x).ravel().tolist() == [2, 2, 1]
    assert vector.reduce(ReduceOp.ARGMIN, x).ravel().tolist() == [3, 0, 2]
    assert vector.reduce(ReduceOp.ARGMIN_LAST, x).ravel().tolist() == [3, 2, 3]
    assert vector.reduce(ReduceOp.ARGMAX, x, axis=0).ravel().tolist() == [1, 0, 1, 1]
    p = np.arange(1, 7, dtype=F).reshape(2, 3)
    np.testing.assert_array_equal(vector.reduce(ReduceOp.PROD, p), [[6], [120]])


@pytest.mark.parametrize("dtype, values", [
    (DType.I16, [-32768, -1, 0, 32767]), (DType.U16, [0, 1, 65535, 300]), (DType.U32, [0, 1, 2**32 - 1, 2**31]),
    (DType.F8E4M3FNUZ, [0.0, 1.5, -240.0, 0.0625]), (DType.F8E5M2FNUZ, [0.0, 3.0, -57344.0, 0.125]),
])
def test_new_element_types_round_trip(dtype, values):
    v = np.array([values], np.float64 if dtype.is_float else np.int64)
    assert dtype.nbytes(4) == 4 * dtype.bits // 8
    np.testing.assert_array_equal(from_bytes(to_bytes(v, dtype), dtype, 4).astype(np.float64), v)


def test_fnuz_conversion_saturates():
    y = vector.convert(np.array([1e6, -1e6, np.nan], F), DType.F8E4M3FNUZ)
    top = float(ml_dtypes.finfo(ml_dtypes.float8_e4m3fnuz).max)
    assert y[0] == top and y[1] == -top and np.isnan(y[2])


def test_new_ops_encode():
    for line in ("vbin op=mod src=0 dst=0 rows=1 cols=1", "vun op=trunc src=0 dst=0 rows=1 cols=1",
                 "vred op=argmin_last src=0 odtype=i32 dst=0 rows=2 cols=3", "vred op=prod src=0 dst=0 rows=1 cols=1"):
        ins = parse_instruction(line)
        assert decode(encode(ins)) == ins


def test_simulated_integer_and_arg_instructions():
    """i16 arithmetic exact (beyond float32's 2^24 for i32), saturating i8 results, TRUNC to
    an integer type, ARGMAX_LAST into i32, PROD."""
    R, C = 3, 5
    rng = np.random.default_rng(1)
    a = rng.integers(-30000, 30000, (R, C))
    b = rng.integers(1, 300, (R, C))
    big = np.array([[2**24 + 1, -(2**30), 7, 3, 1]], np.int64)
    x = rng.standard_normal((R, C)).astype(F) * 100
    image, inputs, syms = _image(
        a=(a, DType.I16, "input"), b=(b, DType.I16, "input"), big=(big, DType.I32, "input"), x=x,
        q=(np.zeros((R, C)), DType.I16, "output"), m=(np.zeros((R, C)), DType.I16, "output"),
        s=(np.zeros((1, C)), DType.I32, "output"), t=(np.zeros((R, C)), DType.I8, "output"),
        arg=(np.zeros((R, 1)), DType.I32, "output"))
    lines = [_load("a", "act", 0, R, C, "i16"), _load("b", "act", 64, R, C, "i16"),
             _load("big", "act", 128, 1, C, "i32"), _load("x", "act", 192, R, C),
             f"vbin op=div dtype=i16 src=0 dtype1=i16 src1=64 odtype=i16 dst=256 rows={R} cols={C}",
             f"vbin op=mod dtype=i16 src=0 dtype1=i16 src1=64 odtype=i16 dst=320 rows={R} cols={C}",
             f"vbin op=add dtype=i32 src=128 bcast=imm imm={vector.imm(1.0):#x} odtype=i32 dst=384 rows=1 cols={C}",
             f"vun op=trunc src=192 odtype=i8 dst=448 rows={R} cols={C}",
             f"vred op=argmax_last src=192 odtype=i32 dst=512 rows={R} cols={C}",
             _store("q", "act", 256, R, C, "i16"), _store("m", "act", 320, R, C, "i16"),
             _store("s", "act", 384, 1, C, "i32"), _store("t", "act", 448, R, C, "i8"),
             _store("arg", "act", 512, R, 1, "i32")]
    out = _run(lines, image, inputs, syms).outputs
    np.testing.assert_array_equal(out["q"], np.trunc(a / b).astype(np.int64))
    np.testing.assert_array_equal(out["m"], np.mod(a, b))
    np.testing.assert_array_equal(out["s"], big + 1)
    np.testing.assert_array_equal(out["t"], np.clip(np.trunc(x), -128, 127))
    np.testing.assert_array_equal(out["arg"].ravel(), C - 1 - np.argmax(x[:, ::-1], axis=1))
