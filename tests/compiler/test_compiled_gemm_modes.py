"""Every GEMM mode the compiler emits, end to end: a small MLP (built here with
onnx.helper) compiled in every precision x sparsity, and the digits CNN in a few, simulated
and compared with the reference evaluator on the IR the lowering started from — bit for bit
(the float layers too: their tiles hold the whole reduction, so the float32 sums are the
evaluator's) — with the simulator's counted DRAM bytes (values, metadata, scales) and MACs
equal to the cost model's, and the instruction and its mode fields as `gemm_modes` says."""

from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from spaq.backends.sparrow.cost import gemm_mac_type, program_cost
from spaq.backends.sparrow.isa import DType, WeightFormat
from spaq.backends.sparrow.simulator import simulate
from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import evaluate
from spaq.compiler.pipeline import compile_model
from spaq.passes.prune_magnitude import block_prune, unstructured_prune
from spaq.passes.quantize import quantize_weight
from spaq.dialects.quant import QuantType

DIGITS = Path(__file__).parents[2] / "examples" / "digits"
PRECISIONS = {  # precision -> (GEMM mode, stored wdtype, wfmt)
    "fp32": ("f32", DType.F32, WeightFormat.PLAIN),
    "fp16": ("f16", DType.F16, WeightFormat.PLAIN),
    "bf16": ("f16", DType.BF16, WeightFormat.PLAIN),
    "fp8-e4m3": ("f8", DType.F8E4M3, WeightFormat.PLAIN),
    "fp8-e5m2": ("f8", DType.F8E5M2, WeightFormat.PLAIN),
    "int8": ("i8", DType.I8, WeightFormat.PLAIN),
    "int4": ("i8", DType.I4, WeightFormat.PLAIN),
    "int2": ("i8", DType.I2, WeightFormat.PLAIN),
    "ternary": ("ternary", DType.I2, WeightFormat.TERNARY),
    "binary": ("binary", DType.U1, WeightFormat.BINARY),
    "codebook-16": ("i8", DType.U4, WeightFormat.CODEBOOK),
    "int4-a4": ("i4", DType.I4, WeightFormat.PLAIN),  # 4-bit activations: the i4 mode
    "int2-a2": ("i2", DType.I2, WeightFormat.PLAIN),
    "ternary-a4": ("ternary", DType.I2, WeightFormat.TERNARY),
}
SPARSITIES = {"none": "gemm", "2:4": "spgemm", "block-8x8": "bsgemm", "unstructured-bitmask": "usgemm",
              "unstructured-csr": "usgemm"}


@cache
def mlp(tmp: Path) -> tuple[Path, Path]:
    """x[2, 64] -> Gemm 64 -> Relu -> Gemm 32 -> Relu -> Gemm 16, and 16 calibration samples."""
    rng = np.random.default_rng(0)
    dims, nodes, inits, prev = (64, 64, 32, 16), [], [], "x"
    for i in range(3):
        w = (rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i])).astype(np.float32)
        b = (rng.standard_normal(dims[i + 1]) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [f"y{i}"], name=f"fc{i}", transB=1))
        prev = f"y{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"], name=f"relu{i}"))
            prev = f"r{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                              [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [2, 16])], inits)
    model, calib = tmp / "mlp.onnx", tmp / "mlp_calib.npz"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), model)
    np.savez(calib, x=rng.standard_normal((16, 64)).astype(np.float32))
    return model, calib


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return mlp(tmp_path_factory.mktemp("gemm_modes"))


def compile_and_check(path, calib, target, sparsity, precision, inputs, askip="none", shapes=None):
    """Compile, simulate, compare with the evaluator on the IR lowering started from; returns
    (compilation, simulated outputs, evaluated outputs, simulator stats)."""
    before = {}

    def keep(p, m):
        if p.name == "quantize":
            before["module"] = m.clone()

    c = compile_model(path, target, sparsity, precision, calib, shapes, after_pass=keep, askip=askip)
    want = evaluate(before["module"], c.ctx, inputs)
    result = simulate(c.program, c.image, c.target, inputs)
    for name, value in want.items():
        assert np.array_equal(result.outputs[name], value), f"{precision} {sparsity}: {name} differs"
    counted, predicted = result.stats.total, program_cost(c.program, c.target)
    assert (counted.dram_values, counted.dram_metadata, counted.dram_scales) == \
        (predicted.dram_values, predicted.dram_metadata, predicted.dram_scales)
    if askip == "none":
        assert counted.macs == predicted.macs and counted.cycles == predicted.cycles
    else:
        assert counted.macs <= predicted.macs and counted.cycles <= predicted.cycles
    return c, result, want


@pytest.mark.parametrize("sparsity", list(SPARSITIES))
@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_every_mode_simulates_as_the_evaluator_computes(model, precision, sparsity):
    path, calib = model
    x = np.load(calib)["x"][:2]
    c, _, _ = compile_and_check(path, calib, "datacenter", sparsity, precision, {"x": x})
    gemms = [i for i in c.program if i.mnemonic.endswith("gemm")]
    mode, wdtype, wfmt = PRECISIONS[precision]
    assert len(gemms) == 3
    for ins in gemms:
        assert ins.mnemonic == SPARSITIES[sparsity] or (sparsity == "2:4" and ins.k % 4)
        assert (gemm_mac_type(ins), ins.wdtype, ins.wfmt) == (mode, wdtype, wfmt)
        if wfmt is WeightFormat.CODEBOOK:
            assert ins.cdtype is DType.I8
        if ins.mnemonic == "usgemm":
            assert ins.fmt.name.lower() == sparsity.removeprefix("unstructured-")


def test_askip_on_relu_inputs_skips_work_with_the_same_result(model):
    path, calib = model
    x = np.load(calib)["x"][:2]
    c, result, _ = compile_and_check(path, calib, "datacenter", "none", "int8", {"x": x}, askip="relu")
    flags = [ins.askip for ins in c.program if ins.mnemonic == "gemm"]
    assert flags == [0, 1, 1]  # fc1 and fc2 take ReLU outputs
    assert result.stats.total.macs < program_cost(c.program, c.target).macs


@pytest.mark.parametrize("sparsity,precision", [("none", "binary"), ("2:4", "ternary"), ("block-4x4", "int4"),
                                                ("unstructured-csr", "codebook-16"),
                                                ("unstructured-bitmask", "fp8-e4m3"), ("none", "bf16"),
                                                ("2:4", "int4-a4")])
def test_digits_cnn_modes(sparsity, precision):
    d = np.load(DIGITS / "digits_test.npz")
    compile_and_check(DIGITS / "digits_cnn.onnx", DIGITS / "digits_calib.npz", "datacenter", sparsity, precision,
                      {"input": d["x"][:1]}, askip="relu", shapes={"input": [1, 1, 8, 8]})


@pytest.mark.parametrize("precision,message", [
    ("fp8-e4m3", "layer 'fc0': target edge has no f8 GEMM mode"),
    ("binary", "layer 'fc0': target edge has no binary GEMM mode")])
def test_a_mode_the_target_lacks_is_one_error(model, precision, message):
    path, calib = model
    with pytest.raises(SpaqError, match=message):
        compile_model(path, "edge", "none", precision, calib)


def test_pruning_patterns():
    w = np.array([[0.5] * 4 + [1.0] * 4] * 4, np.float32)
    assert (block_prune(w, 4, 4, 0.5) == np.array([[0] * 4 + [1.0] * 4] * 4)).all()
    u = np.array([[1.0, -5.0, 2.0, 4.0], [0.5, -1.0, 0.25, 3.0]], np.float32)
    assert (unstructured_prune(u, 3 / 8) == np.array([[0, -5.0, 0, 4.0], [0, 0, 0, 3.0]])).all()


def test_weight_value_sets():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 32))
    s, q = quantize_weight(w, QuantType(2, ternary=True), sparse=False)
    assert s.shape == (1,) and np.isclose(s[0], np.abs(w).mean()) and set(np.unique(q)) <= {-1, 0, 1}
    s, q = quantize_weight(w, QuantType(1), sparse=False)
    assert set(np.unique(q)) == {-1, 1}
    s, q = quantize_weight(w, QuantType(8, granularity="per_channel", axis=0, codebook=16), sparse=False)
    assert s.shape == (8,) and np.unique(q).size <= 16 and np.abs(q).max() <= 127
    _, q = quantize_weight(np.where(w > 0, w, 0), QuantType(8, granularity="per_channel", axis=0, codebook=4),
                           sparse=True)
    assert np.unique(q).size <= 4 and (q[w <= 0] == 0).all()


@pytest.mark.parametrize("sparsity,precision", [("block-8x8", "codebook-16"), ("unstructured-csr", "int4"),
                                                ("unstructured-bitmask", "binary"), ("2:4", "int4-a4"),
                                                ("none", "int2")])
def test_many_tiles_per_layer(model, sparsity, precision):
    """Tiles pinned to 16 x 32 (N x K): block and unstructured weights are packed per tile,
    the codebook table loaded once per layer, partial sums accumulate across K tiles."""
    from xdsl.passes import PassPipeline

    from spaq.backends.sparrow.emitter import assemble
    from spaq.compiler.evaluator import main_func
    from spaq.compiler.pipeline import passes
    from spaq.compiler.weights import weights_of
    from spaq.passes.sparrow_layers import TILES_KEY, int_dict_attr

    path, calib = model
    x = np.load(calib)["x"][:2]
    c = compile_model(path, "datacenter", sparsity, precision, calib, stop_before="tile-layers")
    want = evaluate(c.module, c.ctx, {"x": x})
    for op in main_func(c.module).body.block.ops:
        if op.name in ("quant.gemm", "onnx.Gemm"):
            op.attributes[TILES_KEY] = int_dict_attr({"n": 16, "k": 32, "m": 2})
    late = ("tile-layers", "allocate-scratchpad", "lower-to-sparrow", "schedule-tokens")
    PassPipeline(tuple(p for p in passes("datacenter") if p.name in late)).apply(c.ctx, c.module)
    program, image = assemble(c.module, weights_of(c.ctx))
    result = simulate(program, image, c.target, {"x": x})
    assert sum(i.mnemonic.endswith("gemm") for i in program) == 4 * 2 + 2 * 2 + 1
    assert all(np.array_equal(result.outputs[k], v) for k, v in want.items())
    counted, predicted = result.stats.total, program_cost(program, c.target)
    assert (counted.dram_values, counted.dram_metadata, counted.dram_scales) == \
        (predicted.dram_values, predicted.dram_metadata, predicted.dram_scales)
    if precision.startswith("codebook"):
        tables = [i for i in program if i.mnemonic == "load" and i.buf.name == "PARAM" and i.dtype is DType.I8]
        assert len(tables) == 3  # one per layer
