#!/usr/bin/env python3
"""Cost of `record --perf` (perf stat) and `record --profile` (perf record -g) on load generator throughput.

Each pair runs the load generator twice back to back (copy backend, loopback, sender in the same
process), once bare and once with perf attached to its threads exactly as the record plug-in does
(`--perf`: perf stat -I per thread on every thread; `--profile`: perf record -g on rx*/worker*);
the order alternates between pairs. Throughput is the receiving threads' bytes over the intervals
after the first second (perf is attached by then) in both runs; the receiving threads' CPU time
(user + system) per KiB over the same intervals is printed too, as it is far less sensitive to other
load on the machine. Prints, per mode, the on/off ratios of every pair and their median, min and
max — ratios of runs measured in the same pair.

usage: .venv/bin/python bench/perf.py [--pairs 5] [--duration 4] [--topology single] [--work-ns-per-kib N]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zcrxprof import children, paths  # noqa: E402
from zcrxprof.collect.plan import DEFAULT_WORK_NS_PER_KIB  # noqa: E402
from zcrxprof.perf.profile import ProfileSession  # noqa: E402
from zcrxprof.perf.stat import StatSession  # noqa: E402
from zcrxprof.perf.tool import (HARDWARE_EVENTS, SOFTWARE_EVENTS, TRACEPOINTS,  # noqa: E402
                                available_tracepoints, require_perf)

LOADGEN = paths.loadgen_binary()
SKIP_S = 1.0


def threads_of(proc: subprocess.Popen, timeout: float = 5.0) -> dict[str, int]:
    """name → tid of the load generator's threads once its first receiver (rx0) exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        names = children.thread_names(proc.pid)
        if "rx0" in names:
            return names
        time.sleep(0.01)
    err = proc.stderr.read().strip().splitlines()[-1:] if proc.poll() is not None else ["timed out"]
    raise SystemExit(f"bench/perf.py: the load generator's rx0 thread did not appear: {err}")


def one_run(mode: str, args, perf, events, work: Path) -> tuple[float, float]:
    """Receive throughput (Gbit/s) and receiving-thread CPU per KiB (ns) of one run with perf in
    ``mode`` (off | perf | profile)."""
    argv = [str(LOADGEN), "--json", "--topology", args.topology, "--duration", str(args.duration),
            "--interval", "0.5", "--work", "checksum", "--work-ns-per-kib", str(args.work_ns_per_kib)]
    if args.topology in ("ifq-per-ring", "shared-ifq"):
        argv += ["--rings", "2"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    session = None
    try:
        threads = threads_of(proc)
        if mode == "perf":
            session = StatSession(perf, sorted(threads.values()), events, work / "stat.out", 1000)
        elif mode == "profile":
            rx = [t for n, t in threads.items() if n.startswith(("rx", "worker"))]
            session = ProfileSession(perf, rx, work / "profile", 499)
        if session:
            session.start()
        out, err = proc.communicate(timeout=args.duration + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if session:
            session.stop()
    if proc.returncode != 0:
        raise SystemExit(f"bench/perf.py: load generator failed: {err.strip().splitlines()[-1:]}")
    recs = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    rx = [r for r in recs if r.get("type") == "interval" and r.get("role") in ("rx", "worker") and r["t"] > SKIP_S]
    if not rx:
        raise SystemExit("bench/perf.py: no receive intervals after the first second; use a longer --duration")
    first = min(r["thread"] for r in rx)
    seconds = sum(r["interval_s"] for r in rx if r["thread"] == first)
    received = sum(r["bytes"] for r in rx if r["role"] == "rx")
    cpu_ns = sum(r["utime_ns"] + r["stime_ns"] for r in rx)
    return received * 8 / seconds / 1e9, cpu_ns / (received / 1024)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--topology", default="single")
    ap.add_argument("--work-ns-per-kib", type=int, default=int(DEFAULT_WORK_NS_PER_KIB),
                    help=f"busy work per KiB on top of the checksum (default {DEFAULT_WORK_NS_PER_KIB:g}, record's)")
    args = ap.parse_args()
    if args.pairs < 1 or args.duration <= SKIP_S + 0.5:
        ap.error("need --pairs >= 1 and --duration > 1.5")
    if not LOADGEN.exists():
        ap.error(f"{LOADGEN} not built (make loadgen)")
    perf = require_perf()
    tracepoints, _ = available_tracepoints(TRACEPOINTS)
    events = [*SOFTWARE_EVENTS, *tracepoints, *HARDWARE_EVENTS]
    kernel = Path("/proc/sys/kernel/osrelease").read_text().strip()
    print(f"perf {perf.version_text} · backend copy · topology {args.topology} · kernel {kernel} · host, "
          f"not emulated · loopback, sender in-process · work checksum + {args.work_ns_per_kib} ns/KiB · "
          f"{args.pairs} pairs × {args.duration:g} s "
          f"(throughput after the first {SKIP_S:g} s)")
    with tempfile.TemporaryDirectory(prefix="zcrxprof-bench-perf-") as tmp:
        for mode in ("perf", "profile"):
            ratios, cost_ratios, on_all, off_all = [], [], [], []
            for i in range(args.pairs):
                order = ("off", mode) if i % 2 == 0 else (mode, "off")
                got = {m: one_run(m, args, perf, events, Path(tmp)) for m in order}
                (off, off_cpu), (on, on_cpu) = got["off"], got[mode]
                ratios.append(on / off)
                cost_ratios.append(on_cpu / off_cpu)
                on_all.append(on)
                off_all.append(off)
                print(f"  --{mode:<7} pair {i + 1}: off {off:6.2f} Gbit/s {off_cpu:6.0f} ns/KiB, on {on:6.2f} Gbit/s "
                      f"{on_cpu:6.0f} ns/KiB; throughput on/off {ratios[-1]:.3f}, CPU/KiB on/off {cost_ratios[-1]:.3f}",
                      flush=True)
            print(f"--{mode}: throughput on/off median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, "
                  f"max {max(ratios):.3f}); receiving-thread CPU per KiB on/off median "
                  f"{statistics.median(cost_ratios):.3f} (min {min(cost_ratios):.3f}, max {max(cost_ratios):.3f}); "
                  f"Gbit/s off median {statistics.median(off_all):.2f}, on median {statistics.median(on_all):.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
