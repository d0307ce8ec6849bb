"""The compiler as a library: ONNX model -> Sparrow program + memory image.

    c = compile_model("model.onnx", target="edge", sparsity="2:4", precision="int8",
                      calibration="calib.npz", shapes={"input": [1, 1, 8, 8]})
    c.program, c.image, c.module     # emitted program, memory image, lowered IR
    c.estimates                      # layer name -> the planner's estimate (GEMM and conv layers)

The pipeline is a fixed list of the same passes `spaq-opt` runs one by one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline

from spaq.backends.sparrow.cost import Cost
from spaq.backends.sparrow.emitter import assemble
from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import Instruction
from spaq.backends.sparrow.target import Target
from spaq.compiler.context import make_context
from spaq.compiler.evaluator import main_func
from spaq.compiler.onnx_import import import_onnx
from spaq.compiler.weights import weights_of
from spaq.passes.allocate_scratchpad import AllocateScratchpadPass
from spaq.passes.choose_compression import ChooseCompressionPass
from spaq.passes.import_qdq import ImportQdqPass
from spaq.passes.layer_estimate import estimate_layers
from spaq.passes.lower_to_sparrow import LowerToSparrowPass
from spaq.passes.onnx_canonicalize import OnnxCanonicalizePass
from spaq.passes.prune_magnitude import PruneMagnitudePass
from spaq.passes.quantize import QuantizePass
from spaq.passes.schedule_tokens import ScheduleTokensPass
from spaq.passes.sparrow_layers import analyze
from spaq.passes.tile_layers import TileLayersPass, target_of


@dataclass
class Compilation:
    ctx: Context
    module: ModuleOp
    program: list[Instruction]
    image: MemoryImage
    target: Target
    estimates: dict[str, Cost] = field(default_factory=dict)


def passes(target: str, sparsity: str = "none", precision: str = "fp32", calibration: str = "",
           skip: str = "", density: float | str = 0.5, askip: str = "none") -> list[ModulePass]:
    """The pipeline `spaq compile` runs, up to and including schedule-tokens."""
    steps: list[ModulePass] = [
        ImportQdqPass(),  # before onnx-canonicalize, which would fold the weights' DequantizeLinear
        OnnxCanonicalizePass(),
        ChooseCompressionPass(sparsity=sparsity, precision=precision, skip=tuple(n for n in skip.split(",") if n),
                              density=density, askip=askip),
        PruneMagnitudePass(),
        QuantizePass(calibration=str(calibration)),
        TileLayersPass(target=target),
        AllocateScratchpadPass(target=target),
        LowerToSparrowPass(target=target),
        ScheduleTokensPass(target=target),
    ]
    return steps


def compile_model(model: str | Path, target: str = "edge", sparsity: str = "none", precision: str = "fp32",
                  calibration: str | Path = "", shapes: dict[str, list[int]] | None = None, skip: str = "",
                  stop_before: str | None = None,
                  after_pass: Callable[[ModulePass, ModuleOp], None] | None = None,
                  density: float | str = 0.5, askip: str = "none",
                  image_file: str | Path | None = None) -> Compilation:
    """Compile `model`; `stop_before` ends the pipeline before the named pass (the module
    is then returned without a program); `after_pass(pass, module)` sees every step;
    `image_file` receives the memory image directly (what `spaq compile` does: the image is
    never whole in memory)."""
    tgt = target_of(target)
    ctx = make_context()
    module = import_onnx(model, ctx, shapes)
    steps = passes(target, sparsity, precision, str(calibration), skip, density, askip)
    if stop_before is not None:
        steps = steps[: [p.name for p in steps].index(stop_before)]

    estimates: dict[str, Cost] = {}

    def callback(prev: ModulePass | None, m: ModuleOp, nxt: ModulePass | None) -> None:
        m.verify()
        if prev is not None and after_pass is not None:
            after_pass(prev, m)
        if nxt is not None and nxt.name == LowerToSparrowPass.name:  # tiles and SRAM are decided
            estimates.update(estimate_layers(analyze(main_func(m), weights_of(ctx))[0], tgt))

    PassPipeline(tuple(steps), callback).apply(ctx, module)
    if stop_before is not None:
        return Compilation(ctx, module, [], MemoryImage.empty(), tgt)
    program, image = assemble(module, weights_of(ctx), image_file)
    return Compilation(ctx, module, program, image, tgt, estimates)
