"""Emission: lowered `sparrow` IR -> program (assembly text and binary) + memory image.

    program, image = assemble(module, weights_of(ctx))
    write_program(out_dir, program, image)   # program.s, program.bin, image.bin, layout.json

The memory image packs every `sparrow.segment` with data from the WeightStore (values,
metadata, scales); the image's `layers` map instruction ranges to source layers. The same
assembly text is what `spaq-opt -t sparrow-asm` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.utils.target import Target

from spaq.backends.sparrow.image import MemoryImage, Symbol
from spaq.backends.sparrow.isa import Instruction, encode_program, format_instruction
from spaq.compiler.mapped_weights import release_pages
from spaq.compiler.weights import WeightStore
from spaq.dialects.sparrow import SegmentOp, SparrowInstruction


def assemble(module: ModuleOp, store: WeightStore,
             image_file: str | Path | None = None) -> tuple[list[Instruction], MemoryImage]:
    """The program and its memory image — in memory, or (`image_file`) written straight
    into that file, each block of bytes leaving memory once packed (`MemoryImage.on_disk`)."""
    program: list[Instruction] = []
    layers: list[dict] = []
    symbols: dict[str, Symbol] = {}
    for op in module.walk():
        if isinstance(op, SegmentOp):
            symbols[op.sym.data] = Symbol(op.sym.data, op.addr.value.data, op.element_type, op.dims, op.kind.data)
        elif isinstance(op, SparrowInstruction):
            layer = op.layer or ""
            if layer and (not layers or layers[-1]["name"] != layer):
                layers.append({"name": layer, "first": len(program), "last": len(program)})
            if layer:
                layers[-1]["last"] = len(program)
            program.append(op.instruction())
    size = max((s.end for s in symbols.values()), default=0)
    if image_file is None:
        image = MemoryImage(size, symbols, np.zeros(size, np.uint8), layers)
    else:
        image = MemoryImage.on_disk(image_file, size, symbols, layers)
    for name, s in symbols.items():
        if s.kind in ("values", "metadata", "scales"):
            image.write(name, store[name], after_block=_release)
    return program, image


def _release(source: np.ndarray, packed: np.ndarray) -> None:
    """Mapped pages leave memory as their bytes land: the weights' (read from the model file)
    and the image's (when it is written to its file)."""
    release_pages(source)
    release_pages(packed)


def assembly_text(program: list[Instruction], image: MemoryImage) -> str:
    lines = ["# Sparrow program (docs/isa.md)"]
    starts = {layer["first"]: layer["name"] for layer in image.layers}
    for i, ins in enumerate(program):
        if i in starts:
            lines.append(f"# layer {starts[i]}")
        lines.append(format_instruction(ins))
    return "\n".join(lines) + "\n"


def write_program(directory: str | Path, program: list[Instruction], image: MemoryImage) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "program.s").write_text(assembly_text(program, image))
    (d / "program.bin").write_bytes(encode_program(program))
    image.save(d)


@dataclass(frozen=True)
class SparrowAsmTarget(Target):
    """`spaq-opt -t sparrow-asm`: print the lowered module as Sparrow assembly."""

    name = "sparrow-asm"

    def emit(self, ctx: Context, module: ModuleOp, output: IO[str]) -> None:
        from spaq.compiler.weights import weights_of

        program, image = assemble(module, weights_of(ctx))
        output.write(assembly_text(program, image))
