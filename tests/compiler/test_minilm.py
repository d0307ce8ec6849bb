"""all-MiniLM-L6-v2 (batch 1, sequence 128) on Sparrow, both torch exports: fp32 matches
onnxruntime within 1e-4 on the last hidden state, and W8A8 (int8 per-channel weights,
dynamic per-token int8 activations) simulates bit-exactly what the reference evaluator
computes. Runs only where `make bench` has cached the exported models (it needs torch to make
them); `make test` skips it otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
from models.export_minilm import KINDS, onnx_path, sample_inputs  # noqa: E402

pytestmark = pytest.mark.skipif(not all(onnx_path(k).exists() for k in KINDS),
                                reason="MiniLM exports not cached (make bench exports them)")

SHAPES = {n: [1, 128] for n in ("input_ids", "attention_mask", "token_type_ids")}


def _inputs() -> dict[str, np.ndarray]:
    x = sample_inputs()  # the sample sentence, padded (or random tokens without `tokenizers`)
    x["attention_mask"] = x["attention_mask"].copy()
    x["attention_mask"][:, 100:] = 0  # padding is masked either way
    return x


@pytest.fixture(scope="module")
def reference():
    import onnxruntime as ort

    x = _inputs()
    out = {}
    for kind in KINDS:
        sess = ort.InferenceSession(str(onnx_path(kind)), providers=["CPUExecutionProvider"])
        out[kind] = sess.run(["last_hidden_state"], {i.name: x[i.name] for i in sess.get_inputs()})[0]
    return x, out


def _compile_and_run(kind: str, precision: str, x: dict[str, np.ndarray]):
    from spaq.backends.sparrow.simulator import simulate
    from spaq.compiler.pipeline import compile_model

    kept = {}
    c = compile_model(onnx_path(kind), target="datacenter", precision=precision, shapes=SHAPES,
                      after_pass=lambda p, m: kept.__setitem__("ir", m.clone()) if p.name == "quantize" else None)
    feeds = {n: x[n] for n, s in c.image.symbols.items() if s.kind == "input"}
    sim = simulate(c.program, c.image, c.target, feeds).outputs["last_hidden_state"]
    return c, sim, kept["ir"]


@pytest.mark.parametrize("kind", KINDS)
def test_fp32_matches_onnxruntime(kind, reference):
    x, want = reference
    _, got, _ = _compile_and_run(kind, "fp32", x)
    assert np.abs(got - want[kind]).max() <= 1e-4


@pytest.mark.parametrize("kind", KINDS)
def test_w8a8_simulator_equals_evaluator(kind, reference):
    from spaq.compiler.evaluator import evaluate

    x, want = reference
    c, got, ir = _compile_and_run(kind, "int8-dynamic", x)
    ref = evaluate(ir, c.ctx, x)["last_hidden_state"]
    np.testing.assert_array_equal(got, ref)
    # and close to the fp32 model: sentence embeddings (mean over real tokens) agree
    mask = x["attention_mask"][0].astype(bool)
    e_q, e_f = got[0][mask].mean(0), want[kind][0][mask].mean(0)
    assert float(e_q @ e_f / np.linalg.norm(e_q) / np.linalg.norm(e_f)) > 0.99
