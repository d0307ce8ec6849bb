"""`spaq-opt`: the opt-style driver (like mlir-opt) for pass-by-pass IR inspection and lit.

    spaq-opt model.onnx -p onnx-canonicalize,choose-compression{precision=int8} --print-ir-after-all
    spaq-opt in.mlir -p 'prune-magnitude' | filecheck in.mlir

Reads `.mlir` and `.onnx` (or `-f onnx` on stdin); registers spaq's dialects and passes
plus xDSL's canonicalize, cse and dce.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.printer import Printer
from xdsl.transforms import get_all_passes
from xdsl.xdsl_opt_main import xDSLOptMain

from spaq.compiler.context import register_dialects
from spaq.compiler.errors import run_for_people
from spaq.compiler.options import parse_shapes
from spaq.compiler.weights import weights_of
from spaq.passes import get_spaq_passes

XDSL_PASSES = ("canonicalize", "cse", "dce")


class SpaqOptMain(xDSLOptMain):
    def register_all_dialects(self) -> None:
        register_dialects(self.ctx)

    def register_all_passes(self) -> None:
        xdsl = get_all_passes()
        for name in XDSL_PASSES:
            self.register_pass(name, xdsl[name])
        for name, factory in get_spaq_passes().items():
            self.register_pass(name, factory)

    def register_all_targets(self) -> None:
        super().register_all_targets()

        def sparrow_asm() -> type:
            from spaq.backends.sparrow.emitter import SparrowAsmTarget

            return SparrowAsmTarget

        self.available_targets["sparrow-asm"] = sparrow_asm

    def register_all_frontends(self) -> None:
        super().register_all_frontends()

        def parse_onnx(io: IO[bytes]) -> ModuleOp:
            from spaq.compiler.onnx_import import import_onnx_bytes

            return import_onnx_bytes(io.read(), self.ctx, parse_shapes(self.args.shape))

        self.available_frontends["onnx"] = parse_onnx

    def parse_chunk(self, chunk: IO[bytes], file_extension: str, start_offset: int = 0) -> ModuleOp | None:
        """Each chunk of --split-input-file is its own compilation: a fresh WeightStore."""
        weights_of(self.ctx).clear()
        return super().parse_chunk(chunk, file_extension, start_offset)

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser) -> None:
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument(
            "--print-ir-after-all", action="store_true",
            help="print the IR to stderr before the first pass and after every pass",
        )
        arg_parser.add_argument(
            "--shape", action="append", default=[], metavar="NAME=D0xD1...",
            help="fix the dimensions of an ONNX graph input (repeatable)",
        )
        arg_parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    def setup_pipeline(self) -> None:
        super().setup_pipeline()
        if not self.args.print_ir_after_all:
            return
        inner = self.pipeline.callback

        def callback(prev: ModulePass | None, module: ModuleOp, nxt: ModulePass | None) -> None:
            if inner is not None:
                inner(prev, module, nxt)
            title = f"IR after {prev.name}" if prev else "IR before the first pass"
            print(f"// -----// {title} //----- //", file=sys.stderr)
            Printer(stream=sys.stderr).print_op(module)
            print("\n", file=sys.stderr)

        self.pipeline = type(self.pipeline)(self.pipeline.passes, callback)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    run = lambda: SpaqOptMain(description="spaq's modular optimizer driver", args=args).run()  # noqa: E731
    return run_for_people("spaq-opt", run, "--debug" in args)


if __name__ == "__main__":
    sys.exit(main())
