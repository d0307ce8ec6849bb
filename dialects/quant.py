"""The `quant` dialect: quantized element types and integer compute.

Modelled on MLIR's `quant` dialect (mlir.llvm.org/docs/Dialects/QuantDialect), with one
deliberate difference: MLIR puts the numbers in the type (`!quant.uniform<i8:f32, 2.0:10>`,
per axis `!quant.uniform<i8:f32:0, {2.0, 3.0}>`), which makes types huge for per-channel
layers. Here **the type is the schema and the numbers are op properties**:

```mlir
%q = quant.quantize %x {scale = array<f32: 0.05>} : tensor<4x9xf32> -> tensor<4x9x!quant.q<si8:f32>>
%acc = quant.gemm %q, %w, %b : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=0>>, tensor<8xi32>) -> tensor<4x8xi32>
%y = quant.requantize %acc {scale = array<f64: 0.01, 0.02, 0.01, 0.03, 0.01, 0.02, 0.01, 0.01>, axis = 1 : i64} : tensor<4x8xi32> -> tensor<4x8x!quant.q<si8:f32>>
```

Quantization is affine: real = scale · (q − zero_point). `!quant.q` works as the element type
of any tensor, also together with a sparse encoding:
`tensor<8x9x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>`.

Integer GEMM and conv factor the scales out of the sum, Y[m, n] = sx[m] · sw[n] · Σk qx·qw,
so their quantized operands are per tensor or per token (X) and per tensor or per output
channel (W, axis 0); per-group operands must be dequantized first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum
from numbers import Integral

from xdsl.dialects.builtin import (
    I64,
    BFloat16Type,
    DenseArrayBase,
    Float16Type,
    Float32Type,
    Float64Type,
    IntAttr,
    IntegerAttr,
    IntegerType,
    NoneAttr,
    Signedness,
    TensorType,
    f32,
    f64,
    i32,
    i64,
)
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue, TypeAttribute
from xdsl.irdl import (
    IRDLOperation,
    ParsePropInAttrDict,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

STORAGE_WIDTHS = (1, 2, 4, 8)
EXPRESSED_TYPES = (Float32Type, Float16Type, BFloat16Type)

# --------------------------------------------------------------------------- the type


class Granularity(StrEnum):
    """Which values share one scale / zero point."""

    PER_TENSOR = "per_tensor"  # one for the whole tensor
    PER_CHANNEL = "per_channel"  # one per index of `axis`
    PER_GROUP = "per_group"  # one per `group` consecutive elements along `axis`
    PER_TOKEN = "per_token"  # one per row, computed at run time (dynamic)


@irdl_attr_definition
class GranularityAttr(EnumAttribute[Granularity]):
    """The granularity of `!quant.q` (only ever printed inside it)."""

    name = "quant.granularity"


@irdl_attr_definition
class QuantType(ParametrizedAttribute, TypeAttribute):
    """A quantized element type: storage integer, expressed float type and granularity.

    ```mlir
    !quant.q<si8:f32>                          // per tensor, symmetric
    !quant.q<si8:f32, per_channel axis=0>      // one scale per index of dim 0
    !quant.q<si4:f16, per_group axis=1 group=128>
    !quant.q<si8:f32, per_token>               // dynamic: one scale per row at run time
    !quant.q<ui8:f32, asymmetric>              // with a zero point
    !quant.q<si1:f32>                          // binary: values ±1
    !quant.q<si2:f32, ternary>                 // ternary: values -1, 0, +1 only
    !quant.q<si8:f32, per_channel axis=0, codebook=16>  // at most 16 distinct values
    ```

    Storage is `si`/`ui` of 1, 2, 4 or 8 bits; the expressed type is f32, f16 or bf16.
    `qmin`/`qmax` are the storage range (two's complement for `si`: si8 → [-128, 127]).
    Symmetric quantization *chooses* its scale for ±`symmetric_qmax` (si8: ±127) and has
    zero point 0; asymmetric quantization uses the full range with a zero point.
    `si1` is binary: the bit holds the sign, values are −1 and +1 (qmin = −1, qmax = 1).

    Two *value sets* narrow what the storage may hold, promises the hardware stores more
    compactly (docs/isa.md, "Weight formats"), like a sparse encoding promises zeros:
    `ternary` (si2 holding only −1, 0, +1: qmin = −1) and `codebook=K` (at most K distinct
    stored values, K in 2, 4, 16, 256 and at most 2^bits: stored as ⌈log2 K⌉-bit indices into
    a table of K storage values).
    """

    name = "quant.q"

    storage_type: Attribute  # IntegerType, checked in verify() for a readable message
    expressed_type: Attribute
    granularity_attr: GranularityAttr
    axis_attr: IntAttr  # -1 when not per_channel / per_group
    group_attr: IntAttr  # 0 when not per_group
    symmetric_attr: IntAttr  # 1 symmetric, 0 asymmetric
    ternary_attr: IntAttr  # 1: values -1, 0, +1 only
    codebook_attr: IntAttr  # K > 0: at most K distinct values (a K-entry table); 0: none

    def __init__(
        self,
        storage_type: IntegerType | int,
        expressed_type: Attribute = f32,
        granularity: Granularity | str = Granularity.PER_TENSOR,
        axis: int | None = None,
        group: int | None = None,
        symmetric: bool = True,
        ternary: bool = False,
        codebook: int = 0,
    ):
        if isinstance(storage_type, Integral):
            storage_type = IntegerType(int(storage_type), Signedness.SIGNED)
        super().__init__(
            storage_type,
            expressed_type,
            GranularityAttr(Granularity(granularity)),
            IntAttr(-1 if axis is None else int(axis)),
            IntAttr(0 if group is None else int(group)),
            IntAttr(int(symmetric)),
            IntAttr(int(ternary)),
            IntAttr(int(codebook)),
        )

    # -- accessors
    @property
    def storage(self) -> IntegerType:
        assert isinstance(self.storage_type, IntegerType)
        return self.storage_type

    @property
    def storage_bits(self) -> int:
        return self.storage.width.data

    @property
    def signed(self) -> bool:
        return self.storage.signedness.data == Signedness.SIGNED

    @property
    def is_binary(self) -> bool:
        return self.signed and self.storage_bits == 1

    @property
    def is_ternary(self) -> bool:
        return bool(self.ternary_attr.data)

    @property
    def codebook(self) -> int:
        """Table entries of a codebook type (at most that many distinct values), 0 otherwise."""
        return self.codebook_attr.data

    @property
    def qmin(self) -> int:
        b = self.storage_bits
        if self.is_ternary:
            return -1
        return -(1 << (b - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        b = self.storage_bits
        if self.is_binary:
            return 1
        return (1 << (b - 1)) - 1 if self.signed else (1 << b) - 1

    @property
    def symmetric_qmax(self) -> int:
        """The magnitude a symmetric scale maps max|x| to: 2^(b-1)-1 (si8: 127), si1: 1,
        unsigned: 2^b-1."""
        if not self.signed:
            return self.qmax
        return max(1, (1 << (self.storage_bits - 1)) - 1)

    @property
    def granularity(self) -> Granularity:
        return self.granularity_attr.data

    @property
    def axis(self) -> int:
        """The quantized axis, -1 when the granularity has none."""
        return self.axis_attr.data

    @property
    def group_size(self) -> int:
        """Elements per group along `axis` (per_group), 0 otherwise."""
        return self.group_attr.data

    @property
    def symmetric(self) -> bool:
        return bool(self.symmetric_attr.data)

    @property
    def is_per_tensor(self) -> bool:
        return self.granularity == Granularity.PER_TENSOR

    @property
    def is_per_channel(self) -> bool:
        return self.granularity == Granularity.PER_CHANNEL

    @property
    def is_per_group(self) -> bool:
        return self.granularity == Granularity.PER_GROUP

    @property
    def is_per_token(self) -> bool:
        return self.granularity == Granularity.PER_TOKEN

    def num_params(self, shape: Sequence[int]) -> int | None:
        """How many scales (and zero points) a tensor of `shape` needs; None if a dynamic
        dimension decides. per_group: ⌈shape[axis]/group⌉ · (product of the other dims),
        laid out row-major as `shape` with dim `axis` replaced by its group count. per_token:
        0 (computed at run time)."""
        g = self.granularity
        if g == Granularity.PER_TENSOR:
            return 1
        if g == Granularity.PER_TOKEN:
            return 0
        if any(d < 0 for d in shape):
            return None
        if g == Granularity.PER_CHANNEL:
            return shape[self.axis]
        groups = -(-shape[self.axis] // self.group_size)
        return groups * math.prod(d for i, d in enumerate(shape) if i != self.axis)

    def verify(self) -> None:
        st = self.storage_type
        if (
            not isinstance(st, IntegerType)
            or st.signedness.data == Signedness.SIGNLESS
            or st.width.data not in STORAGE_WIDTHS
        ):
            raise VerifyException(
                f"!quant.q storage must be si or ui of {', '.join(map(str, STORAGE_WIDTHS))} "
                f"bits, got {st}"
            )
        if not isinstance(self.expressed_type, EXPRESSED_TYPES):
            raise VerifyException(
                f"!quant.q expressed type must be f32, f16 or bf16, got {self.expressed_type}"
            )
        g, axis, group = self.granularity, self.axis, self.group_size
        if g in (Granularity.PER_CHANNEL, Granularity.PER_GROUP):
            if axis < 0:
                raise VerifyException(f"!quant.q {g} needs axis >= 0, got {axis}")
        elif axis != -1:
            raise VerifyException(f"!quant.q axis is only allowed with per_channel or per_group")
        if g == Granularity.PER_GROUP:
            if group <= 0:
                raise VerifyException(f"!quant.q per_group needs group > 0, got {group}")
        elif group != 0:
            raise VerifyException("!quant.q group is only allowed with per_group")
        if self.is_binary and not self.symmetric:
            raise VerifyException("!quant.q<si1> is binary (±1) and cannot be asymmetric")
        if self.is_ternary and (not self.signed or self.storage_bits != 2 or not self.symmetric):
            raise VerifyException(f"!quant.q ternary needs symmetric si2 storage, got {st}")
        k = self.codebook
        if k and (k not in (2, 4, 16, 256) or k > 1 << self.storage_bits):
            raise VerifyException(
                f"!quant.q codebook={k}: the table size must be 2, 4, 16 or 256 and at most "
                f"2^{self.storage_bits}"
            )
        if k and self.is_ternary:
            raise VerifyException("!quant.q cannot be both ternary and a codebook")

    # -- syntax: <storage:expressed (, granularity (axis=A)? (group=G)?)? (, asymmetric)?>
    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        granularity, axis, group, symmetric = Granularity.PER_TENSOR, -1, 0, True
        ternary, codebook = False, 0
        with parser.in_angle_brackets():
            storage = parser.parse_type()
            parser.parse_punctuation(":", " between storage and expressed type")
            expressed = parser.parse_type()
            while parser.parse_optional_punctuation(",") is not None:
                if (kw := parser.parse_optional_keyword_in(("symmetric", "asymmetric"))):
                    symmetric = kw == "symmetric"
                    continue
                if parser.parse_optional_keyword("ternary") is not None:
                    ternary = True
                    continue
                if parser.parse_optional_keyword("codebook") is not None:
                    parser.parse_punctuation("=", " after 'codebook'")
                    codebook = parser.parse_integer(allow_boolean=False, context_msg=" (codebook entries)")
                    continue
                granularity = parser.parse_str_enum(Granularity)
                while (key := parser.parse_optional_keyword_in(("axis", "group"))) is not None:
                    parser.parse_punctuation("=", f" after '{key}'")
                    value = parser.parse_integer(allow_boolean=False)
                    if key == "axis":
                        axis = value
                    else:
                        group = value
        return (
            storage,
            expressed,
            GranularityAttr(granularity),
            IntAttr(axis),
            IntAttr(group),
            IntAttr(int(symmetric)),
            IntAttr(int(ternary)),
            IntAttr(codebook),
        )

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string("<")
        printer.print_attribute(self.storage_type)
        printer.print_string(":")
        printer.print_attribute(self.expressed_type)
        if not self.is_per_tensor:
            printer.print_string(f", {self.granularity.value}")
            if self.axis >= 0:
                printer.print_string(f" axis={self.axis}")
            if self.group_size:
                printer.print_string(f" group={self.group_size}")
        if not self.symmetric:
            printer.print_string(", asymmetric")
        if self.is_ternary:
            printer.print_string(", ternary")
        if self.codebook:
            printer.print_string(f", codebook={self.codebook}")
        printer.print_string(">")


def quant_type_of(t: Attribute) -> QuantType | None:
    """The `!quant.q` element type of a tensor type, or None."""
    if isinstance(t, TensorType) and isinstance(t.element_type, QuantType):
        return t.element_type
    return None


def with_element_type(t: TensorType, element_type: Attribute) -> TensorType:
    """`t` with another element type, keeping shape and encoding."""
    return TensorType(element_type, t.shape, t.encoding)


# --------------------------------------------------------------------------- verifier helpers
# (shared with the sparse dialect)


def fmt_shape(t: TensorType) -> str:
    return "[" + ", ".join("?" if d < 0 else str(d) for d in t.get_shape()) + "]"


def dims_match(a: int, b: int) -> bool:
    """Equal, or either dynamic."""
    return a == b or a < 0 or b < 0


def is_float(t: Attribute) -> bool:
    return isinstance(t, (Float16Type, BFloat16Type, Float32Type, Float64Type))


def check_accumulator(acc: Attribute, *operands: QuantType) -> None:
    """The result element type of integer compute: i32 for operands of at most 8 bits."""
    if not isinstance(acc, IntegerType) or acc.signedness.data != Signedness.SIGNLESS:
        raise VerifyException(f"accumulator (result element type) must be i32, got {acc}")
    if max(q.storage_bits for q in operands) <= 8 and acc != i32:
        raise VerifyException(
            f"accumulator must be i32 for operands of at most 8 bits, got {acc}"
        )


def check_bias(bias: Attribute, n: int, acc: Attribute) -> None:
    """A bias is [N] with the result's element type (i32 for integer compute)."""
    assert isinstance(bias, TensorType)
    if bias.get_num_dims() != 1 or not dims_match(bias.get_shape()[0], n):
        raise VerifyException(f"bias must have shape [{n}], got {fmt_shape(bias)}")
    if bias.element_type != acc:
        raise VerifyException(f"bias element type must be {acc}, got {bias.element_type}")


def check_integer_operands(x: QuantType, w: QuantType, conv: bool = False) -> None:
    """Scales must factor out of the integer sum: X per tensor (or per token for a GEMM),
    W per tensor or per output channel (axis 0)."""
    allowed = (Granularity.PER_TENSOR,) + (() if conv else (Granularity.PER_TOKEN,))
    if x.granularity not in allowed:
        raise VerifyException(
            f"input must be quantized {' or '.join(allowed)} for integer compute, got {x}"
        )
    if not (w.is_per_tensor or (w.is_per_channel and w.axis == 0)):
        raise VerifyException(
            f"weight must be quantized per_tensor or per_channel axis=0 for integer compute, "
            f"got {w}"
        )


def _tensor_quant(t: TensorType, what: str) -> QuantType:
    if not isinstance(q := t.element_type, QuantType):
        raise VerifyException(f"{what} element type must be !quant.q, got {t.element_type}")
    if q.axis >= t.get_num_dims():
        raise VerifyException(
            f"{what} {q} quantizes axis {q.axis} of a rank-{t.get_num_dims()} tensor"
        )
    return q


def _check_same_tensor(a: TensorType, b: TensorType) -> None:
    if a.get_shape() != b.get_shape():
        raise VerifyException(f"shapes differ: operand {fmt_shape(a)}, result {fmt_shape(b)}")
    if a.encoding != b.encoding:
        raise VerifyException(
            f"encodings differ: operand {_enc(a)}, result {_enc(b)}"
        )


def _enc(t: TensorType) -> str:
    return "none" if isinstance(t.encoding, NoneAttr) else str(t.encoding)


def _values(arr: DenseArrayBase | None) -> tuple:
    return () if arr is None else arr.get_values()


def _check_count(name: str, values: tuple, expected: int | None, why: str) -> None:
    if expected is not None and len(values) != expected:
        plural = "" if len(values) == 1 else "s"
        raise VerifyException(
            f"{name} has {len(values)} value{plural}, expected {expected} ({why})"
        )


def _check_scale(scale: tuple) -> None:
    bad = [s for s in scale if not (math.isfinite(s) and s > 0)]
    if bad:
        raise VerifyException(f"scale values must be positive and finite, got {bad[0]}")


def _check_params(
    q: QuantType, t: TensorType, scale: tuple, zp: DenseArrayBase | None, axis: IntegerAttr | None
) -> None:
    """scale / zero_point / axis properties against the !quant.q type of tensor `t`."""
    if q.is_per_channel or q.is_per_group:
        if axis is None:
            raise VerifyException(f"{q.granularity} quantization needs the axis property")
        if axis.value.data != q.axis:
            raise VerifyException(f"axis property {axis.value.data} differs from the type's {q}")
    elif axis is not None:
        raise VerifyException(f"{q.granularity} quantization takes no axis property")
    n = q.num_params(t.get_shape())
    why = {
        Granularity.PER_TENSOR: "per_tensor",
        Granularity.PER_CHANNEL: f"per_channel: dim {q.axis} of {fmt_shape(t)}",
        Granularity.PER_GROUP: f"per_group: groups of {q.group_size} along dim {q.axis} of "
        f"{fmt_shape(t)}",
        Granularity.PER_TOKEN: "per_token scales are computed at run time",
    }[q.granularity]
    _check_count("scale", scale, n, why)
    _check_scale(scale)
    _check_zero_point(q, zp, n, why)


def _check_zero_point(q: QuantType, zp: DenseArrayBase | None, n: int | None, why: str) -> None:
    zps = _values(zp)
    if zp is not None:
        _check_count("zero_point", zps, n, why)
    if bad := [z for z in zps if not q.qmin <= z <= q.qmax]:
        raise VerifyException(f"zero_point {bad[0]} is outside [{q.qmin}, {q.qmax}] of {q}")
    if q.symmetric and any(zps):
        raise VerifyException(f"symmetric {q} needs zero points 0 (or none)")


def _check_axis_params(
    t: TensorType, scale: tuple, zp: DenseArrayBase | None, axis: IntegerAttr | None
) -> None:
    """scale / zero_point of an untyped (integer accumulator) tensor: per tensor, or per
    index of the `axis` property."""
    if axis is None:
        n, why = 1, "no axis: per tensor"
    else:
        a, rank = axis.value.data, t.get_num_dims()
        if not 0 <= a < rank:
            raise VerifyException(f"axis {a} is out of range for rank {rank}")
        d = t.get_shape()[a]
        n, why = (None if d < 0 else d), f"one per index of dim {a} of {fmt_shape(t)}"
    _check_count("scale", scale, n, why)
    _check_scale(scale)
    if zp is not None:
        _check_count("zero_point", _values(zp), n, why)


def _f32_array(values: Sequence[float]) -> DenseArrayBase:
    return DenseArrayBase.from_list(f32, [float(v) for v in values])


def _int_array(t: IntegerType, values: Sequence[int]) -> DenseArrayBase:
    return DenseArrayBase.from_list(t, [int(v) for v in values])


def _props(scale: DenseArrayBase, zero_point: Sequence[int] | None, axis: int | None) -> dict:
    return {
        "scale": scale,
        "zero_point": None if zero_point is None else _int_array(i32, zero_point),
        "axis": None if axis is None else IntegerAttr(int(axis), i64),
    }


# --------------------------------------------------------------------------- ops

class _ScaledOp(IRDLOperation):
    """Shared shape of quantize / dequantize / requantize: one tensor in, one out, a scale
    (declared by each op), an optional zero point and axis."""

    input = operand_def(TensorType)
    output = result_def(TensorType)
    zero_point = opt_prop_def(DenseArrayBase.constr(i32))
    axis = opt_prop_def(IntegerAttr[I64])
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"


@irdl_op_definition
class QuantizeOp(_ScaledOp):
    """Float tensor → quantized tensor (same shape and encoding):
    q = clamp(round(x / scale) + zero_point, qmin, qmax).

    `scale` (f32) and `zero_point` (i32, absent = 0) hold one value per tensor, per index of
    `axis` (per_channel), per group (per_group) or none (per_token: computed at run time).

    ```mlir
    %q = quant.quantize %x {scale = array<f32: 0.05>} : tensor<4x9xf32> -> tensor<4x9x!quant.q<si8:f32>>
    %w = quant.quantize %v {axis = 0 : i64, scale = array<f32: 0.1, 0.2>} : tensor<2x9xf32> -> tensor<2x9x!quant.q<si8:f32, per_channel axis=0>>
    %a = quant.quantize %x {scale = array<f32: 0.05>, zero_point = array<i32: -3>} : tensor<4x9xf32> -> tensor<4x9x!quant.q<si8:f32, asymmetric>>
    %t = quant.quantize %x {scale = array<f32>} : tensor<4x9xf32> -> tensor<4x9x!quant.q<si8:f32, per_token>>
    ```
    """

    name = "quant.quantize"
    scale = prop_def(DenseArrayBase.constr(f32))

    def __init__(self, input: SSAValue | IRDLOperation, result_type: TensorType,
                 scale: Sequence[float], zero_point: Sequence[int] | None = None,
                 axis: int | None = None):
        super().__init__(operands=[input], result_types=[result_type],
                         properties=_props(_f32_array(scale), zero_point, axis))

    def verify_(self) -> None:
        x, y = self.input.type, self.output.type
        q = _tensor_quant(y, "result")
        if x.element_type != q.expressed_type:
            raise VerifyException(
                f"operand element type {x.element_type} differs from the expressed type of {q}"
            )
        _check_same_tensor(x, y)
        _check_params(q, y, _values(self.scale), self.zero_point, self.axis)


@irdl_op_definition
class DequantizeOp(_ScaledOp):
    """Quantized tensor or integer accumulator → float tensor (same shape and encoding):
    x = (q − zero_point) · scale.

    For a `!quant.q` operand the result is its expressed type and the properties follow its
    granularity. For an `i32` accumulator the scale is per tensor, or per index of `axis`
    (e.g. input scale × per-channel weight scales); a per-token accumulator also takes the
    run-time row scales of `quant.quantize_dynamic` as a second operand (shape [..., 1]),
    multiplied in after the static scale.

    ```mlir
    %x = quant.dequantize %q {scale = array<f32: 0.05>} : tensor<4x9x!quant.q<si8:f32>> -> tensor<4x9xf32>
    %y = quant.dequantize %acc {axis = 1 : i64, scale = array<f32: 0.001, 0.002>} : tensor<4x2xi32> -> tensor<4x2xf32>
    %z = quant.dequantize %acc, %rows {axis = 1 : i64, scale = array<f32: 0.001, 0.002>} : tensor<4x2xi32>, tensor<4x1xf32> -> tensor<4x2xf32>
    ```
    """

    name = "quant.dequantize"
    scale = prop_def(DenseArrayBase.constr(f32))
    input = operand_def(TensorType)  # restated so that it stays operand 0, before token_scale
    token_scale = opt_operand_def(TensorType)
    assembly_format = (
        "$input (`,` $token_scale^)? attr-dict `:` type($input) (`,` type($token_scale)^)? `->` type($output)"
    )

    def __init__(self, input: SSAValue | IRDLOperation, scale: Sequence[float],
                 zero_point: Sequence[int] | None = None, axis: int | None = None,
                 result_type: TensorType | None = None, token_scale: SSAValue | None = None):
        value = SSAValue.get(input)
        if result_type is None:
            assert isinstance(t := value.type, TensorType)
            q = quant_type_of(t)
            result_type = with_element_type(t, q.expressed_type if q else f32)
        super().__init__(operands=[value, token_scale], result_types=[result_type],
                         properties=_props(_f32_array(scale), zero_point, axis))

    def verify_(self) -> None:
        x, y = self.input.type, self.output.type
        _check_same_tensor(x, y)
        if not is_float(y.element_type):
            raise VerifyException(f"result element type must be float, got {y.element_type}")
        scale = _values(self.scale)
        if isinstance(x.element_type, QuantType):
            q = _tensor_quant(x, "operand")
            if y.element_type != q.expressed_type:
                raise VerifyException(
                    f"result element type {y.element_type} differs from the expressed type of {q}"
                )
            if self.token_scale is not None:
                raise VerifyException("run-time token scales dequantize an i32 accumulator only")
            _check_params(q, x, scale, self.zero_point, self.axis)
        elif x.element_type == i32:
            _check_axis_params(x, scale, self.zero_point, self.axis)
            if self.token_scale is not None:
                _check_token_scales(x, self.token_scale.type, "token scale operand")
        else:
            raise VerifyException(
                f"operand element type must be !quant.q or i32, got {x.element_type}"
            )


def _check_token_scales(x: TensorType, s: Attribute, what: str) -> None:
    """Per-token scales of x: f32 of x's shape with the last dimension 1."""
    want = [*x.get_shape()[:-1], 1]
    if not isinstance(s, TensorType) or s.element_type != f32 or list(s.get_shape()) != want:
        raise VerifyException(f"{what} must be tensor<{'x'.join(map(str, want))}xf32>, got {s}")


@irdl_op_definition
class QuantizeDynamicOp(IRDLOperation):
    """Per-token dynamic quantization: every row (all axes but the last) gets its own scale,
    computed at run time as max|x_row| / qmax (1 for an all-zero row); returns the quantized
    tensor and the scales (shape [..., 1]). The numerics are Sparrow's vector unit's
    (backends/sparrow/vector.py `dynamic_quantize`).

    ```mlir
    %q, %s = quant.quantize_dynamic %x : tensor<128x384xf32> -> tensor<128x384x!quant.q<si8:f32, per_token>>, tensor<128x1xf32>
    ```
    """

    name = "quant.quantize_dynamic"
    input = operand_def(TensorType)
    output = result_def(TensorType)
    scales = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output) `,` type($scales)"

    def __init__(self, input: SSAValue, storage_bits: int = 8):
        x = input.type
        assert isinstance(x, TensorType)
        q = QuantType(storage_bits, x.element_type, Granularity.PER_TOKEN)
        scales = TensorType(f32, [*x.get_shape()[:-1], 1])
        super().__init__(operands=[input], result_types=[with_element_type(x, q), scales])

    def verify_(self) -> None:
        x, y = self.input.type, self.output.type
        q = _tensor_quant(y, "result")
        if not q.is_per_token or not q.symmetric:
            raise VerifyException(f"result must be symmetric per_token, got {q}")
        if x.element_type != q.expressed_type:
            raise VerifyException(f"operand element type {x.element_type} differs from the expressed type of {q}")
        _check_same_tensor(x, y)
        _check_token_scales(x, self.scales.type, "scales result")


@irdl_op_definition
class RequantizeOp(_ScaledOp):
    """Integer accumulator → quantized tensor (same shape):
    q = clamp(round(acc · scale) + zero_point, qmin, qmax).

    `scale` (f64) is the real multiplier input scale × weight scale / output scale, per
    tensor or per index of `axis`; the hardware's fixed-point multiplier and shift are
    derived from it by `core.fixed_point_multiplier`. `zero_point` is the output's.

    ```mlir
    %q = quant.requantize %acc {scale = array<f64: 0.0123>} : tensor<4x8xi32> -> tensor<4x8x!quant.q<si8:f32>>
    %r = quant.requantize %acc {axis = 1 : i64, scale = array<f64: 0.01, 0.02>, zero_point = array<i32: 5>} : tensor<4x2xi32> -> tensor<4x2x!quant.q<ui8:f32, asymmetric>>
    ```
    """

    name = "quant.requantize"
    scale = prop_def(DenseArrayBase.constr(f64))

    def __init__(self, input: SSAValue | IRDLOperation, result_type: TensorType,
                 scale: Sequence[float], zero_point: Sequence[int] | None = None,
                 axis: int | None = None):
        super().__init__(
            operands=[input], result_types=[result_type],
            properties=_props(
                DenseArrayBase.from_list(f64, [float(v) for v in scale]), zero_point, axis
            ),
        )

    def verify_(self) -> None:
        x, y = self.input.type, self.output.type
        if x.element_type != i32:
            raise VerifyException(f"operand element type must be i32, got {x.element_type}")
        q = _tensor_quant(y, "result")
        if not (q.is_per_tensor or q.is_per_channel):
            raise VerifyException(f"requantize produces per_tensor or per_channel results, got {q}")
        _check_same_tensor(x, y)
        _check_axis_params(x, _values(self.scale), None, self.axis)
        why = "per_tensor" if q.is_per_tensor else f"per_channel: dim {q.axis} of {fmt_shape(y)}"
        _check_zero_point(q, self.zero_point, q.num_params(y.get_shape()), why)


def _check_weight_encoding(w: TensorType) -> None:
    from spaq.dialects.sparse import SparseEncoding

    if not isinstance(w.encoding, NoneAttr | SparseEncoding):
        raise VerifyException(f"weight encoding must be a sparse encoding, got {w.encoding}")


def _check_dense(*tensors: tuple[TensorType, str]) -> None:
    for t, what in tensors:
        if not isinstance(t.encoding, NoneAttr):
            raise VerifyException(f"{what} must not have an encoding, got {t.encoding}")


_COMPUTE_FORMAT = "$x `,` $w (`,` $bias^)? attr-dict `:` functional-type(operands, results)"


@irdl_op_definition
class GemmOp(IRDLOperation):
    """Integer GEMM Y[M, N] = X[M, K] · W[N, K]ᵀ (+ bias[N]) on the stored integers.

    The result element type is the accumulator (`i32` for operands of at most 8 bits) and
    the bias is `i32` in the accumulator's scale. W may carry a sparse encoding.

    ```mlir
    %acc = quant.gemm %x, %w, %b : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>, tensor<8xi32>) -> tensor<4x8xi32>
    ```
    """

    name = "quant.gemm"
    x = operand_def(TensorType)
    w = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    output = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = _COMPUTE_FORMAT

    def __init__(self, x: SSAValue | IRDLOperation, w: SSAValue | IRDLOperation,
                 bias: SSAValue | IRDLOperation | None = None,
                 result_type: TensorType | None = None):
        xv, wv = SSAValue.get(x), SSAValue.get(w)
        if result_type is None:
            assert isinstance(xt := xv.type, TensorType) and isinstance(wt := wv.type, TensorType)
            result_type = TensorType(i32, [xt.get_shape()[0], wt.get_shape()[0]])
        super().__init__(operands=[xv, wv, bias], result_types=[result_type])

    def verify_(self) -> None:
        x, w, y = self.x.type, self.w.type, self.output.type
        _check_dense((x, "input"), (y, "result"))
        _check_weight_encoding(w)
        if x.get_num_dims() != 2 or w.get_num_dims() != 2 or y.get_num_dims() != 2:
            raise VerifyException(
                f"expected rank-2 input [M, K], weight [N, K] and result [M, N], got "
                f"{fmt_shape(x)}, {fmt_shape(w)}, {fmt_shape(y)}"
            )
        (m, k), (n, kw) = x.get_shape(), w.get_shape()
        if not dims_match(k, kw):
            raise VerifyException(
                f"reduction sizes differ: input {fmt_shape(x)} has K={k}, "
                f"weight {fmt_shape(w)} has K={kw}"
            )
        if not (dims_match(y.get_shape()[0], m) and dims_match(y.get_shape()[1], n)):
            raise VerifyException(f"result shape {fmt_shape(y)} does not match [M, N] = [{m}, {n}]")
        qx, qw = _tensor_quant(x, "input"), _tensor_quant(w, "weight")
        check_integer_operands(qx, qw)
        check_accumulator(y.element_type, qx, qw)
        if self.bias is not None:
            check_bias(self.bias.type, n, y.element_type)


def _i64_array(values: Sequence[int] | None) -> DenseArrayBase | None:
    return None if values is None else _int_array(i64, values)


@irdl_op_definition
class ConvOp(IRDLOperation):
    """Integer 2-D convolution with ONNX `Conv` semantics on the stored integers.

    X is NCHW, W is [OC, C/group, KH, KW] (and may carry a sparse encoding over its
    [OC, C/group·KH·KW] view), bias is [OC] `i32`; the result is NCHW with the accumulator
    element type (`i32`). The ONNX attributes are optional properties with ONNX's defaults
    (`dilations` [1, 1], `group` 1, `pads` [0, 0, 0, 0] as [top, left, bottom, right],
    `strides` [1, 1], `kernel_shape` = W's).

    ```mlir
    %acc = quant.conv %x, %w, %b {kernel_shape = array<i64: 3, 3>, pads = array<i64: 1, 1, 1, 1>} : (tensor<1x1x8x8x!quant.q<si8:f32>>, tensor<8x1x3x3x!quant.q<si8:f32, per_channel axis=0>>, tensor<8xi32>) -> tensor<1x8x8x8xi32>
    ```
    """

    name = "quant.conv"
    x = operand_def(TensorType)
    w = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    output = result_def(TensorType)
    dilations = opt_prop_def(DenseArrayBase.constr(i64))
    group = opt_prop_def(IntegerAttr[I64])
    kernel_shape = opt_prop_def(DenseArrayBase.constr(i64))
    pads = opt_prop_def(DenseArrayBase.constr(i64))
    strides = opt_prop_def(DenseArrayBase.constr(i64))
    traits = traits_def(Pure())
    irdl_options = (ParsePropInAttrDict(),)
    assembly_format = _COMPUTE_FORMAT

    def __init__(self, x: SSAValue | IRDLOperation, w: SSAValue | IRDLOperation,
                 result_type: TensorType, bias: SSAValue | IRDLOperation | None = None, *,
                 dilations: Sequence[int] | None = None, group: int | None = None,
                 kernel_shape: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                 strides: Sequence[int] | None = None):
        super().__init__(
            operands=[x, w, bias], result_types=[result_type],
            properties={
                "dilations": _i64_array(dilations),
                "group": None if group is None else IntegerAttr(int(group), i64),
                "kernel_shape": _i64_array(kernel_shape),
                "pads": _i64_array(pads),
                "strides": _i64_array(strides),
            },
        )

    def attribute_values(self) -> tuple[list[int], int, list[int], list[int], list[int]]:
        """(dilations, group, kernel_shape, pads, strides) with ONNX's defaults filled in."""
        w = self.w.type
        kernel = list(w.get_shape()[2:]) if w.get_num_dims() == 4 else []

        def get(a: DenseArrayBase | None, default: list[int]) -> list[int]:
            return default if a is None else list(a.get_values())

        return (
            get(self.dilations, [1, 1]),
            1 if self.group is None else self.group.value.data,
            get(self.kernel_shape, kernel),
            get(self.pads, [0, 0, 0, 0]),
            get(self.strides, [1, 1]),
        )

    def verify_(self) -> None:
        x, w, y = self.x.type, self.w.type, self.output.type
        _check_dense((x, "input"), (y, "result"))
        _check_weight_encoding(w)
        for t, what in ((x, "input"), (w, "weight"), (y, "result")):
            if t.get_num_dims() != 4:
                raise VerifyException(f"{what} must be 4-D, got {fmt_shape(t)}")
        dilations, group, kernel, pads, strides = self.attribute_values()
        for name, vals, size, low in (
            ("dilations", dilations, 2, 1),
            ("kernel_shape", kernel, 2, 1),
            ("pads", pads, 4, 0),
            ("strides", strides, 2, 1),
        ):
            if len(vals) != size or any(v < low for v in vals):
                raise VerifyException(f"{name} must be {size} values >= {low}, got {vals}")
        (n, c, h, wd), (oc, cg, kh, kw) = x.get_shape(), w.get_shape()
        if group < 1:
            raise VerifyException(f"group must be >= 1, got {group}")
        if (kh, kw) != tuple(kernel):
            raise VerifyException(f"kernel_shape {kernel} differs from the weight's [{kh}, {kw}]")
        if not dims_match(c, cg * group):
            raise VerifyException(
                f"input has {c} channels, weight {fmt_shape(w)} with group {group} "
                f"expects {cg * group}"
            )
        if oc % group:
            raise VerifyException(f"output channels {oc} are not divisible by group {group}")
        if not dims_match(y.get_shape()[1], oc):
            raise VerifyException(
                f"result has {y.get_shape()[1]} channels, the weight has {oc} output channels"
            )
        if not dims_match(y.get_shape()[0], n):
            raise VerifyException(f"result batch {y.get_shape()[0]} differs from the input's {n}")
        for i, (size, k) in enumerate(((h, kh), (wd, kw))):
            if size < 0:
                continue
            out = (size + pads[i] + pads[i + 2] - dilations[i] * (k - 1) - 1) // strides[i] + 1
            if not dims_match(y.get_shape()[2 + i], out):
                raise VerifyException(
                    f"result {fmt_shape(y)} has size {y.get_shape()[2 + i]} in dim {2 + i}, "
                    f"the convolution gives {out}"
                )
        qx, qw = _tensor_quant(x, "input"), _tensor_quant(w, "weight")
        check_integer_operands(qx, qw, conv=True)
        check_accumulator(y.element_type, qx, qw)
        if self.bias is not None:
            check_bias(self.bias.type, oc, y.element_type)


Quant = Dialect(
    "quant",
    [QuantizeOp, QuantizeDynamicOp, DequantizeOp, RequantizeOp, GemmOp, ConvOp],
    [QuantType, GranularityAttr],
)

__all__ = [
    "ConvOp",
    "DequantizeOp",
    "QuantizeDynamicOp",
    "GemmOp",
    "Granularity",
    "GranularityAttr",
    "Quant",
    "QuantType",
    "QuantizeOp",
    "RequantizeOp",
    "quant_type_of",
    "with_element_type",
]
