"""`zcrxprof ARGS…` run in this process and answered as ``subprocess.run`` answers.

The offline tests of the commands that read datasets (report, export, show) call the CLI dozens of
times; a fresh interpreter each time spent more CPU importing pandas and matplotlib than the
command itself. ``zcrxprof.cli.main`` is what ``python -m zcrxprof`` runs, so the exit status,
stdout and stderr are the command's own; an exception that would have escaped as a traceback comes
back as one, status 1. The installed entry point itself is run by test_installed.py.
"""
from __future__ import annotations

import contextlib
import io
import subprocess
import traceback

from zcrxprof import cli


def zcrxprof(*args: str) -> subprocess.CompletedProcess:
    """Run ``zcrxprof ARGS…`` in-process: returncode, stdout and stderr as a child would give them."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli.main(list(args))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:           # what the interpreter would print before exiting with 1
            traceback.print_exc()
            rc = 1
    return subprocess.CompletedProcess(["zcrxprof", *args], rc, out.getvalue(), err.getvalue())
