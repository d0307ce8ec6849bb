"""prune-magnitude: N:M magnitude pruning of every layer whose decision asks for it.

In each group of M consecutive weights along the reduction (the weight viewed as
[out_channels, rest]) the N largest magnitudes are kept (ties: the lower index). The
pruned weight is stored as `<name>.nm<N>_<M>` and packed, so the encoding is in the type:

```mlir
// before
%w = onnx.Initializer "fc1.weight" : tensor<32x64xf32>
%y = onnx.Gemm(%x, %w, %b) {transB = 1 : i64, spaq.compression = {sparsity = #sparse.nm<2:4>}} : ...
// after
%w2 = onnx.Initializer "fc1.weight.nm2_4" : tensor<32x64xf32>
%ws = sparse.pack %w2 : tensor<32x64xf32> -> tensor<32x64xf32, #sparse.nm<2:4>>
%y = onnx.Gemm(%x, %ws, %b) {transB = 1 : i64, spaq.compression = {sparsity = #sparse.nm<2:4>}} : ...
```
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass
from xdsl.transforms.dead_code_elimination import dce
from xdsl.rewriter import InsertPoint, Rewriter

from spaq.compiler.errors import SpaqError
from spaq.compiler.weights import weights_of
from spaq.dialects.sparse import NMAttr, PackOp
from spaq.passes.compression import decision_of, is_compressible_layer, layer_name
from spaq.passes.onnx_canonicalize import constant_of, new_initializer, weight_name


def nm_prune(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the n largest |w| in every group of m along the rows of w viewed [w.shape[0], -1]."""
    rows = w.reshape(w.shape[0], -1)
    k = rows.shape[1]
    groups = -(-k // m)
    padded = np.zeros((rows.shape[0], groups * m), rows.dtype)
    padded[:, :k] = rows
    g = padded.reshape(rows.shape[0], groups, m)
    order = np.argsort(-np.abs(g), axis=-1, kind="stable")  # stable: ties keep the lower index
    keep = np.zeros(g.shape, bool)
    np.put_along_axis(keep, order[..., :n], True, axis=-1)
    pruned = np.where(keep, g, 0).reshape(rows.shape[0], -1)[:, :k]
    return pruned.reshape(w.shape).astype(w.dtype)


@dataclass(frozen=True)
class PruneMagnitudePass(ModulePass):
    name = "prune-magnitude"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        store = weights_of(ctx)
        for layer in list(op.walk()):
            decision = decision_of(layer)
            if decision is None or decision.sparsity is None:
                continue
            if not is_compressible_layer(layer):
                raise SpaqError(f"layer '{layer_name(layer)}': sparsity needs a constant weight")
            pattern = decision.sparsity
            if not isinstance(pattern, NMAttr):
                raise SpaqError(f"layer '{layer_name(layer)}': only N:M sparsity is implemented, got {pattern}")
            n, m = pattern.n, pattern.m
            w = constant_of(store, layer.operands[1])
            pruned = new_initializer(store, weight_name(layer.operands[1]), f"nm{n}_{m}", nm_prune(w, n, m))
            pack = PackOp(pruned.output, pattern)
            Rewriter.insert_op([pruned, pack], InsertPoint.before(layer))
            layer.operands[1] = pack.results[0]
        dce(op)  # the unpruned weights
