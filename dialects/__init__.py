"""spaq's dialects, registered lazily like xDSL's own (`get_all_dialects`)."""

from collections.abc import Callable

from xdsl.ir import Dialect


def get_spaq_dialects() -> dict[str, Callable[[], Dialect]]:
    def onnx() -> Dialect:
        from spaq.dialects.onnx import make_onnx_dialect

        return make_onnx_dialect()

    def sparse() -> Dialect:
        from spaq.dialects.sparse import Sparse

        return Sparse

    def quant() -> Dialect:
        from spaq.dialects.quant import Quant

        return Quant

    def sparrow() -> Dialect:
        from spaq.dialects.sparrow import Sparrow

        return Sparrow

    return {"onnx": onnx, "sparse": sparse, "quant": quant, "sparrow": sparrow}
