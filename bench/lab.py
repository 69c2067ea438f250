"""Benchmark the kernel lab: boot-to-command time, and zcrx-nodev vs the copy backend in the guest.

1. Boot-to-command: `lab.run(["true"])` five times; the host-clock time from starting vng to the
   guest command starting (median, min, max), with the accelerator.
2. In ONE guest boot, interleaved rounds of: copy/single (the reference), zcrx-nodev/single,
   zcrx-nodev/shared-ifq with 2 rings and zcrx-nodev/workers with 2 workers (which write the RQEs),
   each --duration D over loopback with verification; receive throughput as ratios to the
   copy/single figure of the same round (median, min, max).

Every figure is labelled with backend, topology, kernel and "emulated (TCG)" when it ran under TCG:
TCG timings show relative shapes, never absolute performance. zcrx-nodev is a kernel COPY into the
area (no NIC): never zero-copy.

    .venv/bin/python bench/lab.py [--boots 5] [--rounds 3] [--duration 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from zcrxprof import lab, vocab  # noqa: E402

CASES = [  # (label, backend, topology, extra args); the first one is the reference
    ("copy/single", "copy", "single", ""),
    ("zcrx-nodev/single", "zcrx-nodev", "single", ""),
    ("zcrx-nodev/shared-ifq x2", "zcrx-nodev", "shared-ifq", "--rings 2"),
    ("zcrx-nodev/workers x2", "zcrx-nodev", "workers", "--workers 2"),   # workers write the RQEs
]


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3g} (min {min(values):.3g}, max {max(values):.3g}, n={len(values)})"


def accel_label(accel: str) -> str:
    return "emulated (TCG)" if vocab.is_emulated_timing(accel) else "KVM"


def boot_times(k: lab.LabKernel, boots: int) -> None:
    times, accels = [], set()
    for _ in range(boots):
        res = lab.run(["true"], kernel=k.version, cpus=2, timeout=300)
        if res.returncode != 0:
            sys.exit(f"bench/lab.py: guest `true` exited {res.returncode}")
        times.append(res.boot_s)
        accels.add(res.accelerator)
    label = "/".join(sorted(accel_label(a) for a in accels))
    print(f"boot-to-command, kernel {k.version}, {label}: {spread(times)} s")


def guest_throughput(k: lab.LabKernel, rounds: int, duration: float) -> None:
    out = lab.RUNS_DIR / f"bench-{time.time_ns()}"
    out.mkdir(parents=True)
    loadgen = PROJECT / "loadgen" / "zcrx-loadgen"
    lines = []
    for r in range(rounds):
        for i, (_, backend, topo, extra) in enumerate(CASES):
            lines.append(f"{loadgen} --backend {backend} --topology {topo} {extra} --duration {duration} "
                         f"--interval {duration} --json > {out}/{r}-{i}.json 2> {out}/{r}-{i}.err")
    try:
        res = lab.run(["sh", "-c", "\n".join(lines)], kernel=k.version, cpus=2, timeout=120 + rounds * len(CASES) * (duration + 20))
        if res.timed_out:
            sys.exit("bench/lab.py: the guest runs timed out")
        gbit: dict[int, list[float]] = {i: [] for i in range(len(CASES))}
        ratio: dict[int, list[float]] = {i: [] for i in range(len(CASES))}
        for r in range(rounds):
            per = {}
            for i in range(len(CASES)):
                recs = [json.loads(x) for x in (out / f"{r}-{i}.json").read_text().splitlines() if x.startswith("{")]
                summ = [x for x in recs if x["type"] == "summary"]
                if not summ or summ[-1]["status"] != "ok" or summ[-1]["verify_errors"]:
                    sys.exit(f"bench/lab.py: {CASES[i][0]} failed: {(out / f'{r}-{i}.err').read_text().strip()}")
                per[i] = summ[-1]["bytes_received"] * 8 / summ[-1]["duration_s"] / 1e9
                gbit[i].append(per[i])
            for i in range(len(CASES)):
                ratio[i].append(per[i] / per[0])
        print(f"guest receive throughput over loopback, kernel {k.version}, {accel_label(res.accelerator)}, "
              f"{rounds} rounds x {duration:g} s, verified; ratio = case / {CASES[0][0]} in the same round:")
        for i, (label, backend, topo, _) in enumerate(CASES):
            kind = "kernel copy into a NODEV area (not zero-copy)" if backend == "zcrx-nodev" else "kernel copy"
            print(f"  {label:<26} ratio {spread(ratio[i])}; Gbit/s {spread(gbit[i])}  "
                  f"[backend {backend}, topology {topo}, {kind}]")
    finally:
        subprocess.run(["rm", "-rf", str(out)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boots", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=3.0)
    args = ap.parse_args()
    subprocess.run(["make", "-s", "-C", str(PROJECT / "loadgen")], check=True)
    k = lab.prepare(check_archive=False)
    boot_times(k, args.boots)
    guest_throughput(k, args.rounds, args.duration)
    return 0


if __name__ == "__main__":
    sys.exit(main())
