"""The two kinds of failure every command reports as one line (never a traceback)."""
from __future__ import annotations


class ZcrxprofError(Exception):
    """A failure the user can act on; printed as one line, exit status 1."""

    exit_code = 1


class UsageError(ZcrxprofError):
    """Bad arguments or an impossible combination; printed as one line, exit status 2."""

    exit_code = 2
