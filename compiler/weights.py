"""The WeightStore: a compilation's weights, held out of line and referenced by name.

IR never carries weight data (except small inline values in lit tests):

    %w = onnx.Initializer "conv1.weight" : tensor<8x1x3x3xf32>

`weights_of(ctx)` returns the store of a Context. It lives on the `onnx` dialect object,
which `dialects.onnx.make_onnx_dialect` builds fresh for every Context, so two
compilations in one process never share weights.
"""

from __future__ import annotations

import numpy as np
from xdsl.context import Context
from xdsl.dialect_interfaces import DialectInterface

from spaq.compiler.errors import SpaqError


class WeightStore(DialectInterface):
    """name -> numpy array. Arrays are treated as immutable: passes that change a weight
    store the result under a new name (`derive`) instead of editing in place."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._arrays

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._arrays[name]
        except KeyError:
            raise SpaqError(f"weight '{name}' is not in the weight store (printed IR carries no weights: "
                            "run the passes that derive it in the same invocation)") from None

    def __len__(self) -> int:
        return len(self._arrays)

    def clear(self) -> None:
        self._arrays.clear()

    def names(self) -> list[str]:
        return list(self._arrays)

    def set(self, name: str, array: np.ndarray) -> str:
        array.flags.writeable = False
        self._arrays[name] = array
        return name

    def derive(self, base: str, suffix: str, array: np.ndarray) -> str:
        """Store `array` under a fresh name `base.suffix` (numbered if taken) and return it."""
        name, i = f"{base}.{suffix}", 1
        while name in self._arrays:
            i += 1
            name = f"{base}.{suffix}{i}"
        return self.set(name, array)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())


def weights_of(ctx: Context) -> WeightStore:
    """The WeightStore of `ctx` (loads the onnx dialect if needed)."""
    store = ctx.get_dialect("onnx").get_interface(WeightStore)
    if store is None:
        raise RuntimeError("the onnx dialect of this context has no WeightStore")
    return store
