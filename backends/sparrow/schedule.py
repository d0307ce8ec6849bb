"""Dependency tokens for a token-free program: the fewest that make it race-free, so the load,
compute and store queues overlap wherever the data allow (the algorithm of the
`schedule-tokens` pass, on decoded instructions).

    scheduled = schedule_tokens(program, target.token_depth)     # [(source index, instruction)]
    program = [ins for _, ins in scheduled]

Walking the program in order, each instruction X must wait for every earlier instruction of
another queue that touched the bytes it touches (footprint.py: the writer of what it reads or
writes, the readers of what it writes) — per queue only the latest such instruction P matters,
as a queue runs in order. If the tokens so far already order P before X (vector clocks, as in
queues.analyze), nothing is added. Otherwise:

- P in a neighbouring queue: P pushes a token, X pops it (P itself, not a later instruction,
  so X waits no longer than the data require);
- P in the load queue and X a STORE, or P a STORE and X in the load queue: the tokens pass
  through the compute queue. The earliest compute instruction already ordered after P pushes
  to X; if there is none, a `sync` (a compute-queue no-op) is inserted right before X: it pops
  P's token and pushes one to X. (A STORE of one layer and the LOADs of the next are the
  common case: layers exchange tensors through DRAM.)

FIFO depth: a pair (push at P, pop at X) must leave at most `depth` tokens in the FIFO at every
point between them. If P's push would overflow it, a later instruction of P's queue that lies
after enough earlier pops pushes instead; if there is none, the latest earlier pair's pusher is
moved to P (its popper then waits for P, and X, after it in its queue, with it).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from spaq.backends.sparrow.footprint import AccessLog, accesses
from spaq.backends.sparrow.isa import TOKEN_FIELDS, Instruction, Queue, queue_of
from spaq.backends.sparrow.queues import C2L, C2S, L2C, S2C
from spaq.backends.sparrow.target import TOKEN_DEPTH

L, C, S = Queue.LOAD, Queue.COMPUTE, Queue.STORE
# FIFO from queue p to queue q, and the flag indices (pop_prev=0 pop_next=1 push_prev=2 push_next=3)
_FIFO = {(L, C): L2C, (C, L): C2L, (C, S): C2S, (S, C): S2C}
_PUSH_FLAG = {(L, C): 3, (C, L): 2, (C, S): 3, (S, C): 2}
_POP_FLAG = {(L, C): 0, (C, L): 1, (C, S): 0, (S, C): 1}
_SYNC = Instruction.make("sync")


class _Node:
    """An instruction of the scheduled program: its position, queue, sequence number in its
    queue (from 1), token flags and vector clock (per queue, the latest instruction known to
    have finished before it starts; its own entry is itself)."""

    __slots__ = ("pos", "source", "ins", "queue", "seq", "flags", "vc")

    def __init__(self, pos: int, source: int, ins: Instruction, queue: Queue | None):
        self.pos, self.source, self.ins, self.queue = pos, source, ins, queue
        self.seq = 0
        self.flags = [0, 0, 0, 0]
        self.vc = [0, 0, 0]


class _Scheduler:
    def __init__(self, depth: int):
        self.depth = depth
        self.nodes: list[_Node] = []
        self.by_queue: list[list[_Node]] = [[], [], []]   # per queue, in order (seq = index + 1)
        self.pairs: dict[int, list[tuple[_Node, _Node]]] = {f: [] for f in _FIFO.values()}  # (pusher, popper)
        self.log = AccessLog()

    def _add(self, source: int, ins: Instruction) -> _Node:
        node = _Node(len(self.nodes), source, ins, queue_of(ins))
        self.nodes.append(node)
        if node.queue is not None:
            mine = self.by_queue[node.queue]
            node.vc = list(mine[-1].vc) if mine else [0, 0, 0]
            mine.append(node)
            node.seq = len(mine)
            node.vc[node.queue] = node.seq
        return node

    def _pair(self, p: Queue, seq: int, x: _Node) -> None:
        """Order instruction `seq` of queue p (a neighbour of x's queue) before x by a token."""
        if x.vc[p] >= seq:
            return
        key = (p, x.queue)
        pairs = self.pairs[_FIFO[key]]
        if pairs and pairs[-1][0].seq >= seq:  # already ordered through the last pair's popper
            self._join(x, pairs[-1][0])
            return
        queue = self.by_queue[p]
        pusher = queue[seq - 1]
        if len(pairs) >= self.depth and pairs[-self.depth][1].pos > pusher.pos:
            # a push at `pusher` would overflow the FIFO before x pops: push later, or re-point
            after = pairs[-self.depth][1].pos
            later = next((n for n in queue[seq:] if after < n.pos < x.pos), None)
            if later is None:
                old, popper = pairs[-1]
                old.flags[_PUSH_FLAG[key]] = 0
                pusher.flags[_PUSH_FLAG[key]] = 1
                pairs[-1] = (pusher, popper)
                self._join(popper, pusher)
                self._join(x, pusher)
                return
            pusher = later
        pusher.flags[_PUSH_FLAG[key]] = 1
        x.flags[_POP_FLAG[key]] = 1
        pairs.append((pusher, x))
        self._join(x, pusher)

    @staticmethod
    def _join(x: _Node, pusher: _Node) -> None:
        for q in range(3):
            if pusher.vc[q] > x.vc[q]:
                x.vc[q] = pusher.vc[q]

    def _relay(self, p: Queue, seq: int) -> int | None:
        """The earliest compute instruction already ordered after instruction `seq` of queue p
        (its sequence number), or None."""
        compute = self.by_queue[C]
        k = bisect_left(compute, seq, key=lambda n: n.vc[p])  # clocks grow along a queue
        return k + 1 if k < len(compute) else None

    def schedule(self, program: Sequence[Instruction]) -> list[tuple[int, Instruction]]:
        for i, ins in enumerate(program):
            clean = Instruction(ins.spec, ins.values[: -len(TOKEN_FIELDS)] + (0,) * len(TOKEN_FIELDS))
            q = queue_of(clean)
            if q is None:  # HALT waits for every queue
                self._add(i, clean)
                if ins.spec.mnemonic == "halt":
                    break
                continue
            try:
                rd, wr = accesses(clean)
            except (ValueError, KeyError, ArithmeticError) as e:
                raise ValueError(f"instruction {i} ({ins.spec.mnemonic}): {e}") from None
            need = [0, 0, 0]
            for _, (_, oq, oseq), _ in self.log.conflicts(q, rd, wr):
                if oseq > need[oq]:
                    need[oq] = oseq
            far = S if q is L else L if q is S else None
            if far is not None and need[far] and self._vc_next(q)[far] < need[far]:
                c = self._relay(far, need[far])
                if c is None:  # no compute instruction is ordered after it yet: insert a SYNC
                    sync = self._add(i, _SYNC)
                    self._pair(far, need[far], sync)
                    c = sync.seq
                need[C] = max(need[C], c)
            x = self._add(i, clean)
            for p in (L, C, S):
                if p != q and p != far and need[p]:
                    self._pair(p, need[p], x)
            self.log.record((x.pos, int(q), x.seq), int(q), rd, wr)
        out = []
        for n in self.nodes:
            values = n.ins.values[: -len(TOKEN_FIELDS)] + tuple(n.flags)
            out.append((n.source, Instruction(n.ins.spec, values)))
        return out

    def _vc_next(self, q: Queue) -> list[int]:
        """The vector clock the next instruction of queue q starts from."""
        mine = self.by_queue[q]
        return mine[-1].vc if mine else [0, 0, 0]


def schedule_tokens(program: Sequence[Instruction], depth: int = TOKEN_DEPTH) -> list[tuple[int, Instruction]]:
    """The program with its token flags set (existing flags are recomputed), SYNCs inserted
    where the load and store queues must wait for each other and no compute instruction can
    relay; each entry names the index of the source instruction it is (or, for a SYNC, the
    one it was inserted before). Ends at the first HALT. `depth`: the target's token_depth."""
    return _Scheduler(depth).schedule(program)
