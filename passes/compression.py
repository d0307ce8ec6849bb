"""The per-layer compression decision, `spaq.compression`, as IR data.

    %y = onnx.Conv(...) {spaq.compression = {sparsity = #sparse.nm<2:4>,
                                             weights = !quant.q<si8:f32, per_channel axis=0>,
                                             activations = !quant.q<si8:f32>}} : ...

- `sparsity`: a `#sparse.*` encoding (nm, block, unstructured);
- `density` (f32, block and unstructured only): the fraction of weights (blocks) pruning keeps;
- `weights` / `activations`: `!quant.q` types (integer, binary, ternary, codebook weights;
  int8 activations, static or per token), or float types (f16, bf16, f8E4M3FN, f8E5M2: the
  layer multiplies values rounded to that type);
- `askip` (true): the layer's input is a ReLU output, worth skipping zero activations on
  (GEMM `askip`, where the target has the zero detector).

Written by choose-compression (or by hand: a pinned layer, or a later per-layer planner),
read by prune-magnitude, quantize and lower-to-sparrow. Not a pass: the shared vocabulary
of the passes that make and apply decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects.builtin import BoolAttr, DictionaryAttr, FloatAttr, StringAttr, f32
from xdsl.ir import Attribute, Operation, SSAValue

from spaq.dialects.onnx import InitializerOp, OnnxOp

KEY = "spaq.compression"
LAYER_OPS = ("Conv", "Gemm")


@dataclass(frozen=True)
class Decision:
    sparsity: Attribute | None = None
    weights: Attribute | None = None
    activations: Attribute | None = None
    density: float | None = None
    askip: bool = False

    def to_attr(self) -> DictionaryAttr:
        items = {"sparsity": self.sparsity, "density": None if self.density is None else FloatAttr(self.density, f32),
                 "weights": self.weights, "activations": self.activations,
                 "askip": BoolAttr.from_bool(True) if self.askip else None}
        return DictionaryAttr({k: v for k, v in items.items() if v is not None})


def decision_of(op: Operation) -> Decision | None:
    attr = op.attributes.get(KEY)
    if not isinstance(attr, DictionaryAttr):
        return None
    d = attr.data
    density = d.get("density")
    askip = d.get("askip")
    return Decision(d.get("sparsity"), d.get("weights"), d.get("activations"),
                    density.value.data if isinstance(density, FloatAttr) else None,
                    bool(askip is not None and getattr(askip, "value", None) and askip.value.data))


def skips_zero_activations(op: Operation, target) -> bool:
    """Whether the layer's GEMMs run with `askip`: its decision says its input is a ReLU
    output and `target` has the zero detector (else the flag is dropped: it changes no result)."""
    d = decision_of(op)
    return bool(d is not None and d.askip and "act_detect" in target.decode_per_cycle)


def layer_name(op: Operation) -> str:
    """The ONNX node name of a layer (or its result's name)."""
    node = op.attributes.get("onnx.node")
    if isinstance(node, StringAttr):
        return node.data
    return op.results[0].name_hint or op.name


def is_compressible_layer(op: Operation) -> bool:
    """A Conv or Gemm (in normalised W[N, K] form) whose weight is a constant."""
    if not isinstance(op, OnnxOp) or op.op_type not in LAYER_OPS or len(op.operands) < 2:
        return False
    if op.op_type == "Gemm" and (op.attr("transB", 0) != 1 or op.attr("transA", 0)):
        return False
    return is_constant(op.operands[1])


def is_constant(value: SSAValue) -> bool:
    """An initializer, or a sparse.pack / quant.quantize of a constant."""
    owner = value.owner
    if isinstance(owner, InitializerOp):
        return True
    if isinstance(owner, Operation) and owner.name in ("sparse.pack", "quant.quantize"):
        return is_constant(owner.operands[0])
    return False
