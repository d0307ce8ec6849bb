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


SPARSITY_FORMS = "none, N:M (e.g. 2:4), block-RxC (e.g. block-4x4), unstructured-bitmask or unstructured-csr"


def parse_sparsity(text: str) -> tuple[str, tuple] | None:
    """A sparsity option -> ("nm", (N, M)) / ("block", (R, C)) / ("unstructured", (format,)),
    or None for `none`:

        "2:4" -> ("nm", (2, 4));  "block-4x4" -> ("block", (4, 4));
        "unstructured-csr" (or "csr") -> ("unstructured", ("csr",))"""
    t = text.strip().lower()
    if t in ("", "none", "dense"):
        return None
    if ":" in t:
        return "nm", parse_nm(t)
    if t.startswith("block-"):
        r, sep, c = t[len("block-"):].partition("x")
        if sep and r.isdigit() and c.isdigit() and 0 < int(r) <= 255 and 0 < int(c) <= 255:
            return "block", (int(r), int(c))
    fmt = t.removeprefix("unstructured-")
    if fmt in ("bitmask", "csr"):
        return "unstructured", (fmt,)
    raise SpaqError(f"sparsity '{text}': expected {SPARSITY_FORMS}")


def parse_density(text: str | float) -> float:
    """A density in (0, 1], as a fraction ("0.25") or a percentage ("25%")."""
    s = str(text).strip()
    try:
        value = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise SpaqError(f"density '{text}': expected a fraction in (0, 1] (e.g. 0.25) or a percentage (25%)")
    return value
