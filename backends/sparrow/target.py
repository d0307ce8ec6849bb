"""Target descriptions: one TOML file per accelerator configuration, read by the passes
(tiling, allocation, instruction selection) and by the simulator and cost model alike.

    target = load_target("edge")            # a name from backends/sparrow/targets/
    target = load_target("my_npu.toml")     # or a path
    target.array.rows, target.scratchpad["act"], target.supports_nm(2, 4)

Optional keys (absent = the machine lacks the feature): `array.k_per_cycle` and
`energy_pj.mac` list only the GEMM modes the array has (`GEMM_TYPES`; every mode with a
throughput needs an energy); `array.nm_k_per_cycle` (SPGEMM's rate per mode, default
`k_per_cycle`; only modes the array has); `array.codebook_per_cycle`, `sparsity.block`,
`sparsity.{bitmask,csr,act_detect}_per_cycle`, `fixed_cycles.{bsgemm,usgemm}`,
`queues.token_depth` (tokens each dependency FIFO holds, default `TOKEN_DEPTH`).

A file is validated on load: an unknown key, a missing key or an impossible value is one
`TargetError` naming the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from spaq.backends.sparrow.isa import Buffer

TARGETS_DIR = Path(__file__).parent / "targets"

GEMM_TYPES = ("f32", "f16", "f8", "i8", "i4", "i2", "ternary", "binary")
"""The MAC-array modes (`cost.mac_type` picks one per GEMM): keys of `array.k_per_cycle`
and `energy_pj.mac`."""

TOKEN_DEPTH = 8
"""Default depth of each dependency-token FIFO between the queues (`[queues] token_depth`)."""

DECODERS = ("codebook", "bitmask", "csr", "act_detect")
"""Front-end decoders of the matrix unit, each with a throughput in elements per cycle
(`Target.decode_per_cycle`; docs/isa.md, "Cost model")."""


class TargetError(ValueError):
    """A target file is missing, malformed, or names an impossible machine."""


@dataclass(frozen=True)
class Array:
    rows: int
    cols: int
    k_per_cycle: Mapping[str, int]
    nm_k_per_cycle: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """Kept (stored) reduction elements per PE per cycle of SPGEMM, by mode; a mode not
    listed streams its kept values at `k_per_cycle` (cost.gemm_cycles)."""


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    clock_mhz: float
    array: Array
    nm_patterns: tuple[tuple[int, int], ...]
    scratchpad: Mapping[str, int]
    dram_bytes_per_cycle: float
    dram_latency: int
    vector_lanes: int
    fixed_cycles: Mapping[str, int]
    energy_pj: Mapping[str, Any]
    path: Path
    block_shapes: tuple[tuple[int, int], ...] = ()
    decode_per_cycle: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    token_depth: int = TOKEN_DEPTH
    """Tokens each of the four dependency FIFOs holds (docs/isa.md, "Queues and dependency tokens")."""

    def supports_nm(self, n: int, m: int) -> bool:
        return (n, m) in self.nm_patterns

    def supports_block(self, br: int, bc: int) -> bool:
        return (br, bc) in self.block_shapes

    def capacity(self, buf: Buffer) -> int:
        return self.scratchpad[buf.name.lower()]

    def mac_energy(self, dtype: str) -> float:
        return self.energy_pj["mac"][dtype]


@dataclass(frozen=True)
class _Optional:
    """A schema entry that may be absent."""

    schema: Any


@dataclass(frozen=True)
class _Subset:
    """A table with a non-empty subset of `keys`, each value of `type`."""

    keys: tuple[str, ...]
    type: type


_SCHEMA: dict[str, Any] = {
    "name": str,
    "description": str,
    "clock_mhz": float,
    "array": {"rows": int, "cols": int, "k_per_cycle": _Subset(GEMM_TYPES, int),
              "nm_k_per_cycle": _Optional(_Subset(GEMM_TYPES, int)), "codebook_per_cycle": _Optional(int)},
    "sparsity": {"nm": list, "block": _Optional(list), "bitmask_per_cycle": _Optional(int),
                 "csr_per_cycle": _Optional(int), "act_detect_per_cycle": _Optional(int)},
    "scratchpad": {b.name.lower(): int for b in Buffer},
    "dram": {"bytes_per_cycle": float, "latency": int},
    "vector": {"lanes": int},
    "queues": _Optional({"token_depth": _Optional(int)}),
    "fixed_cycles": {"gemm": int, "spgemm": int, "bsgemm": _Optional(int), "usgemm": _Optional(int),
                     "vector": int, "dma": int},
    "energy_pj": {
        "dram_byte": float, "sram_byte": float, "mac": _Subset(GEMM_TYPES, float),
        "vector_element": float, "meta_decode": float,
    },
}


def _check(table: Any, schema: Any, where: str) -> None:
    if isinstance(schema, _Subset):
        if not isinstance(table, dict) or not table:
            raise TargetError(f"'{where}' must be a non-empty table with keys from {', '.join(schema.keys)}")
        for key in table:
            if key not in schema.keys:
                raise TargetError(f"unknown key '{where}.{key}'")
        schema = {key: schema.type for key in table}
    if isinstance(schema, dict):
        if not isinstance(table, dict):
            raise TargetError(f"'{where}' must be a table")
        for key in table:
            if key not in schema:
                raise TargetError(f"unknown key '{where + '.' if where else ''}{key}'")
        for key, sub in schema.items():
            path = f"{where}.{key}" if where else key
            if key not in table:
                if isinstance(sub, _Optional):
                    continue
                raise TargetError(f"missing key '{path}'")
            _check(table[key], sub.schema if isinstance(sub, _Optional) else sub, path)
        return
    ok = isinstance(table, schema) or (schema is float and isinstance(table, int))
    if not ok or isinstance(table, bool):
        raise TargetError(f"'{where}' must be {schema.__name__}, got {table!r}")
    if schema in (int, float) and table < 0:
        raise TargetError(f"'{where}' must not be negative, got {table}")
    if schema is int and table == 0 and not where.startswith("fixed_cycles"):
        raise TargetError(f"'{where}' must be positive")


def _check_nm(patterns: list[Any]) -> tuple[tuple[int, int], ...]:
    out = []
    for p in patterns:
        if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) for x in p)):
            raise TargetError(f"'sparsity.nm' entries must be [N, M] pairs, got {p!r}")
        n, m = p
        if not 0 < n < m <= 16:
            raise TargetError(f"'sparsity.nm' pattern {n}:{m} is impossible (need 0 < N < M <= 16)")
        out.append((n, m))
    return tuple(out)


def _check_blocks(shapes: list[Any]) -> tuple[tuple[int, int], ...]:
    out = []
    for p in shapes:
        if not (isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in p)):
            raise TargetError(f"'sparsity.block' entries must be [rows, cols] pairs, got {p!r}")
        if not all(1 <= x <= 255 for x in p):
            raise TargetError(f"'sparsity.block' shape {p[0]}x{p[1]} is impossible (need 1..255 x 1..255)")
        out.append((p[0], p[1]))
    return tuple(out)


def _decoders(raw: dict[str, Any]) -> dict[str, int]:
    sp = raw["sparsity"]
    rates = {"codebook": raw["array"].get("codebook_per_cycle"), "bitmask": sp.get("bitmask_per_cycle"),
             "csr": sp.get("csr_per_cycle"), "act_detect": sp.get("act_detect_per_cycle")}
    return {k: v for k, v in rates.items() if v is not None}


def load_target(name_or_path: str | Path) -> Target:
    """Load and validate a target by name (`edge`) or by path to a .toml file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = TARGETS_DIR / f"{name_or_path}.toml"
        if not path.exists():
            known = ", ".join(available_targets())
            raise TargetError(f"unknown target '{name_or_path}' (known: {known})")
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise TargetError(f"target file '{path}' does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise TargetError(f"target file '{path}' is not valid TOML: {e}") from None
    _check(raw, _SCHEMA, "")
    for mode in raw["array"]["k_per_cycle"]:
        if mode not in raw["energy_pj"]["mac"]:
            raise TargetError(f"missing key 'energy_pj.mac.{mode}' (the array has a {mode} GEMM mode)")
    for mode in raw["array"].get("nm_k_per_cycle", {}):
        if mode not in raw["array"]["k_per_cycle"]:
            raise TargetError(f"'array.nm_k_per_cycle.{mode}': the array has no {mode} GEMM mode "
                              "(not in 'array.k_per_cycle')")
    ro = MappingProxyType
    return Target(
        name=raw["name"],
        description=raw["description"],
        clock_mhz=float(raw["clock_mhz"]),
        array=Array(raw["array"]["rows"], raw["array"]["cols"], ro(raw["array"]["k_per_cycle"]),
                    ro(raw["array"].get("nm_k_per_cycle", {}))),
        nm_patterns=_check_nm(raw["sparsity"]["nm"]),
        scratchpad=ro(raw["scratchpad"]),
        dram_bytes_per_cycle=float(raw["dram"]["bytes_per_cycle"]),
        dram_latency=raw["dram"]["latency"],
        vector_lanes=raw["vector"]["lanes"],
        fixed_cycles=ro(raw["fixed_cycles"]),
        energy_pj=ro(raw["energy_pj"]),
        path=path,
        block_shapes=_check_blocks(raw["sparsity"].get("block", [])),
        decode_per_cycle=ro(_decoders(raw)),
        token_depth=raw.get("queues", {}).get("token_depth", TOKEN_DEPTH),
    )


def available_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))
