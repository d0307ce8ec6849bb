from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spaq.backends.sparrow.isa import (
    INSTRUCTIONS, OPCODE_BITS, WORD_BYTES, EncodingError, Instruction, InstructionSpec, decode,
    decode_program, encode, encode_program, format_instruction, parse_instruction,
)

ISA_MD = Path(__file__).parents[2] / "docs" / "isa.md"


def _field_values(spec: InstructionSpec):
    return st.tuples(*[
        st.sampled_from([int(v) for v in f.enum]) if f.enum else st.integers(0, (1 << f.bits) - 1)
        for f in spec.fields
    ])


@st.composite
def instructions(draw):
    spec = draw(st.sampled_from(INSTRUCTIONS))
    return Instruction(spec, draw(_field_values(spec)))


@given(instructions())
def test_encode_decode_round_trip(ins):
    word = encode(ins)
    assert len(word) == WORD_BYTES and word[0] == ins.spec.opcode
    assert decode(word) == ins


@given(instructions())
def test_parse_format_round_trip(ins):
    assert parse_instruction(format_instruction(ins)) == ins


@given(st.lists(instructions(), max_size=5))
def test_program_round_trip(program):
    assert decode_program(encode_program(program)) == program


def test_encoding_errors():
    gemm = parse_instruction("gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=1 k=1 n=1 accumulate=0")
    values = tuple(65536 if name == "m" else v for name, v in zip(gemm.spec.field_names, gemm.values))
    with pytest.raises(EncodingError, match="m=65536 does not fit 16 bits"):
        encode(Instruction(gemm.spec, values))
    with pytest.raises(EncodingError, match="unknown opcode 0x05"):
        decode(bytes([5]) + bytes(31))
    with pytest.raises(EncodingError, match="reserved bits"):
        decode(bytes([0x3F]) + bytes(30) + b"\x01")
    with pytest.raises(EncodingError, match="unknown instruction 'nop'"):
        parse_instruction("nop")


def field_table(spec: InstructionSpec) -> str:
    """The markdown field table docs/isa.md shows for `spec` (kept in sync by the test below)."""
    rows = ["| bits | field | width | meaning |", "|---|---|---|---|",
            f"| 0..{OPCODE_BITS - 1} | opcode | {OPCODE_BITS} | `0x{spec.opcode:02x}` |"]
    lo = OPCODE_BITS
    for f in spec.own_fields:  # the token flags, common to all, have their own table
        meaning = f.doc
        if f.enum:
            meaning = (meaning + " " if meaning else "") + f"(`{f.enum.__name__}` code)"
        rows.append(f"| {lo}..{lo + f.bits - 1} | `{f.name}` | {f.bits} | {meaning} |")
        lo += f.bits
    return "\n".join(rows)


@pytest.mark.parametrize("spec", INSTRUCTIONS, ids=lambda s: s.mnemonic)
def test_isa_md_field_tables_match_the_table(spec):
    assert field_table(spec) in ISA_MD.read_text(), f"docs/isa.md: regenerate the {spec.mnemonic} field table"
