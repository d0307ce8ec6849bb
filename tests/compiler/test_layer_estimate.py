"""The planner's estimator (from layer shapes, before lowering) against the simulator's
counters for the program actually emitted: DRAM bytes exactly, cycles within 5%."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import pytest

from spaq.backends.sparrow.cost import Cost
from spaq.backends.sparrow.simulator import simulate
from spaq.compiler.pipeline import compile_model

sys.path.insert(0, str(Path(__file__).parent))
import transformer_block as tb  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"


def _counted_by_layer(c, inputs) -> dict[str, Cost]:
    stats = simulate(c.program, c.image, c.target, inputs).stats
    counted: dict[str, Cost] = defaultdict(Cost)
    for layer in c.image.layers:
        counted[layer["name"]] += stats.span(layer["first"], layer["last"])
    return counted


def _check(c, inputs, kinds: int) -> None:
    counted = _counted_by_layer(c, inputs)
    assert len(c.estimates) >= kinds
    for name, est in c.estimates.items():
        got = counted[name]
        assert (est.dram_values, est.dram_metadata, est.dram_scales) == \
               (got.dram_values, got.dram_metadata, got.dram_scales), name
        assert est.sram_bytes == got.sram_bytes and est.dense_macs == got.dense_macs, name
        assert abs(est.cycles - got.cycles) <= 0.05 * got.cycles, (name, est.cycles, got.cycles)


@pytest.mark.parametrize("target", ["edge", "datacenter"])
@pytest.mark.parametrize("precision,sparsity", [("fp32", "none"), ("int8", "none"), ("int8", "2:4")])
def test_digits_cnn(target, precision, sparsity):
    c = compile_model(DIGITS / "digits_cnn.onnx", target=target, precision=precision, sparsity=sparsity,
                      calibration=DIGITS / "digits_calib.npz" if precision == "int8" else "",
                      shapes={"input": [1, 1, 8, 8]})
    images = np.load(DIGITS / "digits_test.npz")
    x = images[images.files[0]][:1].astype(np.float32)
    _check(c, {"input": x}, kinds=4)  # conv1, conv2, fc1, fc2


@pytest.mark.parametrize("target,precision", [("datacenter", "fp32"), ("datacenter", "int8-dynamic"),
                                              ("edge", "int8-dynamic")])
def test_transformer_block(tmp_path, target, precision):
    """Per-token GEMMs (Q, K, V share one VQUANT: each is estimated under its own name),
    tiled over rows on edge."""
    path = tmp_path / "block.onnx"
    onnx.save(tb.build(seq=64, layers=1), path)
    c = compile_model(path, target=target, precision=precision)
    _check(c, tb.inputs(seq=64, valid=60), kinds=6)


PRECISIONS = ["fp16", "bf16", "fp8-e4m3", "int4", "int2", "ternary", "binary", "codebook-16", "int4-a4", "int2-a2"]


@pytest.mark.parametrize("sparsity", ["none", "2:4"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_gemm_modes(tmp_path, precision, sparsity):
    """Every sliced weight format (plain, binary, ternary, codebook with its table) and
    sub-byte activations, on the small MLP of the GEMM-mode tests."""
    from test_compiled_gemm_modes import mlp

    path, calib = mlp(tmp_path)
    c = compile_model(path, target="datacenter", precision=precision, sparsity=sparsity, calibration=calib)
    x = np.random.default_rng(2).standard_normal((2, 64)).astype(np.float32)
    _check(c, {"x": x}, kinds=3)


def test_askip_predicts_dense_work(tmp_path):
    """Under activation skipping the simulator executes fewer MACs than the estimate (as
    than the cost model): the bytes still agree exactly."""
    from test_compiled_gemm_modes import mlp

    path, calib = mlp(tmp_path)
    c = compile_model(path, target="datacenter", precision="int8", calibration=calib, askip="relu")
    counted = _counted_by_layer(c, {"x": np.random.default_rng(3).standard_normal((2, 64)).astype(np.float32)})
    skipped = [n for n in c.estimates if counted[n].macs < c.estimates[n].macs]
    assert skipped and all(c.estimates[n].dram_bytes == counted[n].dram_bytes for n in c.estimates)


def test_unmodelled_layers_have_no_estimate(tmp_path):
    from test_compiled_gemm_modes import mlp

    path, calib = mlp(tmp_path)
    c = compile_model(path, target="datacenter", precision="int8", sparsity="block-8x8", calibration=calib)
    assert c.estimates == {}
