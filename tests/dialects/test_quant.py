"""The quant dialect from Python: !quant.q, helpers, ops, round trips, verifiers."""

from io import StringIO

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import (
    BFloat16Type,
    Builtin,
    FunctionType,
    IntegerType,
    ModuleOp,
    Signedness,
    TensorType,
    f16,
    f32,
    f64,
    i8,
    i32,
)
from xdsl.dialects.func import Func, FuncOp, ReturnOp
from xdsl.ir import Attribute, Block, Region
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from spaq.dialects.quant import (
    ConvOp,
    DequantizeOp,
    GemmOp,
    Granularity,
    Quant,
    QuantizeOp,
    QuantType,
    RequantizeOp,
    quant_type_of,
    with_element_type,
)
from spaq.dialects.sparse import NMAttr, Sparse

si8 = IntegerType(8, Signedness.SIGNED)
ui8 = IntegerType(8, Signedness.UNSIGNED)
si4 = IntegerType(4, Signedness.SIGNED)


def make_ctx() -> Context:
    ctx = Context()
    for d in (Builtin, Func, Sparse, Quant):
        ctx.load_dialect(d)
    return ctx


def parse_attr(text: str) -> Attribute:
    return Parser(make_ctx(), text).parse_attribute()


def print_op(op, generic: bool = False) -> str:
    out = StringIO()
    Printer(stream=out, print_generic_format=generic).print_op(op)
    return out.getvalue()


def func_module(arg_types: list[Attribute], build) -> ModuleOp:
    block = Block(arg_types=arg_types)
    block.add_ops([*build(block), ReturnOp()])
    return ModuleOp([FuncOp("f", FunctionType.from_lists(arg_types, []), Region(block))])


def assert_round_trips(module: ModuleOp) -> None:
    module.verify()
    for generic in (False, True):
        again = Parser(make_ctx(), print_op(module, generic)).parse_module()
        again.verify()
        assert again.is_structurally_equivalent(module)
    assert print_op(Parser(make_ctx(), print_op(module)).parse_module()) == print_op(module)


# --------------------------------------------------------------------------- the type


@pytest.mark.parametrize(
    "qt, text",
    [
        (QuantType(si8), "!quant.q<si8:f32>"),
        (QuantType(8, f32, "per_channel", axis=0), "!quant.q<si8:f32, per_channel axis=0>"),
        (QuantType(si4, f16, Granularity.PER_GROUP, axis=1, group=128),
         "!quant.q<si4:f16, per_group axis=1 group=128>"),
        (QuantType(8, granularity="per_token"), "!quant.q<si8:f32, per_token>"),
        (QuantType(ui8, symmetric=False), "!quant.q<ui8:f32, asymmetric>"),
        (QuantType(1), "!quant.q<si1:f32>"),
        (QuantType(2, BFloat16Type()), "!quant.q<si2:bf16>"),
        (QuantType(IntegerType(4, Signedness.UNSIGNED), f16, "per_group", 0, 32, False),
         "!quant.q<ui4:f16, per_group axis=0 group=32, asymmetric>"),
    ],
)
def test_type_print_parse(qt, text):
    assert str(qt) == text
    assert parse_attr(text) == qt
    tensor = TensorType(qt, [8, 9], NMAttr(2, 4))
    assert str(tensor) == f"tensor<8x9x{text}, #sparse.nm<2:4>>"
    assert parse_attr(str(tensor)) == tensor


def test_defaults_are_not_printed():
    assert str(parse_attr("!quant.q<si8:f32, per_tensor, symmetric>")) == "!quant.q<si8:f32>"
    assert parse_attr("!quant.q<si4:f16, per_group group=8 axis=1>") == QuantType(
        4, f16, "per_group", axis=1, group=8
    )


@pytest.mark.parametrize(
    "qt, bits, signed, qmin, qmax, sym",
    [
        (QuantType(8), 8, True, -128, 127, 127),
        (QuantType(4), 4, True, -8, 7, 7),
        (QuantType(2), 2, True, -2, 1, 1),
        (QuantType(1), 1, True, -1, 1, 1),
        (QuantType(ui8, symmetric=False), 8, False, 0, 255, 255),
        (QuantType(IntegerType(4, Signedness.UNSIGNED)), 4, False, 0, 15, 15),
    ],
)
def test_type_properties(qt, bits, signed, qmin, qmax, sym):
    assert (qt.storage_bits, qt.signed, qt.qmin, qt.qmax, qt.symmetric_qmax) == (
        bits, signed, qmin, qmax, sym,
    )
    assert qt.is_binary == (bits == 1 and signed)


def test_granularity_properties():
    pc = QuantType(8, granularity="per_channel", axis=1)
    assert pc.is_per_channel and not pc.is_per_tensor and pc.axis == 1 and pc.group_size == 0
    pt = QuantType(8)
    assert pt.is_per_tensor and pt.axis == -1 and pt.symmetric
    pg = QuantType(4, granularity="per_group", axis=1, group=4)
    assert pg.is_per_group and pg.group_size == 4
    assert QuantType(8, granularity="per_token").is_per_token
    assert pt.num_params((4, 9)) == 1
    assert pc.num_params((4, 9)) == 9
    assert pg.num_params((3, 10)) == 3 * 3  # ceil(10 / 4) groups per row
    assert QuantType(8, granularity="per_token").num_params((4, 9)) == 0
    assert pc.num_params((-1, 9)) is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: QuantType(IntegerType(8)), "storage must be si or ui"),
        (lambda: QuantType(3), "storage must be si or ui of 1, 2, 4, 8 bits, got si3"),
        (lambda: QuantType(16), "got si16"),
        (lambda: QuantType(8, i32), "expressed type must be f32, f16 or bf16, got i32"),
        (lambda: QuantType(8, f64), "got f64"),
        (lambda: QuantType(8, granularity="per_channel"), "per_channel needs axis >= 0"),
        (lambda: QuantType(8, granularity="per_group", axis=1), "per_group needs group > 0"),
        (lambda: QuantType(8, granularity="per_group", group=4), "per_group needs axis >= 0"),
        (lambda: QuantType(8, axis=0), "axis is only allowed with per_channel or per_group"),
        (lambda: QuantType(8, f32, "per_channel", axis=0, group=2), "group is only allowed"),
        (lambda: QuantType(1, symmetric=False), "binary"),
    ],
)
def test_type_verifier(make, message):
    with pytest.raises(VerifyException, match=message):
        make()


def test_type_verifier_at_parse_time():
    with pytest.raises(VerifyException, match="storage must be si or ui"):
        parse_attr("!quant.q<i8:f32>")


def test_helpers():
    qt = QuantType(8, granularity="per_channel", axis=0)
    t = TensorType(f32, [8, 9], NMAttr(2, 4))
    q = with_element_type(t, qt)
    assert q.get_shape() == (8, 9) and q.encoding == NMAttr(2, 4) and q.element_type == qt
    assert quant_type_of(q) == qt
    assert quant_type_of(t) is None
    assert quant_type_of(qt) is None


# --------------------------------------------------------------------------- ops


def test_quantize_dequantize_requantize_build():
    qc = QuantType(8, granularity="per_channel", axis=0)
    qa = QuantType(ui8, symmetric=False)
    w = TensorType(f32, [2, 9], NMAttr(2, 4))
    ops = {}

    def body(b):
        ops["qw"] = QuantizeOp(b.args[0], with_element_type(w, qc), [0.1, 0.2], axis=0)
        ops["dw"] = DequantizeOp(ops["qw"], [0.1, 0.2], axis=0)
        ops["qa"] = QuantizeOp(b.args[1], TensorType(qa, [4, 9]), [0.5], zero_point=[128])
        ops["rq"] = RequantizeOp(b.args[2], TensorType(qa, [4, 2]), [0.01, 0.02],
                                 zero_point=[3], axis=1)
        ops["dacc"] = DequantizeOp(b.args[2], [0.001])
        return list(ops.values())

    module = func_module([w, TensorType(f32, [4, 9]), TensorType(i32, [4, 2])], body)
    assert ops["dw"].output.type == w  # expressed type, encoding kept
    assert ops["dacc"].output.type == TensorType(f32, [4, 2])
    assert ops["qw"].scale.get_values() == pytest.approx((0.1, 0.2))
    assert ops["qw"].zero_point is None and ops["qw"].axis.value.data == 0
    assert ops["rq"].scale.elt_type == f64
    text = print_op(module)
    assert "quant.quantize %0 {scale = array<f32: 1.000000e-01, 2.000000e-01>, axis = 0 : i64}" in text
    assert "zero_point = array<i32: 128>} : tensor<4x9xf32> -> tensor<4x9x!quant.q<ui8:f32, asymmetric>>" in text
    assert_round_trips(module)


def test_gemm_and_conv_build():
    qx = QuantType(8)
    qw = QuantType(8, granularity="per_channel", axis=0)
    args = [
        TensorType(qx, [4, 9]),
        TensorType(qw, [8, 9], NMAttr(2, 4)),
        TensorType(i32, [8]),
        TensorType(qx, [1, 4, 8, 8]),
        TensorType(qw, [8, 2, 3, 3]),
    ]
    ops = {}

    def body(b):
        ops["gemm"] = GemmOp(b.args[0], b.args[1], b.args[2])
        ops["gemm_nobias"] = GemmOp(b.args[0], b.args[1])
        ops["conv"] = ConvOp(b.args[3], b.args[4], TensorType(i32, [1, 8, 4, 8]), b.args[2],
                             group=2, pads=[1, 1, 1, 1], strides=[2, 1])
        return list(ops.values())

    module = func_module(args, body)
    assert ops["gemm"].output.type == TensorType(i32, [4, 8])
    assert ops["conv"].attribute_values() == ([1, 1], 2, [3, 3], [1, 1, 1, 1], [2, 1])
    text = print_op(module)
    assert "quant.gemm %0, %1, %2 : (tensor<4x9x!quant.q<si8:f32>>, " in text
    assert "quant.conv %3, %4, %2 {group = 2 : i64, pads = array<i64: 1, 1, 1, 1>, strides = array<i64: 2, 1>}" in text
    assert_round_trips(module)


def _verify_fails(args, build, message):
    module = func_module(args, build)
    with pytest.raises(VerifyException, match=message):
        module.verify()


def test_quantize_verifier():
    x = TensorType(f32, [2, 3])
    pc = TensorType(QuantType(8, granularity="per_channel", axis=1), [2, 3])
    _verify_fails([x], lambda b: [QuantizeOp(b.args[0], pc, [1.0, 1.0], axis=1)],
                  r"scale has 2 values, expected 3 \(per_channel: dim 1 of \[2, 3\]\)")
    _verify_fails([x], lambda b: [QuantizeOp(b.args[0], pc, [1.0, 1.0, 1.0])],
                  "needs the axis property")
    _verify_fails([x], lambda b: [QuantizeOp(b.args[0], pc, [1.0] * 3, axis=0)],
                  "axis property 0 differs")
    _verify_fails([x], lambda b: [QuantizeOp(b.args[0], TensorType(QuantType(8, f16), [2, 3]),
                                             [1.0])], "differs from the expressed type")
    _verify_fails([x], lambda b: [QuantizeOp(b.args[0], TensorType(QuantType(8), [2, 3]), [0.0])],
                  "scale values must be positive")
    _verify_fails([x], lambda b: [QuantizeOp(b.args[0], TensorType(QuantType(8), [2, 3]), [1.0],
                                             zero_point=[1])], "needs zero points 0")
    _verify_fails([x], lambda b: [QuantizeOp(b.args[0], TensorType(i8, [2, 3]), [1.0])],
                  "result element type must be !quant.q")
    _verify_fails([x], lambda b: [QuantizeOp(b.args[0], TensorType(QuantType(8), [2, 3],
                                                                  NMAttr(1, 2)), [1.0])],
                  "encodings differ")


def test_dequantize_requantize_verifier():
    acc = TensorType(i32, [4, 2])
    _verify_fails([acc], lambda b: [DequantizeOp(b.args[0], [1.0, 2.0])],
                  r"scale has 2 values, expected 1 \(no axis: per tensor\)")
    _verify_fails([acc], lambda b: [DequantizeOp(b.args[0], [1.0], axis=2)], "out of range")
    _verify_fails([TensorType(i8, [4, 2])], lambda b: [DequantizeOp(b.args[0], [1.0])],
                  "must be !quant.q or i32")
    tok = TensorType(QuantType(8, granularity="per_token"), [4, 2])
    _verify_fails([acc], lambda b: [RequantizeOp(b.args[0], tok, [1.0])],
                  "requantize produces per_tensor or per_channel")
    _verify_fails([TensorType(f32, [4, 2])],
                  lambda b: [RequantizeOp(b.args[0], TensorType(QuantType(8), [4, 2]), [1.0])],
                  "operand element type must be i32")


def test_gemm_conv_verifier():
    qx, qw = QuantType(8), QuantType(8, granularity="per_channel", axis=0)
    x, w = TensorType(qx, [4, 9]), TensorType(qw, [8, 9])
    _verify_fails([x, w], lambda b: [GemmOp(b.args[0], b.args[1], None,
                                            TensorType(i32, [4, 9]))], "does not match")
    _verify_fails([x, TensorType(qw, [8, 10])], lambda b: [GemmOp(b.args[0], b.args[1])],
                  "reduction sizes differ")
    _verify_fails([x, w, TensorType(i32, [9])],
                  lambda b: [GemmOp(b.args[0], b.args[1], b.args[2])], r"bias must have shape \[8\]")
    bad_w = TensorType(QuantType(8, granularity="per_channel", axis=1), [8, 9])
    _verify_fails([x, bad_w], lambda b: [GemmOp(b.args[0], b.args[1])],
                  "weight must be quantized per_tensor or per_channel axis=0")
    cx, cw = TensorType(qx, [1, 4, 8, 8]), TensorType(qw, [8, 4, 3, 3])
    _verify_fails([cx, cw], lambda b: [ConvOp(b.args[0], b.args[1], TensorType(i32, [1, 4, 6, 6]))],
                  "result has 4 channels, the weight has 8 output channels")
    _verify_fails([cx, cw], lambda b: [ConvOp(b.args[0], b.args[1], TensorType(i32, [1, 8, 6, 6]),
                                              group=2)], "with group 2 expects 8")
    _verify_fails([cx, cw], lambda b: [ConvOp(b.args[0], b.args[1], TensorType(i32, [1, 8, 8, 8]))],
                  "the convolution gives 6")
    _verify_fails([TensorType(qx, [4, 8, 8]), cw],
                  lambda b: [ConvOp(b.args[0], b.args[1], TensorType(i32, [1, 8, 6, 6]))],
                  "input must be 4-D")


def test_numpy_values_are_accepted():
    import numpy as np

    x = TensorType(f32, [2, 3])
    qt = QuantType(np.int64(8), granularity="per_channel", axis=np.int64(1), symmetric=False)
    op = QuantizeOp(
        Block(arg_types=[x]).args[0],
        TensorType(qt, [2, 3]),
        np.array([0.1, 0.2, 0.3], np.float32),
        zero_point=np.array([1, 2, 3], np.int32),
        axis=np.int64(1),
    )
    assert op.zero_point.get_values() == (1, 2, 3)
    assert op.scale.get_values() == pytest.approx((0.1, 0.2, 0.3))
