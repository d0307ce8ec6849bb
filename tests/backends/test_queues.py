"""The load / compute / store queues: dependency tokens in the ISA, the protocol check
(deadlock, overflow, hazards), the overlapped timing (simulator = cost model = an independent
event-driven model of the three queues), and schedule-tokens' algorithm on random programs."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spaq.backends.sparrow.cost import cycles, program_cost, program_timing
from spaq.backends.sparrow.footprint import DRAM, AccessLog, reads, writes
from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import (
    BY_MNEMONIC, TOKEN_FIELDS, Buffer, DType, Instruction, Queue, decode, encode, parse_instruction, queue_of,
)
from spaq.backends.sparrow.queues import ProtocolError, analyze
from spaq.backends.sparrow.schedule import schedule_tokens
from spaq.backends.sparrow.simulator import SimulationError, simulate
from spaq.backends.sparrow.target import load_target

EDGE = load_target("edge")
LAT = EDGE.dram_latency


def P(text: str) -> list[Instruction]:
    return [parse_instruction(line.split("#")[0]) for line in text.strip().splitlines()]


def scheduled(program: list[Instruction], depth: int = 8) -> list[Instruction]:
    return [ins for _, ins in schedule_tokens(program, depth)]


def image(size: int = 2048, seed: int = 0) -> MemoryImage:
    img = MemoryImage.empty()
    img.add("buf", DType.U8, (size,), "values", data=np.random.default_rng(seed).integers(0, 256, size))
    return img


# -- the ISA ------------------------------------------------------------------------------------------


def test_token_flags_are_the_top_four_bits_of_every_word():
    for spec in BY_MNEMONIC.values():
        assert [f.name for f in spec.fields[-4:]] == ["pop_prev", "pop_next", "push_prev", "push_next"]
        assert spec.shifts[-4:] == (252, 253, 254, 255)
    ins = parse_instruction("store buf=act dtype=i8 sp=0 dram=0 rows=1 cols=1 rstride=1 cstride=1 pop_prev=1 push_prev=1")
    word = encode(ins)
    assert word[31] == 0b0101_0000 and decode(word) == ins
    # a word written before the flags existed decodes with all four zero
    old = encode(parse_instruction("halt"))
    assert old == bytes([0x3F]) + bytes(31) and decode(old).values == (0, 0, 0, 0)


@given(st.sampled_from(sorted(BY_MNEMONIC)), st.tuples(*[st.integers(0, 1)] * 4))
def test_round_trip_with_flags(mnemonic, flags):
    spec = BY_MNEMONIC[mnemonic]
    values = tuple(int(f.default or 0) if f.enum is None else int(list(f.enum)[0]) for f in spec.own_fields) + flags
    ins = Instruction(spec, values)
    assert decode(encode(ins)) == ins and parse_instruction(str(ins)) == ins
    assert str(ins).endswith(" ".join(f"{f.name}=1" for f, v in zip(TOKEN_FIELDS, flags) if v))


def test_queue_of():
    q = lambda line: queue_of(parse_instruction(line))  # noqa: E731
    for buf in ("act", "wgt", "meta", "param"):
        assert q(f"load buf={buf} dtype=i8 sp=0 dram=0 rows=1 cols=1 rstride=1 cstride=1") is Queue.LOAD
    assert q("load buf=acc dtype=i32 sp=0 dram=0 rows=1 cols=1 rstride=1 cstride=1") is Queue.COMPUTE
    assert q("store buf=acc dtype=i32 sp=0 dram=0 rows=1 cols=1 rstride=1 cstride=1") is Queue.STORE
    for line in ("gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=1 k=1 n=1 accumulate=0", "sync",
                 "vun op=exp src=0 dst=0 rows=1 cols=1", "softmax src=0 dst=0 rows=1 cols=1"):
        assert q(line) is Queue.COMPUTE
    assert q("halt") is None


def test_target_token_depth(tmp_path):
    assert EDGE.token_depth == 8
    text = (EDGE.path.read_text()) + "\n[queues]\ntoken_depth = 2\n"
    (tmp_path / "t.toml").write_text(text)
    assert load_target(tmp_path / "t.toml").token_depth == 2
    (tmp_path / "bad.toml").write_text(text.replace("token_depth = 2", "token_depth = 0"))
    with pytest.raises(ValueError, match="'queues.token_depth' must be positive"):
        load_target(tmp_path / "bad.toml")
    (tmp_path / "bad2.toml").write_text(text.replace("token_depth = 2", "depth = 2"))
    with pytest.raises(ValueError, match="unknown key 'queues.depth'"):
        load_target(tmp_path / "bad2.toml")


# -- footprints ---------------------------------------------------------------------------------------


def test_footprints():
    (g,) = P("gemm adtype=i8 wdtype=i4 acc=256 act=0 wgt=64 m=4 k=9 n=8 accumulate=1")
    assert reads(g) == [(Buffer.ACT, 0, 36), (Buffer.WGT, 64, 64 + 8 * 5), (Buffer.ACC, 256, 256 + 128)]
    assert writes(g) == [(Buffer.ACC, 256, 384)]
    (ld,) = P("load buf=act dtype=i8 sp=16 dram=100 rows=8 cols=3 rstride=1 cstride=8")  # NCHW -> HWC
    assert reads(ld) == [(DRAM, 100, 100 + 7 + 2 * 8 + 1)] and writes(ld) == [(Buffer.ACT, 16, 40)]
    (v,) = P("vsel mbuf=param mbcast=row mask=8 src=0 bcast=imm imm=0xff800000 dst=64 rows=2 cols=4")
    assert reads(v) == [(Buffer.ACT, 0, 32), (Buffer.PARAM, 8, 24)] and writes(v) == [(Buffer.ACT, 64, 96)]
    (q,) = P("vquant odtype=i8 src=0 dst=64 sbuf=param scale=0 rows=3 cols=5")
    assert writes(q) == [(Buffer.ACT, 64, 79), (Buffer.PARAM, 0, 12)]


def test_access_log_keeps_the_last_writer_and_latest_reader_per_queue():
    log = AccessLog()
    log.record("w", 0, [], [(Buffer.ACT, 0, 100)])
    log.record("r1", 1, [(Buffer.ACT, 50, 150)], [])
    log.record("r2", 1, [(Buffer.ACT, 60, 70)], [])
    log.record("w2", 1, [], [(Buffer.ACT, 90, 95)])
    got: dict[tuple[str, str], set[int]] = {}
    for kind, who, (_, lo, hi) in log.conflicts(2, [(Buffer.ACT, 40, 200)], [(Buffer.ACT, 0, 65)]):
        got.setdefault((kind, who), set()).update(range(lo, hi))
    assert got == {
        ("read after write", "w"): set(range(40, 90)) | set(range(95, 100)),
        ("read after write", "w2"): set(range(90, 95)),
        ("write after write", "w"): set(range(0, 65)),
        ("write after read", "r1"): set(range(50, 60)),  # r2 is queue 1's latest reader of 60..69
        ("write after read", "r2"): set(range(60, 65)),
    }
    assert list(log.conflicts(1, [(Buffer.ACT, 0, 200)], [(Buffer.ACT, 0, 200)])) != []  # w (queue 0)
    assert {who for _, who, _ in log.conflicts(0, [(Buffer.ACT, 0, 200)], [])} == {"w2"}  # own queue: never


# -- the protocol: errors naming the instruction -------------------------------------------------------

LOAD_A = "load buf=act dtype=u8 sp=0 dram=0 rows=1 cols=64 rstride=64 cstride=1"
VUN = "vun op=copy dtype=u8 src=0 odtype=u8 dst=64 rows=1 cols=64"  # ACT 0..63 -> 64..127 (u8 -> f32 -> u8)
STORE_B = "store buf=act dtype=u8 sp=64 dram=64 rows=1 cols=64 rstride=64 cstride=1"


def _errors(program: list[Instruction], match: str, target=EDGE):
    with pytest.raises(SimulationError, match=match):
        simulate(program, image(), target, {})
    with pytest.raises(ProtocolError, match=match):
        program_timing(program, target)


def test_a_correct_program_runs_and_its_serial_twin_too():
    program = P(f"{LOAD_A} push_next=1\n{VUN} pop_prev=1 push_next=1\n{STORE_B} pop_prev=1\nhalt")
    assert scheduled([Instruction(i.spec, i.values[:-4] + (0,) * 4) for i in program]) == program
    r = simulate(program, image(), EDGE, {})
    t = program_timing(program, EDGE)
    assert r.stats.timing == t and r.stats.total.cycles == t.cycles == program_cost(program, EDGE).cycles
    serial = P(f"{LOAD_A}\n{VUN}\n{STORE_B}\nhalt")
    rs = simulate(serial, image(), EDGE, {})
    assert rs.stats.total.cycles == sum(cycles(i, EDGE) for i in serial) == t.cycles  # a chain: nothing overlaps
    assert np.array_equal(rs.image.data, r.image.data)


def test_deadlock():
    _errors(P(f"{LOAD_A}\n{VUN} pop_prev=1\nhalt"),
            r"instruction 1 \(vun\): deadlock: pops the load->compute FIFO, which holds no token")
    # the token must come from an earlier instruction: a later push does not count
    _errors(P(f"{VUN} pop_prev=1\n{LOAD_A} push_next=1\nhalt"), r"instruction 0 \(vun\): deadlock")


def test_flags_need_a_neighbour():
    _errors(P(f"{LOAD_A} pop_prev=1\nhalt"), r"instruction 0 \(load\): pop_prev=1 but the load queue has no previous queue")
    _errors(P(f"{STORE_B} push_next=1\nhalt"), r"instruction 0 \(store\): push_next=1 but the store queue has no next queue")
    _errors(P(f"{LOAD_A} push_next=1\nhalt pop_prev=1"), r"instruction 1 \(halt\): halt takes no tokens")


def test_tokens_left_at_halt():
    _errors(P(f"{LOAD_A} push_next=1\nhalt"),
            r"instruction 1 \(halt\): tokens left at halt \(pushed, never popped\): 1 in the load->compute FIFO")


def test_fifo_overflow():
    loads = "\n".join(f"load buf=wgt dtype=u8 sp={64 * i} dram=0 rows=1 cols=64 rstride=64 cstride=1 push_next=1"
                      for i in range(3))
    pops = "\n".join(f"vun op=copy dtype=u8 buf=wgt src={64 * i} odtype=u8 dst=0 rows=1 cols=64 pop_prev=1" for i in range(3))
    program = P(f"{loads}\n{pops}\nhalt")
    simulate(program, image(), EDGE, {})  # depth 8: fine
    _errors(program, r"instruction 2 \(load\): token FIFO overflow: the load->compute FIFO already holds 2 tokens "
                     r"\(token_depth 2\)", replace(EDGE, token_depth=2))


def test_hazards_name_both_instructions():
    # read after write: vun reads ACT 0..63 which the load writes, no token between them
    _errors(P(f"{LOAD_A}\n{VUN} push_next=1\n{STORE_B} pop_prev=1\nhalt"),
            r"instruction 1 \(vun\): hazard \(read after write\): reads ACT bytes 0..63, written by instruction 0 "
            r"\(load, load queue\), which the tokens do not order before it")
    # write after read: the second load overwrites ACT 0..63 while vun may still read it
    _errors(P(f"{LOAD_A} push_next=1\n{VUN} pop_prev=1 push_next=1\n{STORE_B} pop_prev=1\n{LOAD_A}\nhalt"),
            r"instruction 3 \(load\): hazard \(write after read\): writes ACT bytes 0..63, read by instruction 1 "
            r"\(vun, compute queue\)")
    # write after write through DRAM: two stores are ordered (one queue); a load reading
    # what a store wrote needs a chain of tokens through the compute queue
    _errors(P(f"{LOAD_A} push_next=1\n{VUN} pop_prev=1 push_next=1\n{STORE_B} pop_prev=1\n"
              "load buf=wgt dtype=u8 sp=0 dram=64 rows=1 cols=64 rstride=64 cstride=1\nhalt"),
            r"instruction 3 \(load\): hazard \(read after write\): reads dram bytes 64..127, written by instruction 2 "
            r"\(store, store queue\)")
    _errors(P(f"{LOAD_A} push_next=1\n{VUN} pop_prev=1\nload buf=acc dtype=u8 sp=0 dram=0 rows=1 cols=64 rstride=64 cstride=1\n"
              "store buf=acc dtype=u8 sp=0 dram=0 rows=1 cols=64 rstride=64 cstride=1\nhalt"),
            r"instruction 3 \(store\): hazard \(read after write\): reads ACC bytes 0..63, written by instruction 2 "
            r"\(load, compute queue\)")


def test_a_race_is_an_error_even_where_the_cycles_happen_to_order_it():
    # the store waits for the vun (token); the second vun overwrites what the store reads:
    # it runs after the store in time only because the compute queue is slow — still a race
    program = P(f"{LOAD_A} push_next=1\n{VUN} pop_prev=1 push_next=1\n{STORE_B} pop_prev=1\n"
                "vun op=exp src=0 dst=256 rows=64 cols=64\n" + VUN + "\nhalt")
    _errors(program, r"instruction 4 \(vun\): hazard \(write after read\): writes ACT bytes 64..127, read by "
                     r"instruction 2 \(store, store queue\)")


# -- timing ----------------------------------------------------------------------------------------------


def test_timing_by_hand():
    """Two loads back to back (the second issues after the first's bytes, not its latency),
    a GEMM waiting for the second, a store waiting for the GEMM; HALT at the end."""
    program = P("""
        load buf=act dtype=i8 sp=0 dram=0 rows=8 cols=8 rstride=8 cstride=1
        load buf=wgt dtype=i8 sp=0 dram=64 rows=8 cols=8 rstride=8 cstride=1 push_next=1
        gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=8 k=8 n=8 accumulate=0 pop_prev=1 push_next=1
        store buf=acc dtype=i32 sp=0 dram=128 rows=8 cols=8 rstride=8 cstride=1 pop_prev=1
        halt""")
    c = [cycles(i, EDGE) for i in program]
    assert c[:4] == [4 + LAT + 8, 4 + LAT + 8, 8 + 2, 4 + LAT + 32]
    t = program_timing(program, EDGE)
    assert t.start == (0, 12, 124, 134, 270) and t.end == (112, 124, 134, 270, 270)
    assert t.cycles == 270 < t.serial == sum(c)
    assert t.busy == (24, 10, 36)
    assert t.utilisation["compute"] == pytest.approx(10 / 270)


def test_a_full_fifo_holds_its_pusher():
    """token_depth 1: the second token can enter the load->compute FIFO only once the first
    is popped, which a long compute instruction delays; the load queue waits with it."""
    program = P("""
        vun op=exp src=1024 dst=2048 rows=64 cols=64
        load buf=wgt dtype=u8 sp=0 dram=0 rows=1 cols=64 rstride=64 cstride=1 push_next=1
        vun op=copy dtype=u8 buf=wgt src=0 odtype=u8 dst=0 rows=1 cols=64 pop_prev=1
        load buf=wgt dtype=u8 sp=64 dram=0 rows=1 cols=64 rstride=64 cstride=1 push_next=1
        load buf=wgt dtype=u8 sp=128 dram=0 rows=1 cols=64 rstride=64 cstride=1
        vun op=copy dtype=u8 buf=wgt src=64 odtype=u8 dst=0 rows=1 cols=64 pop_prev=1
        halt""")
    one = replace(EDGE, token_depth=1)
    deep, shallow = program_timing(program, EDGE), program_timing(program, one)
    exp = 4 + 64 * 64 * 4 // 16
    assert deep.start[:5] == shallow.start[:4] + (24,) == (0, 0, exp, 12, 24)
    assert shallow.start[4] == exp  # held until the copy popped the first token
    assert shallow.cycles > deep.cycles
    r = simulate(program, image(), one, {})
    assert r.stats.timing == shallow
    start, end, total = _event_driven(program, [cycles(i, one) for i in program], 1, LAT)
    assert total == shallow.cycles and all(shallow.start[i] == t for i, t in start.items())


def _event_driven(program: list[Instruction], cyc: list[int], depth: int, lat: int):
    """The three queues as independent machines that block on tokens, stepped in time order
    of whatever can proceed (not program order): the reference for queues.timing."""
    fifo_of = {(Queue.LOAD, "push_next"): "lc", (Queue.COMPUTE, "pop_prev"): "lc",
               (Queue.COMPUTE, "push_prev"): "cl", (Queue.LOAD, "pop_next"): "cl",
               (Queue.COMPUTE, "push_next"): "cs", (Queue.STORE, "pop_prev"): "cs",
               (Queue.STORE, "push_prev"): "sc", (Queue.COMPUTE, "pop_next"): "sc"}
    per_queue = {q: [] for q in Queue}
    for i, ins in enumerate(program):
        if queue_of(ins) is None:
            break
        per_queue[queue_of(ins)].append(i)
    pushed = {f: [] for f in ("lc", "cl", "cs", "sc")}
    popped = {f: [] for f in pushed}
    head, free = {q: 0 for q in Queue}, {q: 0 for q in Queue}
    start, end = {}, {}
    while any(head[q] < len(per_queue[q]) for q in Queue):
        progressed = False
        for q in Queue:
            if head[q] == len(per_queue[q]):
                continue
            i = per_queue[q][head[q]]
            ins = program[i]
            pops = [fifo_of[q, f] for f in ("pop_prev", "pop_next") if getattr(ins, f)]
            pushes = [fifo_of[q, f] for f in ("push_prev", "push_next") if getattr(ins, f)]
            if any(len(pushed[f]) <= len(popped[f]) for f in pops):
                continue  # waiting for a token
            if any(len(pushed[f]) >= depth and len(popped[f]) <= len(pushed[f]) - depth for f in pushes):
                continue  # its push could not be placed yet
            t = max([free[q]] + [pushed[f][len(popped[f])] for f in pops])
            for f in pops:
                popped[f].append(t)
            e = t + cyc[i]
            release = t + cyc[i] - (lat if q is not Queue.COMPUTE else 0)
            for f in pushes:
                k = len(pushed[f])
                p = max(e, popped[f][k - depth]) if k >= depth else e
                if p > e:
                    release = max(release, p)
                pushed[f].append(p)
            start[i], end[i] = t, e
            free[q] = release
            head[q] += 1
            progressed = True
        if not progressed:
            raise AssertionError("deadlock")
    return start, end, max(end.values(), default=0)


# -- random programs through schedule-tokens ---------------------------------------------------------------

_ADDR = st.sampled_from([0, 32, 64, 128, 256])
_DRAM = st.sampled_from([0, 128, 256, 512, 1024])


@st.composite
def _instruction(draw) -> Instruction:
    kind = draw(st.sampled_from(["load", "load", "load", "store", "store", "gemm", "vbin", "vun", "epilogue", "sync"]))
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 16))
    if kind in ("load", "store"):
        buf = draw(st.sampled_from([Buffer.ACT, Buffer.WGT, Buffer.PARAM, Buffer.ACC] if kind == "load"
                                   else [Buffer.ACT, Buffer.ACC]))
        dtype = draw(st.sampled_from([DType.I8, DType.F32]))
        return Instruction.make(kind, buf=buf, dtype=dtype, sp=draw(_ADDR), dram=draw(_DRAM), rows=rows, cols=cols,
                                rstride=cols, cstride=1)
    if kind == "gemm":
        return Instruction.make("gemm", adtype=DType.I8, wdtype=DType.I8, acc=draw(_ADDR), act=draw(_ADDR),
                                wgt=draw(_ADDR), m=rows, k=cols, n=draw(st.integers(1, 8)),
                                accumulate=draw(st.integers(0, 1)))
    if kind == "vbin":
        return Instruction.make("vbin", op=0, buf=draw(st.sampled_from([Buffer.ACT, Buffer.ACC])), src=draw(_ADDR),
                                src1=draw(_ADDR), obuf=draw(st.sampled_from([Buffer.ACT, Buffer.ACC])), dst=draw(_ADDR),
                                rows=rows, cols=min(cols, 8))
    if kind == "vun":
        return Instruction.make("vun", op=draw(st.sampled_from([0, 3])), buf=draw(st.sampled_from([Buffer.ACT, Buffer.WGT])),
                                src=draw(_ADDR), dst=draw(_ADDR), rows=rows, cols=min(cols, 8))
    if kind == "epilogue":
        return Instruction.make("epilogue", mode=0, odtype=DType.F32, bias=draw(st.integers(0, 1)), relu=0,
                                src=draw(_ADDR), dst=draw(_ADDR), param=draw(_ADDR), rows=rows, cols=min(cols, 8), zp=0)
    return Instruction.make("sync")


_programs = st.lists(_instruction(), min_size=1, max_size=14).map(lambda p: p + [Instruction.make("halt")])


def _check_scheduled(program: list[Instruction], depth: int, minimal: bool) -> None:
    target = replace(EDGE, token_depth=depth)
    tokened = scheduled(program, depth)
    assert [i.values[:-4] for i in tokened if i.mnemonic != "sync"] == \
        [i.values[:-4] for i in program if i.mnemonic != "sync"]  # only tokens and SYNCs added
    proto = analyze(tokened, target)
    assert proto.error is None and proto.stopped is None, proto.error
    # bit-exact with the serial program, and the simulator's timing is the cost model's
    img = image()
    serial = simulate(program, img, target, {})
    run = simulate(tokened, img, target, {})
    assert np.array_equal(serial.image.data, run.image.data)
    timing = program_timing(tokened, target)
    assert run.stats.timing == timing and run.stats.total.cycles == timing.cycles
    assert timing.cycles <= serial.stats.total.cycles == timing.serial
    # the same times from the event-driven model of the queues (a program that needs no
    # token at all has none, and runs serially)
    if proto.serial:
        assert timing.cycles == timing.serial
    else:
        start, end, total = _event_driven(tokened, [cycles(i, target) for i in tokened], depth, LAT)
        assert total == timing.cycles
        assert all(timing.start[i] == start[i] and timing.end[i] == end[i] for i in start)
    # every conflicting pair in different queues runs in order (brute force over footprints)
    fp = [(queue_of(i), reads(i), writes(i)) for i in tokened[:-1]]
    for b in range(len(fp)):
        for a in range(b):
            (qa, ra, wa), (qb, rb, wb) = fp[a], fp[b]
            if qa == qb:
                continue
            clash = any(x[0] == y[0] and x[1] < y[2] and y[1] < x[2]
                        for xs, ys in ((wa, rb), (wa, wb), (ra, wb)) for x in xs for y in ys)
            if clash:
                assert timing.end[a] <= timing.start[b], (a, b)
    if minimal:  # every token pair is needed: without it the program races
        pairs = _pairs(tokened)
        for push, pop in pairs:
            cut = [_unflag(ins, push, pop, k) for k, ins in enumerate(tokened)]
            assert analyze(cut, target, serial=False).error is not None, (push, pop)


_FLAG = {"push_next": "pop_prev", "push_prev": "pop_next"}


def _pairs(program: list[Instruction]) -> list[tuple[tuple[int, str], tuple[int, str]]]:
    """(pusher, flag), (popper, flag) of every token, matched in FIFO order."""
    fifos: dict[tuple, list] = {}
    out = []
    for k, ins in enumerate(program):
        q = queue_of(ins)
        if q is None:
            continue
        for flag, step in (("pop_prev", -1), ("pop_next", 1)):
            if getattr(ins, flag):
                out.append((fifos[(Queue(q + step), q)].pop(0), (k, flag)))
        for flag, step in (("push_prev", -1), ("push_next", 1)):
            if getattr(ins, flag):
                fifos.setdefault((q, Queue(q + step)), []).append((k, flag))
    return out


def _unflag(ins: Instruction, push, pop, k: int) -> Instruction:
    names = {push[1]} if push[0] == k else set()
    names |= {pop[1]} if pop[0] == k else set()
    if not names:
        return ins
    return Instruction(ins.spec, tuple(0 if f.name in names else v for f, v in zip(ins.spec.fields, ins.values)))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs)
def test_schedule_tokens_on_random_programs(program):
    _check_scheduled(program, 8, minimal=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_programs, st.integers(1, 2))
def test_schedule_tokens_within_a_small_token_depth(program, depth):
    _check_scheduled(program, depth, minimal=False)


def test_askip_runs_faster_in_the_simulator_than_predicted():
    """Counted cycles below the predicted ones (zero activations skipped) make the program
    no slower: the simulator's time is at most the cost model's."""
    img = image(4096)
    img.data[0] = 0  # the one activation byte, broadcast over the tile: all zero
    program = scheduled(P("""
        load buf=act dtype=i8 sp=0 dram=0 rows=8 cols=64 rstride=0 cstride=0
        load buf=wgt dtype=i8 sp=0 dram=0 rows=64 cols=64 rstride=0 cstride=1
        gemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=8 k=64 n=64 accumulate=0 askip=1
        store buf=acc dtype=i32 sp=0 dram=1024 rows=8 cols=64 rstride=64 cstride=1
        halt"""))
    r = simulate(program, img, EDGE, {})
    t = program_timing(program, EDGE)
    assert r.stats.per_instruction[2].cycles < cycles(program[2], EDGE)
    assert r.stats.total.cycles < t.cycles


# -- double buffering: the overlap the tokens buy ---------------------------------------------------------


def _tiles(double: bool) -> list[Instruction]:
    """GELU over 4 tiles of a [32, 256] f32 tensor: load an [8, 256] tile, `vun gelu`, store it.
    Single-buffered every tile uses ACT 0 (in) and 16384 (out); double-buffered the tiles
    alternate between two of each (ping-pong: 0 / 8192 in, 16384 / 24576 out)."""
    lines = []
    tile = 8 * 256 * 4
    for t in range(4):
        b = t % 2 if double else 0
        src, dst = b * tile, 2 * tile + b * tile
        lines += [f"load buf=act dtype=f32 sp={src} dram={t * tile} rows=8 cols=256 rstride=256 cstride=1",
                  f"vun op=gelu src={src} dst={dst} rows=8 cols=256",
                  f"store buf=act dtype=f32 sp={dst} dram={4 * tile + t * tile} rows=8 cols=256 rstride=256 cstride=1"]
    return P("\n".join(lines + ["halt"]))


def test_double_buffering_overlaps_load_compute_and_store():
    img = MemoryImage.empty()
    x = np.random.default_rng(1).standard_normal((32, 256)).astype(np.float32)
    img.add("x", DType.F32, (32, 256), "input")
    img.add("y", DType.F32, (32, 256), "output")
    single, double = scheduled(_tiles(False)), scheduled(_tiles(True))
    rs, rd = simulate(single, img, EDGE, {"x": x}), simulate(double, img, EDGE, {"x": x})
    assert np.array_equal(rs.outputs["y"], rd.outputs["y"])
    serial = rs.stats.timing.serial
    s, d = rs.stats.timing, rd.stats.timing
    assert s == program_timing(single, EDGE) and d == program_timing(double, EDGE)
    # single-buffered, tile t+1's load must wait until tile t's GELU has read ACT 0, and tile
    # t+1's GELU until tile t's store has read its output: little overlap. Ping-pong buffers
    # let the next load run under this GELU and store: the DMA queues stay busy.
    assert d.cycles < s.cycles < serial
    assert d.cycles < 0.8 * s.cycles
    assert d.utilisation["load"] > s.utilisation["load"]
