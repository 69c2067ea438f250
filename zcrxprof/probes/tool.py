"""What every probe tool shares: compile, attach by the ladder, filter, read the maps.

A tool is a subclass of :class:`ProbeTool` naming its BPF program (``zcrxprof/probes/bpf/NAME.bpf.c``),
its probe points and the metrics its program counts. The ids are defined here only: the program gets
them as ``-D`` flags (``M_<METRIC>``, ``H_<HISTOGRAM>``, ``S_<STATE WORD>``, see :meth:`ProbeTool.id_defines`). The collector uses the class::

    with ZcrxStat(pids=[]) as tool:          # attached, counting nothing yet
        report = tool.attach_report           # one AttachResult per probe point
        tool.set_targets([loadgen_pid])       # now count that process's threads
        rows = tool.snapshot(t)               # cumulative counters, tidy rows
        hist = tool.histograms()

and ``python -m zcrxprof.probes.NAME`` runs the same class as a bcc-style command
(:func:`zcrxprof.probes.cli.main`).
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from zcrxprof import paths, vocab
from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.probes import headers, ladder
from zcrxprof.probes.ladder import AttachResult

FILTER_TGID, FILTER_TID = 1, 2   # filter_mode bits: count only target_tgids / target_tids (common.h)
NBUCKETS = 65    # log2 buckets per histogram: bucket 0 is value 0, bucket k is [2^(k-1), 2^k - 1]
CAP_PERFMON, CAP_BPF, CAP_SYS_ADMIN = 38, 39, 21


@dataclass(frozen=True)
class Point:
    """One probe point: a tracepoint (``sched:sched_switch``) or a kernel function's entry/return."""

    target: str
    kind: str = "tracepoint"     # tracepoint | entry | return
    core: bool = True            # the tool is useless on a kernel where no core point attaches
    raw: tuple[str, ...] = ()    # a tracepoint's raw arguments the program's raw variant expects
    raw_reads: tuple[str, ...] = ()  # "struct.member" the raw variant reads (offset from BTF)

    @property
    def short(self) -> str:
        """The name in dataset rows: the event without its category, or the function."""
        return self.target.split(":")[-1]


def place() -> dict:
    """Where the tool runs: host or the lab guest, the kernel, and whether its timing is emulated (TCG)."""
    accelerator = vocab.accelerator()
    return {"where": vocab.place(), "kernel": os.uname().release,
            "emulated_timing": vocab.is_emulated_timing(accelerator)}


def _has_bpf_privileges() -> bool:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return os.geteuid() == 0
    capeff = int(next(l.split()[1] for l in status.splitlines() if l.startswith("CapEff:")), 16)
    have = lambda cap: bool(capeff >> cap & 1)
    return have(CAP_SYS_ADMIN) or (have(CAP_BPF) and have(CAP_PERFMON))


class ProbeTool:
    """Base class: subclasses set NAME, POINTS, METRICS and HISTOGRAMS (ids the BPF program gets as -D flags)."""

    NAME = ""
    POINTS: tuple[Point, ...] = ()
    METRICS: dict[int, tuple[str, str]] = {}      # metric id -> (point target, metric name)
    HISTOGRAMS: dict[int, tuple[str, str]] = {}   # hist id -> (point target, metric name)
    SLOTS = 4096    # traced threads per attach (counters and histograms are per-slot arrays)
    STATE: tuple[str, ...] = ()   # per-thread u64 state words the program keeps next to each slot's counters

    def __init__(self, pids: list[int] | None = None, tids: list[int] | None = None,
                 slots: int | None = None, raw_tracepoints: bool = True) -> None:
        self.slots = self.SLOTS if slots is None else slots
        self.raw_tracepoints = raw_tracepoints
        if self.slots < 1:
            raise UsageError(f"{self.NAME}: slots must be >= 1, not {self.slots}")
        self.bpf = None
        self.attach_report: list[AttachResult] = []
        self.headers: headers.HeaderTree | None = None
        self.compile_s = 0.0
        self.attach_s = 0.0
        self._pids, self._tids = pids, tids

    # ---- program --------------------------------------------------------------------------

    def _short(self, target: str) -> str:
        return next(p.short for p in self.POINTS if p.target == target)

    def raw_tracepoint(self, p: Point) -> bool:
        """Whether the point's raw tracepoint variant is used: the tool allows it, the point has one,
        and the running kernel's BTF gives exactly the arguments (and member offsets) it expects.

        A raw tracepoint skips filling the classic tracepoint's record (~200 ns/event here, which
        bpf_stats does not show); anything unverified keeps the classic, field-named tracepoint.
        """
        if not (self.raw_tracepoints and p.raw and p.kind == "tracepoint"):
            return False
        if ladder.raw_tracepoint_params(p.short) != p.raw:
            return False
        return all(ladder.struct_member_offset(*r.split(".")) is not None for r in p.raw_reads)

    def id_defines(self) -> list[str]:
        """The ids the program indexes its maps with, defined only here: ``M_<METRIC>`` per metric,
        ``H_<HISTOGRAM>`` per histogram, ``S_<STATE>`` per state word, and the sizes and flags of
        common.h."""
        out = [f"NMETRICS={max(self.METRICS) + 1}", f"NHISTS={max(self.HISTOGRAMS, default=0) + 1}",
               f"NSLOTS={self.slots}", f"NSTATE={len(self.STATE)}", f"NBUCKETS={NBUCKETS}",
               f"FILTER_TGID={FILTER_TGID}", f"FILTER_TID={FILTER_TID}"]
        out += [f"M_{name.upper()}={i}" for i, (_, name) in sorted(self.METRICS.items())]
        out += [f"H_{name.upper()}={i}" for i, (_, name) in sorted(self.HISTOGRAMS.items())]
        out += [f"S_{name.upper()}={i}" for i, name in enumerate(self.STATE)]
        return out

    def defines(self) -> list[str]:
        """Preprocessor definitions: the ids (:meth:`id_defines`) and, for the running kernel, which
        tracepoints/fields exist, arities, which points use their raw tracepoint variant and the
        member offsets it reads."""
        out = self.id_defines()
        for p in self.POINTS:
            if p.kind == "tracepoint":
                cat, _, ev = p.target.partition(":")
                fields = ladder.tracepoint_fields(cat, ev)
                if fields is not None:
                    out.append(f"HAVE_TP_{cat}__{ev}")
                    out += [f"HAVE_FIELD_{ev}_{f}" for f in sorted(fields) if not f.startswith("common_")]
                    if self.raw_tracepoint(p):
                        out.append(f"RAW_TP_{ev}")
                        for r in p.raw_reads:
                            struct, member = r.split(".")
                            d = f"OFFSET_{struct}__{member}={ladder.struct_member_offset(struct, member)}"
                            out += [d] if d not in out else []
            elif p.kind == "return":
                out.append(f"ARITY_{p.target}={ladder.btf_arity(p.target) or 0}")
        return out

    def program_text(self) -> str:
        """The BPF C program: common.h followed by NAME.bpf.c (:func:`zcrxprof.paths.probes_dir`)."""
        src = paths.probes_dir()
        return (src / "common.h").read_text() + "\n" + (src / f"{self.NAME}.bpf.c").read_text()

    def ebpf(self) -> str:
        """The program as compiled here, with its definitions spelled out (for ``--ebpf``)."""
        ladder.ensure_tracefs()
        defs = "".join(f"#define {d.replace('=', ' ', 1)}\n" for d in self.defines())
        return defs + self.program_text()

    # ---- attach / filter / detach -----------------------------------------------------------

    def attach(self) -> list[AttachResult]:
        """Compile, set the filter, attach every point by the ladder; returns the attach report."""
        if self.bpf is not None:
            return self.attach_report
        if not _has_bpf_privileges():
            raise ZcrxprofError(f"{self.NAME}: needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) "
                                "to load BPF programs")
        ladder.ensure_tracefs()
        self.headers = headers.select()
        headers.use(self.headers)
        try:
            from bcc import BPF   # Debian's python3-bpfcc, linked into the venv by set-up
        except ImportError:
            raise ZcrxprofError(f"BCC (Debian's python3-bpfcc) is not importable by {sys.executable}: "
                                "run scripts/setup.sh and use the project's .venv/bin/python") from None

        class ManualBPF(BPF):
            """BCC without auto-attach by function name: the ladder attaches each point by trying."""

            def _trace_autoload(self) -> None:
                pass

        t0 = time.monotonic()
        cflags = [f"-D{d}" for d in self.defines()]
        failure = ""
        with ladder.captured_stderr((1, 2)) as err:
            try:
                self.bpf = ManualBPF(text=self.program_text().encode(), cflags=cflags)
            except Exception as exc:   # BCC raises bare Exception
                failure = str(exc)
        if self.bpf is None:
            errors = [l for l in err if "error" in l.lower() or "unable" in l.lower()] or err or [failure]
            raise ZcrxprofError(f"{self.NAME}: BPF compile failed against {self.headers.describe()}: "
                                f"{errors[0].strip()}")
        self.compile_s = time.monotonic() - t0
        try:
            self.set_targets(self._pids, self._tids)
            t0 = time.monotonic()
            self.attach_report = [self._attach_point(p) for p in self.POINTS]
            self.attach_s = time.monotonic() - t0
        except BaseException:
            self.detach()
            raise
        return self.attach_report

    def _attach_point(self, p: Point) -> AttachResult:
        if p.kind == "tracepoint":
            cat, _, ev = p.target.partition(":")
            if self.raw_tracepoint(p) and ladder.tracepoint_fields(cat, ev) is not None:
                return ladder.attach_raw_tracepoint(self.bpf, self.NAME, p.target, f"raw_tracepoint__{ev}")
            return ladder.attach_tracepoint(self.bpf, self.NAME, p.target, f"tracepoint__{cat}__{ev}")
        if p.kind == "entry":
            return ladder.attach_function(self.bpf, self.NAME, p.target, f"kfunc__{p.target}",
                                          f"kprobe_{p.target}")
        return ladder.attach_function(self.bpf, self.NAME, p.target, f"kretfunc__{p.target}",
                                      f"kretprobe_{p.target}", ret=True)

    def set_targets(self, pids: list[int] | None = None, tids: list[int] | None = None) -> None:
        """Count only these processes (tgids) and/or threads; both None counts every thread.

        An empty list counts nothing until the next call, so a collector can attach first and name
        its workload once it has started.
        """
        self._pids, self._tids = pids, tids
        if self.bpf is None:
            return
        mode = (FILTER_TGID if pids is not None else 0) | (FILTER_TID if tids is not None else 0)
        for name, ids in (("target_tgids", pids), ("target_tids", tids)):
            table = self.bpf[name.encode()]
            table.clear()
            for i in ids or []:
                table[ctypes.c_uint32(i)] = ctypes.c_uint8(1)
        table = self.bpf[b"filter_mode"]
        f = table[ctypes.c_int(0)]
        f.mode, f.generation = mode, f.generation + 1    # per-thread filter caches expire
        table[ctypes.c_int(0)] = f

    def detach(self) -> None:
        """Detach every program and free the maps (safe to call twice)."""
        if self.bpf is not None:
            bpf, self.bpf = self.bpf, None
            with ladder.captured_stderr():
                bpf.cleanup()

    def __enter__(self) -> "ProbeTool":
        self.attach()
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

    def attached(self) -> list[AttachResult]:
        """The points that attached."""
        return [r for r in self.attach_report if r.status == "attached"]

    def require_core(self) -> None:
        """Raise one line naming every reason when none of the tool's core points attached."""
        core = {p.target for p in self.POINTS if p.core}
        if not any(r.target in core for r in self.attached()):
            why = "; ".join(r.line() for r in self.attach_report if r.target in core)
            raise ZcrxprofError(f"{self.NAME}: nothing to trace on kernel {os.uname().release}: {why}")

    # ---- reading -----------------------------------------------------------------------------

    def snapshot(self, t: float | None = None) -> list[dict]:
        """Cumulative counters since attach: rows ``{t, probe, tid, metric, value}`` (non-zero ones)."""
        if self.bpf is None:
            raise ZcrxprofError(f"{self.NAME}: snapshot before attach")
        t = time.monotonic() if t is None else t
        rows = []
        for tid, counters in self.counter_items():
            for i, (target, metric) in self.METRICS.items():
                if counters.v[i]:
                    rows.append({"t": t, "probe": f"{self.NAME}:{self._short(target)}", "tid": tid,
                                 "metric": metric, "value": int(counters.v[i])})
        rows += self.extra_rows(t)
        return sorted(rows, key=lambda r: (r["tid"], r["probe"], r["metric"]))

    def slot_usage(self) -> dict:
        """Slots: ``{slots, used, overflows}`` (threads that found no slot left are not counted)."""
        if self.bpf is None:
            raise ZcrxprofError(f"{self.NAME}: slot_usage before attach")
        a = self.bpf[b"slot_alloc"][ctypes.c_int(0)]
        return {"slots": self.slots, "used": min(int(a.next), self.slots), "overflows": int(a.overflows)}

    def thread_slots(self) -> list[tuple[int, int]]:
        """(slot, tid) of every allocated slot, exited threads included."""
        info = self.bpf[b"slot_info"]
        out = []
        for slot in range(self.slot_usage()["used"]):
            i = info[ctypes.c_int(slot)]
            if i.valid:
                out.append((slot, int(i.tid)))
        return out

    def counter_items(self) -> list[tuple[int, object]]:
        """(tid, counters) pairs read from the per-slot ``counts`` array; slots of one tid (reused
        after a thread exited) are added up."""
        table = self.bpf[b"counts"]
        by_tid: dict[int, object] = {}
        for slot, tid in self.thread_slots():
            c = table[ctypes.c_int(slot)]
            if tid in by_tid:
                for i in range(len(c.v)):
                    by_tid[tid].v[i] += c.v[i]
            else:
                by_tid[tid] = c
        return list(by_tid.items())

    def extra_rows(self, t: float) -> list[dict]:
        """Rows from tool-specific maps (none by default)."""
        return []

    def histograms(self) -> list[dict]:
        """log2 histograms: rows ``{probe, tid, metric, lo, hi, count}`` (bounds inclusive)."""
        if self.bpf is None:
            raise ZcrxprofError(f"{self.NAME}: histograms before attach")
        table = self.bpf[b"hists"]
        counts: dict[tuple[int, int, int], int] = {}
        for slot, tid in self.thread_slots():
            row = table[ctypes.c_int(slot)].b
            for h in self.HISTOGRAMS:
                for bucket, n in enumerate(row[h * NBUCKETS:(h + 1) * NBUCKETS]):
                    if n:
                        key = (tid, h, bucket)
                        counts[key] = counts.get(key, 0) + int(n)
        rows = []
        for (tid, h, bucket), n in counts.items():
            target, metric = self.HISTOGRAMS[h]
            lo, hi = (1 << bucket) >> 1, (1 << bucket) - 1
            rows.append({"probe": f"{self.NAME}:{self._short(target)}", "tid": tid,
                         "metric": metric, "lo": lo, "hi": hi, "count": n})
        return sorted(rows, key=lambda r: (r["tid"], r["metric"], r["lo"]))

    def prog_stats(self) -> list[dict]:
        """Per loaded program: ``{program, prog_id, run_cnt, run_time_ns}`` from its fdinfo.

        run_cnt/run_time_ns count only while ``kernel.bpf_stats_enabled`` is 1.
        """
        if self.bpf is None:
            raise ZcrxprofError(f"{self.NAME}: prog_stats before attach")
        out = []
        for name, fn in self.bpf.funcs.items():
            info = {}
            for line in Path(f"/proc/self/fdinfo/{fn.fd}").read_text().splitlines():
                key, _, val = line.partition(":")
                info[key.strip()] = val.strip()
            out.append({"program": name.decode() if isinstance(name, bytes) else name,
                        "prog_id": int(info.get("prog_id", -1)), "run_cnt": int(info.get("run_cnt", 0)),
                        "run_time_ns": int(info.get("run_time_ns", 0))})
        return out

    def report_dicts(self) -> list[dict]:
        """The attach report as plain data."""
        return [r.as_dict() for r in self.attach_report]
