"""The `onnx` dialect: graph-level ops 1:1 with ONNX operators.

One op class per supported ONNX operator, generated from `SUPPORTED_OPS` and verified
against ONNX's own operator schemas (`onnx.defs`, opset 21): the number of inputs and outputs, the
attribute names, and the required attributes. ONNX attributes are the op's attributes:
ints as `i64`, floats as `f32`, int and float lists as `array<i64: ...>` / `array<f32: ...>`,
strings as strings, tensors as `dense<...>`.

```mlir
%w = onnx.Initializer "conv1.weight" : tensor<8x1x3x3xf32>
%y = onnx.Conv(%x, %w, %b) {pads = array<i64: 1, 1, 1, 1>} : (tensor<1x1x8x8xf32>, tensor<8x1x3x3xf32>, tensor<8xf32>) -> tensor<1x8x8x8xf32>
%n = onnx.NoValue : none
```

Weights are not IR: `onnx.Initializer` names an array in the compilation's WeightStore
(compiler/weights.py). `onnx.NoValue` stands for an omitted optional input.
Attributes with a dialect prefix (`spaq.compression`) are annotations of spaq's passes and
are not checked against the ONNX schema.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx.defs
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    FloatAttr,
    IntegerAttr,
    NoneType,
    StringAttr,
    TensorType,
)
from xdsl.ir import Attribute, Dialect, SSAValue
from xdsl.irdl import (
    IRDLOperation,
    irdl_op_definition,
    opt_prop_def,
    prop_def,
    result_def,
    traits_def,
    var_operand_def,
    var_result_def,
)
from xdsl.traits import NoMemoryEffect, Pure
from xdsl.utils.exceptions import VerifyException

from spaq.compiler.weights import WeightStore

# Operators the dialect knows (import succeeds); what each layer executes is listed by the
# evaluator and the lowering, which reject the rest with a message naming the op.
SUPPORTED_OPS: tuple[str, ...] = (
    "Abs", "Add", "And", "ArgMax", "ArgMin", "AveragePool", "BatchNormalization", "Cast",
    "CastLike", "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape", "Conv",
    "ConvTranspose", "Cos", "DepthToSpace", "DequantizeLinear", "Div", "Dropout", "Einsum", "Elu",
    "Equal", "Erf", "Exp", "Expand", "Flatten", "Floor", "Gather", "GatherND", "Gelu", "Gemm",
    "GlobalAveragePool", "GlobalMaxPool", "Greater", "GreaterOrEqual", "HardSigmoid", "HardSwish",
    "Identity", "InstanceNormalization", "IsInf", "IsNaN", "LRN", "LayerNormalization",
    "LeakyRelu", "Less", "LessOrEqual", "Log", "LogSoftmax", "MatMul", "Max", "MaxPool", "Mean",
    "Min", "Mod", "Mul", "Neg", "Not", "Or", "PRelu", "Pad", "Pow", "QuantizeLinear", "Range",
    "Reciprocal", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
    "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare", "Relu", "Reshape",
    "Resize", "Round", "Selu", "Shape", "Sigmoid", "Sign", "Sin", "Slice", "Softmax", "Softplus",
    "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tanh",
    "ThresholdedRelu", "Tile", "Transpose", "Unsqueeze", "Where", "Xor",
)


OPSET = 21  # the importer converts every model to this opset (compiler/onnx_import.py)


class OnnxOp(IRDLOperation):
    """Base of every generated `onnx.<OpType>` op: variadic inputs and outputs, ONNX
    attributes as the op's attributes."""

    inputs = var_operand_def()
    outputs = var_result_def()
    assembly_format = "`(` $inputs `)` attr-dict `:` functional-type($inputs, $outputs)"

    def __init__(
        self,
        inputs: Sequence[SSAValue],
        result_types: Sequence[Attribute],
        attributes: dict[str, Attribute] | None = None,
    ):
        super().__init__(operands=[inputs], result_types=[result_types], attributes=attributes)

    @property
    def op_type(self) -> str:
        return self.name.removeprefix("onnx.")

    def verify_(self) -> None:
        schema = onnx.defs.get_schema(self.op_type, OPSET)
        n_in, n_out = len(self.inputs), len(self.outputs)
        if not schema.min_input <= n_in <= schema.max_input:
            raise VerifyException(f"{self.name} takes {_count(schema.min_input, schema.max_input, 'input')}, got {n_in}")
        if not schema.min_output <= n_out <= schema.max_output:
            raise VerifyException(f"{self.name} has {_count(schema.min_output, schema.max_output, 'output')}, got {n_out}")
        for key, value in self.attributes.items():
            if "." in key:
                continue
            if key not in schema.attributes:
                raise VerifyException(f"{self.name} has no attribute '{key}'")
            kind = _ATTRIBUTE_KINDS.get(schema.attributes[key].type)
            if kind is not None and not isinstance(value, kind[0]):
                raise VerifyException(f"{self.name} attribute '{key}' must be {kind[1]}, got {value}")
        for key, attr in schema.attributes.items():
            if attr.required and key not in self.attributes:
                raise VerifyException(f"{self.name} requires attribute '{key}'")

    def attr(self, key: str, default: Any = None) -> Any:
        """The ONNX attribute `key` as a Python value (int, float, str, list, ndarray)."""
        if key not in self.attributes:
            return default
        return attribute_value(self.attributes[key])


def _count(low: int, high: int, noun: str) -> str:
    if low == high:
        return f"{low} {noun}{'s' if low != 1 else ''}"
    if high >= 2**31 - 1:
        return f"at least {low} {noun}{'s' if low != 1 else ''}"
    return f"{low} to {high} {noun}s"


_A = onnx.defs.OpSchema.AttrType
_ATTRIBUTE_KINDS: dict[Any, tuple[type | tuple[type, ...], str]] = {
    _A.INT: (IntegerAttr, "an integer"),
    _A.FLOAT: (FloatAttr, "a float"),
    _A.STRING: (StringAttr, "a string"),
    _A.INTS: (DenseArrayBase, "array<i64: ...>"),
    _A.FLOATS: (DenseArrayBase, "array<f32: ...>"),
    _A.STRINGS: (ArrayAttr, "a list of strings"),
    _A.TENSOR: (DenseIntOrFPElementsAttr, "a dense<...> tensor"),
}


def attribute_value(attr: Attribute) -> Any:
    """Python value of an ONNX attribute as stored on an op."""
    if isinstance(attr, IntegerAttr):
        return attr.value.data
    if isinstance(attr, FloatAttr):
        return attr.value.data
    if isinstance(attr, StringAttr):
        return attr.data
    if isinstance(attr, DenseArrayBase):
        return list(attr.get_values())
    if isinstance(attr, ArrayAttr):
        return [attribute_value(a) for a in attr.data]
    if isinstance(attr, DenseIntOrFPElementsAttr):
        return dense_to_numpy(attr)
    raise TypeError(f"no Python value for attribute {attr}")


def dense_to_numpy(attr: DenseIntOrFPElementsAttr) -> np.ndarray:
    from spaq.compiler.types import numpy_dtype

    ty = attr.get_type()
    assert isinstance(ty, TensorType)
    shape = tuple(ty.get_shape())
    dtype = numpy_dtype(ty.get_element_type())
    return np.frombuffer(attr.data.data, dtype=dtype).reshape(shape).copy()


def _make_op(op_type: str) -> type[OnnxOp]:
    cls = type(op_type + "Op", (OnnxOp,), {"name": f"onnx.{op_type}", "__doc__": f"ONNX `{op_type}` (see onnx.ai/onnx/operators)."})
    return irdl_op_definition(cls)


OPS: dict[str, type[OnnxOp]] = {t: _make_op(t) for t in SUPPORTED_OPS}


@irdl_op_definition
class InitializerOp(IRDLOperation):
    """A weight, by name in the WeightStore; small tests may give the value inline.

    ```mlir
    %w = onnx.Initializer "fc1.weight" : tensor<32x64xf32>
    %b = onnx.Initializer "fc1.bias" = dense<0.5> : tensor<32xf32> : tensor<32xf32>
    ```
    The result type may carry a sparse encoding or a quantized element type; the stored
    array then holds the logical values (dense, with zeros where pruned).
    """

    name = "onnx.Initializer"
    weight_name = prop_def(StringAttr)
    value = opt_prop_def(DenseIntOrFPElementsAttr)
    output = result_def(TensorType)
    traits = traits_def(Pure())
    assembly_format = "$weight_name (`=` $value^)? attr-dict `:` type($output)"

    def __init__(self, weight_name: str, result_type: TensorType,
                 value: DenseIntOrFPElementsAttr | None = None):
        super().__init__(
            properties={"weight_name": StringAttr(weight_name), "value": value},
            result_types=[result_type],
        )
        self.output.name_hint = ssa_name_hint(weight_name)

    def verify_(self) -> None:
        if self.value is not None and tuple(self.value.get_type().get_shape()) != tuple(
            self.output.type.get_shape()
        ):
            raise VerifyException(f"inline value of '{self.weight_name.data}' has the wrong shape")


@irdl_op_definition
class NoValueOp(IRDLOperation):
    """An omitted optional ONNX input.

    ```mlir
    %none = onnx.NoValue : none
    %y = onnx.Clip(%x, %none, %max) : (tensor<4xf32>, none, tensor<f32>) -> tensor<4xf32>
    ```
    """

    name = "onnx.NoValue"
    output = result_def(NoneType)
    traits = traits_def(NoMemoryEffect())
    assembly_format = "attr-dict `:` type($output)"

    def __init__(self):
        super().__init__(result_types=[NoneType()])


def ssa_name_hint(name: str) -> str | None:
    """An SSA name for an ONNX tensor name (`%conv1.weight`), or None if none fits."""
    hint = "".join(c if c.isalnum() or c in "._" else "_" for c in name)
    return hint if hint and not hint[0].isdigit() else None


def make_onnx_dialect() -> Dialect:
    """A fresh `onnx` dialect with its own WeightStore (one per Context)."""
    return Dialect("onnx", [*OPS.values(), InitializerOp, NoValueOp], [], [WeightStore()])
