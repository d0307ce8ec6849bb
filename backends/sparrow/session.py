"""A compiled program loaded onto the simulated machine once and run on many inputs.

    session = Session(program, image, load_target("datacenter"))
    y = session.run({"input_ids": ids, ...}).outputs["last_hidden_state"]

`simulate()` starts every run from a fresh copy of the memory image (tens of MB for a
transformer's weights) and fresh scratchpads. A session copies the image once, as a device
holds its weights in DRAM across inferences, and before each run puts back only what the
previous run changed: the DRAM bytes its STOREs wrote (their footprints, known from the
program's fields: backends/sparrow/footprint.py) and the scratchpad bytes its instructions
wrote (zeroed). Every run therefore starts from exactly the state `simulate()` starts from,
and computes the same outputs and counters.

The session also lets the machine keep the float32 form of each dense integer weight tile
it loads from DRAM bytes that no STORE and no input ever writes (the exact integer GEMM
multiplies through float32 BLAS), so the weights are converted once, not on every run; the
LOADs of those bytes into WGT are copied only if something other than such a GEMM reads
them. And the machine keeps each instruction's prepared step (simulator.Machine), so the
fields are decoded, checked and counted on the first run only.

The `SimResult.image` of a run is the session's DRAM: valid until the next run.
"""

from __future__ import annotations

import numpy as np

from spaq.backends.sparrow import footprint
from spaq.backends.sparrow.footprint import DRAM
from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import Buffer, Instruction
from spaq.backends.sparrow.simulator import Machine, SimResult, _plan, simulate
from spaq.backends.sparrow.target import Target


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


class Session:
    def __init__(self, program: list[Instruction] | bytes, image: MemoryImage, target: Target):
        self.program, self.image, self.target = program, image, target
        body = _plan(program, target).program  # decoded and checked once
        written: dict[object, list[tuple[int, int]]] = {}
        for ins in body:
            try:
                ranges = footprint.writes(ins)
            except ValueError:  # an instruction that faults: simulate() reports it
                continue
            for space, lo, hi in ranges:
                written.setdefault(space, []).append((lo, hi))
        self._dram_dirty = _merge(written.get(DRAM, []))
        self._sp_dirty = {b: max((hi for _, hi in written.get(b, [])), default=0) for b in Buffer}
        self._dram = image.copy()
        self._machine = Machine(self._dram.data, target)
        volatile = _merge(self._dram_dirty + [(sym.addr, sym.end) for sym in image.symbols.values()
                                              if sym.kind == "input"])
        self._machine.stable = lambda lo, hi: not any(a < hi and b > lo for a, b in volatile)
        self._fresh = True

    def run(self, inputs: dict[str, np.ndarray]) -> SimResult:
        if not self._fresh:
            data, pristine = self._dram.data, self.image.data
            for lo, hi in self._dram_dirty:
                data[lo:hi] = pristine[lo:hi]
            for buf, end in self._sp_dirty.items():
                self._machine.sp[buf][:end] = 0
            self._machine.wgt_source.clear()  # WGT is zeros again (the float32 memo stays valid)
            self._machine.wgt_pending.clear()
        self._fresh = False
        return simulate(self.program, self.image, self.target, inputs, dram=self._dram, machine=self._machine)
