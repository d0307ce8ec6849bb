"""Per-layer cost reports: the analytical model's prediction beside the simulator's counts.

    rows = layer_report(program, image, target, stats, estimates)
    # stats from simulate() (or None); estimates from passes.layer_estimate (or None)

Each row: cycles, array utilisation, executed vs dense-equivalent MACs, DRAM bytes split
into values / metadata / scales, SRAM bytes, energy, and whether the layer is compute- or
memory-bound on this target (which of its GEMM or DMA cycles dominate). A layer's cycles are
its instructions' cycles summed (the time they keep their queues busy); the total's are the
program's time with the load / compute / store queues overlapped (`cost.program_timing`),
beside the serial sum (`serial_cycles`) and each queue's busy cycles (`busy`).

Three views of one layer: the cost model over its emitted instructions (the main columns),
the planner's estimator from the layer's shapes alone (`est_cycles`, `est_dram_bytes`; GEMM
and conv layers, computed before lowering by `compile_model`), and the simulator's counters
(`sim_cycles`, `sim_dram_bytes`). `ESTIMATE_COLUMNS` prints the last two side by side.
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
         counted: Cost | None, estimated: Cost | None = None) -> dict:
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
    if estimated is not None:
        row["est_cycles"] = estimated.cycles
        row["est_dram_bytes"] = estimated.dram_bytes
    return row


def layer_report(program: list[Instruction], image: MemoryImage, target: Target,
                 stats: SimStats | None = None, estimates: dict[str, Cost] | None = None) -> list[dict]:
    """One row per layer (its instruction ranges gathered: a fused tail's instructions sit
    between its GEMM's), then the program's total."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for layer in image.layers:
        spans.setdefault(layer["name"], []).append((layer["first"], layer["last"]))
    rows = []
    for name, ranges in spans.items():
        part = [ins for first, last in ranges for ins in program[first : last + 1]]
        model = sum((instruction_cost(i, target) for i in part), Cost())
        counted = sum((stats.span(first, last) for first, last in ranges), Cost()) if stats else None
        rows.append(_row(name, model, part, target, counted, (estimates or {}).get(name)))
    model = sum((instruction_cost(i, target) for i in program), Cost())
    timing = program_timing(program, target)
    total = _row("total", replace(model, cycles=timing.cycles), program, target, stats.total if stats else None)
    total["serial_cycles"] = timing.serial
    total["busy"] = {q: b for q, b in zip(("load", "compute", "store"), timing.busy)}
    rows.append(total)
    return rows


COLUMNS = [("layer", "{}"), ("cycles", "{:,}"), ("utilisation", "{:.1%}"), ("macs", "{:,}"),
           ("dense_macs", "{:,}"), ("dram_values", "{:,}"), ("dram_metadata", "{:,}"),
           ("dram_scales", "{:,}"), ("sram_bytes", "{:,}"), ("energy_pj", "{:,.0f}"), ("bound", "{}")]


ESTIMATE_COLUMNS = [("layer", "{}"), ("est_cycles", "{:,}"), ("sim_cycles", "{:,}"), ("est_dram_bytes", "{:,}"),
                    ("sim_dram_bytes", "{:,}")]
"""The estimator beside the simulator (rows of GEMM and conv layers)."""


def format_table(rows: list[dict], columns: list[tuple[str, str]] = COLUMNS) -> str:
    """Aligned text table; a value a row lacks prints as '-'."""
    cells = [[h for h, _ in columns]] + [[f.format(r[h]) if r.get(h) is not None else "-" for h, f in columns]
                                         for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
