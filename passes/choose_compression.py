"""choose-compression: write the per-layer compression decision from options.

Every compressible layer (Conv, or Gemm with a constant W[N, K]) without a decision gets
`spaq.compression`: the same choice for all, as the options say. A layer that already has
one (pinned by hand) keeps it; `skip` names layers to leave uncompressed. N:M sparsity
goes only to layers whose reduction splits into whole groups of M (as cuSPARSELt and
NVIDIA's ASP require): a first conv over one channel (K = 9) stays dense. The per-layer
planner that searches against the cost model is a later pass writing the same attribute.

```mlir
// spaq-opt -p 'choose-compression{sparsity="2:4" precision=int8}'
%y = onnx.Gemm(%x, %w, %b) {transB = 1 : i64} : ...
// becomes
%y = onnx.Gemm(%x, %w, %b) {transB = 1 : i64, spaq.compression = {sparsity = #sparse.nm<2:4>,
       weights = !quant.q<si8:f32, per_channel axis=0>, activations = !quant.q<si8:f32>}} : ...
```
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation
from xdsl.passes import ModulePass

from spaq.compiler.errors import SpaqError
from spaq.compiler.options import parse_nm
from spaq.dialects.quant import Granularity, QuantType
from spaq.dialects.sparse import NMAttr
from spaq.passes.compression import KEY, Decision, decision_of, is_compressible_layer, layer_name

PRECISIONS = ("fp32", "int8", "int8-dynamic")
"""fp32; int8 weights per channel with static per-tensor int8 activations; or int8 weights
with dynamic per-token int8 activations (scales computed at run time, for transformers)."""


@dataclass(frozen=True)
class ChooseCompressionPass(ModulePass):
    name = "choose-compression"

    sparsity: str = "none"
    precision: str = "fp32"
    skip: tuple[str, ...] = ()

    def decision(self) -> Decision:
        nm = parse_nm(self.sparsity)
        if self.precision not in PRECISIONS:
            raise SpaqError(f"precision '{self.precision}' is not one of {', '.join(PRECISIONS)}")
        weights = activations = None
        if self.precision.startswith("int8"):
            weights = QuantType(8, granularity=Granularity.PER_CHANNEL, axis=0)
            dynamic = self.precision == "int8-dynamic"
            activations = QuantType(8, granularity=Granularity.PER_TOKEN if dynamic else Granularity.PER_TENSOR)
        return Decision(NMAttr(*nm) if nm else None, weights, activations)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        decision = self.decision()
        skip = {name for names in self.skip for name in names.split(",") if name}
        layers = [o for o in op.walk() if is_compressible_layer(o)]
        unknown = skip - {layer_name(o) for o in layers}
        if unknown:
            raise SpaqError(f"skip names no layer: {', '.join(sorted(unknown))}")
        if decision == Decision():
            return
        for layer in layers:
            if decision_of(layer) is None and layer_name(layer) not in skip:
                chosen = decision if _whole_groups(layer, decision.sparsity) else replace(decision, sparsity=None)
                if chosen != Decision():
                    layer.attributes[KEY] = chosen.to_attr()


def _whole_groups(layer: Operation, pattern: NMAttr | None) -> bool:
    if pattern is None:
        return True
    weight = layer.operands[1].type
    return prod(weight.get_shape()[1:]) % pattern.m == 0
