"""The analytical cost model: cycles, bytes, MACs and energy of an instruction from its
fields alone (no data). docs/isa.md states the formulas.

    program_cost(program, load_target("edge")).cycles

The simulator reports the same quantities *counted* while executing; for any valid
program its bytes, MACs and elements equal this model's prediction (tests check it), and
it takes its cycles from `cycles` here.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass, fields, replace

from spaq.backends.sparrow.core import window_output
from spaq.backends.sparrow.isa import Buffer, DType, Instruction, decode_program, epilogue_params
from spaq.backends.sparrow.packing import nm_groups, nm_index_dtype
from spaq.backends.sparrow.target import Target

WORD = 4  # bytes of an accumulator element (int32 / f32), an f32 activation, a PARAM word


@dataclass(frozen=True)
class Cost:
    """What an instruction (or a sum of them) costs. DRAM bytes are split by what they carry."""

    cycles: int = 0
    dram_values: int = 0
    dram_metadata: int = 0
    dram_scales: int = 0
    sram_bytes: int = 0
    macs: int = 0
    dense_macs: int = 0
    vector_elements: int = 0
    meta_decoded: int = 0
    energy_pj: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(*(a + b for a, b in zip(astuple(self), astuple(other))))

    @property
    def dram_bytes(self) -> int:
        return self.dram_values + self.dram_metadata + self.dram_scales

    def to_dict(self) -> dict[str, int | float]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"dram_bytes": self.dram_bytes}


def mac_type(adtype: DType, wdtype: DType) -> str:
    """The MAC-array type (a target `k_per_cycle` / `energy_pj.mac` key) of a GEMM:
    "i8" for integer operands of at most 8 bits, "f32" if an operand is f32, else "f16"."""
    if adtype.is_float and wdtype.is_float:
        return "f32" if DType.F32 in (adtype, wdtype) else "f16"
    if not (adtype.is_float or wdtype.is_float) and max(adtype.bits, wdtype.bits) <= 8:
        return "i8"
    raise ValueError(f"no GEMM mode for operand types {adtype.name.lower()} x {wdtype.name.lower()}")


def dram_kind(ins: Instruction) -> str:
    """What a DMA's bytes carry: LOAD into META = metadata, into PARAM = scales, else values."""
    if ins.mnemonic == "load" and ins.buf is Buffer.META:
        return "metadata"
    if ins.mnemonic == "load" and ins.buf is Buffer.PARAM:
        return "scales"
    return "values"


def energy_pj(cost: Cost, target: Target, mac: str | None) -> float:
    """Energy of the counted work: bytes moved, MACs of type `mac`, vector elements and
    decoded metadata, priced by the target's energy table."""
    e = target.energy_pj
    total = (e["dram_byte"] * cost.dram_bytes + e["sram_byte"] * cost.sram_bytes
             + e["vector_element"] * cost.vector_elements + e["meta_decode"] * cost.meta_decoded)
    return total + (target.mac_energy(mac) * cost.macs if cost.macs else 0.0)


def _ceil(a: float, b: float) -> int:
    return math.ceil(a / b)


def _window(ins: Instruction) -> tuple[int, int]:
    return window_output(ins.h, ins.w, ins.kh, ins.kw, ins.sh, ins.sw, ins.pt, ins.pl, ins.pb, ins.pr,
                         ins.dh, ins.dw)


def _kept(ins: Instruction) -> int:
    """Kept weight values per row of an SPGEMM: G * nm_n."""
    return nm_groups(ins.k, ins.nm_m) * ins.nm_n


def work(ins: Instruction) -> Cost:
    """Bytes, MACs and elements an instruction moves or computes (cycles and energy 0)."""
    op = ins.mnemonic
    if op in ("load", "store"):
        nbytes = ins.rows * ins.dtype.nbytes(ins.cols)
        return Cost(sram_bytes=nbytes, **{f"dram_{dram_kind(ins)}": nbytes})
    if op in ("gemm", "spgemm"):
        m, n, k = ins.m, ins.n, ins.k
        acc = m * n * WORD * (1 + ins.accumulate)
        if op == "gemm":
            return Cost(sram_bytes=m * ins.adtype.nbytes(k) + n * ins.wdtype.nbytes(k) + acc,
                        macs=m * n * k, dense_macs=m * n * k)
        kept = _kept(ins)
        sram = (m * ins.adtype.nbytes(k) + n * ins.wdtype.nbytes(kept)
                + n * nm_index_dtype(ins.nm_m).nbytes(kept) + acc)
        return Cost(sram_bytes=sram, macs=m * n * kept, dense_macs=m * n * k, meta_decoded=n * kept)
    if op in ("im2col", "maxpool"):
        oh, ow = _window(ins)
        cols = ins.c * ins.kh * ins.kw if op == "im2col" else ins.c
        sram = ins.h * ins.w * ins.dtype.nbytes(ins.c) + oh * ow * ins.dtype.nbytes(cols)
        return Cost(sram_bytes=sram, vector_elements=oh * ow * cols)
    if op == "epilogue":
        params = ins.cols * WORD * len(epilogue_params(ins.mode, bool(ins.bias)))
        sram = ins.rows * ins.cols * WORD + params + ins.rows * ins.odtype.nbytes(ins.cols)
        return Cost(sram_bytes=sram, vector_elements=ins.rows * ins.cols)
    if op == "quant":
        sram = ins.rows * ins.cols * WORD + WORD + ins.rows * ins.odtype.nbytes(ins.cols)
        return Cost(sram_bytes=sram, vector_elements=ins.rows * ins.cols)
    if op == "softmax":
        return Cost(sram_bytes=2 * ins.rows * ins.cols * WORD, vector_elements=3 * ins.rows * ins.cols)
    if op == "halt":
        return Cost()
    raise ValueError(f"no cost model for instruction '{op}'")


def cycles(ins: Instruction, target: Target) -> int:
    """Cycles of one instruction on `target` (issue to completion, no overlap)."""
    op, fixed, arr = ins.mnemonic, target.fixed_cycles, target.array
    if op in ("load", "store"):
        nbytes = ins.rows * ins.dtype.nbytes(ins.cols)
        return fixed["dma"] + target.dram_latency + _ceil(nbytes, target.dram_bytes_per_cycle)
    if op in ("gemm", "spgemm"):
        kpc = arr.k_per_cycle[mac_type(ins.adtype, ins.wdtype)]
        depth = ins.k if op == "gemm" else _kept(ins)
        return fixed[op] + _ceil(ins.m, arr.rows) * _ceil(ins.n, arr.cols) * _ceil(depth, kpc)
    if op == "halt":
        return 0
    return fixed["vector"] + _ceil(work(ins).vector_elements, target.vector_lanes)


def priced(done: Cost, ins: Instruction, target: Target) -> Cost:
    """`done` (the work of `ins`, predicted or counted) with the cycles and energy of `ins`."""
    mac = mac_type(ins.adtype, ins.wdtype) if ins.mnemonic in ("gemm", "spgemm") else None
    done = replace(done, cycles=cycles(ins, target))
    return replace(done, energy_pj=energy_pj(done, target, mac))


def instruction_cost(ins: Instruction, target: Target) -> Cost:
    """The predicted cost of one instruction: its work, cycles and energy."""
    return priced(work(ins), ins, target)


def program_cost(program: list[Instruction] | bytes, target: Target) -> Cost:
    """Sum of `instruction_cost` over the program up to and including its first HALT."""
    if isinstance(program, (bytes, bytearray)):
        program = decode_program(bytes(program))
    total = Cost()
    for ins in program:
        total = total + instruction_cost(ins, target)
        if ins.mnemonic == "halt":
            break
    return total
