"""onnx-canonicalize patterns that put ops into the forms Sparrow's layers run (used by
passes/onnx_canonicalize.py; every rewrite keeps the graph's values, the evaluator runs both):

- an op on an empty graph input (no elements) whose other operands are constants is a
  constant: evaluated once (ReduceSum over an empty axis is zeros, ReduceProd ones,
  ReduceMax −∞ / the integer type's minimum / false, ...);
- MatMul with a 1-D operand is MatMul of that operand reshaped to a row (or a column), then a
  Reshape to the result (both free views);
- Einsum with a transpose, a sum over axes, an inner product or a batched matmul equation is
  Transpose / ReduceSum / Mul + ReduceSum / MatMul;
- BatchNormalization (inference, not after a Conv) is x · a + b with per-channel a, b computed
  from the statistics; in training mode, the per-channel mean and variance (ReduceMean) and
  the running statistics; InstanceNormalization is LayerNormalization over the spatial axes
  then the per-channel scale and bias;
- a MatMul between 16-bit float activations is a float32 MatMul between Casts;
- blocked QuantizeLinear / DequantizeLinear read each scale (zero point) repeated over its
  block (a Gather view); QuantizeLinear into int4 / uint4 with per-axis zero points is an
  8-bit one, a Clip to the 4-bit range and a Cast;
- LRN is x · (bias + alpha / size · Conv(x², banded ones))^(−beta).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import ml_dtypes
import numpy as np
from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, TensorType, i64
from xdsl.ir import BlockArgument, Operation, SSAValue
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern

from spaq.compiler.evaluator import KERNELS, Evaluation
from spaq.compiler.weights import WeightStore
from spaq.dialects.onnx import OPS, NoValueOp, OnnxOp


def _shape(v: SSAValue) -> tuple[int, ...]:
    return tuple(v.type.get_shape())


def _empty(v: SSAValue) -> bool:
    return isinstance(v.type, TensorType) and 0 in _shape(v)


@dataclass
class FoldEmpty(RewritePattern):
    """An op reading an empty tensor, with every other operand a constant, is a constant."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from spaq.compiler.types import numpy_dtype
        from spaq.passes.onnx_canonicalize import constant_of, new_initializer

        if not isinstance(op, OnnxOp) or op.name not in KERNELS or not op.operands:
            return
        args, empty = [], False
        for v in op.operands:
            if isinstance(v.owner, NoValueOp):
                args.append(None)
                continue
            c = constant_of(self.store, v)
            if c is None and _empty(v) and isinstance(v, BlockArgument):  # a graph input's shape is its feed's
                c, empty = np.zeros(_shape(v), numpy_dtype(v.type.element_type)), True
            if c is None:
                return
            args.append(c)
        if not empty:
            return
        results = Evaluation(self.store).run_op(op, args)
        base = op.results[0].name_hint or op.op_type.lower()
        new_ops = [new_initializer(self.store, base, "folded", np.asarray(r)) for r in results]
        rewriter.replace(op, new_ops, [n.output for n in new_ops])


def _reshape(store: WeightStore, v: SSAValue, shape: tuple[int, ...], new: list[Operation]) -> SSAValue:
    from spaq.passes.onnx_canonicalize import new_initializer

    s = new_initializer(store, "shape", "mm", np.array(shape, np.int64))
    r = OPS["Reshape"]([v, s.output], [TensorType(v.type.element_type, list(shape))])
    new += [s, r]
    return r.results[0]


@dataclass
class MatMulVector(RewritePattern):
    """MatMul with a 1-D operand: a [1, K] row (A) or a [K, 1] column (B), then the result
    reshaped (numpy's matmul rule)."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        if not isinstance(op, OnnxOp) or op.op_type != "MatMul":
            return
        a, b = op.operands
        if len(_shape(a)) > 1 and len(_shape(b)) > 1:
            return
        new: list[Operation] = []
        a2 = _reshape(self.store, a, (1, _shape(a)[0]), new) if len(_shape(a)) == 1 else a
        b2 = _reshape(self.store, b, (_shape(b)[0], 1), new) if len(_shape(b)) == 1 else b
        sa, sb = _shape(a2), _shape(b2)
        batch = np.broadcast_shapes(sa[:-2], sb[:-2])
        mm = OPS["MatMul"]([a2, b2], [TensorType(op.results[0].type.element_type, [*batch, sa[-2], sb[-1]])])
        new.append(mm)
        y = _reshape(self.store, mm.results[0], _shape(op.results[0]), new)
        y.name_hint = op.results[0].name_hint
        rewriter.replace(op, new, [y])


@dataclass
class SimpleEinsum(RewritePattern):
    """Einsum equations that are one of the ops Sparrow runs: a permutation (Transpose), a sum
    over letters of one operand (ReduceSum, after a Transpose if the kept letters move), an
    inner product (Mul, ReduceSum), a batched matmul `...ij,...jk->...ik` (MatMul)."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from spaq.passes.onnx_canonicalize import new_initializer

        if not isinstance(op, OnnxOp) or op.op_type != "Einsum":
            return
        eq = op.attr("equation")
        eq = (eq.decode() if isinstance(eq, bytes) else str(eq)).replace(" ", "")
        if "..." in eq:
            return
        lhs, _, rhs = eq.partition("->")
        terms = lhs.split(",")
        if "->" not in eq:
            rhs = "".join(sorted(c for c in set(lhs) - {","} if lhs.count(c) == 1))
        if len(terms) != len(op.operands) or any(len(t) != len(_shape(v)) for t, v in zip(terms, op.operands)):
            return
        if any(len(set(t)) != len(t) for t in terms):
            return  # a diagonal
        out_type = op.results[0].type
        new: list[Operation] = []

        def reduce_sum(v: SSAValue, letters: str, keep: str) -> SSAValue:
            axes = [i for i, c in enumerate(letters) if c not in keep]
            kept = [c for c in letters if c in keep]
            if axes:
                ax = new_initializer(self.store, "axes", "einsum", np.array(axes, np.int64))
                shape = [n for c, n in zip(letters, _shape(v)) if c in keep]
                r = OPS["ReduceSum"]([v, ax.output], [TensorType(out_type.element_type, shape)],
                                     {"keepdims": IntegerAttr(0, i64)})
                new.extend([ax, r])
                v = r.results[0]
            if kept != list(keep):
                perm = [kept.index(c) for c in keep]
                t = OPS["Transpose"]([v], [TensorType(out_type.element_type, [_shape(v)[p] for p in perm])],
                                     {"perm": DenseArrayBase.from_list(i64, perm)})
                new.append(t)
                v = t.results[0]
            return v

        if len(terms) == 1 and terms[0] == rhs:  # the identity
            rewriter.replace(op, [], [op.operands[0]])
            return
        if len(terms) == 1 and set(rhs) <= set(terms[0]):
            y = reduce_sum(op.operands[0], terms[0], rhs)
        elif len(terms) == 2 and terms[0] == terms[1] and set(rhs) <= set(terms[0]) and \
                _shape(op.operands[0]) == _shape(op.operands[1]):
            mul = OPS["Mul"]([op.operands[0], op.operands[1]], [op.operands[0].type])
            new.append(mul)
            y = reduce_sum(mul.results[0], terms[0], rhs)
        elif len(terms) == 2 and len(rhs) >= 2 and len(terms[0]) == len(terms[1]) == len(rhs):
            b, (i, j), (j2, k) = rhs[:-2], terms[0][-2:], terms[1][-2:]
            if not (terms[0][:-2] == terms[1][:-2] == b and j == j2 and rhs[-2:] == i + k and len({i, j, k}) == 3):
                return
            mm = OPS["MatMul"]([op.operands[0], op.operands[1]], [out_type])
            new.append(mm)
            y = mm.results[0]
        else:
            return
        if not new:
            return
        y.name_hint = op.results[0].name_hint
        rewriter.replace(op, new, [y])


@dataclass
class BatchNormToAffine(RewritePattern):
    """Inference BatchNormalization (not after a Conv, which folds it into its weights):
    y = x · a + b with a = γ / √(σ² + ε), b = β − μ · a per channel, computed on the [C]
    vectors (folded when they are constants) and broadcast as [C, 1, ...] views."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from spaq.passes.onnx_canonicalize import new_initializer

        if not isinstance(op, OnnxOp) or op.op_type != "BatchNormalization" or len(op.results) != 1:
            return
        if op.attr("training_mode", 0) or len(_shape(op.operands[0])) < 2:
            return
        x, gamma, beta, mean, var = op.operands[:5]
        vt = gamma.type
        new: list[Operation] = []

        def node(t: str, *args: SSAValue) -> SSAValue:
            o = OPS[t](list(args), [vt])
            new.append(o)
            return o.results[0]

        eps = new_initializer(self.store, "batchnorm", "eps", np.array(op.attr("epsilon", 1e-5),
                                                                    np.dtype(_np(vt.element_type))))
        new.append(eps)
        a = node("Div", gamma, node("Sqrt", node("Add", var, eps.output)))
        b = node("Sub", beta, node("Mul", mean, a))
        shape = (_shape(gamma)[0],) + (1,) * (len(_shape(x)) - 2)
        mul = OPS["Mul"]([x, _reshape(self.store, a, shape, new)], [x.type])
        new.append(mul)
        add = OPS["Add"]([mul.results[0], _reshape(self.store, b, shape, new)], [op.results[0].type])
        new.append(add)
        add.results[0].name_hint = op.results[0].name_hint
        rewriter.replace(op, new)



@dataclass
class BatchNormTraining(RewritePattern):
    """Training-mode BatchNormalization (outputs Y, running_mean, running_var) as the ops that
    define it: per-channel mean μ and population variance σ² over every axis but 1
    (ReduceMean), Y = (x − μ) / √(σ² + ε) · γ + β, running_mean = mean · m + μ · (1 − m),
    running_var = var · m + σ² · (1 − m)."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from spaq.passes.onnx_canonicalize import new_initializer

        if not isinstance(op, OnnxOp) or op.op_type != "BatchNormalization" or not op.attr("training_mode", 0):
            return
        x, gamma, beta, mean, var = op.operands[:5]
        rank = len(_shape(x))
        if rank < 2 or len(op.results) > 3:
            return
        xt, vt = x.type, gamma.type
        c = _shape(x)[1]
        dt = np.dtype(_np(xt.element_type))
        new: list[Operation] = []

        def node(t: str, ty, *args: SSAValue, **attrs) -> SSAValue:
            o = OPS[t](list(args), [ty], attrs)
            new.append(o)
            return o.results[0]

        def const(name: str, value) -> SSAValue:
            init = new_initializer(self.store, "batchnorm", name, np.asarray(value, dt))
            new.append(init)
            return init.output

        axes = new_initializer(self.store, "batchnorm", "axes", np.array([0, *range(2, rank)], np.int64))
        new.append(axes)
        kt = TensorType(xt.element_type, [1, c] + [1] * (rank - 2))
        keep = {"keepdims": IntegerAttr(1, i64)}
        mu = node("ReduceMean", kt, x, axes.output, **keep)
        d = node("Sub", xt, x, mu)
        sigma2 = node("ReduceMean", kt, node("Mul", xt, d, d), axes.output, **keep)
        norm = node("Div", xt, d, node("Sqrt", kt, node("Add", kt, sigma2, const("eps", op.attr("epsilon", 1e-5)))))
        cshape = (c,) + (1,) * (rank - 2)
        y = node("Add", op.results[0].type, node("Mul", xt, norm, _reshape(self.store, gamma, cshape, new)),
                 _reshape(self.store, beta, cshape, new))
        outs = [y]
        m = float(op.attr("momentum", 0.9))
        for stat, batch in ((mean, mu), (var, sigma2)):
            if len(outs) == len(op.results):
                break
            rt = op.results[len(outs)].type
            outs.append(node("Add", rt, node("Mul", vt, stat, const("momentum", m)),
                             node("Mul", vt, _reshape(self.store, batch, (c,), new), const("rest", 1 - m))))
        for o, r in zip(outs, op.results):
            o.name_hint = r.name_hint
        rewriter.replace(op, new, outs)


@dataclass
class BlockedQuantization(RewritePattern):
    """QuantizeLinear / DequantizeLinear with blocked scales (`block_size` b: one scale and
    zero point per b consecutive elements along the axis) reads each scale (zero point)
    repeated over its block: a Gather along the axis (a view) to the input's shape, and
    block_size 1."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from spaq.passes.onnx_canonicalize import new_initializer

        if not isinstance(op, OnnxOp) or op.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            return
        b = int(op.attr("block_size", 0) or 0)
        x = op.operands[0]
        if b <= 1 or len(_shape(op.operands[1])) != len(_shape(x)):
            return
        axis = op.attr("axis", 1) % len(_shape(x))
        n = _shape(x)[axis]
        index = new_initializer(self.store, "block", "index", np.arange(n, dtype=np.int64) // b)
        new: list[Operation] = [index]
        operands = [x]
        for v in op.operands[1:]:
            if isinstance(v.owner, NoValueOp):
                operands.append(v)
                continue
            shape = [n if a == axis else d for a, d in enumerate(_shape(v))]
            g = OPS["Gather"]([v, index.output], [TensorType(v.type.element_type, shape)],
                              {"axis": IntegerAttr(axis, i64)})
            new.append(g)
            operands.append(g.results[0])
        attrs = dict(op.attributes)
        attrs["block_size"] = IntegerAttr(1, i64)
        q = OPS[op.op_type](operands, [r.type for r in op.results], attrs)
        new.append(q)
        q.results[0].name_hint = op.results[0].name_hint
        rewriter.replace(op, new)



@dataclass
class SubByteZeroPoint(RewritePattern):
    """QuantizeLinear into int4 / uint4 with per-axis zero points (one a row, which the vector
    unit cannot read at a sub-byte offset): the zero points Cast to 8 bits, the
    QuantizeLinear into 8 bits, a Clip to the 4-bit range and a Cast (exact) to 4 bits."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from spaq.compiler.onnx_import import type_of_array
        from spaq.compiler.types import onnx_element_type
        from spaq.passes.onnx_canonicalize import new_initializer

        if not isinstance(op, OnnxOp) or op.op_type != "QuantizeLinear" or len(op.operands) < 3:
            return
        zp = op.operands[2]
        if isinstance(zp.owner, NoValueOp) or prod(_shape(zp)) <= 1:
            return
        dt = _np(zp.type.element_type)
        if dt.itemsize != 1 or dt.name not in ("int4", "uint4"):
            return
        wide = np.dtype(np.int8 if dt.name == "int4" else np.uint8)
        out = op.results[0]

        def wide_type(v: SSAValue) -> TensorType:
            return type_of_array(np.zeros(_shape(v), wide))

        to8 = {"to": IntegerAttr(onnx_element_type(wide_type(zp).element_type), i64)}
        zp8 = OPS["Cast"]([zp], [wide_type(zp)], to8)
        q8 = OPS["QuantizeLinear"]([*op.operands[:2], zp8.results[0]], [wide_type(out)], dict(op.attributes))
        info = ml_dtypes.iinfo(dt)
        lo = new_initializer(self.store, "quantize", "lo", np.array(int(info.min), wide))
        hi = new_initializer(self.store, "quantize", "hi", np.array(int(info.max), wide))
        clip = OPS["Clip"]([q8.results[0], lo.output, hi.output], [wide_type(out)])
        back = OPS["Cast"]([clip.results[0]], [out.type],
                           {"to": IntegerAttr(onnx_element_type(out.type.element_type), i64)})
        back.results[0].name_hint = out.name_hint
        rewriter.replace(op, [zp8, q8, lo, hi, clip, back])


def _np(t) -> np.dtype:
    from spaq.compiler.types import numpy_dtype

    return numpy_dtype(t)


@dataclass
class InstanceNormToLayerNorm(RewritePattern):
    """InstanceNormalization is LayerNormalization over the spatial axes (axis 2, γ = 1) of
    each (image, channel), then the per-channel scale and bias as [C, 1, ...] views."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from spaq.passes.onnx_canonicalize import new_initializer

        if not isinstance(op, OnnxOp) or op.op_type != "InstanceNormalization":
            return
        x, scale, bias = op.operands
        if len(_shape(x)) < 3:
            return
        new: list[Operation] = []
        ones = new_initializer(self.store, "instancenorm", "ones", np.ones(_shape(x)[2:], _np(x.type.element_type)))
        new.append(ones)
        attrs = {"axis": IntegerAttr(2, i64)}
        if "epsilon" in op.attributes:
            attrs["epsilon"] = op.attributes["epsilon"]
        ln = OPS["LayerNormalization"]([x, ones.output], [x.type], attrs)
        new.append(ln)
        shape = (_shape(scale)[0],) + (1,) * (len(_shape(x)) - 2)
        mul = OPS["Mul"]([ln.results[0], _reshape(self.store, scale, shape, new)], [x.type])
        new.append(mul)
        add = OPS["Add"]([mul.results[0], _reshape(self.store, bias, shape, new)], [op.results[0].type])
        new.append(add)
        add.results[0].name_hint = op.results[0].name_hint
        rewriter.replace(op, new)


class MatMulInFloat32(RewritePattern):
    """A MatMul between two 16-bit float activations runs as a float32 MatMul between Casts
    (Sparrow's activation matmul is fp32); the result rounds back to the 16-bit type."""

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from xdsl.dialects.builtin import BFloat16Type, Float16Type, f32

        from spaq.compiler.types import onnx_element_type
        from spaq.passes.compression import is_constant

        if not isinstance(op, OnnxOp) or op.op_type != "MatMul":
            return
        a, b = op.operands
        t = op.results[0].type.element_type
        if not isinstance(t, (Float16Type, BFloat16Type)) or is_constant(a) or is_constant(b):
            return
        if a.type.element_type != t or b.type.element_type != t:
            return
        to32 = {"to": IntegerAttr(1, i64)}
        ca = OPS["Cast"]([a], [TensorType(f32, list(_shape(a)))], to32)
        cb = OPS["Cast"]([b], [TensorType(f32, list(_shape(b)))], to32)
        mm = OPS["MatMul"]([ca.results[0], cb.results[0]], [TensorType(f32, list(_shape(op.results[0])))])
        back = OPS["Cast"]([mm.results[0]], [op.results[0].type], {"to": IntegerAttr(onnx_element_type(t), i64)})
        back.results[0].name_hint = op.results[0].name_hint
        rewriter.replace(op, [ca, cb, mm, back])


@dataclass
class LrnAsConv(RewritePattern):
    """LRN on an NCHW tensor: the window sum of squares over channels is a 1x1 Conv of x² with
    a constant banded [C, C] weight; y = x · (bias + alpha / size · s)^(−beta) (VBIN pow)."""

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from spaq.passes.onnx_canonicalize import new_initializer

        if not isinstance(op, OnnxOp) or op.op_type != "LRN":
            return
        x = op.operands[0]
        shape = _shape(x)
        if len(shape) != 4 or x.type.element_type != op.results[0].type.element_type:
            return
        dt = _np(x.type.element_type)
        if dt != np.float32:
            return
        c, size = shape[1], op.attr("size")
        lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
        band = np.array([[1.0 if o - lo <= i <= o + hi else 0.0 for i in range(c)] for o in range(c)], dt)
        w = new_initializer(self.store, "lrn", "window", band.reshape(c, c, 1, 1))
        consts = [new_initializer(self.store, "lrn", name, np.array(v, dt)) for name, v in
                  (("alpha", op.attr("alpha", 1e-4) / size), ("bias", op.attr("bias", 1.0)),
                   ("beta", -op.attr("beta", 0.75)))]
        sq = OPS["Mul"]([x, x], [x.type])
        s = OPS["Conv"]([sq.results[0], w.output], [x.type], {"kernel_shape": DenseArrayBase.from_list(i64, [1, 1])})
        scaled = OPS["Mul"]([s.results[0], consts[0].output], [x.type])
        base = OPS["Add"]([scaled.results[0], consts[1].output], [x.type])
        p = OPS["Pow"]([base.results[0], consts[2].output], [x.type])
        y = OPS["Mul"]([x, p.results[0]], [op.results[0].type])
        y.results[0].name_hint = op.results[0].name_hint
        rewriter.replace(op, [w, *consts, sq, s, scaled, base, p, y])
