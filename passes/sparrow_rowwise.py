"""Row-wise layers: reductions, ArgMax / ArgMin, Softmax / LogSoftmax on any axis and
LayerNormalization on any axis, on the vector unit.

The input is loaded as one [R, K] tile whose rows are the reduction groups: the DMA's strides
put the reduced axes last (kept axes first, in order), so any set of axes reduces along a
tile row. Then:

    ReduceSum / Mean / Max / Min / Prod / SumSquare   one VRED (Mean: output scale 1/K)
    ReduceL1        VUN abs, VRED sum          ReduceL2      VRED sumsq, VUN sqrt
    ReduceLogSum    VRED sum, VUN log          ReduceLogSumExp  VRED max m, VBIN sub (col),
                                                               VUN exp, VRED sum, VUN log, VBIN add m
    ArgMax / ArgMin VRED argmax / argmin (argmax_last / argmin_last with select_last_index)
    Softmax         SOFTMAX                    LogSoftmax    VRED max, VBIN sub, VUN exp, VRED sum,
                                                               VUN log, VBIN sub
    LayerNormalization  the eight-instruction idiom of `onnx_kernels.layer_norm_rows`

and the [R, 1] result (or the [R, K] tile, stored back through the same strides) goes to DRAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
from xdsl.ir import Operation

from spaq.backends.sparrow import vector
from spaq.backends.sparrow.isa import Bcast, BinaryOp, Buffer, DType, ReduceOp, UnaryOp
from spaq.compiler.errors import SpaqError
from spaq.dialects.onnx import NoValueOp, OnnxOp

REDUCE = {"ReduceSum": ReduceOp.SUM, "ReduceMean": ReduceOp.SUM, "ReduceMax": ReduceOp.MAX,
          "ReduceMin": ReduceOp.MIN, "ReduceProd": ReduceOp.PROD, "ReduceSumSquare": ReduceOp.SUMSQ,
          "ReduceL1": ReduceOp.SUM, "ReduceL2": ReduceOp.SUMSQ, "ReduceLogSum": ReduceOp.SUM,
          "ReduceLogSumExp": ReduceOp.SUM}
ROWWISE = (*REDUCE, "ArgMax", "ArgMin", "Softmax", "LogSoftmax", "LayerNormalization")


def is_rowwise(op: Operation) -> bool:
    return isinstance(op, OnnxOp) and op.op_type in ROWWISE


@dataclass(frozen=True)
class Rows:
    """The [rows, cols] view of a row-wise op's input: `perm` lists the input axes, kept ones
    first; `noop` is a reduction over no axis (the identity)."""

    perm: tuple[int, ...]
    rows: int
    cols: int
    noop: bool = False


def geometry(op: Operation, store) -> Rows:
    from spaq.passes.sparrow_layers import constant_value, shape_of

    shape = shape_of(op.operands[0])
    rank = len(shape)
    t = op.op_type
    if t in REDUCE:
        axes = None
        if len(op.operands) > 1 and not isinstance(op.operands[1].owner, NoValueOp):
            from spaq.passes.compression import is_constant

            if not is_constant(op.operands[1]):
                return _from_shapes(op, shape)
            axes = [int(a) for a in np.asarray(constant_value(store, op.operands[1])).ravel()]
        elif op.attr("axes") is not None:
            axes = [int(a) for a in op.attr("axes")]
        if not axes:
            if op.attr("noop_with_empty_axes", 0):
                return Rows(tuple(range(rank)), prod(shape), 1, noop=True)
            axes = list(range(rank))
        reduced = sorted({a % rank for a in axes})
    elif t == "LayerNormalization":
        reduced = list(range(op.attr("axis", -1) % rank, rank))
    else:
        reduced = [op.attr("axis", 0 if t in ("ArgMax", "ArgMin") else -1) % rank]
    kept = [a for a in range(rank) if a not in reduced]
    return Rows(tuple(kept + reduced), prod(shape[a] for a in kept), prod(shape[a] for a in reduced))


def _from_shapes(op: Operation, shape: tuple[int, ...]) -> Rows:
    """Axes given at run time: the static result shape says which were reduced (axes of one
    element reduce to themselves, so they may count either way); an error if it does not."""
    from spaq.passes.sparrow_layers import shape_of

    out = shape_of(op.results[0])
    rank = len(shape)
    if op.attr("keepdims", 1):
        if len(out) != rank:
            raise SpaqError(f"layer '{op.results[0].name_hint}': {op.op_type} with run-time axes: shapes disagree")
        reduced = [a for a in range(rank) if out[a] == 1 and shape[a] != 1]
        if out == shape and op.attr("noop_with_empty_axes", 0):
            return Rows(tuple(range(rank)), prod(shape), 1, noop=True)
    else:
        import itertools

        fits = [c for c in itertools.combinations(range(rank), rank - len(out))
                if tuple(d for a, d in enumerate(shape) if a not in c) == tuple(out)]
        kinds = {tuple(a for a in c if shape[a] != 1) for c in fits}
        if len(kinds) != 1:
            raise SpaqError(f"layer '{op.results[0].name_hint}': {op.op_type} needs constant axes to run on Sparrow "
                            "(its result shape does not tell them)")
        reduced = list(kinds.pop())
    kept = [a for a in range(rank) if a not in reduced]
    return Rows(tuple(kept + reduced), prod(shape[a] for a in kept), prod(shape[a] for a in reduced))


def needs(layer, store) -> dict[str, tuple[Buffer, int]]:
    g = geometry(layer.head, store)
    r, k = g.rows, g.cols
    if r * k == 0:
        raise SpaqError(f"layer '{layer.name}': {layer.head.op_type} of an empty tensor does not run on Sparrow")
    return {"x": (Buffer.ACT, 4 * r * k), "y": (Buffer.ACT, 4 * r * k), "m": (Buffer.ACT, 4 * r),
            "s": (Buffer.ACT, 4 * r), "g": (Buffer.PARAM, 4 * k), "b": (Buffer.PARAM, 4 * k)}


def _permuted(view, perm):
    from spaq.passes.sparrow_layers import View

    return View(view.root, view.offset, tuple(view.shape[p] for p in perm), tuple(view.strides[p] for p in perm))


def lower(lw, layer) -> None:
    """Emit the layer (`lw`: lower_to_sparrow's _Lowering)."""
    from spaq.passes.sparrow_layers import dram_dtype, element_type

    op, sram = layer.head, layer.sram()
    g = geometry(op, lw.store)
    r, k = g.rows, g.cols
    t = op.op_type
    x = _permuted(lw.view(op.operands[0]), g.perm)
    xd = lw.dtype_of(x)
    if xd.bits < 8:
        raise SpaqError(f"layer '{layer.name}': {t} of {xd.name.lower()} tensors does not run on Sparrow")
    results = [v for v in op.results if v.uses]
    for i, v in enumerate(results):
        lw.activation(v, layer.name if i == 0 else f"{layer.name}.{i}")
    od = dram_dtype(element_type(op.results[0]))
    lw.transfer("load", Buffer.ACT, sram["x"], x)
    emit = lw.p.emit
    X, Y, M, S = sram["x"], sram["y"], sram["m"], sram["s"]
    tile = dict(rows=r, cols=k)
    col = dict(rows=r, cols=1)
    if g.noop:
        emit("vun", op=UnaryOp.COPY, dtype=xd, src=X, odtype=od, dst=S, **col)
    elif t in REDUCE:
        src, sd = X, xd
        if t == "ReduceL1":
            emit("vun", op=UnaryOp.ABS, dtype=xd, src=X, dst=X, **tile)
            sd = DType.F32
        if t == "ReduceLogSumExp":
            emit("vred", op=ReduceOp.MAX, dtype=xd, src=X, dst=M, **tile)
            emit("vbin", op=BinaryOp.SUB, dtype=xd, src=X, bcast=Bcast.COL, src1=M, dst=Y, **tile)
            emit("vun", op=UnaryOp.EXP, src=Y, dst=Y, **tile)
            src, sd = Y, DType.F32
        last = t in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare", "ReduceL1")
        scale = vector.imm(np.float32(1.0 / k)) if t == "ReduceMean" else vector.ONE
        emit("vred", op=REDUCE[t], dtype=sd, src=src, imm=scale, odtype=od if last else DType.F32, dst=S, **tile)
        if t == "ReduceL2":
            emit("vun", op=UnaryOp.SQRT, src=S, odtype=od, dst=S, **col)
        elif t == "ReduceLogSum":
            emit("vun", op=UnaryOp.LOG, src=S, odtype=od, dst=S, **col)
        elif t == "ReduceLogSumExp":
            emit("vun", op=UnaryOp.LOG, src=S, dst=S, **col)
            emit("vbin", op=BinaryOp.ADD, src=S, src1=M, odtype=od, dst=S, **col)
    elif t in ("ArgMax", "ArgMin"):
        last = bool(op.attr("select_last_index", 0))
        rop = {("ArgMax", False): ReduceOp.ARGMAX, ("ArgMax", True): ReduceOp.ARGMAX_LAST,
               ("ArgMin", False): ReduceOp.ARGMIN, ("ArgMin", True): ReduceOp.ARGMIN_LAST}[(t, last)]
        emit("vred", op=rop, dtype=xd, src=X, odtype=od, dst=S, **tile)
    elif t == "Softmax":
        if xd is not DType.F32:  # SOFTMAX reads and writes f32: convert in, and out again below
            emit("vun", op=UnaryOp.COPY, dtype=xd, src=X, dst=Y, **tile)
            emit("softmax", src=Y, dst=X, **tile)
            emit("vun", op=UnaryOp.COPY, src=X, odtype=od, dst=Y, **tile)
        else:
            emit("softmax", src=X, dst=Y, **tile)
    elif t == "LogSoftmax":
        emit("vred", op=ReduceOp.MAX, dtype=xd, src=X, dst=M, **tile)
        emit("vbin", op=BinaryOp.SUB, dtype=xd, src=X, bcast=Bcast.COL, src1=M, dst=Y, **tile)
        emit("vun", op=UnaryOp.EXP, src=Y, dst=X, **tile)
        emit("vred", op=ReduceOp.SUM, src=X, dst=S, **tile)
        emit("vun", op=UnaryOp.LOG, src=S, dst=S, **col)
        emit("vbin", op=BinaryOp.SUB, src=Y, bcast=Bcast.COL, src1=S, odtype=od, dst=Y, **tile)
    else:
        _layernorm(lw, layer, g, xd, od)
    if t in ("Softmax", "LogSoftmax", "LayerNormalization"):
        lw.transfer("store", Buffer.ACT, Y, _permuted(lw.view(op.results[0]), g.perm))
        if t == "LayerNormalization":
            for v, addr in zip(op.results[1:], (M, S)):
                if v.uses:
                    lw.transfer("store", Buffer.ACT, addr, lw.view(v))
    else:
        lw.transfer("store", Buffer.ACT, S, lw.view(op.results[0]))


def _layernorm(lw, layer, g: Rows, xd: DType, od: DType) -> None:
    """The eight instructions of `onnx_kernels.layer_norm_rows`, γ and β as PARAM rows."""
    from spaq.passes.sparrow_layers import shape_of

    op, sram = layer.head, layer.sram()
    r, k = g.rows, g.cols
    if xd is not DType.F32 or od is not DType.F32:
        raise SpaqError(f"layer '{layer.name}': LayerNormalization runs on fp32 tensors")
    X, Y, M, S = sram["x"], sram["y"], sram["m"], sram["s"]
    norm_shape = tuple(shape_of(op.operands[0])[len(shape_of(op.operands[0])) - _norm_rank(op):])
    emit = lw.p.emit
    tile = dict(rows=r, cols=k)
    col = dict(rows=r, cols=1)
    inv_k = vector.imm(np.float32(1.0 / k))
    eps = vector.imm(np.float32(op.attr("epsilon", 1e-5)))
    emit("vred", op=ReduceOp.SUM, src=X, imm=inv_k, dst=M, **tile)
    emit("vbin", op=BinaryOp.SUB, src=X, bcast=Bcast.COL, src1=M, dst=Y, **tile)
    emit("vred", op=ReduceOp.SUMSQ, src=Y, imm=inv_k, dst=S, **tile)
    emit("vbin", op=BinaryOp.ADD, src=S, bcast=Bcast.IMM, imm=eps, dst=S, **col)
    emit("vun", op=UnaryOp.RSQRT, src=S, dst=S, **col)
    emit("vbin", op=BinaryOp.MUL, src=Y, bcast=Bcast.COL, src1=S, dst=Y, **tile)
    params = [v for v in op.operands[1:3] if not isinstance(v.owner, NoValueOp)]
    for v, slot, bop in zip(params, ("g", "b"), (BinaryOp.MUL, BinaryOp.ADD)):
        pv = lw.view(v).broadcast_to(norm_shape)
        pd = lw.dtype_of(pv)
        lw.transfer("load", Buffer.PARAM, sram[slot], pv)
        emit("vbin", op=bop, src=Y, bcast=Bcast.ROW, dtype1=pd, buf1=Buffer.PARAM, src1=sram[slot], dst=Y, **tile)


def _norm_rank(op: Operation) -> int:
    from spaq.passes.sparrow_layers import shape_of

    rank = len(shape_of(op.operands[0]))
    return rank - op.attr("axis", -1) % rank
