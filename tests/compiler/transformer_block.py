"""A tiny BERT-style encoder as ONNX, built with onnx.helper (no torch): what the transformer
tests compile. Token ids and an attention mask (int64) in, the last hidden state out:

    word / position / token-type embeddings (Gather by ids) -> Add -> LayerNorm
    per layer: Q, K, V = MatMul + Add (bias); Reshape [1, S, H, dh] and Transpose
               scores = Q · Kᵀ · (1/√dh) + (1 - mask) · -10000;  Softmax;  · V
               Transpose + Reshape, output projection, residual Add, LayerNorm
               FFN: MatMul + Add, GELU as x · 0.5 · (1 + erf(x / √2)), MatMul + Add,
               residual Add, LayerNorm

`mask_style="where"` builds the mask the way torch's exporter does for all-MiniLM
(Cast to bool, Where(mask, 0, -inf-ish)) instead of the arithmetic form.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(seq: int = 16, hidden: int = 32, heads: int = 2, ffn: int = 64, layers: int = 1, vocab: int = 50,
          seed: int = 0, mask_style: str = "arith", gelu: str = "erf") -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    dh = hidden // heads
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def const(name: str, array) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def w(name: str, *shape: int, scale: float = 0.2) -> str:
        return const(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def node(op: str, inputs: list[str], name: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def layernorm(x: str, prefix: str) -> str:
        g = const(f"{prefix}.gamma", (1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32))
        b = const(f"{prefix}.beta", (0.1 * rng.standard_normal(hidden)).astype(np.float32))
        return node("LayerNormalization", [x, g, b], f"{prefix}.ln", axis=-1, epsilon=1e-12)

    def linear(x: str, prefix: str, k: int, n: int) -> str:
        y = node("MatMul", [x, w(f"{prefix}.weight", k, n)], f"{prefix}.matmul")
        return node("Add", [y, w(f"{prefix}.bias", n, scale=0.05)], f"{prefix}.add")

    shape4 = const("shape.heads", np.array([1, seq, heads, dh], np.int64))
    shape3 = const("shape.hidden", np.array([1, seq, hidden], np.int64))
    word = node("Gather", [w("word_embeddings", vocab, hidden, scale=0.5), "input_ids"], "emb.word")
    pos_ids = const("position_ids", np.arange(seq, dtype=np.int64).reshape(1, seq))
    pos = node("Gather", [w("position_embeddings", seq, hidden, scale=0.5), pos_ids], "emb.pos")
    x = node("Add", [word, pos], "emb.add")
    x = layernorm(x, "emb")

    if mask_style == "where":
        m = node("Cast", ["attention_mask"], "mask.bool", to=TensorProto.BOOL)
        m = node("Unsqueeze", [m, const("mask.axes", np.array([1, 2], np.int64))], "mask.unsq")
        bias = node("Where", [m, const("mask.zero", np.float32(0)), const("mask.min", np.float32(-3.4028234663852886e38))],
                    "mask.where")
    else:
        m = node("Unsqueeze", ["attention_mask", const("mask.axes", np.array([1, 2], np.int64))], "mask.unsq")
        m = node("Cast", [m], "mask.float", to=TensorProto.FLOAT)
        m = node("Sub", [const("mask.one", np.float32(1)), m], "mask.sub")
        bias = node("Mul", [m, const("mask.big", np.float32(-10000))], "mask.mul")

    scale = const("attn.scale", np.float32(1 / np.sqrt(dh)))
    for i in range(layers):
        p = f"layer{i}"
        q = node("Reshape", [linear(x, f"{p}.q", hidden, hidden), shape4], f"{p}.q.reshape")
        k = node("Reshape", [linear(x, f"{p}.k", hidden, hidden), shape4], f"{p}.k.reshape")
        v = node("Reshape", [linear(x, f"{p}.v", hidden, hidden), shape4], f"{p}.v.reshape")
        q = node("Transpose", [q], f"{p}.q.t", perm=[0, 2, 1, 3])
        k = node("Transpose", [k], f"{p}.k.t", perm=[0, 2, 3, 1])
        v = node("Transpose", [v], f"{p}.v.t", perm=[0, 2, 1, 3])
        s = node("MatMul", [q, k], f"{p}.scores")
        s = node("Mul", [s, scale], f"{p}.scaled")
        s = node("Add", [s, bias], f"{p}.masked")
        a = node("Softmax", [s], f"{p}.probs", axis=-1)
        c = node("MatMul", [a, v], f"{p}.context")
        c = node("Transpose", [c], f"{p}.context.t", perm=[0, 2, 1, 3])
        c = node("Reshape", [c, shape3], f"{p}.context.reshape")
        o = linear(c, f"{p}.o", hidden, hidden)
        x = layernorm(node("Add", [o, x], f"{p}.res1"), f"{p}.ln1")
        h = linear(x, f"{p}.ffn1", hidden, ffn)
        if gelu == "erf":
            e = node("Div", [h, const(f"{p}.sqrt2", np.float32(1.4142135))], f"{p}.gelu.div")
            e = node("Erf", [e], f"{p}.gelu.erf")
            e = node("Add", [e, const(f"{p}.one", np.float32(1))], f"{p}.gelu.add")
            e = node("Mul", [h, e], f"{p}.gelu.mul")
            h = node("Mul", [e, const(f"{p}.half", np.float32(0.5))], f"{p}.gelu.half")
        else:
            h = node("Gelu", [h], f"{p}.gelu")
        f = linear(h, f"{p}.ffn2", ffn, hidden)
        x = layernorm(node("Add", [f, x], f"{p}.res2"), f"{p}.ln2")

    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="out"))
    graph = helper.make_graph(
        nodes, "tiny_bert",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, seq])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, seq, hidden])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def inputs(seq: int = 16, vocab: int = 50, valid: int | None = None, seed: int = 1) -> dict[str, np.ndarray]:
    """Token ids and a mask with `valid` real tokens (the rest padding)."""
    rng = np.random.default_rng(seed)
    valid = seq if valid is None else valid
    ids = rng.integers(0, vocab, (1, seq), dtype=np.int64)
    mask = (np.arange(seq) < valid).astype(np.int64).reshape(1, seq)
    return {"input_ids": ids, "attention_mask": mask}
