"""Analytical time of a GEMM on a Sparrow target, without simulating: the tiled program a
compiler emits for Y = X · Wᵀ, each instruction priced by cost.py, timed as the load, compute
and store queues run it (docs/isa.md, "Queues and dependency tokens"). (The planner's
analytical estimator for whole programs is to live here too; this is its single-GEMM part.)

    spec = GemmSpec(m=8192, k=4096, n=4096, adtype=DType.BF16)            # nm=(2, 4): 2:4 weights
    est = estimate_gemm(spec, load_target("h100"))
    est.seconds, est.cycles, est.tiling, est.bound, est.cost.dram_metadata

**The program** (`gemm_program`): X [M, K] and W [N, K] row-major in DRAM (W as its N:M kept
values [N, K·n/m] and u2 indices when sparse), Y [M, N]; output tiles tm × tn, the reduction in
steps of tk; the step's tiles alternate between two buffers (double buffering), and so do the
output tiles' ACC and output buffers:

    for each output tile (m0, n0), row-major:
        for each reduction step k0:
            load ACT  X[m0:+tm, k0:+tk]
            load WGT  W[n0:+tn, k0:+tk]            (sparse: its kept values [tn, tk·n/m])
            load META the N:M indices [tn, tk·n/m]   (sparse only)
            gemm / spgemm  m=tm k=tk n=tn accumulate=(k0 > 0)
        epilogue float ACC -> ACT odtype             (f16 / bf16 / fp8 outputs only)
        store Y[m0:+tm, n0:+tn]                      (f32 and i32 outputs straight from ACC)
    halt

with the dependency tokens `schedule.schedule_tokens` gives it (what the schedule-tokens pass
does to a lowered program): a step's GEMM waits for its loads, the loads of step s wait for the
GEMM of step s - 2 (which read the buffer they overwrite), a STORE for its EPILOGUE, an
EPILOGUE (or, storing from ACC, a tile's first GEMM) for the STORE two tiles back. X is re-read
for every column of tiles and W for every row of tiles.

**Its time** is the queues' timing of that program (`queues.timing`: in-order queues; a DMA
occupies its queue for its cost.py cycles minus `dram.latency`, the latency delaying only its
own completion and the token it pushes), computed here from the recurrence those dependencies
give, without building the program: identical steps, tiles and rows of tiles repeat, and once
the state of the queues (relative to the compute queue) repeats, the rest of the run is a
shift (max-plus recurrences are exactly periodic from there). So `estimate_gemm(...).cycles ==
cost.program_timing(gemm_program(...)).cycles` (tested), in microseconds for any size. In the
steady state a reduction step takes max(gemm, loads, (gemm + loads + dram.latency) / 2): with two
buffers, the DRAM latency is hidden only behind a long enough step.

`choose_tiling` takes, among power-of-two multiples of the array shape (tm, tn) and of 64 (tk,
whole N:M groups and metadata bytes) plus the whole dimension, the tiling that fits the
scratchpads double-buffered and is fastest — the planner's choice, and what cuBLAS's
heuristics and cuSPARSELt's algorithm search do for the measured H100 data.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from spaq.backends.sparrow.cost import Cost, acc_type, cycles, instruction_cost, mac_type
from spaq.backends.sparrow.isa import Buffer, DType, EpilogueMode, Instruction
from spaq.backends.sparrow.packing import nm_groups, nm_index_dtype
from spaq.backends.sparrow.target import Target

DMA = ("load", "store")
K_STEP = 64            # reduction tiles: multiples of 64 (whole N:M groups, whole metadata bytes)
MAX_TILE = 4096        # largest power-of-two tile tried per dimension


@dataclass(frozen=True)
class GemmSpec:
    """Y[m, n] = X[m, k] · W[n, k]ᵀ. `odtype` defaults to the accumulator type (f32 / i32)
    for f32 and integer modes, bf16 for fp8 and the activation type for f16 / bf16."""

    m: int
    k: int
    n: int
    adtype: DType
    wdtype: DType | None = None
    odtype: DType | None = None
    nm: tuple[int, int] | None = None

    @functools.cached_property
    def w(self) -> DType:
        return self.adtype if self.wdtype is None else self.wdtype

    @functools.cached_property
    def mode(self) -> str:
        return mac_type(self.adtype, self.w)

    @functools.cached_property
    def out(self) -> DType:
        if self.odtype is not None:
            return self.odtype
        acc = acc_type(self.mode)
        if self.mode == "f32" or acc is DType.I32:
            return acc
        return DType.BF16 if self.mode == "f8" else self.adtype

    @functools.cached_property
    def epilogue(self) -> bool:
        """Whether the output needs an EPILOGUE (else it is stored straight from ACC)."""
        return self.out is not acc_type(self.mode)

    def kept(self, k: int) -> int:
        """Stored weight columns of a k-wide slice (all k when dense)."""
        return k if self.nm is None else nm_groups(k, self.nm[1]) * self.nm[0]

    @property
    def macs(self) -> int:
        return self.m * self.k * self.n


@dataclass(frozen=True)
class Tiling:
    tm: int
    tn: int
    tk: int


@dataclass(frozen=True)
class GemmEstimate:
    spec: GemmSpec
    tiling: Tiling
    cycles: int                     # the program's time, queues overlapped
    serial: int                     # the sum of its instructions' cycles (no overlap at all)
    busy: tuple[int, int, int]      # load, compute, store queue busy cycles (DMA: cycles - latency)
    cost: Cost                      # summed work / bytes / energy of the program (cycles: `serial`)
    clock_mhz: float
    instructions: int

    @property
    def seconds(self) -> float:
        return self.cycles / (self.clock_mhz * 1e6)

    @property
    def tflops(self) -> float:
        """2·m·n·k (dense-equivalent) per second, in 10¹²."""
        return 2 * self.spec.macs / self.seconds / 1e12

    @property
    def bound(self) -> str:
        """The busiest queue ("load", "compute", "store"), or "latency" when none is busy for
        more than half the time."""
        busiest = max(range(3), key=lambda q: self.busy[q])
        if 2 * self.busy[busiest] < self.cycles:
            return "latency"
        return ("load", "compute", "store")[busiest]


# -- the program ---------------------------------------------------------------------------------


def _spans(total: int, tile: int) -> list[tuple[int, int]]:
    return [(s, min(tile, total - s)) for s in range(0, total, tile)]


@dataclass(frozen=True)
class _Layout:
    """DRAM and scratchpad addresses of a GEMM program."""

    x: int
    w: int
    meta: int
    y: int
    act: tuple[int, int]
    out: tuple[int, int]
    wgt: tuple[int, int]
    mbuf: tuple[int, int]
    acc: tuple[int, int]


def _align(a: int, to: int = 64) -> int:
    return -(-a // to) * to


def _needs(spec: GemmSpec, t: Tiling) -> dict[Buffer, int]:
    """Bytes each scratchpad needs for the tiling, double-buffered."""
    kept = spec.kept(t.tk)
    needs = {Buffer.ACT: 2 * t.tm * spec.adtype.nbytes(t.tk), Buffer.WGT: 2 * t.tn * spec.w.nbytes(kept),
             Buffer.ACC: 2 * t.tm * t.tn * 4, Buffer.META: 0}
    if spec.epilogue:
        needs[Buffer.ACT] += 2 * t.tm * spec.out.nbytes(t.tn)
    if spec.nm is not None:
        needs[Buffer.META] = 2 * t.tn * nm_index_dtype(spec.nm[1]).nbytes(kept)
    return needs


def fits(spec: GemmSpec, t: Tiling, target: Target) -> bool:
    return all(need <= target.capacity(buf) for buf, need in _needs(spec, t).items())


def _layout(spec: GemmSpec, t: Tiling) -> _Layout:
    m, k, n = spec.m, spec.k, spec.n
    x = 0
    w = _align(x + m * spec.adtype.nbytes(k))
    meta = _align(w + n * spec.w.nbytes(spec.kept(k)))
    mbytes = 0 if spec.nm is None else n * nm_index_dtype(spec.nm[1]).nbytes(spec.kept(k))
    y = _align(meta + mbytes)
    a = t.tm * spec.adtype.nbytes(t.tk)
    o = t.tm * spec.out.nbytes(t.tn)
    wb = t.tn * spec.w.nbytes(spec.kept(t.tk))
    mb = 0 if spec.nm is None else t.tn * nm_index_dtype(spec.nm[1]).nbytes(spec.kept(t.tk))
    c = t.tm * t.tn * 4
    return _Layout(x, w, meta, y, (0, a), (2 * a, 2 * a + o), (0, wb), (0, mb), (0, c))


def _step(spec: GemmSpec, lay: _Layout, m0: int, tm: int, n0: int, tn: int, k0: int, tk: int,
          buf: int, acc_buf: int, accumulate: bool | None = None) -> list[Instruction]:
    """The loads and the GEMM of one reduction step (accumulating unless it is the first)."""
    k, ad, wd = spec.k, spec.adtype, spec.w
    mk = Instruction.make
    kept_all, kept0, kept = spec.kept(k), spec.kept(k0), spec.kept(tk)
    out = [
        mk("load", buf=Buffer.ACT, dtype=ad, sp=lay.act[buf], dram=lay.x + ad.nbytes(m0 * k + k0),
           rows=tm, cols=tk, rstride=k, cstride=1),
        mk("load", buf=Buffer.WGT, dtype=wd, sp=lay.wgt[buf], dram=lay.w + wd.nbytes(n0 * kept_all + kept0),
           rows=tn, cols=kept, rstride=kept_all, cstride=1),
    ]
    gf = dict(adtype=ad, wdtype=wd, acc=lay.acc[acc_buf], act=lay.act[buf], wgt=lay.wgt[buf],
                  m=tm, k=tk, n=tn, accumulate=int(k0 > 0 if accumulate is None else accumulate))
    if spec.nm is None:
        return [*out, mk("gemm", **gf)]
    md = nm_index_dtype(spec.nm[1])
    pitch = md.nbytes(kept_all)
    out.append(mk("load", buf=Buffer.META, dtype=md, sp=lay.mbuf[buf], dram=lay.meta + n0 * pitch + md.nbytes(kept0),
                  rows=tn, cols=kept, rstride=8 * pitch // md.bits, cstride=1))
    return [*out, mk("spgemm", **gf, meta=lay.mbuf[buf], nm_n=spec.nm[0], nm_m=spec.nm[1])]


def _finish(spec: GemmSpec, lay: _Layout, m0: int, tm: int, n0: int, tn: int, acc_buf: int) -> list[Instruction]:
    """The epilogue (if any) and the store of one output tile."""
    mk, od, n = Instruction.make, spec.out, spec.n
    dram = lay.y + od.nbytes(m0 * n + n0)
    if not spec.epilogue:
        return [mk("store", buf=Buffer.ACC, dtype=od, sp=lay.acc[acc_buf], dram=dram, rows=tm, cols=tn,
                   rstride=n, cstride=1)]
    return [mk("epilogue", mode=EpilogueMode.FLOAT, odtype=od, bias=0, relu=0, src=lay.acc[acc_buf],
               dst=lay.out[acc_buf], param=0, rows=tm, cols=tn, zp=0),
            mk("store", buf=Buffer.ACT, dtype=od, sp=lay.out[acc_buf], dram=dram, rows=tm, cols=tn,
               rstride=n, cstride=1)]


def gemm_program(spec: GemmSpec, target: Target, tiling: Tiling | None = None,
                 tokens: bool = True) -> list[Instruction]:
    """The whole instruction list (ending in HALT) for `spec` with `tiling` (default: the one
    `choose_tiling` picks), with its dependency tokens (`tokens=False`: none, a serial program)."""
    t = tiling or choose_tiling(spec, target)
    lay = _layout(spec, t)
    prog: list[Instruction] = []
    step = tile = 0
    for m0, tm in _spans(spec.m, t.tm):
        for n0, tn in _spans(spec.n, t.tn):
            for k0, tk in _spans(spec.k, t.tk):
                prog += _step(spec, lay, m0, tm, n0, tn, k0, tk, step % 2, tile % 2)
                step += 1
            prog += _finish(spec, lay, m0, tm, n0, tn, tile % 2)
            tile += 1
    prog.append(Instruction.make("halt"))
    if not tokens:
        return prog
    from spaq.backends.sparrow.schedule import schedule_tokens

    return [ins for _, ins in schedule_tokens(prog, target.token_depth)]


# -- pricing -------------------------------------------------------------------------------------


def _key(ins: Instruction) -> tuple:
    return ins.spec.opcode, ins.values


class Prices:
    """cost.py's cycles and costs of each distinct instruction on one target, remembered
    (addresses do not change a cost). Pass one to many estimates on the same target."""

    def __init__(self, target: Target):
        self.target, self._cycles, self._costs = target, {}, {}

    def cycles(self, ins: Instruction) -> int:
        key = _key(ins)
        c = self._cycles.get(key)
        if c is None:
            c = self._cycles[key] = cycles(ins, self.target)
        return c

    def cost(self, ins: Instruction) -> Cost:
        key = _key(ins)
        c = self._costs.get(key)
        if c is None:
            c = self._costs[key] = instruction_cost(ins, self.target)
        return c

    def occupancy(self, ins: Instruction) -> int:
        """Queue cycles of an instruction: a LOAD / STORE's cycles without the DRAM latency."""
        c = self.cycles(ins)
        return c - self.target.dram_latency if ins.mnemonic in DMA else c


_ZERO = _Layout(0, 0, 0, 0, (0, 0), (0, 0), (0, 0), (0, 0), (0, 0))


@functools.lru_cache(maxsize=1 << 16)
def _zstep(spec: GemmSpec, tm: int, tn: int, tk: int, later: bool) -> tuple[Instruction, ...]:
    """A reduction step's instructions, addresses zeroed."""
    return tuple(_step(spec, _ZERO, 0, tm, 0, tn, 0, tk, 0, 0, later))


@functools.lru_cache(maxsize=1 << 16)
def _zfinish(spec: GemmSpec, tm: int, tn: int) -> tuple[Instruction, ...]:
    """An output tile's epilogue (if any) and store, addresses zeroed."""
    return tuple(_finish(spec, _ZERO, 0, tm, 0, tn, 0))


def _runs(total: int, tile: int) -> list[tuple[int, int]]:
    """`_spans` as (size, count) runs in order: the full tiles, then the edge tile."""
    full, rest = divmod(total, tile)
    return [(tile, full)] * (full > 0) + [(rest, 1)] * (rest > 0)


@dataclass(frozen=True)
class Shape:
    """`gemm_program(spec, _, tiling, tokens=False)` as its distinct instructions (addresses
    zeroed) and how often each occurs. Target-independent."""

    items: tuple[tuple[Instruction, int], ...]

    @property
    def instructions(self) -> int:
        return sum(n for _, n in self.items) + 1  # + HALT


@functools.lru_cache(maxsize=1 << 16)
def program_shape(spec: GemmSpec, t: Tiling) -> Shape:
    items: dict[tuple, list] = {}

    def add(ins: Instruction, n: int) -> None:
        item = items.setdefault(_key(ins), [ins, 0])
        item[1] += n

    k_steps = Counter((s, k0 > 0) for k0, s in _spans(spec.k, t.tk))
    for tm, cm in _runs(spec.m, t.tm):
        for tn, cn in _runs(spec.n, t.tn):
            for (tk, later), ck in k_steps.items():
                for ins in _zstep(spec, tm, tn, tk, later):
                    add(ins, cm * cn * ck)
            for ins in _zfinish(spec, tm, tn):
                add(ins, cm * cn)
    return Shape(tuple((ins, n) for ins, n in items.values()))


# -- the queues' timing --------------------------------------------------------------------------

# The state between steps: the load queue's free time, the compute queue's, the ends of the last
# two GEMMs, the store queue's free time, the ends of the last two STOREs.
LF, CF, G1, G2, SF, S1, S2 = range(7)
_PERIODS = (1, 2, 3, 4)


def _repeat(state: list[int], n: int, body: Callable[[list[int]], list[int]]) -> list[int]:
    """`body` applied n times. Times that can no longer delay anything are raised to what
    dominates them (a queue free before the GEMM it waits for, a STORE ended before the compute
    queue's time), so the state relative to the compute queue repeats once the queues settle;
    from there each further period shifts every time by the same amount (the recurrence is
    max-plus: max and + only), and the run is extrapolated."""
    seen: list[tuple[int, ...]] = []
    ref: list[int] = []
    i = 0
    while i < n:
        cf = state[CF]
        key = tuple(x - cf for x in state)
        for p in _PERIODS:
            if len(seen) >= p and seen[-p] == key:
                q = (n - i) // p
                if q:
                    shift = q * (cf - ref[-p])
                    state = [x + shift for x in state]
                    i += q * p
                seen.clear()
                ref.clear()
                break
        else:
            seen.append(key)
            ref.append(cf)
            if len(seen) > _PERIODS[-1]:
                seen.pop(0)
                ref.pop(0)
        if i < n:
            state = body(state)
            s = state
            if s[LF] < s[G2]:
                s[LF] = s[G2]
            for j in (SF, S1, S2):
                if s[j] < s[CF]:
                    s[j] = s[CF]
            i += 1
    return state


def _timeline(spec: GemmSpec, t: Tiling, price: Prices) -> int:
    """The program's cycles (module docstring), by the recurrence of its dependencies."""
    lat = price.target.dram_latency
    occ, cyc = price.occupancy, price.cycles
    from_acc = not spec.epilogue

    def step_body(tm: int, tn: int, tk: int, first: bool) -> Callable[[list[int]], list[int]]:
        ins = _zstep(spec, tm, tn, tk, not first)
        loads = sum(occ(i) for i in ins[:-1])
        gemm = cyc(ins[-1])

        def body(s: list[int]) -> list[int]:
            start = s[LF] if s[LF] > s[G2] else s[G2]      # the buffer's last reader is done
            lf = start + loads
            g = max(s[CF], lf + lat, s[S2] if first and from_acc else 0) + gemm
            return [lf, g, g, s[G1], s[SF], s[S1], s[S2]]
        return body

    def tile_body(tm: int, tn: int) -> Callable[[list[int]], list[int]]:
        runs = _runs(spec.k, t.tk)
        first = step_body(tm, tn, runs[0][0], True)
        rest = [(step_body(tm, tn, tk, False), n - (i == 0)) for i, (tk, n) in enumerate(runs)]
        fin = _zfinish(spec, tm, tn)
        epi = cyc(fin[0]) if spec.epilogue else 0
        store = occ(fin[-1])

        def body(s: list[int]) -> list[int]:
            s = first(s)
            for b, n in rest:
                s = _repeat(s, n, b)
            cf = s[CF]
            if spec.epilogue:
                cf = (cf if cf > s[S2] else s[S2]) + epi   # its output buffer's last STORE is done
            start = s[SF] if s[SF] > cf else cf
            return [s[LF], cf, s[G1], s[G2], start + store, start + store + lat, s[S1]]
        return body

    def row_body(tm: int) -> Callable[[list[int]], list[int]]:
        tiles = [(tile_body(tm, tn), n) for tn, n in _runs(spec.n, t.tn)]

        def body(s: list[int]) -> list[int]:
            for b, n in tiles:
                s = _repeat(s, n, b)
            return s
        return body

    s = [0] * 7
    for tm, n in _runs(spec.m, t.tm):
        s = _repeat(s, n, row_body(tm))
    return max(s[CF], s[S1])


def _estimate(spec: GemmSpec, t: Tiling, price: Prices, full: bool = True) -> GemmEstimate:
    shape = program_shape(spec, t)
    busy, serial, total = [0, 0, 0], 0, Cost()
    for ins, n in shape.items:
        c = price.cycles(ins)
        serial += n * c
        busy[0 if ins.mnemonic == "load" else 2 if ins.mnemonic == "store" else 1] += n * price.occupancy(ins)
        if full:
            k = price.cost(ins)
            total += k * n
    return GemmEstimate(spec, t, _timeline(spec, t, price), serial, tuple(busy), total,
                        price.target.clock_mhz, shape.instructions)


def _lower_bound(spec: GemmSpec, t: Tiling, price: Prices) -> int:
    """The busiest queue's cycles: no schedule is faster."""
    busy = [0, 0, 0]
    for ins, n in program_shape(spec, t).items:
        busy[0 if ins.mnemonic == "load" else 2 if ins.mnemonic == "store" else 1] += n * price.occupancy(ins)
    return max(busy)


def _candidates(total: int, base: int) -> list[int]:
    out, t = {total} if total <= MAX_TILE else set(), base
    while t < total and t <= MAX_TILE:
        out.add(t)
        t *= 2
    return sorted(out)


def candidate_tilings(spec: GemmSpec, target: Target) -> list[Tiling]:
    """Tilings `choose_tiling` considers: power-of-two multiples of the array's rows (tm),
    columns (tn) and of 64 (tk), plus each whole dimension, that fit the scratchpads
    double-buffered."""
    arr = target.array
    ks = [k for k in _candidates(spec.k, K_STEP) if k % K_STEP == 0 or k == spec.k]
    out = [Tiling(tm, tn, tk) for tm in _candidates(spec.m, arr.rows) for tn in _candidates(spec.n, arr.cols)
           for tk in ks]
    return [t for t in out if fits(spec, t, target)]


def choose_tiling(spec: GemmSpec, target: Target, prices: Prices | None = None) -> Tiling:
    """The candidate tiling with the fewest cycles (ties: the first in `candidate_tilings`
    order, i.e. the smallest tiles). Candidates are timed in order of their busiest queue,
    stopping where that alone exceeds the best time found."""
    price = prices or Prices(target)
    tilings = candidate_tilings(spec, target)
    if not tilings:
        raise ValueError(f"no tiling of {spec} fits the scratchpads of target '{target.name}'")
    order = sorted(range(len(tilings)), key=lambda i: (_lower_bound(spec, tilings[i], price), i))
    best, best_i = None, None
    for i in order:
        if best is not None and _lower_bound(spec, tilings[i], price) > best:
            break
        c = _timeline(spec, tilings[i], price)
        if best is None or c < best or (c == best and i < best_i):
            best, best_i = c, i
    return tilings[best_i]


def estimate_gemm(spec: GemmSpec, target: Target, tiling: Tiling | None = None,
                  prices: Prices | None = None) -> GemmEstimate:
    """The estimate of `spec` on `target` with `tiling` (default: `choose_tiling`'s): equal to
    `cost.program_cost` (cycles: `cost.program_timing`) of `gemm_program(spec, target, tiling)`,
    energy up to rounding; `serial` and `cost.cycles` are those of the program without tokens."""
    price = prices or Prices(target)
    t = tiling or choose_tiling(spec, target, price)
    return _estimate(spec, t, price)
