"""The docs name what the code has."""

from pathlib import Path

from spaq.passes import get_spaq_passes

DOCS = Path(__file__).parents[1] / "docs"


def test_every_pass_is_documented():
    text = (DOCS / "passes.md").read_text()
    for name in get_spaq_passes():
        assert f"## {name}\n" in text, name


def test_every_pass_has_a_lit_test():
    lit = Path(__file__).parents[1] / "lit_tests" / "passes"
    missing = [n for n in get_spaq_passes() if not (lit / f"{n}.mlir").exists()]
    assert not missing, missing
