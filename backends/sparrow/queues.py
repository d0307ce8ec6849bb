"""The load / compute / store queues and their dependency tokens: the protocol check and the
overlapped timing (docs/isa.md, "Queues and dependency tokens").

    proto = analyze(program, target)     # static: which queue, which FIFOs; the first violation
    t = timing(proto, cycles, target)    # per-instruction cycles -> start / end times, makespan
    t.cycles, t.busy, t.utilisation

Both are from the fields and flags alone. The simulator calls them with the cycles it counted,
the cost model (`cost.program_timing`) with the predicted ones, so the two agree wherever the
per-instruction cycles do.

**Protocol.** Four FIFOs carry tokens between neighbouring queues: load->compute,
compute->load, compute->store, store->compute. An instruction pops (waits for) a token before it
starts and pushes one when it has finished. Checked in program order:
- the flag must name a neighbour (a LOAD has no previous queue, a STORE no next one, HALT none);
- a pop needs a token pushed by an earlier instruction and not yet popped (else: deadlock);
- a push must leave at most `token_depth` tokens in the FIFO (else: overflow);
- HALT must find every FIFO empty;
- every read or write of a byte another queue wrote, and every write of a byte another queue
  read, must be ordered after that access by the tokens: a chain of queue order and token
  edges from it (else: a hazard, naming both instructions).

A program in which no instruction sets a flag is *serial*: one instruction at a time, each
starting when the one before has finished, as Sparrow ran before tokens existed. Nothing is
checked then (there is nothing to race).

**Hazards are checked without timing**, with vector clocks: for each instruction, the latest
instruction of every queue that is certain to have finished before it starts (through its own
queue's order and the tokens it pops, transitively). A data race the tokens do not order is an
error even when the cycle counts happen to order it, so validity never depends on the data
(a GEMM with askip=1 is faster in the simulator than predicted).

**Timing** (decoupled programs), in program order, which is a valid order of every dependency
because each pop matches an earlier push:

    start = max(queue free, push time of every token popped)
    end   = start + cycles
    queue free = start + cycles                   compute queue
               = start + cycles - dram.latency    load / store queues: the DMA engine keeps
                                                  transfers in flight; the latency delays only
                                                  the transfer's own completion
    push time  = end, or the time the token `token_depth` places ahead of it in the FIFO was
                 popped, if later (a full FIFO holds its pusher: the queue waits for the push)
    HALT       = the end of every instruction before it; program cycles = HALT's time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from spaq.backends.sparrow.footprint import RAW, AccessLog, Space, accesses
from spaq.backends.sparrow.isa import Instruction, Queue, queue_of
from spaq.backends.sparrow.target import Target

HALT = -1
"""The queue code of HALT (it belongs to none: it waits for all three)."""

FIFOS = ("load->compute", "compute->load", "compute->store", "store->compute")
L2C, C2L, C2S, S2C = range(4)

# (queue, flag) -> FIFO; flags in TOKEN_FIELDS order: pop_prev, pop_next, push_prev, push_next
_POP = {Queue.LOAD: (None, C2L), Queue.COMPUTE: (L2C, S2C), Queue.STORE: (C2S, None)}
_PUSH = {Queue.LOAD: (None, L2C), Queue.COMPUTE: (C2L, C2S), Queue.STORE: (S2C, None)}
_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")
_NEIGHBOUR = {Queue.LOAD: ("no previous queue", "compute"), Queue.COMPUTE: ("load", "store"),
              Queue.STORE: ("compute", "no next queue")}


class ProtocolError(ValueError):
    """A program breaks the token protocol at instruction `index`."""

    def __init__(self, index: int, mnemonic: str, reason: str):
        self.index, self.mnemonic, self.reason = index, mnemonic, reason
        super().__init__(f"instruction {index} ({mnemonic}): {reason}")


def tokens(ins: Instruction) -> tuple[int, int, int, int]:
    """The four flags (pop_prev, pop_next, push_prev, push_next)."""
    return ins.values[-4:]


@dataclass(frozen=True)
class Protocol:
    """The static view of a program's queues: per instruction up to its HALT (or up to the
    first violation, or the first instruction without a footprint), its queue, the FIFOs it
    pops and pushes, whether it is a DMA of the load / store queues; and the first violation."""

    serial: bool
    queues: tuple[int, ...]
    pops: tuple[tuple[int, ...], ...]
    pushes: tuple[tuple[int, ...], ...]
    pipelined: tuple[bool, ...]
    error: ProtocolError | None = None
    stopped: Exception | None = None
    """Why the analysis ended before HALT without a violation (an instruction whose fields
    give no footprint: executing it faults too)."""

    @property
    def length(self) -> int:
        return len(self.queues)


def _vc_join(a: list[int], b: list[int]) -> None:
    for q in range(3):
        if b[q] > a[q]:
            a[q] = b[q]


def _where(r: tuple[Space, int, int]) -> str:
    space, lo, hi = r
    name = space if isinstance(space, str) else space.name
    return f"{name} bytes {lo}..{hi - 1}"


def analyze(program: Sequence[Instruction], target: Target, serial: bool | None = None) -> Protocol:
    """Check the token protocol of `program` up to its first HALT (module docstring).
    `serial`: whether it runs serially; by default, when no instruction sets a token flag."""
    body: list[Instruction] = []
    for ins in program:
        body.append(ins)
        if ins.spec.mnemonic == "halt":
            break
    if serial is None:
        serial = not any(any(tokens(ins)) for ins in body)
    queues, pops, pushes, pipelined = [], [], [], []

    def done(error: ProtocolError | None = None, stopped: Exception | None = None) -> Protocol:
        return Protocol(serial, tuple(queues), tuple(pops), tuple(pushes), tuple(pipelined), error, stopped)

    if serial:
        for ins in body:
            q = queue_of(ins)
            queues.append(HALT if q is None else int(q))
            pops.append(())
            pushes.append(())
            pipelined.append(False)
        return done()

    depth = target.token_depth
    log = AccessLog()
    seq = [0, 0, 0]                     # instructions issued per queue
    last_vc = [[0, 0, 0] for _ in range(3)]  # vector clock after the latest instruction of each queue
    fifo: list[list[list[int]]] = [[] for _ in FIFOS]  # unpopped tokens: the pusher's clock
    fifo_head = [0, 0, 0, 0]
    for i, ins in enumerate(body):
        op = ins.spec.mnemonic
        q = queue_of(ins)
        flags = tokens(ins)
        if q is None:  # HALT
            if any(flags):
                return done(ProtocolError(i, op, "halt takes no tokens"))
            left = [f"{len(fifo[f]) - fifo_head[f]} in the {FIFOS[f]} FIFO" for f in range(4)
                    if len(fifo[f]) > fifo_head[f]]
            if left:
                return done(ProtocolError(i, op, f"tokens left at halt (pushed, never popped): {', '.join(left)}"))
            queues.append(HALT)
            pops.append(())
            pushes.append(())
            pipelined.append(False)
            return done()
        my_pops, my_pushes = [], []
        for k, flag in enumerate(_FLAGS):
            if flags[k]:
                f = (_POP if k < 2 else _PUSH)[q][k % 2]
                if f is None:
                    return done(ProtocolError(i, op, f"{flag}=1 but the {q.name.lower()} queue has "
                                                     f"{_NEIGHBOUR[q][k % 2]}"))
                (my_pops if k < 2 else my_pushes).append(f)
        # pops: a token pushed earlier and still in the FIFO
        vc = list(last_vc[q])
        for f in my_pops:
            if fifo_head[f] == len(fifo[f]):
                return done(ProtocolError(i, op, f"deadlock: pops the {FIFOS[f]} FIFO, which holds no token "
                                                 "(no earlier instruction pushed one that is still unpopped)"))
            _vc_join(vc, fifo[f][fifo_head[f]])
            fifo_head[f] += 1
        # hazards: every conflicting access by another queue must be ordered before this one
        try:
            rd, wr = accesses(ins)
        except (ValueError, KeyError, ArithmeticError) as e:  # fields that describe no tile
            return done(stopped=e)
        for kind, other, where in log.conflicts(q, rd, wr):
            j, oq, os_ = other
            if vc[oq] < os_:
                verb = "reads" if kind == RAW else "writes"
                did = "read" if kind == "write after read" else "written"
                raise_at = ProtocolError(
                    i, op, f"hazard ({kind}): {verb} {_where(where)}, {did} by instruction {j} "
                           f"({body[j].spec.mnemonic}, {Queue(oq).name.lower()} queue), which the tokens do not "
                           "order before it")
                return done(raise_at)
        seq[q] += 1
        vc[q] = seq[q]
        log.record((i, int(q), seq[q]), int(q), rd, wr)
        # pushes: room in the FIFO (counted in program order)
        for f in my_pushes:
            if len(fifo[f]) - fifo_head[f] >= depth:
                return done(ProtocolError(i, op, f"token FIFO overflow: the {FIFOS[f]} FIFO already holds "
                                                 f"{depth} tokens (token_depth {depth}) that later instructions pop"))
            fifo[f].append(vc)
        last_vc[q] = vc
        queues.append(int(q))
        pops.append(tuple(my_pops))
        pushes.append(tuple(my_pushes))
        pipelined.append(q is not Queue.COMPUTE)
    return done()


@dataclass(frozen=True)
class Timing:
    """When each instruction ran (cycles from the program's start), how long each queue was
    busy (issuing: a DMA queue for cycles - dram.latency per transfer), and the makespan."""

    cycles: int
    start: tuple[int, ...]
    end: tuple[int, ...]
    busy: tuple[int, int, int]
    serial: int
    """The sum of the instructions' cycles: the time without any overlap."""

    @property
    def utilisation(self) -> dict[str, float]:
        """Busy / program cycles per queue."""
        return {q.name.lower(): (b / self.cycles if self.cycles else 0.0) for q, b in zip(Queue, self.busy)}

    @property
    def speedup(self) -> float:
        """serial / cycles: what the overlap gains."""
        return self.serial / self.cycles if self.cycles else 1.0


def timing(proto: Protocol, cycles: Sequence[int], target: Target) -> Timing:
    """Start and end of the first len(cycles) instructions of a program `proto` describes,
    each taking cycles[i] (module docstring)."""
    n = len(cycles)
    start, end = [0] * n, [0] * n
    busy = [0, 0, 0]
    if proto.serial:
        t = 0
        for i, c in enumerate(cycles):
            start[i], t = t, t + c
            end[i] = t
            q = proto.queues[i]
            if q != HALT:
                busy[q] += c
        return Timing(t, tuple(start), tuple(end), tuple(busy), t)
    lat, depth = target.dram_latency, target.token_depth
    free, done = [0, 0, 0], [0, 0, 0]
    pushed: list[list[int]] = [[], [], [], []]
    popped: list[list[int]] = [[], [], [], []]
    queues, pops, pushes, pipelined = proto.queues, proto.pops, proto.pushes, proto.pipelined
    for i, c in enumerate(cycles):
        q = queues[i]
        if q == HALT:
            start[i] = end[i] = max(done)
            continue
        t = free[q]
        for f in pops[i]:
            p = pushed[f][len(popped[f])]
            if p > t:
                t = p
        for f in pops[i]:
            popped[f].append(t)
        e = t + c
        occ = c - lat if pipelined[i] else c
        release = t + occ
        for f in pushes[i]:
            k = len(pushed[f])
            p = e
            if k >= depth and popped[f][k - depth] > p:
                p = popped[f][k - depth]
                if p > release:
                    release = p
            pushed[f].append(p)
        start[i], end[i] = t, e
        free[q] = release
        if e > done[q]:
            done[q] = e
        busy[q] += occ
    total = max(end, default=0)
    return Timing(total, tuple(start), tuple(end), tuple(busy), sum(cycles))
