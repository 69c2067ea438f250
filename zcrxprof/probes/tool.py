"""What every probe tool shares: compile, attach by the ladder, filter, read the maps, the CLI.

A tool is a subclass of :class:`ProbeTool` naming its BPF program (``probes/NAME.bpf.c``), its probe
points and the metric ids its program counts. The collector uses the class::

    with ZcrxStat(pids=[]) as tool:          # attached, counting nothing yet
        report = tool.attach_report           # one AttachResult per probe point
        tool.set_targets([loadgen_pid])       # now count that process's threads
        rows = tool.snapshot(t)               # cumulative counters, tidy rows
        hist = tool.histograms()

and ``python -m zcrxprof.probes.NAME`` runs the same class as a bcc-style command (:func:`main`).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.probes import headers, ladder
from zcrxprof.probes.ladder import AttachResult

PROBES_DIR = Path(__file__).resolve().parents[2] / "probes"
FILTER_TGID, FILTER_TID = 1, 2
NBUCKETS = 65    # log2 buckets per histogram (probes/common.h)
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
    """Where the tool runs: host or the lab guest, the kernel, and whether the CPU is emulated (TCG)."""
    lab = os.environ.get("ZCRXPROF_LAB")
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    emulated = "QEMU Virtual CPU" in cpuinfo or "QEMU TCG" in cpuinfo
    return {"where": "lab" if lab else "host", "kernel": os.uname().release, "emulated": emulated}


def _has_bpf_privileges() -> bool:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return os.geteuid() == 0
    capeff = int(next(l.split()[1] for l in status.splitlines() if l.startswith("CapEff:")), 16)
    have = lambda cap: bool(capeff >> cap & 1)
    return have(CAP_SYS_ADMIN) or (have(CAP_BPF) and have(CAP_PERFMON))


class ProbeTool:
    """Base class: subclasses set NAME, POINTS, METRICS and HISTOGRAMS (ids as in the BPF program)."""

    NAME = ""
    POINTS: tuple[Point, ...] = ()
    METRICS: dict[int, tuple[str, str]] = {}      # metric id -> (point target, metric name)
    HISTOGRAMS: dict[int, tuple[str, str]] = {}   # hist id -> (point target, metric name)
    SLOTS = 4096    # traced threads per attach (counters and histograms are per-slot arrays)
    STATE_WORDS = 0     # u64 words of per-thread state the program keeps next to each slot's counters

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

    def defines(self) -> list[str]:
        """Preprocessor definitions for the running kernel: which tracepoints/fields exist, arities,
        which points use their raw tracepoint variant and the member offsets it reads."""
        out = [f"NMETRICS={max(self.METRICS) + 1}", f"NHISTS={max(self.HISTOGRAMS, default=0) + 1}",
               f"NSLOTS={self.slots}", f"NSTATE={self.STATE_WORDS}"]
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
        """The BPF C program: probes/common.h followed by probes/NAME.bpf.c."""
        return (PROBES_DIR / "common.h").read_text() + "\n" + (PROBES_DIR / f"{self.NAME}.bpf.c").read_text()

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


# ---- the command --------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _ids(text: str) -> list[int]:
    try:
        ids = [int(x) for x in text.split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of ids: {text!r}") from None
    if not ids or any(i <= 0 for i in ids):
        raise argparse.ArgumentTypeError(f"ids must be positive integers: {text!r}")
    return ids


def _comm(tid: int) -> str:
    try:
        return Path(f"/proc/{tid}/comm").read_text().strip()
    except OSError:
        return "[idle]" if tid == 0 else "?"


def build_parser(cls: type[ProbeTool], doc: str) -> argparse.ArgumentParser:
    """The bcc-style parser: [interval [count]], -p/--pid, -t/--tid, -j/--json, hidden --ebpf."""
    summary, _, examples = doc.partition("examples:")
    ap = _Parser(prog=cls.NAME, description=summary.strip(),
                 epilog=("examples:" + examples) if examples else None,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("interval", nargs="?", type=float, default=1.0, help="output interval, seconds (default 1)")
    ap.add_argument("count", nargs="?", type=int, default=0, help="number of outputs (default: until Ctrl-C)")
    ap.add_argument("-p", "--pid", type=_ids, help="trace these processes only (comma-separated)")
    ap.add_argument("-t", "--tid", type=_ids, help="trace these threads only (comma-separated)")
    ap.add_argument("-j", "--json", action="store_true", help="JSON lines on stdout")
    ap.add_argument("--ebpf", action="store_true", help=argparse.SUPPRESS)
    return ap


def _print_table(cls: type[ProbeTool], rows: list[dict], out) -> None:
    names = [m for _, m in cls.METRICS.values()]
    extra = sorted({r["metric"] for r in rows} - set(names))
    cols = names + extra
    by_tid: dict[int, dict[str, float]] = {}
    for r in rows:
        by_tid.setdefault(r["tid"], {})[r["metric"]] = r["value"]
    width = [max(len(c), 8) for c in cols]
    print(f"{'TID':>7} {'COMM':<15} " + " ".join(c.upper().rjust(w) for c, w in zip(cols, width)), file=out)
    for tid in sorted(by_tid):
        vals = by_tid[tid]
        print(f"{tid:>7} {_comm(tid)[:15]:<15} " +
              " ".join(str(int(vals.get(c, 0))).rjust(w) for c, w in zip(cols, width)), file=out)


def _print_hist(rows: list[dict], out, per_thread: bool) -> None:
    """bcc-style log2 histograms: per thread when filtered, else all threads merged (like runqlat)."""
    groups: dict[tuple, dict[tuple[int, int], int]] = {}
    for r in rows:
        key = (r["metric"], r["tid"] if per_thread else -1)
        buckets = groups.setdefault(key, {})
        buckets[(r["lo"], r["hi"])] = buckets.get((r["lo"], r["hi"]), 0) + r["count"]
    for (metric, tid), buckets in sorted(groups.items()):
        print(f"\n{metric}" + (f", tid {tid} ({_comm(tid)})" if tid >= 0 else ", all threads"), file=out)
        top = max(buckets.values())
        for (lo, hi), n in sorted(buckets.items()):
            bar = "*" * max(1, round(40 * n / top)) if n else ""
            print(f"  {lo:>12} -> {hi:<12} : {n:<10} |{bar:<40}|", file=out)


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt   # SIGTERM ends the run like Ctrl-C: summary printed, probes detached


def _check_ids(pids: list[int] | None, tids: list[int] | None) -> None:
    for i in (pids or []) + (tids or []):
        if not Path(f"/proc/{i}").exists():
            raise UsageError(f"no such process or thread: {i}")


def run(cls: type[ProbeTool], doc: str, argv: list[str] | None = None) -> int:
    """The command: attach, print an interval table (or JSON lines), histograms at the end."""
    args = build_parser(cls, doc).parse_args(argv)
    if args.interval <= 0 or args.count < 0:
        raise UsageError(f"{cls.NAME}: interval must be > 0 and count >= 0")
    tool = cls(pids=args.pid, tids=args.tid)
    if args.ebpf:
        print(tool.ebpf())
        return 0
    _check_ids(args.pid, args.tid)
    signal.signal(signal.SIGTERM, _interrupt)
    out = sys.stdout
    with tool:
        tool.require_core()
        where = place()
        head = {"type": "attach", "tool": cls.NAME, **where, "headers": tool.headers.describe(),
                "compile_s": round(tool.compile_s, 3), "attach_s": round(tool.attach_s, 3),
                "probes": tool.report_dicts()}
        if args.json:
            print(json.dumps(head), file=out, flush=True)
        else:
            print(f"{cls.NAME}: kernel {where['kernel']} ({where['where']}"
                  f"{', emulated CPU' if where['emulated'] else ''}); BPF compiled against "
                  f"{tool.headers.describe()}", file=out)
            for r in tool.attach_report:
                print(f"  {r.line()}", file=out)
            print(f"Tracing{' pid ' + ','.join(map(str, args.pid)) if args.pid else ''}"
                  f"{' tid ' + ','.join(map(str, args.tid)) if args.tid else ''}... "
                  "Hit Ctrl-C to end.", file=out, flush=True)
        t0 = time.monotonic()
        prev: dict[tuple, float] = {}
        n = 0
        try:
            while args.count == 0 or n < args.count:
                time.sleep(args.interval)
                n += 1
                _interval(tool, t0, prev, args, out)
        except KeyboardInterrupt:
            pass
        t = time.monotonic() - t0
        rows, hist = tool.snapshot(t), tool.histograms()
        usage = tool.slot_usage()
        if usage["overflows"]:
            print(f"{cls.NAME}: warning: {usage['overflows']} threads not traced: all {usage['slots']} "
                  "thread slots were in use", file=sys.stderr)
        if args.json:
            print(json.dumps({"type": "summary", "tool": cls.NAME, "t": round(t, 3), "rows": rows,
                              "histograms": hist}), file=out, flush=True)
        else:
            print(f"\ntotal over {t:.1f} s:", file=out)
            _print_table(cls, rows, out)
            _print_hist(hist, out, per_thread=bool(args.pid or args.tid))
    return 0


def _interval(tool: ProbeTool, t0: float, prev: dict, args, out) -> None:
    t = time.monotonic() - t0
    rows = tool.snapshot(t)
    delta = []
    for r in rows:
        key = (r["probe"], r["tid"], r["metric"])
        d = r["value"] - prev.get(key, 0)
        prev[key] = r["value"]
        if d:
            delta.append({**r, "value": d, "comm": _comm(r["tid"])})
    if args.json:
        print(json.dumps({"type": "interval", "tool": tool.NAME, "t": round(t, 3),
                          "interval_s": args.interval, "rows": delta}), file=out, flush=True)
    else:
        print(f"\n{time.strftime('%H:%M:%S')} (+{t:.1f} s)", file=out)
        _print_table(type(tool), delta, out)
        out.flush()


def main(cls: type[ProbeTool], doc: str, argv: list[str] | None = None) -> int:
    """Entry point of ``python -m zcrxprof.probes.NAME``: failures are one line, never a traceback."""
    try:
        return run(cls, doc, argv)
    except ZcrxprofError as exc:
        msg = str(exc).removeprefix(f"{cls.NAME}: ")
        print(f"{cls.NAME}: error: {msg}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
