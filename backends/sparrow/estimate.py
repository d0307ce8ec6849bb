"""Analytical time of a GEMM on a Sparrow target, without simulating: the tiled program a
compiler emits for Y = X · Wᵀ, priced instruction by instruction with cost.py, then combined by
an explicit load / compute overlap model. (The planner's analytical estimator for whole
programs is to live here too; this is its single-GEMM part.)

    spec = GemmSpec(m=8192, k=4096, n=4096, adtype=DType.BF16)            # nm=(2, 4): 2:4 weights
    est = estimate_gemm(spec, load_target("h100"))
    est.seconds, est.cycles, est.tiling, est.bound, est.cost.dram_metadata

**The program** (`gemm_program`): X [M, K] and W [N, K] row-major in DRAM (W as its N:M kept
values [N, K·n/m] and u2 indices when sparse), Y [M, N]; output tiles tm × tn, the reduction in
steps of tk, every on-chip tile double-buffered:

    for each output tile (m0, n0), row-major:
        for each reduction step k0:
            load ACT  X[m0:+tm, k0:+tk]
            load WGT  W[n0:+tn, k0:+tk]            (sparse: its kept values [tn, tk·n/m])
            load META the N:M indices [tn, tk·n/m]   (sparse only)
            gemm / spgemm  m=tm k=tk n=tn accumulate=(k0 > 0)
        epilogue float ACC -> ACT odtype             (f16 / bf16 / fp8 outputs only)
        store Y[m0:+tm, n0:+tn]                      (f32 and i32 outputs straight from ACC)
    halt

X is re-read for every column of tiles and W for every row of tiles (no reuse across output
tiles). `choose_tiling` takes, among power-of-two multiples of the array shape (tm, tn) and of
64 (tk, whole N:M groups and metadata bytes) plus the whole dimension, the tiling that fits the
scratchpads double-buffered and has the smallest estimate — the planner's choice, and what
cuBLAS's heuristics and cuSPARSELt's algorithm search do for the measured H100 data.

**Overlap model** (`overlap`; an assumption of this estimate until programs carry dependency
tokens and the simulator overlaps queues itself). Two in-order queues: DMA (LOAD, STORE) and
compute (everything else). The DMA engine keeps transfers in flight, so a transfer occupies its
queue for its cost.py cycles minus `dram.latency`; the latency delays only its own completion.
With double buffering the queues run concurrently except at the ends:

    prologue = occupancy of the DMAs before the first compute instruction + latency
    body     = max(sum of compute cycles, occupancy of the other DMAs)
    drain    = occupancy of the DMAs after the last compute instruction + latency
    cycles   = prologue + body + drain

`serial_cycles` (= cost.program_cost, no overlap at all) is reported beside it.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, fields

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

    @property
    def w(self) -> DType:
        return self.adtype if self.wdtype is None else self.wdtype

    @property
    def mode(self) -> str:
        return mac_type(self.adtype, self.w)

    @property
    def out(self) -> DType:
        if self.odtype is not None:
            return self.odtype
        acc = acc_type(self.mode)
        if self.mode == "f32" or acc is DType.I32:
            return acc
        return DType.BF16 if self.mode == "f8" else self.adtype

    @property
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
class Overlap:
    """The overlap model's parts (cycles) for one program."""

    prologue: int
    body: int
    drain: int
    compute: int      # sum of compute-queue cycles
    dma: int          # sum of DMA occupancy (cycles - latency)
    serial: int       # sum of cost.py cycles: no overlap at all

    @property
    def cycles(self) -> int:
        return self.prologue + self.body + self.drain


@dataclass(frozen=True)
class GemmEstimate:
    spec: GemmSpec
    tiling: Tiling
    overlap: Overlap
    cost: Cost                      # summed work / bytes / energy of the program (cycles: serial)
    clock_mhz: float
    instructions: int

    @property
    def cycles(self) -> int:
        return self.overlap.cycles

    @property
    def seconds(self) -> float:
        return self.cycles / (self.clock_mhz * 1e6)

    @property
    def tflops(self) -> float:
        """2·m·n·k (dense-equivalent) per second, in 10¹²."""
        return 2 * self.spec.macs / self.seconds / 1e12

    @property
    def bound(self) -> str:
        return "compute" if self.overlap.compute >= self.overlap.dma else "memory"


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


def gemm_program(spec: GemmSpec, target: Target, tiling: Tiling | None = None) -> list[Instruction]:
    """The whole instruction list (ending in HALT) for `spec` with `tiling` (default: the one
    `choose_tiling` picks)."""
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
    return [*prog, Instruction.make("halt")]


# -- the overlap model ---------------------------------------------------------------------------


class Prices:
    """cost.py's cycles and costs of each distinct instruction on one target, remembered
    (addresses do not change a cost). Pass one to many estimates on the same target."""

    def __init__(self, target: Target):
        self.target, self._cycles, self._costs = target, {}, {}

    def cycles(self, ins: Instruction) -> int:
        c = self._cycles.get(ins)
        if c is None:
            c = self._cycles[ins] = cycles(ins, self.target)
        return c

    def cost(self, ins: Instruction) -> Cost:
        c = self._costs.get(ins)
        if c is None:
            c = self._costs[ins] = instruction_cost(ins, self.target)
        return c

    def occupancy(self, ins: Instruction) -> int:
        """DMA queue cycles of a LOAD / STORE: its cycles without the DRAM latency."""
        return self.cycles(ins) - self.target.dram_latency


def _combine(head: int, tail: int, compute: int, dma: int, serial: int, target: Target) -> Overlap:
    lat = target.dram_latency
    return Overlap(prologue=head + lat if head else 0, drain=tail + lat if tail else 0,
                   body=max(compute, dma - head - tail), compute=compute, dma=dma, serial=serial)


def overlap(program: list[Instruction], target: Target, prices: Prices | None = None) -> Overlap:
    """The overlap model (module docstring) on a straight-line program (up to its first HALT)."""
    price = prices or Prices(target)
    body = []
    for ins in program:
        if ins.mnemonic == "halt":
            break
        body.append(ins)
    computes = [i for i, ins in enumerate(body) if ins.mnemonic not in DMA]
    first, last = (computes[0], computes[-1]) if computes else (len(body), len(body))
    compute = dma = serial = head = tail = 0
    for i, ins in enumerate(body):
        c = price.cycles(ins)
        serial += c
        if ins.mnemonic in DMA:
            occ = c - target.dram_latency
            dma += occ
            head += occ if i < first else 0
            tail += occ if i > last else 0
        else:
            compute += c
    return _combine(head, tail, compute, dma, serial, target)


_ZERO = _Layout(0, 0, 0, 0, (0, 0), (0, 0), (0, 0), (0, 0), (0, 0))


@dataclass(frozen=True)
class Shape:
    """`gemm_program(spec, _, tiling)` as its distinct instructions (addresses zeroed) and how
    often each occurs, plus the DMAs before its first compute instruction (`head`, the first
    step's loads) and after its last (`tail`, the last tile's store). Target-independent."""

    items: tuple[tuple[Instruction, int], ...]
    head: tuple[Instruction, ...]
    tail: tuple[Instruction, ...]

    @property
    def instructions(self) -> int:
        return sum(n for _, n in self.items) + 1  # + HALT


@functools.lru_cache(maxsize=1 << 16)
def program_shape(spec: GemmSpec, t: Tiling) -> Shape:
    ms, ns, ks = _spans(spec.m, t.tm), _spans(spec.n, t.tn), _spans(spec.k, t.tk)
    m_sizes, n_sizes = Counter(s for _, s in ms), Counter(s for _, s in ns)
    k_steps = Counter((s, k0 > 0) for k0, s in ks)
    items: Counter[Instruction] = Counter()
    for tm, cm in m_sizes.items():
        for tn, cn in n_sizes.items():
            for (tk, later), ck in k_steps.items():
                for ins in _step(spec, _ZERO, 0, tm, 0, tn, 0, tk, 0, 0, later):
                    items[ins] += cm * cn * ck
            for ins in _finish(spec, _ZERO, 0, tm, 0, tn, 0):
                items[ins] += cm * cn
    head = tuple(i for i in _step(spec, _ZERO, 0, ms[0][1], 0, ns[0][1], 0, ks[0][1], 0, 0) if i.mnemonic in DMA)
    tail = (_finish(spec, _ZERO, 0, ms[-1][1], 0, ns[-1][1], 0)[-1],)
    return Shape(tuple(items.items()), head, tail)


def shape_overlap(shape: Shape, target: Target, price: Prices) -> Overlap:
    """`overlap` of the program `shape` describes, from its counts."""
    compute = dma = 0
    lat = target.dram_latency
    for ins, n in shape.items:
        c = price.cycles(ins)
        if ins.mnemonic in DMA:
            dma += n * (c - lat)
        else:
            compute += n * c
    head = sum(price.occupancy(i) for i in shape.head)
    tail = sum(price.occupancy(i) for i in shape.tail)
    serial = compute + dma + lat * sum(n for ins, n in shape.items if ins.mnemonic in DMA)
    return _combine(head, tail, compute, dma, serial, target)


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
    """The candidate tiling with the fewest estimated cycles (ties: the first in
    `candidate_tilings` order, i.e. the smallest tiles)."""
    price = prices or Prices(target)
    tilings = candidate_tilings(spec, target)
    if not tilings:
        raise ValueError(f"no tiling of {spec} fits the scratchpads of target '{target.name}'")
    return min(tilings, key=lambda t: shape_overlap(program_shape(spec, t), target, price).cycles)


def estimate_gemm(spec: GemmSpec, target: Target, tiling: Tiling | None = None,
                  prices: Prices | None = None) -> GemmEstimate:
    """The estimate of `spec` on `target` with `tiling` (default: `choose_tiling`'s), from the
    program's distinct instructions and their counts: equal to `overlap` and
    `cost.program_cost` of `gemm_program(spec, target, tiling)` (energy up to rounding)."""
    price = prices or Prices(target)
    t = tiling or choose_tiling(spec, target, price)
    shape = program_shape(spec, t)
    total = Cost()
    for ins, n in shape.items:
        c = price.cost(ins)
        total += Cost(**{f.name: n * getattr(c, f.name) for f in fields(c)})
    return GemmEstimate(spec, t, shape_overlap(shape, target, price), total, target.clock_mhz, shape.instructions)
