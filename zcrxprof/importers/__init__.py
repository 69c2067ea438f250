"""Importers: other tools' results (iperf3, neper, kperf) turned into zcrxprof datasets, so that
``show``, ``compare``, the report and the notebooks put them beside zcrxprof's own runs.

One module per tool, each with ``parse(...) -> Imported`` (see ``common``); ``common.write_dataset``
writes the ``runs``, ``intervals`` (and, where the tool measures per-thread totals, ``threads``)
tables and names in ``metadata.json`` what the tool does not measure (``not_measured``) and which
tool measured the runs (``source``). Runs are filed as the ``copy`` backend: none of them is zero copy.
"""
from __future__ import annotations

from zcrxprof.importers.common import Imported, ImportedRun, describe, not_measured, tool_of, write_dataset

TOOLS = ("iperf3", "neper", "kperf")

__all__ = ["TOOLS", "Imported", "ImportedRun", "describe", "not_measured", "tool_of", "write_dataset"]
