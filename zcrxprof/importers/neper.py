"""neper ``tcp_stream`` results: a directory holding its ``key=value`` outputs (standard output of
server and client) and the ``-A``/``--all-samples`` CSV files they name.

Each receiver output (``enable_read=1``) is one run: ``local_throughput`` (bit/s), flows, threads,
test length and measured length go to ``runs``; its samples file, when present, gives ``intervals``
(one row per neper thread per sampling round: bytes read by its flows, and the thread's own CPU time
and context switches, which neper takes with ``getrusage(RUSAGE_THREAD)``) and ``threads`` (their
totals). The pacing rate comes from the matching sender outputs (``enable_write=1``), one per receiver
(else ``rate_gbit_s`` is 0 and named not measured).
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from zcrxprof.errors import UsageError
from zcrxprof.importers.common import Imported, ImportedRun, fail, read_text

MEASURED_RUNS = {"connections", "work_ns_per_kib", "rate_gbit_s", "duration_s", "gbit_s", "loadgen_duration_s",
                 "bytes_received"}
MEASURED_INTERVALS = {"run_id", "t", "thread", "tid", "role", "ring", "interval_s", "bytes", "utime_ns", "stime_ns",
                      "nvcsw", "nivcsw"}
SAMPLE_COLUMNS = ["tid", "flow_id", "time", "bytes_read", "utime", "stime", "nvcsw", "nivcsw"]
KEY_VALUE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


def read_key_values(path: Path) -> dict[str, str] | None:
    """neper's ``key=value`` output as a dict; None when the file is not one (fewer than half its
    lines are ``key=value``, or no ``VERSION`` key)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    lines = [l for l in text.splitlines() if l.strip()]
    pairs = [m.groups() for m in map(KEY_VALUE.match, lines) if m]
    if not lines or len(pairs) * 2 < len(lines):
        return None
    out = dict(pairs)
    return out if "VERSION" in out else None


def _int(path, kv: dict, key: str) -> int:
    try:
        return int(kv[key])
    except (KeyError, ValueError):
        raise fail(path, f"{key}={kv.get(key, '(missing)')}: not neper tcp_stream output") from None


def _float(path, kv: dict, key: str) -> float:
    try:
        return float(kv[key])
    except (KeyError, ValueError):
        raise fail(path, f"{key}={kv.get(key, '(missing)')}: not neper tcp_stream output") from None


def read_samples(path: Path) -> list[dict[str, float]]:
    """The rows of a receiver's samples CSV (``tid,flow_id,time,bytes_read,…``); UsageError for
    an empty file, another header or a row that is not numbers."""
    text = read_text(path)
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise fail(path, "empty samples file (neper -A writes a header and one row per sample)")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in SAMPLE_COLUMNS if c not in header]
    if missing:
        raise fail(path, f"no {', '.join(missing)} column(s); not a neper receiver samples CSV")
    out = []
    for number, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if len(row) != len(header):
            raise fail(path, f"line {number}: {len(row)} fields, header has {len(header)} (truncated?)")
        try:
            out.append({c: float(row[header.index(c)]) for c in SAMPLE_COLUMNS})
        except ValueError:
            raise fail(path, f"line {number}: not numbers") from None
    if not out:
        raise fail(path, "no samples after the header")
    return out


def samples_to_rows(samples: list[dict[str, float]]) -> tuple[list[dict], list[dict]]:
    """(intervals, threads) rows from neper samples: per thread, sampling round k holds every
    flow's k-th sample; a round's bytes are its flows' cumulative bytes summed, and each interval
    is one round minus the previous (the thread's CPU time and switches likewise)."""
    by_thread: dict[int, dict[int, list[dict]]] = {}
    for s in sorted(samples, key=lambda s: s["time"]):
        by_thread.setdefault(int(s["tid"]), {}).setdefault(int(s["flow_id"]), []).append(s)
    t0 = min(s["time"] for s in samples)
    intervals, threads = [], []
    for tid, flows in sorted(by_thread.items()):
        rounds = []
        for k in range(min(len(f) for f in flows.values())):
            batch = [f[k] for f in flows.values()]
            last = max(batch, key=lambda s: s["time"])
            rounds.append({"t": last["time"] - t0, "bytes": sum(s["bytes_read"] for s in batch),
                           "utime": last["utime"], "stime": last["stime"], "nvcsw": last["nvcsw"],
                           "nivcsw": last["nivcsw"]})
        name = f"thread{tid}"
        for prev, cur in zip(rounds, rounds[1:]):
            intervals.append({"t": cur["t"], "thread": name, "tid": -1, "role": "rx", "ring": -1,
                              "interval_s": cur["t"] - prev["t"], "bytes": int(cur["bytes"] - prev["bytes"]),
                              "utime_ns": round((cur["utime"] - prev["utime"]) * 1e9),
                              "stime_ns": round((cur["stime"] - prev["stime"]) * 1e9),
                              "nvcsw": int(cur["nvcsw"] - prev["nvcsw"]), "nivcsw": int(cur["nivcsw"] - prev["nivcsw"])})
        final = rounds[-1]
        threads.append({"thread": name, "tid": -1, "role": "rx", "ring": -1, "bytes": int(final["bytes"]),
                        "utime_ns": round(final["utime"] * 1e9), "stime_ns": round(final["stime"] * 1e9),
                        "nvcsw": int(final["nvcsw"]), "nivcsw": int(final["nivcsw"])})
    return intervals, threads


def parse(directory: str | Path) -> Imported:
    """Every receiver output in ``directory`` → one run each (in start-time order)."""
    d = Path(directory)
    if not d.exists():
        raise UsageError(f"{d}: no such directory")
    if not d.is_dir():
        raise UsageError(f"{d}: not a directory (--neper takes the directory holding neper's outputs)")
    outputs = [(f, kv) for f in sorted(d.iterdir()) if f.is_file() and (kv := read_key_values(f))]
    receivers = sorted(((f, kv) for f, kv in outputs if kv.get("enable_read") == "1"),
                       key=lambda item: float(item[1].get("time_start") or 0))
    senders = sorted(((f, kv) for f, kv in outputs if kv.get("enable_write") == "1"),
                     key=lambda item: float(item[1].get("time_start") or 0))
    if not receivers:
        raise UsageError(f"{d}: no neper receiver output (a key=value file with enable_read=1) in it")
    runs, files, notes, versions = [], [], [], set()
    for i, (f, kv) in enumerate(receivers):
        files.append(str(f))
        versions.add(kv.get("VERSION", "?"))
        flows, threads_n = _int(f, kv, "num_flows"), _int(f, kv, "num_threads")
        pacing = float(senders[i][1].get("max_pacing_rate") or 0) * 8 / 1e9 if len(senders) == len(receivers) else 0.0
        run = {"connections": flows, "work_ns_per_kib": 0.0, "rate_gbit_s": pacing,
               "duration_s": _float(f, kv, "test_length"),
               "gbit_s": _float(f, kv, "local_throughput") / 1e9,
               "loadgen_duration_s": (_float(f, kv, "time_end") - _float(f, kv, "time_start")
                                      if "time_end" in kv else float("nan")),
               "bytes_received": -1}
        intervals: list[dict] = []
        threads: list[dict] = []
        name = Path(kv.get("all_samples") or "").name
        if name and (d / name).is_file():
            files.append(str(d / name))
            intervals, threads = samples_to_rows(read_samples(d / name))
            run["bytes_received"] = sum(t["bytes"] for t in threads)
        else:
            notes.append(f"{f.name}: no samples file{f' ({name})' if name else ''}: no intervals for this run")
        runs.append(ImportedRun(run, intervals, threads, receiving_threads=threads_n))
    measured = set(MEASURED_RUNS)
    if len(senders) != len(receivers):
        notes.append(f"{len(senders)} sender output(s) for {len(receivers)} receiver(s): pacing rate unknown "
                     "(rate_gbit_s 0)")
        measured.discard("rate_gbit_s")
    return Imported("neper", "/".join(sorted(versions)), files, runs, measured, MEASURED_INTERVALS, notes=notes)
