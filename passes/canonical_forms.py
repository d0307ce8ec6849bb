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
- LRN is x · (bias + alpha / size · Conv(x², banded ones))^(−beta);
- ConvTranspose (1-D, 2-D) with a constant weight is the input with zeros inserted between
  its elements (Reshape, Pad, Reshape), a Slice where the padding is negative, and a
  stride-1 Conv by the flipped, per-group transposed weight.
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
from spaq.passes.sparrow_layers import shape_of


def _empty(v: SSAValue) -> bool:
    return isinstance(v.type, TensorType) and 0 in shape_of(v)


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
                c, empty = np.zeros(shape_of(v), numpy_dtype(v.type.element_type)), True
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
        if len(shape_of(a)) > 1 and len(shape_of(b)) > 1:
            return
        new: list[Operation] = []
        a2 = _reshape(self.store, a, (1, shape_of(a)[0]), new) if len(shape_of(a)) == 1 else a
        b2 = _reshape(self.store, b, (shape_of(b)[0], 1), new) if len(shape_of(b)) == 1 else b
        sa, sb = shape_of(a2), shape_of(b2)
        batch = np.broadcast_shapes(sa[:-2], sb[:-2])
        mm = OPS["MatMul"]([a2, b2], [TensorType(op.results[0].type.element_type, [*batch, sa[-2], sb[-1]])])
        new.append(mm)
        y = _reshape(self.store, mm.results[0], shape_of(op.results[0]), new)
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
        if len(terms) != len(op.operands) or any(len(t) != len(shape_of(v)) for t, v in zip(terms, op.operands)):
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
                shape = [n for c, n in zip(letters, shape_of(v)) if c in keep]
                r = OPS["ReduceSum"]([v, ax.output], [TensorType(out_type.element_type, shape)],
                                     {"keepdims": IntegerAttr(0, i64)})
                new.extend([ax, r])
                v = r.results[0]
            if kept != list(keep):
                perm = [kept.index(c) for c in keep]
                t = OPS["Transpose"]([v], [TensorType(out_type.element_type, [shape_of(v)[p] for p in perm])],
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
                shape_of(op.operands[0]) == shape_of(op.operands[1]):
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
        if op.attr("training_mode", 0) or len(shape_of(op.operands[0])) < 2:
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
        shape = (shape_of(gamma)[0],) + (1,) * (len(shape_of(x)) - 2)
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
        rank = len(shape_of(x))
        if rank < 2 or len(op.results) > 3:
            return
        xt, vt = x.type, gamma.type
        c = shape_of(x)[1]
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
        if b <= 1 or len(shape_of(op.operands[1])) != len(shape_of(x)):
            return
        axis = op.attr("axis", 1) % len(shape_of(x))
        n = shape_of(x)[axis]
        index = new_initializer(self.store, "block", "index", np.arange(n, dtype=np.int64) // b)
        new: list[Operation] = [index]
        operands = [x]
        for v in op.operands[1:]:
            if isinstance(v.owner, NoValueOp):
                operands.append(v)
                continue
            shape = [n if a == axis else d for a, d in enumerate(shape_of(v))]
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
        if isinstance(zp.owner, NoValueOp) or prod(shape_of(zp)) <= 1:
            return
        dt = _np(zp.type.element_type)
        if dt.itemsize != 1 or dt.name not in ("int4", "uint4"):
            return
        wide = np.dtype(np.int8 if dt.name == "int4" else np.uint8)
        out = op.results[0]

        def wide_type(v: SSAValue) -> TensorType:
            return type_of_array(np.zeros(shape_of(v), wide))

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
        if len(shape_of(x)) < 3:
            return
        new: list[Operation] = []
        ones = new_initializer(self.store, "instancenorm", "ones", np.ones(shape_of(x)[2:], _np(x.type.element_type)))
        new.append(ones)
        attrs = {"axis": IntegerAttr(2, i64)}
        if "epsilon" in op.attributes:
            attrs["epsilon"] = op.attributes["epsilon"]
        ln = OPS["LayerNormalization"]([x, ones.output], [x.type], attrs)
        new.append(ln)
        shape = (shape_of(scale)[0],) + (1,) * (len(shape_of(x)) - 2)
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
        ca = OPS["Cast"]([a], [TensorType(f32, list(shape_of(a)))], to32)
        cb = OPS["Cast"]([b], [TensorType(f32, list(shape_of(b)))], to32)
        mm = OPS["MatMul"]([ca.results[0], cb.results[0]], [TensorType(f32, list(shape_of(op.results[0])))])
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
        shape = shape_of(x)
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


@dataclass
class ConvTransposeAsConv(RewritePattern):
    """ConvTranspose (1-D or 2-D, any group) with a constant weight is a stride-1 Conv of the
    input upsampled by the strides with zeros between its elements:

    - zero insertion: x seen as [..., n, 1, ...] per strided axis (a free Reshape), a
      constant Pad of that unit axis to the stride s (s − 1 zeros after each element), a
      Reshape back to [N, C, n·s, ...];
    - per axis, dilation·(k − 1) − pad_begin zeros before and dilation·(k − 1) − pad_end +
      output_padding − (s − 1) after (the trailing zeros of the upsampling count), as the
      Conv's pads; a negative amount crops with a Slice first;
    - the Conv: weight [C_in, C_out/g, k...] transposed per group to [C_out, C_in/g, k...]
      and flipped spatially, the same dilations and group, the bias.

    auto_pad SAME_UPPER / SAME_LOWER and output_shape place the output as onnx's reference
    does (the total padding split, the extra one at the end for SAME_UPPER). Where onnx
    disagrees with itself, a SpaqError: SAME whose inferred result shape is not
    input · strides (output_padding, a stride above the kernel), an output_shape whose split
    would pad the start (the spec) while the reference pads nothing. 3-D stays as it is.

    ```mlir
    // before
    %y = onnx.ConvTranspose(%x, %w) {strides = array<i64: 2, 2>} : (tensor<1x1x3x3xf32>, tensor<1x2x3x3xf32>) -> tensor<1x2x7x7xf32>
    // after
    %r = onnx.Reshape(%x, %s) : (tensor<1x1x3x3xf32>, tensor<4xi64>) -> tensor<3x1x3x1xf32>
    %p = onnx.Pad(%r, %pads) : (tensor<3x1x3x1xf32>, tensor<8xi64>) -> tensor<3x2x3x2xf32>
    %u = onnx.Reshape(%p, %s2) : (tensor<3x2x3x2xf32>, tensor<4xi64>) -> tensor<1x1x6x6xf32>
    %y = onnx.Conv(%u, %w.convtranspose) {kernel_shape = array<i64: 3, 3>, dilations = array<i64: 1, 1>,
                   group = 1 : i64, strides = array<i64: 1, 1>, pads = array<i64: 2, 2, 1, 1>} : (...) -> tensor<1x2x7x7xf32>
    ```
    """

    store: WeightStore

    def match_and_rewrite(self, op: Operation, rewriter: PatternRewriter) -> None:
        from spaq.compiler.errors import SpaqError
        from spaq.compiler.evaluator import where
        from spaq.passes.onnx_canonicalize import constant_of, new_initializer, weight_name

        if not isinstance(op, OnnxOp) or op.op_type != "ConvTranspose" or len(op.results) != 1:
            return
        x, wv = op.operands[0], op.operands[1]
        xs, ys = shape_of(x), shape_of(op.results[0])
        nd = len(xs) - 2
        if nd not in (1, 2):
            return  # spaq's Conv is 1-D or 2-D
        w = constant_of(self.store, wv)
        if w is None:
            return
        n, c = xs[:2]
        g = int(op.attr("group", 1))
        ks = list(w.shape[2:])
        cout = w.shape[1] * g
        strides = list(op.attr("strides", [1] * nd))
        dil = list(op.attr("dilations", [1] * nd))
        out_pad = list(op.attr("output_padding", [0] * nd))[:nd]
        auto_pad = op.attr("auto_pad", "NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else str(auto_pad)
        pads = op.attr("pads")
        out = list(ys[2:])
        full = [strides[i] * (xs[2 + i] - 1) + out_pad[i] + (ks[i] - 1) * dil[i] + 1 for i in range(nd)]
        if pads is None and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            want = list(op.attr("output_shape") or [xs[2 + i] * strides[i] for i in range(nd)])[-nd:]
            if want != out:  # onnx's shape inference and its reference disagree (output_padding, stride > kernel)
                raise SpaqError(f"ConvTranspose auto_pad {auto_pad}: the result's spatial shape {out} (onnx shape "
                                f"inference) is not {want} (onnx's reference); give explicit pads{where(op)}")
            total = [full[i] - out[i] for i in range(nd)]
            begin = [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
        else:
            begin = [0] * nd if pads is None or auto_pad == "VALID" else list(pads)[:nd]
            if op.attr("output_shape") is not None and pads is None:
                # the spec splits output_shape's total padding, onnx's reference keeps pads 0:
                # the same result only when the split puts nothing at the start
                for i in range(nd):
                    t = full[i] - out[i]
                    if t - t // 2 != 0:
                        raise SpaqError(f"ConvTranspose with output_shape {out} needs padding {t} at the "
                                        f"start of axis {i + 2}, where onnx's spec and reference differ{where(op)}")
        if ys[:2] != (n, cout) or c % g or w.shape[0] != c:
            return
        et = x.type.element_type
        new: list[Operation] = []

        def const(name: str, values: list[int]) -> SSAValue:
            init = new_initializer(self.store, "convtranspose", name, np.array(values, np.int64))
            new.append(init)
            return init.output

        # zero insertion: [n·c·(axes before a strided one), 1, ...] padded to the stride
        v = x
        if any(s > 1 for s in strides):
            flat, ends, acc = [], [], n * c
            for i in range(nd):
                acc *= xs[2 + i]
                if strides[i] > 1:
                    flat += [acc, 1]
                    ends += [0, strides[i] - 1]
                    acc = 1
            if acc > 1:
                flat.append(acc)
                ends.append(0)
            v = _reshape(self.store, v, tuple(flat), new)
            padded = [d + e for d, e in zip(flat, ends)]
            p = OPS["Pad"]([v, const("pads", [0] * len(flat) + ends)], [TensorType(et, padded)])
            new.append(p)
            v = _reshape(self.store, p.results[0], (n, c, *(xs[2 + i] * strides[i] for i in range(nd))), new)
        # the Conv's pads: d·(k − 1) − pad_begin before, what gives the result's length after
        up = list(shape_of(v)[2:])
        before = [dil[i] * (ks[i] - 1) - begin[i] for i in range(nd)]
        after = [out[i] + dil[i] * (ks[i] - 1) - before[i] - up[i] for i in range(nd)]
        crop = [i for i in range(nd) if before[i] < 0 or after[i] < 0]
        if crop:
            starts = [max(0, -before[i]) for i in crop]
            stops = [up[i] - max(0, -after[i]) for i in crop]
            if any(a >= b for a, b in zip(starts, stops)):
                return
            shape = list(shape_of(v))
            for i, a, b in zip(crop, starts, stops):
                shape[2 + i] = b - a
            s = OPS["Slice"]([v, const("starts", starts), const("ends", stops), const("axes", [2 + i for i in crop])],
                             [TensorType(et, shape)])
            new.append(s)
            v = s.results[0]
            before, after = [max(0, b) for b in before], [max(0, a) for a in after]
        # the weight: per group [C_in/g, C_out/g, k...] -> [C_out/g, C_in/g, k...], flipped
        cg = c // g
        wt = np.concatenate([np.swapaxes(w[i * cg:(i + 1) * cg], 0, 1) for i in range(g)], axis=0)
        wt = np.ascontiguousarray(np.flip(wt, axis=tuple(range(2, 2 + nd))))
        w_op = new_initializer(self.store, weight_name(wv), "convtranspose", wt)
        new.append(w_op)
        operands = [v, w_op.output]
        if len(op.operands) > 2 and not isinstance(op.operands[2].owner, NoValueOp):
            operands.append(op.operands[2])
        attrs = {k: a for k, a in op.attributes.items() if "." in k}
        attrs.update(kernel_shape=DenseArrayBase.from_list(i64, ks), dilations=DenseArrayBase.from_list(i64, dil),
                     group=IntegerAttr(g, i64), strides=DenseArrayBase.from_list(i64, [1] * nd),
                     pads=DenseArrayBase.from_list(i64, before + after))
        conv = OPS["Conv"](operands, [op.results[0].type], attrs)
        new.append(conv)
        conv.results[0].name_hint = op.results[0].name_hint
        rewriter.replace(op, new)
