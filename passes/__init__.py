"""spaq's passes, registered lazily like xDSL's own (`get_all_passes`).

Pass name = kebab-case of the file name: `prune-magnitude` lives in prune_magnitude.py.
"""

from collections.abc import Callable
from importlib import import_module

from xdsl.passes import ModulePass

PASS_NAMES = (
    "import-qdq",
    "onnx-canonicalize",
    "choose-compression",
    "prune-magnitude",
    "quantize",
    "tile-layers",
    "allocate-scratchpad",
    "lower-to-sparrow",
    "schedule-tokens",
)


def _loader(name: str) -> Callable[[], type[ModulePass]]:
    def load() -> type[ModulePass]:
        module = import_module(f"spaq.passes.{name.replace('-', '_')}")
        (cls,) = [
            v for v in vars(module).values()
            if isinstance(v, type) and issubclass(v, ModulePass) and getattr(v, "name", None) == name
        ]
        return cls

    return load


def get_spaq_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    return {name: _loader(name) for name in PASS_NAMES}
