"""The error type of spaq: a message for a person, naming what is wrong."""


class SpaqError(Exception):
    """Bad input or an impossible request: the drivers print the message on one line
    and exit non-zero (a traceback only with --debug)."""
