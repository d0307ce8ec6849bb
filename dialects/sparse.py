"""The `sparse` dialect: sparsity patterns as tensor encodings, and the ops that use them.

A sparse weight is an ordinary `tensor` whose *encoding* names its zero pattern, in the spirit
of MLIR's `sparse_tensor` dialect (mlir.llvm.org/docs/Dialects/SparseTensorOps), which spells
2:4 as `#sparse_tensor.encoding<{map = (i, j) -> (i : dense, j floordiv 4 : dense,
j mod 4 : structured[2, 4])}>`. spaq only needs the patterns its accelerator runs, so each
pattern is its own small attribute:

```mlir
tensor<32x64xf32, #sparse.nm<2:4>>            // at most 2 non-zeros in every 4 columns
tensor<32x64xf32, #sparse.block<4x4>>         // zero 4x4 blocks are skipped
tensor<32x64xf32, #sparse.unstructured<csr>>  // any pattern, CSR metadata
```

Every encoding views the tensor as a matrix `[d0, d1*d2*...]`: rows are output channels and
columns are the reduction (for a conv weight `[OC, C, KH, KW]`: `[OC, C*KH*KW]`). The
logical value of an encoded tensor is the dense one, zeros included; the encoding promises
a pattern and chooses the metadata the hardware reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

import numpy as np
from xdsl.dialects.builtin import IntAttr, NoneAttr, TensorType
from xdsl.dialects.utils import EnumAttribute
from xdsl.ir import Attribute, Dialect, ParametrizedAttribute, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_attr_definition,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    result_def,
    traits_def,
)
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.traits import Pure
from xdsl.utils.exceptions import VerifyException

from spaq.dialects.quant import (
    QuantType,
    check_accumulator,
    check_bias,
    check_integer_operands,
    dims_match,
    fmt_shape,
    is_float,
)

# --------------------------------------------------------------------------- encodings


class SparseEncoding(Attribute):
    """Base of the sparse encodings: `isinstance(t.encoding, SparseEncoding)`."""


class MetadataFormat(StrEnum):
    """How an unstructured pattern stores where the non-zeros are."""

    BITMASK = "bitmask"  # 1 bit per element
    CSR = "csr"  # row pointers + column indices


@irdl_attr_definition
class MetadataFormatAttr(EnumAttribute[MetadataFormat]):
    """The metadata format of `#sparse.unstructured` (only ever printed inside it)."""

    name = "sparse.metadata_format"


@irdl_attr_definition
class NMAttr(SparseEncoding, ParametrizedAttribute):
    """N:M structured sparsity along the reduction.

    In every group of M consecutive columns of the `[d0, prod(rest)]` view at most N values
    are non-zero; the last group of a row may be short (columns are not padded in the
    logical tensor). The hardware keeps N values per group plus, for each kept value, its
    position in the group: ⌈log2 M⌉ bits of metadata. 0 < N < M ≤ 16.

    ```mlir
    %s = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.nm<2:4>>
    ```
    """

    name = "sparse.nm"

    kept: IntAttr  # N
    group: IntAttr  # M

    def __init__(self, n: int, m: int):
        super().__init__(IntAttr(int(n)), IntAttr(int(m)))

    @property
    def n(self) -> int:
        return self.kept.data

    @property
    def m(self) -> int:
        return self.group.data

    @property
    def index_bits(self) -> int:
        """Bits to name a position inside a group: ⌈log2 M⌉."""
        return max(1, math.ceil(math.log2(self.m)))

    @property
    def metadata_bits_per_value(self) -> int:
        """Metadata bits stored for each kept value (its index in the group)."""
        return self.index_bits

    @property
    def density(self) -> float:
        return self.n / self.m

    def groups_per_row(self, columns: int) -> int:
        return -(-columns // self.m)

    def verify(self) -> None:
        n, m = self.n, self.m
        if not 0 < n < m <= 16:
            raise VerifyException(f"#sparse.nm<{n}:{m}>: expected 0 < N < M <= 16")

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            n = parser.parse_integer(allow_boolean=False, context_msg=" (N of N:M)")
            parser.parse_punctuation(":", " between N and M")
            m = parser.parse_integer(allow_boolean=False, context_msg=" (M of N:M)")
        return (IntAttr(n), IntAttr(m))

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.n}:{self.m}>")


@irdl_attr_definition
class BlockAttr(SparseEncoding, ParametrizedAttribute):
    """Block sparsity: the `[d0, prod(rest)]` view is tiled in R×C blocks and all-zero blocks
    are skipped (edge blocks may be partial). Metadata: the list of kept block indices.

    ```mlir
    %s = sparse.pack %w : tensor<16x16xf32> -> tensor<16x16xf32, #sparse.block<4x4>>
    ```
    """

    name = "sparse.block"

    block_rows: IntAttr
    block_cols: IntAttr

    def __init__(self, rows: int, cols: int):
        super().__init__(IntAttr(int(rows)), IntAttr(int(cols)))

    @property
    def rows(self) -> int:
        return self.block_rows.data

    @property
    def cols(self) -> int:
        return self.block_cols.data

    def verify(self) -> None:
        if self.rows <= 0 or self.cols <= 0:
            raise VerifyException(
                f"#sparse.block<{self.rows}x{self.cols}>: block sizes must be > 0"
            )

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            rows = parser.parse_shape_dimension(allow_dynamic=False)
            parser.parse_shape_delimiter()
            cols = parser.parse_shape_dimension(allow_dynamic=False)
        return (IntAttr(rows), IntAttr(cols))

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.rows}x{self.cols}>")


@irdl_attr_definition
class UnstructuredAttr(SparseEncoding, ParametrizedAttribute):
    """Any zero pattern; the metadata is a bitmask (1 bit per element) or CSR (row
    pointers and column indices of the non-zeros).

    ```mlir
    %s = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.unstructured<bitmask>>
    %t = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.unstructured<csr>>
    ```
    """

    name = "sparse.unstructured"

    metadata: MetadataFormatAttr

    def __init__(self, format: MetadataFormat | str = MetadataFormat.BITMASK):
        super().__init__(MetadataFormatAttr(MetadataFormat(format)))

    @property
    def format(self) -> MetadataFormat:
        return self.metadata.data

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        with parser.in_angle_brackets():
            return (MetadataFormatAttr(parser.parse_str_enum(MetadataFormat)),)

    def print_parameters(self, printer: Printer) -> None:
        printer.print_string(f"<{self.format.value}>")


def encoding_of(t: Attribute) -> SparseEncoding | None:
    """The sparse encoding of a tensor type (None for dense tensors and non-tensors)."""
    if isinstance(t, TensorType) and isinstance(t.encoding, SparseEncoding):
        return t.encoding
    return None


def with_encoding(t: TensorType, encoding: SparseEncoding | None) -> TensorType:
    """`t` with its encoding replaced (None: dense), keeping shape and element type."""
    return TensorType(t.element_type, t.shape, encoding if encoding is not None else NoneAttr())


def check_pattern(array: np.ndarray, encoding: Attribute) -> str | None:
    """The first violation of `encoding` by `array` (viewed as `[shape[0], -1]`), or None.

    ```python
    check_pattern(w, NMAttr(2, 4))  # "row 3, group 2 (columns 8..11) has 3 non-zeros, 2:4 allows 2"
    ```
    Block and unstructured patterns cannot be violated (a block is either all-zero and
    skipped, or kept), so they return None.
    """
    if isinstance(encoding, NMAttr):
        a = np.asarray(array)
        rows = a.shape[0] if a.ndim else 1
        flat = a.reshape(rows, -1) != 0
        cols = flat.shape[1]
        n, m = encoding.n, encoding.m
        groups = encoding.groups_per_row(cols)
        padded = np.zeros((rows, groups * m), dtype=bool)
        padded[:, :cols] = flat
        counts = padded.reshape(rows, groups, m).sum(axis=2)
        bad = np.argwhere(counts > n)
        if len(bad) == 0:
            return None
        r, g = (int(i) for i in bad[0])
        last = min(cols, (g + 1) * m) - 1
        return (
            f"row {r}, group {g} (columns {g * m}..{last}) has {int(counts[r, g])} non-zeros, "
            f"{n}:{m} allows {n}"
        )
    if isinstance(encoding, (BlockAttr, UnstructuredAttr)):
        return None
    raise TypeError(f"check_pattern: {encoding} is not a sparse encoding")


# --------------------------------------------------------------------------- ops


def _tensor(t: Attribute, what: str) -> TensorType:
    if not isinstance(t, TensorType):
        raise VerifyException(f"{what} must be a tensor, got {t}")
    return t


def _check_pack(operand: TensorType, result: TensorType, pack: bool) -> None:
    """pack: dense operand, encoded result; unpack: the other way round."""
    dense, encoded = (operand, result) if pack else (result, operand)
    dense_what, enc_what = ("operand", "result") if pack else ("result", "operand")
    if not isinstance(dense.encoding, NoneAttr):
        raise VerifyException(f"{dense_what} must not have an encoding, got {dense.encoding}")
    if not isinstance(encoded.encoding, SparseEncoding):
        raise VerifyException(f"{enc_what} must have a sparse encoding, got {encoded}")
    if operand.get_shape() != result.get_shape():
        raise VerifyException(
            f"shapes differ: operand {fmt_shape(operand)}, result {fmt_shape(result)}"
        )
    if operand.element_type != result.element_type:
        raise VerifyException(
            f"element types differ: operand {operand.element_type}, "
            f"result {result.element_type}"
        )


@irdl_op_definition
class PackOp(IRDLOperation):
    """Dense tensor → the same values with a sparse encoding. The logical value is
    unchanged; the values must already follow the pattern (`check_pattern`).

    ```mlir
    %s = sparse.pack %w : tensor<8x9xf32> -> tensor<8x9xf32, #sparse.nm<2:4>>
    ```
    """

    name = "sparse.pack"
    input = operand_def(TensorType)
    output = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue | IRDLOperation, encoding: SparseEncoding):
        value = SSAValue.get(input)
        super().__init__(
            operands=[value], result_types=[with_encoding(_tensor(value.type, "input"), encoding)]
        )

    def verify_(self) -> None:
        _check_pack(self.input.type, self.output.type, pack=True)


@irdl_op_definition
class UnpackOp(IRDLOperation):
    """Encoded tensor → the same values as a dense tensor (the inverse of `sparse.pack`).

    ```mlir
    %d = sparse.unpack %s : tensor<8x9xf32, #sparse.nm<2:4>> -> tensor<8x9xf32>
    ```
    """

    name = "sparse.unpack"
    input = operand_def(TensorType)
    output = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$input attr-dict `:` type($input) `->` type($output)"

    def __init__(self, input: SSAValue | IRDLOperation):
        value = SSAValue.get(input)
        super().__init__(
            operands=[value], result_types=[with_encoding(_tensor(value.type, "input"), None)]
        )

    def verify_(self) -> None:
        _check_pack(self.input.type, self.output.type, pack=False)


@irdl_op_definition
class MatmulOp(IRDLOperation):
    """Y[M, N] = X[M, K] · W[N, K]ᵀ (+ bias[N]) with an encoded weight W.

    Float operands give a float result of the same type. Quantized operands (`!quant.q`)
    give the integer accumulator, written explicitly as the result element type (`i32` for
    operands of at most 8 bits); the bias is then `i32` too.

    ```mlir
    %y = sparse.matmul %x, %w, %b : (tensor<4x9xf32>, tensor<8x9xf32, #sparse.nm<2:4>>, tensor<8xf32>) -> tensor<4x8xf32>
    %acc = sparse.matmul %xq, %wq : (tensor<4x9x!quant.q<si8:f32>>, tensor<8x9x!quant.q<si8:f32, per_channel axis=0>, #sparse.nm<2:4>>) -> tensor<4x8xi32>
    ```
    """

    name = "sparse.matmul"
    x = operand_def(TensorType)
    w = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    output = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = (
        "$x `,` $w (`,` $bias^)? attr-dict `:` functional-type(operands, results)"
    )

    def __init__(self, x: SSAValue | IRDLOperation, w: SSAValue | IRDLOperation,
                 result_type: TensorType, bias: SSAValue | IRDLOperation | None = None):
        super().__init__(operands=[x, w, bias], result_types=[result_type])

    def verify_(self) -> None:
        x, w, y = self.x.type, self.w.type, self.output.type
        if not isinstance(w.encoding, SparseEncoding):
            raise VerifyException(
                f"weight must have a sparse encoding (use quant.gemm or a dense matmul), got {w}"
            )
        for t, what in ((x, "input"), (y, "result")):
            if not isinstance(t.encoding, NoneAttr):
                raise VerifyException(f"{what} must not have an encoding, got {t.encoding}")
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
            raise VerifyException(
                f"result shape {fmt_shape(y)} does not match [M, N] = [{m}, {n}]"
            )
        xe, we, ye = x.element_type, w.element_type, y.element_type
        if is_float(xe) and is_float(we):
            if not (xe == we == ye):
                raise VerifyException(
                    f"float matmul needs equal element types, got input {xe}, weight {we}, "
                    f"result {ye}"
                )
        elif isinstance(xe, QuantType) and isinstance(we, QuantType):
            check_integer_operands(xe, we)
            check_accumulator(ye, xe, we)
        else:
            raise VerifyException(
                f"input and weight must be both float or both !quant.q, got {xe} and {we}"
            )
        if self.bias is not None:
            check_bias(self.bias.type, n, ye)


Sparse = Dialect(
    "sparse",
    [PackOp, UnpackOp, MatmulOp],
    [NMAttr, BlockAttr, UnstructuredAttr, MetadataFormatAttr],
)

__all__ = [
    "BlockAttr",
    "MatmulOp",
    "MetadataFormat",
    "MetadataFormatAttr",
    "NMAttr",
    "PackOp",
    "Sparse",
    "SparseEncoding",
    "UnpackOp",
    "UnstructuredAttr",
    "check_pattern",
    "encoding_of",
    "with_encoding",
]
