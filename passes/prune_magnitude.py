"""prune-magnitude: magnitude pruning of every layer whose decision asks for it.

The weight is viewed as [out_channels, rest] (the sparse encodings' matrix); ties keep the
lower index.
- N:M (`#sparse.nm<N:M>`): in each group of M consecutive weights along the reduction the
  N largest magnitudes are kept; stored as `<name>.nm<N>_<M>`;
- block (`#sparse.block<RxC>`): the ⌈density · blocks⌉ R×C blocks of the largest L1 norm
  are kept, the others zeroed; stored as `<name>.block<R>x<C>`;
- unstructured (`#sparse.unstructured<bitmask|csr>`): the ⌈density · size⌉ largest
  magnitudes of the layer are kept; stored as `<name>.unstructured`.
The pruned weight is packed, so the encoding is in the type:

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
from spaq.dialects.sparse import BlockAttr, NMAttr, PackOp, UnstructuredAttr
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


def block_prune(w: np.ndarray, br: int, bc: int, density: float) -> np.ndarray:
    """Keep the ⌈density · blocks⌉ br x bc blocks of w viewed [w.shape[0], -1] with the
    largest sum of |w| (edge blocks are partial)."""
    rows = w.reshape(w.shape[0], -1)
    n, k = rows.shape
    gr, gc = -(-n // br), -(-k // bc)
    padded = np.zeros((gr * br, gc * bc), np.float64)
    padded[:n, :k] = np.abs(rows)
    score = padded.reshape(gr, br, gc, bc).sum(axis=(1, 3)).ravel()
    keep = np.zeros(gr * gc, bool)
    keep[np.argsort(-score, kind="stable")[: _count(density, gr * gc)]] = True
    mask = np.repeat(np.repeat(keep.reshape(gr, gc), br, axis=0), bc, axis=1)[:n, :k]
    return np.where(mask, rows, 0).reshape(w.shape).astype(w.dtype)


def unstructured_prune(w: np.ndarray, density: float) -> np.ndarray:
    """Keep the ⌈density · size⌉ largest |w|."""
    flat = w.ravel()
    keep = np.zeros(flat.size, bool)
    keep[np.argsort(-np.abs(flat), kind="stable")[: _count(density, flat.size)]] = True
    return np.where(keep, flat, 0).reshape(w.shape).astype(w.dtype)


def _count(density: float, total: int) -> int:
    return min(total, max(1, int(np.ceil(density * total - 1e-9))))


def prune(w: np.ndarray, pattern, density: float | None) -> tuple[np.ndarray, str]:
    """The pruned weight for an encoding, and the suffix of its new name."""
    if isinstance(pattern, NMAttr):
        return nm_prune(w, pattern.n, pattern.m), f"nm{pattern.n}_{pattern.m}"
    d = 0.5 if density is None else density
    if isinstance(pattern, BlockAttr):
        return block_prune(w, pattern.rows, pattern.cols, d), f"block{pattern.rows}x{pattern.cols}"
    if isinstance(pattern, UnstructuredAttr):
        return unstructured_prune(w, d), "unstructured"
    raise SpaqError(f"no pruning for sparsity {pattern}")


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
            w = constant_of(store, layer.operands[1])
            array, suffix = prune(w, pattern, decision.density)
            pruned = new_initializer(store, weight_name(layer.operands[1]), suffix, array)
            pack = PackOp(pruned.output, pattern)
            Rewriter.insert_op([pruned, pack], InsertPoint.before(layer))
            layer.operands[1] = pack.results[0]
        dce(op)  # the unpruned weights
