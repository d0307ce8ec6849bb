"""ONNX's own backend conformance cases, run through spaq on two paths.

    results = run_cases(node_cases(), path="evaluator")      # or path="simulator"
    print(markdown_table({"evaluator": ev, "simulator": sim}, supported))

Each case (from `onnx.backend.test.loader.load_model_tests`, expected outputs included:
the `node` cases, and the `pytorch-converted`, `pytorch-operator` and `simple` model cases
whose files the onnx package ships) is imported with its inputs' shapes and run

- `evaluator`: onnx-canonicalize, then the reference evaluator;
- `simulator`: the whole compile pipeline for the datacenter target in fp32 (import ->
  onnx-canonicalize -> ... -> lower-to-sparrow -> schedule-tokens), the emitter's program
  and memory image, and the Sparrow simulator.

Its outputs are compared with ONNX's expected ones. A case is `passed`, `failed` (with the
largest error) or `unsupported` (with the reason: the first error spaq gave).

On both paths, graph inputs whose values decide an operator's compile-time parameters
(Reshape's shape, Slice's starts, Pad's pads, Resize's scales, a reduction's axes, Range's
bounds, ...: `PARAMETERS`, directly or through shape arithmetic) are bound to the case's
values as constants before import: spaq's IR and Sparrow programs have static shapes, so
the compiler specialises these, as onnx-mlir's backend tests do with their constant-input
mode. Every other input stays a run-time input.
"""

from __future__ import annotations

import glob
import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from xdsl.passes import PassPipeline

from spaq.compiler.context import make_context
from spaq.compiler.evaluator import evaluate
from spaq.compiler.onnx_import import import_model
from spaq.passes.onnx_canonicalize import OnnxCanonicalizePass

RTOL, ATOL = 1e-3, 1e-5
PATHS = ("evaluator", "simulator")
MODEL_KINDS = ("pytorch-converted", "pytorch-operator", "simple")
SIM_TARGET = "datacenter"

PARAMETERS: dict[str, set[int]] = {
    "Reshape": {1}, "Expand": {1}, "Tile": {1}, "Slice": {1, 2, 3, 4}, "Pad": {1, 2, 3}, "Split": {1},
    "Squeeze": {1}, "Unsqueeze": {1}, "ConstantOfShape": {0}, "Resize": {1, 2, 3}, "Upsample": {1},
    "ReduceSum": {1}, "ReduceMean": {1}, "ReduceMax": {1}, "ReduceMin": {1}, "ReduceProd": {1},
    "ReduceL1": {1}, "ReduceL2": {1}, "ReduceLogSum": {1}, "ReduceLogSumExp": {1}, "ReduceSumSquare": {1},
    "TopK": {1}, "OneHot": {1}, "Range": {0, 1, 2}, "CumSum": {1}, "Trilu": {1}, "CenterCropPad": {1},
    "Conv": {1, 2},  # weight and bias: Sparrow's convolutions take constant weights, as deployed models do
    "ConvTranspose": {1, 2},  # likewise: onnx-canonicalize makes it a Conv when its weight is constant
}
"""Operand positions that are compile-time parameters (shapes, axes, pads, scales) rather
than data; the simulator path binds graph inputs used only there."""


@dataclass
class CaseResult:
    name: str
    ops: tuple[str, ...]
    status: str  # passed | failed | unsupported
    detail: str = ""
    kind: str = "node"


def node_cases(pattern: str = "") -> list:
    return cases("node", pattern)


def cases(kind: str = "node", pattern: str = "") -> list:
    """ONNX's backend test cases of one kind (`node`, or a model kind of `MODEL_KINDS`)."""
    from onnx.backend.test.loader import load_model_tests

    import warnings

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        found = load_model_tests(kind=kind)
    return sorted((c for c in found if re.search(pattern, c.name)), key=lambda c: c.name) if kind != "node" \
        else [c for c in found if re.search(pattern, c.name)]


def model_cases(pattern: str = "") -> list:
    """The shipped model cases of `MODEL_KINDS` (each has model.onnx and test_data_set_*)."""
    return [c for kind in MODEL_KINDS for c in cases(kind, pattern) if c.model_dir]


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


def _load(case) -> tuple[onnx.ModelProto, list[np.ndarray], list[np.ndarray]]:
    """The case's model, first data set's inputs and expected outputs."""
    if case.model is not None:
        inputs, outputs = ([_array(v) for v in vs] for vs in case.data_sets[0])
        return case.model, inputs, outputs
    model = onnx.load(os.path.join(case.model_dir, "model.onnx"))
    data = sorted(glob.glob(os.path.join(case.model_dir, "test_data_set_*")))[0]

    def read(prefix: str) -> list[np.ndarray]:
        files = sorted(glob.glob(os.path.join(data, f"{prefix}_*.pb")), key=lambda f: int(f.rsplit("_", 1)[1][:-3]))
        out = []
        for f in files:
            t = onnx.TensorProto()
            with open(f, "rb") as fh:
                t.ParseFromString(fh.read())
            out.append(_array(t))
        return out

    return model, read("input"), read("output")


def _graph_inputs(model: onnx.ModelProto) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


VALUE_FREE = ("Shape", "Size")
"""Operators that read only their input's shape: a value reaching them decides nothing."""


def bind_parameters(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[onnx.ModelProto, dict]:
    """`model` with the graph inputs whose values decide a compile-time parameter (they
    reach a `PARAMETERS` position, directly or through other nodes) turned into initializers
    holding their values in `feeds` — if they are used only that way, or are an integer
    scalar or vector (a size, a shape) — so a static-shape program is compiled for them. The
    remaining feeds (data) stay run-time inputs."""
    uses: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            uses[name].append((node, i))
    memo: dict[str, bool] = {}

    def decides_parameter(name: str) -> bool:
        if name not in memo:
            memo[name] = False  # cycles (none in a valid graph) decide nothing
            found = False
            for node, i in uses[name]:
                if node.domain not in ("", "ai.onnx") or node.op_type in VALUE_FREE:
                    continue
                if i in PARAMETERS.get(node.op_type, set()) or any(decides_parameter(o) for o in node.output if o):
                    found = True
                    break
            memo[name] = found
        return memo[name]

    outputs = {o.name for o in model.graph.output}

    def parameter_only(name: str) -> bool:
        """Every use is a parameter position, or a node all of whose results are parameter-only."""
        ok = name not in outputs and bool(uses[name])
        for node, i in uses[name] if ok else ():
            if i in PARAMETERS.get(node.op_type, set()) or node.op_type in VALUE_FREE:
                continue
            if not node.output or not all(parameter_only(o) for o in node.output if o):
                return False
        return ok

    def shape_like(value: np.ndarray) -> bool:
        value = np.asarray(value)
        return value.dtype.kind in "iu" and value.ndim <= 1

    # an input used only as parameters; or an integer scalar / vector (a size, a shape) that
    # decides a parameter even if it is also used as data (a window's length)
    bound = {n for n, v in feeds.items() if decides_parameter(n) and (parameter_only(n) or shape_like(v))}
    if not bound:
        return model, feeds
    model = onnx.ModelProto.FromString(model.SerializeToString())
    keep = [i for i in model.graph.input if i.name not in bound]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    model.graph.initializer.extend(onnx.numpy_helper.from_array(np.asarray(feeds[n]), n) for n in sorted(bound))
    return model, {n: v for n, v in feeds.items() if n not in bound}


def _evaluate(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    model, feeds = bind_parameters(model, feeds)
    shapes = {n: list(np.shape(v)) for n, v in feeds.items()}
    ctx = make_context()
    module = import_model(model, ctx, shapes)
    PassPipeline((OnnxCanonicalizePass(),), lambda *a: None).apply(ctx, module)
    with np.errstate(all="ignore"):
        return list(evaluate(module, ctx, feeds).values())


def _simulate(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from spaq.backends.sparrow.emitter import assemble
    from spaq.backends.sparrow.simulator import simulate
    from spaq.compiler.pipeline import passes
    from spaq.compiler.weights import weights_of
    from spaq.passes.tile_layers import target_of

    model, feeds = bind_parameters(model, feeds)
    shapes = {n: list(np.shape(v)) for n, v in feeds.items()}
    ctx = make_context()
    module = import_model(model, ctx, shapes)
    with np.errstate(all="ignore"):
        PassPipeline(tuple(passes(SIM_TARGET)), lambda *a: None).apply(ctx, module)
        program, image = assemble(module, weights_of(ctx))
        got = simulate(program, image, target_of(SIM_TARGET), feeds).outputs
    return [got[o.name] for o in model.graph.output]


def run_case(case, path: str = "evaluator") -> CaseResult:
    """One case through one path (`PATHS`)."""
    try:
        model, inputs, outputs = _load(case)
    except Exception as e:
        return CaseResult(case.name, (), "unsupported", f"cannot load the case: {e}"[:160], case.kind)
    ops = tuple(sorted({n.op_type for n in model.graph.node}))
    kinds = {v.name: v.type.WhichOneof("value") for v in [*model.graph.input, *model.graph.output]}
    other = next((n for n, k in kinds.items() if k != "tensor_type"), None)
    if other is not None:
        return CaseResult(case.name, ops, "unsupported", f"'{other}' is a {kinds[other].removesuffix('_type')}, "
                          "not a tensor: spaq takes and returns tensors only", case.kind)
    try:
        feeds = dict(zip(_graph_inputs(model), inputs))
        got = (_evaluate if path == "evaluator" else _simulate)(model, feeds)
    except Exception as e:  # a case spaq cannot run: say why, in one line
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return CaseResult(case.name, ops, "unsupported", text[:160], case.kind)
    names = [o.name for o in model.graph.output]
    for name, value, want in zip(names, got, outputs):
        problem = _compare(np.asarray(value), np.asarray(want))
        if problem:
            return CaseResult(case.name, ops, "failed", f"{name}: {problem}", case.kind)
    return CaseResult(case.name, ops, "passed", "", case.kind)


def run_cases(cases: Iterable, path: str = "evaluator") -> list[CaseResult]:
    return [run_case(c, path) for c in cases]


def headline(results: list[CaseResult], supported: set[str]) -> tuple[int, int]:
    """(passed, in scope): cases whose operators are all supported."""
    in_scope = [r for r in results if r.ops and set(r.ops) <= supported]
    return sum(r.status == "passed" for r in in_scope), len(in_scope)


def _rate(passed: int, total: int) -> str:
    return f"{passed}/{total} ({passed / max(total, 1):.1%})"


def markdown_table(results: dict[str, list[CaseResult]], supported: set[str]) -> str:
    """Headline per path (pass rate over the cases whose ops are all supported, and over
    both paths at once), then one row per operator: per path passed / failed / unsupported
    and the first problem."""
    paths = list(results)
    lines = []
    for path in paths:
        p, n = headline(results[path], supported)
        everything = results[path]
        lines.append(f"- **{path}**: cases whose operators are all supported: {_rate(p, n)} passed. "
                     f"All cases: {sum(r.status == 'passed' for r in everything)} of {len(everything)} passed.")
    if len(paths) > 1:
        first = results[paths[0]]
        both = [all(results[q][i].status == "passed" for q in paths) for i in range(len(first))]
        scope = [i for i, r in enumerate(first) if r.ops and set(r.ops) <= supported]
        lines.append(f"- **all paths**: {_rate(sum(both[i] for i in scope), len(scope))} of the in-scope cases "
                     f"pass on every path.")
    header = ["op", "supported"]
    for path in paths:
        header += [f"{path} passed", "failed", "unsupported"]
    header += [f"first problem ({path})" for path in paths]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_op: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(results[paths[0]]):
        for op in r.ops:
            by_op[op].append(i)
    for op in sorted(by_op):
        idx = by_op[op]
        row = [op, "yes" if op in supported else "no"]
        problems = []
        for path in paths:
            rs = [results[path][i] for i in idx]
            row += [str(sum(r.status == s for r in rs)) for s in ("passed", "failed", "unsupported")]
            bad = [r for r in rs if r.status != "passed"]
            # the most telling problem: a case of this op alone, or one whose message names it
            bad.sort(key=lambda r: (r.ops != (op,), f"onnx.{op}" not in r.detail and f"{op} " not in r.detail))
            problems.append((f"{bad[0].name}: {bad[0].detail}" if bad else "").replace("|", "/"))
        lines.append("| " + " | ".join(row + problems) + " |")
    return "\n".join(lines) + "\n"
