import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spaq.backends.sparrow.core import fixed_point_multiplier
from spaq.backends.sparrow.cost import instruction_cost, program_cost, program_timing
from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import INSTRUCTIONS, DType, Instruction, encode_program, parse_instruction
from spaq.backends.sparrow.packing import nm_compress
from spaq.backends.sparrow.simulator import SimulationError, simulate
from spaq.backends.sparrow.target import load_target

EDGE = load_target("edge")


def _program(text: str, **symbols) -> list[Instruction]:
    """Assembly lines; `{name}` is replaced by the symbol's address."""
    return [parse_instruction(line.format(**{k: s.addr for k, s in symbols.items()}))
            for line in text.strip().splitlines()]


def _run(program, image, inputs, target=EDGE):
    """Simulate (from the binary) and check every counted cost against the cost model."""
    result = simulate(encode_program(program), image, target, inputs)
    assert result.stats.per_instruction == [instruction_cost(ins, target) for ins in program]
    total = program_cost(program, target)
    assert result.stats.total.dram_bytes == total.dram_bytes and result.stats.total.macs == total.macs
    return result


def _conv_ref(x, w, stride, pad):
    """Direct loops: x [c, h, w], w [oc, c, kh, kw] -> int64 [oc, oh, ow]."""
    c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.int64), [(0, 0), (pad, pad), (pad, pad)])
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((oc, oh, ow), np.int64)
    for y in range(oh):
        for x_ in range(ow):
            patch = xp[:, y * stride : y * stride + kh, x_ * stride : x_ * stride + kw]
            out[:, y, x_] = (w.astype(np.int64) * patch).sum(axis=(1, 2, 3))
    return out


def test_int8_conv_im2col_gemm_requant():
    rng = np.random.default_rng(0)
    C, H, W, OC, K, S, P = 3, 6, 5, 8, 3, 2, 1
    OH, OW = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
    x = rng.integers(-128, 128, size=(1, C, H, W))
    w = rng.integers(-128, 128, size=(OC, C, K, K))
    bias = rng.integers(-5000, 5000, size=OC)
    mult, shift = fixed_point_multiplier(rng.uniform(1e-4, 5e-3, size=OC))
    zp = -3
    image = MemoryImage.empty()
    sx = image.add("x", DType.I8, x.shape, "input")
    sw = image.add("w", DType.I8, (OC, C * K * K), "values", data=w.reshape(OC, -1))
    sp = image.add("p", DType.I32, (3, OC), "scales", data=np.stack([bias, mult, shift]))
    sy = image.add("y", DType.I8, (1, OC, OH, OW), "output")
    program = _program(f"""
        load buf=act dtype=i8 sp=0 dram={{x}} rows={H * W} cols={C} rstride=1 cstride={H * W}
        load buf=wgt dtype=i8 sp=0 dram={{w}} rows={OC} cols={C * K * K} rstride={C * K * K} cstride=1
        load buf=param dtype=i32 sp=0 dram={{p}} rows=3 cols={OC} rstride={OC} cstride=1
        im2col dtype=i8 src=0 dst=1024 c={C} h={H} w={W} kh={K} kw={K} sh={S} sw={S} \
            pt={P} pl={P} pb={P} pr={P} dh=1 dw=1
        gemm adtype=i8 wdtype=i8 acc=0 act=1024 wgt=0 m={OH * OW} k={C * K * K} n={OC} accumulate=0
        epilogue mode=requant odtype=i8 bias=1 relu=1 src=0 dst=4096 param=0 rows={OH * OW} cols={OC} zp={zp & 0xFF}
        store buf=act dtype=i8 sp=4096 dram={{y}} rows={OH * OW} cols={OC} rstride=1 cstride={OH * OW}
        halt
    """, x=sx, w=sw, p=sp, y=sy)
    result = _run(program, image, {"x": x})

    t = _conv_ref(x[0], w, S, P) + bias[:, None, None]
    m, s = mult[:, None, None], shift[:, None, None]
    ref = np.clip(np.maximum(np.floor_divide(t * m + 2 ** (s - 1), 2**s) + zp, zp), -128, 127)
    np.testing.assert_array_equal(result.outputs["y"][0], ref)
    total = result.stats.total
    assert total.macs == OH * OW * OC * C * K * K
    assert total.dram_scales == 3 * OC * 4 and total.dram_metadata == 0
    assert total.dram_values == x.size + w.size + OC * OH * OW


def test_int4_2of4_spgemm_dequant():
    rng = np.random.default_rng(1)
    M, K, N = 5, 10, 6  # K = 10: the last 4-group is short
    x = rng.integers(-128, 128, size=(M, K))
    dense = rng.integers(-8, 8, size=(N, K))
    for r in range(N):  # prune to 2:4: zero the two smallest of every group
        for g in range(0, K, 4):
            grp = np.abs(dense[r, g : g + 4])
            if grp.size > 2:
                dense[r, g + np.argsort(grp, kind="stable")[: grp.size - 2]] = 0
    values, indices = nm_compress(dense, 2, 4)
    kept = values.shape[1]
    bias = rng.integers(-100, 100, size=N)
    scale = rng.uniform(0.001, 0.01, size=N).astype(np.float32)
    image = MemoryImage.empty()
    sx = image.add("x", DType.I8, (M, K), "input")
    sv = image.add("w.values", DType.I4, (N, kept), "values", data=values)
    si = image.add("w.meta", DType.U2, (N, kept), "metadata", data=indices)
    sb = image.add("bias", DType.I32, (N,), "scales", data=bias)
    ss = image.add("scale", DType.F32, (N,), "scales", data=scale)
    sy = image.add("y", DType.F32, (M, N), "output")
    program = _program(f"""
        load buf=act dtype=i8 sp=0 dram={{x}} rows={M} cols={K} rstride={K} cstride=1
        load buf=wgt dtype=i4 sp=0 dram={{v}} rows={N} cols={kept} rstride={kept} cstride=1
        load buf=meta dtype=u2 sp=0 dram={{i}} rows={N} cols={kept} rstride=8 cstride=1
        load buf=param dtype=i32 sp=0 dram={{b}} rows=1 cols={N} rstride=0 cstride=1
        load buf=param dtype=f32 sp={4 * N} dram={{s}} rows=1 cols={N} rstride=0 cstride=1
        spgemm adtype=i8 wdtype=i4 acc=0 act=0 wgt=0 m={M} k={K} n={N} accumulate=0 meta=0 nm_n=2 nm_m=4
        epilogue mode=dequant odtype=f32 bias=1 relu=0 src=0 dst=512 param=0 rows={M} cols={N} zp=0
        store buf=act dtype=f32 sp=512 dram={{y}} rows={M} cols={N} rstride={N} cstride=1
        halt
    """, x=sx, v=sv, i=si, b=sb, s=ss, y=sy)
    result = _run(program, image, {"x": x})

    ref = (x.astype(np.int64) @ dense.T + bias).astype(np.float32) * scale
    np.testing.assert_array_equal(result.outputs["y"], ref)
    total = result.stats.total
    assert total.dram_metadata == N * 2  # 6 two-bit indices per row: 2 bytes
    assert total.dram_scales == 8 * N
    assert (total.macs, total.dense_macs, total.meta_decoded) == (M * N * kept, M * N * K, N * kept)


def test_fp32_gemm_split_k_float_epilogue():
    rng = np.random.default_rng(2)
    M, K, N = 9, 12, 7
    x = rng.standard_normal((M, K)).astype(np.float32)
    w = rng.standard_normal((N, K)).astype(np.float32)
    bias = rng.standard_normal(N).astype(np.float32)
    image = MemoryImage.empty()
    sx = image.add("x", DType.F32, (M, K), "input")
    sw = image.add("w", DType.F32, (N, K), "values", data=w)
    sb = image.add("b", DType.F32, (N,), "scales", data=bias)
    sy = image.add("y", DType.F16, (M, N), "output")
    half = K // 2
    lines = [f"load buf=param dtype=f32 sp=0 dram={{b}} rows=1 cols={N} rstride=0 cstride=1"]
    for i, k0 in enumerate((0, half)):  # two k-slices, gathered with strided DMA, accumulated
        lines += [
            f"load buf=act dtype=f32 sp=0 dram={sx.addr + 4 * k0} rows={M} cols={half} rstride={K} cstride=1",
            f"load buf=wgt dtype=f32 sp=0 dram={sw.addr + 4 * k0} rows={N} cols={half} rstride={K} cstride=1",
            f"gemm adtype=f32 wdtype=f32 acc=0 act=0 wgt=0 m={M} k={half} n={N} accumulate={i}",
        ]
    lines += [
        f"epilogue mode=float odtype=f16 bias=1 relu=1 src=0 dst=0 param=0 rows={M} cols={N} zp=0",
        f"store buf=act dtype=f16 sp=0 dram={{y}} rows={M} cols={N} rstride={N} cstride=1",
        "halt",
    ]
    result = _run(_program("\n".join(lines), b=sb, y=sy), image, {"x": x})
    ref = np.maximum(x.astype(np.float64) @ w.T.astype(np.float64) + bias, 0)
    np.testing.assert_allclose(result.outputs["y"], ref, rtol=2e-3, atol=2e-3)
    assert result.stats.total.macs == M * N * K


def test_vector_ops_maxpool_int4_softmax_quant():
    rng = np.random.default_rng(3)
    x4 = rng.integers(-8, 8, size=(5 * 5, 3))  # HWC pixels of a 5x5x3 int4 map
    s = rng.standard_normal((4, 7)).astype(np.float32)
    image = MemoryImage.empty()
    sx = image.add("x4", DType.I4, x4.shape, "input")
    ss = image.add("s", DType.F32, s.shape, "input")
    sc = image.add("scale", DType.F32, (1,), "scales", data=np.float32([1 / 127]))
    sp = image.add("pooled", DType.I4, (9, 4), "output", data=np.full((9, 4), 7))
    sq = image.add("q", DType.I8, s.shape, "output")
    program = _program("""
        load buf=act dtype=i4 sp=0 dram={x} rows=25 cols=3 rstride=4 cstride=1
        maxpool dtype=i4 src=0 dst=64 c=3 h=5 w=5 kh=3 kw=3 sh=2 sw=2 pt=1 pl=1 pb=1 pr=1 dh=1 dw=1
        store buf=act dtype=i4 sp=64 dram={p} rows=9 cols=3 rstride=4 cstride=1
        load buf=act dtype=f32 sp=128 dram={s} rows=4 cols=7 rstride=7 cstride=1
        load buf=param dtype=f32 sp=0 dram={c} rows=1 cols=1 rstride=0 cstride=1
        softmax src=128 dst=256 rows=4 cols=7
        quant odtype=i8 src=256 dst=512 param=0 rows=4 cols=7
        store buf=act dtype=i8 sp=512 dram={q} rows=4 cols=7 rstride=7 cstride=1
        halt
    """, x=sx, s=ss, c=sc, p=sp, q=sq)
    result = _run(program, image, {"x4": x4, "s": s})

    xp = np.pad(x4.reshape(5, 5, 3), [(1, 1), (1, 1), (0, 0)], constant_values=-8)
    pooled = np.array([[xp[2 * i : 2 * i + 3, 2 * j : 2 * j + 3, ch].max() for ch in range(3)]
                       for i in range(3) for j in range(3)])
    np.testing.assert_array_equal(result.outputs["pooled"][:, :3], pooled)
    assert (result.outputs["pooled"][:, 3] == 7).all()  # the STORE kept the rest of each byte
    e = np.exp(s - s.max(axis=1, keepdims=True))
    np.testing.assert_allclose(result.outputs["q"], np.rint(e / e.sum(axis=1, keepdims=True) * 127), atol=1)
    assert result.stats.total.vector_elements == 9 * 3 + 3 * 28 + 28


def test_sub_byte_load_of_part_of_a_row_leaves_dram_alone():
    m = np.array([[1, 2, 3, 4], [5, 6, 7, -1]])
    image = MemoryImage.empty()
    sm = image.add("m", DType.I4, m.shape, "values", data=m)
    so = image.add("o", DType.I4, (2, 3), "output")
    program = _program("""
        load buf=act dtype=i4 sp=0 dram={m} rows=2 cols=3 rstride=4 cstride=1
        store buf=act dtype=i4 sp=0 dram={o} rows=2 cols=3 rstride=4 cstride=1
        halt
    """, m=sm, o=so)
    result = _run(program, image, {})
    np.testing.assert_array_equal(result.outputs["o"], m[:, :3])
    np.testing.assert_array_equal(result.image.read("m"), m)  # the 4th elements are still there


# -- the memory image ------------------------------------------------------------------------------


def test_image_save_load_round_trip(tmp_path):
    image = MemoryImage.empty()
    image.add("w", DType.I4, (3, 5), "values", data=np.arange(15).reshape(3, 5) - 7)
    image.add("meta", DType.U2, (2, 6), "metadata", data=np.full((2, 6), 3))
    image.add("s", DType.BF16, (), "scales", data=np.float32(1.5))
    image.layers.append({"name": "conv1", "first": 0, "last": 7})
    assert image.symbols["w"].nbytes == 9 and image.symbols["meta"].addr == 64
    image.save(tmp_path)
    back = MemoryImage.load(tmp_path)
    assert back.symbols == image.symbols and back.layers == image.layers and back.size == image.size
    np.testing.assert_array_equal(back.data, image.data)
    np.testing.assert_array_equal(back.read("w"), np.arange(15).reshape(3, 5) - 7)
    assert back.read("s") == 1.5


def test_image_errors():
    image = MemoryImage.empty()
    image.add("x", DType.I4, (2, 2), "input")
    with pytest.raises(ValueError, match=r"symbol 'x' has shape \(2, 2\)"):
        image.write("x", np.zeros(4))
    with pytest.raises(ValueError, match="symbol 'x': value 9 is outside the i4 range"):
        image.write("x", np.full((2, 2), 9))
    with pytest.raises(KeyError, match="no symbol 'y'"):
        image.read("y")
    with pytest.raises(ValueError, match="kind 'weights' is not one of"):
        image.add("y", DType.I8, (1,), "weights")


# -- errors ---------------------------------------------------------------------------------------


def _small_image():
    image = MemoryImage.empty()
    image.add("buf", DType.U8, (256,), "values", data=np.arange(256))
    return image


@pytest.mark.parametrize("line, match", [
    ("load buf=act dtype=i8 sp=32760 dram=0 rows=2 cols=8 rstride=8 cstride=1", "ACT overflow: a 2x8 i8 tile at 32760"),
    ("load buf=act dtype=i8 sp=0 dram=250 rows=1 cols=8 rstride=8 cstride=1",
     "DRAM bytes 250..257 lie outside the 256-byte image"),
    ("load buf=act dtype=i4 sp=0 dram=0 rows=2 cols=3 rstride=3 cstride=1", "rows must start on a byte"),
    ("load buf=act dtype=u2 sp=0 dram=0 rows=1 cols=3 rstride=0 cstride=2", "need cstride 1"),
    ("spgemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=1 k=4 n=1 accumulate=0 meta=0 nm_n=1 nm_m=4",
     "1:4 sparsity is not supported by target 'edge'"),
    ("gemm adtype=f32 wdtype=i8 acc=0 act=0 wgt=0 m=1 k=1 n=1 accumulate=0", "no GEMM mode for operand types f32 x i8"),
    ("gemm adtype=i32 wdtype=i8 acc=0 act=0 wgt=0 m=1 k=1 n=1 accumulate=0", "no GEMM mode"),
    ("gemm adtype=i8 wdtype=i8 acc=16000 act=0 wgt=0 m=10 k=1 n=10 accumulate=0", "ACC overflow"),
    ("im2col dtype=i8 src=0 dst=0 c=1 h=2 w=2 kh=3 kw=3 sh=1 sw=1 pt=0 pl=0 pb=0 pr=0 dh=1 dw=1", "does not fit"),
    ("epilogue mode=requant odtype=i4 bias=0 relu=0 src=0 dst=0 param=0 rows=1 cols=1 zp=100",
     "zero point 100 is outside the i4 range"),
    ("epilogue mode=requant odtype=i8 bias=0 relu=0 src=0 dst=0 param=0 rows=1 cols=1 zp=0",
     "shift must be in"),  # PARAM is all zeros
    ("quant odtype=i8 src=0 dst=0 param=0 rows=1 cols=1", "scale must be finite and positive"),
])
def test_errors_name_instruction_and_reason(line, match):
    program = [parse_instruction(line), parse_instruction("halt")]
    with pytest.raises(SimulationError, match=match) as info:
        simulate(program, _small_image(), EDGE, {})
    assert str(info.value).startswith(f"instruction 0 ({line.split()[0]}): ")


def test_bad_metadata_is_a_simulation_error():
    program = _program("""
        load buf=meta dtype=u8 sp=0 dram=5 rows=1 cols=1 rstride=0 cstride=1
        spgemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=1 k=4 n=1 accumulate=0 meta=0 nm_n=2 nm_m=4
        halt
    """)  # byte 5 = indices (1, 1): not ascending
    with pytest.raises(SimulationError, match=r"instruction 1 \(spgemm\): .*not strictly ascending"):
        simulate(program, _small_image(), EDGE, {})


def test_program_errors():
    with pytest.raises(SimulationError, match=r"instruction 1 \(end\): program ends without HALT"):
        simulate(_program("softmax src=0 dst=0 rows=1 cols=1"), _small_image(), EDGE, {})
    blob = encode_program(_program("halt\nhalt")) + bytes([0x05]) + bytes(31)
    with pytest.raises(SimulationError, match=r"instruction 2 \(\?\): unknown opcode 0x05"):
        simulate(blob, _small_image(), EDGE, {})
    with pytest.raises(SimulationError, match="not whole 32-byte words"):
        simulate(blob + b"\x00", _small_image(), EDGE, {})
    with pytest.raises(ValueError, match="needs exactly the inputs"):
        simulate(_program("halt"), _small_image(), EDGE, {"x": np.zeros(1)})


def test_stops_at_halt_and_stats_sum_by_range():
    program = _program("""
        load buf=act dtype=u8 sp=0 dram=0 rows=4 cols=16 rstride=16 cstride=1
        store buf=act dtype=u8 sp=0 dram=128 rows=1 cols=16 rstride=0 cstride=1
        halt
        softmax src=0 dst=0 rows=1000 cols=1000
    """)
    result = simulate(program, _small_image(), EDGE, {})
    stats = result.stats
    assert stats.mnemonics == ["load", "store", "halt"]
    assert stats.span(0, 1) == stats.total
    assert stats.by_mnemonic()["load"][0] == 1 and stats.total.dram_values == 80
    np.testing.assert_array_equal(result.image.read("buf")[128:144], np.arange(16))


# -- fuzzing: a bad program raises SimulationError and nothing else ----------------------------------


def _field(f):
    """Mostly small values (so tiles fit and instructions run), sometimes any value; enum
    fields mostly valid codes, sometimes the first invalid one; token flags mostly 0."""
    if f.at is not None:
        return st.sampled_from([0] * 15 + [1])
    if f.enum:
        return st.sampled_from([*range(len(f.enum)) , min(len(f.enum), (1 << f.bits) - 1)])
    small = st.integers(0, min(12, (1 << f.bits) - 1))
    return st.one_of(small, small, small, st.integers(0, (1 << f.bits) - 1))


@st.composite
def _random_instruction(draw):
    spec = draw(st.sampled_from(INSTRUCTIONS))
    return Instruction(spec, tuple(draw(_field(f)) for f in spec.fields))


def _fuzz_image():
    image = MemoryImage.empty()
    image.add("buf", DType.U8, (4096,), "values", data=np.random.default_rng(0).integers(0, 256, 4096))
    return image


FUZZ_IMAGE = _fuzz_image()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_random_instruction(), min_size=1, max_size=6))
def test_random_programs_raise_only_simulation_errors(program):
    program = program + [parse_instruction("halt")]
    try:
        result = simulate(program, FUZZ_IMAGE, EDGE, {})
    except SimulationError:
        return
    # a program that ran is valid: the cost model must agree with what was counted (a GEMM
    # with askip=1 counts its MACs and cycles from the data: at most the prediction)
    for ins, counted in zip(program, result.stats.per_instruction):
        predicted = instruction_cost(ins, EDGE)
        if getattr(ins, "askip", 0):
            assert counted.dram_bytes == predicted.dram_bytes and counted.sram_bytes == predicted.sram_bytes
            assert counted.macs <= predicted.macs and counted.cycles <= predicted.cycles
        else:
            assert counted == predicted
    timing = program_timing(program, EDGE)  # the same protocol check passes, the same or a later end
    assert result.stats.total.cycles <= timing.cycles
    if not any(getattr(ins, "askip", 0) for ins in program):
        assert result.stats.timing == timing


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_simulation_errors(blob):
    try:
        simulate(blob, FUZZ_IMAGE, EDGE, {})
    except SimulationError:
        pass
