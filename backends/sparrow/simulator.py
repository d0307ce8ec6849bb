"""The functional simulator: executes a Sparrow program on modeled DRAM and scratchpads.

    result = simulate(program_bin, image, load_target("edge"), {"x": x})
    result.outputs["y"], result.stats.total.cycles, result.stats.total.dram_metadata

Like VTA's sim_driver it decodes the same binary the hardware would run and executes one
instruction at a time. Memories hold real bytes (packing.py encodings); every instruction
computes through the reference core (core.py), in one or a few numpy calls. While
executing it counts the bytes each instruction moves, its MACs and vector elements; cycles
and energy are priced by cost.py. A bad program ends with one `SimulationError` naming the
instruction; nothing else escapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spaq.backends.sparrow import core
from spaq.backends.sparrow.cost import Cost, dram_kind, mac_type, priced
from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import (
    WORD_BYTES, Buffer, DType, EncodingError, EpilogueMode, Instruction, decode, encode, epilogue_params,
)
from spaq.backends.sparrow.packing import from_bytes, nm_groups, nm_index_dtype, to_bytes
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

    @property
    def total(self) -> Cost:
        return self.span(0, len(self.per_instruction) - 1)

    def span(self, first: int, last: int) -> Cost:
        """Sum over instructions first..last inclusive (a layer of the image's `layers`)."""
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


class Machine:
    """DRAM and the scratchpads, with one method per instruction."""

    def __init__(self, dram: np.ndarray, target: Target):
        self.dram = dram
        self.target = target
        self.sp = {b: np.zeros(target.capacity(b), np.uint8) for b in Buffer}
        self.count: dict[str, int] = {}

    def execute(self, ins: Instruction) -> Cost:
        """Run one instruction; returns the work counted while running it."""
        self.count = {}
        getattr(self, ins.mnemonic)(ins)
        return Cost(**self.count)

    def _add(self, **counts: int) -> None:
        for key, n in counts.items():
            self.count[key] = self.count.get(key, 0) + int(n)

    # -- scratchpad access ---------------------------------------------------------------

    def _tile(self, buf: Buffer, addr: int, rows: int, cols: int, dtype: DType) -> np.ndarray:
        """The uint8 [rows, pitch] bytes of a tile (each row starts on a byte boundary)."""
        if rows < 1 or cols < 1:
            raise _Fault(f"empty {rows}x{cols} tile in {buf.name}")
        end = addr + rows * dtype.nbytes(cols)
        cap = self.target.capacity(buf)
        if end > cap:
            raise _Fault(
                f"{buf.name} overflow: a {rows}x{cols} {dtype.name.lower()} tile at {addr} ends at "
                f"byte {end}, capacity {cap}"
            )
        return self.sp[buf][addr:end].reshape(rows, -1)

    def _get(self, raw: np.ndarray, dtype: DType, cols: int) -> np.ndarray:
        self._add(sram_bytes=raw.size)
        return from_bytes(raw, dtype, cols)

    def _put(self, raw: np.ndarray, values: np.ndarray, dtype: DType) -> None:
        if values.shape[0] != raw.shape[0] or dtype.nbytes(values.shape[1]) != raw.shape[1]:
            raise _Fault(f"result of shape {values.shape} does not fit the destination tile")
        raw[...] = to_bytes(values, dtype)
        self._add(sram_bytes=raw.size)

    def _read(self, buf: Buffer, addr: int, rows: int, cols: int, dtype: DType) -> np.ndarray:
        return self._get(self._tile(buf, addr, rows, cols, dtype), dtype, cols)

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
        self._add(**{f"dram_{dram_kind(ins)}": int(np.prod(shape))})
        return np.lib.stride_tricks.as_strided(self.dram[ins.dram :], shape, strides)

    @staticmethod
    def _last_byte_mask(ins: Instruction) -> int:
        """Bits of a row's last byte that hold elements (0xff unless a sub-byte row ends mid-byte)."""
        used = ins.cols * ins.dtype.bits % 8
        return (1 << used) - 1 if used else 0xFF

    def load(self, ins: Instruction) -> None:
        dst = self._tile(ins.buf, ins.sp, ins.rows, ins.cols, ins.dtype)
        src = self._dram(ins).reshape(ins.rows, -1)  # a copy: the view is strided
        src[:, -1] &= self._last_byte_mask(ins)
        dst[...] = src
        self._add(sram_bytes=dst.size)

    def store(self, ins: Instruction) -> None:
        src = self._tile(ins.buf, ins.sp, ins.rows, ins.cols, ins.dtype)
        dst = self._dram(ins)
        self._add(sram_bytes=src.size)
        if ins.dtype.bits >= 8:
            dst[...] = src.reshape(dst.shape)
            return
        mask = self._last_byte_mask(ins)
        dst[:, :-1] = src[:, :-1]
        dst[:, -1] = (dst[:, -1] & (0xFF ^ mask)) | (src[:, -1] & mask)

    # -- matrix unit -----------------------------------------------------------------------

    def _acc_type(self, ins: Instruction) -> DType:
        """Check the operand types have a GEMM mode on this target; the accumulator type."""
        try:
            mac = mac_type(ins.adtype, ins.wdtype)
        except ValueError as e:
            raise _Fault(str(e)) from None
        if mac not in self.target.array.k_per_cycle:
            raise _Fault(f"target '{self.target.name}' has no {mac} GEMM mode")
        return DType.I32 if mac == "i8" else DType.F32

    def _accumulate(self, ins: Instruction, dst: np.ndarray, product: np.ndarray, acc_type: DType) -> None:
        if ins.accumulate:
            product = self._get(dst, acc_type, ins.n) + product  # int32 wraps modulo 2^32
        self._put(dst, product, acc_type)

    def gemm(self, ins: Instruction) -> None:
        acc_type = self._acc_type(ins)
        dst = self._tile(Buffer.ACC, ins.acc, ins.m, ins.n, acc_type)
        a = self._read(Buffer.ACT, ins.act, ins.m, ins.k, ins.adtype)
        w = self._read(Buffer.WGT, ins.wgt, ins.n, ins.k, ins.wdtype)
        product = core.gemm(a, w, ins.adtype, ins.wdtype)
        self._add(macs=product.size * a.shape[1], dense_macs=product.size * a.shape[1])
        self._accumulate(ins, dst, product, acc_type)

    def spgemm(self, ins: Instruction) -> None:
        acc_type = self._acc_type(ins)
        if not self.target.supports_nm(ins.nm_n, ins.nm_m):
            have = ", ".join(f"{n}:{m}" for n, m in self.target.nm_patterns) or "none"
            raise _Fault(f"{ins.nm_n}:{ins.nm_m} sparsity is not supported by target '{self.target.name}' ({have})")
        kept = nm_groups(ins.k, ins.nm_m) * ins.nm_n
        dst = self._tile(Buffer.ACC, ins.acc, ins.m, ins.n, acc_type)
        a = self._read(Buffer.ACT, ins.act, ins.m, ins.k, ins.adtype)
        values = self._read(Buffer.WGT, ins.wgt, ins.n, kept, ins.wdtype)
        indices = self._read(Buffer.META, ins.meta, ins.n, kept, nm_index_dtype(ins.nm_m))
        product = core.nm_gemm(a, values, indices, ins.nm_n, ins.nm_m, ins.k, ins.adtype, ins.wdtype)
        self._add(macs=product.size * values.shape[1], dense_macs=product.size * a.shape[1],
                  meta_decoded=indices.size)
        self._accumulate(ins, dst, product, acc_type)

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

    def epilogue(self, ins: Instruction) -> None:
        mode, odtype, rows, cols = ins.mode, ins.odtype, ins.rows, ins.cols
        acc_type = DType.F32 if mode is EpilogueMode.FLOAT else DType.I32
        zp = ins.zp - 256 if odtype.is_signed and ins.zp >= 128 else ins.zp
        if mode is EpilogueMode.REQUANT and not odtype.is_float:
            lo, hi = odtype.int_range
            if not lo <= zp <= hi:
                raise _Fault(f"zero point {zp} is outside the {odtype.name.lower()} range [{lo}, {hi}]")
        dst = self._tile(Buffer.ACT, ins.dst, rows, cols, odtype)
        acc = self._read(Buffer.ACC, ins.src, rows, cols, acc_type)
        params = {
            name: self._read(Buffer.PARAM, ins.param + 4 * cols * i, 1, cols, dtype)[0]
            for i, (name, dtype) in enumerate(epilogue_params(mode, bool(ins.bias)))
        }
        y = core.epilogue(acc, mode, odtype, zero_point=zp, relu=bool(ins.relu), **params)
        self._put(dst, y, odtype)
        self._add(vector_elements=y.size)

    def quant(self, ins: Instruction) -> None:
        dst = self._tile(Buffer.ACT, ins.dst, ins.rows, ins.cols, ins.odtype)
        x = self._read(Buffer.ACT, ins.src, ins.rows, ins.cols, DType.F32)
        scale = self._read(Buffer.PARAM, ins.param, 1, 1, DType.F32)[0, 0]
        y = core.quantize(x, scale, 0, ins.odtype)
        self._put(dst, y, ins.odtype)
        self._add(vector_elements=y.size)

    def softmax(self, ins: Instruction) -> None:
        dst = self._tile(Buffer.ACT, ins.dst, ins.rows, ins.cols, DType.F32)
        y = core.softmax(self._read(Buffer.ACT, ins.src, ins.rows, ins.cols, DType.F32))
        self._put(dst, y, DType.F32)
        self._add(vector_elements=3 * y.size)

    def halt(self, ins: Instruction) -> None:
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
    for i, word in enumerate(words):
        name = word.mnemonic if isinstance(word, Instruction) else "?"
        try:
            out.append(decode(encode(word) if isinstance(word, Instruction) else word))
        except (EncodingError, ValueError, TypeError) as e:
            raise SimulationError(i, name, str(e)) from None
    return out


def simulate(program: list[Instruction] | bytes, image: MemoryImage, target: Target,
             inputs: dict[str, np.ndarray]) -> SimResult:
    """Run `program` (decoded, or its binary) from `image` with `inputs` written into their
    symbols; stops at the first HALT. Outputs are the `output` symbols at HALT."""
    wanted = {name for name, s in image.symbols.items() if s.kind == "input"}
    if set(inputs) != wanted:
        raise ValueError(f"simulate needs exactly the inputs {sorted(wanted)}, got {sorted(inputs)}")
    program = _decode(program)
    if not any(ins.mnemonic == "halt" for ins in program):
        raise SimulationError(len(program), "end", "program ends without HALT")
    dram = image.copy()
    for name, array in inputs.items():
        dram.write(name, array)
    machine = Machine(dram.data, target)
    stats = SimStats([], [])
    with np.errstate(all="ignore"):
        for i, ins in enumerate(program):
            try:
                work = machine.execute(ins)
            except (_Fault, ValueError) as e:
                raise SimulationError(i, ins.mnemonic, str(e)) from None
            stats.mnemonics.append(ins.mnemonic)
            stats.per_instruction.append(priced(work, ins, target))
            if ins.mnemonic == "halt":
                break
    outputs = {name: dram.read(name) for name, s in dram.symbols.items() if s.kind == "output"}
    return SimResult(outputs, stats, dram)
