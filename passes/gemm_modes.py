"""How a compressed weight is stored and multiplied on Sparrow: the one table from a layer's
weight type to its GEMM instruction.

Not a pass: read by tile-layers / allocate-scratchpad (buffer sizes, through
`sparrow_layers`) and lower-to-sparrow (packing and instruction fields). The decision
(`spaq.compression`) becomes types — the weight's element type and sparse encoding — and
this module maps those types, and only those, to the machine (docs/isa.md, "The matrix
unit"):

| weight element type                  | `wfmt`   | `wdtype` (stored)      | `cdtype` |
|--------------------------------------|----------|------------------------|----------|
| f32, f16, bf16, f8E4M3FN, f8E5M2     | plain    | the type               |          |
| `!quant.q<si8/si4/si2:...>`          | plain    | i8 / i4 / i2           |          |
| `!quant.q<si1:...>` (binary)         | binary   | u1 (code = (w + 1)/2)  |          |
| `!quant.q<si2:..., ternary>`         | ternary  | i2                     |          |
| `!quant.q<siB:..., codebook=K>`      | codebook | u1/u2/u4/u8 (log2 K)   | iB       |

| weight encoding              | instruction | META                                   |
|------------------------------|-------------|----------------------------------------|
| none                         | `gemm`      |                                        |
| `#sparse.nm<N:M>`            | `spgemm`    | in-group indices [n, G·N] (u1/u2/u4)   |
| `#sparse.block<RxC>`         | `bsgemm`    | block ids [1, nb·IB] (u8)              |
| `#sparse.unstructured<fmt>`  | `usgemm`    | bitmask [n, k] (u1) or CSR bytes (u8)  |

Dense and N:M weights are packed once per layer and a tile is a rectangle of the packed
matrix (`sliced`); block and unstructured weights are compressed per (N, K) tile, each tile
its own values and metadata segments. A codebook table is one per layer, in PARAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.dialects.builtin import TensorType
from xdsl.ir import Attribute

from spaq.backends.sparrow import packing
from spaq.backends.sparrow.isa import DType, MetaFormat, WeightFormat
from spaq.compiler.errors import SpaqError
from spaq.compiler.types import isa_dtype
from spaq.dialects.quant import QuantType
from spaq.dialects.sparse import BlockAttr, MetadataFormat, NMAttr, UnstructuredAttr, encoding_of

MNEMONIC = {type(None): "gemm", NMAttr: "spgemm", BlockAttr: "bsgemm", UnstructuredAttr: "usgemm"}
CODEBOOK_INDEX = {2: DType.U1, 4: DType.U2, 16: DType.U4, 256: DType.U8}


@dataclass(frozen=True)
class GemmWeights:
    """A layer's weight on the machine: instruction, weight format and stored types."""

    mnemonic: str  # gemm / spgemm / bsgemm / usgemm
    wfmt: WeightFormat
    wdtype: DType  # the stored element type
    cdtype: DType = DType.F32  # codebook entry type (the weight values' type); unused otherwise
    entries: int = 0  # codebook table entries
    encoding: Attribute | None = None

    @property
    def sliced(self) -> bool:
        """Packed once per layer, tiles are rectangles of it (dense, N:M)."""
        return self.mnemonic in ("gemm", "spgemm")

    @property
    def value_dtype(self) -> DType:
        """The type of the weight values the array multiplies (the mode's operand)."""
        if self.wfmt is WeightFormat.CODEBOOK:
            return self.cdtype
        return DType.I2 if self.wfmt is not WeightFormat.PLAIN else self.wdtype

    def fields(self) -> dict[str, int]:
        """The instruction's weight-format fields (0 = the defaults, left out of the text)."""
        return dict(wfmt=self.wfmt, cdtype=self.cdtype if self.entries else 0)


def gemm_weights(weight: Attribute) -> GemmWeights:
    """The table above, for a weight tensor type."""
    assert isinstance(weight, TensorType)
    t, enc = weight.element_type, encoding_of(weight)
    mnemonic = MNEMONIC[type(enc)]
    if isinstance(t, QuantType):
        if t.is_binary:
            return GemmWeights(mnemonic, WeightFormat.BINARY, DType.U1, encoding=enc)
        if t.is_ternary:
            return GemmWeights(mnemonic, WeightFormat.TERNARY, DType.I2, encoding=enc)
        if t.codebook:
            return GemmWeights(mnemonic, WeightFormat.CODEBOOK, CODEBOOK_INDEX[t.codebook], isa_dtype(t),
                               t.codebook, enc)
    return GemmWeights(mnemonic, WeightFormat.PLAIN, isa_dtype(t), encoding=enc)


# ------------------------------------------------------------------------------ packing

@dataclass
class Packed:
    """One tile's (or a sliced layer's) stored weight: values and metadata as segments hold
    them, and the instruction fields that describe them."""

    values: np.ndarray  # stored elements, 2-D, of `GemmWeights.wdtype`
    meta: np.ndarray | None = None  # 2-D
    meta_dtype: DType | None = None
    fields: dict[str, int] = field(default_factory=dict)


def codebook_table(w: GemmWeights, values: np.ndarray) -> np.ndarray | None:
    """The layer's table: its distinct weight values ascending (with 0 for a sparse layer,
    whose unstored positions and fillers are zeros), padded with zeros to K entries."""
    if not w.entries:
        return None
    distinct = np.unique(np.concatenate([values.ravel(), [0] if w.encoding is not None else []]).astype(np.int64))
    if distinct.size > w.entries:
        raise ValueError(f"{distinct.size} distinct weight values do not fit a {w.entries}-entry codebook")
    table = np.zeros(w.entries, np.int64)
    table[: distinct.size] = distinct
    return table


def _stored(w: GemmWeights, values: np.ndarray, table: np.ndarray | None) -> np.ndarray:
    """Weight values -> stored elements (binary codes, codebook indices; else the values).
    A zero, which a binary weight cannot hold, becomes code 1: `pack` then checks that no
    stored position needed it."""
    if w.wfmt is WeightFormat.BINARY:
        return (values > 0).astype(np.uint8) | (values == 0).astype(np.uint8)
    if w.wfmt is WeightFormat.CODEBOOK:
        order = np.argsort(table, kind="stable")
        pos = np.clip(np.searchsorted(table[order], values.astype(np.int64)), 0, table.size - 1)
        return order[pos].astype(np.uint8)  # a value not in the table fails `pack`'s check
    return values


def _decoded(w: GemmWeights, stored: np.ndarray, table: np.ndarray | None) -> np.ndarray:
    if w.wfmt is WeightFormat.BINARY:
        return packing.binary_decode(stored)
    if w.wfmt is WeightFormat.CODEBOOK:
        return packing.codebook_decode(stored, table)
    return stored


def pack(w: GemmWeights, values: np.ndarray, table: np.ndarray | None = None) -> Packed:
    """Compress the [n, k] weight values (the whole layer when `sliced`, else one tile) into
    the stored form of `w`, and check that the stored form decodes to the same weights."""
    n, k = values.shape
    enc = w.encoding
    if enc is None:
        out = Packed(_stored(w, values, table))
        dense = _decoded(w, out.values, table)
    elif isinstance(enc, NMAttr):
        kept, idx = packing.nm_compress(values, enc.n, enc.m)
        out = Packed(_stored(w, kept, table), idx, packing.nm_index_dtype(enc.m), dict(nm_n=enc.n, nm_m=enc.m))
        dense = packing.nm_decompress(_decoded(w, out.values, table), idx, enc.n, enc.m, k, strict_padding=False)
    elif isinstance(enc, BlockAttr):
        ids, blocks = packing.block_compress(values, enc.rows, enc.cols)
        ib = packing.block_index_bytes(n, k, enc.rows, enc.cols)
        meta = packing.pack_indices(ids, ib).reshape(1, -1)
        out = Packed(_stored(w, blocks, table), meta, DType.U8, dict(br=enc.rows, bc=enc.cols, nb=int(ids.size)))
        dense = packing.block_decompress(ids, _decoded(w, out.values, table), enc.rows, enc.cols, n, k)
    else:
        assert isinstance(enc, UnstructuredAttr)
        if enc.format is MetadataFormat.BITMASK:
            mask, nz = packing.bitmask_compress(values)
            meta, md = mask, DType.U1
        else:
            row_ptr, col_idx, nz = packing.csr_compress(values)
            meta, md = packing.csr_meta_to_bytes(row_ptr, col_idx, k).reshape(1, -1), DType.U8
        out = Packed(_stored(w, nz, table).reshape(1, -1), meta, md,
                     dict(fmt=MetaFormat.BITMASK if md is DType.U1 else MetaFormat.CSR, nnz=int(nz.size)))
        return out  # only non-zeros are stored: nothing to check
    if not np.array_equal(np.asarray(dense, np.float64), np.asarray(values, np.float64)):
        r, c = np.argwhere(np.asarray(dense, np.float64) != np.asarray(values, np.float64))[0]
        raise ValueError(f"a {w.wfmt.name.lower()} weight cannot store the value {values[r, c]} at [{r}, {c}]")
    return out


# ------------------------------------------------------------------------------ sizes

def tile_nbytes(w: GemmWeights, nt: int, kt: int) -> tuple[int, int]:
    """(WGT bytes, META bytes) a [nt, kt] tile can need at most (block and unstructured: as
    if nothing were skipped)."""
    enc, wd = w.encoding, w.wdtype
    if enc is None:
        return wd.nbytes(kt) * nt, 0
    if isinstance(enc, NMAttr):
        cols = -(-kt // enc.m) * enc.n
        md = packing.nm_index_dtype(enc.m)
        return wd.nbytes(cols) * nt, md.nbytes(cols) * nt
    if isinstance(enc, BlockAttr):
        gr, gc = packing.block_grid(nt, kt, enc.rows, enc.cols)
        return gr * gc * enc.rows * wd.nbytes(enc.cols), gr * gc * packing.block_index_bytes(nt, kt, enc.rows, enc.cols)
    if enc.format is MetadataFormat.BITMASK:
        return wd.nbytes(nt * kt), DType.U1.nbytes(kt) * nt
    return wd.nbytes(nt * kt), packing.csr_meta_nbytes(nt, nt * kt, kt)


def check_target(w: GemmWeights, adtype: DType, target) -> str | None:
    """Why `target` cannot run this weight with `adtype` activations, or None."""
    from spaq.backends.sparrow.cost import mac_type

    try:
        kind = mac_type(adtype, w.wdtype, w.wfmt, w.cdtype)
    except ValueError as e:
        return str(e)
    if kind not in target.array.k_per_cycle:
        return f"target {target.name} has no {kind} GEMM mode"
    enc = w.encoding
    if isinstance(enc, NMAttr) and not target.supports_nm(enc.n, enc.m):
        return f"target {target.name} does not support {enc.n}:{enc.m} sparsity"
    if isinstance(enc, BlockAttr) and not target.supports_block(enc.rows, enc.cols):
        return f"target {target.name} does not support {enc.rows}x{enc.cols} block sparsity"
    decoders = target.decode_per_cycle
    if isinstance(enc, UnstructuredAttr) and enc.format.value not in decoders:
        return f"target {target.name} has no {enc.format.value} decoder for unstructured sparsity"
    if w.entries and "codebook" not in decoders:
        return f"target {target.name} has no codebook decoder"
    return None
