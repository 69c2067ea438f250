"""The bcc-style command every probe tool shares: ``python -m zcrxprof.probes.NAME [interval [count]]``.

Parses the arguments, attaches the tool (:mod:`zcrxprof.probes.tool`), prints an interval table or
JSON lines, and the totals and histograms at the end (Ctrl-C or SIGTERM); failures are one line.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from zcrxprof import children
from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.probes.tool import ProbeTool, place


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
    out = sys.stdout
    # SIGTERM and SIGHUP end the run like Ctrl-C: summary printed, probes detached
    with children.raising_signals(), tool:
        tool.require_core()
        where = place()
        head = {"type": "attach", "tool": cls.NAME, **where, "headers": tool.headers.describe(),
                "compile_s": round(tool.compile_s, 3), "attach_s": round(tool.attach_s, 3),
                "probes": tool.report_dicts()}
        if args.json:
            print(json.dumps(head), file=out, flush=True)
        else:
            print(f"{cls.NAME}: kernel {where['kernel']} ({where['where']}"
                  f"{', emulated timing (TCG)' if where['emulated_timing'] else ''}); BPF compiled against "
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
