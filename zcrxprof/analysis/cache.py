"""Cache effects: the work function's cost per KiB where the payload is hot (worked on by the
receiving thread) against cold (handed to a worker on another core); PMU counters when a dataset
has them, and a precise statement when it does not; perf counter rates per byte."""
from __future__ import annotations

import pandas as pd

from zcrxprof.analysis.profile import LABELS, RECEIVING, join_key, labelled
from zcrxprof.analysis.saturation import BASE
from zcrxprof.analysis.stats import bootstrap_ratio
from zcrxprof.dataset import KEY, Dataset, usable
from zcrxprof.perf.tool import CACHE_EVENTS
from zcrxprof.vocab import HOT_TOPOLOGIES


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


def pmu_counters(ds: Dataset) -> tuple[pd.DataFrame, str]:
    """Cache misses per KiB received by topology when ``perf_counters`` holds counted cache events,
    and a one-line statement of what the dataset has (naming the kernel when there is no PMU)."""
    pc = ds.perf_counters
    kernels = ", ".join(sorted(set(ds.runs["kernel"]))) or "unknown kernel"
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
    runs = ds.usable_runs()[[*KEY, "topology", "bytes_received"]]
    per_run = per_run.merge(runs, on=KEY)
    per_run["misses_per_kib"] = per_run["value"] / (per_run["bytes_received"] / 1024)
    table = per_run.groupby(["dataset", "topology", "event"], as_index=False)["misses_per_kib"].median()
    return table, f"Hardware cache counters present ({', '.join(sorted(set(counted['event'])))})"


def pmu_misses_per_kib(ds: Dataset, runs: pd.DataFrame) -> pd.DataFrame:
    """Per usable run and counted cache event (in ``CACHE_EVENTS`` order): misses of the working
    threads per KiB they worked on, with ``placement`` (``hot``: ring threads of a topology that
    works where it receives; ``cold``: the worker threads of ``workers``) and the ``BASE`` labels.
    Empty where perf counted no cache event (no PMU, or no ``record --perf``)."""
    pc = ds.perf_counters
    if pc.empty:
        return pd.DataFrame()
    counted = pc[pc["event"].isin(CACHE_EVENTS) & (pc["status"] == "counted") & pc["value"].notna()]
    w = work_cost(runs)[[*KEY, "placement"]].merge(runs[[*KEY, "rx_bytes", "worker_bytes"]], on=KEY)
    if counted.empty or w.empty:
        return pd.DataFrame()
    thread_prefix = counted["thread"].str.extract(r"^([a-z]+)", expand=False)
    counted = counted.assign(kind=thread_prefix.map({"rx": "hot", "worker": "cold"}))
    per_run = counted.groupby([*KEY, "event", "kind"], as_index=False)["value"].sum()
    out = per_run.merge(w, left_on=[*KEY, "kind"], right_on=[*KEY, "placement"])
    out["bytes"] = out["rx_bytes"].where(out["placement"] == "hot", out["worker_bytes"])
    out = out[out["bytes"] > 0]
    out["misses_per_kib"] = out["value"] / (out["bytes"] / 1024)
    out = out.merge(runs[[*KEY, *[c for c in BASE if c != "dataset"]]], on=KEY)
    order = {e: i for i, e in enumerate(CACHE_EVENTS)}
    out = out.sort_values("event", key=lambda s: s.map(order), kind="stable")
    return out[[*KEY, *[c for c in BASE if c != "dataset"], "event", "placement", "misses_per_kib"]]


def counter_rates(perf_counters: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per run and event: the total over all threads, per MiB received and per second of run.

    Only counted values are summed; events never counted in a run are left out (see
    ``cache_effects`` for what was not supported)."""
    counted = perf_counters[perf_counters["status"] == "counted"]
    key = join_key(perf_counters, runs)
    per_run = counted.groupby([*key, "event", "unit"], as_index=False)["value"].sum()
    cols = [*key, *[c for c in [*LABELS, "bytes_received", "loadgen_duration_s"] if c in runs.columns]]
    ok = runs[usable(runs)] if "status" in runs.columns else runs
    out = per_run.merge(ok[cols], on=key, how="inner")
    if "bytes_received" in out.columns:
        out["per_mib"] = out["value"] / (out["bytes_received"] / 2**20)
    if "loadgen_duration_s" in out.columns:
        out["per_s"] = out["value"] / out["loadgen_duration_s"]
    return out


def cache_effects(perf_counters: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Cache misses per KiB received by the receiving threads, by topology — or, per event, why not.

    Columns: labels, event, status (`counted` | `not supported` | `absent`), runs,
    misses_per_kib_median/min/max (NaN unless counted), note."""
    keys = [c for c in ["dataset", *LABELS] if c in runs.columns]
    key = join_key(perf_counters, runs)
    rows = []
    recv = perf_counters[perf_counters["thread"].str.contains(RECEIVING)]
    recv = labelled(recv[recv["event"].isin(CACHE_EVENTS)], runs)
    ok = runs[usable(runs)] if "status" in runs.columns else runs
    for group, group_runs in ok.groupby(keys):
        label = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        for event in CACHE_EVENTS:
            mine = recv.set_index(key).index.isin(group_runs.set_index(key).index)
            ev = recv[mine & (recv["event"] == event)]
            row = {**label, "event": event, "runs": len(group_runs), "misses_per_kib_median": float("nan"),
                   "misses_per_kib_min": float("nan"), "misses_per_kib_max": float("nan")}
            if ev.empty:
                row.update(status="absent", note="perf stat did not run for these runs (record --perf)")
            elif not (ev["status"] == "counted").any():
                row.update(status="not supported",
                           note=f"perf reported {event} <not supported>: no hardware PMU where these runs "
                                "executed; use the hot-vs-cold work cost (work ns/KiB on the receiving "
                                "core vs another core) as the cache-effect measure")
            else:
                misses = ev[ev["status"] == "counted"].groupby(key)["value"].sum()
                kib = group_runs.set_index(key)["bytes_received"] / 1024
                per_kib = (misses / kib.reindex(misses.index)).dropna()
                row.update(status="counted", misses_per_kib_median=per_kib.median(),
                           misses_per_kib_min=per_kib.min(), misses_per_kib_max=per_kib.max(),
                           note="receiving threads only; perf scales multiplexed counts")
            rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, "event", "status", "runs", "misses_per_kib_median",
                                       "misses_per_kib_min", "misses_per_kib_max", "note"])
