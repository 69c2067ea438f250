"""Shared by the probes/NAME.py launchers: run `python -m zcrxprof.probes.NAME` from a checkout.

Re-executes with the project's venv python (which sees Debian's BCC) when started by another one.
"""
import importlib
import os
import sys
from pathlib import Path


def launch(name: str) -> None:
    """Run the probe tool ``name`` with this process's arguments and exit with its status."""
    top = Path(__file__).resolve().parents[1]
    venv_python = top / ".venv" / "bin" / "python"
    if venv_python.exists() and Path(sys.prefix).resolve() != (top / ".venv").resolve():
        os.execv(str(venv_python), [str(venv_python), sys.argv[0], *sys.argv[1:]])
    sys.path.insert(0, str(top))
    from zcrxprof.probes import TOOLS
    from zcrxprof.probes.cli import main

    module = importlib.import_module(TOOLS[name][0])
    sys.exit(main(getattr(module, TOOLS[name][1]), module.__doc__))
