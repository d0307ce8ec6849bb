"""tile-layers: choose each layer's tile sizes for the target's array and scratchpads.

GEMM-like layers are tiled over output channels (N, in multiples of the array's columns)
and, for Gemm, over the reduction (K, in multiples of 64 — whole N:M groups and whole
metadata bytes) until every buffer fits; conv layers keep their im2col rows whole. The
choice is written on the layer as `sparrow.tiles`, where a user or a later planner can
read or pin it.

```mlir
// spaq-opt -p 'tile-layers{target=edge}'
%acc = quant.gemm %x, %w, %b {..., sparrow.tiles = {m = 1 : i64, n = 32 : i64, k = 64 : i64}} : ...
```
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from spaq.backends.sparrow.isa import Buffer
from spaq.backends.sparrow.target import Target, TargetError, load_target
from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import main_func
from spaq.passes.sparrow_layers import TILES_KEY, Layer, allocate, buffer_needs, find_layers, int_dict_attr

K_STEP = 64


def target_of(name: str) -> Target:
    try:
        return load_target(name)
    except TargetError as e:
        raise SpaqError(str(e)) from None


def capacities(target: Target) -> dict[Buffer, int]:
    return {b: target.capacity(b) for b in Buffer}


def choose_tiles(layer: Layer, target: Target) -> dict[str, int]:
    m, k, n = layer.mkn
    cols = target.array.cols
    n_options = sorted({n, *range(cols, n, cols)}, reverse=True)
    k_options = [k] if layer.kind == "conv" else sorted({k, *range(K_STEP, k, K_STEP)}, reverse=True)
    caps = capacities(target)
    for kt in k_options:
        for nt in n_options:
            tiles = {"m": m, "n": nt, "k": kt}
            try:
                allocate(buffer_needs(layer, tiles), caps, layer.name)
                return tiles
            except SpaqError:
                continue
    # the smallest tiles do not fit: let allocate() say which buffer overflows
    smallest = {"m": m, "n": n_options[-1], "k": k_options[-1]}
    allocate(buffer_needs(layer, smallest), caps, layer.name)
    return smallest


@dataclass(frozen=True)
class TileLayersPass(ModulePass):
    name = "tile-layers"

    target: str = "edge"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        target = target_of(self.target)
        for layer in find_layers(main_func(op)):
            if layer.kind in ("conv", "gemm") and TILES_KEY not in layer.head.attributes:
                layer.head.attributes[TILES_KEY] = int_dict_attr(choose_tiles(layer, target))
