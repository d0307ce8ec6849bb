"""What an instruction reads and writes: byte ranges of the scratchpads and of DRAM, from its
fields alone. One definition, shared by the simulator's hazard check (queues.py) and the
schedule-tokens pass (schedule.py).

    reads(ins)   ->  [(Buffer.ACT, 0, 576), (Buffer.WGT, 64, 136)]
    writes(ins)  ->  [(Buffer.ACC, 0, 2304)]

A range is (space, start, end), end exclusive; the space is a `Buffer` or `DRAM`. A LOAD reads
DRAM and a STORE writes it: layers exchange tensors through DRAM, so a LOAD of a layer's input
must wait for the STORE of the layer before. A strided DMA's DRAM range is the bounding range
of the bytes it touches (conservative: it may order two DMAs that touch disjoint strided bytes).

`AccessLog` keeps, per space, disjoint byte segments, each with its last writer and its latest
reader per queue since that write — what a new access conflicts with (read after write, write
after read, write after write).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import Any, Union

from spaq.backends.sparrow import vector
from spaq.backends.sparrow.cost import WORD, _window, meta_nbytes, weight_tile
from spaq.backends.sparrow.isa import GEMM_FAMILY, Buffer, DType, Instruction, WeightFormat, epilogue_params
from spaq.backends.sparrow.packing import codebook_size

DRAM = "dram"
"""The space of DRAM ranges (scratchpad ranges name their `Buffer`)."""

Space = Union[Buffer, str]
Range = tuple[Space, int, int]


def _tile(buf: Buffer, addr: int, rows: int, cols: int, dtype: DType) -> Range:
    return buf, addr, addr + rows * dtype.nbytes(cols)


def dram_range(ins: Instruction) -> Range:
    """The bounding DRAM byte range of a LOAD / STORE (as the simulator's strided view)."""
    dtype, rows, cols = ins.dtype, ins.rows, ins.cols
    if dtype.bits < 8:
        last = (rows - 1) * (ins.rstride * dtype.bits // 8) + dtype.nbytes(cols) - 1
    else:
        e = dtype.bits // 8
        last = (rows - 1) * ins.rstride * e + (cols - 1) * ins.cstride * e + e - 1
    return DRAM, ins.dram, ins.dram + last + 1


def _second(ins: Instruction, bcast, dtype: DType, buf: Buffer, addr: int) -> list[Range]:
    shape = vector.operand_shape(bcast, ins.rows, ins.cols, ins.group)
    return [] if shape is None else [_tile(buf, addr, *shape, dtype)]


def _accesses(ins: Instruction) -> tuple[list[Range], list[Range]]:
    op = ins.spec.mnemonic
    if op in ("load", "store"):
        sp = _tile(ins.buf, ins.sp, ins.rows, ins.cols, ins.dtype)
        return ([dram_range(ins)], [sp]) if op == "load" else ([sp], [dram_range(ins)])
    if op == "gather":  # the whole table may be read: its bounding range
        table = (DRAM, ins.dram, ins.dram + max(ins.limit - 1, 0) * ins.rstride * ins.dtype.bits // 8
                 + ins.dtype.nbytes(ins.cols))
        return ([table, _tile(ins.ibuf, ins.idx, 1, ins.rows, ins.idtype)],
                [_tile(ins.buf, ins.sp, ins.rows, ins.cols, ins.dtype)])
    if op in GEMM_FAMILY:
        m, n = ins.m, ins.n
        rows, cols = weight_tile(ins)
        r = [_tile(Buffer.ACT, ins.act, m, ins.k, ins.adtype)]
        if rows * cols:
            r.append(_tile(Buffer.WGT, ins.wgt, rows, cols, ins.wdtype))
        if op != "gemm":
            r.append((Buffer.META, ins.meta, ins.meta + meta_nbytes(ins)))
        if ins.wfmt is WeightFormat.CODEBOOK:
            r.append(_tile(Buffer.PARAM, ins.cb, 1, codebook_size(ins.wdtype), ins.cdtype))
        acc = (Buffer.ACC, ins.acc, ins.acc + m * n * WORD)
        if ins.accumulate:
            r.append(acc)
        return r, [acc]
    if op in ("im2col", "maxpool"):
        oh, ow = _window(ins)
        cols = ins.c * ins.kh * ins.kw if op == "im2col" else ins.c
        return ([_tile(Buffer.ACT, ins.src, ins.h * ins.w, ins.c, ins.dtype)],
                [_tile(Buffer.ACT, ins.dst, oh * ow, cols, ins.dtype)])
    if op == "epilogue":
        rows, cols = ins.rows, ins.cols
        params = WORD * cols * len(epilogue_params(ins.mode, bool(ins.bias)))
        r = [(Buffer.ACC, ins.src, ins.src + WORD * rows * cols)]
        if params:
            r.append((Buffer.PARAM, ins.param, ins.param + params))
        return r, [_tile(Buffer.ACT, ins.dst, rows, cols, ins.odtype)]
    if op == "quant":
        return ([(Buffer.ACT, ins.src, ins.src + WORD * ins.rows * ins.cols), (Buffer.PARAM, ins.param, ins.param + WORD)],
                [_tile(Buffer.ACT, ins.dst, ins.rows, ins.cols, ins.odtype)])
    if op == "softmax":
        n = WORD * ins.rows * ins.cols
        return [(Buffer.ACT, ins.src, ins.src + n)], [(Buffer.ACT, ins.dst, ins.dst + n)]
    if op in ("vbin", "vun", "vsel", "vreq"):
        r = [_tile(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)]
        if op in ("vbin", "vsel"):
            r += _second(ins, ins.bcast, ins.dtype1, ins.buf1, ins.src1)
        if op == "vsel":
            r += _second(ins, ins.mbcast, ins.mdtype, ins.mbuf, ins.mask)
        return r, [_tile(ins.obuf, ins.dst, ins.rows, ins.cols, ins.odtype)]
    if op == "vred":
        shape = (ins.rows, 1) if ins.axis else (1, ins.cols)
        return [_tile(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)], [_tile(ins.obuf, ins.dst, *shape, ins.odtype)]
    if op == "vquant":
        shape = (ins.rows, 1) if ins.axis else (1, ins.cols)
        return ([_tile(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)],
                [_tile(ins.obuf, ins.dst, ins.rows, ins.cols, ins.odtype), _tile(ins.sbuf, ins.scale, *shape, DType.F32)])
    if op in ("sync", "halt"):
        return [], []
    raise ValueError(f"no footprint for instruction '{op}'")


def accesses(ins: Instruction) -> tuple[list[Range], list[Range]]:
    """(reads, writes) of `ins`, empty ranges left out. ValueError where the fields do not
    describe a tile or window (the simulator faults on such an instruction)."""
    r, w = _accesses(ins)
    return [x for x in r if x[2] > x[1]], [x for x in w if x[2] > x[1]]


def reads(ins: Instruction) -> list[Range]:
    """The byte ranges `ins` reads."""
    return accesses(ins)[0]


def writes(ins: Instruction) -> list[Range]:
    """The byte ranges `ins` writes."""
    return accesses(ins)[1]


# -- who touched what last -------------------------------------------------------------------------

RAW, WAR, WAW = "read after write", "write after read", "write after write"


class AccessLog:
    """Disjoint byte segments per space, each [start, end, writer, its queue, reader per queue]:
    the last instruction that wrote the bytes and, per queue, the latest one that read them
    since. Accessors are opaque handles (`who`) of a queue (0..2).

    The latest reader per queue is enough: a queue runs its instructions in order, so whatever
    waits for its latest reader also waits for the earlier ones."""

    def __init__(self) -> None:
        self._segs: dict[Space, list[list[Any]]] = {}
        self._los: dict[Space, list[int]] = {}

    def _span(self, space: Space, lo: int, hi: int) -> tuple[int, int]:
        """Index range of the segments overlapping [lo, hi)."""
        segs, los = self._segs.get(space, ()), self._los.get(space, ())
        i = bisect_right(los, lo) - 1
        if i < 0 or segs[i][1] <= lo:
            i += 1
        return i, bisect_left(los, hi)

    def conflicts(self, queue: int, reads: list[Range], writes: list[Range]) -> Iterator[tuple[str, Any, Range]]:
        """(kind, other, overlapped range) for every earlier access by another queue that this
        one must wait for: the writer of bytes it reads or writes, the readers of bytes it
        writes."""
        for space, lo, hi in reads:
            i, j = self._span(space, lo, hi)
            for s in self._segs.get(space, ())[i:j]:
                if s[2] is not None and s[3] != queue:
                    yield RAW, s[2], (space, max(lo, s[0]), min(hi, s[1]))
        for space, lo, hi in writes:
            i, j = self._span(space, lo, hi)
            for s in self._segs.get(space, ())[i:j]:
                if s[2] is not None and s[3] != queue:
                    yield WAW, s[2], (space, max(lo, s[0]), min(hi, s[1]))
                for q in range(3):
                    r = s[4 + q]
                    if r is not None and q != queue:
                        yield WAR, r, (space, max(lo, s[0]), min(hi, s[1]))

    def _cover(self, space: Space, lo: int, hi: int) -> tuple[list[list[Any]], int, int]:
        """Split segments at lo and hi and fill the gaps of [lo, hi) with untouched segments;
        returns the space's segments and the index range that covers [lo, hi) exactly."""
        segs = self._segs.setdefault(space, [])
        los = self._los.setdefault(space, [])
        i, j = self._span(space, lo, hi)
        if j == i + 1 and segs[i][0] == lo and segs[i][1] == hi:  # the same tile again: nothing to split
            return segs, i, j
        pieces: list[list[Any]] = []
        at = lo
        for s in segs[i:j]:
            if s[0] < lo:
                pieces.append([s[0], lo, *s[2:]])
            elif s[0] > at:
                pieces.append([at, s[0], None, None, None, None, None])
            pieces.append([max(s[0], lo), min(s[1], hi), *s[2:]])
            if s[1] > hi:
                pieces.append([hi, s[1], *s[2:]])
            at = min(s[1], hi)
        if at < hi:
            pieces.append([at, hi, None, None, None, None, None])
        segs[i:j] = pieces
        los[i:j] = [p[0] for p in pieces]
        first = i + (1 if pieces[0][0] < lo else 0)
        last = i + len(pieces) - (1 if pieces[-1][1] > hi else 0)
        return segs, first, last

    def record(self, who: Any, queue: int, reads: list[Range], writes: list[Range]) -> None:
        """Note the access: `who` becomes the latest reader (of its queue) of what it reads, then
        the writer of what it writes (which forgets the readers of those bytes)."""
        for space, lo, hi in reads:
            segs, a, b = self._cover(space, lo, hi)
            for s in segs[a:b]:
                s[4 + queue] = who
        for space, lo, hi in writes:
            segs, a, b = self._cover(space, lo, hi)
            segs[a:b] = [[lo, hi, who, queue, None, None, None]]
            self._los[space][a:b] = [lo]
