"""A tiny BERT encoder (tests/compiler/transformer_block.py: embeddings by Gather, LayerNorm,
2-head attention with a padding mask, GELU FFN) compiled for Sparrow and simulated: the
transformer layers (per-token int8 gemm, batched matmul, vector regions, gather, views)
always run in `make test`.

- fp32: the simulator equals the reference evaluator bit for bit and onnxruntime within
  float32 rounding;
- int8-dynamic (W8A8, per-token activations): the simulator equals the evaluator bit for bit;
- the program has the instructions the layers promise (GATHER for the embedding, one GEMM
  per head, VQUANT per int8 gemm, the LayerNorm idiom) and its counted bytes equal the cost
  model's prediction.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from spaq.backends.sparrow.cost import work
from spaq.backends.sparrow.simulator import simulate
from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import evaluate
from spaq.compiler.pipeline import compile_model

sys.path.insert(0, str(Path(__file__).parent))
import transformer_block as tb  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("transformer")
    out = {}
    for style in ("arith", "where"):
        path = d / f"block-{style}.onnx"
        onnx.save(tb.build(mask_style=style, layers=2), path)
        out[style] = path
    return out


def _run(path: Path, precision: str, inputs: dict[str, np.ndarray], target: str = "datacenter"):
    kept = {}
    c = compile_model(path, target=target, precision=precision,
                      after_pass=lambda p, m: kept.__setitem__("ir", m.clone()) if p.name == "quantize" else None)
    sim = simulate(c.program, c.image, c.target, inputs)
    ref = evaluate(kept["ir"], c.ctx, inputs)
    return c, sim, ref


@pytest.mark.parametrize("style", ["arith", "where"])
@pytest.mark.parametrize("precision", ["fp32", "int8-dynamic"])
def test_simulator_equals_evaluator_bit_for_bit(models, style, precision):
    x = tb.inputs(valid=11)
    _, sim, ref = _run(models[style], precision, x)
    np.testing.assert_array_equal(sim.outputs["last_hidden_state"], ref["last_hidden_state"])


@pytest.mark.parametrize("style", ["arith", "where"])
def test_fp32_matches_onnxruntime(models, style):
    x = tb.inputs(valid=11)
    want = ort.InferenceSession(str(models[style])).run(None, x)[0]
    _, sim, _ = _run(models[style], "fp32", x)
    np.testing.assert_allclose(sim.outputs["last_hidden_state"], want, atol=1e-5, rtol=1e-5)


def test_int8_dynamic_is_close_to_fp32(models):
    x = tb.inputs(valid=16)
    want = ort.InferenceSession(str(models["arith"])).run(None, x)[0]
    _, sim, _ = _run(models["arith"], "int8-dynamic", x)
    got = sim.outputs["last_hidden_state"]
    cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert cos.min() > 0.999


def test_program_shape_and_counted_bytes(models):
    c, sim, _ = _run(models["where"], "int8-dynamic", tb.inputs(valid=11))
    ops = Counter(i.mnemonic for i in c.program)
    layers, heads, linears = 2, 2, 6
    assert ops["gather"] == 1                          # word embeddings by token id
    assert ops["vquant"] == layers * (linears - 2)     # one per int8 gemm; Q, K and V share theirs
    assert ops["gemm"] == layers * (linears + 2 * heads)   # + Q·Kᵀ and P·V per head
    assert ops["softmax"] == layers
    assert ops["vred"] == 2 * (1 + 2 * layers)        # LayerNorm: mean and variance
    assert ops["vsel"] == 1                            # the attention mask (Where)
    predicted = sum((work(i) for i in c.program), start=type(sim.stats.total)())
    assert sim.stats.total.dram_bytes == predicted.dram_bytes
    assert sim.stats.total.sram_bytes == predicted.sram_bytes


def test_gelu_operator_and_edge_target_error(tmp_path):
    path = tmp_path / "gelu.onnx"
    onnx.save(tb.build(gelu="op"), path)
    x = tb.inputs(valid=5)
    _, sim, ref = _run(path, "fp32", x)
    np.testing.assert_array_equal(sim.outputs["last_hidden_state"], ref["last_hidden_state"])
    want = ort.InferenceSession(str(path)).run(None, x)[0]
    np.testing.assert_allclose(sim.outputs["last_hidden_state"], want, atol=1e-5, rtol=1e-5)


def test_rows_tiled_on_a_small_target(tmp_path):
    """On edge (32 KiB ACT, 16 KiB ACC) every layer is tiled: vector regions and the gather by
    rows, gemms over N, K and then rows (M), matmuls one batch element at a time in row tiles;
    the program still equals the evaluator bit for bit."""
    for name, kwargs, precision in (("small", dict(seq=8, hidden=16, ffn=32), "fp32"),
                                    ("long", dict(seq=64, hidden=32, ffn=64), "int8-dynamic")):
        path = tmp_path / f"{name}.onnx"
        onnx.save(tb.build(heads=2, **kwargs), path)
        x = tb.inputs(seq=kwargs["seq"], valid=kwargs["seq"] - 3)
        c, sim, ref = _run(path, precision, x, target="edge")
        np.testing.assert_array_equal(sim.outputs["last_hidden_state"], ref["last_hidden_state"])


def test_a_row_too_long_for_the_target_is_an_error_naming_layer_and_buffer(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    cols = 16384  # one f32 row of LayerNorm is 64 KiB: edge's 32 KiB ACT cannot hold it
    graph = helper.make_graph(
        [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], name="wide_ln", axis=-1)], "wide",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, cols])],
        [numpy_helper.from_array(np.linspace(0.5, 1.5, cols, dtype=np.float32), "g"),
         numpy_helper.from_array(np.zeros(cols, np.float32), "b")])
    path = tmp_path / "wide.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), path)
    with pytest.raises(SpaqError, match=r"layer 'wide_ln' needs \d+ bytes of ACT scratchpad, the target has 32768"):
        compile_model(path, target="edge", precision="fp32")


def test_session_runs_equal_simulate(models):
    """The benchmark's way of running (session.Session: the image loaded once, weights memoised
    as float32) computes exactly what one-shot simulate() does, input after input."""
    from spaq.backends.sparrow.session import Session

    c = compile_model(models["arith"], target="datacenter", precision="int8-dynamic")
    session = Session(c.program, c.image, c.target)
    for valid in (16, 7, 11):
        x = tb.inputs(valid=valid, seed=valid)
        got, want = session.run(x), simulate(c.program, c.image, c.target, x)
        np.testing.assert_array_equal(got.outputs["last_hidden_state"], want.outputs["last_hidden_state"])
        assert got.stats.total == want.stats.total
