"""The error type of spaq: a message for a person, naming what is wrong."""

import sys
from collections.abc import Callable


class SpaqError(Exception):
    """Bad input or an impossible request: the drivers print the message on one line
    and exit non-zero (a traceback only with --debug)."""


def run_for_people(tool: str, body: Callable[[], object], debug: bool) -> int:
    """Run a driver's work: exit status 0, or one line `tool: error: ...` on stderr and 1
    (the traceback only when `debug`)."""
    try:
        body()
    except Exception as e:
        if debug:
            raise
        print(f"{tool}: error: {e}", file=sys.stderr)
        return 1
    return 0
