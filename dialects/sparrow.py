"""The `sparrow` dialect: Sparrow's ISA, one op per instruction.

The op classes are generated from the instruction table in backends/sparrow/isa.py, so
the dialect, the binary encoding and the simulator cannot drift apart. Each field is an
`i64` property; the custom syntax is the assembly text itself:

```mlir
sparrow.load buf=act dtype=i8 sp=0 dram=4096 rows=64 cols=1 rstride=1 cstride=64 {layer = "conv1"}
sparrow.gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=64 k=9 n=8 accumulate=0
sparrow.gemm adtype=i8 wdtype=u1 acc=0 act=0 wgt=0 m=64 k=9 n=8 accumulate=0 wfmt=binary askip=1
sparrow.halt
```

Fields with a default (the GEMM family's `wfmt cdtype cb askip`) are optional properties,
left out of the text and of the properties while they hold their default.

`sparrow.segment` is a data directive, not an instruction: it places a named array in the
memory image (`kind` says what it is, which the cost report uses to split DRAM bytes):

```mlir
sparrow.segment "conv1.weight.values" kind=values dtype=i8 addr=4096 shape=[8, 12]
```
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import ArrayAttr, IntAttr, IntegerAttr, StringAttr, i64
from xdsl.ir import Dialect
from xdsl.irdl import IRDLOperation, irdl_op_definition, opt_prop_def, prop_def
from xdsl.parser import Parser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

from spaq.backends.sparrow import isa


class SparrowInstruction(IRDLOperation):
    """Base of the generated instruction ops: one `i64` property per ISA field."""

    SPEC: ClassVar[isa.InstructionSpec]

    @classmethod
    def from_instruction(cls, ins: isa.Instruction, layer: str | None = None) -> SparrowInstruction:
        op_cls = OPS[ins.mnemonic]
        props = _properties(ins.spec, dict(zip(ins.spec.field_names, ins.values)))
        attrs = {"layer": StringAttr(layer)} if layer else {}
        return op_cls.create(properties=props, attributes=attrs)

    def instruction(self) -> isa.Instruction:
        values = {n: self.properties[n].value.data for n in self.SPEC.field_names if n in self.properties}
        return isa.Instruction.make(self.SPEC.mnemonic, **values)

    @property
    def layer(self) -> str | None:
        attr = self.attributes.get("layer")
        return attr.data if isinstance(attr, StringAttr) else None

    def verify_(self) -> None:
        try:
            isa.encode(self.instruction())
        except isa.EncodingError as e:
            raise VerifyException(str(e)) from None

    @classmethod
    def parse(cls, parser: Parser) -> SparrowInstruction:
        values: dict[str, int] = {}
        for f in cls.SPEC.fields:
            if f.default is not None:  # optional field: absent means its default
                if parser.parse_optional_keyword(f.name) is None:
                    values[f.name] = f.default
                    continue
            else:
                parser.parse_keyword(f.name)
            parser.parse_punctuation("=")
            if f.enum is not None:
                text = parser.parse_identifier(f"{f.name} ({', '.join(e.name.lower() for e in f.enum)})")
                try:
                    values[f.name] = f.enum[text.upper()]
                except KeyError:
                    parser.raise_error(f"{cls.SPEC.mnemonic}: bad {f.name} '{text}'")
            else:
                values[f.name] = parser.parse_integer(allow_boolean=False)
        attrs = parser.parse_optional_attr_dict()
        return cls.create(properties=_properties(cls.SPEC, values), attributes=attrs)

    def print(self, printer: Printer) -> None:
        text = isa.format_instruction(self.instruction())
        printer.print_string(text[len(self.SPEC.mnemonic):])
        printer.print_op_attributes(self.attributes)


def _properties(spec: isa.InstructionSpec, values: dict[str, int]) -> dict[str, IntegerAttr]:
    """One `i64` property per field; a field with a default is stored only when it differs."""
    return {f.name: IntegerAttr(values[f.name], i64) for f in spec.fields
            if f.default is None or values[f.name] != f.default}


def _make_op(spec: isa.InstructionSpec) -> type[SparrowInstruction]:
    body: dict[str, object] = {f.name: prop_def(IntegerAttr) if f.default is None else opt_prop_def(IntegerAttr)
                               for f in spec.fields}
    body.update(name=f"sparrow.{spec.mnemonic}", SPEC=spec,
                __doc__=f"`{spec.mnemonic}`: {spec.doc} (docs/isa.md).")
    body["__annotations__"] = {"SPEC": ClassVar[isa.InstructionSpec]}
    cls = type(spec.mnemonic.capitalize() + "Op", (SparrowInstruction,), body)
    return irdl_op_definition(cls)


OPS: dict[str, type[SparrowInstruction]] = {s.mnemonic: _make_op(s) for s in isa.INSTRUCTIONS}

SEGMENT_KINDS = ("input", "output", "activation", "values", "metadata", "scales")


@irdl_op_definition
class SegmentOp(IRDLOperation):
    """Places the array `sym` (from the WeightStore, or I/O / scratch when no data) in DRAM.

    ```mlir
    sparrow.segment "fc1.weight.meta" kind=metadata dtype=u2 addr=8192 shape=[32, 32]
    ```
    """

    name = "sparrow.segment"
    sym = prop_def(StringAttr)
    kind = prop_def(StringAttr)
    dtype = prop_def(IntegerAttr)
    addr = prop_def(IntegerAttr)
    shape = prop_def(ArrayAttr[IntAttr])

    def __init__(self, sym: str, kind: str, dtype: isa.DType, addr: int, shape: tuple[int, ...]):
        super().__init__(properties={
            "sym": StringAttr(sym), "kind": StringAttr(kind), "dtype": IntegerAttr(int(dtype), i64),
            "addr": IntegerAttr(addr, i64), "shape": ArrayAttr([IntAttr(d) for d in shape]),
        })

    @property
    def element_type(self) -> isa.DType:
        return isa.DType(self.dtype.value.data)

    @property
    def dims(self) -> tuple[int, ...]:
        return tuple(d.data for d in self.shape.data)

    @property
    def nbytes(self) -> int:
        count = 1
        for d in self.dims:
            count *= d
        return self.element_type.nbytes(count)

    def verify_(self) -> None:
        if self.kind.data not in SEGMENT_KINDS:
            raise VerifyException(f"segment kind must be one of {', '.join(SEGMENT_KINDS)}")
        if self.dtype.value.data not in isa.DType._value2member_map_:
            raise VerifyException(f"bad segment dtype code {self.dtype.value.data}")
        if self.addr.value.data < 0:
            raise VerifyException("segment address must not be negative")

    @classmethod
    def parse(cls, parser: Parser) -> SegmentOp:
        sym = parser.parse_str_literal()
        parser.parse_keyword("kind")
        parser.parse_punctuation("=")
        kind = parser.parse_identifier()
        parser.parse_keyword("dtype")
        parser.parse_punctuation("=")
        dtype_text = parser.parse_identifier()
        if dtype_text.upper() not in isa.DType.__members__:
            parser.raise_error(f"unknown dtype '{dtype_text}'")
        parser.parse_keyword("addr")
        parser.parse_punctuation("=")
        addr = parser.parse_integer(allow_boolean=False)
        parser.parse_keyword("shape")
        parser.parse_punctuation("=")
        shape = parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parser.parse_integer)
        op = cls(sym, kind, isa.DType[dtype_text.upper()], addr, tuple(shape))
        op.attributes.update(parser.parse_optional_attr_dict())
        return op

    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_string_literal(self.sym.data)
        dims = ", ".join(str(d) for d in self.dims)
        printer.print_string(
            f" kind={self.kind.data} dtype={self.element_type.name.lower()} "
            f"addr={self.addr.value.data} shape=[{dims}]"
        )
        printer.print_op_attributes(self.attributes)


Sparrow = Dialect("sparrow", [*OPS.values(), SegmentOp], [])
