"""The `record --perf` / `record --profile` plug-in (see zcrxprof/collect/plugins.py).

`--perf` (on by default when perf is installed): `perf stat -I` per thread on all the load
generator's threads → `perf_counters`. `--profile`: `perf record -g` on the receiving threads
(`rx*`, `worker*`) → `profile`.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.perf.tool import (HARDWARE_EVENTS, SOFTWARE_EVENTS, TRACEPOINTS, Perf,
                                available_tracepoints, bpf_tracepoint_programs, find_perf, hardware_pmu)

if TYPE_CHECKING:  # pandas and the sessions load only when a recording uses perf
    import pandas as pd

    from zcrxprof.perf.profile import ProfileSession
    from zcrxprof.perf.stat import StatSession

RECEIVING_PREFIXES = ("rx", "worker")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--perf`, `--no-perf`, `--perf-interval`, `--profile`, `--profile-freq` to `record`."""
    g = parser.add_argument_group("perf (Debian's linux-perf)")
    g.add_argument("--perf", action="store_true",
                   help="count per-thread perf stat events of the load generator into perf_counters "
                        "(the default when perf is installed; an error when it is not)")
    g.add_argument("--no-perf", action="store_true", help="no perf stat")
    g.add_argument("--perf-interval", type=int, default=1000, metavar="MS",
                   help="perf stat interval in ms (default 1000, minimum 10)")
    g.add_argument("--profile", action="store_true",
                   help="sample call stacks of the receiving threads with perf record -g into profile")
    g.add_argument("--profile-freq", type=int, default=499, metavar="HZ",
                   help="perf record sampling frequency per thread (default 499)")


def make_collectors(args: argparse.Namespace) -> list:
    """The perf collectors asked for by ``args`` (none when perf is off and --profile absent)."""
    if getattr(args, "perf", False) and getattr(args, "no_perf", False):
        raise UsageError("--perf and --no-perf exclude each other")
    want_stat = True if getattr(args, "perf", False) else False if getattr(args, "no_perf", False) else None
    want_profile = bool(getattr(args, "profile", False))
    interval = getattr(args, "perf_interval", 1000)
    freq = getattr(args, "profile_freq", 499)
    if not 10 <= interval <= 3_600_000:
        raise UsageError(f"--perf-interval {interval}: choose 10..3600000 ms")
    if not 1 <= freq <= 100_000:
        raise UsageError(f"--profile-freq {freq}: choose 1..100000 Hz")
    perf = find_perf()
    if perf is None:
        if want_stat or want_profile:
            flag = "--profile" if want_profile else "--perf"
            raise ZcrxprofError(f"{flag} needs perf, which is not installed (Debian package linux-perf)")
        return []
    collectors: list = []
    if want_stat is None or want_stat:
        collectors.append(PerfStatCollector(perf, interval))
    if want_profile:
        collectors.append(PerfProfileCollector(perf, freq))
    return collectors


def _labels(perf: Perf, ctx) -> None:
    """Record perf's version in the dataset metadata."""
    ctx.metadata.setdefault("versions", {})["perf"] = perf.version_text


def _names(frame: pd.DataFrame, ctx) -> pd.DataFrame:
    """Use the load generator's thread names (comm may be truncated or renamed late)."""
    by_tid = {tid: name for name, tid in ctx.tids.items()}
    frame["thread"] = [by_tid.get(t, name) for t, name in zip(frame["tid"], frame["thread"])]
    return frame


class PerfStatCollector:
    """`perf stat -I --per-thread` on every thread of the load generator, one session per run."""

    name = "perf-stat"

    def __init__(self, perf: Perf, interval_ms: int = 1000) -> None:
        """Choose the events once: software, the tracepoints this kernel has, hardware."""
        self.perf, self.interval_ms = perf, interval_ms
        tracepoints, self.missing_tracepoints = available_tracepoints(TRACEPOINTS)
        self.events = [*SOFTWARE_EVENTS, *tracepoints, *HARDWARE_EVENTS]
        self.session: StatSession | None = None
        self.draining: list[StatSession] = []      # stopped sessions whose perf still closes its counters
        self.bpf: dict[str, list[dict]] = {}
        self._noted = False

    def start(self, ctx) -> None:
        """Attach perf stat to the run's threads."""
        _labels(self.perf, ctx)
        for done in [d for d in self.draining if d.draining.poll() is not None]:
            done.finish()
            self.draining.remove(done)
        tids = sorted(set(ctx.tids.values())) or [ctx.pid]
        out = Path(ctx.workdir) / f"perf-stat.{'json' if self.perf.stat_json else 'csv'}"
        self.bpf = bpf_tracepoint_programs()
        from zcrxprof.perf.stat import StatSession
        self.session = StatSession(self.perf, tids, self.events, out, self.interval_ms)
        self.session.start()

    def stop(self, ctx) -> dict[str, pd.DataFrame]:
        """Stop perf stat; rows for `perf_counters` on the run's clock."""
        session, self.session = self.session, None
        if session is None:
            return {}
        for tp, progs in bpf_tracepoint_programs().items():
            self.bpf.setdefault(tp, []).extend(p for p in progs if p not in self.bpf.get(tp, []))
        from zcrxprof.perf.stat import mark_suppressed
        frame, suppressed = mark_suppressed(_names(session.stop(), ctx), set(self.bpf))
        if session.draining is not None:
            self.draining.append(session)
        if suppressed:
            progs = sorted({f"prog {p['prog_id']} (pid {p['pid']})" for e in suppressed
                            for p in self.bpf.get(e.partition(":")[2], [])})
            ctx.metadata.setdefault("notes", []).append(
                f"perf counts of {', '.join(suppressed)} suppressed: a BPF program attached "
                f"to the same tracepoint through a perf event ({', '.join(progs) or 'not listed by bpftool'}) "
                "returned 0, which makes the kernel drop the event for perf; such rows have status "
                "`suppressed` (tracepoint probes should return 1 or use raw tracepoints)")
        frame["t"] = frame["t"] + (session.started - ctx.t0)
        frame.insert(0, "run_id", ctx.run_id)
        if not self._noted:
            self._noted = True
            ctx.metadata.setdefault("notes", []).extend(self._notes(frame))
        return {"perf_counters": frame.drop(columns=["runtime_ns"])}

    def _notes(self, frame: pd.DataFrame) -> list[str]:
        notes = []
        status = frame.groupby("event")["status"].agg(set)
        unsupported = [e for e, s in status.items() if s == {"not supported"}]
        if unsupported:
            why = ("no hardware PMU: no cache-miss counts; cache effects come from the hot-vs-cold work cost "
                   "instead" if not hardware_pmu(self.perf.path) else "these events cannot be opened here")
            notes.append(f"perf {self.perf.version_text}: {', '.join(sorted(unsupported))} <not supported> on this "
                         f"machine ({why})")
        if self.missing_tracepoints:
            notes.append(f"perf: tracepoints {', '.join(self.missing_tracepoints)} do not exist on this kernel")
        return notes

    def close(self) -> None:
        """Stop a session left running by an interrupted recording; reap the perfs still closing."""
        if self.session is not None:
            self.session.abort()
            self.session = None
        while self.draining:
            self.draining.pop().finish()


class PerfProfileCollector:
    """`perf record -g` on the receiving threads of each run."""

    name = "perf-profile"

    def __init__(self, perf: Perf, freq_hz: int = 499) -> None:
        """Sample at ``freq_hz`` per thread."""
        self.perf, self.freq_hz = perf, freq_hz
        self.session: ProfileSession | None = None

    def start(self, ctx) -> None:
        """Start sampling the run's rx*/worker* threads (all threads if none are named so)."""
        _labels(self.perf, ctx)
        tids = sorted(t for n, t in ctx.tids.items() if n.startswith(RECEIVING_PREFIXES))
        tids = tids or sorted(set(ctx.tids.values())) or [ctx.pid]
        from zcrxprof.perf.profile import ProfileSession
        self.session = ProfileSession(self.perf, tids, Path(ctx.workdir) / "perf-profile", self.freq_hz)
        self.session.start()

    def stop(self, ctx) -> dict[str, pd.DataFrame]:
        """Stop sampling; rows for `profile`."""
        session, self.session = self.session, None
        if session is None:
            return {}
        frame = _names(session.stop(), ctx)
        frame.insert(0, "run_id", ctx.run_id)
        frame["event"] = session.event
        return {"profile": frame}

    def close(self) -> None:
        """Stop a session left running by an interrupted recording."""
        if self.session is not None:
            self.session.abort()
            self.session = None
