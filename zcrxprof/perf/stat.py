"""`perf stat` in interval mode, per thread: the runner and the parsers of its `-x` and `-j` output.

Both parsers return the same tidy frame, one row per (interval, thread, event):
``t`` (end of the interval, s since perf started counting), ``interval_s``, ``thread`` (comm),
``tid``, ``event``, ``value`` (NaN unless counted), ``unit``, ``running_pct``, ``status``
(`counted` | `not supported` | `not counted`; `suppressed` after ``mark_suppressed``), ``runtime_ns``.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd

from zcrxprof import children
from zcrxprof.errors import ZcrxprofError
from zcrxprof.perf.process import start_perf, stop_perf
from zcrxprof.perf.tool import Perf

COLUMNS = ["t", "interval_s", "thread", "tid", "event", "value", "unit", "running_pct", "status", "runtime_ns"]
# Fields after the optional time and thread fields in perf's -x output (perf 6.1):
# value, unit, event, runtime, pcnt-running, metric-value, metric-unit; the first 5 are required.
_CSV_TAIL = 7
_CSV_NEEDED = 5
# the close(2) system call's number, by machine (/proc/PID/syscall shows it while perf closes a counter)
_SYS_CLOSE = {"x86_64": 3, "aarch64": 57}.get(os.uname().machine)
LAST_INTERVAL_WAIT_S = 10.0     # at most, from SIGINT until perf wrote its last interval (or exited)


def _status(value: str) -> tuple[str, float]:
    """Map perf's printed counter value to (status, value)."""
    text = value.strip()
    if text == "<not supported>":
        return "not supported", math.nan
    if text == "<not counted>":
        return "not counted", math.nan
    return "counted", float(text)


def _split_thread(field: str) -> tuple[str, int]:
    """`rx0-1234` → ("rx0", 1234); a comm may itself contain '-'."""
    name, sep, tid = field.strip().rpartition("-")
    if sep and tid.isdigit():
        return name, int(tid)
    return field.strip(), -1


def _float(text: object) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _finish(rows: list[dict]) -> pd.DataFrame:
    """Rows → frame with ``interval_s`` derived from consecutive interval ends per thread/event."""
    frame = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "interval_s"])
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame["tid"] = frame["tid"].astype("int64")
    frame = frame.sort_values(["t", "thread", "tid", "event"], kind="stable").reset_index(drop=True)
    prev = frame.groupby(["tid", "thread", "event"], sort=False)["t"].shift()
    frame["interval_s"] = frame["t"] - prev.fillna(0.0)
    return frame[COLUMNS]


def parse_stat_csv(text: str, sep: str = ",", interval: bool = True, per_thread: bool = True) -> pd.DataFrame:
    """Parse `perf stat -x SEP [-I ms] [--per-thread]` output (as written to `-o FILE`)."""
    lead = int(interval) + int(per_thread)
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(sep)
        if len(fields) < lead + _CSV_NEEDED:
            raise ZcrxprofError(f"perf stat output line {n}: {len(fields)} fields, expected at least "
                                f"{lead + _CSV_NEEDED}: {line.strip()[:80]}")
        extra = max(0, len(fields) - lead - _CSV_TAIL)  # a thread name holding the separator
        t = _float(fields[0]) if interval else math.nan
        thread, tid = ("", -1)
        if per_thread:
            thread, tid = _split_thread(sep.join(fields[int(interval):int(interval) + 1 + extra]))
        value, unit, event, runtime, pcnt = fields[lead + extra:lead + extra + _CSV_NEEDED]
        status, val = _status(value)
        rows.append(dict(t=t, thread=thread, tid=tid, event=event, value=val, unit=unit,
                         running_pct=_float(pcnt), status=status, runtime_ns=_float(runtime)))
    return _finish(rows)


def parse_stat_json(text: str) -> pd.DataFrame:
    """Parse `perf stat -j [-I ms] [--per-thread]` output: one JSON object per line."""
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ZcrxprofError(f"perf stat JSON line {n}: {exc.msg}: {line[:80]}") from None
        if "event" not in obj or "counter-value" not in obj:
            continue  # metric-only lines
        thread, tid = _split_thread(obj["thread"]) if "thread" in obj else ("", -1)
        status, val = _status(str(obj["counter-value"]))
        rows.append(dict(t=_float(obj.get("interval")), thread=thread, tid=tid, event=obj["event"],
                         value=val, unit=obj.get("unit", ""), running_pct=_float(obj.get("pcnt-running")),
                         status=status, runtime_ns=_float(obj.get("event-runtime"))))
    return _finish(rows)


def parse_stat(text: str, fmt: str) -> pd.DataFrame:
    """Parse perf stat output written in ``fmt`` (`json` or `csv`)."""
    return parse_stat_json(text) if fmt == "json" else parse_stat_csv(text)


def mark_suppressed(frame: pd.DataFrame, bpf_tracepoints: set[str]) -> tuple[pd.DataFrame, list[str]]:
    """Mark tracepoint counts the kernel withheld from perf as `suppressed` (value NaN).

    A BPF program attached to a tracepoint through a perf event that returns 0 drops the event for
    every perf counter on it. `sched:sched_switch` is checked against `context-switches` (equal per
    thread and interval, ±2 for the read skew; below half of it when no BPF program was seen on
    sched_switch); other tracepoints in ``bpf_tracepoints`` (names without system) are suppressed
    where they read 0. Returns the frame and the affected events."""
    if frame.empty:             # perf stopped before its first interval: nothing to mark
        return frame, []
    frame = frame.copy()
    counted = frame["status"] == "counted"
    bad = pd.Series(False, index=frame.index)
    sw = frame[counted & (frame["event"] == "sched:sched_switch")]
    cs = frame[counted & (frame["event"] == "context-switches")].set_index(["t", "tid"])["value"]
    if not sw.empty and not cs.empty:
        ref = sw.join(cs.rename("switches"), on=["t", "tid"])["switches"]
        short = sw["value"] < ref - 2
        if "sched_switch" not in bpf_tracepoints:
            # no BPF program seen on it: only a gross shortfall is suppression (a program that came
            # and went between bpftool's look and perf's), a few switches are the two reads' skew
            short &= sw["value"] < ref / 2
        bad |= short.reindex(frame.index, fill_value=False)
    name = frame["event"].str.partition(":")[2]
    bad |= counted & frame["event"].str.contains(":") & name.isin(bpf_tracepoints) & (frame["value"] == 0)
    frame.loc[bad, "status"] = "suppressed"
    frame.loc[bad, "value"] = math.nan
    return frame, sorted(frame.loc[bad, "event"].unique())


class StatSession:
    """`perf stat -I` per thread on given threads, from start() until stop()."""

    def __init__(self, perf: Perf, tids: list[int], events: list[str], out: Path, interval_ms: int = 1000) -> None:
        """Prepare (not start) perf stat on ``tids`` counting ``events`` into ``out``."""
        if not tids:
            raise ZcrxprofError("perf stat: no threads to attach to")
        if interval_ms < 10:
            raise ZcrxprofError(f"perf stat interval {interval_ms} ms is below perf's minimum of 10 ms")
        self.perf, self.out, self.fmt = perf, Path(out), perf.stat_format
        self.argv = [perf.path, "stat", "-I", str(interval_ms), "--per-thread",
                     "-t", ",".join(str(t) for t in tids), "-e", ",".join(events),
                     "-j" if self.fmt == "json" else "-x,", "-o", str(self.out)]
        self.proc: subprocess.Popen | None = None
        self.draining: subprocess.Popen | None = None     # stopped, still closing its counters
        self.started = math.nan

    def start(self) -> None:
        """Start perf stat; ``started`` is the monotonic time counting began (± perf's start-up)."""
        self.proc = start_perf(self.argv)
        self.started = time.monotonic()

    def stop(self) -> pd.DataFrame:
        """SIGINT perf and return the parsed frame once its last, partial interval is written.

        perf prints that interval, then closes its counters; the kernel unregisters each tracepoint
        counter on close, ~36 ms apiece (measured: 20 tracepoints took 0.72 s after each run). So
        once perf has written output and is closing (``/proc/PID/syscall`` shows close), its output
        is whole and perf is left to exit: :meth:`finish` reaps it. A perf that has written nothing
        yet (stopped while it was still starting up, when it closes files too), exits, or never
        reaches its close is waited for as before.
        """
        proc, self.proc = self.proc, None
        err, closing = "", False
        if proc is not None and proc.poll() is None:
            children.signal_group(proc.pid, signal.SIGINT)
            deadline = time.monotonic() + LAST_INTERVAL_WAIT_S
            while proc.poll() is None and time.monotonic() < deadline:
                closing = _closing(proc.pid) and self.out.exists() and self.out.stat().st_size > 0
                if closing:
                    break
                time.sleep(0.005)
        if closing:
            self.draining = proc
        else:
            err = stop_perf(proc, "perf stat")
        text = self.out.read_text() if self.out.exists() else ""
        frame = parse_stat(text, self.fmt)
        if frame.empty and err:
            raise ZcrxprofError(f"perf stat failed: {err}")
        return frame

    def finish(self, timeout: float = 10.0) -> None:
        """Reap the perf left closing its counters by :meth:`stop` (its group killed if it hangs)."""
        proc, self.draining = self.draining, None
        stop_perf(proc, "perf stat", timeout=timeout)

    def abort(self) -> None:
        """Stop perf without reading its output (interrupted recording)."""
        stop_perf(self.proc, "perf stat")
        self.proc = None
        self.finish()


def _closing(pid: int) -> bool:
    """Whether perf ``pid`` is inside close(2): once it has printed intervals, only after its last one."""
    try:
        return _SYS_CLOSE is not None and Path(f"/proc/{pid}/syscall").read_text().split()[0] == str(_SYS_CLOSE)
    except (OSError, IndexError):
        return False

