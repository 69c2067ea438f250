"""BCC tools for the kernel side of zcrx receive, one question each (bcc style).

``zcrxstat`` (zcrx receive functions), ``ringsched`` (scheduling of the receive threads),
``uringwork`` (io_uring task work, overflows, registrations), ``pagepool`` (page pool and NAPI).
Each is a :class:`zcrxprof.probes.tool.ProbeTool` subclass the collector can drive, and a command:
``python -m zcrxprof.probes.NAME`` or ``probes/NAME.py``. See docs/probes.md.
"""
from __future__ import annotations

import importlib

TOOLS = {
    "zcrxstat": ("zcrxprof.probes.zcrxstat", "ZcrxStat"),
    "ringsched": ("zcrxprof.probes.ringsched", "RingSched"),
    "uringwork": ("zcrxprof.probes.uringwork", "UringWork"),
    "pagepool": ("zcrxprof.probes.pagepool", "PagePool"),
}


def tool_class(name: str):
    """The ProbeTool subclass of a tool by name (``ringsched`` → RingSched)."""
    from zcrxprof.errors import UsageError
    if name not in TOOLS:
        raise UsageError(f"unknown probe tool {name!r} (have: {', '.join(TOOLS)})")
    module, cls = TOOLS[name]
    return getattr(importlib.import_module(module), cls)
