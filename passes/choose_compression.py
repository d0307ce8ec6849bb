"""choose-compression: write the per-layer compression decision from options.

Every compressible layer (Conv, or Gemm with a constant W[N, K]) without a decision gets
`spaq.compression`: the same choice for all, as the options say. A layer that already has
one (pinned by hand) keeps it; `skip` names layers to leave uncompressed. N:M sparsity
goes only to layers whose reduction splits into whole groups of M (as cuSPARSELt and
NVIDIA's ASP require): a first conv over one channel (K = 9) stays dense. The per-layer
planner that searches against the cost model is a later pass writing the same attribute.

Options:
- `precision`: fp32 | fp16 | bf16 | fp8-e4m3 | fp8-e5m2 (weights and activations rounded to
  the type) | int8 | int4 | int2 (symmetric per-channel weights) | ternary | binary (one
  per-tensor scale, BitNet style) | codebook[-K] (K = 2, 4, 16 (default) or 256 shared
  int8 values, per-channel scales) — all with static int8 activations; a suffix -a4 / -a2
  (int4-a4, int2-a2, ternary-a4, ...) makes Gemm layers' activations 4 / 2-bit (the i4 / i2
  GEMM modes; convolutions keep int8, their NCHW <-> HWC transfers need whole bytes) — |
  int8-dynamic (per-token int8 activations, for transformers);
- `sparsity`: none | N:M | block-RxC | unstructured-bitmask | unstructured-csr;
- `density`: the fraction of weights (blocks) block and unstructured pruning keeps
  (default 0.5);
- `askip`: none (default) | relu — mark layers whose input is a ReLU output (through
  MaxPool and reshapes, which keep its zeros) for zero-activation skipping.

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
from xdsl.dialects.builtin import BFloat16Type, Float8E4M3FNType, Float8E5M2Type, Float16Type, ModuleOp
from xdsl.ir import Attribute, Operation
from xdsl.passes import ModulePass

from spaq.compiler.errors import SpaqError
from spaq.compiler.options import parse_density, parse_sparsity
from spaq.dialects.onnx import OnnxOp
from spaq.dialects.quant import Granularity, QuantType
from spaq.dialects.sparse import BlockAttr, NMAttr, UnstructuredAttr
from spaq.passes.compression import KEY, Decision, decision_of, is_compressible_layer, layer_name

_A8 = QuantType(8)
_PER_CHANNEL = dict(granularity=Granularity.PER_CHANNEL, axis=0)
PRECISIONS: dict[str, tuple[Attribute | None, Attribute | None]] = {
    "fp32": (None, None),
    "fp16": (Float16Type(), Float16Type()),
    "bf16": (BFloat16Type(), BFloat16Type()),
    "fp8-e4m3": (Float8E4M3FNType(), Float8E4M3FNType()),
    "fp8-e5m2": (Float8E5M2Type(), Float8E5M2Type()),
    "int8": (QuantType(8, **_PER_CHANNEL), _A8),
    "int8-dynamic": (QuantType(8, **_PER_CHANNEL), QuantType(8, granularity=Granularity.PER_TOKEN)),
    "int4": (QuantType(4, **_PER_CHANNEL), _A8),
    "int2": (QuantType(2, **_PER_CHANNEL), _A8),
    "ternary": (QuantType(2, ternary=True), _A8),
    "binary": (QuantType(1), _A8),
    **{f"codebook-{k}": (QuantType(8, **_PER_CHANNEL, codebook=k), _A8) for k in (2, 4, 16, 256)},
}
"""precision option -> (weights, activations) types of the decision. `codebook` means
codebook-16."""
ZERO_KEEPING = ("MaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Identity")
"""Ops between a ReLU and a layer that keep the ReLU's zeros zeros (askip=relu)."""


@dataclass(frozen=True)
class ChooseCompressionPass(ModulePass):
    name = "choose-compression"

    sparsity: str = "none"
    precision: str = "fp32"
    skip: tuple[str, ...] = ()
    density: float | int | str = 0.5
    askip: str = "none"

    def decision(self) -> Decision:
        spec = parse_sparsity(self.sparsity)
        precision, _, abits = self.precision.partition("-a") if "-a" in self.precision else (self.precision, "", "")
        precision = "codebook-16" if precision == "codebook" else precision
        if abits and (abits not in ("8", "4", "2") or not isinstance(PRECISIONS.get(precision, (None,))[0], QuantType)
                      or precision == "int8-dynamic"):
            raise SpaqError(f"precision '{self.precision}': the activation suffix is -a8, -a4 or -a2 after an "
                            f"integer weight precision (e.g. int4-a4)")
        if precision not in PRECISIONS:
            names = [p for p in PRECISIONS if not p.startswith("codebook-")] + ["codebook[-2|-4|-16|-256]"]
            raise SpaqError(f"precision '{self.precision}' is not one of {', '.join(names)}")
        if self.askip not in ("none", "relu"):
            raise SpaqError(f"askip '{self.askip}' is not one of none, relu")
        weights, activations = PRECISIONS[precision]
        if abits:
            activations = QuantType(int(abits))
        sparsity, density = None, None
        if spec is not None:
            kind, args = spec
            sparsity = {"nm": NMAttr, "block": BlockAttr, "unstructured": UnstructuredAttr}[kind](*args)
            density = parse_density(self.density) if kind != "nm" else None
        return Decision(sparsity, weights, activations, density)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        decision = self.decision()
        skip = {name for names in self.skip for name in names.split(",") if name}
        layers = [o for o in op.walk() if is_compressible_layer(o)]
        unknown = skip - {layer_name(o) for o in layers}
        if unknown:
            raise SpaqError(f"skip names no layer: {', '.join(sorted(unknown))}")
        if decision == Decision() and self.askip == "none":
            return
        for layer in layers:
            if decision_of(layer) is None and layer_name(layer) not in skip:
                chosen = decision if _whole_groups(layer, decision.sparsity) else \
                    replace(decision, sparsity=None, density=None)
                if layer.op_type == "Conv" and isinstance(chosen.activations, QuantType) \
                        and chosen.activations.storage_bits < 8:
                    chosen = replace(chosen, activations=_A8)  # sub-byte activations: Gemm layers only
                if self.askip == "relu" and _relu_input(layer):
                    chosen = replace(chosen, askip=True)
                if chosen != Decision():
                    layer.attributes[KEY] = chosen.to_attr()


def _whole_groups(layer: Operation, pattern: Attribute | None) -> bool:
    if not isinstance(pattern, NMAttr):
        return True
    weight = layer.operands[1].type
    return prod(weight.get_shape()[1:]) % pattern.m == 0


def _relu_input(layer: Operation) -> bool:
    """The layer's input is a Relu's output, possibly through ops that keep its zeros."""
    op = layer.operands[0].owner
    while isinstance(op, OnnxOp) and op.op_type in ZERO_KEEPING:
        op = op.operands[0].owner
    return isinstance(op, OnnxOp) and op.op_type == "Relu"
