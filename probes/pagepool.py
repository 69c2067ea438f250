#!/usr/bin/env python3
"""pagepool launcher: the same as `python -m zcrxprof.probes.pagepool` (see its --help).

Re-runs itself with the project's venv python (which sees Debian's BCC) when started by another one.
"""
import os
import sys
from pathlib import Path

top = Path(__file__).resolve().parents[1]
venv_python = top / ".venv" / "bin" / "python"
if venv_python.exists() and Path(sys.prefix).resolve() != (top / ".venv").resolve():
    os.execv(str(venv_python), [str(venv_python), *sys.argv])
sys.path.insert(0, str(top))

from zcrxprof.probes.tool import main  # noqa: E402
from zcrxprof.probes.pagepool import PagePool, __doc__ as DOC  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(PagePool, DOC))
