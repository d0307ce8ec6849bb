"""ONNX's own backend conformance cases, run through spaq.

    results = run_cases(node_cases(), path="evaluator")
    print(markdown_table(results))

Each case (from `onnx.backend.test.loader.load_model_tests`, expected outputs included)
is imported with its inputs' shapes, canonicalised, and run by the reference evaluator;
its outputs are compared with ONNX's expected ones. A case is `passed`, `failed` (with
the largest error) or `unsupported` (with the reason: the first error spaq gave).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from xdsl.passes import PassPipeline

from spaq.compiler.context import make_context
from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import evaluate
from spaq.compiler.onnx_import import import_model
from spaq.passes.onnx_canonicalize import OnnxCanonicalizePass

RTOL, ATOL = 1e-3, 1e-5


@dataclass
class CaseResult:
    name: str
    ops: tuple[str, ...]
    status: str  # passed | failed | unsupported
    detail: str = ""


def node_cases(pattern: str = "") -> list:
    from onnx.backend.test.loader import load_model_tests

    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return [c for c in cases if re.search(pattern, c.name)]


def _compare(got: np.ndarray, want: np.ndarray) -> str | None:
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if want.dtype.kind in "biu" or want.dtype == bool:
        bad = int(np.sum(got.astype(want.dtype) != want))
        return f"{bad} elements differ" if bad else None
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    same_nan = np.isnan(got64) == np.isnan(want64)
    close = np.isclose(got64, want64, rtol=RTOL, atol=ATOL, equal_nan=True)
    if same_nan.all() and close.all():
        return None
    err = np.nanmax(np.abs(got64 - want64)) if got.size else 0.0
    return f"max error {err:.3g}"


def _array(value) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else np.asarray(value)


def run_case(case) -> CaseResult:
    model: onnx.ModelProto = case.model
    ops = tuple(sorted({n.op_type for n in model.graph.node}))
    graph_inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    try:
        inputs, outputs = ([_array(v) for v in vs] for vs in case.data_sets[0])
        feeds = dict(zip(graph_inputs, inputs))
        shapes = {n: list(np.shape(v)) for n, v in feeds.items()}
        ctx = make_context()
        module = import_model(model, ctx, shapes)
        PassPipeline((OnnxCanonicalizePass(),), lambda *a: None).apply(ctx, module)
        with np.errstate(all="ignore"):
            got = evaluate(module, ctx, feeds)
    except Exception as e:  # a case spaq cannot run: say why, in one line
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return CaseResult(case.name, ops, "unsupported", text[:160])
    for (name, value), want in zip(got.items(), outputs):
        problem = _compare(np.asarray(value), np.asarray(want))
        if problem:
            return CaseResult(case.name, ops, "failed", f"{name}: {problem}")
    return CaseResult(case.name, ops, "passed")


def run_cases(cases: Iterable) -> list[CaseResult]:
    return [run_case(c) for c in cases]


def markdown_table(results: list[CaseResult], supported: set[str]) -> str:
    """Per-op table plus the headline: pass rate over cases whose ops are all supported."""
    by_op: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        for op in r.ops:
            by_op[op].append(r)
    in_scope = [r for r in results if set(r.ops) <= supported]
    passed = sum(r.status == "passed" for r in in_scope)
    lines = [
        f"Cases whose operators are all supported: {len(in_scope)}; passed {passed} "
        f"({passed / max(len(in_scope), 1):.1%}). All cases: {len(results)}, passed "
        f"{sum(r.status == 'passed' for r in results)}.",
        "",
        "| op | supported | passed | failed | unsupported | first problem |",
        "|---|---|---|---|---|---|",
    ]
    for op in sorted(by_op):
        rs = by_op[op]
        counts = {s: sum(r.status == s for r in rs) for s in ("passed", "failed", "unsupported")}
        problem = next((f"{r.name}: {r.detail}" for r in rs if r.status != "passed"), "")
        lines.append(f"| {op} | {'yes' if op in supported else 'no'} | {counts['passed']} | {counts['failed']} | "
                     f"{counts['unsupported']} | {problem.replace('|', '/')} |")
    return "\n".join(lines) + "\n"
