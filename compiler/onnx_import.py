"""ONNX → `onnx` dialect.

    module = import_onnx("model.onnx", ctx, shapes={"input": [1, 1, 8, 8]})

The graph becomes `func.func @main`; every node becomes `onnx.<OpType>` with its ONNX
attributes; initializers and Constant nodes go to the context's WeightStore and appear
as `onnx.Initializer "name"`. Intermediate types come from `onnx.shape_inference`.
Symbolic input dimensions must be fixed by `shapes` (one error naming the input if not).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.version_converter
from onnx import numpy_helper
from onnx.external_data_helper import load_external_data_for_model
from xdsl.context import Context
from xdsl.dialects.builtin import (
    ArrayAttr,
    DenseArrayBase,
    DenseIntOrFPElementsAttr,
    DictionaryAttr,
    FloatAttr,
    IntegerAttr,
    ModuleOp,
    StringAttr,
    TensorType,
    f32,
    i64,
)
from xdsl.dialects.func import FuncOp, ReturnOp
from xdsl.ir import Attribute, Block, Region, SSAValue

from spaq.compiler.errors import SpaqError
from spaq.compiler.mapped_weights import LARGE, load_mapped
from spaq.compiler.types import UnsupportedType, element_type_from_onnx
from spaq.compiler.weights import weights_of
from spaq.dialects import onnx as onnx_d


def load_model(path: str | Path) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model without its large initializers, and those as arrays over the mapped file
    (`mapped_weights`): the weights are read once, when a pass or the emitter needs them."""
    path = Path(path)
    if not path.is_file():
        raise SpaqError(f"{path}: no such file")
    try:
        model, weights = load_mapped(path)
        if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
            load_external_data_for_model(model, str(path.parent))  # the formats numpy cannot view
    except SpaqError:
        raise
    except Exception as e:  # a file protobuf cannot parse, a bad external reference
        raise SpaqError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    return model, weights


def import_onnx(path: str | Path, ctx: Context, shapes: dict[str, list[int]] | None = None) -> ModuleOp:
    model, weights = load_model(path)
    return _import_stripped(model, weights, ctx, shapes)


def import_onnx_bytes(data: bytes, ctx: Context, shapes: dict[str, list[int]] | None = None) -> ModuleOp:
    try:
        model = onnx.load_from_string(data)
    except Exception as e:
        raise SpaqError(f"input is not an ONNX model ({type(e).__name__})") from None
    return _import_owned(model, ctx, shapes)


CANONICAL_OPSET = onnx_d.OPSET
"""Every model is converted to this opset on import (onnx's version converter), so the
dialect, the evaluator and the lowering implement one version of each operator."""


def canonical_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if version is None:
        raise SpaqError("the model imports no ONNX operator set")
    if version == CANONICAL_OPSET:
        return model
    try:
        return onnx.version_converter.convert_version(model, CANONICAL_OPSET)
    except Exception as e:
        if version > CANONICAL_OPSET and _same_semantics(model, version):
            return _relabel_opset(model)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SpaqError(f"cannot convert the model from opset {version} to {CANONICAL_OPSET}: {first}") from None


def _same_semantics(model: onnx.ModelProto, version: int) -> bool:
    """A newer-opset model whose nodes all mean what they meant at opset 21: each
    operator kept its arity, and every attribute a node sets exists at opset 21 (the
    newer versions only added element types, which import checks anyway, or attributes
    the node leaves at their default)."""
    for node in model.graph.node:
        try:
            new = onnx.defs.get_schema(node.op_type, version, node.domain)
            old = onnx.defs.get_schema(node.op_type, CANONICAL_OPSET, node.domain)
        except onnx.defs.SchemaError:
            return False
        if any(a.name not in old.attributes for a in node.attribute) or \
                (new.min_input, new.max_input, new.min_output, new.max_output) != \
                (old.min_input, old.max_input, old.min_output, old.max_output):
            return False
    return True


def _relabel_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            o.version = CANONICAL_OPSET
    return model


def import_model(model: onnx.ModelProto, ctx: Context, shapes: dict[str, list[int]] | None = None) -> ModuleOp:
    """Import `model` (left unchanged)."""
    return _import_owned(onnx.ModelProto.FromString(model.SerializeToString()), ctx, shapes)


def _take_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Move the large initializers (>= LARGE elements) out of a model already in memory
    before any ONNX tool copies it (they become typed graph inputs, so shape inference
    still knows them), freeing each protobuf tensor as it is read."""
    taken: dict[str, np.ndarray] = {}
    keep = []
    listed = {i.name for i in model.graph.input}
    for tensor in model.graph.initializer:
        if int(np.prod(tensor.dims)) < LARGE or tensor.data_location == onnx.TensorProto.EXTERNAL:
            keep.append(tensor)
            continue
        taken[tensor.name] = numpy_helper.to_array(tensor)
        tensor.ClearField("raw_data")  # free the protobuf copy before reading the next one
        if tensor.name not in listed:  # IR version 3 lists initializers as inputs already
            model.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return taken


def _import_owned(model: onnx.ModelProto, ctx: Context, shapes: dict[str, list[int]] | None) -> ModuleOp:
    return _import_stripped(model, _take_weights(model), ctx, shapes)


def _import_stripped(model: onnx.ModelProto, weights: dict[str, np.ndarray], ctx: Context,
                     shapes: dict[str, list[int]] | None) -> ModuleOp:
    model = canonical_opset(_fix_input_shapes(model, shapes or {}, set(weights)))
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        pool = any(f"(op_type:{t})" in first for t in ("AveragePool", "MaxPool", "LpPool"))
        if not (pool and "Inferred shape and existing shape differ" in first):
            raise SpaqError(f"ONNX shape inference failed: {first}") from None
        # A ceil_mode pool whose last window would start on the padding: opset 22 (and the
        # reference) drop that window, opset 21's inference keeps it. Keep the declared shape.
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    if _unknown_shapes(model):
        model = _open_shapes_by_running(model, weights)
    return _GraphImporter(ctx, model.graph, weights).run()


def _open_shapes_by_running(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Compute the first open shapes (usually one Expand or Reshape of a mask) and let
    shape inference take it from there; if inference then disagrees, compute them all."""
    before = model
    try:
        while _unknown_shapes(model):
            model = _shapes_by_running(model, weights, _frontier(model))
            model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
        return model
    except Exception:
        return _shapes_by_running(before, weights, _unknown_shapes(before))


def _static(t: onnx.TypeProto) -> bool:
    tt = t.tensor_type
    return t.HasField("tensor_type") and tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim)


def _unknown_shapes(model: onnx.ModelProto) -> list[str]:
    known = {v.name for v in [*model.graph.value_info, *model.graph.output] if _static(v.type)}
    known |= {i.name for i in model.graph.initializer}
    return [o for n in model.graph.node for o in n.output if o and o not in known]


def _shapes_by_running(model: onnx.ModelProto, weights: dict[str, np.ndarray], missing: list[str]) -> onnx.ModelProto:
    """Shapes ONNX's inference leaves open (computed by shape subgraphs, which spaq folds
    away) are static once the inputs are: run ONNX's reference implementation once on
    zeros and record every intermediate's type."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    if not missing:
        raise SpaqError(f"shapes of {', '.join(_unknown_shapes(model)[:3])}... are unknown")
    model = onnx.ModelProto.FromString(model.SerializeToString())
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    cone = _cone(probe.graph, set(missing))  # only the nodes the open shapes depend on
    del probe.graph.node[:]
    probe.graph.node.extend(cone)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in missing)
    used = {name for node in cone for name in node.input}
    inits = {i.name for i in model.graph.initializer}
    feeds = {name: array for name, array in weights.items() if name in used}
    for i in model.graph.input:
        if i.name in inits or i.name in weights:
            continue
        tt = i.type.tensor_type
        feeds[i.name] = np.zeros([d.dim_value for d in tt.shape.dim], helper.tensor_dtype_to_np_dtype(tt.elem_type))
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = ReferenceEvaluator(probe).run(missing, feeds)
    except Exception as e:
        raise SpaqError(f"shapes of {', '.join(missing[:3])}... are unknown and could not be computed: {e}") from None
    for name, value in zip(missing, values):
        value = np.asarray(value)
        elem = helper.np_dtype_to_tensor_dtype(value.dtype)
        model.graph.value_info.append(helper.make_tensor_value_info(name, elem, value.shape))
    return model


def _frontier(model: onnx.ModelProto) -> list[str]:
    """The open shapes whose node's inputs all have known shapes."""
    open_ = set(_unknown_shapes(model))
    return [o for n in model.graph.node if not open_ & set(n.input) for o in n.output if o in open_]


def _cone(graph: onnx.GraphProto, wanted: set[str]) -> list[onnx.NodeProto]:
    """The nodes (in graph order) that the values `wanted` depend on."""
    needed, chosen = set(wanted), []
    for node in reversed(graph.node):
        if needed & set(node.output):
            chosen.append(node)
            needed |= set(node.input)
    return chosen[::-1]


def _fix_input_shapes(model: onnx.ModelProto, shapes: dict[str, list[int]], weights: set[str]) -> onnx.ModelProto:
    inits = {i.name for i in model.graph.initializer} | weights
    inputs = {i.name: i for i in model.graph.input if i.name not in inits}
    for name in shapes:
        if name not in inputs:
            raise SpaqError(f"--shape names '{name}', which is not a graph input (inputs: {', '.join(inputs)})")
    for name, value in inputs.items():
        dims = value.type.tensor_type.shape.dim
        if name in shapes:
            given = shapes[name]
            if len(given) != len(dims):
                raise SpaqError(f"--shape {name}: rank {len(given)} given, the model's input has rank {len(dims)}")
            for d, size in zip(dims, given):
                if d.HasField("dim_value") and d.dim_value != size:
                    raise SpaqError(f"--shape {name}: dimension {d.dim_value} of the model cannot be {size}")
                d.ClearField("dim_param")
                d.dim_value = size
        for i, d in enumerate(dims):
            if not d.HasField("dim_value"):
                sym = d.dim_param or "?"
                raise SpaqError(
                    f"input '{name}' has symbolic dimension {i} ('{sym}'); fix it with --shape {name}=<d0>x<d1>..."
                )
    return model


def tensor_type(value_type: onnx.TypeProto, what: str) -> TensorType:
    if not value_type.HasField("tensor_type"):
        raise SpaqError(f"{what} is not a tensor")
    tt = value_type.tensor_type
    try:
        elem = element_type_from_onnx(tt.elem_type)
    except UnsupportedType as e:
        raise SpaqError(f"{what}: {e}") from None
    if not tt.HasField("shape") or any(not d.HasField("dim_value") for d in tt.shape.dim):
        raise SpaqError(f"{what} has an unknown shape after shape inference")
    return TensorType(elem, [d.dim_value for d in tt.shape.dim])


def type_of_array(array: np.ndarray) -> TensorType:
    dtype = onnx.helper.np_dtype_to_tensor_dtype(array.dtype)
    return TensorType(element_type_from_onnx(dtype), list(array.shape))


def convert_attribute(attr: onnx.AttributeProto, where: str) -> Attribute:
    A = onnx.AttributeProto
    if attr.type == A.INT:
        return IntegerAttr(attr.i, i64)
    if attr.type == A.FLOAT:
        return FloatAttr(attr.f, f32)
    if attr.type == A.STRING:
        return StringAttr(attr.s.decode())
    if attr.type == A.INTS:
        return DenseArrayBase.from_list(i64, list(attr.ints))
    if attr.type == A.FLOATS:
        return DenseArrayBase.from_list(f32, list(attr.floats))
    if attr.type == A.STRINGS:
        return ArrayAttr([StringAttr(s.decode()) for s in attr.strings])
    if attr.type == A.TENSOR:
        return dense_attr(numpy_helper.to_array(attr.t))
    raise SpaqError(f"{where}: attribute '{attr.name}' of kind {A.AttributeType.Name(attr.type)} is not supported")


def dense_attr(array: np.ndarray) -> DenseIntOrFPElementsAttr:
    from xdsl.dialects.builtin import BytesAttr

    array = np.ascontiguousarray(array)
    return DenseIntOrFPElementsAttr(type_of_array(array), BytesAttr(array.tobytes()))


_FLOAT_ATTRS = (onnx.AttributeProto.FLOAT, onnx.AttributeProto.FLOATS)


class _GraphImporter:
    def __init__(self, ctx: Context, graph: onnx.GraphProto, weights: dict[str, np.ndarray]):
        self.graph = graph
        self.weights = weights
        self.store = weights_of(ctx)
        self.types = {v.name: v.type for v in [*graph.value_info, *graph.output, *graph.input]}
        self.initializers = {t.name: t for t in graph.initializer}
        self.values: dict[str, SSAValue] = {}

    def run(self) -> ModuleOp:
        inputs = [i for i in self.graph.input if i.name not in self.initializers and i.name not in self.weights]
        arg_types = [tensor_type(i.type, f"graph input '{i.name}'") for i in inputs]
        out_types = [tensor_type(o.type, f"graph output '{o.name}'") for o in self.graph.output]
        block = Block(arg_types=arg_types)
        for value, i in zip(block.args, inputs):
            value.name_hint = onnx_d.ssa_name_hint(i.name)
            self.values[i.name] = value
        self.block = block
        for node in self.graph.node:
            self._import_node(node)
        results = []
        for o in self.graph.output:
            results.append(self._value(o.name, f"graph output '{o.name}'"))
        self._add(ReturnOp(*results))
        func = FuncOp("main", (arg_types, out_types), Region(block))
        func.arg_attrs = ArrayAttr([DictionaryAttr({"onnx.name": StringAttr(i.name)}) for i in inputs])
        func.res_attrs = ArrayAttr([DictionaryAttr({"onnx.name": StringAttr(o.name)}) for o in self.graph.output])
        return ModuleOp([func])

    def _add(self, op):
        self.block.add_op(op)
        return op

    def _value(self, name: str, user: str) -> SSAValue:
        if name in self.values:
            return self.values[name]
        if name in self.weights:
            return self._initializer(name, self.weights[name])
        if name in self.initializers:
            return self._initializer(name, numpy_helper.to_array(self.initializers[name]))
        raise SpaqError(f"{user} uses '{name}', which no node produces")

    def _initializer(self, name: str, array: np.ndarray) -> SSAValue:
        self.store.set(name, array)
        op = self._add(onnx_d.InitializerOp(name, type_of_array(array)))
        self.values[name] = op.output
        return op.output

    def _import_node(self, node: onnx.NodeProto) -> None:
        where = f"node '{node.name or node.output[0]}' ({node.op_type})"
        if node.domain not in ("", "ai.onnx"):
            raise SpaqError(f"{where}: operator domain '{node.domain}' is not supported")
        if node.op_type == "Constant":
            (attr,) = node.attribute  # value, value_float(s), value_int(s), ...
            if attr.type != onnx.AttributeProto.TENSOR:
                array = np.asarray(onnx.helper.get_attribute_value(attr))
                array = array.astype(np.float32 if attr.type in _FLOAT_ATTRS else np.int64)
            else:
                array = numpy_helper.to_array(attr.t)
            self._initializer(node.output[0], array)
            return
        op_cls = onnx_d.OPS.get(node.op_type)
        if op_cls is None:
            raise SpaqError(f"{where}: operator {node.op_type} is not supported")
        operands = []
        for name in node.input:
            if name == "":
                operands.append(self._add(onnx_d.NoValueOp()).output)
            else:
                operands.append(self._value(name, where))
        result_types = []
        for name in node.output:
            if name not in self.types:
                raise SpaqError(f"{where}: shape inference gives no type for output '{name}'")
            result_types.append(tensor_type(self.types[name], f"{where} output '{name}'"))
        attrs = {a.name: convert_attribute(a, where) for a in node.attribute}
        if node.name:
            attrs["onnx.node"] = StringAttr(node.name)
        op = self._add(op_cls(operands, result_types, attrs))
        for name, result in zip(node.output, op.outputs):
            result.name_hint = onnx_d.ssa_name_hint(name)
            self.values[name] = result
