"""The DRAM memory image: named arrays (symbols) at byte addresses in one byte buffer.

    image = MemoryImage.empty()
    image.add("x", DType.I8, (1, 3, 8, 8), "input")
    image.add("conv1.w", DType.I4, (8, 27), "values", data=w)
    image.save(out_dir)             # image.bin (raw bytes) + layout.json (symbols, layers)

Arrays are stored packed (packing.py): each row of the last axis starts on a byte boundary.
`kind` says what the bytes are, so DRAM traffic can be split into values, metadata and scales.
`layers` maps instruction index ranges to the source layers they implement (for reports).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from spaq.backends.sparrow.isa import DType
from spaq.backends.sparrow.packing import from_bytes, packed_nbytes, to_bytes

KINDS = ("input", "output", "activation", "values", "metadata", "scales")
WRITE_BLOCK = 1 << 20  # bytes of source rows packed at a time


@dataclass(frozen=True)
class Symbol:
    name: str
    addr: int
    dtype: DType
    shape: tuple[int, ...]
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"symbol '{self.name}': kind '{self.kind}' is not one of {', '.join(KINDS)}")
        if self.addr < 0 or any(d < 0 for d in self.shape):
            raise ValueError(f"symbol '{self.name}': negative address or dimension")

    @property
    def nbytes(self) -> int:
        return packed_nbytes(self.shape, self.dtype)

    @property
    def end(self) -> int:
        return self.addr + self.nbytes

    def to_json(self) -> dict:
        return {"name": self.name, "addr": self.addr, "dtype": self.dtype.name.lower(),
                "shape": list(self.shape), "kind": self.kind}

    @staticmethod
    def from_json(d: dict) -> Symbol:
        return Symbol(d["name"], int(d["addr"]), DType[d["dtype"].upper()], tuple(d["shape"]), d["kind"])


@dataclass
class MemoryImage:
    size: int
    symbols: dict[str, Symbol]
    data: np.ndarray
    layers: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.data, np.memmap):  # an image written straight to its file stays mapped
            self.data = np.asarray(self.data, np.uint8)
        if self.data.shape != (self.size,):
            raise ValueError(f"image data has {self.data.size} bytes, size says {self.size}")
        for s in self.symbols.values():
            if s.end > self.size:
                raise ValueError(f"symbol '{s.name}' [{s.addr}, {s.end}) lies outside the {self.size}-byte image")

    @staticmethod
    def empty() -> MemoryImage:
        return MemoryImage(0, {}, np.zeros(0, np.uint8))

    def add(self, name: str, dtype: DType, shape: tuple[int, ...], kind: str,
            data: np.ndarray | None = None, align: int = 64) -> Symbol:
        """Append a symbol at the next `align`-byte boundary, growing the image."""
        if name in self.symbols:
            raise ValueError(f"symbol '{name}' is already in the image")
        addr = -(-self.size // align) * align
        sym = Symbol(name, addr, dtype, tuple(int(d) for d in shape), kind)
        self.data = np.concatenate([self.data, np.zeros(sym.end - self.size, np.uint8)])
        self.size = sym.end
        self.symbols[name] = sym
        if data is not None:
            self.write(name, data)
        return sym

    def _symbol(self, name: str) -> Symbol:
        try:
            return self.symbols[name]
        except KeyError:
            raise KeyError(f"no symbol '{name}' in the memory image") from None

    def write(self, name: str, array: np.ndarray,
              after_block: Callable[[np.ndarray, np.ndarray], None] | None = None) -> None:
        """Pack `array` (of the symbol's shape) into the symbol's bytes, a block of rows of
        about WRITE_BLOCK bytes at a time (a large weight is never copied whole);
        `after_block(rows, packed)` sees each block of source rows and the image bytes it
        became, once packed."""
        s = self._symbol(name)
        array = np.asarray(array)
        if array.shape != s.shape:
            raise ValueError(f"symbol '{name}' has shape {s.shape}, got an array of shape {array.shape}")
        row = s.shape[-1] if s.shape else 1
        if array.size == 0:
            return  # an empty tensor has no bytes
        rows = array.reshape(-1, row)
        dst = self.data[s.addr : s.end].reshape(len(rows), s.dtype.nbytes(row))
        step = max(1, WRITE_BLOCK // max(rows.itemsize * row, 1))
        for r0 in range(0, len(rows), step):
            block = rows[r0 : r0 + step]
            try:
                dst[r0 : r0 + step] = to_bytes(block, s.dtype)
            except ValueError as e:
                raise ValueError(f"symbol '{name}': {e}") from None
            if after_block is not None:
                after_block(block, dst[r0 : r0 + step])

    def read(self, name: str) -> np.ndarray:
        """The symbol's array (value types as in packing.from_bytes)."""
        s = self._symbol(name)
        row = s.shape[-1] if s.shape else 1
        rows = self.data[s.addr : s.end].reshape(int(np.prod(s.shape[:-1])), s.dtype.nbytes(row))
        return from_bytes(rows, s.dtype, row).reshape(s.shape)

    def copy(self) -> MemoryImage:
        return replace(self, symbols=dict(self.symbols), data=self.data.copy(), layers=list(self.layers))

    def save(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if isinstance(self.data, np.memmap) and Path(self.data.filename).resolve() == (d / "image.bin").resolve():
            self.data.flush()  # written in place (`on_disk`)
        else:
            self.data.tofile(d / "image.bin")
        layout = {"size": self.size, "symbols": [s.to_json() for s in self.symbols.values()],
                  "layers": self.layers}
        (d / "layout.json").write_text(json.dumps(layout, indent=1) + "\n")

    @staticmethod
    def on_disk(path: str | Path, size: int, symbols: dict[str, Symbol], layers: list[dict]) -> MemoryImage:
        """An image whose bytes are the file `path` (mapped; created zero-filled): packing a
        large model into it never holds the whole image in memory."""
        data = np.memmap(path, np.uint8, "w+", shape=(size,)) if size else np.zeros(0, np.uint8)
        return MemoryImage(size, symbols, data, layers)

    @staticmethod
    def load(directory: str | Path) -> MemoryImage:
        d = Path(directory)
        layout = json.loads((d / "layout.json").read_text())
        symbols = {s["name"]: Symbol.from_json(s) for s in layout["symbols"]}
        data = np.fromfile(d / "image.bin", np.uint8)
        return MemoryImage(int(layout["size"]), symbols, data, list(layout.get("layers", [])))
