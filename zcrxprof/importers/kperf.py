"""kperf results: the ``client --out-csv`` lines (with or without the two ``--out-hdr`` header
lines), one line per test, i.e. per run.

A line holds the sending side's fields, then the receiving side's, each: ``retrans, reord, ce,
rtt, rttvar, swnd, cwnd``, then ``p25…p9999`` (only with ``--time-stats 2``), then the CPU shares
``usr, sys, idle, sirq`` of the flow's CPU (only with one connection; a second group with
``--pin-off``), then the throughput in Gbit/s. The field count tells which groups are present.
The CSV does not record the connection count (beyond "one" or "several"), pacing (``rate_gbit_s``
is 0 and named not measured), test length, bytes or the receive mode (``--zerocopy-rx``, ``--devmem-rx``): runs are filed as the ``copy`` backend, never
as zero copy, and those columns stay empty.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from zcrxprof.importers.common import Imported, ImportedRun, fail, read_text

TCP_FIELDS = ("retrans", "reord", "ce", "rtt", "rttvar", "swnd", "cwnd")
LATENCY_FIELDS = ("p25", "p50", "p90", "p99", "p999", "p9999")
CPU_FIELDS = ("usr", "sys", "idle", "sirq")
# fields per side -> (latency percentiles present, CPU groups present); one connection iff CPU groups > 0
LAYOUTS = {8: (False, 0), 12: (False, 1), 16: (False, 2), 14: (True, 0), 18: (True, 1), 22: (True, 2)}
MEASURED_RUNS = {"connections", "work_ns_per_kib", "gbit_s"}


def side_fields(width: int) -> list[str]:
    """The field names of one side for a line of ``2 * width`` fields."""
    latency, cpu_groups = LAYOUTS[width]
    names = [*TCP_FIELDS, *(LATENCY_FIELDS if latency else ())]
    names += [f"{f}{'' if g == 0 else '_app'}" for g in range(cpu_groups) for f in CPU_FIELDS]
    return [*names, "gbit_s"]


def parse_line(path: str | Path, number: int, row: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(sending side, receiving side) of one CSV line; UsageError when it is no kperf line."""
    width = len(row) // 2
    if len(row) % 2 or width not in LAYOUTS:
        raise fail(path, f"line {number}: {len(row)} fields; kperf --out-csv lines have "
                         f"{', '.join(str(2 * w) for w in sorted(LAYOUTS))}")
    names = side_fields(width)
    try:
        values = [float(v) for v in row]
    except ValueError:
        raise fail(path, f"line {number}: not numbers (a kperf --out-csv line?)") from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise fail(path, f"line {number}: a negative or non-finite value")
    return dict(zip(names, values[:width])), dict(zip(names, values[width:]))


def parse(path: str | Path) -> Imported:
    """Every data line of a kperf ``--out-csv`` file → one run each."""
    text = read_text(path)
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    data = [(n, r) for n, r in enumerate(rows, 1) if r[0].strip() not in ("tcp", "retrans")]
    if not data:
        raise fail(path, "no result lines (empty, or headers only); not kperf --out-csv output")
    runs, notes = [], ["kperf's CSV does not record the receive mode (--zerocopy-rx, --devmem-rx): "
                       "filed as backend copy, not zero copy"]
    for number, row in data:
        tx, rx = parse_line(path, number, row)
        one = LAYOUTS[len(row) // 2][1] > 0
        runs.append(ImportedRun({"connections": 1 if one else -1, "work_ns_per_kib": 0.0,
                                 "rate_gbit_s": 0.0, "duration_s": float("nan"),
                                 "gbit_s": rx["gbit_s"]}))
        detail = f"run {len(runs) - 1}: sender {tx['gbit_s']:g} Gbit/s, {int(tx['retrans'])} retransmits"
        if one:
            detail += (f"; receiving flow's CPU: {rx['usr']:.0%} user, {rx['sys']:.0%} system, "
                       f"{rx['sirq']:.0%} softirq (the whole CPU, not a thread)")
        else:
            detail += "; several connections (kperf's CSV does not say how many)"
        notes.append(detail)
    return Imported("kperf", "", [str(path)], runs, MEASURED_RUNS, set(), notes=notes)
