#!/usr/bin/env python3
"""Soak of `zcrxprof record` (not in CI): record for a long time with all probes on and
check that it stays healthy. Default 30 minutes; ``--minutes`` shortens it.

The recording is `record --probes all` (perf stat too, when installed) over all four topologies,
``--run-seconds`` per run, repeated until the time is used. Every 2 s the resident memory (VmRSS)
of the collector (the `record` process) and of the load generators is sampled. Reported, all from
this one soak:

1. collector memory: median RSS of the last third of the soak / median of the first third, counted
   from the first run on (start-up imports and probe compilation excluded; a leak grows it;
   target ≤ 1.10), with min/max;
2. load generator memory: per process, RSS at its last sample / RSS at the middle of its life (the
   first seconds fault in the buffer pools as they are first used; median, min/max over processes;
   target ≤ 1.05) — a leak inside one run would grow it; the worst process's series is printed;
3. verification errors over all runs (target 0) and runs not `ok` (target 0);
4. every interval present: per ok run and receiving (rx, worker) thread, every whole interval of
   the run has its own record — record k ends in [k·interval, (k+1)·interval); a missed tick or a
   lost record breaks that — and there are n records, or n + 1 with the last, partial one, n =
   floor(loadgen_duration_s / interval) (how the load generator emits them: loadgen/stats.c,
   docs/loadgen-output.md). Target: every thread; the worst run is printed. Also /proc + probe
   samples per run.

Labels: copy backend, host kernel, not emulated, sender in its own namespace. The machine may be
shared with other work: RSS is unaffected, throughput is not (so it is not judged here). Usage:
    .venv/bin/python bench/soak.py [--minutes 30] [--run-seconds 20] [--keep]
"""
from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zcrxprof import children  # noqa: E402
from zcrxprof.dataset import load  # noqa: E402

SAMPLE_S = 2.0
TOPOLOGIES = 4
RUN_OVERHEAD_S = 3.0        # set-up and write per run (measured roughly here)


def rss_kib(pid: int) -> int | None:
    """VmRSS of ``pid`` in KiB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def loadgens(pid: int) -> list[int]:
    """Descendants of ``pid`` that are the load generator."""
    out = []
    for k in children.descendants(pid):
        try:
            if Path(f"/proc/{k}/comm").read_text().strip().startswith("zcrx-loadgen"):
                out.append(k)
        except OSError:
            pass
    return out


def interval_gaps(runs, intervals, interval_s: float) -> list[tuple[int, int, str, int, int, float]]:
    """Per ok run and receiving (rx, worker) thread: (whole intervals without their record, run_id,
    thread, records, n, measured duration), worst first.

    The load generator emits a thread's record k at its first look at the clock at or after k·interval,
    so record k ends (``t``) in [k·I, (k+1)·I); when the thread ends it adds a last, partial record
    (docs/loadgen-output.md). A missed tick (its interval merged into the next record) or a lost
    record makes a later record k end at or after (k+1)·I. n = whole intervals in the run's measured
    duration: the thread must have n records, or n + 1 with the partial one."""
    out = []
    for run in runs[runs["status"] == "ok"].itertuples():
        duration = run.loadgen_duration_s if run.loadgen_duration_s > 0 else run.duration_s
        n = math.floor(duration / interval_s + 1e-9)
        rx = intervals[(intervals["run_id"] == run.run_id) & (intervals["role"].isin(["rx", "worker"]))]
        for thread, per_thread in rx.groupby("thread"):
            ends = sorted(per_thread["t"])
            missed = max([0] + [math.floor(t / interval_s + 1e-9) - k for k, t in enumerate(ends, 1)])
            got = len(ends)
            out.append((max(missed, n - got, got - (n + 1)), run.run_id, thread, got, n, duration))
    return sorted(out, key=lambda g: (-g[0], g[1], g[2]))


def spread(values: list[float]) -> str:
    """``median (min–max)`` of ``values``."""
    if not values:
        return "n/a"
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="length of the soak (default 30)")
    ap.add_argument("--run-seconds", type=float, default=20.0, help="duration of each run (default 20)")
    ap.add_argument("--keep", action="store_true", help="keep the dataset (printed) instead of deleting it")
    args = ap.parse_args()
    if not (math.isfinite(args.minutes) and args.minutes > 0 and math.isfinite(args.run_seconds)
            and args.run_seconds >= 5):
        print("soak.py: --minutes must be > 0 and --run-seconds >= 5", file=sys.stderr)
        return 2
    repeat = max(1, round(args.minutes * 60 / (TOPOLOGIES * (args.run_seconds + RUN_OVERHEAD_S))))
    out = Path(tempfile.mkdtemp(prefix="zcrxprof-soak-"))
    cmd = [sys.executable, "-m", "zcrxprof", "record", "--out", str(out), "--name", "soak", "--probes", "all",
           "--topology", "all", "--repeat", str(repeat), "--duration", f"{args.run_seconds:g}", "--quiet"]
    print(f"soak: {' '.join(cmd[2:])}  ({repeat * TOPOLOGIES} runs, ~{args.minutes:g} min)", flush=True)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    collector: list[tuple[float, int]] = []
    first_run_at: float | None = None
    per_loadgen: dict[int, list[tuple[float, int]]] = {}
    try:
        while p.poll() is None:
            now = time.monotonic() - t0
            kib = rss_kib(p.pid)
            if kib is not None:
                collector.append((now, kib))
            for lg in loadgens(p.pid):
                if first_run_at is None:
                    first_run_at = now
                kib = rss_kib(lg)
                if kib is not None:
                    per_loadgen.setdefault(lg, []).append((now, kib))
            deadline = time.monotonic() + SAMPLE_S
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        stdout, stderr = p.communicate()
    except KeyboardInterrupt:
        p.send_signal(2)
        p.communicate(timeout=120)
        raise
    elapsed = time.monotonic() - t0
    if p.returncode != 0:
        print(f"soak: record failed (exit {p.returncode}): {stderr.strip()[-2000:]}", file=sys.stderr)
        return 1
    ds = load(out / "soak")
    runs, intervals, system, probes = ds["runs"], ds["intervals"], ds["system"], ds["probes"]
    interval_s = (ds.metadata.get("plan") or {}).get("interval_s", 1.0)

    collector = [(t, k) for t, k in collector if first_run_at is not None and t >= first_run_at]
    if not collector:
        print("soak: no memory samples during runs (too short?)", file=sys.stderr)
        return 1
    third = max(1, len(collector) // 3)
    early = statistics.median(k for _, k in collector[:third])
    late = statistics.median(k for _, k in collector[-third:])
    series = {pid: s for pid, s in per_loadgen.items() if len(s) >= 3}
    lg_ratios = [s[-1][1] / s[len(s) // 2][1] for s in series.values()]
    worst = max(series.values(), key=lambda s: s[-1][1] / s[len(s) // 2][1], default=[])
    ok = runs[runs["status"] == "ok"]
    gaps = interval_gaps(runs, intervals, interval_s)
    samples = [system[system["run_id"] == run.run_id]["t"].nunique() / math.floor(run.duration_s / interval_s)
               for run in ok.itertuples()]
    probe_runs = probes["run_id"].nunique() if len(probes) else 0

    label = (f"copy backend, topologies {', '.join(sorted(runs['topology'].unique()))}, host kernel "
             f"{ds.metadata['place']['kernel']}, not emulated, sender in its own namespace; machine shared")
    print(f"soak: {elapsed / 60:.1f} min, {len(runs)} runs of {args.run_seconds:g} s — {label}")
    print(f"  probes attached: {sum(r['status'] == 'attached' for r in ds.metadata['probes'])} of "
          f"{len(ds.metadata['probes'])} points; probe rows in {probe_runs} of {len(runs)} runs")
    print(f"  collector RSS: first third {early / 1024:.1f} MiB, last third {late / 1024:.1f} MiB, ratio "
          f"{late / early:.3f} (min {min(k for _, k in collector) / 1024:.1f}, max "
          f"{max(k for _, k in collector) / 1024:.1f} MiB; {len(collector)} samples)  target <= 1.10")
    print(f"  load generator RSS end/middle of its life: {spread(lg_ratios)} over {len(lg_ratios)} processes  "
          f"target <= 1.05")
    if worst:
        print(f"    worst process RSS (s: MiB): {', '.join(f'{t:.0f}: {k / 1024:.1f}' for t, k in worst)}")
    print(f"  verification errors: {int(runs['verify_errors'].clip(lower=0).sum())}  (target 0); runs not ok: "
          f"{int((runs['status'] != 'ok').sum())}  (target 0)")
    exact = sum(g[0] == 0 for g in gaps)
    print(f"  every whole interval has its record, n or n + 1 records: {exact} of {len(gaps)} rx+worker "
          f"threads in {len(ok)} ok runs  target all")
    if gaps:
        off, run_id, thread, got, n, duration = gaps[0]
        topology = runs.loc[runs["run_id"] == run_id, "topology"].iloc[0]
        print(f"    worst run: {run_id} ({topology}), {thread}: {got} interval records in {duration:.2f} s "
              f"(expected {n} or {n + 1}; {off} interval(s) without their record or extra)")
    print(f"  /proc samples / expected per run: {spread(samples)}")
    healthy = (late / early <= 1.10 and (not lg_ratios or max(lg_ratios) <= 1.05)
               and runs["verify_errors"].clip(lower=0).sum() == 0 and (runs["status"] == "ok").all()
               and gaps and all(g[0] == 0 for g in gaps))
    print(f"soak: {'healthy' if healthy else 'NOT healthy'}")
    if args.keep:
        print(f"dataset kept: {out / 'soak'}")
    else:
        shutil.rmtree(out, ignore_errors=True)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
