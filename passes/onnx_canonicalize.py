"""onnx-canonicalize: simplify the imported graph before any compression decision.

- Identity and inference-mode Dropout disappear.
- BatchNormalization after a Conv with constant weights folds into the Conv
  (W' = W·γ/√(σ²+ε), b' = (b−μ)·γ/√(σ²+ε) + β), as new weights `<w>.bnfold`.
- Gemm is normalised to `Y = X·Wᵀ + b` with a constant W stored [N, K] (`transB = 1`,
  alpha and beta folded into the weights): the form later passes and the machine use.
  A MatMul by a constant matrix (with a constant bias added after it) becomes the same
  Gemm between two free Reshapes; chains of Reshapes collapse.
- GELU written out as x·0.5·(1 + erf(x/√2)) becomes onnx.Gelu (FuseGelu).
- CastLike is a Cast; a Gemm by an activation B is MatMul, Mul by alpha, Add of beta·C; the
  forms of canonical_forms.py (empty inputs fold, 1-D MatMul, simple Einsum, BatchNorm /
  InstanceNorm as affine ops / LayerNorm, 16-bit float MatMul in float32, ConvTranspose as
  zero insertion and a stride-1 Conv).
- Shape subgraphs fold away: `onnx.Shape` of any tensor is a constant (shapes are static
  after import), and any op whose inputs are all constants is evaluated by the reference
  evaluator and replaced by an `onnx.Initializer`.

```mlir
// before
%c = onnx.Conv(%x, %w, %b) {...} : (...) -> tensor<1x8x8x8xf32>
%y = onnx.BatchNormalization(%c, %g, %beta, %mu, %var) {epsilon = 1.0e-05 : f32} : (...) -> tensor<1x8x8x8xf32>
// after
%w2 = onnx.Initializer "conv1.weight.bnfold" : tensor<8x1x3x3xf32>
%b2 = onnx.Initializer "conv1.bias.bnfold" : tensor<8xf32>
%y = onnx.Conv(%x, %w2, %b2) {...} : (...) -> tensor<1x8x8x8xf32>
```
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import FloatAttr, IntegerAttr, ModuleOp, TensorType, f32, i64
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
)

from spaq.compiler.evaluator import KERNELS, Evaluation
from spaq.compiler.onnx_import import type_of_array
from spaq.compiler.weights import WeightStore, weights_of
from spaq.dialects.onnx import OPS, InitializerOp, NoValueOp, OnnxOp
from spaq.passes.canonical_forms import (
    BatchNormToAffine, BatchNormTraining, BlockedQuantization, ConvTransposeAsConv, FoldEmpty,
    InstanceNormToLayerNorm, LrnAsConv, MatMulInFloat32, MatMulVector, SimpleEinsum, SubByteZeroPoint,
)


def constant_of(store: WeightStore, value: SSAValue) -> np.ndarray | None:
    """The array behind `value` if it is an initializer, else None."""
    op = value.owner
    if isinstance(op, InitializerOp):
        return Evaluation(store).run_op(op, [])[0]
    return None


def weight_name(value: SSAValue) -> str:
    op = value.owner
    assert isinstance(op, InitializerOp)
    return op.weight_name.data


def new_initializer(store: WeightStore, base: str, suffix: str, array: np.ndarray) -> InitializerOp:
    """An Initializer for a derived weight stored under a fresh name `base.suffix` (a view,
    such as a transpose, stays a view: the emitter lays it out once, in the image)."""
    array = np.asarray(array)
    return InitializerOp(store.derive(base, suffix, array), type_of_array(array))


def is_op(op: Operation, *op_types: str) -> bool:
    return isinstance(op, OnnxOp) and op.op_type in op_types


def has_input(op: Operation, i: int) -> bool:
    return len(op.operands) > i and not isinstance(op.operands[i].owner, NoValueOp)


class EraseIdentity(RewritePattern):
    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if is_op(op, "Identity", "Dropout") and not any(r.uses for r in op.results[1:]):
            rewriter.replace(op, [], [op.operands[0], *[None] * (len(op.results) - 1)])


@dataclass
class DropoutMaskToConstant(RewritePattern):
    """Dropout at inference whose mask is used: the data passes through and the mask is a
    constant all-true tensor (what the evaluator's kernel computes)."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "Dropout") or len(op.results) < 2 or not op.results[1].uses:
            return
        mask = np.ones(tuple(op.results[1].type.get_shape()), dtype=bool)
        init = new_initializer(self.store, op.results[1].name_hint or "dropout", "mask", mask)
        rewriter.replace(op, [init], [op.operands[0], init.output])


@dataclass
class FoldBatchNormIntoConv(RewritePattern):
    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "BatchNormalization") or len(op.results) != 1:
            return
        conv = op.operands[0].owner
        if not is_op(conv, "Conv") or not conv.results[0].has_one_use():
            return
        params = [constant_of(self.store, v) for v in op.operands[1:]]
        w = constant_of(self.store, conv.operands[1])
        b = constant_of(self.store, conv.operands[2]) if has_input(conv, 2) else np.zeros(len(w), np.float32)
        if w is None or b is None or any(p is None for p in params):
            return
        gamma, beta, mean, var = params
        s = (gamma / np.sqrt(var + np.float32(op.attr("epsilon", 1e-5)))).astype(np.float32)
        w_name = weight_name(conv.operands[1])
        b_name = weight_name(conv.operands[2]) if has_input(conv, 2) else w_name.removesuffix(".weight") + ".bias"
        w_op = new_initializer(self.store, w_name, "bnfold", (w * s.reshape(-1, 1, 1, 1)).astype(np.float32))
        b_op = new_initializer(self.store, b_name, "bnfold", ((b - mean) * s + beta).astype(np.float32))
        new = type(conv)([conv.operands[0], w_op.output, b_op.output], [op.results[0].type], dict(conv.attributes))
        new.results[0].name_hint = op.results[0].name_hint
        rewriter.replace(op, [w_op, b_op, new])
        rewriter.erase(conv)


@dataclass
class NormalizeGemm(RewritePattern):
    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "Gemm") or op.attr("transA", 0):
            return
        alpha, beta, trans_b = op.attr("alpha", 1.0), op.attr("beta", 1.0), op.attr("transB", 0)
        if trans_b == 1 and alpha == 1.0 and (beta == 1.0 or not has_input(op, 2)):
            return
        w = constant_of(self.store, op.operands[1])
        c = constant_of(self.store, op.operands[2]) if has_input(op, 2) else None
        if w is None or (has_input(op, 2) and c is None):
            return
        w = (w if trans_b else w.T) * np.float32(alpha)
        new_ops: list[Operation] = [new_initializer(self.store, weight_name(op.operands[1]), "nk", w.astype(np.float32))]
        operands = [op.operands[0], new_ops[0].results[0]]
        if c is not None:
            new_ops.append(new_initializer(self.store, weight_name(op.operands[2]), "scaled",
                                           (c * np.float32(beta)).astype(np.float32)))
            operands.append(new_ops[-1].results[0])
        attrs = dict(op.attributes)
        attrs.update(transB=IntegerAttr(1, i64), alpha=FloatAttr(1.0, f32), beta=FloatAttr(1.0, f32))
        new = type(op)(operands, [op.results[0].type], attrs)
        new.results[0].name_hint = op.results[0].name_hint
        rewriter.replace(op, [*new_ops, new])


@dataclass
class MatMulToGemm(RewritePattern):
    """X[..., K] · B[K, N] with a constant B (a transformer's linear layer), plus a constant
    bias added right after, becomes Reshape → Gemm(W[N, K], b) → Reshape: the layer form
    the compression passes and the machine work on."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "MatMul"):
            return
        b = constant_of(self.store, op.operands[1])
        x_type, y_type = op.operands[0].type, op.results[0].type
        if b is None or b.ndim != 2 or x_type.get_num_dims() < 2 or x_type.element_type != f32:
            return
        (k, n), rows = b.shape, prod(x_type.get_shape()[:-1])
        bias, add = None, None
        if op.results[0].has_one_use() and is_op(user := op.results[0].get_user_of_unique_use(), "Add"):
            other = user.operands[1] if user.operands[0] is op.results[0] else user.operands[0]
            c = constant_of(self.store, other)
            if c is not None and c.size == n and user.results[0].type == y_type:
                bias, add = c.reshape(n), user
        new_ops: list[Operation] = [new_initializer(self.store, weight_name(op.operands[1]), "nk", b.T)]
        operands = [new_ops[0].results[0]]
        if bias is not None:
            new_ops.append(new_initializer(self.store, weight_name(other) if isinstance(other.owner, InitializerOp)
                                           else "bias", "gemm", bias.astype(np.float32)))
            operands.append(new_ops[-1].results[0])
        flat_shape = new_initializer(self.store, "shape", "2d", np.array([rows, k], np.int64))
        out_shape = new_initializer(self.store, "shape", "nd", np.array(y_type.get_shape(), np.int64))
        x2d = OPS["Reshape"]([op.operands[0], flat_shape.output], [TensorType(f32, [rows, k])])
        attrs = {"transB": IntegerAttr(1, i64), **{k_: v for k_, v in op.attributes.items() if "." in k_}}
        gemm = OPS["Gemm"]([x2d.results[0], *operands], [TensorType(f32, [rows, n])], attrs)
        y = OPS["Reshape"]([gemm.results[0], out_shape.output], [y_type])
        anchor = add if add is not None else op
        gemm.results[0].name_hint = anchor.results[0].name_hint
        rewriter.insert([*new_ops, flat_shape, out_shape, x2d, gemm], InsertPoint.before(op))
        rewriter.replace(anchor, [y])
        if add is not None:
            rewriter.erase(op)


class CollapseReshapes(RewritePattern):
    """Reshape of a Reshape is one Reshape; a Reshape to the same shape is nothing."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "Reshape", "Flatten"):
            return
        if op.results[0].type == op.operands[0].type:
            rewriter.replace(op, [], [op.operands[0]])
            return
        inner = op.operands[0].owner
        if is_op(inner, "Reshape", "Flatten") and op.name == "onnx.Reshape":
            op.operands[0] = inner.operands[0]
            rewriter.notify_op_modified(op)


@dataclass
class FoldShape(RewritePattern):
    """Shapes are static after import: `onnx.Shape` of any tensor is a constant."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "Shape"):
            return
        shape = np.asarray(op.operands[0].type.get_shape(), np.int64)
        start, end = op.attr("start", 0), op.attr("end", None)
        base = op.results[0].name_hint or "shape"
        rewriter.replace(op, [new_initializer(self.store, base, "folded", shape[start:end])])


@dataclass
class FuseGelu(RewritePattern):
    """GELU written out, Mul(Mul(x, Add(Erf(Div(x, √2)), 1)), 0.5) (operands in either order;
    the 0.5 may also scale x or 1 + erf first), becomes onnx.Gelu(x): one VUN gelu instead of five
    vector passes. The same function rounded in another order (x·(1/√2) instead of x/√2, the
    exact ·0.5 first): at most an ulp apart, as onnxruntime's own GELU fusion is."""

    store: WeightStore

    def _scalar(self, value: SSAValue, want: float, rel: float = 1e-6) -> bool:
        c = constant_of(self.store, value)
        return c is not None and c.size == 1 and abs(float(c.reshape(-1)[0]) - want) <= rel * abs(want)

    def _other(self, op: Operation, value: SSAValue) -> SSAValue | None:
        a, b = op.operands
        return b if a is value else a if b is value else None

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "Erf") or not op.results[0].has_one_use():
            return
        div = op.operands[0].owner
        if not is_op(div, "Div") or not div.results[0].has_one_use() or not self._scalar(div.operands[1], 2 ** 0.5):
            return
        x = div.operands[0]
        add = op.results[0].get_user_of_unique_use()
        if not is_op(add, "Add") or not add.results[0].has_one_use() or \
                not self._scalar(self._other(add, op.results[0]), 1.0, 0.0):
            return
        mul = add.results[0].get_user_of_unique_use()
        if not is_op(mul, "Mul") or not mul.results[0].has_one_use():
            return
        other = self._other(mul, add.results[0])
        nxt = mul.results[0].get_user_of_unique_use()
        if other is x:  # Mul(Mul(x, 1 + erf), 0.5)
            last, dead = nxt, [nxt, mul, add, op, div]
            if not is_op(nxt, "Mul") or not self._scalar(self._other(nxt, mul.results[0]), 0.5, 0.0):
                return
        elif self._scalar(other, 0.5, 0.0):  # Mul(x, Mul(0.5, 1 + erf))
            last, dead = nxt, [nxt, mul, add, op, div]
            if not is_op(nxt, "Mul") or self._other(nxt, mul.results[0]) is not x:
                return
        elif is_op(other.owner, "Mul") and other.has_one_use() and self._other(other.owner, x) is not None \
                and self._scalar(self._other(other.owner, x), 0.5, 0.0):  # Mul(Mul(x, 0.5), 1 + erf)
            last, dead = mul, [mul, other.owner, add, op, div]
        else:
            return
        t = last.results[0].type
        if t != x.type or element_type_of(t) != f32:
            return
        attrs = {k: v for k, v in last.attributes.items() if k.startswith("onnx.")}
        gelu = OPS["Gelu"]([x], [t], attrs)
        gelu.results[0].name_hint = last.results[0].name_hint
        rewriter.replace(last, [gelu])
        for d in dead[1:]:
            rewriter.erase(d)


class CastLikeToCast(RewritePattern):
    """CastLike(x, like) is Cast(x) to the element type of `like` (its values do not matter):
    the one Cast the machine and constant folding know."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "CastLike"):
            return
        from spaq.compiler.types import onnx_element_type

        attrs = {k: v for k, v in op.attributes.items() if k.startswith("onnx.") or k == "saturate"}
        attrs["to"] = IntegerAttr(onnx_element_type(element_type_of(op.operands[1].type)), i64)
        cast = OPS["Cast"]([op.operands[0]], [op.results[0].type], attrs)
        cast.results[0].name_hint = op.results[0].name_hint
        rewriter.replace(op, [cast])


@dataclass
class GemmByActivation(RewritePattern):
    """Gemm whose B is computed at run time (not a weight): Y = alpha · A'·B' + beta · C becomes
    MatMul(A', B') (transposes as Transpose views), Mul by alpha, Add of beta · C: the matmul
    layer (B loaded into WGT from DRAM) and a vector tail."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not is_op(op, "Gemm") or constant_of(self.store, op.operands[1]) is not None:
            return
        from xdsl.dialects.builtin import DenseArrayBase

        a, b = op.operands[0], op.operands[1]
        y_type = op.results[0].type
        et = element_type_of(y_type)
        new: list[Operation] = []

        def transposed(v: SSAValue) -> SSAValue:
            m, n = v.type.get_shape()
            t = OPS["Transpose"]([v], [TensorType(v.type.element_type, [n, m])],
                                 {"perm": DenseArrayBase.from_list(i64, [1, 0])})
            new.append(t)
            return t.results[0]

        def scalar(value: float, name: str) -> SSAValue:
            init = new_initializer(self.store, "gemm", name, np.array(value, np.float32).astype(
                np.dtype(constant_dtype(et))))
            new.append(init)
            return init.results[0]

        a = transposed(a) if op.attr("transA", 0) else a
        b = transposed(b) if op.attr("transB", 0) else b
        y = OPS["MatMul"]([a, b], [y_type])
        new.append(y)
        out = y.results[0]
        alpha, beta = op.attr("alpha", 1.0), op.attr("beta", 1.0)
        if alpha != 1.0:
            mul = OPS["Mul"]([out, scalar(alpha, "alpha")], [y_type])
            new.append(mul)
            out = mul.results[0]
        if has_input(op, 2) and beta != 0.0:
            c = op.operands[2]
            if beta != 1.0:
                scaled = OPS["Mul"]([c, scalar(beta, "beta")], [c.type])
                new.append(scaled)
                c = scaled.results[0]
            add = OPS["Add"]([out, c], [y_type])
            new.append(add)
            out = add.results[0]
        out.name_hint = op.results[0].name_hint
        rewriter.replace(op, new, [out])


def constant_dtype(t) -> np.dtype:
    from spaq.compiler.types import numpy_dtype

    return numpy_dtype(t)


def element_type_of(t) -> object:
    return t.element_type if isinstance(t, TensorType) else None


@dataclass
class FoldConstants(RewritePattern):
    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, OnnxOp) or op.name not in KERNELS or not op.operands:
            return
        args = [constant_of(self.store, v) if not isinstance(v.owner, NoValueOp) else None for v in op.operands]
        if any(a is None and not isinstance(v.owner, NoValueOp) for a, v in zip(args, op.operands)):
            return
        results = Evaluation(self.store).run_op(op, args)
        base = op.results[0].name_hint or op.op_type.lower()
        new_ops = [new_initializer(self.store, base, "folded", np.asarray(r)) for r in results]
        rewriter.replace(op, new_ops, [n.output for n in new_ops])


@dataclass(frozen=True)
class OnnxCanonicalizePass(ModulePass):
    name = "onnx-canonicalize"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        store = weights_of(ctx)
        patterns = [EraseIdentity(), DropoutMaskToConstant(store), CastLikeToCast(), GemmByActivation(store),
                    FoldBatchNormIntoConv(store), NormalizeGemm(store), MatMulToGemm(store),
                    CollapseReshapes(), FuseGelu(store),
                    FoldShape(store), FoldEmpty(store), MatMulVector(store), SimpleEinsum(store),
                    BatchNormToAffine(store), BatchNormTraining(store), InstanceNormToLayerNorm(store),
                    MatMulInFloat32(), LrnAsConv(store), BlockedQuantization(store),
                    SubByteZeroPoint(store), ConvTransposeAsConv(store),
                    FoldConstants(store)]
        PatternRewriteWalker(GreedyRewritePatternApplier(patterns)).rewrite_module(op)
