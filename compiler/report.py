"""Per-layer cost reports: the analytical model's prediction beside the simulator's counts.

    rows = layer_report(program, image, target, stats)   # stats from simulate(), or None

Each row: cycles, array utilisation, executed vs dense-equivalent MACs, DRAM bytes split
into values / metadata / scales, SRAM bytes, energy, and whether the layer is compute- or
memory-bound on this target (which of its GEMM or DMA cycles dominate). A layer's cycles are
its instructions' cycles summed (the time they keep their queues busy); the total's are the
program's time with the load / compute / store queues overlapped (`cost.program_timing`),
beside the serial sum (`serial_cycles`) and each queue's busy cycles (`busy`).
"""

from __future__ import annotations

from dataclasses import replace

from spaq.backends.sparrow.cost import Cost, gemm_mac_type, instruction_cost, program_timing
from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import GEMM_FAMILY, Instruction
from spaq.backends.sparrow.simulator import SimStats
from spaq.backends.sparrow.target import Target

DMA = ("load", "store")
COMPUTE = GEMM_FAMILY


def _row(name: str, model: Cost, program: list[Instruction], target: Target,
         counted: Cost | None) -> dict:
    dma = sum(instruction_cost(i, target).cycles for i in program if i.mnemonic in DMA)
    mac = sum(instruction_cost(i, target).cycles for i in program if i.mnemonic in COMPUTE)
    kpc = target.array.k_per_cycle  # peak: the fastest GEMM mode the layer uses (else the machine's)
    modes = {gemm_mac_type(i) for i in program if i.mnemonic in COMPUTE}
    peak = target.array.rows * target.array.cols * max(kpc[t] for t in modes or kpc)
    row = {
        "layer": name,
        "cycles": model.cycles,
        "utilisation": model.macs / (model.cycles * peak) if model.cycles else 0.0,
        "macs": model.macs,
        "dense_macs": model.dense_macs,
        "dram_values": model.dram_values,
        "dram_metadata": model.dram_metadata,
        "dram_scales": model.dram_scales,
        "sram_bytes": model.sram_bytes,
        "energy_pj": model.energy_pj,
        "bound": "-" if not mac else ("compute" if mac >= dma else "memory"),
    }
    if counted is not None:
        row["sim_cycles"] = counted.cycles
        row["sim_dram_bytes"] = counted.dram_bytes
    return row


def layer_report(program: list[Instruction], image: MemoryImage, target: Target,
                 stats: SimStats | None = None) -> list[dict]:
    rows = []
    for layer in image.layers:
        first, last = layer["first"], layer["last"]
        part = program[first : last + 1]
        model = sum((instruction_cost(i, target) for i in part), Cost())
        rows.append(_row(layer["name"], model, part, target, stats.span(first, last) if stats else None))
    model = sum((instruction_cost(i, target) for i in program), Cost())
    timing = program_timing(program, target)
    total = _row("total", replace(model, cycles=timing.cycles), program, target, stats.total if stats else None)
    total["serial_cycles"] = timing.serial
    total["busy"] = {q: b for q, b in zip(("load", "compute", "store"), timing.busy)}
    rows.append(total)
    return rows


COLUMNS = [("layer", "{}"), ("cycles", "{:,}"), ("utilisation", "{:.1%}"), ("macs", "{:,}"),
           ("dense_macs", "{:,}"), ("dram_values", "{:,}"), ("dram_metadata", "{:,}"),
           ("dram_scales", "{:,}"), ("energy_pj", "{:,.0f}"), ("bound", "{}")]


def format_table(rows: list[dict], columns: list[tuple[str, str]] = COLUMNS) -> str:
    cells = [[h for h, _ in columns]] + [[f.format(r[h]) for h, f in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
