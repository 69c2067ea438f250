"""Per-run plug-in point for extra collectors (e.g. ``zcrxprof.perf``'s ``record --perf/--profile``).

A plug-in is a module listed in ``COLLECTOR_MODULES`` exposing two functions:

``add_arguments(parser)``
    add its own ``record`` flags (argparse).
``make_collectors(args) -> list[RunCollector]``
    the collectors to use for this recording given the parsed flags (empty list when disabled);
    raise ``UsageError`` for impossible combinations.

A ``RunCollector`` is any object with ``name`` and the three methods of the protocol below. ``record``
calls ``start(ctx)`` once per run as soon as the load generator's receiving threads exist, then
``stop(ctx)`` once the load generator exited (on every path, also after an interruption), and
``close()`` once at the end of the recording. ``stop`` returns rows for dataset tables (table name →
DataFrame with a ``run_id`` column); raising ``ZcrxprofError`` from ``start``/``stop`` puts one line
in the dataset's ``notes`` and the recording goes on. Collectors must leave no process behind.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import pandas as pd


# Plug-in modules, imported when `record` builds its parser.
COLLECTOR_MODULES = [
    "zcrxprof.perf.collector",
]


@dataclass
class RunContext:
    """What a collector knows about the run in progress."""

    run_id: int
    topology: str
    backend: str
    pid: int                                   # the receiving load generator process
    tids: dict[str, int] = field(default_factory=dict)   # thread name (rx0, worker1, …) → tid
    t0: float = 0.0                            # time.monotonic() when the load generator started
    duration_s: float = 0.0
    workdir: str = ""                          # scratch directory for this run (removed afterwards)
    metadata: dict = field(default_factory=dict)  # dataset metadata keys the collector may add to


class RunCollector(Protocol):
    """One extra collector, called around every run."""

    name: str

    def start(self, ctx: RunContext) -> None:
        """Begin collecting for the run (the load generator is running)."""

    def stop(self, ctx: RunContext) -> "dict[str, pd.DataFrame]":
        """End collecting for the run; rows per dataset table."""

    def close(self) -> None:
        """End of the recording: release everything."""


def plugin_modules() -> list:
    """The plug-in modules of COLLECTOR_MODULES, imported."""
    return [importlib.import_module(name) for name in COLLECTOR_MODULES]
