"""A Context with every dialect spaq reads or writes (spaq's own and xDSL's builtin,
func and arith); each Context gets its own WeightStore."""

from xdsl.context import Context
from xdsl.dialects import get_all_dialects

from spaq.dialects import get_spaq_dialects

XDSL_DIALECTS = ("builtin", "func", "arith")


def make_context() -> Context:
    ctx = Context()
    register_dialects(ctx)
    return ctx


def register_dialects(ctx: Context) -> None:
    xdsl = get_all_dialects()
    for name in XDSL_DIALECTS:
        ctx.register_dialect(name, xdsl[name])
    for name, factory in get_spaq_dialects().items():
        ctx.register_dialect(name, factory)
    ctx.load_registered_dialect("builtin")
    ctx.load_registered_dialect("onnx")
