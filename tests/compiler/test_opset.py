"""Import converts every model to opset 21 (`canonical_opset`); a newer model the version
converter refuses (a type opset 21 lacks, e.g. FLOAT4E2M1) is relabelled only when each node
means what it meant at opset 21."""

import onnx
import pytest
from onnx import TensorProto, helper

from spaq.compiler.errors import SpaqError
from spaq.compiler.onnx_import import CANONICAL_OPSET, canonical_opset


def _cast_model(opset: int, to: int, **attrs) -> onnx.ModelProto:
    node = helper.make_node("Cast", ["x"], ["y"], to=to, **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", to, [4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain == "")


@pytest.mark.parametrize("opset", [25, 28])
def test_a_newer_type_is_relabelled(opset):
    assert _opset(canonical_opset(_cast_model(opset, TensorProto.FLOAT4E2M1, saturate=1))) == CANONICAL_OPSET


def test_an_attribute_opset_21_lacks_keeps_the_error():
    with pytest.raises(SpaqError, match="cannot convert the model from opset 25"):
        canonical_opset(_cast_model(25, TensorProto.FLOAT4E2M1, round_mode="down"))
