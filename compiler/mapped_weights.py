"""Large weights of an ONNX file, memory-mapped instead of parsed.

    model, weights = load_mapped("minilm.onnx")   # weights: name -> read-only numpy view
    ...
    release_pages(weights["emb"][:1000])           # its file pages may leave memory now

`onnx.load` reads the whole file and the protobuf parser keeps a second copy of every
initializer; converting them to numpy makes a third. Here the file is mapped once and its
protobuf walked at the wire level: each large initializer (inline `raw_data`, or in an
external data file) becomes a numpy array over the mapped bytes, and what protobuf parses
is the model without them — the initializers become typed graph inputs, as
`onnx_import._take_weights` does for models already in memory. Nothing is copied until a
pass or the emitter reads it; `release_pages` hands pages back once their bytes sit in the
memory image (a private read-only mapping: the kernel re-reads them if touched again).
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import onnx
from numpy.lib.array_utils import byte_bounds
from onnx import helper

from spaq.compiler.errors import SpaqError

LARGE = 1024
"""Initializers of at least this many elements are mapped; smaller ones stay in the proto."""

# Field numbers (onnx.proto) and protobuf wire types.
MODEL_GRAPH, GRAPH_INITIALIZER, GRAPH_INPUT, VALUE_INFO_NAME = 7, 5, 11, 1
T_DIMS, T_DATA_TYPE, T_NAME, T_RAW, T_EXTERNAL, T_LOCATION = 1, 2, 8, 9, 13, 14
VARINT, I64, LEN, I32 = 0, 1, 2, 5


def _varint(buf, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf, start: int, end: int):
    """(field number, wire type, value start, value end, field start) of each field in
    buf[start:end]; for VARINT the value is decoded into `value start`."""
    pos = start
    while pos < end:
        first = pos
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == VARINT:
            value, pos = _varint(buf, pos)
            yield field, wire, value, pos, first
        elif wire == LEN:
            n, pos = _varint(buf, pos)
            yield field, wire, pos, pos + n, first
            pos += n
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            yield field, wire, pos, pos + size, first
            pos += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if pos != end:
        raise ValueError("truncated protobuf message")


def _len_field(field: int, payload: bytes) -> bytes:
    return _encode_varint(field << 3 | LEN) + _encode_varint(len(payload)) + payload


class _Tensor:
    """What the wire walk learns of one TensorProto."""

    def __init__(self, buf, start: int, end: int):
        self.dims: list[int] = []
        self.data_type = 0
        self.name = ""
        self.raw: tuple[int, int] | None = None
        self.external: dict[str, str] = {}
        self.location = 0
        for field, wire, a, b, _ in _fields(buf, start, end):
            if field == T_DIMS:
                if wire == VARINT:
                    self.dims.append(a)
                else:  # packed
                    pos = a
                    while pos < b:
                        d, pos = _varint(buf, pos)
                        self.dims.append(d)
            elif field == T_DATA_TYPE:
                self.data_type = a
            elif field == T_NAME:
                self.name = bytes(buf[a:b]).decode()
            elif field == T_RAW:
                self.raw = (a, b)
            elif field == T_LOCATION:
                self.location = a
            elif field == T_EXTERNAL:
                entry = {k: bytes(buf[x:y]).decode() for k, _, x, y, _ in _fields(buf, a, b)}
                self.external[entry.get(1, "")] = entry.get(2, "")

    @property
    def count(self) -> int:
        return int(np.prod(self.dims, dtype=np.int64))

    def numpy_dtype(self) -> np.dtype | None:
        if self.data_type in (onnx.TensorProto.STRING, onnx.TensorProto.BFLOAT16) or self.data_type >= 17:
            return None  # strings, bfloat16 and the 8/4/2-bit formats keep onnx's own decoding
        return np.dtype(helper.tensor_dtype_to_np_dtype(self.data_type))


class _Maps:
    """Open read-only mappings, one per file."""

    def __init__(self) -> None:
        self.maps: dict[Path, mmap.mmap] = {}

    def get(self, path: Path) -> mmap.mmap:
        if path not in self.maps:
            with open(path, "rb") as f:
                self.maps[path] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if path.stat().st_size else b""
        return self.maps[path]


def _array(tensor: _Tensor, buf, directory: Path, maps: _Maps) -> np.ndarray | None:
    dtype = tensor.numpy_dtype()
    if dtype is None:
        return None
    if tensor.location == onnx.TensorProto.EXTERNAL:
        where = tensor.external.get("location", "")
        path = (directory / where).resolve()
        if not where or Path(where).is_absolute() or directory.resolve() not in path.parents:
            raise SpaqError(f"initializer '{tensor.name}': external data location '{where}' is not a file "
                            "beside the model")
        if not path.is_file():
            raise SpaqError(f"initializer '{tensor.name}': external data file '{where}' is missing")
        source = maps.get(path)
        offset = int(tensor.external.get("offset", 0))
        nbytes = int(tensor.external.get("length", tensor.count * dtype.itemsize))
    elif tensor.raw is not None and tensor.count >= LARGE:
        source, (offset, end) = buf, tensor.raw
        nbytes = end - offset
    else:
        return None
    if nbytes != tensor.count * dtype.itemsize or offset + nbytes > len(source):
        raise SpaqError(f"initializer '{tensor.name}': {nbytes} bytes of data for {tensor.count} "
                        f"{dtype.name} elements")
    return np.frombuffer(source, dtype, tensor.count, offset).reshape(tensor.dims)


def load_mapped(path: str | Path) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The model without its large initializers (typed graph inputs instead) and those
    initializers as arrays over the mapped file (or its external data files)."""
    path = Path(path)
    maps = _Maps()
    buf = maps.get(path)
    weights: dict[str, np.ndarray] = {}
    parts: list[bytes] = []
    for field, wire, a, b, first in _fields(buf, 0, len(buf)):
        if field != MODEL_GRAPH or wire != LEN:
            parts.append(bytes(buf[first:b]))
            continue
        graph: list[bytes] = []
        inputs: list[bytes] = []
        listed = {bytes(buf[x:y]).decode() for f, w, ga, gb, _ in _fields(buf, a, b) if f == GRAPH_INPUT and w == LEN
                  for k, _, x, y, _ in _fields(buf, ga, gb) if k == VALUE_INFO_NAME}  # IR 3 lists initializers
        for gfield, gwire, ga, gb, gfirst in _fields(buf, a, b):
            if gfield == GRAPH_INITIALIZER and gwire == LEN:
                tensor = _Tensor(buf, ga, gb)
                array = _array(tensor, buf, path.parent, maps)
                if array is not None:
                    array.flags.writeable = False
                    weights[tensor.name] = array
                    if tensor.name not in listed:
                        info = helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
                        inputs.append(_len_field(GRAPH_INPUT, info.SerializeToString()))
                    continue
            graph.append(bytes(buf[gfirst:gb]))
        parts.append(_len_field(MODEL_GRAPH, b"".join(graph + inputs)))
    model = onnx.ModelProto.FromString(b"".join(parts))
    return model, weights


def release_pages(array: np.ndarray) -> None:
    """Let the kernel drop the file pages wholly inside `array`'s bytes, if it views a
    mapping (else nothing): a read-only mapping re-reads them from the file, a shared
    writable one (`np.memmap`) from the page cache its writes went to, if touched again."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    if not isinstance(base, mmap.mmap) or not array.size:
        return
    start_of_map = np.frombuffer(base, np.uint8, 1).__array_interface__["data"][0]
    lo, hi = byte_bounds(array)
    page = mmap.PAGESIZE
    first = -(-(lo - start_of_map) // page) * page
    last = (hi - start_of_map) // page * page
    if last > first:
        base.madvise(mmap.MADV_DONTNEED, first, last - first)
