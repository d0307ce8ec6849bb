"""The analytical cost model: cycles, bytes, MACs and energy of an instruction from its
fields alone (no data). docs/isa.md states the formulas.

    program_cost(program, load_target("edge")).cycles
    program_timing(program, target).start, .busy, .utilisation     # the queues overlapped

The simulator reports the same quantities *counted* while executing; for any valid
program its bytes, MACs and elements equal this model's prediction (tests check it), and
it takes its cycles from `cycles` here; a program's cycles are the load / compute / store
queues' overlapped time (`program_timing`, queues.py), the same function of the
per-instruction cycles in both. The one exception is a GEMM with `askip=1`: the
simulator counts the MACs the data lets it skip and prices its cycles with them
(`gemm_cycles(..., executed_macs)`), so there predicted >= counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from spaq.backends.sparrow import vector
from spaq.backends.sparrow.core import window_output
from spaq.backends.sparrow.isa import (
    GEMM_FAMILY, Buffer, DType, Instruction, MetaFormat, WeightFormat, decode_program, epilogue_params,
)
from spaq.backends.sparrow.packing import (
    block_index_bytes, codebook_size, csr_meta_nbytes, nm_groups, nm_index_dtype,
)
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
        return Cost(*(getattr(self, n) + getattr(other, n) for n in _COST_FIELDS))

    def __mul__(self, times: int) -> Cost:
        return Cost(*(getattr(self, n) * times for n in _COST_FIELDS))

    @property
    def dram_bytes(self) -> int:
        return self.dram_values + self.dram_metadata + self.dram_scales

    def to_dict(self) -> dict[str, int | float]:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"dram_bytes": self.dram_bytes}

    @staticmethod
    def from_dict(d: dict[str, int | float]) -> Cost:
        """The inverse of `to_dict` (the derived `dram_bytes` is left out)."""
        return Cost(*(d[n] for n in _COST_FIELDS))


_COST_FIELDS = tuple(f.name for f in fields(Cost))

INT_MODES = ("i8", "i4", "i2", "ternary", "binary")
"""MAC modes that accumulate in int32 (the float modes accumulate in f32)."""


def mac_type(adtype: DType, wdtype: DType, wfmt: WeightFormat = WeightFormat.PLAIN,
             cdtype: DType = DType.F32) -> str:
    """The MAC-array mode of a GEMM — the one place that decides it. Its name is the key of
    the target's `array.k_per_cycle` and `energy_pj.mac` (docs/isa.md, "GEMM modes"):

    plain weights, both float:  "f32" if either is f32; "f8" if both are fp8; else "f16"
                                (f16 / bf16, also mixed with fp8: the fp8 side widens)
    plain weights, both integer (at most 8 bits): "i2" / "i4" / "i8" by the wider operand
    binary (u1, +-1) / ternary (i2, -1 0 +1) weights with integer activations of at most
    8 bits: "binary" / "ternary" (add / subtract only)
    codebook weights (u1 / u2 / u4 / u8 indices): the mode of activations x `cdtype` entries

    Anything else is a ValueError ("no GEMM mode ...")."""
    wfmt = WeightFormat(wfmt)
    a, w = adtype.name.lower(), wdtype.name.lower()
    if wfmt is WeightFormat.CODEBOOK:
        codebook_size(wdtype)  # ValueError unless an index type
        return mac_type(adtype, cdtype)
    if wfmt in (WeightFormat.BINARY, WeightFormat.TERNARY):
        stored = DType.U1 if wfmt is WeightFormat.BINARY else DType.I2
        kind = wfmt.name.lower()
        if wdtype is not stored:
            raise ValueError(f"{kind} weights are stored as {stored.name.lower()}, got wdtype={w}")
        if adtype.is_float or adtype.bits > 8:
            raise ValueError(f"no GEMM mode for {a} activations x {kind} weights (needs integer activations)")
        return kind
    if adtype.is_float and wdtype.is_float:
        if DType.F32 in (adtype, wdtype):
            return "f32"
        return "f8" if adtype.bits == wdtype.bits == 8 else "f16"
    if not (adtype.is_float or wdtype.is_float) and max(adtype.bits, wdtype.bits) <= 8:
        bits = max(adtype.bits, wdtype.bits)
        return "i2" if bits <= 2 else "i4" if bits <= 4 else "i8"
    raise ValueError(f"no GEMM mode for operand types {a} x {w}")


def gemm_mac_type(ins: Instruction) -> str:
    """`mac_type` of a GEMM-family instruction."""
    return mac_type(ins.adtype, ins.wdtype, ins.wfmt, ins.cdtype)


def acc_type(mac: str) -> DType:
    """The accumulator type of a MAC mode: i32 for the integer modes, f32 for the float ones."""
    return DType.I32 if mac in INT_MODES else DType.F32


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


# -- the matrix unit: GEMM, SPGEMM, BSGEMM, USGEMM ----------------------------------------------


def weight_tile(ins: Instruction) -> tuple[int, int]:
    """[rows, cols] of the WGT tile (elements of `wdtype`) a GEMM-family instruction reads."""
    op = ins.mnemonic
    if op == "gemm":
        return ins.n, ins.k
    if op == "spgemm":
        return ins.n, _kept(ins)
    if op == "bsgemm":
        return ins.nb * ins.br, ins.bc
    return 1, ins.nnz


def meta_nbytes(ins: Instruction) -> int:
    """Bytes of the META tile a GEMM-family instruction reads (docs/isa.md, "Sparse metadata")."""
    op = ins.mnemonic
    if op == "spgemm":
        return ins.n * nm_index_dtype(ins.nm_m).nbytes(_kept(ins))
    if op == "bsgemm":
        return ins.nb * block_index_bytes(ins.n, ins.k, ins.br, ins.bc)
    if op == "usgemm":
        if ins.fmt is MetaFormat.BITMASK:
            return ins.n * DType.U1.nbytes(ins.k)
        return csr_meta_nbytes(ins.n, ins.nnz, ins.k)
    return 0


def meta_elements(ins: Instruction) -> int:
    """Metadata elements the sparse front end decodes: N:M indices, block indices, bitmask
    bits, or CSR row pointers + column indices."""
    op = ins.mnemonic
    if op == "spgemm":
        return ins.n * _kept(ins)
    if op == "bsgemm":
        return ins.nb
    if op == "usgemm":
        return ins.n * ins.k if ins.fmt is MetaFormat.BITMASK else ins.n + 1 + ins.nnz
    return 0


def gemm_macs(ins: Instruction) -> int:
    """MACs the array executes without activation skipping: every stored weight slot meets
    every activation row (N:M filler slots and the padding of stored blocks included)."""
    rows, cols = weight_tile(ins)
    return ins.m * rows * cols


def gemm_work(ins: Instruction) -> Cost:
    """Bytes, MACs and decoded elements of a GEMM-family instruction, from its fields."""
    m, n, k = ins.m, ins.n, ins.k
    rows, cols = weight_tile(ins)
    sram = m * ins.adtype.nbytes(k) + rows * ins.wdtype.nbytes(cols) + meta_nbytes(ins)
    sram += m * n * WORD * (1 + ins.accumulate)
    decoded = meta_elements(ins)
    if ins.wfmt is WeightFormat.CODEBOOK:
        sram += ins.cdtype.nbytes(codebook_size(ins.wdtype))  # the table
        decoded += rows * cols  # one lookup per stored weight
    if ins.askip:
        decoded += m * k  # every activation is tested for zero
    return Cost(sram_bytes=sram, macs=gemm_macs(ins), dense_macs=m * n * k, meta_decoded=decoded)


def _decode_rate(target: Target, decoder: str) -> int:
    rate = target.decode_per_cycle.get(decoder)
    if rate is None:
        raise ValueError(f"target '{target.name}' has no {decoder} decoder")
    return rate


def gemm_cycles(ins: Instruction, target: Target, executed_macs: int | None = None) -> int:
    """Cycles of a GEMM-family instruction on `target` — the one GEMM timing formula.

    compute: ceil(m / rows) row blocks; per row block the array streams the stored weights:
      gemm   ceil(n / cols) * ceil(k / kpc)          spgemm  ceil(n / cols) * ceil(G * nm_n / nm_kpc)
      bsgemm ceil(nb * br * bc / (cols * kpc))       usgemm  ceil(nnz / (cols * kpc))
    (stored blocks / values are packed onto the array's columns; kpc = `array.k_per_cycle[mode]`,
    nm_kpc = `array.nm_k_per_cycle[mode]`, default kpc). With `executed_macs` (the
    simulator's count under askip) compute scales by executed / `gemm_macs`.
    Front-end decoders run alongside (once per instruction, elements / target rate): the
    unstructured metadata (bitmask bits or CSR entries), codebook lookups, the askip zero
    detector. cycles = fixed + max(compute, decoders)."""
    arr, op = target.array, ins.mnemonic
    mac = gemm_mac_type(ins)
    if mac not in arr.k_per_cycle:
        raise ValueError(f"target '{target.name}' has no {mac} GEMM mode")
    kpc = arr.k_per_cycle[mac]
    blocks = _ceil(ins.m, arr.rows)
    if op == "gemm":
        compute = blocks * _ceil(ins.n, arr.cols) * _ceil(ins.k, kpc)
    elif op == "spgemm":
        compute = blocks * _ceil(ins.n, arr.cols) * _ceil(_kept(ins), arr.nm_k_per_cycle.get(mac, kpc))
    else:
        rows, cols = weight_tile(ins)
        compute = blocks * _ceil(rows * cols, arr.cols * kpc)
    full = gemm_macs(ins)
    if executed_macs is not None and full and executed_macs < full:
        compute = -(-compute * executed_macs // full)
    stages = [compute]
    if op == "usgemm":
        stages.append(_ceil(meta_elements(ins), _decode_rate(target, ins.fmt.name.lower())))
    if ins.wfmt is WeightFormat.CODEBOOK:
        rows, cols = weight_tile(ins)
        stages.append(_ceil(rows * cols, _decode_rate(target, "codebook")))
    if ins.askip:
        stages.append(_ceil(ins.m * ins.k, _decode_rate(target, "act_detect")))
    fixed = target.fixed_cycles
    return fixed.get(op, fixed["spgemm"]) + max(stages)


VECTOR_OPS = ("vbin", "vun", "vred", "vsel", "vquant", "vreq")
"""The vector arithmetic instructions (docs/isa.md, "Vector unit")."""


def _tile_bytes(dtype: DType, rows: int, cols: int) -> int:
    return rows * dtype.nbytes(cols)


def _operand_bytes(bcast, dtype: DType, rows: int, cols: int, group: int) -> int:
    """SRAM bytes a broadcast operand reads (none for an immediate)."""
    shape = vector.operand_shape(bcast, rows, cols, group)
    return _tile_bytes(dtype, *shape) if shape else 0


def vector_work(ins: Instruction) -> Cost:
    """SRAM bytes (every operand read once, the result written once) and vector elements
    (result elements, or reduced / quantized input elements, times the op's lane passes)."""
    op, rows, cols = ins.mnemonic, ins.rows, ins.cols
    n = rows * cols
    src = _tile_bytes(ins.dtype, rows, cols)
    if op == "vbin":
        sram = src + _operand_bytes(ins.bcast, ins.dtype1, rows, cols, ins.group) + _tile_bytes(ins.odtype, rows, cols)
        return Cost(sram_bytes=sram, vector_elements=vector.BINARY_PASSES[ins.op] * n)
    if op == "vun":
        return Cost(sram_bytes=src + _tile_bytes(ins.odtype, rows, cols), vector_elements=vector.UNARY_PASSES[ins.op] * n)
    if op == "vred":
        out = _tile_bytes(ins.odtype, rows, 1) if ins.axis else _tile_bytes(ins.odtype, 1, cols)
        return Cost(sram_bytes=src + out, vector_elements=vector.REDUCE_PASSES[ins.op] * n)
    if op == "vsel":
        sram = (_operand_bytes(ins.mbcast, ins.mdtype, rows, cols, ins.group) + src
                + _operand_bytes(ins.bcast, ins.dtype1, rows, cols, ins.group) + _tile_bytes(ins.odtype, rows, cols))
        return Cost(sram_bytes=sram, vector_elements=vector.SELECT_PASSES * n)
    if op == "vquant":
        scales = WORD * (rows if ins.axis else cols)
        return Cost(sram_bytes=src + _tile_bytes(ins.odtype, rows, cols) + scales,
                    vector_elements=vector.DYNAMIC_QUANT_PASSES * n)
    if op == "vreq":
        return Cost(sram_bytes=src + _tile_bytes(ins.odtype, rows, cols), vector_elements=vector.REQUANT_PASSES * n)
    raise ValueError(f"'{op}' is not a vector arithmetic instruction")


def work(ins: Instruction) -> Cost:
    """Bytes, MACs and elements an instruction moves or computes (cycles and energy 0)."""
    op = ins.mnemonic
    if op in ("load", "store"):
        nbytes = ins.rows * ins.dtype.nbytes(ins.cols)
        return Cost(sram_bytes=nbytes, **{f"dram_{dram_kind(ins)}": nbytes})
    if op == "gather":  # the rows, plus the index tile it reads
        nbytes = ins.rows * ins.dtype.nbytes(ins.cols)
        return Cost(sram_bytes=nbytes + ins.idtype.nbytes(ins.rows), dram_values=nbytes)
    if op in GEMM_FAMILY:
        return gemm_work(ins)
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
    if op in VECTOR_OPS:
        return vector_work(ins)
    if op in ("halt", "sync"):
        return Cost()
    raise ValueError(f"no cost model for instruction '{op}'")


def cycles(ins: Instruction, target: Target) -> int:
    """Cycles of one instruction on `target` (issue to completion, no overlap)."""
    op, fixed, arr = ins.mnemonic, target.fixed_cycles, target.array
    if op in ("load", "store", "gather"):
        nbytes = ins.rows * ins.dtype.nbytes(ins.cols)
        return fixed["dma"] + target.dram_latency + _ceil(nbytes, target.dram_bytes_per_cycle)
    if op in GEMM_FAMILY:
        return gemm_cycles(ins, target)
    if op in ("halt", "sync"):
        return 0
    return fixed["vector"] + _ceil(work(ins).vector_elements, target.vector_lanes)


def priced(done: Cost, ins: Instruction, target: Target) -> Cost:
    """`done` (the work of `ins`, predicted or counted) with the cycles and energy of `ins`.
    A GEMM's cycles follow its executed MACs (fewer than predicted under askip)."""
    if ins.mnemonic in GEMM_FAMILY:
        mac = gemm_mac_type(ins)
        done = replace(done, cycles=gemm_cycles(ins, target, done.macs))
        return replace(done, energy_pj=energy_pj(done, target, mac))
    mac = None
    done = replace(done, cycles=cycles(ins, target))
    return replace(done, energy_pj=energy_pj(done, target, mac))


def instruction_cost(ins: Instruction, target: Target) -> Cost:
    """The predicted cost of one instruction: its work, cycles and energy."""
    return priced(work(ins), ins, target)


def program_timing(program: list[Instruction] | bytes, target: Target):
    """The overlapped timing of the program up to its first HALT (`queues.Timing`: makespan,
    per-instruction start / end, per-queue busy cycles and utilisation), from the fields and
    token flags alone: the load, compute and store queues run concurrently, ordered by the
    dependency tokens (docs/isa.md, "Queues and dependency tokens"). A program without any
    token runs serially (cycles = the sum). ValueError (`queues.ProtocolError`, naming the
    instruction) for a program that breaks the token protocol."""
    from spaq.backends.sparrow import queues  # queues -> footprint -> cost

    if isinstance(program, (bytes, bytearray)):
        program = decode_program(bytes(program))
    proto = queues.analyze(program, target)
    if proto.error is not None:
        raise proto.error
    if proto.stopped is not None:
        raise ValueError(f"instruction {proto.length} ({program[proto.length].mnemonic}): {proto.stopped}")
    if not proto.queues or proto.queues[-1] != queues.HALT:
        raise ValueError(f"instruction {len(program)} (end): program ends without HALT")
    return queues.timing(proto, [cycles(ins, target) for ins in program[: proto.length]], target)


def program_cost(program: list[Instruction] | bytes, target: Target) -> Cost:
    """Sum of `instruction_cost` over the program up to and including its first HALT, except
    `cycles`: the program's time with load / compute / store overlapped (`program_timing`;
    the sum when the program carries no tokens)."""
    if isinstance(program, (bytes, bytearray)):
        program = decode_program(bytes(program))
    total = Cost()
    n = 0
    for ins in program:
        total = total + instruction_cost(ins, target)
        n += 1
        if ins.mnemonic == "halt":
            break
    if n and program[n - 1].mnemonic == "halt":
        total = replace(total, cycles=program_timing(program, target).cycles)
    return total
