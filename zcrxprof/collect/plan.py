"""The run matrix of a recording: topologies × parameter sweeps × repetitions, interleaved."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from zcrxprof.errors import UsageError
from zcrxprof.vocab import BACKENDS, MULTI_RING_TOPOLOGIES, TOPOLOGIES

BACKEND_CHOICES = ("auto", *BACKENDS)   # auto: zcrx-nodev in the kernel lab, else copy (or zcrx with --ifname)

# One ring spends 2 µs of calibrated work per KiB on top of the checksum, so it tops out near
# 4 Gbit/s, well below what the sender pushes over veth (~20 Gbit/s): the single ring saturates
# and the topologies differ in how they spread that work.
DEFAULT_WORK_NS_PER_KIB = 2000.0
MAX_RUNS = 10000            # a larger plan is a typo (it would take days), not a recording


@dataclass(frozen=True)
class RunSpec:
    """One planned run."""

    run_id: int
    repetition: int
    topology: str
    rings: int              # receiving rings (1 for single and workers)
    workers: int            # worker threads (workers topology only)
    connections: int        # TCP connections, the same for every topology of a sweep point
    work_ns_per_kib: float
    rate_gbit_s: float      # 0 = unpaced
    duration_s: float

    def label(self) -> str:
        """Short human label, e.g. ``shared-ifq ×4 work=2000ns/KiB``."""
        n = self.workers if self.topology == "workers" else self.rings
        rate = f" rate={self.rate_gbit_s:g}G" if self.rate_gbit_s else ""
        return f"{self.topology} ×{n} work={self.work_ns_per_kib:g}ns/KiB{rate}"


def parse_list(text: str, kind: type, flag: str, minimum: float | None = None) -> list:
    """``"1,2,4"`` → ``[1, 2, 4]`` of ``kind``; UsageError naming ``flag`` on bad input."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise UsageError(f"{flag}: empty list")
    out = []
    for s in items:
        try:
            v = kind(s)
        except ValueError:
            raise UsageError(f"{flag}: {s!r} is not a{'n integer' if kind is int else ' number'}") from None
        if not math.isfinite(v):
            raise UsageError(f"{flag}: {s} is not a finite number")
        if minimum is not None and v < minimum:
            raise UsageError(f"{flag}: {s} is below the minimum {minimum:g}")
        out.append(v)
    return out


def parse_topologies(text: str) -> list[str]:
    """``"single,shared-ifq"`` or ``"all"`` → topology names, checked."""
    if text.strip() == "all":
        return list(TOPOLOGIES)
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in TOPOLOGIES]
    if bad or not names:
        raise UsageError(f"--topology: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(TOPOLOGIES)} or all")
    return list(dict.fromkeys(names))


def build_plan(topologies: list[str], rings: list[int], works: list[float], rates: list[float],
               duration_s: float, repeat: int) -> list[RunSpec]:
    """Every run, interleaved: each repetition walks every sweep point, each point every topology.

    ``single`` has one ring whatever ``rings`` says, so it runs once per (work, rate) point;
    ``workers`` gets N worker threads behind its one ring, the others N rings.
    """
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise UsageError("--duration must be a finite number > 0")
    if repeat < 1:
        raise UsageError("--repeat must be >= 1")
    planned = repeat * len(rings) * len(works) * len(rates) * len(topologies)
    if planned > MAX_RUNS:
        raise UsageError(f"the plan has up to {planned} runs; at most {MAX_RUNS} (lower --repeat or the sweeps)")
    specs: list[RunSpec] = []
    for rep in range(repeat):
        seen_single: set[tuple[float, float]] = set()
        for n, work, rate in itertools.product(rings, works, rates):
            for topo in topologies:
                if topo == "single":
                    if (work, rate) in seen_single:
                        continue
                    seen_single.add((work, rate))
                specs.append(RunSpec(
                    run_id=len(specs), repetition=rep, topology=topo,
                    rings=n if topo in MULTI_RING_TOPOLOGIES else 1,
                    workers=n if topo == "workers" else 0,
                    connections=n, work_ns_per_kib=work, rate_gbit_s=rate, duration_s=duration_s))
    return specs
