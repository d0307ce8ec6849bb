"""allocate-scratchpad: place every layer's tiles in the target's on-chip buffers.

Each layer's regions (input, im2col columns, weights, metadata, accumulator, parameters,
output; a vector region's tile slots and vectors) get byte offsets in ACT / WGT / META /
ACC / PARAM, 64-byte aligned; layers run one after another, so each starts from an empty
scratchpad. A layer that does not fit is an error naming the layer, the buffer and both
sizes. Offsets are written as `sparrow.sram`.

```mlir
// spaq-opt -p 'tile-layers{target=edge},allocate-scratchpad{target=edge}'
%acc = quant.gemm %x, %w, %b {..., sparrow.sram = {out = 128 : i64, wgt = 0 : i64, acc = 0 : i64, param = 0 : i64, in = 0 : i64}} : ...
```
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from spaq.compiler.evaluator import main_func
from spaq.compiler.weights import weights_of
from spaq.passes.sparrow_layers import SRAM_KEY, allocate, buffer_needs, find_layers, int_dict_attr
from spaq.passes.tile_layers import capacities, needs_tiles, target_of


@dataclass(frozen=True)
class AllocateScratchpadPass(ModulePass):
    name = "allocate-scratchpad"

    target: str = "edge"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        caps = capacities(target_of(self.target))
        store = weights_of(ctx)
        for layer in find_layers(main_func(op), store):
            if layer.kind == "view" and not layer.copy:
                continue
            tiles = layer.tiles() if needs_tiles(layer) else layer.optional_tiles()
            needs = buffer_needs(layer, tiles, store)
            layer.head.attributes[SRAM_KEY] = int_dict_attr(allocate(needs, caps, layer.name))
