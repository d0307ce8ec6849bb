"""The sparse dialect from Python: encodings, check_pattern, ops, round trips, verifiers."""

from io import StringIO

import numpy as np
import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import (
    Builtin,
    FunctionType,
    ModuleOp,
    NoneAttr,
    TensorType,
    f16,
    f32,
    i32,
)
from xdsl.dialects.func import Func, FuncOp, ReturnOp
from xdsl.ir import Attribute, Block, Region
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from spaq.dialects.quant import Granularity, Quant, QuantType
from spaq.dialects.sparse import (
    BlockAttr,
    MatmulOp,
    MetadataFormat,
    NMAttr,
    PackOp,
    Sparse,
    SparseEncoding,
    UnpackOp,
    UnstructuredAttr,
    check_pattern,
    encoding_of,
    with_encoding,
)


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
    """A module with `func.func @f(args)` whose body is `build(block) -> [ops]`."""
    block = Block(arg_types=arg_types)
    block.add_ops([*build(block), ReturnOp()])
    func = FuncOp("f", FunctionType.from_lists(arg_types, []), Region(block))
    return ModuleOp([func])


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    "n, m, bits", [(1, 2, 1), (2, 4, 2), (1, 4, 2), (3, 5, 3), (2, 8, 3), (15, 16, 4)]
)
def test_nm_properties(n, m, bits):
    enc = NMAttr(n, m)
    assert (enc.n, enc.m) == (n, m)
    assert enc.index_bits == bits
    assert enc.metadata_bits_per_value == bits
    assert isinstance(enc, SparseEncoding)
    assert str(enc) == f"#sparse.nm<{n}:{m}>"


@pytest.mark.parametrize("n, m", [(4, 4), (0, 4), (5, 4), (-1, 4), (2, 32), (16, 17)])
def test_nm_invalid(n, m):
    with pytest.raises(VerifyException, match="expected 0 < N < M <= 16"):
        NMAttr(n, m)


def test_block_and_unstructured():
    assert str(BlockAttr(4, 4)) == "#sparse.block<4x4>"
    assert (BlockAttr(1, 9).rows, BlockAttr(1, 9).cols) == (1, 9)
    for r, c in [(0, 4), (4, 0), (-1, 2)]:
        with pytest.raises(VerifyException, match="block sizes must be > 0"):
            BlockAttr(r, c)
    assert str(UnstructuredAttr()) == "#sparse.unstructured<bitmask>"
    assert str(UnstructuredAttr("csr")) == "#sparse.unstructured<csr>"
    assert UnstructuredAttr(MetadataFormat.CSR).format == MetadataFormat.CSR
    with pytest.raises(ValueError):
        UnstructuredAttr("coo")


@pytest.mark.parametrize(
    "text",
    [
        "#sparse.nm<2:4>",
        "#sparse.nm<1:16>",
        "#sparse.block<4x4>",
        "#sparse.block<1x32>",
        "#sparse.unstructured<bitmask>",
        "#sparse.unstructured<csr>",
        "tensor<32x64xf32, #sparse.nm<2:4>>",
        "tensor<8x1x3x3xf32, #sparse.block<2x9>>",
        "tensor<8x9x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>",
        "tensor<8x9x!quant.q<si4:f32>, #sparse.unstructured<csr>>",
    ],
)
def test_attribute_round_trip(text):
    attr = parse_attr(text)
    assert str(attr) == text
    assert parse_attr(str(attr)) == attr


def test_parse_errors_are_verify_errors():
    with pytest.raises(VerifyException, match=r"#sparse.nm<5:4>: expected 0 < N < M <= 16"):
        parse_attr("#sparse.nm<5:4>")
    with pytest.raises(VerifyException, match="block sizes must be > 0"):
        parse_attr("#sparse.block<0x4>")


def test_encoding_helpers():
    dense = TensorType(f32, [8, 9])
    enc = NMAttr(2, 4)
    sparse = with_encoding(dense, enc)
    assert sparse.encoding == enc and sparse.get_shape() == (8, 9) and sparse.element_type == f32
    assert encoding_of(sparse) == enc
    assert encoding_of(dense) is None
    assert encoding_of(f32) is None
    assert encoding_of(TensorType(f32, [2], BlockAttr(1, 1))) == BlockAttr(1, 1)
    assert with_encoding(sparse, None) == dense
    assert isinstance(with_encoding(sparse, None).encoding, NoneAttr)


# --------------------------------------------------------------------------- check_pattern


def test_check_pattern_nm_ok():
    w = np.zeros((4, 8), np.float32)
    w[:, 0] = 1
    w[:, 3] = -2
    w[:, 5] = 3
    assert check_pattern(w, NMAttr(2, 4)) is None
    assert check_pattern(np.zeros((3, 5)), NMAttr(1, 4)) is None


def test_check_pattern_nm_violation_message():
    w = np.zeros((5, 12), np.float32)
    w[3, 8:11] = 1.0  # row 3, group 2: three non-zeros
    w[4, 0:4] = 1.0  # later row: not the first violation
    assert check_pattern(w, NMAttr(2, 4)) == (
        "row 3, group 2 (columns 8..11) has 3 non-zeros, 2:4 allows 2"
    )


def test_check_pattern_short_last_group_and_nd_weight():
    w = np.zeros((2, 9), np.float32)
    w[1, 8] = 1  # last group has one column
    assert check_pattern(w, NMAttr(1, 4)) is None
    w[1, 5] = w[1, 7] = 1
    assert check_pattern(w, NMAttr(1, 4)) == (
        "row 1, group 1 (columns 4..7) has 2 non-zeros, 1:4 allows 1"
    )
    conv = np.ones((2, 1, 3, 3), np.float32)  # viewed as [2, 9]; the short group has 1 value
    msg = check_pattern(conv, NMAttr(2, 4))
    assert msg == "row 0, group 0 (columns 0..3) has 4 non-zeros, 2:4 allows 2"
    conv = np.zeros((2, 1, 3, 3), np.float32)
    conv[0, 0, 2, 2] = 5  # column 8 alone in group 2
    assert check_pattern(conv, NMAttr(1, 4)) is None


def test_check_pattern_other_encodings():
    w = np.random.default_rng(0).normal(size=(8, 8))
    assert check_pattern(w, BlockAttr(4, 4)) is None
    assert check_pattern(w, UnstructuredAttr("csr")) is None
    with pytest.raises(TypeError):
        check_pattern(w, f32)


# --------------------------------------------------------------------------- ops


def test_pack_unpack_build_and_round_trip():
    dense = TensorType(f32, [8, 9])
    ops = {}

    def body(block):
        ops["pack"] = PackOp(block.args[0], NMAttr(2, 4))
        ops["unpack"] = UnpackOp(ops["pack"])
        return [ops["pack"], ops["unpack"]]

    module = func_module([dense], body)
    module.verify()
    assert ops["pack"].output.type == TensorType(f32, [8, 9], NMAttr(2, 4))
    assert ops["unpack"].output.type == dense
    text = print_op(module)
    assert "sparse.pack %0 : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.nm<2:4>>" in text
    assert "sparse.unpack %1 : tensor<8x9xf32, #sparse.nm<2:4>> -> tensor<8x9xf32>" in text
    for generic in (False, True):
        again = Parser(make_ctx(), print_op(module, generic)).parse_module()
        again.verify()
        assert again.is_structurally_equivalent(module)


def test_pack_verifier():
    def check(operand: TensorType, result: TensorType, message: str):
        module = func_module(
            [operand], lambda b: [PackOp.create(operands=[b.args[0]], result_types=[result])]
        )
        with pytest.raises(VerifyException, match=message):
            module.verify()

    dense = TensorType(f32, [8, 9])
    nm = NMAttr(2, 4)
    check(dense, dense, "result must have a sparse encoding")
    check(TensorType(f32, [8, 9], nm), TensorType(f32, [8, 9], nm), "operand must not have")
    check(dense, TensorType(f32, [9, 8], nm), r"shapes differ: operand \[8, 9\], result \[9, 8\]")
    check(dense, TensorType(f16, [8, 9], nm), "element types differ: operand f32, result f16")


def test_matmul_float_and_quantized():
    enc = NMAttr(2, 4)
    qx = QuantType(8)
    qw = QuantType(4, granularity=Granularity.PER_CHANNEL, axis=0)
    args = [
        TensorType(f32, [4, 9]),
        TensorType(f32, [8, 9], enc),
        TensorType(f32, [8]),
        TensorType(qx, [4, 9]),
        TensorType(qw, [8, 9], enc),
        TensorType(i32, [8]),
    ]

    def body(b):
        return [
            MatmulOp(b.args[0], b.args[1], TensorType(f32, [4, 8]), b.args[2]),
            MatmulOp(b.args[0], b.args[1], TensorType(f32, [4, 8])),
            MatmulOp(b.args[3], b.args[4], TensorType(i32, [4, 8]), b.args[5]),
        ]

    module = func_module(args, body)
    module.verify()
    text = print_op(module)
    assert "sparse.matmul %0, %1, %2 : (tensor<4x9xf32>," in text
    assert "sparse.matmul %0, %1 : (tensor<4x9xf32>," in text
    for generic in (False, True):
        again = Parser(make_ctx(), print_op(module, generic)).parse_module()
        assert again.is_structurally_equivalent(module)


@pytest.mark.parametrize(
    "x, w, y, message",
    [
        ((f32, [4, 9]), (f32, [8, 9], None), (f32, [4, 8]), "weight must have a sparse encoding"),
        ((f32, [4, 10]), (f32, [8, 9], "nm"), (f32, [4, 8]), "reduction sizes differ"),
        ((f32, [4, 9]), (f32, [8, 9], "nm"), (f32, [8, 4]), "does not match"),
        ((f32, [4, 9]), (f32, [8, 9], "nm"), (f16, [4, 8]), "float matmul needs equal"),
        ((f32, [9]), (f32, [8, 9], "nm"), (f32, [8]), "expected rank-2"),
        (("q8", [4, 9]), (f32, [8, 9], "nm"), (f32, [4, 8]), "both float or both"),
        (("q8", [4, 9]), ("q8", [8, 9], "nm"), (f32, [4, 8]), "must be i32"),
    ],
)
def test_matmul_verifier(x, w, y, message):
    def tensor(spec):
        elem, shape, *enc = spec
        elem = QuantType(8) if elem == "q8" else elem
        encoding = NMAttr(2, 4) if enc and enc[0] == "nm" else NoneAttr()
        return TensorType(elem, shape, encoding)

    module = func_module(
        [tensor(x), tensor(w)],
        lambda b: [MatmulOp(b.args[0], b.args[1], tensor(y))],
    )
    with pytest.raises(VerifyException, match=message):
        module.verify()
