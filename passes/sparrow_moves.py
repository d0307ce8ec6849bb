"""Data movement on Sparrow: ops whose every result element is one element of an input or a
fill constant (Concat, Split, Pad, Tile, DepthToSpace, SpaceToDepth, Resize `nearest`, and
the Slice / Gather / GatherND with constant indices that no DMA strides describe, a
one-operand Einsum that sums nothing); Resize modes that weigh several inputs (`resample`);
GatherND by run-time index tuples (`gathernd`); and copies of graph outputs that are inputs,
constants or views (`copy_out`).

A `move` layer's **selection map** says, for each result element, which source element it is:
it is computed by running the op's evaluator kernel on the sources' element ids (the same
trick `DramPlan` uses for views), so the lowering follows the evaluator's semantics by
construction. The map becomes instructions in one of three ways, the first that applies:

- **Boxes** (`plan_boxes`): each source's elements fill one box of the result and are an
  affine view of the source there (Concat, Split, a constant Pad, most Slices): per box a
  LOAD and a STORE through the result's strides; a Pad's fill goes first, a LOAD of a
  one-element constant with zero strides over a whole chunk, STOREd everywhere. A result
  that repeats its source by integer factors (a nearest upsampling, a Tile) is one box per
  phase (`plan_phases`).
- **DMA pieces** (`plan_pieces`): the result's row-major order is cut into 2-D strided
  pieces (`rows` x `cols`, rows `rstride` and columns `cstride` source elements apart, both
  >= 0), each one LOAD into consecutive scratchpad bytes, and the assembled chunk is STOREd.
- **GATHER of elements** (`cols=1`, `rstride=1`), by a constant index segment, where the
  map is so irregular that pieces would be many (more than one per `GATHER_BELOW` elements):
  LOAD a chunk of indices, GATHER the elements, STORE the chunk.

A `resample` layer is a sum of such selections (taps) weighted by constant tiles (VBIN mul,
VBIN add); the taps come from the kernel's responses to basis vectors of one plane, or for a
plane above `BASIS_LIMIT` elements, to basis vectors of each dimension (products of them). tile-layers picks `elems` (as for a copying view); the buffers are `buf` (the
chunk), `idx` (a chunk of indices) and, for a resample, `a` and `w` (a tap and its weights).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np
from xdsl.ir import Operation, SSAValue

from spaq.backends.sparrow.isa import Bcast, BinaryOp, Buffer, DType, ReduceOp
from spaq.compiler.errors import SpaqError
from spaq.dialects.onnx import NoValueOp, OnnxOp
from spaq.passes.compression import is_constant
from spaq.passes.sparrow_layers import MAX_DIM, View, constant_value, dram_dtype, element_type, shape_of

SHIFT = 40
"""An element id is (source + 1) << SHIFT | element offset in the source's segment; 0 is the fill."""
MASK = (1 << SHIFT) - 1
STRIDE_LIMIT = 1 << 24
GATHER_BELOW = 8
"""Use GATHER when the DMA pieces would be more than one per this many elements."""

MOVE_OPS = ("Concat", "Split", "Pad", "Tile", "DepthToSpace", "SpaceToDepth", "Resize", "Einsum")
SELECTIONS = MOVE_OPS + ("Slice", "Gather", "GatherND", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose",
                         "Identity", "Expand", "Cast")
"""Ops a move layer can compute (the last ones as the fallback of views)."""


def data_operands(op: Operation) -> list[int]:
    """The operand positions whose elements the result is made of (the rest are parameters)."""
    if isinstance(op, OnnxOp) and op.op_type == "Concat":
        return list(range(len(op.operands)))
    return [0]


def is_move_op(op: Operation) -> bool:
    """An op lowered as a `move` layer: a selection with constant parameters."""
    if not isinstance(op, OnnxOp) or op.op_type not in MOVE_OPS:
        return False
    data = data_operands(op)
    if all(is_constant(op.operands[i]) for i in data):
        return False  # a constant: folded, not moved
    params = [v for i, v in enumerate(op.operands) if i not in data and not isinstance(v.owner, NoValueOp)]
    if not all(is_constant(v) for v in params):
        return False
    if op.op_type == "Resize" and op.attr("mode", "nearest") != "nearest":
        return False
    if op.op_type == "Einsum" and not _diagonal(op):
        return False
    return True


def _diagonal(op: Operation) -> bool:
    """A one-operand Einsum that sums over no letter (`ij->ji`, `...ii->...i`): each result
    element is one input element (a transpose, a diagonal)."""
    equation = str(op.attr("equation", "")).replace(" ", "")
    if "->" not in equation or len(op.operands) != 1:
        return False
    lhs, rhs = equation.split("->")
    letters = {c for c in lhs if c.isalpha()}
    return letters == {c for c in rhs if c.isalpha()}


def selection(op: Operation, store, offsets: list[np.ndarray]) -> list[np.ndarray]:
    """Per result, the id of the source element of every result element: data operand k's
    element at segment offset o is (k + 1) << SHIFT | o (`offsets[k]`, of the operand's
    shape); 0 is a Pad's fill value."""
    from spaq.compiler.evaluator import Evaluation

    data = data_operands(op)
    args: list = []
    for i, v in enumerate(op.operands):
        if isinstance(v.owner, NoValueOp):
            args.append(None)
        elif i in data:
            k = data.index(i)
            args.append(((k + 1) << SHIFT) + np.asarray(offsets[k], np.int64))
        else:
            args.append(constant_value(store, v))
    if op.op_type == "Pad" and len(args) > 2 and args[2] is not None:
        args[2] = np.zeros((), np.int64)  # the fill marker
    results = Evaluation(store).run_op(op, args)
    out = []
    for r, ids in zip(op.results, results):
        ids = np.asarray(ids)
        if ids.dtype.kind == "f":
            if not np.array_equal(ids, np.round(ids)):
                raise SpaqError(f"layer '{_name(op)}': {op.name} does not select elements")
            ids = ids.astype(np.int64)
        ids = ids.astype(np.int64).reshape(shape_of(r))
        src = ids >> SHIFT
        if ids.size and (src.min() < 0 or src.max() > len(data) or (src.min() == 0 and op.op_type != "Pad")):
            raise SpaqError(f"layer '{_name(op)}': {op.name} does not select elements")
        out.append(ids)
    return out


def _name(op: Operation) -> str:
    from spaq.passes.compression import layer_name

    return layer_name(op)


@dataclass(frozen=True)
class MovePiece:
    """`rows` x `cols` consecutive result elements, starting at result element `start`, from
    source `source` (0: the fill, k + 1: data operand k) element offset `offset`."""

    start: int
    source: int
    offset: int
    rows: int
    cols: int
    rstride: int
    cstride: int


def _streak(flags: np.ndarray) -> np.ndarray:
    """streak[i] = how many consecutive flags are true from i on."""
    n = flags.size
    idx = np.arange(n)
    false_at = np.where(~flags, idx, n)
    nxt = np.minimum.accumulate(false_at[::-1])[::-1]
    return nxt - idx


def plan_pieces(ids: np.ndarray) -> list[MovePiece]:
    """The result's row-major order as 2-D strided pieces (greedy: the longest run of equal
    column strides, then as many rows of that run as follow with one row stride)."""
    flat = ids.reshape(-1)
    n = flat.size
    if n == 0:
        return []
    src, off = flat >> SHIFT, flat & MASK
    d = off[1:] - off[:-1]
    ok = (src[1:] == src[:-1]) & (d >= 0) & (d < STRIDE_LIMIT)
    same = ok[:-1] & ok[1:] & (d[:-1] == d[1:]) if n > 2 else np.zeros(0, bool)
    streak = _streak(same) if same.size else np.zeros(0, np.int64)
    runs: list[tuple[int, int, int, int, int]] = []  # (start, source, offset, length, cstride)
    i = 0
    while i < n:
        if i + 1 < n and ok[i]:
            length = 2 + (int(streak[i]) if i < streak.size else 0)
            length = min(length, n - i, MAX_DIM)
            runs.append((i, int(src[i]), int(off[i]), length, int(d[i])))
        else:
            length = 1
            runs.append((i, int(src[i]), int(off[i]), 1, 1))
        i += length
    pieces: list[MovePiece] = []
    j = 0
    while j < len(runs):
        start, s, o, length, cs = runs[j]
        rows, rs = 1, 0
        k = j + 1
        while k < len(runs) and rows < MAX_DIM:
            s2, o2, l2, c2 = runs[k][1:]
            if s2 != s or l2 != length or (c2 != cs and length > 1):
                break
            step = o2 - runs[k - 1][2]
            if rows == 1:
                if step < 0 or step >= STRIDE_LIMIT:
                    break
                rs = step
            elif step != rs:
                break
            rows += 1
            k += 1
        pieces.append(MovePiece(start, s, o, rows, length, rs if rows > 1 else 0, cs))
        j = k
    return pieces


def _fits(p: MovePiece) -> bool:
    return p.rstride < STRIDE_LIMIT and p.cstride < STRIDE_LIMIT


class Assembly:
    """How one selection map (`ids`, over `base`: the fill's address, then each source's
    root address) is put together in ACT: DMA pieces, or element GATHERs by a constant index
    segment when the pieces would be many. `emit(sp, idx_sp, e0, e1)` assembles elements
    [e0, e1) of the row-major order at ACT `sp` (`idx_sp`: room for the indices)."""

    def __init__(self, lw, layer, ids: np.ndarray, base: list[int], dtype: DType, tag: str):
        self.lw, self.layer, self.ids, self.base, self.dtype = lw, layer, ids, base, dtype
        self.pieces = plan_pieces(ids)
        total = ids.size
        self.gather = len(self.pieces) * GATHER_BELOW > total and len(self.pieces) > 4
        if not self.gather and not all(_fits(p) for p in self.pieces):
            self.gather = True
        self.index = _index_segment(lw, layer, ids, tag) if self.gather else None

    def emit(self, sp: int, idx_sp: int, e0: int, e1: int) -> None:
        from spaq.passes.lower_to_sparrow import Piece, _dma, dma_cut

        lw, dtype = self.lw, self.dtype
        if self.gather:
            _gather_chunk(lw, self.ids, self.index, self.base, sp, idx_sp, dtype, e0, e1)
            return
        e = dtype.bits // 8
        for p in self.pieces:
            lo, hi = max(e0, p.start), min(e1, p.start + p.rows * p.cols)
            if lo >= hi:
                continue
            whole = Piece(p.offset, p.rows, p.cols, p.rstride, p.cstride)
            for c in dma_cut([whole], lo - p.start, hi - p.start):
                _dma(lw.p, "load", Buffer.ACT, dtype, sp + (lo - e0) * e, self.base[p.source] + c.offset * e,
                     c.rows, c.cols, c.rstride, c.cstride)
                lo += c.rows * c.cols


def _sources(lw, layer, op: Operation) -> tuple[list[View], DType]:
    data = data_operands(op)
    views = [lw.view(op.operands[i]) for i in data]
    dtype = dram_dtype(element_type(op.results[0]))
    if dtype.bits < 8:
        raise SpaqError(f"layer '{layer.name}': moving {dtype.name.lower()} elements is not supported")
    for v in views:
        if lw.dtype_of(v) != dtype:
            raise SpaqError(f"layer '{layer.name}': {op.name} between element types is not supported")
    return views, dtype


def lower_move(lw, layer) -> None:
    """A move layer's instructions (`lw` is lower-to-sparrow's `_Lowering`)."""
    op = layer.head
    sram, step = layer.sram(), layer.tiles()["elems"]
    views, dtype = _sources(lw, layer, op)
    ids = selection(op, lw.store, [v.offsets() for v in views])
    roots = [lw.addr[v.root] for v in views]
    fill_addr = None
    for i, (r, m) in enumerate(zip(op.results, ids)):
        lw.activation(r, layer.name if i == 0 else f"{layer.name}.{i}")
        dst = lw.view(r)
        total = m.size
        if total == 0:
            continue
        if (m == 0).any() and fill_addr is None:
            fill_addr = _fill(lw, layer, op, dtype)
        boxes = plan_boxes(m, r, views)
        if boxes is None and not (m == 0).any():
            boxes = plan_phases(m, r, views)
        if boxes is not None:  # each source's elements a box of the result: LOAD it, STORE it into place
            _emit_boxes(lw, sram, step, dtype, dst, fill_addr if (m == 0).any() else None, boxes)
            continue
        base = [fill_addr if fill_addr is not None else 0] + roots
        plan = Assembly(lw, layer, m, base, dtype, str(i) if i else "")
        for e0 in range(0, total, step):
            e1 = min(total, e0 + step)
            plan.emit(sram["buf"], sram["idx"], e0, e1)
            lw.transfer("store", Buffer.ACT, sram["buf"], dst, e0, e1)


def plan_boxes(ids: np.ndarray, result: SSAValue, views: list[View]) -> list[tuple[View, View]] | None:
    """(source view, result view) pairs when the elements of each source fill one box of the
    result and are an affine view of the source there (Concat, Split, a constant Pad, Slice):
    each box is a LOAD and a STORE through strides; None otherwise."""
    from spaq.passes.sparrow_layers import affine_view, contiguous_strides

    src, off = ids >> SHIFT, ids & MASK
    shape = ids.shape
    strides = contiguous_strides(shape)
    out = []
    for s in np.unique(src):
        if s == 0:
            continue
        where = np.nonzero(src == s)
        lo = [int(w.min()) for w in where]
        hi = [int(w.max()) + 1 for w in where]
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        if not (src[box] == s).all():
            return None
        source = affine_view(views[s - 1].root, off[box])
        if source is None:
            return None
        target = View(result, sum(a * st for a, st in zip(lo, strides)), tuple(b - a for a, b in zip(lo, hi)), strides)
        out.append((source, target))
    return out


def plan_phases(ids: np.ndarray, result: SSAValue, views: list[View]) -> list[tuple[View, View]] | None:
    """(source view, result view) pairs for a result that repeats one source by integer
    factors: a nearest upsampling (each dimension as [n, f]: phase inside) or a Tile (as
    [f, n]: phase outside). Every phase of the result is then an affine view of the source
    and a strided box of the result: per phase one LOAD and one STORE. None otherwise."""
    from spaq.passes.sparrow_layers import affine_view, contiguous_strides

    src = ids >> SHIFT
    if ids.size == 0 or len(views) != 1 or (src != 1).any():
        return None
    shape, source = ids.shape, shape_of_view(views[0])
    if len(shape) != len(source) or any(o % i for o, i in zip(shape, source)):
        return None
    factors = [o // i for o, i in zip(shape, source)]
    phases = prod(factors)
    if phases == 1 or phases > 64:
        return None
    strides = contiguous_strides(shape)
    off = ids & MASK
    for inside in (True, False):
        refined, axes = [], []
        for n, f in zip(shape, factors):
            refined += ([n // f, f] if inside else [f, n // f]) if f > 1 else [n]
            axes.append(len(refined) - (1 if inside else 2) if f > 1 else None)
        grid = off.reshape(refined)
        out = []
        for phase in np.ndindex(*[f for f in factors if f > 1]):
            index = [slice(None)] * len(refined)
            at = dict(zip([a for a in axes if a is not None], phase))
            for a, q in at.items():
                index[a] = q
            view = affine_view(views[0].root, grid[tuple(index)])
            if view is None:
                break
            offset, box, st = 0, [], []
            it = iter(phase)
            for n, f, s_ in zip(shape, factors, strides):
                if f == 1:
                    box.append(n)
                    st.append(s_)
                    continue
                q = next(it)
                if inside:
                    offset += q * s_
                    box.append(n // f)
                    st.append(s_ * f)
                else:
                    offset += q * (n // f) * s_
                    box.append(n // f)
                    st.append(s_)
            out.append((view, View(result, offset, tuple(box), tuple(st))))
        else:
            return out
    return None


def shape_of_view(view: View) -> tuple[int, ...]:
    return tuple(view.shape)


def _emit_boxes(lw, sram, step: int, dtype: DType, dst: View, fill_addr: int | None,
                boxes: list[tuple[View, View]]) -> None:
    from spaq.passes.lower_to_sparrow import _dma

    total = prod(dst.shape)
    if fill_addr is not None:  # the fill everywhere first (one LOAD with zero strides); the boxes overwrite it
        n = min(step, total, MAX_DIM)
        _dma(lw.p, "load", Buffer.ACT, dtype, sram["buf"], fill_addr, 1, n, 0, 0)
        for e0 in range(0, total, n):
            lw.transfer("store", Buffer.ACT, sram["buf"], dst, e0, min(total, e0 + n))
    for source, target in boxes:
        count = prod(target.shape)
        for e0 in range(0, count, step):
            e1 = min(count, e0 + step)
            lw.transfer("load", Buffer.ACT, sram["buf"], source, e0, e1)
            lw.transfer("store", Buffer.ACT, sram["buf"], target, e0, e1)


# ------------------------------------------------------------------------------ resampling

BASIS_LIMIT = 1 << 12
"""Largest input (elements) whose Resize weights are derived from the kernel's basis responses."""


def is_resample_op(op: Operation) -> bool:
    """A float32 Resize that is not a pure selection (linear, cubic, antialiased, cropped
    with an extrapolation value): a weighted sum of gathered input elements."""
    if not isinstance(op, OnnxOp) or op.op_type != "Resize" or is_constant(op.operands[0]):
        return False
    if not all(is_constant(v) for v in op.operands[1:] if not isinstance(v.owner, NoValueOp)):
        return False
    return dram_dtype(element_type(op.operands[0])) == DType.F32 and not is_move_op(op)


def resample_taps(op: Operation, store) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index [T, out], weight [T, out], bias [out]) with y = sum_t weight[t] * x[index[t]] + bias:
    the kernel is linear in x, so running it on each basis vector (and on zeros, for the bias)
    gives the interpolation matrix; its non-zeros per output element become the taps. Leading
    dimensions the Resize keeps (batch, channels) are planes: the taps of one plane, repeated."""
    from spaq.compiler.evaluator import Evaluation

    x_shape, y_shape = shape_of(op.operands[0]), shape_of(op.results[0])
    lead = 0
    if op.attr("axes") is None:
        while lead < len(x_shape) - 1 and x_shape[lead] == y_shape[lead]:
            lead += 1
    planes = prod(x_shape[:lead])
    x_plane, y_plane = (1,) * lead + tuple(x_shape[lead:]), (1,) * lead + tuple(y_shape[lead:])
    n_in, n_out = prod(x_plane), prod(y_plane)
    ev = Evaluation(store)
    params = [None if isinstance(v.owner, NoValueOp) else constant_value(store, v) for v in op.operands[1:]]
    if len(params) > 2 and params[2] is not None and np.size(params[2]) == len(x_shape):
        params[2] = np.concatenate([np.ones(lead, np.int64), np.asarray(params[2], np.int64)[lead:]])  # sizes

    def run(x: np.ndarray) -> np.ndarray:
        y = np.asarray(ev.run_op(op, [x, *params])[0], np.float64)
        if lead and y.shape == tuple(y_shape):  # a kernel that sizes by the op's result: one plane of it
            y = y[(0,) * lead].reshape(y_plane)
        if y.shape != y_plane:
            raise SpaqError(f"layer '{_name(op)}': {op.name} does not resize plane by plane")
        return y.reshape(-1)

    bias = run(np.zeros(x_plane, np.float32))
    if n_in > BASIS_LIMIT:
        index, weight = _separable_taps(op, run, x_plane, y_plane, bias)
        return _over_planes(index, weight, bias, planes, n_in)
    matrix = np.empty((n_out, n_in))
    for j in range(n_in):
        e = np.zeros(n_in, np.float32)
        e[j] = 1
        matrix[:, j] = run(e.reshape(x_plane)) - bias
    taps = max(int((matrix != 0).sum(axis=1).max()), 1) if n_out else 1
    order = np.argsort(matrix == 0, axis=1, kind="stable")[:, :taps]  # the non-zeros first
    weight = np.take_along_axis(matrix, order, axis=1).T.astype(np.float32)
    return _over_planes(order.T, weight, bias, planes, n_in)


def _over_planes(index: np.ndarray, weight: np.ndarray, bias: np.ndarray, planes: int, n_in: int):
    """One plane's taps ([T, n_out] indices and weights, [n_out] bias) repeated over the planes."""
    taps = index.shape[0]
    index = index[:, None, :] + (np.arange(planes) * n_in)[None, :, None]  # [T, planes, n_out]
    return (index.reshape(taps, -1), np.tile(weight.astype(np.float32), (1, planes)),
            np.tile(bias.astype(np.float32), planes))


def _separable_taps(op: Operation, run, x_plane: tuple[int, ...], y_plane: tuple[int, ...],
                    bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A plane too large for its basis: the taps as products of one matrix per dimension,
    each from the kernel's response to a basis vector along that dimension (constant along
    the others). Needs a kernel without bias whose response to ones is ones (interpolation
    weights that sum to 1 per dimension); else one clear error."""
    if bias.any() or not np.allclose(run(np.ones(x_plane, np.float32)), 1.0, rtol=1e-6, atol=1e-6):
        raise SpaqError(f"layer '{_name(op)}': {op.name} of planes of more than {BASIS_LIMIT} elements runs on "
                        f"Sparrow only where it interpolates dimension by dimension")
    rank = len(x_plane)
    per_axis = []  # (index [t, n_out_k], weight [t, n_out_k]) per dimension
    for k in range(rank):
        n_i, n_o = x_plane[k], y_plane[k]
        m = np.empty((n_o, n_i))
        for j in range(n_i):
            x = np.zeros(x_plane, np.float32)
            x[(slice(None),) * k + (j,)] = 1
            y = run(x).reshape(y_plane)
            m[:, j] = y[(0,) * k + (slice(None),) + (0,) * (rank - k - 1)]
        t = max(int((m != 0).sum(axis=1).max()), 1)
        order = np.argsort(m == 0, axis=1, kind="stable")[:, :t]
        per_axis.append((order.T, np.take_along_axis(m, order, axis=1).T))
    strides = [prod(x_plane[k + 1:]) for k in range(rank)]
    indices, weights = [], []
    for combo in np.ndindex(*[len(i) for i, _ in per_axis]):
        idx = np.zeros(y_plane, np.int64)
        w = np.ones(y_plane, np.float64)
        for k, (t, (ix, wx)) in enumerate(zip(combo, per_axis)):
            shape = [1] * rank
            shape[k] = y_plane[k]
            idx = idx + (ix[t] * strides[k]).reshape(shape)
            w = w * wx[t].reshape(shape)
        indices.append(idx.reshape(-1))
        weights.append(w.reshape(-1))
    return np.stack(indices), np.stack(weights).astype(np.float32)


def lower_resample(lw, layer) -> None:
    """Per tap: assemble the gathered inputs (DMA pieces or element GATHERs), LOAD the tap's
    weights, VBIN mul, VBIN add into the sum; then the bias (an extrapolation value), STORE."""
    from spaq.passes.lower_to_sparrow import _dma

    op = layer.head
    sram, step = layer.sram(), layer.tiles()["elems"]
    (view,), dtype = _sources(lw, layer, op)
    index, weight, bias = resample_taps(op, lw.store)
    out = op.results[0]
    lw.activation(out, layer.name)
    dst = lw.view(out)
    total = prod(shape_of(out))
    if total == 0:
        return
    offsets = view.offsets().reshape(-1)
    root = lw.addr[view.root]
    plans, weights = [], []
    for t in range(index.shape[0]):
        ids = ((1 << SHIFT) + offsets[index[t]]).reshape(shape_of(out))
        plans.append(Assembly(lw, layer, ids, [0, root], dtype, f"{t}"))
        weights.append(lw.p.segment(f"{layer.name}.w{t}", "scales", DType.F32, (total,), weight[t]))
    b_addr = lw.p.segment(f"{layer.name}.bias", "scales", DType.F32, (total,), bias) if bias.any() else None
    for e0 in range(0, total, step):
        n = min(total, e0 + step) - e0
        tile = dict(rows=1, cols=n)
        for t, (plan, w) in enumerate(zip(plans, weights)):
            plan.emit(sram["a"], sram["idx"], e0, e0 + n)
            _dma(lw.p, "load", Buffer.ACT, DType.F32, sram["w"], w + 4 * e0, 1, n, n, 1)
            dst_t = sram["buf"] if t == 0 else sram["a"]
            lw.p.emit("vbin", op=BinaryOp.MUL, src=sram["a"], src1=sram["w"], dst=dst_t, **tile)
            if t:
                lw.p.emit("vbin", op=BinaryOp.ADD, src=sram["buf"], src1=sram["a"], dst=sram["buf"], **tile)
        if b_addr is not None:
            _dma(lw.p, "load", Buffer.ACT, DType.F32, sram["w"], b_addr + 4 * e0, 1, n, n, 1)
            lw.p.emit("vbin", op=BinaryOp.ADD, src=sram["buf"], src1=sram["w"], dst=sram["buf"], **tile)
        lw.transfer("store", Buffer.ACT, sram["buf"], dst, e0, e0 + n)


def _fill(lw, layer, op: Operation, dtype: DType) -> int:
    """A one-element segment holding the Pad's constant value."""
    value = np.zeros(1, np.float32)
    if len(op.operands) > 2 and not isinstance(op.operands[2].owner, NoValueOp):
        given = np.asarray(constant_value(lw.store, op.operands[2]))
        if given.size:
            value = given.reshape(1)
    return lw.p.segment(f"{layer.name}.fill", "values", dtype, (1,), value)


def _index_segment(lw, layer, ids: np.ndarray, tag: str) -> tuple[int, np.ndarray, np.ndarray]:
    """The constant i32 element indices of a gathered result (relative to each source's
    lowest gathered element), its address, and per element the source and that lowest
    offset."""
    flat = ids.reshape(-1)
    src, off = flat >> SHIFT, flat & MASK
    low = np.zeros_like(off)
    for s in np.unique(src):
        sel = src == s
        lo = off[sel].min()
        if off[sel].max() - lo >= STRIDE_LIMIT:
            raise SpaqError(f"layer '{layer.name}': a gathered source spans more than {STRIDE_LIMIT} elements")
        low[sel] = lo
    rel = (off - low).astype(np.int32)
    addr = lw.p.segment(f"{layer.name}.idx{tag}", "values", DType.I32, rel.shape, rel)
    return addr, src, low


def _gather_chunk(lw, ids: np.ndarray, index, base: list[int], sp: int, idx_sp: int, dtype: DType,
                  e0: int, e1: int) -> None:
    """Elements [e0, e1) by GATHER (rows of one element), a run of one source at a time."""
    from spaq.passes.lower_to_sparrow import _dma

    addr, src, low = index
    flat_off = ids.reshape(-1) & MASK
    e = dtype.bits // 8
    a = e0
    while a < e1:
        s = src[a]
        b = a + 1
        while b < e1 and src[b] == s and b - a < MAX_DIM:
            b += 1
        rows = b - a
        lo = int(low[a])
        top = int((flat_off[a:b] - lo).max()) + 1
        _dma(lw.p, "load", Buffer.ACT, DType.I32, idx_sp, addr + 4 * a, 1, rows, rows, 1)
        lw.p.emit("gather", buf=Buffer.ACT, dtype=dtype, sp=sp + (a - e0) * e, dram=base[s] + lo * e,
                  rows=rows, cols=1, rstride=1, limit=top, ibuf=Buffer.ACT, idtype=DType.I32, idx=idx_sp)
        a = b


def move_needs(layer, tiles: dict[str, int]) -> dict[str, tuple[Buffer, int]]:
    """The chunk being assembled (`buf`) and its indices (`idx`); a resample also has the
    gathered tap (`a`) and its weights (`w`), all float32. A gathernd: its index tuples
    (`it`, i32), their float32 terms (`m`), the row numbers (`lin`), the gathered rows
    (`buf`) and the dimensions and strides (`vec`, PARAM)."""
    elems = tiles["elems"]
    if layer.kind == "gathernd":
        k, d = _nd_geometry(layer)[2:4]
        return {"it": (Buffer.ACT, 4 * elems * k), "m": (Buffer.ACT, 4 * elems * k), "lin": (Buffer.ACT, 4 * elems),
                "buf": (Buffer.ACT, layer.odtype.nbytes(elems * d)), "vec": (Buffer.PARAM, 8 * k)}
    need = {"buf": (Buffer.ACT, layer.odtype.nbytes(elems)), "idx": (Buffer.ACT, 4 * min(elems, MAX_DIM))}
    if layer.kind == "resample":
        need["a"] = (Buffer.ACT, 4 * elems)
        need["w"] = (Buffer.ACT, 4 * elems)
    return need


def move_elements(layer) -> int:
    """Elements of the largest result (a gathernd: index tuples per batch element); a
    resample's vector instructions take at most MAX_DIM."""
    if layer.kind == "gathernd":
        return min(max(_nd_geometry(layer)[1], 1), MAX_DIM)
    n = max(prod(shape_of(r)) for r in layer.head.results)
    return min(n, MAX_DIM) if layer.kind == "resample" else n


def _nd_geometry(layer) -> tuple[int, int, int, int, int, tuple[int, ...]]:
    """A gathernd's (batch elements, index tuples per batch element, tuple length k, elements
    per gathered row d, table rows per batch element, the k indexed dimensions)."""
    data, idx = shape_of(layer.weight), shape_of(layer.input)
    b = layer.head.attr("batch_dims", 0)
    k = idx[-1]
    dims = tuple(data[b:b + k])
    return prod(data[:b]), prod(idx[b:-1]), k, prod(data[b + k:]), prod(dims), dims


def lower_gathernd(lw, layer) -> None:
    """Per batch element and chunk of index tuples [n, k] (i32): VBIN lt 0 (a negative index
    counts from the end), VBIN mul by the dimensions, VBIN add the indices, VBIN mul by the
    row strides, VRED sum to i32 row numbers (exact: integers below 2^24), GATHER the rows."""
    from spaq.passes.lower_to_sparrow import _dma

    sram, step = layer.sram(), layer.tiles()["elems"]
    batch, count, k, d, rows, dims = _nd_geometry(layer)
    table = lw.view(layer.weight)
    if not table.contiguous:
        raise SpaqError(f"layer '{layer.name}': GatherND needs its data contiguous in DRAM")
    dtype = lw.dtype_of(table)
    if dtype.bits < 8 or d > MAX_DIM or rows >= STRIDE_LIMIT or rows * d >= 1 << 24:
        raise SpaqError(f"layer '{layer.name}': GatherND of these rows does not fit GATHER")
    index = lw.view(layer.input)
    idtype = lw.dtype_of(index)
    lw.activation(layer.output, layer.name)
    y = lw.view(layer.output)
    if batch * count * d == 0:
        return
    strides = [prod(dims[j + 1:]) for j in range(k)]
    vec = np.array([list(dims), strides], np.float32)
    v_addr = lw.p.segment(f"{layer.name}.dims", "scales", DType.F32, vec.shape, vec)
    _dma(lw.p, "load", Buffer.PARAM, DType.F32, sram["vec"], v_addr, 1, 2 * k, 2 * k, 1)
    t0 = lw.base(table)
    for g in range(batch):
        for r0 in range(0, count, step):
            n = min(step, count - r0)
            lo = (g * count + r0) * k
            lw.transfer("load", Buffer.ACT, sram["it"], index, lo, lo + n * k)
            tile = dict(rows=n, cols=k)
            lw.p.emit("vbin", op=BinaryOp.LT, dtype=idtype, src=sram["it"], bcast=Bcast.IMM, imm=0, dst=sram["m"], **tile)
            lw.p.emit("vbin", op=BinaryOp.MUL, src=sram["m"], bcast=Bcast.ROW, buf1=Buffer.PARAM, src1=sram["vec"],
                      dst=sram["m"], **tile)
            lw.p.emit("vbin", op=BinaryOp.ADD, src=sram["m"], dtype1=idtype, src1=sram["it"], dst=sram["m"], **tile)
            lw.p.emit("vbin", op=BinaryOp.MUL, src=sram["m"], bcast=Bcast.ROW, buf1=Buffer.PARAM,
                      src1=sram["vec"] + 4 * k, dst=sram["m"], **tile)
            lw.p.emit("vred", op=ReduceOp.SUM, src=sram["m"], odtype=DType.I32, dst=sram["lin"], **tile)
            lw.p.emit("gather", buf=Buffer.ACT, dtype=dtype, sp=sram["buf"], dram=t0 + dtype.nbytes(g * rows * d),
                      rows=n, cols=d, rstride=d, limit=rows, ibuf=Buffer.ACT, idtype=DType.I32, idx=sram["lin"])
            out0 = (g * count + r0) * d
            lw.transfer("store", Buffer.ACT, sram["buf"], y, out0, out0 + n * d)


def copy_out(lw, value: SSAValue, name: str, capacity: int) -> None:
    """A graph output that no layer writes (an input, a constant, a view of another tensor,
    or a value returned twice): its own output segment, filled by LOAD / STORE through ACT."""
    view: View = lw.view(value)
    dtype = lw.dtype_of(view)
    shape = shape_of(value)
    addr = lw.p.segment(name, "output", dtype, shape)
    total = prod(shape)
    if total == 0:
        return
    e = max(dtype.bits // 8, 1)
    step = max(1, min(total, capacity // e))
    lw.p.layer = name
    for e0 in range(0, total, step):
        e1 = min(total, e0 + step)
        lw.transfer("load", Buffer.ACT, 0, view, e0, e1)
        for k in range(e0, e1, MAX_DIM):
            n = min(MAX_DIM, e1 - k)
            lw.p.emit("store", buf=Buffer.ACT, dtype=dtype, sp=(k - e0) * e, dram=addr + k * e, rows=1, cols=n,
                      rstride=0, cstride=1)
