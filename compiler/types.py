"""Element-type conversions between ONNX, xDSL and numpy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from onnx import TensorProto
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float4E2M1FNType,
    Float8E4M3FNType,
    Float8E4M3FNUZType,
    Float8E5M2FNUZType,
    Float8E5M2Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    Signedness,
    i1,
)
from xdsl.ir import Attribute

_ONNX_TO_XDSL: dict[int, Attribute] = {
    TensorProto.FLOAT: Float32Type(),
    TensorProto.DOUBLE: Float64Type(),
    TensorProto.FLOAT16: Float16Type(),
    TensorProto.BFLOAT16: BFloat16Type(),
    TensorProto.INT8: IntegerType(8, Signedness.SIGNED),
    TensorProto.UINT8: IntegerType(8, Signedness.UNSIGNED),
    TensorProto.INT16: IntegerType(16),
    TensorProto.INT32: IntegerType(32),
    TensorProto.INT64: IntegerType(64),
    TensorProto.UINT16: IntegerType(16, Signedness.UNSIGNED),
    TensorProto.UINT32: IntegerType(32, Signedness.UNSIGNED),
    TensorProto.UINT64: IntegerType(64, Signedness.UNSIGNED),
    TensorProto.BOOL: i1,
    TensorProto.FLOAT8E4M3FN: Float8E4M3FNType(),
    TensorProto.FLOAT8E4M3FNUZ: Float8E4M3FNUZType(),
    TensorProto.FLOAT8E5M2: Float8E5M2Type(),
    TensorProto.FLOAT8E5M2FNUZ: Float8E5M2FNUZType(),
    TensorProto.INT4: IntegerType(4, Signedness.SIGNED),
    TensorProto.UINT4: IntegerType(4, Signedness.UNSIGNED),
    TensorProto.FLOAT4E2M1: Float4E2M1FNType(),
    TensorProto.INT2: IntegerType(2, Signedness.SIGNED),
    TensorProto.UINT2: IntegerType(2, Signedness.UNSIGNED),
}

_FLOAT8 = {
    Float8E4M3FNType: ml_dtypes.float8_e4m3fn, Float8E4M3FNUZType: ml_dtypes.float8_e4m3fnuz,
    Float8E5M2Type: ml_dtypes.float8_e5m2, Float8E5M2FNUZType: ml_dtypes.float8_e5m2fnuz,
    Float4E2M1FNType: ml_dtypes.float4_e2m1fn,
}


class UnsupportedType(ValueError):
    pass


def element_type_from_onnx(elem_type: int) -> Attribute:
    try:
        return _ONNX_TO_XDSL[elem_type]
    except KeyError:
        name = TensorProto.DataType.Name(elem_type)
        raise UnsupportedType(f"element type {name} is not supported") from None


def numpy_dtype(t: Attribute) -> np.dtype:
    """numpy dtype holding values of xDSL element type `t` (quantized types: their storage)."""
    if isinstance(t, Float32Type):
        return np.dtype(np.float32)
    if isinstance(t, Float64Type):
        return np.dtype(np.float64)
    if isinstance(t, Float16Type):
        return np.dtype(np.float16)
    if isinstance(t, BFloat16Type):
        return np.dtype(ml_dtypes.bfloat16)
    if type(t) in _FLOAT8:
        return np.dtype(_FLOAT8[type(t)])
    if isinstance(t, IntegerType):
        width = t.width.data
        if width == 1:
            return np.dtype(np.bool_)
        if width == 4:
            unsigned = t.signedness.data == Signedness.UNSIGNED
            return np.dtype(ml_dtypes.uint4 if unsigned else ml_dtypes.int4)
        unsigned = t.signedness.data == Signedness.UNSIGNED
        for bits, s, u in ((8, np.int8, np.uint8), (16, np.int16, np.uint16),
                           (32, np.int32, np.uint32), (64, np.int64, np.uint64)):
            if width <= bits:
                return np.dtype(u if unsigned else s)
    storage = getattr(t, "storage_type", None)
    if storage is not None:
        return numpy_dtype(storage)
    raise UnsupportedType(f"no numpy type for {t}")


def isa_dtype(t: Attribute) -> "DType":
    """The Sparrow element type that stores values of xDSL element type `t`
    (a `!quant.q` type: its storage type)."""
    from spaq.backends.sparrow.isa import DType

    storage = getattr(t, "storage_type", None)
    if storage is not None:
        t = storage
    if isinstance(t, Float32Type):
        return DType.F32
    if isinstance(t, Float16Type):
        return DType.F16
    if isinstance(t, BFloat16Type):
        return DType.BF16
    fp8 = {Float8E4M3FNType: DType.F8E4M3, Float8E5M2Type: DType.F8E5M2, Float8E4M3FNUZType: DType.F8E4M3FNUZ,
           Float8E5M2FNUZType: DType.F8E5M2FNUZ, Float4E2M1FNType: DType.F4E2M1}
    if type(t) in fp8:
        return fp8[type(t)]
    if isinstance(t, IntegerType):
        width, unsigned = t.width.data, t.signedness.data == Signedness.UNSIGNED
        table = {(8, False): DType.I8, (8, True): DType.U8, (4, False): DType.I4, (4, True): DType.U4,
                 (2, False): DType.I2, (2, True): DType.U2, (1, True): DType.U1, (32, False): DType.I32,
                 (16, False): DType.I16, (16, True): DType.U16, (32, True): DType.U32}
        if (width, unsigned) in table:
            return table[(width, unsigned)]
    raise UnsupportedType(f"Sparrow has no storage type for {t}")


def onnx_element_type(t: Attribute) -> int:
    """The ONNX TensorProto element type of xDSL element type `t` (inverse of
    `element_type_from_onnx`)."""
    for code, x in _ONNX_TO_XDSL.items():
        if x == t:
            return code
    raise UnsupportedType(f"no ONNX element type for {t}")
