"""schedule-tokens: set the dependency tokens of a lowered Sparrow program, so its load,
compute and store queues overlap wherever the data allow and never race.

Sparrow runs LOADs (into ACT / WGT / META / PARAM), compute instructions and STOREs from three
in-order queues that synchronise only through tokens (docs/isa.md, "Queues and dependency
tokens"). From each instruction's footprint — the scratchpad and DRAM bytes it reads and
writes, derived from its fields (backends/sparrow/footprint.py) — the pass adds the fewest
tokens that order every conflicting pair of instructions in different queues (read after
write, write after read, write after write), each as early as the data allow
(backends/sparrow/schedule.py has the algorithm). A LOAD that reads what a STORE of an
earlier layer wrote, with no compute instruction between them to relay the token, gets a
`sync` (a compute-queue no-op) inserted before it. Existing tokens are recomputed; the
instructions' order and everything else are unchanged, so results stay bit-exact.

```mlir
// before (lower-to-sparrow): the store of layer a, then layer b loads it back
sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=8 rstride=8 cstride=1 {layer = "a"}
sparrow.vun op=exp src=0 dst=64 rows=1 cols=8 {layer = "a"}
sparrow.store buf=act dtype=f32 sp=64 dram=64 rows=1 cols=8 rstride=8 cstride=1 {layer = "a"}
sparrow.load buf=act dtype=f32 sp=0 dram=64 rows=1 cols=8 rstride=8 cstride=1 {layer = "b"}
sparrow.halt
// after schedule-tokens{target=edge}
sparrow.load buf=act dtype=f32 sp=0 dram=0 rows=1 cols=8 rstride=8 cstride=1 push_next=1 {layer = "a"}
sparrow.vun op=exp src=0 dst=64 rows=1 cols=8 pop_prev=1 push_next=1 {layer = "a"}
sparrow.store buf=act dtype=f32 sp=64 dram=64 rows=1 cols=8 rstride=8 cstride=1 pop_prev=1 push_prev=1 {layer = "a"}
sparrow.sync pop_next=1 push_prev=1 {layer = "b"}
sparrow.load buf=act dtype=f32 sp=0 dram=64 rows=1 cols=8 rstride=8 cstride=1 pop_next=1 {layer = "b"}
sparrow.halt
```
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64
from xdsl.dialects.func import FuncOp
from xdsl.passes import ModulePass

from spaq.backends.sparrow.isa import TOKEN_FIELDS
from spaq.backends.sparrow.schedule import schedule_tokens
from spaq.compiler.errors import SpaqError
from spaq.dialects.sparrow import SparrowInstruction
from spaq.passes.tile_layers import target_of


@dataclass(frozen=True)
class ScheduleTokensPass(ModulePass):
    name = "schedule-tokens"

    target: str = "edge"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        depth = target_of(self.target).token_depth
        for func in [f for f in op.walk() if isinstance(f, FuncOp)]:
            _schedule(func, depth)


def _schedule(func: FuncOp, depth: int) -> None:
    """Give the program in `func` (its instructions in order, up to the first HALT) its tokens."""
    ops = [o for o in func.walk() if isinstance(o, SparrowInstruction)]
    if ops:
        try:
            scheduled = schedule_tokens([o.instruction() for o in ops], depth)
        except ValueError as e:
            raise SpaqError(f"schedule-tokens: @{func.sym_name.data}: {e}") from None
    for source, ins in scheduled:
        old = ops[source]
        if ins.spec is not old.SPEC:  # a SYNC inserted before `old`
            old.parent_block().insert_op_before(SparrowInstruction.from_instruction(ins, old.layer), old)
            continue
        for f, v in zip(TOKEN_FIELDS, ins.values[-len(TOKEN_FIELDS):]):
            if v:
                old.properties[f.name] = IntegerAttr(v, i64)
            else:
                old.properties.pop(f.name, None)
