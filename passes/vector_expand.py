"""How the vector unit computes the elementwise ONNX ops that are not one instruction.

`expansion(op)` gives an op's short program of VBIN / VUN / VSEL instructions (`Micro`),
or None when the vector unit cannot compute it. A vector region (sparrow_layers.py) runs
it as one step: the instructions read the op's operands (`In`), immediates (`Imm`) and
temporary tiles (`Tmp`, scratchpad slots `s0`, `s1`, ... of the region), and only the last
one writes the result (`OUT`), so the result may share its slot with an operand that dies.

    Elu(x, alpha):   s0 = exp(x); s0 = s0 - 1; s0 = s0 * alpha; s1 = x > 0; y = s1 ? x : s0
    Clip(x, lo, hi): s0 = max(x, lo); y = min(s0, hi)
    Cast(f32 -> i8): y = trunc(x)  (odtype i8: saturating)

Integer operands and results compute exactly in the vector unit's integer mode (docs/isa.md);
float ones in float32, the result rounded to its type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.dialects.builtin import TensorType
from xdsl.ir import Operation, SSAValue

from spaq.backends.sparrow.isa import BinaryOp, DType, UnaryOp
from spaq.dialects.onnx import NoValueOp, OnnxOp


@dataclass(frozen=True)
class In:
    """An operand of the op."""

    value: SSAValue


@dataclass(frozen=True)
class Imm:
    value: float


@dataclass(frozen=True)
class Tmp:
    index: int
    dtype: DType | None = None  # read / written as this type (default: the expansion's temporary type)


OUT = "out"


@dataclass
class Micro:
    """One instruction: `mnemonic` vbin / vun / vsel, its op, destination and sources
    (vbin: a, b; vun: x; vsel: mask, a, b). `scale` is VUN's input scale."""

    mnemonic: str
    op: BinaryOp | UnaryOp | None
    dst: object
    args: list
    scale: float = 1.0
    odtype: DType | None = None  # the result's type when it is not the destination's own


@dataclass
class Expansion:
    micro: list[Micro]
    temps: int = 0
    tmp_like_result: bool = False  # temporaries hold the result's type (else f32)
    tiles: list[SSAValue] = field(default_factory=list)  # operands read as whole tiles
    reshape: dict[SSAValue, tuple[int, ...]] = field(default_factory=dict)  # per-axis operands onto their axis


def _dtype(v: SSAValue) -> DType | None:
    from spaq.passes.sparrow_layers import dram_dtype

    t = v.type
    if not isinstance(t, TensorType):
        return None
    try:
        d = dram_dtype(t.element_type)
    except (ValueError, AssertionError):
        return None
    return d


def _is_bool(v: SSAValue) -> bool:
    from spaq.passes.sparrow_layers import _is_bool as is_bool

    return is_bool(v)


BINARY = {"Add": BinaryOp.ADD, "Sub": BinaryOp.SUB, "Mul": BinaryOp.MUL, "Div": BinaryOp.DIV, "Pow": BinaryOp.POW,
          "Equal": BinaryOp.EQ, "Less": BinaryOp.LT, "LessOrEqual": BinaryOp.LE, "Greater": BinaryOp.GT,
          "GreaterOrEqual": BinaryOp.GE}
UNARY = {"Neg": UnaryOp.NEG, "Abs": UnaryOp.ABS, "Exp": UnaryOp.EXP, "Sqrt": UnaryOp.SQRT, "Reciprocal": UnaryOp.RCP,
         "Erf": UnaryOp.ERF, "Tanh": UnaryOp.TANH, "Log": UnaryOp.LOG, "Floor": UnaryOp.FLOOR, "Ceil": UnaryOp.CEIL,
         "Round": UnaryOp.ROUND, "Sign": UnaryOp.SIGN, "Sin": UnaryOp.SIN, "Cos": UnaryOp.COS}
FLOAT_ONLY = ("Exp", "Sqrt", "Reciprocal", "Erf", "Tanh", "Log", "Sin", "Cos")
VARIADIC = {"Max": BinaryOp.MAX, "Min": BinaryOp.MIN, "Sum": BinaryOp.ADD, "Mean": BinaryOp.ADD}


def _bin(op, a, b, dst=OUT) -> Micro:
    return Micro("vbin", op, dst, [a, b])


def _un(op, x, dst=OUT, scale: float = 1.0) -> Micro:
    return Micro("vun", op, dst, [x], scale)


def _sel(mask, a, b, dst=OUT) -> Micro:
    return Micro("vsel", None, dst, [mask, a, b])


def expansion(op: Operation) -> Expansion | None:
    """The instructions that compute `op` (one result), or None."""
    if not isinstance(op, OnnxOp) or len(op.results) != 1:
        return None
    operands = [v for v in op.operands if not isinstance(v.owner, NoValueOp)]
    types = [_dtype(v) for v in operands] + [_dtype(op.results[0])]
    if any(t is None for t in types) or not operands:
        return None
    *ins, out = types
    t = op.op_type
    x = In(operands[0])
    a = op.attr
    floats = out.is_float and all(d.is_float for d in ins)
    if t in BINARY and len(operands) == 2:
        if t in ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"):
            ok = _is_bool(op.results[0]) and ins[0].is_float == ins[1].is_float
        elif t == "Pow":
            ok = ins[0] == out
        else:
            ok = ins[0] == ins[1] == out
        return Expansion([_bin(BINARY[t], x, In(operands[1]))], tiles=[operands[0]]) if ok else None
    if t == "Mod" and ins[0] == ins[1] == out:
        mop = BinaryOp.FMOD if a("fmod", 0) else BinaryOp.MOD
        return Expansion([_bin(mop, x, In(operands[1]))], tiles=[operands[0]])
    if t in UNARY and len(operands) == 1 and ins[0] == out and (out.is_float or t not in FLOAT_ONLY):
        return Expansion([_un(UNARY[t], x)], tiles=[operands[0]])
    if t in VARIADIC and all(d == out for d in ins):
        return _variadic(t, operands)
    if t == "Where" and len(operands) == 3 and ins[1] == ins[2] == out:
        return Expansion([_sel(In(operands[0]), In(operands[1]), In(operands[2]))], tiles=[operands[1]])
    if t == "Clip" and all(d == out for d in ins):
        return _clip(op, operands)
    if t == "Cast":
        return _cast(op, ins[0], out)
    if t in ("QuantizeLinear", "DequantizeLinear"):
        return _quantization(op, operands, ins, out)
    if t in ("IsNaN", "IsInf") and ins[0].is_float and _is_bool(op.results[0]):
        return _special(op, x)
    if t == "PRelu" and floats and ins[0] == ins[1] == out:
        return Expansion([_bin(BinaryOp.GE, x, Imm(0.0), Tmp(0)), _bin(BinaryOp.MUL, x, In(operands[1]), Tmp(1)),
                          _sel(Tmp(0), x, Tmp(1))], temps=2, tiles=[operands[0]])
    if floats and len(operands) == 1 and ins[0] == out:
        micro = _activation(op, x)
        if micro is not None:
            temps = 1 + max((m.dst.index for m in micro if isinstance(m.dst, Tmp)), default=-1)
            return Expansion(micro, temps=temps, tiles=[operands[0]])
    return None


def _variadic(t: str, operands: list[SSAValue]) -> Expansion:
    bop = VARIADIC[t]
    if len(operands) == 1:
        return Expansion([_un(UnaryOp.COPY, In(operands[0]))] if t != "Mean" else
                         [_un(UnaryOp.COPY, In(operands[0]))], tiles=[operands[0]])
    micro: list[Micro] = []
    acc = In(operands[0])
    last = len(operands) - 1 if t != "Mean" else len(operands)
    for i, v in enumerate(operands[1:], start=1):
        dst = OUT if i == last else Tmp(0)
        micro.append(_bin(bop, acc, In(v), dst))
        acc = Tmp(0)
    if t == "Mean":
        micro.append(_bin(BinaryOp.DIV, Tmp(0), Imm(float(len(operands)))))
    return Expansion(micro, temps=1 if len(micro) > 1 else 0, tmp_like_result=True, tiles=[operands[0]])


def _clip(op: Operation, operands: list[SSAValue]) -> Expansion:
    x = In(op.operands[0])
    lo = op.operands[1] if len(op.operands) > 1 and not isinstance(op.operands[1].owner, NoValueOp) else None
    hi = op.operands[2] if len(op.operands) > 2 and not isinstance(op.operands[2].owner, NoValueOp) else None
    if lo is None and hi is None:
        return Expansion([_un(UnaryOp.COPY, x)], tiles=[op.operands[0]])
    if lo is None or hi is None:
        bop, bound = (BinaryOp.MAX, lo) if hi is None else (BinaryOp.MIN, hi)
        return Expansion([_bin(bop, x, In(bound))], tiles=[op.operands[0]])
    return Expansion([_bin(BinaryOp.MAX, x, In(lo), Tmp(0)), _bin(BinaryOp.MIN, Tmp(0), In(hi))], temps=1,
                     tmp_like_result=True, tiles=[op.operands[0]])


def _cast(op: Operation, src: DType, dst: DType) -> Expansion | None:
    x = In(op.operands[0])
    tiles = [op.operands[0]]
    if _is_bool(op.results[0]):
        return Expansion([_bin(BinaryOp.NE, x, Imm(0.0))], tiles=tiles)
    if dst.is_float:
        if dst.bits == 8 and not op.attr("saturate", 1) and src != dst:
            return _fp8_no_saturate(x, dst, tiles)
        return Expansion([_un(UnaryOp.COPY, x)], tiles=tiles)
    if dst.bits < 8:  # 4-bit results wrap around (two's complement), as ONNX's Cast does
        lo, n = dst.int_range[0], float(1 << dst.bits)
        s0 = Tmp(0)
        first = _un(UnaryOp.TRUNC, x, s0) if src.is_float else _un(UnaryOp.COPY, x, s0)
        return Expansion([first, _bin(BinaryOp.SUB, s0, Imm(lo), s0), _bin(BinaryOp.MOD, s0, Imm(n), s0),
                          _bin(BinaryOp.ADD, s0, Imm(lo))], temps=1, tiles=tiles)
    if src.is_float:  # to an integer: truncate toward zero, then the (saturating) conversion
        return Expansion([_un(UnaryOp.TRUNC, x)], tiles=tiles)
    return Expansion([_un(UnaryOp.COPY, x)], tiles=tiles)  # integer mode: exact


def _quantization(op: Operation, operands: list[SSAValue], ins: list[DType], out: DType) -> Expansion | None:
    """DequantizeLinear: y = (x - zp) * scale; QuantizeLinear: y = sat(round(x / scale) + zp)
    (VUN round: half to even; the saturation is the conversion to the integer result type;
    without a zero point, and for fp8, the conversion rounds). Per-axis scales and zero
    points are read reshaped onto their axis."""
    from spaq.passes.sparrow_layers import shape_of

    x, scale = operands[0], operands[1]
    zp = operands[2] if len(operands) > 2 else None
    blocked = op.attr("block_size", 0) and any(shape_of(v) != shape_of(x) for v in (scale, zp) if v is not None)
    if blocked or (op.op_type == "QuantizeLinear" and not op.attr("saturate", 1)):  # (block_size 1: elementwise)
        return None
    rank = len(shape_of(x))
    axis = op.attr("axis", 1) % max(rank, 1)
    reshape = {}
    for v in (scale, zp):
        if v is not None and len(shape_of(v)) == 1 and shape_of(v)[0] > 1 and rank > 1:
            reshape[v] = tuple(shape_of(v)[0] if a == axis else 1 for a in range(rank))
    s0 = Tmp(0)
    if op.op_type == "DequantizeLinear":
        if not out.is_float:
            return None
        if zp is None:
            return Expansion([_bin(BinaryOp.MUL, In(x), In(scale))], tiles=[x], reshape=reshape)
        return Expansion([_bin(BinaryOp.SUB, In(x), In(zp), s0), _bin(BinaryOp.MUL, s0, In(scale))], temps=1,
                         tiles=[x], reshape=reshape)
    if not ins[0].is_float:
        return None
    if zp is None or out.is_float:
        return Expansion([_bin(BinaryOp.DIV, In(x), In(scale))], tiles=[x], reshape=reshape)
    return Expansion([_bin(BinaryOp.DIV, In(x), In(scale), s0), _un(UnaryOp.ROUND, s0, s0),
                      _bin(BinaryOp.ADD, s0, In(zp))], temps=1, tiles=[x], reshape=reshape)


def _fp8_no_saturate(x: In, dst: DType, tiles: list[SSAValue]) -> Expansion | None:
    """Cast to fp8 with saturate=0: a value that rounds beyond the largest finite one becomes
    NaN (e4m3fn and both fnuz types; e5m2's infinity is not reachable, as every conversion
    saturates): |x| against the rounding midpoint above the maximum (a tie rounds to the even
    neighbour: e4m3fn's maximum, the others' overflow), then a select."""
    mids = {DType.F8E4M3: (464.0, BinaryOp.LE), DType.F8E4M3FNUZ: (248.0, BinaryOp.LT),
            DType.F8E5M2FNUZ: (61440.0, BinaryOp.LT)}
    if dst is DType.F8E5M2:
        return _e5m2_no_saturate(x, tiles)
    if dst not in mids:
        return None
    mid, keep = mids[dst]
    s0 = Tmp(0)
    return Expansion([_un(UnaryOp.ABS, x, s0), _bin(keep, s0, Imm(mid), s0), _sel(s0, x, Imm(float("nan")))],
                     temps=1, tiles=tiles)


def _e5m2_no_saturate(x: In, tiles: list[SSAValue]) -> Expansion:
    """Cast to f8e5m2 with saturate=0: beyond the rounding midpoint 61440 (a tie rounds up)
    the result is ±∞, which no (saturating) conversion writes, so its bytes are selected:
    the saturated conversion's bytes read as u8, or 0x7c (+∞) / 0xfc (−∞)."""
    s0, s1, s2 = Tmp(0, DType.F8E5M2), Tmp(1), Tmp(2)
    return Expansion([
        Micro("vun", UnaryOp.COPY, s0, [x], odtype=DType.F8E5M2),
        _un(UnaryOp.ABS, x, s1), _bin(BinaryOp.GE, s1, Imm(61440.0), s1),
        _bin(BinaryOp.GT, x, Imm(0.0), s2), _bin(BinaryOp.MUL, s2, Imm(-128.0), s2),
        _bin(BinaryOp.ADD, s2, Imm(252.0), s2),  # +inf 0x7c where x > 0, -inf 0xfc elsewhere
        Micro("vsel", None, OUT, [s1, s2, Tmp(0, DType.U8)], odtype=DType.U8),
    ], temps=3, tiles=tiles)


def _special(op: Operation, x: In) -> Expansion:
    tiles = [op.operands[0]]
    if op.op_type == "IsNaN":
        return Expansion([_bin(BinaryOp.NE, x, x)], tiles=tiles)
    pos, neg = op.attr("detect_positive", 1), op.attr("detect_negative", 1)
    inf = float("inf")
    if pos and neg:
        return Expansion([_un(UnaryOp.ABS, x, Tmp(0)), _bin(BinaryOp.EQ, Tmp(0), Imm(inf))], temps=1, tiles=tiles)
    if pos or neg:
        return Expansion([_bin(BinaryOp.EQ, x, Imm(inf if pos else -inf))], tiles=tiles)
    return Expansion([_bin(BinaryOp.EQ, x, Imm(float("nan")))], tiles=tiles)  # never true


def _activation(op: Operation, x: In) -> list[Micro] | None:
    t, a = op.op_type, op.attr
    s0, s1 = Tmp(0), Tmp(1)
    if t == "LeakyRelu":
        return [_bin(BinaryOp.GE, x, Imm(0.0), s0), _bin(BinaryOp.MUL, x, Imm(a("alpha", 0.01)), s1), _sel(s0, x, s1)]
    if t == "ThresholdedRelu":
        return [_bin(BinaryOp.GT, x, Imm(a("alpha", 1.0)), s0), _sel(s0, x, Imm(0.0))]
    if t in ("Elu", "Selu"):
        alpha = a("alpha", 1.0 if t == "Elu" else 1.6732632423543772)
        micro = [_un(UnaryOp.EXP, x, s0), _bin(BinaryOp.SUB, s0, Imm(1.0), s0), _bin(BinaryOp.MUL, s0, Imm(alpha), s0),
                 _bin(BinaryOp.GT, x, Imm(0.0), s1)]
        if t == "Elu":
            return micro + [_sel(s1, x, s0)]
        return micro + [_sel(s1, x, s0, s0), _bin(BinaryOp.MUL, s0, Imm(a("gamma", 1.0507009873554805)))]
    if t == "Celu":
        alpha = a("alpha", 1.0)
        return [_un(UnaryOp.EXP, x, s0, scale=1.0 / alpha), _bin(BinaryOp.SUB, s0, Imm(1.0), s0),
                _bin(BinaryOp.MUL, s0, Imm(alpha), s0), _bin(BinaryOp.MIN, s0, Imm(0.0), s0),
                _bin(BinaryOp.MAX, x, Imm(0.0), s1), _bin(BinaryOp.ADD, s1, s0)]
    if t == "HardSigmoid":
        return [_bin(BinaryOp.MUL, x, Imm(a("alpha", 0.2)), s0), _bin(BinaryOp.ADD, s0, Imm(a("beta", 0.5)), s0),
                _bin(BinaryOp.MAX, s0, Imm(0.0), s0), _bin(BinaryOp.MIN, s0, Imm(1.0))]
    if t == "HardSwish":
        return [_bin(BinaryOp.DIV, x, Imm(6.0), s0), _bin(BinaryOp.ADD, s0, Imm(0.5), s0),
                _bin(BinaryOp.MAX, s0, Imm(0.0), s0), _bin(BinaryOp.MIN, s0, Imm(1.0), s0), _bin(BinaryOp.MUL, x, s0)]
    if t == "Softsign":
        return [_un(UnaryOp.ABS, x, s0), _bin(BinaryOp.ADD, s0, Imm(1.0), s0), _bin(BinaryOp.DIV, x, s0)]
    if t == "Softplus":  # max(x, 0) + log(1 + exp(-|x|)): no overflow
        return [_un(UnaryOp.ABS, x, s0), _un(UnaryOp.EXP, s0, s0, scale=-1.0), _bin(BinaryOp.ADD, s0, Imm(1.0), s0),
                _un(UnaryOp.LOG, s0, s0), _bin(BinaryOp.MAX, x, Imm(0.0), s1), _bin(BinaryOp.ADD, s1, s0)]
    if t == "Sigmoid":
        return [_un(UnaryOp.EXP, x, s0, scale=-1.0), _bin(BinaryOp.ADD, s0, Imm(1.0), s0), _un(UnaryOp.RCP, s0)]
    if t == "Gelu" and a("approximate", "none") == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        return [_bin(BinaryOp.MUL, x, x, s0), _bin(BinaryOp.MUL, s0, x, s0), _bin(BinaryOp.MUL, s0, Imm(0.044715), s0),
                _bin(BinaryOp.ADD, s0, x, s0), _un(UnaryOp.TANH, s0, s0, scale=0.7978845608028654),
                _bin(BinaryOp.ADD, s0, Imm(1.0), s0), _bin(BinaryOp.MUL, x, Imm(0.5), s1), _bin(BinaryOp.MUL, s1, s0)]
    if t == "Gelu":
        return [_un(UnaryOp.GELU, x)]
    if t == "Relu":
        return [_bin(BinaryOp.MAX, x, Imm(0.0))]
    return None
