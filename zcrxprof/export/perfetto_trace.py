"""Every run of a dataset on one Perfetto timeline (a ``.pftrace`` file that ui.perfetto.dev opens).

Layout of the trace:

* one process per run (``run 3: shared-ifq, copy, rings=2``; a TCG guest's run says its timing is
  emulated, a run that is not usable says why)
  holding one slice, the run itself, from ``started_at`` to ``started_at + elapsed_s``, whose
  arguments are the run's columns and ``usable``;
* in it, one thread per load-generator thread (its kernel tid), with a slice over its intervals and
  one counter track per interval counter: ``rx0 Gbit/s``, ``rx0 CPU user (ms)``, ``rx0 CPU sys (ms)``,
  ``rx0 voluntary switches``, ``rx0 involuntary switches``, ``rx0 work (ms)``,
  ``rx0 buffers returned``, ``rx0 refill backlog``, ``rx0 ENOBUFS``, ``rx0 re-arms`` (senders get the
  first five, workers all but the last two), then its kernel-probe counters
  (``rx0 ringsched:sched_switch oncpu (ms)``) and perf counters (``rx0 task-clock (ms)``);
* top-level tracks under ``system``, one per CPU and value across all runs: ``cpu0 softirq (% CPU)``
  (``/proc/stat``), ``cpu0 NET_RX softirqs`` and ``cpu0 NET_TX softirqs`` (``/proc/softirqs``).

Times: a run starts at its ``started_at`` (ns since the Unix epoch); a sample ``t`` of that run sits at
``started_at + t``. An interval counter (a delta, or the rate over the interval) sits at the start of
its interval, ``t - interval_s``, and holds until the next sample; a cumulative counter (probes,
system) becomes the difference between consecutive samples, at the earlier one (the first sample is
the baseline). Every counter track ends with a 0 where its last interval ends: the thread, or the
sampling, stopped. Timestamps are strictly increasing on every track.

Names: control characters in dataset, run or thread names are escaped (``\\n``, ``\\x07``); quotes and
any other Unicode are kept as they are. Run processes get pids above any Linux pid (``PID_BASE + k``),
so they never collide with the real thread ids of the threads inside them.

Partial datasets give a trace of what exists: a run without a start time is placed one second after
the previous run ends, missing or empty tables give no tracks. A dataset without runs is refused.
"""
from __future__ import annotations

import math
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (Trace, TracePacket, TrackDescriptor,
                                                                TrackEvent)
from perfetto.trace_builder.proto_builder import TraceProtoBuilder

from zcrxprof import schema, vocab
from zcrxprof.dataset import usable
from zcrxprof.errors import UsageError, ZcrxprofError

PID_BASE = 1 << 22   # PID_MAX_LIMIT on 64-bit Linux: no real pid or tid reaches it
SYNTHETIC_TID_BASE = 1 << 23   # threads recorded without a tid (tid -1)
SEQUENCE_ID = 1   # all packets come from one writer
NS = 1_000_000_000
RUN_GAP_NS = NS   # a run without a start time begins this long after the previous one ends
BUILTIN_CLOCK_REALTIME, BUILTIN_CLOCK_BOOTTIME = 1, 6


@dataclass(frozen=True)
class IntervalCounter:
    """One counter track per thread, from one ``intervals`` column: ``value = column * scale``
    (divided by ``interval_s`` too when ``rate``); ``roles`` the thread roles that get it."""

    column: str
    label: str
    unit: str
    scale: float = 1.0
    rate: bool = False
    roles: frozenset[str] = frozenset({"rx", "worker", "tx"})


_RECEIVERS = frozenset({"rx", "worker"})
INTERVAL_COUNTERS: tuple[IntervalCounter, ...] = (
    IntervalCounter("bytes", "Gbit/s", "Gbit/s", scale=8e-9, rate=True),
    IntervalCounter("utime_ns", "CPU user (ms)", "ms", scale=1e-6),
    IntervalCounter("stime_ns", "CPU sys (ms)", "ms", scale=1e-6),
    IntervalCounter("nvcsw", "voluntary switches", "switches"),
    IntervalCounter("nivcsw", "involuntary switches", "switches"),
    IntervalCounter("work_ns", "work (ms)", "ms", scale=1e-6, roles=_RECEIVERS),
    IntervalCounter("bufs_returned", "buffers returned", "buffers", roles=_RECEIVERS),
    IntervalCounter("refill_backlog", "refill backlog", "buffers", roles=_RECEIVERS),
    IntervalCounter("enobufs", "ENOBUFS", "receives", roles=frozenset({"rx"})),
    IntervalCounter("rearms", "re-arms", "receives", roles=frozenset({"rx"})),
)

# /proc samples drawn as system tracks: (source, metric) -> (label, unit, per-second percentage?)
SYSTEM_COUNTERS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("stat", "softirq"): ("softirq (% CPU)", "%", True),
    ("softirqs", "NET_RX"): ("NET_RX softirqs", "softirqs", False),
    ("softirqs", "NET_TX"): ("NET_TX softirqs", "softirqs", False),
}
_PER_CPU = re.compile(r"cpu\d+")
_PERF_UNITS = {"msec": "ms", "": ""}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class TraceSummary:
    """What a written trace holds."""

    path: Path
    runs: int
    counter_tracks: int
    samples: int


def display_name(text: object) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x07``) and lone surrogates as ``\\udcff``."""
    s = _CONTROL.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), str(text))
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def export_command(dataset: str | Path, run_id: int | str) -> str:
    """The command that writes the timeline of one run: ``zcrxprof export --perfetto run-N.pftrace …``
    (``dataset`` a name under the datasets root or a directory; ``run_id`` may be a placeholder)."""
    return f"zcrxprof export --perfetto run-{run_id}.pftrace {shlex.quote(str(dataset))} --run {run_id}"


class _Writer:
    """Track descriptors and timed events, turned into one ``Trace`` sorted by time."""

    def __init__(self) -> None:
        self.builder = TraceProtoBuilder()
        self._next_uuid = 1
        self._events: list[tuple[int, int, int, str, object]] = []   # ts, order, track, kind, payload
        self.counter_tracks = 0
        self.samples = 0

    def track(self, name: str, parent: int | None = None, rank: int | None = None, **kind) -> int:
        """A new track; ``kind`` sets ``process=(pid, name)``, ``thread=(pid, tid, name)`` or ``unit``."""
        uuid, self._next_uuid = self._next_uuid, self._next_uuid + 1
        packet = self.builder.add_packet()
        packet.trusted_packet_sequence_id = SEQUENCE_ID
        if uuid == 1:   # the first packet of the one sequence starts its (empty) incremental state
            packet.sequence_flags = TracePacket.SequenceFlags.SEQ_INCREMENTAL_STATE_CLEARED
        desc: TrackDescriptor = packet.track_descriptor
        desc.uuid = uuid
        if parent is not None:
            desc.parent_uuid = parent
        if rank is not None:
            desc.sibling_order_rank = rank
        if "process" in kind:
            desc.process.pid, desc.process.process_name = kind["process"]
        elif "thread" in kind:
            desc.thread.pid, desc.thread.tid, desc.thread.thread_name = kind["thread"]
        else:
            desc.name = name
        if "unit" in kind:
            desc.counter.SetInParent()
            if kind["unit"]:
                desc.counter.unit_name = kind["unit"]
            self.counter_tracks += 1
        desc.child_ordering = TrackDescriptor.ChildTracksOrdering.EXPLICIT
        return uuid

    def slice(self, track: int, begin: int, end: int, name: str, args: dict[str, object]) -> None:
        """A slice from ``begin`` to ``end`` (ns) with debug annotations ``args``."""
        self._events.append((begin, len(self._events), track, "begin", (name, args)))
        self._events.append((max(end, begin), len(self._events), track, "end", None))

    def series(self, track: int, points: Iterable[tuple[int, float]], end: int | None) -> None:
        """Counter samples in time order, made strictly increasing, then a closing 0 at ``end``."""
        last = None
        for ts, value in points:
            if not math.isfinite(value):
                continue
            ts = ts if last is None or ts > last else last + 1
            self._events.append((ts, len(self._events), track, "counter", float(value)))
            self.samples += 1
            last = ts
        if last is not None and end is not None:
            self._events.append((max(end, last + 1), len(self._events), track, "counter", 0.0))
            self.samples += 1

    def finish(self, origin: int | None) -> Trace:
        """The trace: descriptors, a clock snapshot (wall clock = trace clock), then events by time."""
        if origin is not None:
            packet = self.builder.add_packet()
            packet.trusted_packet_sequence_id = SEQUENCE_ID
            packet.timestamp = origin
            for clock in (BUILTIN_CLOCK_BOOTTIME, BUILTIN_CLOCK_REALTIME):
                packet.clock_snapshot.clocks.add(clock_id=clock, timestamp=origin)
        for ts, _, track, kind, payload in sorted(self._events, key=lambda e: (e[0], e[1])):
            packet = self.builder.add_packet()
            packet.trusted_packet_sequence_id = SEQUENCE_ID
            packet.timestamp = ts
            event = packet.track_event
            event.track_uuid = track
            if kind == "counter":
                event.type = TrackEvent.Type.TYPE_COUNTER
                event.double_counter_value = payload
            elif kind == "end":
                event.type = TrackEvent.Type.TYPE_SLICE_END
            else:
                name, args = payload
                event.type = TrackEvent.Type.TYPE_SLICE_BEGIN
                event.name = name
                for key, value in args.items():
                    _annotate(event.debug_annotations.add(), key, value)
        return self.builder.trace


def _annotate(annotation, key: str, value: object) -> None:
    annotation.name = key
    if isinstance(value, bool):
        annotation.bool_value = value
    elif isinstance(value, int):
        annotation.int_value = value
    elif isinstance(value, float):
        annotation.double_value = value
    else:
        annotation.string_value = display_name(value)


def _table(frames, name: str) -> pd.DataFrame:
    """A table of ``frames`` (anything with a ``tables`` mapping), empty when absent."""
    frame = getattr(frames, "tables", {}).get(name)
    if frame is None:
        frame = schema.empty_frame(name)
    if "dataset" not in frame.columns:
        frame = frame.assign(dataset="")
    return frame


def _plain(value: object) -> object:
    """A runs cell as a plain Python value for a debug annotation (None when missing)."""
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _run_name(run: pd.Series, several_datasets: bool) -> str:
    size = f"workers={int(run['workers'])}" if run["topology"] == "workers" else f"rings={int(run['rings'])}"
    name = f"run {int(run['run_id'])}: {run['topology']}, {run['backend']}, {size}"
    if run["rate_gbit_s"] > 0:
        name += f", {run['rate_gbit_s']:g} Gbit/s offered"
    if vocab.is_emulated_timing(run["accelerator"]):
        name += ", timing emulated (TCG)"
    if run["status"] != "ok":
        name += f" [{run['status']}]"
    elif not run["usable"]:
        name += f" [not usable: {int(run['verify_errors'])} verification errors]"
    return display_name(f"{run['dataset']} {name}" if several_datasets else name)


def _select_runs(runs: pd.DataFrame, run_ids: Iterable[int] | None, names: list[str]) -> pd.DataFrame:
    if runs.empty:
        raise ZcrxprofError(f"{', '.join(names) or 'dataset'}: no runs, nothing to put on a timeline")
    if run_ids is None:
        return runs
    wanted = list(dict.fromkeys(int(r) for r in run_ids))
    unknown = [r for r in wanted if r not in set(runs["run_id"])]
    if unknown:
        raise UsageError(f"unknown run id {', '.join(map(str, unknown))} "
                         f"(the dataset has runs {_ranges(sorted(set(runs['run_id'])))})")
    return runs[runs["run_id"].isin(wanted)]


def _ranges(ids: list[int]) -> str:
    """``0-20, 23`` for 0, 1, …, 20, 23."""
    spans: list[list[int]] = []
    for i in ids:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)


def _run_origins(runs: pd.DataFrame, intervals: pd.DataFrame) -> dict[tuple[str, int], tuple[int, int]]:
    """(dataset, run_id) -> (start ns, end ns); runs without a start time follow the previous one."""
    out: dict[tuple[str, int], tuple[int, int]] = {}
    previous_end = 0
    for _, run in runs.iterrows():
        key = (run["dataset"], int(run["run_id"]))
        start = previous_end + RUN_GAP_NS if pd.isna(run["started_at"]) else run["started_at"].as_unit("ns").value
        mine = intervals[(intervals["dataset"] == key[0]) & (intervals["run_id"] == key[1])]
        lengths = (run["elapsed_s"], run["loadgen_duration_s"], run["duration_s"])
        length = next((float(x) for x in lengths if pd.notna(x) and x > 0), 0.0)
        last_sample = float(mine["t"].max()) if len(mine) else 0.0
        end = start + round(max(length, last_sample) * NS)
        out[key] = (start, end)
        previous_end = end
    return out


def _deltas(samples: pd.DataFrame, origin: int, scale: float = 1.0, per_second: bool = False):
    """Consecutive differences of a cumulative ``value`` column, each at the earlier sample's time."""
    samples = samples.sort_values("t", kind="stable")
    t, v = samples["t"].to_numpy(), samples["value"].to_numpy()
    points = []
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        if per_second and not dt > 0:
            continue
        value = (v[i] - v[i - 1]) * scale / (dt if per_second else 1.0)
        points.append((origin + round(t[i - 1] * NS), value))
    end = origin + round(t[-1] * NS) if len(t) > 1 else None
    return points, end


def _interval_points(rows: pd.DataFrame, counter: IntervalCounter, origin: int):
    points = []
    for t, length, raw in zip(rows["t"], rows["interval_s"], rows[counter.column]):
        if counter.rate:
            value = raw * counter.scale / length if length > 0 else math.nan
        else:
            value = raw * counter.scale
        points.append((origin + round((t - max(length, 0.0)) * NS), value))
    return points


def _probe_label(probe: str, metric: str) -> tuple[str, str, float]:
    """``ringsched:sched_switch oncpu (ms)``, its unit and the scale from the metric's unit suffix."""
    if metric.endswith("_ns"):
        return f"{probe} {metric[:-3]} (ms)", "ms", 1e-6
    if metric.endswith("_bytes"):
        return f"{probe} {metric[:-6]} (bytes)", "bytes", 1.0
    return f"{probe} {metric}", "", 1.0


class _RunThreads:
    """The thread tracks of one run, created on first use, keyed by kernel tid (or name without one)."""

    def __init__(self, writer: _Writer, process: int, pid: int, names: dict[int, str]) -> None:
        self.writer, self.process, self.pid, self.names = writer, process, pid, names
        self.tracks: dict[object, tuple[int, str]] = {}
        self.ranks: dict[int, int] = {}
        self._synthetic = 0

    def get(self, tid: int, name: str | None = None) -> tuple[int, str]:
        """(track uuid, display name) of the thread ``tid`` (or ``name`` when tid is -1)."""
        key = tid if tid >= 0 else ("name", name)
        if key not in self.tracks:
            shown = display_name(name or self.names.get(tid) or f"tid {tid}")
            if tid < 0:
                self._synthetic += 1
                tid = SYNTHETIC_TID_BASE + (self.pid - PID_BASE) * 4096 + self._synthetic
            uuid = self.writer.track(shown, parent=self.process, rank=len(self.tracks),
                                     thread=(self.pid, tid, shown))
            self.tracks[key] = (uuid, shown)
        return self.tracks[key]

    def counter(self, thread: int, label: str, unit: str) -> int:
        """A counter track under ``thread``, ranked after its siblings."""
        rank = self.ranks[thread] = self.ranks.get(thread, -1) + 1
        return self.writer.track(label, parent=thread, rank=rank, unit=unit)


def _thread_names(dataset: str, run_id: int, tables: dict[str, pd.DataFrame]) -> dict[int, str]:
    """tid -> name for one run: the load generator's names first, then /proc task names."""
    names: dict[int, str] = {}
    system = tables["system"]
    task = system[(system["dataset"] == dataset) & (system["run_id"] == run_id) & (system["source"] == "task")]
    for tid, entity in zip(task["tid"], task["entity"]):
        names[int(tid)] = entity
    for table in ("perf_counters", "intervals", "threads"):
        frame = tables[table]
        mine = frame[(frame["dataset"] == dataset) & (frame["run_id"] == run_id)]
        names.update({int(tid): thread for tid, thread in zip(mine["tid"], mine["thread"]) if tid >= 0})
    return names


def _add_run(w: _Writer, k: int, run: pd.Series, span: tuple[int, int], several: bool,
             tables: dict[str, pd.DataFrame]) -> None:
    dataset, run_id = run["dataset"], int(run["run_id"])
    origin, end = span
    pid = PID_BASE + k
    name = _run_name(run, several)
    process = w.track(name, rank=k, process=(pid, name))
    w.slice(process, origin, end, name,
            {c: v for c in [*schema.TABLES["runs"].column_names, "usable"] if (v := _plain(run[c])) is not None})
    threads = _RunThreads(w, process, pid, _thread_names(dataset, run_id, tables))

    def mine(table: str) -> pd.DataFrame:
        frame = tables[table]
        return frame[(frame["dataset"] == dataset) & (frame["run_id"] == run_id)]

    intervals = mine("intervals").sort_values("t", kind="stable")
    order = {"rx": 0, "worker": 1, "tx": 2}
    keys = intervals[["tid", "thread", "role"]].drop_duplicates(["tid", "thread"])
    keys = keys.assign(o=keys["role"].map(order).fillna(3)).sort_values(["o", "thread"], kind="stable")
    for tid, thread, role in zip(keys["tid"], keys["thread"], keys["role"]):
        rows = intervals[(intervals["tid"] == tid) & (intervals["thread"] == thread)]
        track, shown = threads.get(int(tid), thread)
        first, last = rows.iloc[0], rows.iloc[-1]
        begin = origin + round((first["t"] - max(first["interval_s"], 0.0)) * NS)
        stop = origin + round(last["t"] * NS)
        ring = f", ring {int(last['ring'])}" if last["ring"] >= 0 else ""
        w.slice(track, begin, stop, f"{shown} ({role}{ring})",
                {"tid": int(tid), "role": role, "ring": int(last["ring"]), "last cpu": int(last["cpu"])})
        for counter in INTERVAL_COUNTERS:
            if role in counter.roles or role not in order:
                w.series(threads.counter(track, f"{shown} {counter.label}", counter.unit),
                         _interval_points(rows, counter, origin), stop)

    probes = mine("probes")
    for (tid, probe, metric), rows in probes.groupby(["tid", "probe", "metric"], sort=True):
        label, unit, scale = _probe_label(probe, metric)
        points, stop = _deltas(rows, origin, scale)
        if not points:
            continue
        if tid >= 0:
            track, shown = threads.get(int(tid))
            w.series(threads.counter(track, display_name(f"{shown} {label}"), unit), points, stop)
        else:
            w.series(w.track(display_name(label), parent=process, unit=unit), points, stop)

    perf = mine("perf_counters")
    perf = perf[perf["status"].isin(["counted", "not counted"])]
    for (tid, thread, event), rows in perf.groupby(["tid", "thread", "event"], sort=True):
        if not (rows["status"] == "counted").any():
            continue
        rows = rows.sort_values("t", kind="stable")
        unit = _PERF_UNITS.get(rows["unit"].iloc[0], rows["unit"].iloc[0])
        values = rows["value"].where(rows["status"] == "counted", 0.0)
        points = [(origin + round((t - max(length, 0.0)) * NS), v)
                  for t, length, v in zip(rows["t"], rows["interval_s"], values)]
        track, shown = threads.get(int(tid), thread)
        label = f"{shown} {event}" + (f" ({unit})" if unit else "")
        w.series(threads.counter(track, display_name(label), unit), points,
                 origin + round(rows["t"].iloc[-1] * NS))


def _add_system(w: _Writer, runs: pd.DataFrame, spans: dict, tables: dict[str, pd.DataFrame]) -> None:
    system = tables["system"]
    keys = set(zip(runs["dataset"], runs["run_id"]))
    wanted = pd.Series([(s, m) in SYSTEM_COUNTERS and (d, r) in keys and bool(_PER_CPU.fullmatch(e))
                        for s, m, d, r, e in zip(system["source"], system["metric"], system["dataset"],
                                                 system["run_id"], system["entity"])],
                       index=system.index, dtype=bool)
    picked = system[wanted]
    if picked.empty:
        return
    group = w.track("system", rank=len(runs))
    cpus = sorted(set(picked["entity"]), key=lambda e: int(e[3:]))
    rank = 0
    for cpu in cpus:
        for (source, metric), (label, unit, percent) in SYSTEM_COUNTERS.items():
            rows = picked[(picked["entity"] == cpu) & (picked["source"] == source) & (picked["metric"] == metric)]
            if rows.empty:
                continue
            points, ends = [], []
            for key, per_run in rows.groupby(["dataset", "run_id"], sort=False):
                p, end = _deltas(per_run, spans[key][0], 100.0 if percent else 1.0, per_second=percent)
                points += p
                if end is not None:
                    ends.append(end)
            points.sort(key=lambda p: p[0])
            if points:
                w.series(w.track(f"{cpu} {label}", parent=group, rank=rank, unit=unit), points, max(ends))
                rank += 1


def build_trace(frames, run_ids: Iterable[int] | None = None) -> Trace:
    """The Perfetto trace of ``frames`` (a loaded dataset: an object with a ``tables`` mapping), all
    runs or only ``run_ids``; UsageError for an unknown run id, ZcrxprofError when there are no runs."""
    return _build(frames, run_ids)[0]


def _build(frames, run_ids: Iterable[int] | None) -> tuple[Trace, _Writer, int]:
    tables = {name: _table(frames, name) for name in ("runs", "intervals", "threads", "probes",
                                                     "system", "perf_counters")}
    runs = _select_runs(tables["runs"], run_ids, list(getattr(frames, "names", [])))
    runs = runs.assign(usable=usable(runs))
    spans = _run_origins(runs, tables["intervals"])
    several = runs["dataset"].nunique() > 1
    w = _Writer()
    for k, (_, run) in enumerate(runs.iterrows()):
        _add_run(w, k, run, spans[(run["dataset"], int(run["run_id"]))], several, tables)
    _add_system(w, runs, spans, tables)
    origin = min(start for start, _ in spans.values())
    return w.finish(origin), w, len(runs)


def write_trace(frames, path: str | Path, run_ids: Iterable[int] | None = None) -> TraceSummary:
    """Write the trace of ``frames`` (see ``build_trace``) to ``path`` and say what it holds."""
    trace, w, n = _build(frames, run_ids)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(trace.SerializeToString())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ZcrxprofError(f"{path}: {exc.strerror or exc}") from None
    return TraceSummary(path, n, w.counter_tracks, w.samples)
