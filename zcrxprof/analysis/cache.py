"""Cache effects: the work function's cost per KiB where the payload is hot (worked on by the
receiving thread) against cold (handed to a worker on another core); PMU counters when a dataset
has them, and a precise statement when it does not."""
from __future__ import annotations

import pandas as pd

from zcrxprof.analysis.load import KEY, Frames
from zcrxprof.analysis.saturation import BASE
from zcrxprof.analysis.stats import bootstrap_ratio

HOT_TOPOLOGIES = ("single", "ifq-per-ring", "shared-ifq")
CACHE_EVENTS = ("cache-misses", "LLC-load-misses", "L1-dcache-load-misses")


def work_cost(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: user CPU per KiB of the threads that did the work, ``placement`` (``hot``: the
    receiving thread works on what it just received; ``cold``: a worker thread works on what
    another thread received), and ``checksum_ns_per_kib`` = that minus the calibrated busy cost
    (what reading, verifying and checksumming the payload cost).

    User CPU time, not the load generator's ``work_ns``: ``work_ns`` is wall time inside the work
    function and grows whenever the thread is preempted (more threads than cores), which would pass
    for a cache effect. A hot thread's user time also holds its small user-side receive work, so
    the comparison leans against finding cold payload dearer."""
    hot = runs[runs["topology"].isin(HOT_TOPOLOGIES)]
    hot = hot.assign(placement="hot", work_bytes=hot["rx_bytes"], work_cpu_ns=hot["rx_utime_ns"])
    cold = runs[runs["topology"] == "workers"]
    cold = cold.assign(placement="cold", work_bytes=cold["worker_bytes"], work_cpu_ns=cold["worker_utime_ns"])
    w = pd.concat([hot, cold], ignore_index=True)
    w = w[(w["work_bytes"] > 0) & (w["work_cpu_ns"] > 0)]
    w = w.assign(measured_ns_per_kib=w["work_cpu_ns"] / (w["work_bytes"] / 1024))
    w["checksum_ns_per_kib"] = w["measured_ns_per_kib"] - w["work_ns_per_kib"]
    return w[[*KEY, *[c for c in BASE if c != "dataset"], "topology", "placement", "rings", "workers",
              "measured_ns_per_kib", "checksum_ns_per_kib"]]


def hot_vs_cold(runs: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: median user-CPU ns/KiB of the working threads, hot and cold, and the
    ratio cold/hot with a 95 % bootstrap CI (> 1: working on a payload received on another core
    costs more). Whole per-KiB costs are compared, not the checksum share alone, whose estimate
    can go negative when the calibrated busy loop runs faster than at calibration."""
    w = work_cost(runs)
    rows = []
    for key, g in w.groupby(BASE, dropna=False):
        hot, cold = g[g["placement"] == "hot"], g[g["placement"] == "cold"]
        if hot.empty or cold.empty:
            continue
        ratio = bootstrap_ratio(cold["measured_ns_per_kib"], hot["measured_ns_per_kib"])
        rows.append({**dict(zip(BASE, key)),
                     "hot_ns_per_kib": hot["measured_ns_per_kib"].median(),
                     "cold_ns_per_kib": cold["measured_ns_per_kib"].median(),
                     "cold_over_hot": ratio.value, "ci_lo": ratio.lo, "ci_hi": ratio.hi,
                     "n_hot": len(hot), "n_cold": len(cold)})
    return pd.DataFrame(rows)


def pmu_counters(frames: Frames) -> tuple[pd.DataFrame, str]:
    """Cache misses per KiB received by topology when ``perf_counters`` holds counted cache events,
    and a one-line statement of what the dataset has (naming the kernel when there is no PMU)."""
    pc = frames.perf_counters
    kernels = ", ".join(sorted(set(frames.runs["kernel"]))) or "unknown kernel"
    if pc.empty:
        return pd.DataFrame(), (f"No perf counters in this dataset (kernel {kernels}): cache effects "
                                "are shown as the hot-vs-cold work cost only")
    cache = pc[pc["event"].isin(CACHE_EVENTS)]
    counted = cache[(cache["status"] == "counted") & cache["value"].notna()]
    if counted.empty:
        statuses = sorted(set(cache["status"])) or ["not requested"]
        return pd.DataFrame(), (f"No hardware PMU: perf reported the cache events "
                                f"{'/'.join(CACHE_EVENTS)} as {', '.join(statuses)} (kernel {kernels}); "
                                "cache effects are shown as the hot-vs-cold work cost instead")
    per_run = counted.groupby([*KEY, "event"], as_index=False)["value"].sum()
    runs = frames.ok_runs()[[*KEY, "topology", "bytes_received"]]
    per_run = per_run.merge(runs, on=KEY)
    per_run["misses_per_kib"] = per_run["value"] / (per_run["bytes_received"] / 1024)
    table = per_run.groupby(["dataset", "topology", "event"], as_index=False)["misses_per_kib"].median()
    return table, f"Hardware cache counters present ({', '.join(sorted(set(counted['event'])))})"
