"""The Sparrow instruction set: opcodes, fields and the binary encoding, as data.

This table is the single definition of what a Sparrow instruction *is*: the `sparrow`
xDSL dialect builds one op class per entry, the emitter encodes with it, and the
simulator decodes with it. docs/isa.md describes the semantics of each instruction.

Every instruction is one 256-bit little-endian word (32 bytes). Bits 0..7 hold the
opcode; the fields follow in table order, packed LSB-first with the listed widths:

    LOAD buf=act dtype=i8 sp=0 dram=4096 rows=64 cols=1 rstride=1 cstride=64
      -> opcode 0x01, then buf (3 bits), dtype (5 bits), sp (24 bits), ...

Scratchpad addresses (`sp`, `acc`, `act`, ...) are byte offsets into one on-chip buffer;
DRAM addresses are byte addresses; strides, rows and columns count elements.

Every instruction also carries the four dependency-token flags `pop_prev pop_next push_prev
push_next` (`TOKEN_FIELDS`) at the fixed bits 252..255 of the word, zero in words written
before they existed; `queue_of` says which of the load / compute / store queues runs it
(docs/isa.md, "Queues and dependency tokens"; the protocol is checked by queues.py).
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

import numpy as np

WORD_BYTES = 32
WORD_BITS = WORD_BYTES * 8
OPCODE_BITS = 8


class Buffer(enum.IntEnum):
    """On-chip scratchpads. ACT holds activations (GEMM left operand, vector unit data),
    WGT weights, ACC accumulators (int32 or fp32), META sparsity metadata, PARAM
    per-channel parameters (bias, scales, fixed-point multipliers)."""

    ACT = 0
    WGT = 1
    ACC = 2
    META = 3
    PARAM = 4


class DType(enum.IntEnum):
    """Element types as stored in DRAM and scratchpads (sub-byte types are packed,
    see backends/sparrow/packing.py)."""

    F32 = 0
    F16 = 1
    BF16 = 2
    I8 = 3
    U8 = 4
    I4 = 5
    U4 = 6
    I2 = 7
    U2 = 8
    U1 = 9
    I32 = 10
    F8E4M3 = 11
    F8E5M2 = 12
    I16 = 13
    U16 = 14
    U32 = 15
    F8E4M3FNUZ = 16
    F8E5M2FNUZ = 17
    F4E2M1 = 18

    @property
    def bits(self) -> int:
        return _DTYPE_BITS[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.F32, DType.F16, DType.BF16, DType.F8E4M3, DType.F8E5M2, DType.F8E4M3FNUZ,
                        DType.F8E5M2FNUZ, DType.F4E2M1)

    @property
    def is_signed(self) -> bool:
        return self in (DType.I8, DType.I4, DType.I2, DType.I16, DType.I32) or self.is_float

    @property
    def int_range(self) -> tuple[int, int]:
        """Smallest and largest integer the type holds (integer types only)."""
        if self.is_signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1

    def nbytes(self, count: int) -> int:
        """Bytes that `count` packed elements occupy (rounded up to whole bytes)."""
        return (count * self.bits + 7) // 8


_DTYPE_BITS = {
    DType.F32: 32, DType.F16: 16, DType.BF16: 16, DType.I8: 8, DType.U8: 8,
    DType.I4: 4, DType.U4: 4, DType.I2: 2, DType.U2: 2, DType.U1: 1, DType.I32: 32,
    DType.F8E4M3: 8, DType.F8E5M2: 8, DType.I16: 16, DType.U16: 16, DType.U32: 32,
    DType.F8E4M3FNUZ: 8, DType.F8E5M2FNUZ: 8, DType.F4E2M1: 4,
}


class EpilogueMode(enum.IntEnum):
    """What EPILOGUE does with an accumulator tile on its way to ACT."""

    FLOAT = 0  # fp32 accumulator (+ fp32 bias) -> fp32 / fp16 activations
    REQUANT = 1  # int32 accumulator (+ int32 bias) -> fixed-point multiply, shift -> int
    DEQUANT = 2  # int32 accumulator (+ int32 bias) -> fp32 * per-channel scale


class WeightFormat(enum.IntEnum):
    """How a GEMM-family instruction reads its weight elements (docs/isa.md, "Weight formats").

    PLAIN: values of `wdtype`. BINARY: `wdtype` u1, bit b is the weight 2b - 1 (+-1).
    TERNARY: `wdtype` i2 holding -1, 0 or +1 (-2 is an error). CODEBOOK: `wdtype` u1/u2/u4/u8
    indices into a table of 2^bits entries of `cdtype` in PARAM at `cb`."""

    PLAIN = 0
    BINARY = 1
    TERNARY = 2
    CODEBOOK = 3


class MetaFormat(enum.IntEnum):
    """Metadata of the unstructured sparse GEMM (USGEMM): a bitmask of the non-zero
    positions, or CSR row pointers + column indices (docs/isa.md)."""

    BITMASK = 0
    CSR = 1


# -- vector unit (docs/isa.md, "Vector unit"; numerics in vector.py) --------------------------


class BinaryOp(enum.IntEnum):
    """VBIN operations on float32 values: arithmetic, IEEE 754-2019 maximum / minimum,
    comparisons that produce 1.0 (true) / 0.0 (false), the floored (MOD) and truncated (FMOD)
    remainders and POW. On integer operands and result exact on the integers (docs/isa.md)."""

    ADD = 0
    SUB = 1
    MUL = 2
    DIV = 3
    MAX = 4
    MIN = 5
    EQ = 6
    NE = 7
    LT = 8
    LE = 9
    GT = 10
    GE = 11
    MOD = 12
    FMOD = 13
    POW = 14


class UnaryOp(enum.IntEnum):
    """VUN functions: exact ones (COPY, NEG, ABS, RCP, SQRT, RSQRT from correctly rounded
    float32 operations; FLOOR, CEIL, ROUND (half to even), TRUNC, SIGN), the defined float32
    approximations EXP, ERF, TANH, GELU, and LOG, SIN, COS (the float32 nearest the value)."""

    COPY = 0
    NEG = 1
    ABS = 2
    EXP = 3
    RCP = 4
    SQRT = 5
    RSQRT = 6
    ERF = 7
    TANH = 8
    GELU = 9
    LOG = 10
    FLOOR = 11
    CEIL = 12
    ROUND = 13
    TRUNC = 14
    SIGN = 15
    SIN = 16
    COS = 17


class ReduceOp(enum.IntEnum):
    """VRED reductions along one tile axis: tree sum, sum of squares, IEEE max / min, max |x|,
    tree product, and the position of the first (or last) maximum / minimum."""

    SUM = 0
    SUMSQ = 1
    MAX = 2
    MIN = 3
    MAXABS = 4
    PROD = 5
    ARGMAX = 6
    ARGMIN = 7
    ARGMAX_LAST = 8
    ARGMIN_LAST = 9


class Bcast(enum.IntEnum):
    """How a vector instruction's second operand covers the [rows, cols] result: a whole
    tile, a row vector [1, cols] (per column), a column vector [rows, 1] (per row), one
    value [1, 1], the `imm` field (float32 bits), or [rows, ceil(cols/group)] (per group
    of `group` columns)."""

    TILE = 0
    ROW = 1
    COL = 2
    SCALAR = 3
    IMM = 4
    GROUP = 5


def epilogue_params(mode: EpilogueMode, bias: bool) -> tuple[tuple[str, DType], ...]:
    """The PARAM block an EPILOGUE reads: consecutive per-column vectors of `cols` 4-byte
    words, in this order (docs/isa.md)."""
    acc = DType.F32 if mode is EpilogueMode.FLOAT else DType.I32
    rest = {
        EpilogueMode.FLOAT: (),
        EpilogueMode.REQUANT: (("mult", DType.I32), ("shift", DType.I32)),
        EpilogueMode.DEQUANT: (("scale", DType.F32),),
    }[mode]
    return ((("bias", acc),) if bias else ()) + rest


@dataclass(frozen=True)
class Field:
    name: str
    bits: int
    enum: type[enum.IntEnum] | None = None
    doc: str = ""
    default: int | None = None  # optional in assembly text and `Instruction.make`; printed only when != default
    hex: bool = False  # printed as 0x%08x (float32 bit patterns)
    at: int | None = None  # a fixed bit position (the token flags); else right after the previous field


TOKEN_BASE = 252
"""Bit of `pop_prev`, the first of the four token flags every instruction has (docs/isa.md)."""

TOKEN_FIELDS = tuple(
    Field(name, 1, None, doc, 0, at=TOKEN_BASE + i) for i, (name, doc) in enumerate((
        ("pop_prev", "1: wait for a token from the previous queue before starting"),
        ("pop_next", "1: wait for a token from the next queue before starting"),
        ("push_prev", "1: send a token to the previous queue when done"),
        ("push_next", "1: send a token to the next queue when done"),
    ))
)
"""The dependency-token flags, common to every instruction (VTA's pop_prev_dep ... push_next_dep):
the last four entries of every `InstructionSpec.fields`, at bits 252..255 of the word."""


@dataclass(frozen=True)
class InstructionSpec:
    mnemonic: str
    opcode: int
    fields: tuple[Field, ...]
    doc: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", tuple(self.fields) + TOKEN_FIELDS)
        end = self.shifts[-1] + self.fields[-1].bits
        assert end <= WORD_BITS, f"{self.mnemonic}: {end} bits do not fit one word"

    @functools.cached_property
    def shifts(self) -> tuple[int, ...]:
        """Bit position of each field: packed LSB-first after the opcode, except the fields
        with a fixed position (`Field.at`: the token flags at the top of the word)."""
        out, lo = [], OPCODE_BITS
        for f in self.fields:
            if f.at is not None:
                assert f.at >= lo, f"{self.mnemonic}: field {f.name} overlaps the field before it"
                lo = f.at
            out.append(lo)
            lo += f.bits
        return tuple(out)

    @functools.cached_property
    def used_mask(self) -> int:
        """The word bits the opcode and the fields occupy (the rest are reserved, zero)."""
        mask = (1 << OPCODE_BITS) - 1
        for f, lo in zip(self.fields, self.shifts):
            mask |= ((1 << f.bits) - 1) << lo
        return mask

    @property
    def own_fields(self) -> tuple[Field, ...]:
        """The instruction's own fields: `fields` without the common `TOKEN_FIELDS`."""
        return self.fields[: -len(TOKEN_FIELDS)]

    @functools.cached_property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @functools.cached_property
    def field_index(self) -> dict[str, int]:
        """Position of each field (decoded field access is on the simulator's hot path)."""
        return {f.name: i for i, f in enumerate(self.fields)}


def _f(name: str, bits: int, enum_: type[enum.IntEnum] | None = None, doc: str = "",
       default: int | None = None) -> Field:
    return Field(name, bits, enum_, doc, default)


_ADDR = 24  # scratchpad byte address: up to 16 MiB per buffer
_DIM = 16
_STRIDE = 24

_DMA_FIELDS = (
    _f("buf", 3, Buffer, "scratchpad"),
    _f("dtype", 5, DType, "element type (same in DRAM and scratchpad)"),
    _f("sp", _ADDR, doc="scratchpad byte address"),
    _f("dram", 32, doc="DRAM byte address of element (0, 0)"),
    _f("rows", _DIM),
    _f("cols", _DIM),
    _f("rstride", _STRIDE, doc="DRAM elements between rows"),
    _f("cstride", _STRIDE, doc="DRAM elements between columns"),
)
_GEMM_FIELDS = (
    _f("adtype", 5, DType, "activation (left operand) type"),
    _f("wdtype", 5, DType, "weight (right operand) type"),
    _f("acc", _ADDR, doc="ACC address of the [m, n] accumulator tile"),
    _f("act", _ADDR, doc="ACT address of the [m, k] activation tile"),
    _f("wgt", _ADDR, doc="WGT address of the [n, k] weight tile"),
    _f("m", _DIM),
    _f("k", _DIM),
    _f("n", _DIM),
    _f("accumulate", 1, doc="1: add to ACC, 0: overwrite"),
)
# Every GEMM-family instruction ends with these (after its sparse-metadata fields), all
# optional with default 0: a word with them zero is a plain-weight GEMM without activation
# skipping, and the assembly text omits them.
_GEMM_SUFFIX = (
    _f("wfmt", 2, WeightFormat, "how weight elements are read; optional, default plain", 0),
    _f("cdtype", 5, DType, "codebook entry type (codebook only); optional, default 0", 0),
    _f("cb", _ADDR, doc="PARAM address of the codebook table (codebook only); optional, default 0", default=0),
    _f("askip", 1, doc="1: skip zero activations; optional, default 0", default=0),
)
_WINDOW_FIELDS = (
    _f("dtype", 5, DType),
    _f("src", _ADDR, doc="ACT address of the [h, w, c] input tile"),
    _f("dst", _ADDR, doc="ACT address of the output tile"),
    _f("c", _DIM),
    _f("h", 12),
    _f("w", 12),
    _f("kh", 4),
    _f("kw", 4),
    _f("sh", 4),
    _f("sw", 4),
    _f("pt", 4),
    _f("pl", 4),
    _f("pb", 4),
    _f("pr", 4),
    _f("dh", 4),
    _f("dw", 4),
)

# Vector unit: every operand names its scratchpad, element type and address; types,
# scratchpads and broadcast mode are optional (default f32 / act / tile).
_F32_ONE = 0x3F800000


def _imm(doc: str, default: int) -> Field:
    return Field("imm", 32, None, doc, default, hex=True)


def _vsrc(suffix: str, what: str, dtype_default: int = 0) -> tuple[Field, ...]:
    return (
        _f("dtype" + suffix, 5, DType, f"{what} element type; optional, default {DType(dtype_default).name.lower()}",
           dtype_default),
        _f("buf" + suffix, 3, Buffer, f"{what} scratchpad; optional, default act", 0),
        _f("src" + suffix, _ADDR, doc=f"{what} address"),
    )


_VOUT = (
    _f("odtype", 5, DType, "result element type; optional, default f32", 0),
    _f("obuf", 3, Buffer, "result scratchpad; optional, default act", 0),
    _f("dst", _ADDR, doc="result address"),
)
_VSHAPE = (_f("rows", _DIM), _f("cols", _DIM))
_VSECOND = (
    _f("bcast", 3, Bcast, "second operand's shape; optional, default tile", 0),
    *(f if f.name != "src1" else _f("src1", _ADDR, doc="second operand address; optional, default 0", default=0)
      for f in _vsrc("1", "second operand")),
    _f("group", _DIM, doc="columns per second-operand element (bcast=group); optional, default 0", default=0),
    _imm("float32 bits of the second operand (bcast=imm); optional, default 0", 0),
)
_VECTOR_INSTRUCTIONS = (
    InstructionSpec(
        "vbin", 0x30,
        (_f("op", 5, BinaryOp), *_vsrc("", "first operand"), *_VSECOND, *_VOUT, *_VSHAPE),
        "elementwise src op src1 (src1 a tile, row / column vector, scalar, immediate or groups)",
    ),
    InstructionSpec(
        "vun", 0x31,
        (_f("op", 5, UnaryOp), *_vsrc("", "operand"),
         _imm("float32 bits of the input scale a: y = f(a * x); optional, default 1.0", _F32_ONE),
         *_VOUT, *_VSHAPE),
        "elementwise function: exp, rcp, sqrt, rsqrt, erf, tanh, gelu, ...",
    ),
    InstructionSpec(
        "vred", 0x32,
        (_f("op", 4, ReduceOp), _f("axis", 1, doc="1: along each row -> [rows, 1]; 0: along each column -> [1, cols]; "
                                    "optional, default 1", default=1),
         *_vsrc("", "operand"),
         _imm("float32 bits of the output scale a: y = a * r; optional, default 1.0", _F32_ONE),
         *_VOUT, *_VSHAPE),
        "reduction along a tile axis: sum, sum of squares, max, min, max |x|, product, argmax, argmin",
    ),
    InstructionSpec(
        "vsel", 0x33,
        (_f("mdtype", 5, DType, "mask element type; optional, default f32", 0),
         _f("mbcast", 3, Bcast, "mask's shape; optional, default tile", 0),
         _f("mbuf", 3, Buffer, "mask scratchpad; optional, default act", 0),
         _f("mask", _ADDR, doc="mask address (non-zero selects the first operand)"),
         *_vsrc("", "first operand"), *_VSECOND, *_VOUT, *_VSHAPE),
        "elementwise select: mask != 0 ? src : src1",
    ),
    InstructionSpec(
        "vquant", 0x34,
        (_f("odtype", 5, DType, "quantized type (integer of at most 8 bits, or fp8)"),
         _f("axis", 1, doc="1: one scale per row (per token); 0: one per column; optional, default 1", default=1),
         *_vsrc("", "float operand"),
         _f("obuf", 3, Buffer, "quantized tile scratchpad; optional, default act", 0),
         _f("dst", _ADDR, doc="quantized tile address"),
         _f("sbuf", 3, Buffer, "scales scratchpad; optional, default act", 0),
         _f("scale", _ADDR, doc="address of the f32 scales written ([rows, 1] or [1, cols])"),
         *_VSHAPE),
        "dynamic symmetric quantization: per-row (or per-column) scale max|x| / qmax, computed on the fly",
    ),
    InstructionSpec(
        "vreq", 0x35,
        (*_vsrc("", "integer operand", int(DType.I32)),
         _f("odtype", 5, DType, "integer result type"),
         _f("obuf", 3, Buffer, "result scratchpad; optional, default act", 0),
         _f("dst", _ADDR, doc="result address"),
         *_VSHAPE,
         _f("mult", 31, doc="fixed-point multiplier (one for the tile)"),
         _f("shift", 6, doc="right shift, 1..62"),
         _f("zp", 8, doc="output zero point, two's complement if odtype is signed; optional, default 0", default=0),
         _f("relu", 1, doc="1: clamp below at the zero point; optional, default 0", default=0)),
        "per-tensor requantization of an integer tile: (x * mult + 2^(shift-1)) >> shift, + zp, saturate",
    ),
)

INSTRUCTIONS: tuple[InstructionSpec, ...] = (
    InstructionSpec("load", 0x01, _DMA_FIELDS, "2-D strided DMA from DRAM into a scratchpad"),
    InstructionSpec("store", 0x02, _DMA_FIELDS, "2-D strided DMA from a scratchpad to DRAM"),
    InstructionSpec(
        "gather", 0x03,
        (
            _f("buf", 3, Buffer, "scratchpad"),
            _f("dtype", 5, DType, "element type (same in DRAM and scratchpad)"),
            _f("sp", _ADDR, doc="scratchpad byte address of the [rows, cols] result"),
            _f("dram", 32, doc="DRAM byte address of the table's row 0"),
            _f("rows", _DIM, doc="rows gathered (one per index)"),
            _f("cols", _DIM, doc="elements per row"),
            _f("rstride", _STRIDE, doc="DRAM elements between table rows"),
            _f("limit", _STRIDE, doc="table rows: an index i must satisfy -limit <= i < limit"),
            _f("ibuf", 3, Buffer, "index scratchpad; optional, default act", 0),
            _f("idtype", 5, DType, "index element type; optional, default i32", int(DType.I32)),
            _f("idx", _ADDR, doc="scratchpad address of the [1, rows] index tile"),
        ),
        "row-gather DMA from DRAM: row r of the tile is table row idx[r] (embedding lookup)",
    ),
    InstructionSpec("gemm", 0x10, _GEMM_FIELDS + _GEMM_SUFFIX,
                    "dense tile GEMM: ACC[m,n] (+)= ACT[m,k] . WGT[n,k]^T"),
    InstructionSpec(
        "spgemm", 0x11,
        _GEMM_FIELDS + (
            _f("meta", _ADDR, doc="META address of the [n, ceil(k/nm_m)*nm_n] index tile"),
            _f("nm_n", 4), _f("nm_m", 5),
        ) + _GEMM_SUFFIX,
        "N:M sparse tile GEMM: WGT holds the kept values, META their in-group indices",
    ),
    InstructionSpec(
        "bsgemm", 0x12,
        _GEMM_FIELDS + (
            _f("meta", _ADDR, doc="META address of the block index list"),
            _f("br", 8, doc="block rows (along n)"),
            _f("bc", 8, doc="block columns (along k)"),
            _f("nb", _ADDR, doc="stored blocks"),
        ) + _GEMM_SUFFIX,
        "block-sparse tile GEMM: WGT holds the stored br x bc blocks, META their block indices",
    ),
    InstructionSpec(
        "usgemm", 0x13,
        _GEMM_FIELDS + (
            _f("fmt", 1, MetaFormat, "metadata format"),
            _f("meta", _ADDR, doc="META address of the bitmask or CSR metadata"),
            _f("nnz", 32, doc="stored (non-zero) weights"),
        ) + _GEMM_SUFFIX,
        "unstructured sparse tile GEMM: WGT holds the nnz stored values, META a bitmask or CSR",
    ),
    InstructionSpec(
        "im2col", 0x20, _WINDOW_FIELDS,
        "patches of an [h, w, c] tile: [oh*ow, c*kh*kw] in (c, ky, kx) column order",
    ),
    InstructionSpec("maxpool", 0x21, _WINDOW_FIELDS, "max pooling of an [h, w, c] tile into [oh*ow, c]"),
    InstructionSpec(
        "epilogue", 0x22,
        (
            _f("mode", 2, EpilogueMode),
            _f("odtype", 5, DType, "output element type in ACT"),
            _f("bias", 1, doc="1: add the per-column bias from PARAM"),
            _f("relu", 1, doc="1: clamp below at zero (at the zero point for REQUANT)"),
            _f("src", _ADDR, doc="ACC address of the [rows, cols] tile"),
            _f("dst", _ADDR, doc="ACT address of the [rows, cols] result"),
            _f("param", _ADDR, doc="PARAM address of the per-column parameter block"),
            _f("rows", _DIM),
            _f("cols", _DIM),
            _f("zp", 8, doc="output zero point (REQUANT): two's complement if odtype is signed"),
        ),
        "accumulator -> activation: bias, requantize/dequantize/convert, ReLU",
    ),
    InstructionSpec(
        "quant", 0x23,
        (
            _f("odtype", 5, DType),
            _f("src", _ADDR, doc="ACT address of the fp32 [rows, cols] tile"),
            _f("dst", _ADDR),
            _f("param", _ADDR, doc="PARAM address of the fp32 scale"),
            _f("rows", _DIM),
            _f("cols", _DIM),
        ),
        "per-tensor quantize of fp32 activations: sat(round_half_even(x / scale))",
    ),
    InstructionSpec(
        "softmax", 0x24,
        (_f("src", _ADDR), _f("dst", _ADDR), _f("rows", _DIM), _f("cols", _DIM)),
        "row-wise softmax of an fp32 [rows, cols] tile",
    ),
    *_VECTOR_INSTRUCTIONS,
    InstructionSpec("sync", 0x3E, (), "no operation in the compute queue: relays tokens between the load and store queues"),
    InstructionSpec("halt", 0x3F, (), "end of program: waits for every queue to drain"),
)

BY_MNEMONIC: dict[str, InstructionSpec] = {s.mnemonic: s for s in INSTRUCTIONS}
BY_OPCODE: dict[int, InstructionSpec] = {s.opcode: s for s in INSTRUCTIONS}
GEMM_FAMILY = ("gemm", "spgemm", "bsgemm", "usgemm")
"""The matrix-unit instructions: ACC (+)= ACT . W^T with W dense, N:M, block or unstructured sparse."""


class Queue(enum.IntEnum):
    """The three in-order instruction queues (VTA's load / compute / store modules). Tokens
    flow between neighbours: LOAD <-> COMPUTE <-> STORE ("prev" is the queue to the left)."""

    LOAD = 0
    COMPUTE = 1
    STORE = 2


def queue_of(ins: Instruction) -> Queue | None:
    """The queue that runs `ins`: LOAD (and GATHER) into ACT / WGT / META / PARAM -> LOAD; into ACC and
    everything that computes (the matrix and vector units, SYNC) -> COMPUTE; STORE -> STORE;
    HALT -> None (it waits for all three to drain)."""
    op = ins.spec.mnemonic
    if op in ("load", "gather"):
        return Queue.COMPUTE if ins.buf is Buffer.ACC else Queue.LOAD
    if op == "store":
        return Queue.STORE
    return None if op == "halt" else Queue.COMPUTE


class EncodingError(ValueError):
    """A field value does not fit the instruction format, or a word does not decode."""


@dataclass(frozen=True)
class Instruction:
    """One decoded instruction: its spec and a value per field (ints / IntEnums)."""

    spec: InstructionSpec
    values: tuple[int, ...]

    def __post_init__(self) -> None:
        # Each field as a plain attribute (enum fields as their IntEnum member), so `ins.rows`
        # is an ordinary lookup: the simulator reads fields on every executed instruction.
        for f, v in zip(self.spec.fields, self.values):
            if not hasattr(Instruction, f.name):
                object.__setattr__(self, f.name, f.enum._value2member_map_.get(v, v) if f.enum else v)

    @staticmethod
    def make(mnemonic: str, **fields: int) -> Instruction:
        """The instruction with these field values; fields with a default may be left out."""
        spec = BY_MNEMONIC[mnemonic]
        fields = {f.name: f.default for f in spec.fields if f.default is not None} | fields
        missing = set(spec.field_names) - fields.keys()
        extra = fields.keys() - set(spec.field_names)
        if missing or extra:
            raise EncodingError(f"{mnemonic}: missing fields {sorted(missing)}, unknown {sorted(extra)}")
        return Instruction(spec, tuple(int(fields[n]) for n in spec.field_names))

    def __getattr__(self, name: str) -> int:
        try:
            i = self.spec.field_index[name]
        except KeyError:
            raise AttributeError(name) from None
        f = self.spec.fields[i]
        return f.enum(self.values[i]) if f.enum else self.values[i]

    @property
    def mnemonic(self) -> str:
        return self.spec.mnemonic

    def fields(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in self.spec.fields}

    def __str__(self) -> str:
        return format_instruction(self)

    def __repr__(self) -> str:
        return f"Instruction({format_instruction(self)!r})"


def _field_text(f: Field, v: int) -> str:
    if f.enum:
        return f.enum(v).name.lower()
    return f"0x{v:08x}" if f.hex else str(v)


def format_instruction(ins: Instruction) -> str:
    """Assembly text: `gemm adtype=i8 wdtype=i8 acc=0 ...` (the sparrow dialect prints the same).
    Fields with a default are left out when they hold it."""
    parts = [f"{f.name}={_field_text(f, v)}" for f, v in zip(ins.spec.fields, ins.values) if v != f.default]
    return " ".join([ins.mnemonic, *parts])


def parse_instruction(line: str) -> Instruction:
    """Inverse of `format_instruction`."""
    mnemonic, *parts = line.split()
    if mnemonic not in BY_MNEMONIC:
        raise EncodingError(f"unknown instruction '{mnemonic}'")
    spec = BY_MNEMONIC[mnemonic]
    values: dict[str, int] = {}
    for part in parts:
        name, _, text = part.partition("=")
        if name not in spec.field_names:
            raise EncodingError(f"{mnemonic}: unknown field '{name}'")
        f = spec.fields[spec.field_names.index(name)]
        if f.enum:
            try:
                values[name] = f.enum[text.upper()]
            except KeyError:
                raise EncodingError(f"{mnemonic}: bad {name} '{text}'") from None
        else:
            values[name] = int(text, 0)
    return Instruction.make(mnemonic, **values)


def encode(ins: Instruction) -> bytes:
    word = ins.spec.opcode
    for f, shift, v in zip(ins.spec.fields, ins.spec.shifts, ins.values):
        if not 0 <= v < (1 << f.bits):
            raise EncodingError(f"{ins.mnemonic}: field {f.name}={v} does not fit {f.bits} bits")
        word |= v << shift
    return word.to_bytes(WORD_BYTES, "little")


def decode(word: bytes) -> Instruction:
    if len(word) != WORD_BYTES:
        raise EncodingError(f"instruction word has {len(word)} bytes, expected {WORD_BYTES}")
    value = int.from_bytes(word, "little")
    opcode = value & ((1 << OPCODE_BITS) - 1)
    spec = BY_OPCODE.get(opcode)
    if spec is None:
        raise EncodingError(f"unknown opcode 0x{opcode:02x}")
    values = []
    for f, shift in zip(spec.fields, spec.shifts):
        v = (value >> shift) & ((1 << f.bits) - 1)
        if f.enum is not None and v not in f.enum._value2member_map_:
            raise EncodingError(f"{spec.mnemonic}: bad {f.name} code {v}")
        values.append(v)
    if value & ~spec.used_mask:
        raise EncodingError(f"{spec.mnemonic}: reserved bits are not zero")
    return Instruction(spec, tuple(values))


def encode_program(program: list[Instruction]) -> bytes:
    return b"".join(encode(i) for i in program)


def decode_program(blob: bytes) -> list[Instruction]:
    if len(blob) % WORD_BYTES:
        raise EncodingError(f"program has {len(blob)} bytes, not a multiple of {WORD_BYTES}")
    return [decode(blob[i : i + WORD_BYTES]) for i in range(0, len(blob), WORD_BYTES)]


NUMPY_DTYPE = {
    DType.F32: np.dtype(np.float32), DType.I8: np.dtype(np.int8), DType.U8: np.dtype(np.uint8),
    DType.I32: np.dtype(np.int32), DType.F16: np.dtype(np.float16),
    DType.I16: np.dtype(np.int16), DType.U16: np.dtype(np.uint16), DType.U32: np.dtype(np.uint32),
}
"""numpy types of the byte-aligned element types (sub-byte and bf16/fp8 go through packing.py)."""
