"""Memory-mapped initializers: same arrays as onnx.load, inline or external, zero-copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from spaq.backends.sparrow.image import MemoryImage
from spaq.backends.sparrow.isa import DType
from spaq.compiler.context import make_context
from spaq.compiler.errors import SpaqError
from spaq.compiler.evaluator import evaluate
from spaq.compiler.mapped_weights import LARGE, load_mapped, release_pages
from spaq.compiler.onnx_import import import_onnx
from spaq.compiler.pipeline import compile_model


def _model(rng) -> onnx.ModelProto:
    w = rng.standard_normal((64, 48)).astype(np.float32)          # mapped (>= LARGE elements)
    b = rng.standard_normal(48).astype(np.float32)                # stays in the proto
    idx = rng.integers(0, 64, (40, 40)).astype(np.int64)          # mapped, int64
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"]),
             helper.make_node("Shape", ["idx"], ["s"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 48]),
         helper.make_tensor_value_info("s", TensorProto.INT64, [2])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b"), numpy_helper.from_array(idx, "idx")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("external", [False, True])
def test_mapped_arrays_equal_onnx_load(tmp_path, external):
    model = _model(np.random.default_rng(0))
    want = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    path = tmp_path / "m.onnx"
    onnx.save_model(model, path, save_as_external_data=external, all_tensors_to_one_file=True,
                    location="m.data", size_threshold=0)
    stripped, weights = load_mapped(path)
    assert set(weights) == ({"w", "b", "idx"} if external else {"w", "idx"})
    for name, array in weights.items():
        assert np.array_equal(array, want[name]) and array.dtype == want[name].dtype
        assert not array.flags.writeable and not array.flags.owndata  # a view of the mapping
    kept = {t.name for t in stripped.graph.initializer}
    assert kept == ({"b"} - set(weights))
    inputs = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in stripped.graph.input}
    assert inputs["w"] == [64, 48] and inputs["idx"] == [40, 40]
    assert LARGE <= 64 * 48


def test_import_of_a_mapped_model_evaluates_like_the_model(tmp_path):
    rng = np.random.default_rng(1)
    model = _model(rng)
    w, b = (numpy_helper.to_array(t) for t in model.graph.initializer[:2])
    path = tmp_path / "m.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="m.data", size_threshold=0)
    ctx = make_context()
    module = import_onnx(path, ctx)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    got = evaluate(module, ctx, {"x": x})
    np.testing.assert_allclose(got["y"], x @ w + b, rtol=1e-5, atol=1e-5)


def test_external_data_problems_name_the_tensor(tmp_path):
    model = _model(np.random.default_rng(2))
    path = tmp_path / "m.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="m.data", size_threshold=0)
    (tmp_path / "m.data").unlink()
    with pytest.raises(SpaqError, match="initializer 'w': external data file 'm.data' is missing"):
        load_mapped(path)
    for t in model.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            for e in t.external_data:
                if e.key == "location":
                    e.value = "../outside.data"
    onnx.save_model(model, path)
    with pytest.raises(SpaqError, match="is not a file beside the model"):
        load_mapped(path)


def test_truncated_raw_data_is_an_error(tmp_path):
    model = _model(np.random.default_rng(3))
    model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(SpaqError, match="initializer 'w': 12284 bytes of data for 3072 float32 elements"):
        load_mapped(path)


def test_released_pages_read_back_the_same(tmp_path):
    big = np.arange(1 << 20, dtype=np.float32).reshape(1024, 1024)  # 4 MiB: whole pages inside
    graph = helper.make_graph([helper.make_node("Identity", ["t"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024, 1024])],
                              [numpy_helper.from_array(big, "t")])
    path = tmp_path / "big.onnx"
    onnx.save_model(helper.make_model(graph), path)
    _, weights = load_mapped(path)
    t = weights["t"]
    assert np.array_equal(t, big)
    release_pages(t[:512])
    release_pages(t)
    release_pages(big)  # not mapped: nothing happens
    assert np.array_equal(t, big)


def test_image_write_in_blocks_equals_one_write():
    rng = np.random.default_rng(4)
    values = rng.integers(-8, 8, (3000, 777))
    seen = []
    image = MemoryImage.empty()
    image.add("w", DType.I4, values.shape, "values")
    image.write("w", values, after_block=lambda rows, packed: seen.append((len(rows), len(packed))))
    assert np.array_equal(image.read("w"), values)
    assert sum(r for r, _ in seen) == 3000 and len(seen) > 1 and all(r == p for r, p in seen)


def test_an_image_written_to_its_file_equals_one_built_in_memory(tmp_path):
    root = Path(__file__).resolve().parents[2] / "examples" / "digits"
    kw = dict(target="edge", precision="int8", sparsity="2:4", calibration=root / "digits_calib.npz",
              shapes={"input": [1, 1, 8, 8]})
    in_memory = compile_model(root / "digits_cnn.onnx", **kw).image
    on_disk = compile_model(root / "digits_cnn.onnx", image_file=tmp_path / "image.bin", **kw).image
    on_disk.save(tmp_path)  # flushes in place
    assert np.array_equal(np.fromfile(tmp_path / "image.bin", np.uint8), in_memory.data)
    assert MemoryImage.load(tmp_path).symbols == in_memory.symbols
