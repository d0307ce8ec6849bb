"""Data movement on Sparrow (passes/sparrow_moves.py): small ONNX graphs compiled for the
datacenter target in fp32 and simulated; the simulator's outputs must equal the reference
evaluator's (bit for bit for the selections, within float32 rounding for the weighted
Resize modes, which the evaluator computes in float64)."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from spaq.compiler.conformance import _evaluate, _simulate
from spaq.passes.sparrow_moves import SHIFT, plan_boxes, plan_pieces

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=[numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _vi(name, shape, t=F):
    return helper.make_tensor_value_info(name, t, shape)


def _check(model, feeds, exact=True):
    want = _evaluate(model, dict(feeds))
    got = _simulate(model, dict(feeds))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert np.shape(g) == np.shape(w)
        if exact:
            np.testing.assert_array_equal(np.asarray(g).astype(w.dtype), w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


RNG = np.random.default_rng(0)
X = RNG.standard_normal((1, 2, 4, 6)).astype(np.float32)


def test_concat_with_a_constant():
    c = RNG.standard_normal((1, 1, 4, 6)).astype(np.float32)
    m = _model([helper.make_node("Concat", ["x", "y", "c"], ["z"], axis=1)],
               [_vi("x", [1, 2, 4, 6]), _vi("y", [1, 2, 4, 6])], [_vi("z", [1, 5, 4, 6])], [("c", c)])
    _check(m, {"x": X, "y": -X})


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_split_uneven(axis):
    n = X.shape[axis]
    sizes = np.array([1, n - 1], np.int64)
    shapes = [list(X.shape) for _ in sizes]
    for s, k in zip(shapes, sizes):
        s[axis] = int(k)
    m = _model([helper.make_node("Split", ["x", "s"], ["a", "b"], axis=axis)], [_vi("x", list(X.shape))],
               [_vi("a", shapes[0]), _vi("b", shapes[1])], [("s", sizes)])
    _check(m, {"x": X})


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "wrap"])
def test_pad_modes(mode):
    pads = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)
    inputs = ["x", "p"] + (["v"] if mode == "constant" else [])
    inits = [("p", pads)] + ([("v", np.array(1.5, np.float32))] if mode == "constant" else [])
    m = _model([helper.make_node("Pad", inputs, ["y"], mode=mode)], [_vi("x", list(X.shape))],
               [_vi("y", [1, 2, 7, 9])], inits)
    _check(m, {"x": X})


def test_tile_depth_to_space_space_to_depth():
    nodes = [helper.make_node("Tile", ["x", "r"], ["t"]),
             helper.make_node("DepthToSpace", ["x"], ["d"], blocksize=2, mode="CRD"),
             helper.make_node("SpaceToDepth", ["x"], ["s"], blocksize=2)]
    m = _model(nodes, [_vi("x", [1, 4, 4, 6])], [_vi("t", [2, 4, 8, 6]), _vi("d", [1, 1, 8, 12]), _vi("s", [1, 16, 2, 3])],
               [("r", np.array([2, 1, 2, 1], np.int64))])
    _check(m, {"x": RNG.standard_normal((1, 4, 4, 6)).astype(np.float32)})


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize(mode):
    scales = np.array([1, 1, 2, 1.5], np.float32)
    m = _model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode=mode)], [_vi("x", list(X.shape))],
               [_vi("y", [1, 2, 8, 9])], [("s", scales)])
    _check(m, {"x": X}, exact=mode == "nearest")


def test_reversed_slice_and_permuting_gather():
    nodes = [helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["r"]),
             helper.make_node("Gather", ["x", "i"], ["g"], axis=3)]
    inits = [("st", np.array([-1], np.int64)), ("en", np.array([-100], np.int64)), ("ax", np.array([3], np.int64)),
             ("sp", np.array([-2], np.int64)), ("i", np.array([5, 0, 3, 1, 4, 2, 2], np.int64))]
    m = _model(nodes, [_vi("x", list(X.shape))], [_vi("r", [1, 2, 4, 3]), _vi("g", [1, 2, 4, 7])], inits)
    _check(m, {"x": X})


def test_gather_run_time_indices_of_an_activation():
    m = _model([helper.make_node("Relu", ["x"], ["h"]), helper.make_node("Gather", ["h", "i"], ["y"], axis=2)],
               [_vi("x", list(X.shape)), _vi("i", [2, 2], TensorProto.INT64)], [_vi("y", [1, 2, 2, 2, 6])])
    _check(m, {"x": X, "i": np.array([[0, -1], [2, 1]], np.int64)})


def test_outputs_that_no_layer_writes():
    """An input returned as it is, a constant output, a view of an input: copied into their
    own output segments (the program keeps its declared input)."""
    nodes = [helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Transpose", ["x"], ["t"], perm=[0, 1, 3, 2]),
             helper.make_node("Identity", ["c"], ["k"])]
    m = _model(nodes, [_vi("x", list(X.shape))], [_vi("a", list(X.shape)), _vi("t", [1, 2, 6, 4]), _vi("k", [3])],
               [("c", np.array([1, 2, 3], np.float32))])
    _check(m, {"x": X})


def test_piece_planning():
    """A Concat's map is one box per input; an element permutation has no long runs."""
    a = (1 << SHIFT) + np.arange(6).reshape(2, 3)
    b = (2 << SHIFT) + np.arange(4).reshape(2, 2)
    ids = np.concatenate([a, b], axis=1)
    pieces = plan_pieces(ids)
    assert [(p.source, p.rows, p.cols) for p in pieces] == [(1, 1, 3), (2, 1, 2), (1, 1, 3), (2, 1, 2)]
    up = (1 << SHIFT) + np.repeat(np.arange(4), 2).reshape(1, 8)  # nearest 2x: stride-0 pairs, rows 1 apart
    (p,) = plan_pieces(up)
    assert (p.rows, p.cols, p.rstride, p.cstride) == (4, 2, 1, 0)
    assert plan_boxes(ids[None] >> 0, None, [_Root(), _Root()]) is not None
    perm = (1 << SHIFT) + np.random.default_rng(1).permutation(64)
    assert len(plan_pieces(perm)) > 16


class _Root:
    root = None


def _mnemonics(model, feeds):
    from xdsl.passes import PassPipeline

    from spaq.backends.sparrow.emitter import assemble
    from spaq.compiler.context import make_context
    from spaq.compiler.onnx_import import import_model
    from spaq.compiler.pipeline import passes
    from spaq.compiler.weights import weights_of

    ctx = make_context()
    module = import_model(model, ctx, {n: list(v.shape) for n, v in feeds.items()})
    PassPipeline(tuple(passes("datacenter")), lambda *a: None).apply(ctx, module)
    program, _ = assemble(module, weights_of(ctx))
    return [i.mnemonic for i in program]


def test_irregular_selection_gathers_elements_and_boxes_are_two_dmas():
    perm = np.random.default_rng(2).permutation(48).astype(np.int64)
    m = _model([helper.make_node("Gather", ["x", "i"], ["y"], axis=0),
                helper.make_node("Relu", ["y"], ["z"])], [_vi("x", [48])], [_vi("z", [48])], [("i", perm)])
    x = RNG.standard_normal(48).astype(np.float32)
    _check(m, {"x": x})
    assert "gather" in _mnemonics(m, {"x": x})
    cat = _model([helper.make_node("Concat", ["x", "y"], ["z"], axis=3)],
                 [_vi("x", list(X.shape)), _vi("y", list(X.shape))], [_vi("z", [1, 2, 4, 12])])
    assert [i for i in _mnemonics(cat, {"x": X, "y": X}) if i != "sync"] == ["load", "store", "load", "store", "halt"]


@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gathernd_run_time_index_tuples(batch_dims):
    """Row numbers computed on the vector unit (negative indices count from the end), rows by GATHER."""
    data = RNG.standard_normal((2, 3, 4, 5)).astype(np.float32)
    if batch_dims == 0:
        idx = np.array([[[1, -1], [0, 2]], [[-2, 0], [1, -3]]], np.int64)  # [2, 2, 2]: rows of [4, 5]
        out = [2, 2, 4, 5]
    else:
        idx = np.array([[[2, 1]], [[-1, -4]]], np.int64)  # [2, 1, 2] -> [2, 1, 5]
        out = [2, 1, 5]
    m = _model([helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=batch_dims)],
               [_vi("x", [2, 3, 4, 5]), _vi("i", list(idx.shape), TensorProto.INT64)], [_vi("y", out)])
    _check(m, {"x": data, "i": idx})


def test_bilinear_upsampling_of_many_channels():
    """Taps come from one plane (16 x 16) and repeat over the 2 x 8 (batch, channel) planes."""
    x = RNG.standard_normal((2, 8, 16, 16)).astype(np.float32)
    m = _model([helper.make_node("Resize", ["x", "", "", "s"], ["y"], mode="linear")], [_vi("x", [2, 8, 16, 16])],
               [_vi("y", [2, 8, 32, 32])], [("s", np.array([2, 8, 32, 32], np.int64))])
    _check(m, {"x": x}, exact=False)


def test_a_matmul_result_that_is_also_a_graph_output_reaches_dram():
    """The softmax after the matmul would be its fused tail (the scores never leave the
    scratchpad); the scores are a graph output too, so they are stored."""
    a = RNG.standard_normal((2, 4, 8)).astype(np.float32)
    b = RNG.standard_normal((2, 8, 4)).astype(np.float32)
    m = _model([helper.make_node("MatMul", ["a", "b"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1)],
               [_vi("a", [2, 4, 8]), _vi("b", [2, 8, 4])], [_vi("s", [2, 4, 4]), _vi("p", [2, 4, 4])])
    _check(m, {"a": a, "b": b}, exact=False)


def test_dropout_mask_output():
    m = _model([helper.make_node("Dropout", ["x"], ["y", "mask"])], [_vi("x", list(X.shape))],
               [_vi("y", list(X.shape)), _vi("mask", list(X.shape), TensorProto.BOOL)])
    _check(m, {"x": X})


def test_every_output_a_constant_keeps_the_declared_input():
    """ConstantOfShape of a folded Shape: the output is a constant copied into its segment;
    the program still takes x."""
    m = _model([helper.make_node("Shape", ["x"], ["s"]),
                helper.make_node("ConstantOfShape", ["s"], ["y"], value=numpy_helper.from_array(np.array([2.5], np.float32)))],
               [_vi("x", [2, 3])], [_vi("y", [2, 3])])
    _check(m, {"x": np.zeros((2, 3), np.float32)})


def test_einsum_diagonal_is_a_selection():
    x = RNG.standard_normal((2, 3, 4, 4)).astype(np.float32)
    m = _model([helper.make_node("Einsum", ["x"], ["y"], equation="...ii->...i")], [_vi("x", [2, 3, 4, 4])],
               [_vi("y", [2, 3, 4])])
    _check(m, {"x": x})


@pytest.mark.parametrize("op", ["Resize", "Tile"])
def test_repeats_are_one_box_per_phase(op):
    """A nearest 2x upsampling (phases inside each dimension) and a Tile (phases outside)
    are, per phase, one LOAD of the source and one STORE through the result's strides."""
    if op == "Resize":
        node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="nearest")
        inits = [("s", np.array([1, 1, 2, 2], np.float32))]
    else:
        node = helper.make_node("Tile", ["x", "r"], ["y"])
        inits = [("r", np.array([1, 1, 2, 2], np.int64))]
    m = _model([node], [_vi("x", list(X.shape))], [_vi("y", [1, 2, 8, 12])], inits)
    _check(m, {"x": X})
    ops = [i for i in _mnemonics(m, {"x": X}) if i != "sync"]
    assert ops.count("load") == 4 and "gather" not in ops  # a Tile's phase box spans channels: 2 STOREs each
    if op == "Resize":
        assert ops == ["load", "store"] * 4 + ["halt"]


def test_gather_of_a_constant_table_along_axis_1_and_by_a_scalar_index():
    table = RNG.standard_normal((3, 5, 2)).astype(np.float32)
    m = _model([helper.make_node("Gather", ["t", "i"], ["y"], axis=1), helper.make_node("Gather", ["x", "j"], ["z"], axis=2)],
               [_vi("i", [2, 3], TensorProto.INT64), _vi("x", list(X.shape)), _vi("j", [], TensorProto.INT64)],
               [_vi("y", [3, 2, 3, 2]), _vi("z", [1, 2, 6])], [("t", table)])
    _check(m, {"i": np.array([[4, 0, -1], [2, 2, 1]], np.int64), "x": X, "j": np.array(-2, np.int64)})


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_large_planes_take_separable_taps(mode, monkeypatch):
    """Above BASIS_LIMIT the taps are products of per-dimension ones (forced here on a small plane)."""
    import spaq.passes.sparrow_moves as moves

    monkeypatch.setattr(moves, "BASIS_LIMIT", 8)
    x = RNG.standard_normal((1, 2, 6, 5)).astype(np.float32)
    m = _model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode=mode)], [_vi("x", [1, 2, 6, 5])],
               [_vi("y", [1, 2, 12, 8])], [("s", np.array([1, 1, 2, 1.6], np.float32))])
    _check(m, {"x": x}, exact=False)
