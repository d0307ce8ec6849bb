"""Differential tests on the bundled digits CNN: simulator = reference evaluator =
onnxruntime, and the simulator's counted DRAM bytes = the cost model's prediction."""

from functools import cache
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from spaq.backends.sparrow.cost import program_cost, program_timing
from spaq.backends.sparrow.isa import Instruction
from spaq.backends.sparrow.simulator import simulate
from spaq.compiler.evaluator import evaluate
from spaq.compiler.pipeline import compile_model

DIGITS = Path(__file__).parents[2] / "examples" / "digits"
MODEL = DIGITS / "digits_cnn.onnx"
CONFIGS = {"fp32": ("none", "fp32"), "int8": ("none", "int8"), "2:4+int8": ("2:4", "int8")}


@cache
def digits_test_split():
    d = np.load(DIGITS / "digits_test.npz")
    return d["x"], d["y"]


@cache
def compiled(config: str, target: str, stop_before: str | None = None):
    sparsity, precision = CONFIGS[config]
    return compile_model(MODEL, target, sparsity, precision, DIGITS / "digits_calib.npz",
                         {"input": [1, 1, 8, 8]}, stop_before=stop_before)


@cache
def onnxruntime_probs():
    x, _ = digits_test_split()
    return ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


@pytest.mark.parametrize("target", ["edge", "datacenter"])
@pytest.mark.parametrize("config", ["int8", "2:4+int8"])
def test_integer_programs_match_the_reference_evaluator_bit_exactly(config, target):
    c = compiled(config, target)
    ref = compiled(config, target, stop_before="tile-layers")
    x, _ = digits_test_split()
    for i in range(0, len(x), 15):
        sim = simulate(c.program, c.image, c.target, {"input": x[i : i + 1]}).outputs["probs"]
        want = evaluate(ref.module, ref.ctx, {"input": x[i : i + 1]})["probs"]
        assert np.array_equal(sim, want), f"image {i}"


@pytest.mark.parametrize("target", ["edge", "datacenter"])
def test_fp32_program_matches_onnxruntime(target):
    c = compiled("fp32", target)
    x, y = digits_test_split()
    probs = onnxruntime_probs()
    sim = np.concatenate([simulate(c.program, c.image, c.target, {"input": x[i : i + 1]}).outputs["probs"]
                          for i in range(len(x))])
    np.testing.assert_allclose(sim, probs, rtol=1e-5, atol=1e-6)
    assert (sim.argmax(1) == y).mean() == (probs.argmax(1) == y).mean()


@pytest.mark.parametrize("config", list(CONFIGS))
def test_counted_dram_bytes_equal_the_cost_model(config):
    c = compiled(config, "edge")
    x, _ = digits_test_split()
    counted = simulate(c.program, c.image, c.target, {"input": x[:1]}).stats.total
    predicted = program_cost(c.program, c.target)
    assert (counted.dram_values, counted.dram_metadata, counted.dram_scales) == \
        (predicted.dram_values, predicted.dram_metadata, predicted.dram_scales)
    assert counted.macs == predicted.macs and counted.cycles == predicted.cycles


@pytest.mark.parametrize("target", ["edge", "datacenter"])
@pytest.mark.parametrize("config", list(CONFIGS))
def test_tokens_overlap_the_queues(config, target):
    """schedule-tokens: loads run ahead of the compute that does not need them, so the program
    takes fewer cycles than serially, and computes the same bits as its serial twin (tokens
    and SYNCs removed)."""
    c = compiled(config, target)
    timing = program_timing(c.program, c.target)
    assert timing.cycles < timing.serial
    serial = [Instruction(i.spec, i.values[:-4] + (0,) * 4) for i in c.program if i.mnemonic != "sync"]
    x, _ = digits_test_split()
    run = simulate(c.program, c.image, c.target, {"input": x[:1]})
    twin = simulate(serial, c.image, c.target, {"input": x[:1]})
    assert np.array_equal(run.image.data, twin.image.data)
    assert run.stats.timing == timing and twin.stats.total.cycles == timing.serial


def test_sparse_program_moves_fewer_weight_bytes_and_pays_metadata():
    dense, sparse = compiled("int8", "edge"), compiled("2:4+int8", "edge")
    d, s = program_cost(dense.program, dense.target), program_cost(sparse.program, sparse.target)
    assert s.dram_metadata > 0 == d.dram_metadata
    assert s.macs < d.macs and s.dense_macs == d.dense_macs


def test_quantized_evaluator_stays_close_to_float():
    ref = compiled("int8", "edge", stop_before="tile-layers")
    x, _ = digits_test_split()
    probs = onnxruntime_probs()
    q = np.concatenate([evaluate(ref.module, ref.ctx, {"input": x[i : i + 1]})["probs"] for i in range(40)])
    assert np.abs(q - probs[:40]).max() < 0.1


def simulated_accuracy(config: str, target: str = "edge") -> float:
    c = compiled(config, target)
    x, y = digits_test_split()
    return float(np.mean([simulate(c.program, c.image, c.target, {"input": x[i : i + 1]}).outputs["probs"].argmax()
                          == y[i] for i in range(len(y))]))


def test_compressed_accuracy_stays_near_fp32():
    """Quality gates on the 450 test images: int8 within 1 point of fp32 (onnxruntime's
    accuracy), one-shot 2:4 magnitude pruning + int8 within 10 points."""
    _, y = digits_test_split()
    reference = float((onnxruntime_probs().argmax(1) == y).mean())
    assert simulated_accuracy("int8") >= reference - 0.01
    assert simulated_accuracy("2:4+int8") >= reference - 0.10
