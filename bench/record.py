#!/usr/bin/env python3
"""Benchmark of `zcrxprof record`, all measured in this run:

1. start-to-first-sample latency: launching `zcrxprof record` → the first sample of its first run
   (metadata `first_sample_at`); target ≤ 1.5 s.
2. collector overhead: receive Gbit/s of the same load generator run under `record` vs bare (same
   plan entry, hence the same receiver/sender command lines and connection count, sender in its own
   namespace), alternating pairs, medians;
   target ratio ≥ 0.98. Measured for record's defaults (host probes + perf stat) and for
   `--probes none --no-perf` (the collector's own sampling only).

Labels: copy backend, topology single, this host's kernel, not emulated. Usage:
    .venv/bin/python bench/record.py [--pairs 5] [--duration 3]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zcrxprof.collect.plan import DEFAULT_WORK_NS_PER_KIB, build_plan  # noqa: E402
from zcrxprof.collect.record import loadgen_binary, placement  # noqa: E402
from zcrxprof.collect.runner import RunSetup, receiver_argv, sender_argv  # noqa: E402
from zcrxprof.dataset import load  # noqa: E402

TOPOLOGY = "single"
RINGS = 2        # record's default; `single` has one ring and RINGS connections


def bare_run(setup: RunSetup, duration: float) -> float:
    """One receiver + sender pair exactly as record starts them, without any collection; Gbit/s."""
    spec = build_plan([TOPOLOGY], [RINGS], [DEFAULT_WORK_NS_PER_KIB], [0.0], duration, 1)[0]
    rx = subprocess.Popen(receiver_argv(spec, setup), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          stdin=subprocess.DEVNULL, text=True)
    tx = None
    try:
        first = json.loads(rx.stdout.readline())
        assert first.get("event") == "listening", first
        tx = subprocess.Popen(sender_argv(spec, setup, int(first["port"])), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        lines = rx.stdout.read().splitlines()
        rx.wait(timeout=60)
        tx.wait(timeout=60)
    finally:
        for p in (rx, tx):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    summary = json.loads(lines[-1])
    assert summary["type"] == "summary" and summary["status"] == "ok", summary
    return float(summary["gbit_s"])


def record_run(out: Path, name: str, duration: float, extra: list[str]) -> tuple[float, float]:
    """One `zcrxprof record` of the same run; (Gbit/s, launch → first sample seconds)."""
    launch = time.time()
    p = subprocess.run([sys.executable, "-m", "zcrxprof", "record", "--topology", TOPOLOGY, "--rings", str(RINGS),
                        "--repeat", "1",
                        "--duration", f"{duration:g}", "--out", str(out), "--name", name, "--quiet", *extra],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise SystemExit(f"record failed: {p.stderr.strip().splitlines()[-1:]}")
    ds = load(out / name)
    run = ds["runs"].iloc[0]
    assert run["status"] == "ok", run["error"]
    first = dt.datetime.fromisoformat(ds.metadata["first_sample_at"]).timestamp()
    return float(run["gbit_s"]), first - launch


def fmt(values: list[float], unit: str = "") -> str:
    """median [min–max]."""
    return f"{statistics.median(values):.3f}{unit} [{min(values):.3f}–{max(values):.3f}]"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5, help="bare/record pairs per variant (default 5)")
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per run (default 3)")
    args = ap.parse_args()
    variants = {"defaults (probes + perf stat)": [], "--probes none --no-perf": ["--probes", "none", "--no-perf"]}
    kernel = os.uname().release
    print(f"bench/record.py — backend copy, topology {TOPOLOGY}, work {DEFAULT_WORK_NS_PER_KIB:g} ns/KiB, "
          f"kernel {kernel}, host (not emulated), sender in its own namespace, {os.cpu_count()} CPUs "
          f"(shared with other work: figures are noisy)")
    latencies: dict[str, list[float]] = {label: [] for label in variants}
    n = 0
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp, contextlib.ExitStack() as stack:
        setup = RunSetup(loadgen_binary(), "copy", placement(stack, "netns"), {})
        for label, extra in variants.items():
            bare, rec = [], []
            for i in range(args.pairs):
                order = ("bare", "record") if i % 2 == 0 else ("record", "bare")
                for what in order:
                    if what == "bare":
                        bare.append(bare_run(setup, args.duration))
                    else:
                        n += 1
                        g, lat = record_run(Path(tmp), f"run{n}", args.duration, extra)
                        rec.append(g)
                        latencies[label].append(lat)
            ratio = statistics.median(rec) / statistics.median(bare)
            pair_ratios = [r / b for r, b in zip(rec, bare)]
            print(f"\n[{label}] {args.pairs} pairs × {args.duration:g} s")
            print(f"  bare loadgen      Gbit/s {fmt(bare)}")
            print(f"  under record      Gbit/s {fmt(rec)}")
            print(f"  ratio record/bare (medians) {ratio:.3f}  per pair {fmt(pair_ratios)}  target ≥ 0.98 "
                  f"{'met' if ratio >= 0.98 else 'NOT met'}")
    print("\nstart-to-first-sample latency (launch of `zcrxprof record` → first sample of run 1), target ≤ 1.5 s:")
    for label, lats in latencies.items():
        print(f"  [{label}] {len(lats)} launches: {fmt(lats, ' s')}  "
              f"{'met' if statistics.median(lats) <= 1.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
