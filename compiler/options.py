"""Parsing of command-line values shared by `spaq` and `spaq-opt`."""

from __future__ import annotations

from spaq.compiler.errors import SpaqError


def parse_shapes(specs: list[str]) -> dict[str, list[int]]:
    """`["input=1x1x8x8"]` -> `{"input": [1, 1, 8, 8]}`."""
    shapes: dict[str, list[int]] = {}
    for spec in specs:
        name, sep, dims = spec.rpartition("=")
        try:
            values = [int(d) for d in dims.split("x")]
        except ValueError:
            values = []
        if not sep or not name or not values or min(values) <= 0:
            raise SpaqError(f"--shape '{spec}': expected NAME=D0xD1... with positive dimensions")
        shapes[name] = values
    return shapes


def parse_nm(text: str) -> tuple[int, int] | None:
    """`"2:4"` -> (2, 4); `"none"`/`""` -> None."""
    if text in ("", "none", "dense"):
        return None
    n, sep, m = text.partition(":")
    if not sep or not n.isdigit() or not m.isdigit() or not 0 < int(n) < int(m):
        raise SpaqError(f"sparsity '{text}': expected N:M with 0 < N < M (e.g. 2:4) or 'none'")
    return int(n), int(m)
