"""The functional simulator: executes a Sparrow program on modeled DRAM and scratchpads.

    result = simulate(program_bin, image, load_target("edge"), {"x": x})
    result.outputs["y"], result.stats.total.cycles, result.stats.total.dram_metadata

Like VTA's sim_driver it decodes the same binary the hardware would run and executes one
instruction at a time, in program order (results never depend on timing). Memories hold real
bytes (packing.py encodings); every instruction computes through the reference core (core.py),
in one or a few numpy calls. While executing it counts the bytes each instruction moves, its
MACs and vector elements; cycles and energy are priced by cost.py. The load / compute / store
queues are timed from those cycles and the dependency tokens, and the token protocol is
checked (queues.py): a deadlock, a FIFO overflow or a data race the tokens leave unordered is
an error naming the instruction. A bad program ends with one `SimulationError` naming the
instruction; nothing else escapes.

    result.stats.timing.cycles, result.stats.timing.utilisation   # overlapped time, per queue

Per program (and target) the decoded instructions, their predicted costs and the protocol
analysis are computed once and remembered (`_plan`), so simulating many inputs through one
program pays only for executing it.
"""

from __future__ import annotations

import functools
import operator
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from spaq.backends.sparrow import core, queues, vector
from spaq.backends.sparrow.cost import (
    Cost, acc_type, dram_kind, gemm_mac_type, gemm_macs, instruction_cost, priced, work as predicted_work,
)
from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import (
    WORD_BYTES, Bcast, BinaryOp, Buffer, DType, EncodingError, EpilogueMode, Instruction, MetaFormat, WeightFormat,
    decode, encode, epilogue_params,
)
from spaq.backends.sparrow.packing import (
    bitmask_decompress, block_decompress, block_grid, block_index_bytes, codebook_size, csr_decompress,
    csr_meta_from_bytes, csr_meta_nbytes, from_bytes, nm_decompress, nm_groups, nm_index_dtype, to_bytes,
    unpack_indices, value_dtype,
)
from spaq.backends.sparrow.target import Target


class SimulationError(Exception):
    """A program is invalid or does something the target cannot do."""

    def __init__(self, index: int, mnemonic: str, reason: str):
        self.index, self.mnemonic, self.reason = index, mnemonic, reason
        super().__init__(f"instruction {index} ({mnemonic}): {reason}")


class _Fault(Exception):
    """Raised inside an instruction; `simulate` adds the index and mnemonic."""


@dataclass
class SimStats:
    """Counters per executed instruction (parallel lists), summable over any range."""

    mnemonics: list[str]
    per_instruction: list[Cost]
    timing: queues.Timing | None = None
    """When each instruction ran, with load / compute / store overlapped (queues.py)."""

    @property
    def total(self) -> Cost:
        """The sum over the program, except `cycles`: the program's time (`timing.cycles`,
        the queues overlapped; the sum of the instructions' cycles for a program without tokens)."""
        total = self.span(0, len(self.per_instruction) - 1)
        return total if self.timing is None else replace(total, cycles=self.timing.cycles)

    def span(self, first: int, last: int) -> Cost:
        """Sum over instructions first..last inclusive (a layer of the image's `layers`);
        `cycles` is the sum of their cycles (the time they keep their queues busy)."""
        return sum(self.per_instruction[first : last + 1], Cost())

    def by_mnemonic(self) -> dict[str, tuple[int, Cost]]:
        """(count, summed cost) per instruction kind."""
        out: dict[str, tuple[int, Cost]] = {}
        for op, c in zip(self.mnemonics, self.per_instruction):
            n, total = out.get(op, (0, Cost()))
            out[op] = (n + 1, total + c)
        return out


@dataclass
class SimResult:
    """The `output` symbols, the counters, and the whole DRAM image at HALT."""

    outputs: dict[str, np.ndarray]
    stats: SimStats
    image: MemoryImage


Step = Callable[[], None]


class Machine:
    """DRAM and the scratchpads, with one method per instruction.

    A method checks the fields, counts the work (`_add`) and moves the data. One whose counts
    follow from the fields alone may instead return the data movement as a `Step` (a closure
    over the scratchpad and DRAM views it prepared): `execute` runs it and keeps it, with the
    counts, for the next executions of the same decoded instruction, as a session runs one
    program many times. A step reads its operands when it runs and counts nothing."""

    def __init__(self, dram: np.ndarray, target: Target):
        self.dram = dram
        self.target = target
        self.sp = {b: np.zeros(target.capacity(b), np.uint8) for b in Buffer}
        self.capacity = {b: target.capacity(b) for b in Buffer}
        self.count: dict[str, int] = {}
        # A session's memo of dense integer weight tiles as float32 (what the exact integer GEMM
        # multiplies with): `stable` is set by session.py to a test for DRAM byte ranges that no
        # STORE and no input ever writes; `wgt_source` maps a WGT tile address to (its LOAD's
        # fields, end address) while nothing else has written there.
        self.stable = None
        self.wgt_source: dict[int, tuple[tuple, int]] = {}
        self.float_weights: dict[tuple, np.ndarray] = {}
        # Such a LOAD's copy into WGT is deferred (`wgt_pending`: start -> (end, the copy)) until
        # something reads or writes those bytes other than a GEMM that finds its float32 memo;
        # every WGT access but those goes through `_tile`, which copies them first.
        self.wgt_pending: dict[int, tuple[int, Step]] = {}
        self._wgt_touched: list[tuple[int, int]] | None = []
        self._steps: dict[int, tuple[Instruction, Step, dict[str, int], bool, tuple]] = {}

    _STEPS_KEPT = 1 << 16

    _WGT_WRITERS = {"vbin": ("obuf",), "vun": ("obuf",), "vred": ("obuf",), "vsel": ("obuf",), "vreq": ("obuf",),
                    "vquant": ("obuf", "sbuf"), "gather": ("buf",)}
    """Instructions that may write WGT other than LOAD (their result scratchpad fields)."""

    def execute(self, ins: Instruction) -> dict[str, int]:
        """Run one instruction; returns the work counted while running it (`Cost` fields; the
        caller must not modify it)."""
        kept = self._steps.get(id(ins))
        if kept is not None and kept[0] is ins:
            if kept[4] and self.wgt_pending:
                for lo, hi in kept[4]:
                    self._wgt_copy(lo, hi)
            kept[1]()
            count, writes_wgt = kept[2], kept[3]
        else:
            self.count = count = {}
            self._wgt_touched = []
            op = ins.spec.mnemonic
            step = getattr(self, op)(ins)
            writes_wgt = op in self._WGT_WRITERS and any(getattr(ins, f) is Buffer.WGT for f in self._WGT_WRITERS[op])
            if step is not None:
                step()
                if len(self._steps) >= self._STEPS_KEPT:  # a cache: programs decoded anew start it over
                    self._steps.clear()
                self._steps[id(ins)] = (ins, step, count, writes_wgt, tuple(self._wgt_touched or ()))
        if writes_wgt and self.wgt_source:
            self.wgt_source.clear()  # WGT now holds something no LOAD put there
        return count

    def _add(self, **counts: int) -> None:
        for key, n in counts.items():
            self.count[key] = self.count.get(key, 0) + int(n)

    # -- scratchpad access ---------------------------------------------------------------

    def _tile(self, buf: Buffer, addr: int, rows: int, cols: int, dtype: DType) -> np.ndarray:
        """The uint8 [rows, pitch] bytes of a tile (each row starts on a byte boundary)."""
        if rows < 1 or cols < 1:
            raise _Fault(f"empty {rows}x{cols} tile in {buf.name}")
        end = addr + rows * dtype.nbytes(cols)
        cap = self.capacity[buf]
        if end > cap:
            raise _Fault(
                f"{buf.name} overflow: a {rows}x{cols} {dtype.name.lower()} tile at {addr} ends at "
                f"byte {end}, capacity {cap}"
            )
        if buf is Buffer.WGT:
            self._wgt_copy(addr, end)
            if self._wgt_touched is not None:
                self._wgt_touched.append((addr, end))
        return self.sp[buf][addr:end].reshape(rows, -1)

    def _wgt_copy(self, lo: int, hi: int) -> None:
        """Do the deferred LOAD copies into WGT bytes [lo, hi)."""
        if self.wgt_pending:
            for start in [a for a, (end, _) in self.wgt_pending.items() if a < hi and end > lo]:
                self.wgt_pending.pop(start)[1]()

    def _own_wgt_access(self) -> None:
        """The instruction being prepared handles its WGT accesses itself (LOAD, GEMM)."""
        self._wgt_touched = None

    def _get(self, raw: np.ndarray, dtype: DType, cols: int) -> np.ndarray:
        self._add(sram_bytes=raw.size)
        return from_bytes(raw, dtype, cols)

    def _put(self, raw: np.ndarray, values: np.ndarray, dtype: DType) -> None:
        self._write(raw, values, dtype)
        self._add(sram_bytes=raw.size)

    def _write(self, raw: np.ndarray, values: np.ndarray, dtype: DType) -> None:
        """`values` into the tile bytes `raw` (`_put` without counting)."""
        if values.shape[0] != raw.shape[0] or dtype.nbytes(values.shape[1]) != raw.shape[1]:
            raise _Fault(f"result of shape {values.shape} does not fit the destination tile")
        native = self._NATIVE.get(dtype)
        if native is not None and values.dtype == native:  # already the type's values: their bytes
            raw.view(native)[...] = values
        else:
            raw[...] = to_bytes(values, dtype)

    def _read(self, buf: Buffer, addr: int, rows: int, cols: int, dtype: DType) -> np.ndarray:
        return self._get(self._tile(buf, addr, rows, cols, dtype), dtype, cols)

    _NATIVE = {DType.F32: np.dtype("<f4"), DType.I32: np.dtype("<i4"), DType.I8: np.dtype("i1"),
               DType.U8: np.dtype("u1")}
    """Types whose scratchpad bytes are their values as numpy holds them: read in place."""

    def _read_view(self, buf: Buffer, addr: int, rows: int, cols: int, dtype: DType) -> np.ndarray:
        """As `_read`, without a copy for the native types (the caller must not write to it)."""
        native = self._NATIVE.get(dtype)
        if native is None:
            return self._read(buf, addr, rows, cols, dtype)
        raw = self._tile(buf, addr, rows, cols, dtype)
        self._add(sram_bytes=raw.size)
        return raw.view(native)

    # -- DMA -----------------------------------------------------------------------------

    def _dram(self, ins: Instruction) -> np.ndarray:
        """Strided byte view of a DMA's DRAM side: [rows, cols, bytes] or [rows, row bytes]."""
        dtype, rows, cols = ins.dtype, ins.rows, ins.cols
        if rows < 1 or cols < 1:
            raise _Fault(f"empty {rows}x{cols} transfer")
        if dtype.bits < 8:
            if cols > 1 and ins.cstride != 1:
                raise _Fault(f"{dtype.name.lower()} transfers need cstride 1, got {ins.cstride}")
            if rows > 1 and ins.rstride * dtype.bits % 8:
                raise _Fault(
                    f"{dtype.name.lower()} rows must start on a byte: rstride {ins.rstride} x {dtype.bits} bits"
                )
            shape, strides = (rows, dtype.nbytes(cols)), (ins.rstride * dtype.bits // 8, 1)
        else:
            e = dtype.bits // 8
            shape, strides = (rows, cols, e), (ins.rstride * e, ins.cstride * e, 1)
        last = ins.dram + sum((n - 1) * s for n, s in zip(shape, strides))
        if last >= self.dram.size:
            raise _Fault(f"DRAM bytes {ins.dram}..{last} lie outside the {self.dram.size}-byte image")
        n = shape[0] * shape[1] * (shape[2] if len(shape) > 2 else 1)
        self._add(**{f"dram_{dram_kind(ins)}": n})
        return np.ndarray(shape, np.uint8, self.dram, ins.dram, strides)  # a strided view, as as_strided's

    @staticmethod
    def _last_byte_mask(ins: Instruction) -> int:
        """Bits of a row's last byte that hold elements (0xff unless a sub-byte row ends mid-byte)."""
        used = ins.cols * ins.dtype.bits % 8
        return (1 << used) - 1 if used else 0xFF

    @staticmethod
    def _element_views(tile: np.ndarray, dram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A whole-byte transfer's tile bytes and `_dram` view as [rows, cols] arrays of one
        unsigned element each (one strided copy moves it)."""
        e = dram.shape[2]
        if e > 1:
            dram = dram.view(f"u{e}")[..., 0]
        return tile.view(f"u{e}").reshape(dram.shape), dram

    def load(self, ins: Instruction) -> Step:
        dst = self._tile(ins.buf, ins.sp, ins.rows, ins.cols, ins.dtype)
        src = self._dram(ins)
        self._add(sram_bytes=dst.size)
        if ins.dtype.bits >= 8:
            copy = functools.partial(np.copyto, *self._element_views(dst, src))
        else:
            mask = self._last_byte_mask(ins)

            def copy():
                dst[...] = src
                dst[:, -1] &= mask  # bits past the row's last element read as 0

        if ins.buf is not Buffer.WGT or self.stable is None:
            return copy
        self._own_wgt_access()
        note, stable = self._note_weight_load(ins, dst.size)
        lo, hi, pending = ins.sp, ins.sp + dst.size, self.wgt_pending

        def step():
            note()
            for start in [a for a, (end, _) in pending.items() if a < hi and end > lo]:
                end, earlier = pending.pop(start)
                if start < lo or end > hi:  # bytes this LOAD does not overwrite
                    earlier()
            if stable:  # the bytes are there in DRAM whenever they are needed
                pending[lo] = (hi, copy)
            else:
                copy()

        return step

    def _note_weight_load(self, ins: Instruction, nbytes: int) -> tuple[Step, bool]:
        """The step recording in `wgt_source` what this LOAD puts in WGT; whether it loads
        stable DRAM bytes."""
        lo, hi = ins.sp, ins.sp + nbytes
        e = max(ins.dtype.bits // 8, 1)
        last = ins.dram + ((ins.rows - 1) * ins.rstride + (ins.cols - 1) * ins.cstride + 1) * e
        entry = ((ins.dram, ins.rows, ins.cols, ins.rstride, ins.cstride, ins.dtype), hi) \
            if self.stable(ins.dram, last) else None
        source = self.wgt_source

        def note():
            for addr in [a for a, (_, end) in source.items() if a < hi and end > lo]:
                del source[addr]
            if entry is not None:
                source[lo] = entry

        return note, entry is not None

    def _float_weights(self, ins: Instruction, w: np.ndarray) -> Callable[[], np.ndarray | None]:
        """What finds the memoised float32 (`core.float_weights`) of the dense integer weight
        tile `w` of a GEMM, when a LOAD of stable DRAM bytes filled exactly its WGT bytes (else
        None)."""
        if ins.spec.mnemonic != "gemm" or ins.wfmt is not WeightFormat.PLAIN or ins.wdtype.is_float:
            return lambda: None
        addr, end = ins.wgt, ins.wgt + ins.n * ins.wdtype.nbytes(ins.k)
        source, memo = self.wgt_source, self.float_weights

        def find():
            src = source.get(addr)
            if src is None or src[1] != end:
                return None
            wf = memo.get(src[0])
            if wf is None or wf.shape != w.shape[::-1]:
                self._wgt_copy(addr, end)
                wf = memo[src[0]] = core.float_weights(w)
            return wf

        return find

    def store(self, ins: Instruction) -> Step:
        src = self._tile(ins.buf, ins.sp, ins.rows, ins.cols, ins.dtype)
        dst = self._dram(ins)
        self._add(sram_bytes=src.size)
        if ins.dtype.bits >= 8:
            src, dst = self._element_views(src, dst)
            return functools.partial(np.copyto, dst, src)
        mask = self._last_byte_mask(ins)

        def step():
            dst[:, :-1] = src[:, :-1]
            dst[:, -1] = (dst[:, -1] & (0xFF ^ mask)) | (src[:, -1] & mask)

        return step

    def gather(self, ins: Instruction) -> None:
        """Row r of the [rows, cols] tile at `sp` is row idx[r] of the table at `dram` (rows
        `rstride` elements apart); a negative index counts from `limit` (ONNX Gather)."""
        dtype, rows, cols, limit = ins.dtype, ins.rows, ins.cols, ins.limit
        dst = self._tile(ins.buf, ins.sp, rows, cols, dtype)
        if ins.idtype.is_float:
            raise _Fault(f"gather indices must be integers, got {ins.idtype.name.lower()}")
        if dtype.bits < 8 and ins.rstride * dtype.bits % 8:
            raise _Fault(f"{dtype.name.lower()} rows must start on a byte: rstride {ins.rstride} x {dtype.bits} bits")
        idx = self._read(ins.ibuf, ins.idx, 1, rows, ins.idtype)[0].astype(np.int64)
        bad = (idx < -limit) | (idx >= limit)
        if bad.any():
            raise _Fault(f"gather index {int(idx[bad][0])} is outside [-{limit}, {limit})")
        idx = np.where(idx < 0, idx + limit, idx)
        pitch, row_bytes = dtype.nbytes(cols), ins.rstride * dtype.bits // 8
        top = int(idx.max())
        if ins.dram + top * row_bytes + pitch > self.dram.size:
            raise _Fault(f"gathered row {top} lies outside the {self.dram.size}-byte image")
        table = np.lib.stride_tricks.as_strided(self.dram[ins.dram :], (top + 1, pitch), (row_bytes, 1))
        dst[...] = table[idx]
        if dtype.bits < 8:
            dst[:, -1] &= self._last_byte_mask(ins)
        self._add(sram_bytes=dst.size, dram_values=dst.size)

    # -- matrix unit: GEMM, SPGEMM, BSGEMM, USGEMM (docs/isa.md) ------------------------------
    # Each decodes its weight tile (weight format, then sparse format) to a dense W[n, k] and
    # multiplies through core.gemm; MACs and decoded elements are counted from the data.

    DENSE_LIMIT = 1 << 26
    """Largest n * k a sparse GEMM may decode to (a limit of this simulator, not of the ISA)."""

    def _gemm_mode(self, ins: Instruction) -> DType:
        """Check the GEMM mode and the decoders it needs exist on this target; the ACC type."""
        t = self.target
        try:
            mac = gemm_mac_type(ins)
        except ValueError as e:
            raise _Fault(str(e)) from None
        if mac not in t.array.k_per_cycle:
            raise _Fault(f"target '{t.name}' has no {mac} GEMM mode")
        if ins.wfmt is WeightFormat.CODEBOOK:
            if "codebook" not in t.decode_per_cycle:
                raise _Fault(f"target '{t.name}' has no codebook weights")
        elif ins.cdtype or ins.cb:
            raise _Fault(f"cdtype and cb must be 0 unless wfmt=codebook (wfmt={ins.wfmt.name.lower()})")
        if ins.askip and "act_detect" not in t.decode_per_cycle:
            raise _Fault(f"target '{t.name}' cannot skip zero activations (askip=1)")
        if ins.mnemonic != "gemm" and ins.n * ins.k > self.DENSE_LIMIT:
            raise _Fault(f"a {ins.n}x{ins.k} sparse weight tile exceeds the simulator's limit of {self.DENSE_LIMIT} elements")
        return acc_type(mac)

    def _weights(self, ins: Instruction, rows: int, cols: int) -> np.ndarray:
        """The [rows, cols] WGT tile read through the weight format (codebook: table from PARAM)."""
        table = None
        if ins.wfmt is WeightFormat.CODEBOOK:
            table = self._read(Buffer.PARAM, ins.cb, 1, codebook_size(ins.wdtype), ins.cdtype)[0]
        if rows * cols == 0:  # a sparse tile with nothing stored
            return np.zeros((rows, cols), value_dtype(core.weight_type(ins.wdtype, ins.wfmt, ins.cdtype)))
        stored = self._read_view(Buffer.WGT, ins.wgt, rows, cols, ins.wdtype)
        if ins.wfmt is WeightFormat.CODEBOOK:
            self._add(meta_decoded=stored.size)  # one lookup per stored weight
        return core.weight_values(stored, ins.wfmt, table)

    def _multiply(self, ins: Instruction, acc_type: DType, dst: np.ndarray, w: np.ndarray, slots) -> Step:
        """ACC (+)= ACT . W^T with the decoded W[n, k], as a step (over `w` as given: only a
        view of WGT may be kept). MACs: every stored slot x every row, or under askip only the
        slots whose activation is non-zero (`slots()`: stored weight slots per reduction column,
        [k]), counted from ACT now."""
        a = self._read_view(Buffer.ACT, ins.act, ins.m, ins.k, ins.adtype)
        wtype = core.weight_type(ins.wdtype, ins.wfmt, ins.cdtype)
        acc = dst.view(self._NATIVE[acc_type])  # ACC holds f32 or i32
        float_weights = self._float_weights(ins, w)
        adtype, askip, accumulate = ins.adtype, bool(ins.askip), bool(ins.accumulate)
        wgt_lo, wgt_hi = ins.wgt, ins.wgt + ins.n * ins.wdtype.nbytes(ins.k)

        def step():
            wf = float_weights()
            if wf is None:
                self._wgt_copy(wgt_lo, wgt_hi)  # W is read from WGT
            try:
                core.gemm(a, w, adtype, wtype, skip_zero_activations=askip, operands_exact=True,
                          w_float=wf, out=acc, accumulate=accumulate)  # int32 wraps modulo 2^32
            except ValueError as e:
                raise _Fault(str(e)) from None

        macs = gemm_macs(ins)
        if ins.askip:
            macs = int(np.count_nonzero(a, axis=0) @ slots())
            self._add(meta_decoded=a.size)  # the zero detector tests every activation
        self._add(macs=macs, dense_macs=ins.m * ins.n * ins.k, sram_bytes=dst.size * (2 if ins.accumulate else 1))
        return step

    def gemm(self, ins: Instruction) -> Step | None:
        acc_type = self._gemm_mode(ins)
        dst = self._tile(Buffer.ACC, ins.acc, ins.m, ins.n, acc_type)
        w = self._weights(ins, ins.n, ins.k)
        step = self._multiply(ins, acc_type, dst, w, lambda: np.full(ins.k, ins.n, np.int64))
        if not ins.askip and ins.wfmt is WeightFormat.PLAIN and ins.adtype in self._NATIVE and \
                ins.wdtype in self._NATIVE:  # ACT and W are views of their tiles, the MACs fixed
            self._own_wgt_access()
            return step
        step()
        return None

    def spgemm(self, ins: Instruction) -> None:
        acc_type = self._gemm_mode(ins)
        n_, m_ = ins.nm_n, ins.nm_m
        if not self.target.supports_nm(n_, m_):
            have = ", ".join(f"{n}:{m}" for n, m in self.target.nm_patterns) or "none"
            raise _Fault(f"{n_}:{m_} sparsity is not supported by target '{self.target.name}' ({have})")
        groups = nm_groups(ins.k, m_)
        dst = self._tile(Buffer.ACC, ins.acc, ins.m, ins.n, acc_type)
        values = self._weights(ins, ins.n, groups * n_)
        indices = self._read(Buffer.META, ins.meta, ins.n, groups * n_, nm_index_dtype(m_))
        w = nm_decompress(values, indices, n_, m_, ins.k, strict_padding=False)
        self._add(meta_decoded=indices.size)

        def slots():
            cols = (indices.reshape(ins.n, groups, n_) + (np.arange(groups) * m_)[:, None]).ravel()
            return np.bincount(cols[cols < ins.k], minlength=ins.k)

        self._multiply(ins, acc_type, dst, w, slots)()

    def bsgemm(self, ins: Instruction) -> None:
        acc_type = self._gemm_mode(ins)
        br, bc, nb = ins.br, ins.bc, ins.nb
        if not self.target.supports_block(br, bc):
            have = ", ".join(f"{r}x{c}" for r, c in self.target.block_shapes) or "none"
            raise _Fault(f"{br}x{bc} blocks are not supported by target '{self.target.name}' ({have})")
        gr, gc = block_grid(ins.n, ins.k, br, bc)
        if nb > gr * gc:
            raise _Fault(f"{nb} stored blocks exceed the {gr}x{gc} blocks of a {ins.n}x{ins.k} weight")
        dst = self._tile(Buffer.ACC, ins.acc, ins.m, ins.n, acc_type)
        blocks = self._weights(ins, nb * br, bc)
        ib = block_index_bytes(ins.n, ins.k, br, bc)
        ids = unpack_indices(self._read(Buffer.META, ins.meta, 1, nb * ib, DType.U8), ib, nb) if nb else \
            np.zeros(0, np.int64)
        w = block_decompress(ids, blocks, br, bc, ins.n, ins.k)
        self._add(meta_decoded=nb)

        def slots():
            per_block_col = np.bincount(ids % gc, minlength=gc) * br
            return np.repeat(per_block_col, bc)[: ins.k]

        self._multiply(ins, acc_type, dst, w, slots)()

    def usgemm(self, ins: Instruction) -> None:
        acc_type = self._gemm_mode(ins)
        fmt, n, k, nnz = ins.fmt, ins.n, ins.k, ins.nnz
        if fmt.name.lower() not in self.target.decode_per_cycle:
            raise _Fault(f"target '{self.target.name}' has no {fmt.name.lower()} sparse GEMM")
        dst = self._tile(Buffer.ACC, ins.acc, ins.m, n, acc_type)
        values = self._weights(ins, 1, nnz)[0]
        if fmt is MetaFormat.BITMASK:
            mask = self._read(Buffer.META, ins.meta, n, k, DType.U1)
            w = bitmask_decompress(mask, values)
            self._add(meta_decoded=mask.size)
            slots = lambda: np.count_nonzero(mask, axis=0)  # noqa: E731
        else:
            raw = self._read(Buffer.META, ins.meta, 1, csr_meta_nbytes(n, nnz, k), DType.U8)
            row_ptr, col_idx = csr_meta_from_bytes(raw, n, nnz, k)
            w = csr_decompress(row_ptr, col_idx, values, k)
            self._add(meta_decoded=row_ptr.size + col_idx.size)
            slots = lambda: np.bincount(col_idx, minlength=k)  # noqa: E731
        self._multiply(ins, acc_type, dst, w, slots)()

    # -- vector unit -----------------------------------------------------------------------

    def _window_op(self, ins: Instruction, op, cols: int, **kw) -> None:
        oh, ow = core.window_output(ins.h, ins.w, ins.kh, ins.kw, ins.sh, ins.sw, ins.pt, ins.pl,
                                    ins.pb, ins.pr, ins.dh, ins.dw)
        dst = self._tile(Buffer.ACT, ins.dst, oh * ow, cols, ins.dtype)
        x = self._read(Buffer.ACT, ins.src, ins.h * ins.w, ins.c, ins.dtype).reshape(ins.h, ins.w, ins.c)
        y = op(x, ins.kh, ins.kw, ins.sh, ins.sw, ins.pt, ins.pl, ins.pb, ins.pr, ins.dh, ins.dw, **kw)
        self._put(dst, y, ins.dtype)
        self._add(vector_elements=y.size)

    def im2col(self, ins: Instruction) -> None:
        self._window_op(ins, core.im2col, ins.c * ins.kh * ins.kw)

    def maxpool(self, ins: Instruction) -> None:
        lowest = -np.inf if ins.dtype.is_float else ins.dtype.int_range[0]
        self._window_op(ins, core.maxpool, ins.c, pad_value=lowest)

    def epilogue(self, ins: Instruction) -> Step:
        mode, odtype, rows, cols = ins.mode, ins.odtype, ins.rows, ins.cols
        acc_type = DType.F32 if mode is EpilogueMode.FLOAT else DType.I32
        zp = ins.zp - 256 if odtype.is_signed and ins.zp >= 128 else ins.zp
        if mode is EpilogueMode.REQUANT and not odtype.is_float:
            lo, hi = odtype.int_range
            if not lo <= zp <= hi:
                raise _Fault(f"zero point {zp} is outside the {odtype.name.lower()} range [{lo}, {hi}]")
        dst = self._tile(Buffer.ACT, ins.dst, rows, cols, odtype)
        acc = self._read_view(Buffer.ACC, ins.src, rows, cols, acc_type)
        params = {  # 4-byte words: views of PARAM
            name: self._read_view(Buffer.PARAM, ins.param + 4 * cols * i, 1, cols, dtype)[0]
            for i, (name, dtype) in enumerate(epilogue_params(mode, bool(ins.bias)))
        }
        out = dst.view(vector.F32) if odtype is DType.F32 else None  # ACC and ACT never overlap
        relu = bool(ins.relu)
        self._add(sram_bytes=dst.size, vector_elements=rows * cols)

        def step():
            y = core.epilogue(acc, mode, odtype, zero_point=zp, relu=relu, out=out, **params)
            if y is not out:
                self._write(dst, y, odtype)

        return step

    def quant(self, ins: Instruction) -> None:
        dst = self._tile(Buffer.ACT, ins.dst, ins.rows, ins.cols, ins.odtype)
        x = self._read(Buffer.ACT, ins.src, ins.rows, ins.cols, DType.F32)
        scale = self._read(Buffer.PARAM, ins.param, 1, 1, DType.F32)[0, 0]
        y = core.quantize(x, scale, 0, ins.odtype)
        self._put(dst, y, ins.odtype)
        self._add(vector_elements=y.size)

    def softmax(self, ins: Instruction) -> Step:
        out, put = self._vout(Buffer.ACT, ins.dst, ins.rows, ins.cols, DType.F32)
        x = self._voperand(Buffer.ACT, ins.src, ins.rows, ins.cols, DType.F32)
        self._add(vector_elements=3 * ins.rows * ins.cols)
        return lambda: put(vector.softmax(x(), out=out))  # = core.softmax, in place

    # -- vector arithmetic: VBIN VUN VRED VSEL VQUANT VREQ (numerics in vector.py) -----------
    # Operands are read as float32 (f32 tiles in place, as views; other types converted) and
    # results are computed in float32, then written in `odtype` (f32 results straight into the
    # destination). Every operand is read before the result is written: dst may alias a source.

    def _voperand(self, buf: Buffer, addr: int, rows: int, cols: int, dtype: DType) -> Callable[[], np.ndarray]:
        """Count an operand tile's bytes; returns what reads its float32 values (f32: a view)."""
        raw = self._tile(buf, addr, rows, cols, dtype)
        self._add(sram_bytes=raw.size)
        if dtype is DType.F32:
            view = raw.view(vector.F32)
            return lambda: view
        return lambda: vector.to_f32(from_bytes(raw, dtype, cols))

    def _vbroadcast(self, ins: Instruction, bcast, dtype: DType, buf: Buffer, addr: int) -> Callable[[], np.ndarray]:
        """A broadcast operand, broadcastable to [rows, cols] (an immediate: a float32 scalar):
        `_voperand` for the operand's tile."""
        shape = vector.operand_shape(bcast, ins.rows, ins.cols, ins.group)
        if shape is None:
            value = vector.imm_value(ins.imm)
            return lambda: value
        read = self._voperand(buf, addr, *shape, dtype)
        cols, group = ins.cols, ins.group
        return lambda: vector.expand(read(), bcast, cols, group)

    def _vsecond(self, ins: Instruction, bcast, dtype: DType, buf: Buffer, addr: int) -> np.ndarray:
        return self._vbroadcast(ins, bcast, dtype, buf, addr)()

    def _vout(self, buf: Buffer, addr: int, rows: int, cols: int, dtype: DType):
        """Count a result tile's bytes; returns (its float32 view when results can be computed
        in place, else None; what writes a float32 result `y` there in `dtype`)."""
        raw = self._tile(buf, addr, rows, cols, dtype)
        self._add(sram_bytes=raw.size)
        if dtype is DType.F32:
            out = raw.view(vector.F32)

            def put(y):
                if y is not out:
                    out[...] = y

            return out, put
        return None, lambda y: raw.__setitem__(Ellipsis, to_bytes(vector.convert(y, dtype), dtype))

    def _vint(self, buf: Buffer, addr: int, rows: int, cols: int, dtype: DType) -> np.ndarray:
        """An integer-mode operand: its values as int64."""
        return vector.to_i64(self._read(buf, addr, rows, cols, dtype))

    def _vsecond_int(self, ins: Instruction, bcast, dtype: DType, buf: Buffer, addr: int) -> np.ndarray:
        shape = vector.operand_shape(bcast, ins.rows, ins.cols, ins.group)
        if shape is None:
            return vector.imm_int(ins.imm)
        return vector.expand(self._vint(buf, addr, *shape, dtype), bcast, ins.cols, ins.group)

    def _int_types(self, ins: Instruction, *pairs) -> list[DType]:
        """The types of the operands an instruction reads from tiles ((dtype, bcast) pairs)."""
        return [d for d, bc in pairs if bc is not Bcast.IMM]

    def vbin(self, ins: Instruction) -> Step | None:
        if vector.int_mode(ins.op, self._int_types(ins, (ins.dtype, Bcast.TILE), (ins.dtype1, ins.bcast)), ins.odtype):
            dst = self._tile(ins.obuf, ins.dst, ins.rows, ins.cols, ins.odtype)
            a = self._vint(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)
            b = self._vsecond_int(ins, ins.bcast, ins.dtype1, ins.buf1, ins.src1)
            self._put(dst, core.saturate(vector.int_binary(ins.op, a, b), ins.odtype), ins.odtype)
            self._add(vector_elements=vector.BINARY_PASSES[ins.op] * a.size)
            return
        out, put = self._vout(ins.obuf, ins.dst, ins.rows, ins.cols, ins.odtype)
        a = self._voperand(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)
        b = self._vbroadcast(ins, ins.bcast, ins.dtype1, ins.buf1, ins.src1)
        self._add(vector_elements=vector.BINARY_PASSES[ins.op] * ins.rows * ins.cols)
        op = ins.op
        return lambda: put(vector.binary(op, a(), b(), out=out))

    def vun(self, ins: Instruction) -> Step | None:
        if ins.imm == vector.ONE and vector.int_mode(ins.op, [ins.dtype], ins.odtype):
            dst = self._tile(ins.obuf, ins.dst, ins.rows, ins.cols, ins.odtype)
            x = self._vint(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)
            self._put(dst, core.saturate(vector.int_unary(ins.op, x), ins.odtype), ins.odtype)
            self._add(vector_elements=vector.UNARY_PASSES[ins.op] * x.size)
            return
        out, put = self._vout(ins.obuf, ins.dst, ins.rows, ins.cols, ins.odtype)
        x = self._voperand(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)
        self._add(vector_elements=vector.UNARY_PASSES[ins.op] * ins.rows * ins.cols)
        op, scale = ins.op, vector.imm_value(ins.imm)
        return lambda: put(vector.unary(op, x(), scale, out=out))

    def vred(self, ins: Instruction) -> Step:
        shape = (ins.rows, 1) if ins.axis else (1, ins.cols)
        _, put = self._vout(ins.obuf, ins.dst, *shape, ins.odtype)
        x = self._voperand(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)
        self._add(vector_elements=vector.REDUCE_PASSES[ins.op] * ins.rows * ins.cols)
        op, axis, scale = ins.op, ins.axis, vector.imm_value(ins.imm)
        return lambda: put(vector.reduce(op, x(), axis, scale))

    def vsel(self, ins: Instruction) -> Step | None:
        if vector.int_mode(BinaryOp.MAX, self._int_types(ins, (ins.dtype, Bcast.TILE), (ins.dtype1, ins.bcast)),
                           ins.odtype):  # integer mode: the selected values exactly
            dst = self._tile(ins.obuf, ins.dst, ins.rows, ins.cols, ins.odtype)
            mask = self._vsecond(ins, ins.mbcast, ins.mdtype, ins.mbuf, ins.mask)
            a = self._vint(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)
            b = self._vsecond_int(ins, ins.bcast, ins.dtype1, ins.buf1, ins.src1)
            y = np.where(np.not_equal(mask, 0), a, b)
            self._put(dst, core.saturate(np.broadcast_to(y, a.shape), ins.odtype), ins.odtype)
            self._add(vector_elements=vector.SELECT_PASSES * a.size)
            return
        out, put = self._vout(ins.obuf, ins.dst, ins.rows, ins.cols, ins.odtype)
        mask = self._vbroadcast(ins, ins.mbcast, ins.mdtype, ins.mbuf, ins.mask)
        a = self._voperand(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)
        b = self._vbroadcast(ins, ins.bcast, ins.dtype1, ins.buf1, ins.src1)
        self._add(vector_elements=vector.SELECT_PASSES * ins.rows * ins.cols)
        return lambda: put(vector.select(mask(), a(), b(), out=out))

    def vquant(self, ins: Instruction) -> Step:
        odtype, axis = ins.odtype, ins.axis
        vector.qmax(odtype)  # checks the type
        dst = self._tile(ins.obuf, ins.dst, ins.rows, ins.cols, odtype)
        _, put_scale = self._vout(ins.sbuf, ins.scale, *((ins.rows, 1) if axis else (1, ins.cols)), DType.F32)
        x = self._voperand(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)
        native = self._NATIVE.get(odtype) if not odtype.is_float else None
        out = dst.view(native) if native is not None else None
        self._add(sram_bytes=dst.size, vector_elements=vector.DYNAMIC_QUANT_PASSES * ins.rows * ins.cols)

        def step():
            q, scale = vector.dynamic_quantize(x(), odtype, axis, out=out)
            if q is not out:
                self._write(dst, q, odtype)
            put_scale(scale)  # the scales are written last

        return step

    def vreq(self, ins: Instruction) -> None:
        if ins.dtype.is_float:
            raise _Fault(f"vreq needs an integer operand, got {ins.dtype.name.lower()}")
        zp = ins.zp - 256 if ins.odtype.is_signed and ins.zp >= 128 else ins.zp
        dst = self._tile(ins.obuf, ins.dst, ins.rows, ins.cols, ins.odtype)
        x = self._read(ins.buf, ins.src, ins.rows, ins.cols, ins.dtype)
        self._put(dst, vector.requantize(x, ins.mult, ins.shift, zp, ins.odtype, bool(ins.relu)), ins.odtype)
        self._add(vector_elements=vector.REQUANT_PASSES * x.size)

    def halt(self, ins: Instruction) -> Step:
        return _nothing

    def sync(self, ins: Instruction) -> Step:
        return _nothing  # only tokens


def _nothing() -> None:
    pass


def _decode(program: list[Instruction] | bytes) -> list[Instruction]:
    """Decode (or, for Instruction lists, re-validate through the encoding) every word."""
    if isinstance(program, (bytes, bytearray, memoryview)):
        blob = bytes(program)
        if len(blob) % WORD_BYTES:
            reason = f"program has {len(blob)} bytes, not whole {WORD_BYTES}-byte words"
            raise SimulationError(len(blob) // WORD_BYTES, "?", reason)
        words = [blob[i : i + WORD_BYTES] for i in range(0, len(blob), WORD_BYTES)]
    else:
        words = list(program)
    out = []
    seen: dict = {}  # programs repeat instructions: decode each distinct word once
    for i, word in enumerate(words):
        is_ins = isinstance(word, Instruction)
        key = (word.spec.opcode, word.values) if is_ins else word
        ins = seen.get(key)
        if ins is None:
            try:
                ins = seen[key] = decode(encode(word) if is_ins else word)
            except (EncodingError, ValueError, TypeError) as e:
                raise SimulationError(i, word.mnemonic if is_ins else "?", str(e)) from None
        out.append(ins)
    return out


_NOT_WORK = ("cycles", "energy_pj", "dram_bytes")


@dataclass
class _Plan:
    """What `simulate` needs of a program besides its data, computed once per program and
    target: the decoded instructions, per instruction up to HALT the predicted work (its
    non-zero counters) and cost, and the token protocol's analysis."""

    target: Target
    program: list[Instruction]
    predicted: list[tuple[dict[str, int], Cost] | None]
    protocol: queues.Protocol
    agreed: dict[int, dict[str, int]] = field(default_factory=dict)
    """Per instruction, a count (a Machine's kept one, never modified) found equal to the prediction."""
    timings: dict[tuple[int, ...], queues.Timing] = field(default_factory=dict)
    """queues.timing by the instructions' cycles (a session's runs repeat them)."""

    @functools.cached_property
    def mnemonics(self) -> list[str]:
        return [ins.spec.mnemonic for ins in self.program]


_PLANS: OrderedDict[tuple, _Plan] = OrderedDict()
_PLAN_CACHE = 16
_BY_LIST: OrderedDict[tuple[int, int], tuple[tuple, _Plan]] = OrderedDict()
"""The plan of an Instruction list by the list's identity, checked element by element (the
elements are immutable): cheaper than hashing the whole program on every call."""


def _predict(ins: Instruction, target: Target) -> tuple[dict[str, int], Cost] | None:
    try:
        cost = instruction_cost(ins, target)
        done = predicted_work(ins).to_dict()
    except (ValueError, KeyError, ArithmeticError):
        return None  # executing it faults, or prices its counted work itself
    return {k: v for k, v in done.items() if v and k not in _NOT_WORK}, cost


def _plan(program: list[Instruction] | bytes, target: Target) -> _Plan:
    is_list = not isinstance(program, (bytes, bytearray, memoryview))
    if is_list:
        hit = _BY_LIST.get((id(program), id(target)))
        if hit is not None and hit[1].target is target and len(hit[0]) == len(program) \
                and all(map(operator.is_, hit[0], program)):
            return hit[1]
        key: tuple = tuple((w.spec.opcode, w.values) if isinstance(w, Instruction) else w for w in program)
    else:
        key = (bytes(program),)
    key += (id(target),)
    plan = _PLANS.get(key)
    if plan is not None and plan.target is target:
        _PLANS.move_to_end(key)
        return _remember(program, target, plan) if is_list else plan
    decoded = _decode(program)
    body = next((decoded[: i + 1] for i, ins in enumerate(decoded) if ins.spec.mnemonic == "halt"), None)
    if body is None:
        raise SimulationError(len(decoded), "end", "program ends without HALT")
    predictions: dict = {}  # per distinct instruction (the token flags change no cost)
    for ins in body:
        what = (ins.spec.opcode, ins.values[:-4])
        if what not in predictions:
            predictions[what] = _predict(ins, target)
    predicted = [predictions[(ins.spec.opcode, ins.values[:-4])] for ins in body]
    plan = _Plan(target, body, predicted, queues.analyze(body, target))
    _PLANS[key] = plan
    if len(_PLANS) > _PLAN_CACHE:
        _PLANS.popitem(last=False)
    return _remember(program, target, plan) if is_list else plan


def _remember(program: list[Instruction], target: Target, plan: _Plan) -> _Plan:
    _BY_LIST[(id(program), id(target))] = (tuple(program), plan)
    if len(_BY_LIST) > _PLAN_CACHE:
        _BY_LIST.popitem(last=False)
    return plan


def simulate(program: list[Instruction] | bytes, image: MemoryImage, target: Target,
             inputs: dict[str, np.ndarray], *, dram: MemoryImage | None = None,
             machine: Machine | None = None) -> SimResult:
    """Run `program` (decoded, or its binary) from `image` with `inputs` written into their
    symbols; stops at the first HALT. Outputs are the `output` symbols at HALT; the stats
    hold the counted work per instruction and the queues' timing.

    By default DRAM starts as a copy of `image` and the scratchpads as zeros. `dram` and
    `machine` (session.py's `Session`) run on a DRAM image and scratchpads the caller
    prepared instead; `dram` is modified in place."""
    wanted = {name for name, s in image.symbols.items() if s.kind == "input"}
    if set(inputs) != wanted:
        raise ValueError(f"simulate needs exactly the inputs {sorted(wanted)}, got {sorted(inputs)}")
    plan = _plan(program, target)
    proto, predicted = plan.protocol, plan.predicted
    checked = proto.length  # the protocol holds for instructions before this one
    dram = image.copy() if dram is None else dram
    for name, array in inputs.items():
        dram.write(name, array)
    machine = Machine(dram.data, target) if machine is None else machine
    costs: list[Cost] = []
    agreed = plan.agreed
    with vector.ieee_errors():
        for i, ins in enumerate(plan.program):
            if i == checked and proto.error is not None:
                raise SimulationError(i, proto.error.mnemonic, proto.error.reason)
            try:
                count = machine.execute(ins)
                if agreed.get(i) is count:
                    cost = predicted[i][1]
                else:
                    pred = predicted[i]
                    if pred is not None and {k: v for k, v in count.items() if v} == pred[0]:
                        cost = pred[1]
                        agreed[i] = count
                    else:  # counted work differs from the prediction (askip), or no prediction
                        cost = priced(Cost(**count), ins, target)
            except (_Fault, ValueError, ArithmeticError) as e:
                raise SimulationError(i, ins.mnemonic, str(e)) from None
            if i == checked:  # ran, although its fields give no footprint (queues.analyze stopped)
                raise SimulationError(i, ins.mnemonic, str(proto.stopped))
            costs.append(cost)
    stats = SimStats(plan.mnemonics, costs)
    cycles = tuple(c.cycles for c in costs)
    stats.timing = plan.timings.get(cycles)
    if stats.timing is None:
        if len(plan.timings) >= 4:
            plan.timings.clear()
        stats.timing = plan.timings[cycles] = queues.timing(proto, cycles, target)
    outputs = {name: dram.read(name) for name, s in dram.symbols.items() if s.kind == "output"}
    return SimResult(outputs, stats, dram)
