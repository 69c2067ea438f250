"""iperf3 results: one ``-J`` document (iperf3 3.12 and later) or one ``--json-stream`` file (3.17+:
one ``{"event": ..., "data": ...}`` object per line) per run, client or server side.

What iperf3 measures lands in ``runs`` (receiver throughput and bytes from ``end.sum_received``,
bytes sent, streams, target bitrate, test length, start time, the kernel of the machine that wrote
the file when it received) and ``intervals`` (one row per stream per reporting interval, role ``rx``
where that side received, ``tx`` where it sent; omitted warm-up intervals are left out). iperf3's CPU
figures are per process, not per thread: they go to the metadata notes, not the ``threads`` table.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

from zcrxprof.errors import UsageError
from zcrxprof.importers.common import Imported, ImportedRun, fail, read_text

MEASURED_RUNS = {"kernel", "connections", "work_ns_per_kib", "rate_gbit_s", "duration_s", "sender", "started_at",
                 "bytes_sent", "bytes_received", "gbit_s", "loadgen_duration_s"}
MEASURED_INTERVALS = {"run_id", "t", "thread", "tid", "role", "ring", "interval_s", "bytes"}
FIRST_THREADED = (3, 16)    # iperf3 runs one thread per stream from this version on


def load_document(path: str | Path) -> dict[str, Any]:
    """The iperf3 result in ``path`` as one ``-J`` style object (``start``, ``intervals``, ``end``,
    maybe ``error``), from either format; a one-line UsageError for anything else."""
    text = read_text(path)
    if not text.strip():
        raise fail(path, "empty file, not iperf3 -J or --json-stream output")
    try:
        doc = json.loads(text)
    except ValueError as whole:
        doc = _from_stream(path, text, whole)
    if not isinstance(doc, dict):
        raise fail(path, f"a JSON {type(doc).__name__}, not iperf3 -J output")
    return doc


def _from_stream(path: str | Path, text: str, whole: ValueError) -> dict[str, Any]:
    """Fold ``--json-stream`` lines into one ``-J`` style object."""
    doc: dict[str, Any] = {"intervals": []}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            if number == 1:     # not a stream at all: report the whole-document error
                raise fail(path, f"not iperf3 -J or --json-stream output (JSON: {whole})") from None
            raise fail(path, f"line {number}: not JSON (truncated --json-stream output?)") from None
        if not isinstance(item, dict) or "event" not in item:
            raise fail(path, f"line {number}: no \"event\" key, not iperf3 --json-stream output")
        data = item.get("data")
        if item["event"] == "interval":
            doc["intervals"].append(data)
        elif item["event"] in ("start", "end"):
            doc[item["event"]] = data
        elif item["event"] == "error":
            doc["error"] = data
    return doc


def _section(path, doc: dict, key: str, kind: type):
    value = doc.get(key)
    if not isinstance(value, kind):
        raise fail(path, f"no {key!r} {'object' if kind is dict else 'list'}, not iperf3 -J output "
                         f"(keys: {', '.join(sorted(map(str, doc))) or 'none'})")
    return value


def _number(path, obj: dict, key: str, where: str) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(path, f"{where}.{key} is {json.dumps(value)[:40]}, not a number; not iperf3 -J output")
    return float(value)


def _version(start: dict) -> str:
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", str(start.get("version") or ""))
    return m.group(1) if m else ""


def _threads_per_stream(version: str) -> bool:
    parts = tuple(int(x) for x in version.split(".")[:2]) if version else (0, 0)
    return parts >= FIRST_THREADED


def _loopback(start: dict) -> bool:
    hosts = [c.get("remote_host") for c in start.get("connected") or [] if isinstance(c, dict)]
    hosts.append((start.get("connecting_to") or {}).get("host"))
    for host in hosts:
        if host == "localhost":
            return True
        try:
            if host and ipaddress.ip_address(str(host).split("%")[0]).is_loopback:
                return True
        except ValueError:
            continue
    return False


def parse_run(path: str | Path) -> tuple[ImportedRun, str, list[str]]:
    """One iperf3 result file → (run, iperf3 version, notes)."""
    doc = load_document(path)
    if "error" in doc and not isinstance(doc.get("end"), dict):
        start = doc.get("start") if isinstance(doc.get("start"), dict) else {}
        return (ImportedRun({"status": "failed", "error": str(doc["error"])[:500]}), _version(start),
                [f"{path}: iperf3 reported an error: {doc['error']}"])
    start = _section(path, doc, "start", dict)
    end = _section(path, doc, "end", dict)
    test = _section(path, start, "test_start", dict)
    if str(test.get("protocol", "TCP")).upper() != "TCP":
        raise UsageError(f"{path}: a {test.get('protocol')} test; only TCP results can be imported")
    received = _section(path, end, "sum_received", dict)
    sent = end.get("sum_sent") if isinstance(end.get("sum_sent"), dict) else {}
    version = _version(start)
    intervals, local_receives = [], False
    for k, interval in enumerate(_section(path, doc, "intervals", list)):
        streams = interval.get("streams") if isinstance(interval, dict) else None
        if not isinstance(streams, list):
            raise fail(path, f"intervals[{k}] has no streams list; not iperf3 -J output")
        for index, s in enumerate(streams):
            if not isinstance(s, dict):
                raise fail(path, f"intervals[{k}].streams[{index}] is not an object")
            if s.get("omitted"):
                continue
            receiving = not s.get("sender", True)
            local_receives |= receiving
            intervals.append({"t": _number(path, s, "end", "interval"), "thread": f"stream{index}", "tid": -1,
                              "role": "rx" if receiving else "tx", "ring": -1,
                              "interval_s": _number(path, s, "seconds", "interval"),
                              "bytes": int(_number(path, s, "bytes", "interval"))})
    loopback = _loopback(start)
    release = str(start.get("system_info") or "").split()
    started = (start.get("timestamp") or {}).get("timesecs")
    streams = int(_number(path, test, "num_streams", "start.test_start"))
    run = {"kernel": release[2] if len(release) > 2 and (local_receives or loopback) else "",
           "connections": streams, "work_ns_per_kib": 0.0,
           "rate_gbit_s": float(test.get("target_bitrate") or 0) / 1e9,
           "duration_s": float(test.get("duration") or 0) or float("nan"),
           "sender": "loopback" if loopback else "remote",
           "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc) if isinstance(started, (int, float)) else None,
           "bytes_sent": int(sent["bytes"]) if isinstance(sent.get("bytes"), (int, float)) else -1,
           "bytes_received": int(_number(path, received, "bytes", "end.sum_received")),
           "gbit_s": _number(path, received, "bits_per_second", "end.sum_received") / 1e9,
           "loadgen_duration_s": _number(path, received, "seconds", "end.sum_received")}
    notes = []
    cpu = end.get("cpu_utilization_percent")
    if isinstance(cpu, dict):
        side = "host" if local_receives else "remote"
        notes.append(f"{Path(path).name}: receiver process CPU {cpu.get(side + '_user', float('nan')):.1f}% user, "
                     f"{cpu.get(side + '_system', float('nan')):.1f}% system (iperf3 reports it per process, "
                     "not per thread)")
    threads = streams if _threads_per_stream(version) else 1
    return ImportedRun(run, intervals, [], receiving_threads=threads), version, notes


def parse(files: list[str | Path]) -> Imported:
    """Each file one run (repetitions in the order given)."""
    runs, versions, notes = [], [], []
    for f in files:
        run, version, more = parse_run(f)
        runs.append(run)
        versions.append(version)
        notes += more
    return Imported("iperf3", "/".join(dict.fromkeys(v for v in versions if v)) or "?", [str(f) for f in files],
                    runs, MEASURED_RUNS, MEASURED_INTERVALS, notes=notes)
