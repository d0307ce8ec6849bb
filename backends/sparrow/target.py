"""Target descriptions: one TOML file per accelerator configuration, read by the passes
(tiling, allocation, instruction selection) and by the simulator and cost model alike.

    target = load_target("edge")            # a name from backends/sparrow/targets/
    target = load_target("my_npu.toml")     # or a path
    target.array.rows, target.scratchpad["act"], target.supports_nm(2, 4)

A file is validated on load: an unknown key, a missing key or an impossible value is one
`TargetError` naming the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from spaq.backends.sparrow.isa import Buffer

TARGETS_DIR = Path(__file__).parent / "targets"

GEMM_TYPES = ("f32", "f16", "i8")


class TargetError(ValueError):
    """A target file is missing, malformed, or names an impossible machine."""


@dataclass(frozen=True)
class Array:
    rows: int
    cols: int
    k_per_cycle: Mapping[str, int]


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

    def supports_nm(self, n: int, m: int) -> bool:
        return (n, m) in self.nm_patterns

    def capacity(self, buf: Buffer) -> int:
        return self.scratchpad[buf.name.lower()]

    def mac_energy(self, dtype: str) -> float:
        return self.energy_pj["mac"][dtype]


_SCHEMA: dict[str, Any] = {
    "name": str,
    "description": str,
    "clock_mhz": float,
    "array": {"rows": int, "cols": int, "k_per_cycle": {t: int for t in GEMM_TYPES}},
    "sparsity": {"nm": list},
    "scratchpad": {b.name.lower(): int for b in Buffer},
    "dram": {"bytes_per_cycle": float, "latency": int},
    "vector": {"lanes": int},
    "fixed_cycles": {"gemm": int, "spgemm": int, "vector": int, "dma": int},
    "energy_pj": {
        "dram_byte": float, "sram_byte": float, "mac": {t: float for t in GEMM_TYPES},
        "vector_element": float, "meta_decode": float,
    },
}


def _check(table: Any, schema: Any, where: str) -> None:
    if isinstance(schema, dict):
        if not isinstance(table, dict):
            raise TargetError(f"'{where}' must be a table")
        for key in table:
            if key not in schema:
                raise TargetError(f"unknown key '{where + '.' if where else ''}{key}'")
        for key, sub in schema.items():
            path = f"{where}.{key}" if where else key
            if key not in table:
                raise TargetError(f"missing key '{path}'")
            _check(table[key], sub, path)
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
    ro = MappingProxyType
    return Target(
        name=raw["name"],
        description=raw["description"],
        clock_mhz=float(raw["clock_mhz"]),
        array=Array(raw["array"]["rows"], raw["array"]["cols"], ro(raw["array"]["k_per_cycle"])),
        nm_patterns=_check_nm(raw["sparsity"]["nm"]),
        scratchpad=ro(raw["scratchpad"]),
        dram_bytes_per_cycle=float(raw["dram"]["bytes_per_cycle"]),
        dram_latency=raw["dram"]["latency"],
        vector_lanes=raw["vector"]["lanes"],
        fixed_cycles=ro(raw["fixed_cycles"]),
        energy_pj=ro(raw["energy_pj"]),
        path=path,
    )


def available_targets() -> list[str]:
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))
