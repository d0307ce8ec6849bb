import pytest

from spaq.backends.sparrow.cost import Cost, dram_kind, instruction_cost, mac_type, program_cost
from spaq.backends.sparrow.isa import DType, encode_program, parse_instruction
from spaq.backends.sparrow.target import load_target

EDGE = load_target("edge")  # 8x8 array, k_per_cycle i8=4 f16=2 f32=1, 8 B/cycle, latency 100, 16 lanes
DC = load_target("datacenter")


def cost(line: str, target=EDGE) -> Cost:
    return instruction_cost(parse_instruction(line), target)


def test_gemm():
    c = cost("gemm adtype=i8 wdtype=i4 acc=0 act=0 wgt=0 m=36 k=27 n=8 accumulate=1")
    assert c.cycles == 8 + 5 * 1 * 7  # fixed + ceil(36/8) * ceil(8/8) * ceil(27/4)
    assert c.macs == c.dense_macs == 36 * 8 * 27
    assert c.sram_bytes == 36 * 27 + 8 * 14 + 2 * 36 * 8 * 4  # ACT, packed int4 WGT, ACC read + write
    assert c.energy_pj == pytest.approx(0.3 * c.macs + 1.0 * c.sram_bytes)
    assert c.dram_bytes == 0 and c.vector_elements == 0
    f = cost("gemm adtype=bf16 wdtype=f8e4m3 acc=0 act=0 wgt=0 m=64 k=100 n=65 accumulate=0", DC)
    assert f.cycles == 32 + 1 * 2 * 25 and f.energy_pj == pytest.approx(0.5 * f.macs + 0.6 * f.sram_bytes)


def test_spgemm_multiplies_only_kept_values():
    c = cost("spgemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=16 k=10 n=8 accumulate=0 meta=0 nm_n=2 nm_m=4")
    kept = 3 * 2  # ceil(10/4) groups of 2
    assert c.cycles == 12 + 2 * 1 * 2
    assert (c.macs, c.dense_macs, c.meta_decoded) == (16 * 8 * kept, 16 * 8 * 10, 8 * kept)
    assert c.sram_bytes == 16 * 10 + 8 * kept + 8 * 2 + 16 * 8 * 4  # u2 metadata: 2 bytes a row
    assert c.energy_pj == pytest.approx(0.3 * c.macs + c.sram_bytes + 0.05 * c.meta_decoded)


@pytest.mark.parametrize("buf, kind", [("act", "values"), ("wgt", "values"), ("meta", "metadata"), ("param", "scales")])
def test_dma(buf, kind):
    ins = parse_instruction(f"load buf={buf} dtype=u2 sp=0 dram=0 rows=3 cols=5 rstride=8 cstride=1")
    c = instruction_cost(ins, EDGE)
    assert dram_kind(ins) == kind
    assert getattr(c, f"dram_{kind}") == c.dram_bytes == c.sram_bytes == 3 * 2
    assert c.cycles == 4 + 100 + 1
    assert c.energy_pj == pytest.approx(40 * 6 + 6)
    store = cost(f"store buf={buf} dtype=f32 sp=0 dram=0 rows=4 cols=16 rstride=0 cstride=1")
    assert store.dram_values == 256 and store.cycles == 4 + 100 + 32


def test_vector_ops():
    assert cost("softmax src=0 dst=0 rows=4 cols=7").cycles == 4 + 6  # 3 passes: 84 elements / 16 lanes
    im2col = cost("im2col dtype=i8 src=0 dst=0 c=3 h=6 w=5 kh=3 kw=3 sh=2 sw=2 pt=1 pl=1 pb=1 pr=1 dh=1 dw=1")
    assert im2col.vector_elements == 9 * 27 and im2col.sram_bytes == 30 * 3 + 9 * 27
    pool = cost("maxpool dtype=u4 src=0 dst=0 c=3 h=5 w=5 kh=3 kw=3 sh=2 sw=2 pt=1 pl=1 pb=1 pr=1 dh=1 dw=1")
    assert pool.vector_elements == 27 and pool.sram_bytes == 25 * 2 + 9 * 2
    ep = cost("epilogue mode=requant odtype=i4 bias=1 relu=0 src=0 dst=0 param=0 rows=10 cols=5 zp=0")
    assert ep.sram_bytes == 10 * 5 * 4 + 3 * 5 * 4 + 10 * 3 and ep.cycles == 4 + 4
    ep = cost("epilogue mode=float odtype=f16 bias=0 relu=0 src=0 dst=0 param=0 rows=2 cols=2 zp=0")
    assert ep.sram_bytes == 16 + 8
    assert cost("quant odtype=i8 src=0 dst=0 param=0 rows=2 cols=3").sram_bytes == 24 + 4 + 6
    assert cost("halt") == Cost()


def test_mac_type():
    assert mac_type(DType.I8, DType.U1) == "i8"
    assert mac_type(DType.F16, DType.BF16) == mac_type(DType.BF16, DType.F8E4M3) == "f16"
    assert mac_type(DType.F8E5M2, DType.F8E4M3) == "f8"
    assert mac_type(DType.F32, DType.F8E4M3) == "f32"
    for a, w in [(DType.F32, DType.I8), (DType.I32, DType.I8)]:
        with pytest.raises(ValueError, match="no GEMM mode"):
            mac_type(a, w)


def test_program_cost_sums_up_to_halt():
    lines = ["load buf=act dtype=i8 sp=0 dram=0 rows=1 cols=8 rstride=0 cstride=1",
             "softmax src=0 dst=0 rows=1 cols=16", "halt", "softmax src=0 dst=0 rows=99 cols=99"]
    program = [parse_instruction(s) for s in lines]
    total = program_cost(program, EDGE)
    assert total == instruction_cost(program[0], EDGE) + instruction_cost(program[1], EDGE)
    assert program_cost(encode_program(program), EDGE) == total
    assert total.to_dict()["dram_bytes"] == 8


def test_matrix_unit_formulas():
    """docs/isa.md, "The matrix unit": bytes, MACs, decoded elements and cycles of each new form."""
    b = cost("bsgemm adtype=i8 wdtype=i8 acc=0 act=0 wgt=0 m=100 k=64 n=64 accumulate=0 meta=0 br=8 bc=8 nb=10", DC)
    assert (b.macs, b.dense_macs, b.meta_decoded) == (100 * 10 * 64, 100 * 64 * 64, 10)
    assert b.sram_bytes == 100 * 64 + 10 * 64 + 10 + 100 * 64 * 4  # ACT, blocks, 1-byte ids, ACC
    assert b.cycles == 48 + 2 * 2  # 2 row blocks x ceil(640 / (64 * 8))
    u = cost("usgemm adtype=f16 wdtype=f16 acc=0 act=0 wgt=0 m=1 k=300 n=20 accumulate=0 fmt=csr meta=0 nnz=500", DC)
    assert (u.macs, u.meta_decoded) == (500, 21 + 500)
    assert u.sram_bytes == 600 + 1000 + (21 * 2 + 500 * 2) + 80  # 2-byte row pointers and columns
    assert u.cycles == 64 + max(2, 17)  # the CSR decoder (521 / 32) outruns the array (500 / 256)
    c = cost("gemm adtype=i8 wdtype=u4 acc=0 act=0 wgt=0 m=8 k=128 n=64 accumulate=0 wfmt=codebook cdtype=i8 cb=0 "
             "askip=1", DC)
    assert c.sram_bytes == 8 * 128 + 64 * 64 + 16 + 8 * 64 * 4  # ... + the 16-entry i8 table
    assert c.meta_decoded == 64 * 128 + 8 * 128  # lookups + zero tests
    assert c.cycles == 32 + max(16, 16, 2)  # array, codebook lookups (8192 / 512), detector (1024 / 512)
    assert c.energy_pj == pytest.approx(0.15 * c.macs + 0.6 * c.sram_bytes + 0.03 * c.meta_decoded)
