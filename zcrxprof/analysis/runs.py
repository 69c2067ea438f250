"""One row per run with the derived quantities every analysis starts from."""
from __future__ import annotations

import numpy as np
import pandas as pd

from zcrxprof.dataset import KEY, Dataset

# Run columns that identify a configuration (runs with equal values are repetitions).
CONFIG = ["dataset", "backend", "kernel", "place", "accelerator", "rings", "workers", "connections",
          "work_ns_per_kib", "rate_gbit_s"]
LABELS = ["topology", "backend", "kernel", "place", "accelerator", "emulated", "zero_copy"]
GB = 1e9  # bytes (decimal, like Gbit/s)


def _empty(columns: list[str]) -> pd.DataFrame:
    """No rows, with the key columns typed as in ``runs`` and float64 measures: merged onto the
    runs they give NaN columns that arithmetic (and the plots) take, not object columns."""
    return pd.DataFrame({"dataset": pd.Series(dtype=str), "run_id": pd.Series(dtype="int64"),
                         **{c: pd.Series(dtype="float64") for c in columns}})


def _thread_sums(threads: pd.DataFrame) -> pd.DataFrame:
    """CPU, switches and work per run, split by role (rx, worker, tx)."""
    if threads.empty:
        return _empty([])
    t = threads.assign(cpu_ns=threads["utime_ns"] + threads["stime_ns"])
    wide = t.pivot_table(index=KEY, columns="role",
                         values=["utime_ns", "stime_ns", "cpu_ns", "nvcsw", "nivcsw", "work_ns", "bytes"],
                         aggfunc="sum", fill_value=0)
    wide.columns = [f"{role}_{metric}" for metric, role in wide.columns]
    return wide.reset_index()


def _cpu_seconds(system: pd.DataFrame) -> pd.DataFrame:
    """All-CPU seconds per /proc/stat field during each run (last minus first sample):
    ``softirq_s`` and ``busy_s`` (user + nice + system + irq + softirq + steal: CPU time the
    machine did not have idle, whoever used it)."""
    s = system[(system["source"] == "stat") & (system["entity"] == "cpu")]
    if s.empty:
        return _empty(["softirq_s", "busy_s"])
    g = s.sort_values("t").groupby([*KEY, "metric"])["value"]
    delta = (g.last() - g.first()).unstack("metric")
    busy = [m for m in ("user", "nice", "system", "irq", "softirq", "steal") if m in delta]
    softirq = delta["softirq"] if "softirq" in delta else pd.Series(np.nan, index=delta.index)
    out = pd.DataFrame({"softirq_s": softirq.astype("float64"), "busy_s": delta[busy].sum(axis=1)})
    return out.reset_index()


def _interval_stats(intervals: pd.DataFrame) -> pd.DataFrame:
    """Refill backlog and buffer shortage per run, from receiving threads' intervals."""
    rx = intervals[intervals["role"] == "rx"]
    if rx.empty:
        return _empty(["refill_backlog_median", "refill_backlog_max", "enobufs"])
    g = rx.groupby(KEY)
    return pd.DataFrame({
        "refill_backlog_median": g["refill_backlog"].median(),
        "refill_backlog_max": g["refill_backlog"].max(),
        "enobufs": g["enobufs"].sum(),
    }).reset_index()


def per_run(ds: Dataset, include_failed: bool = False) -> pd.DataFrame:
    """One row per run: labels, configuration, throughput and per-GB costs.

    Derived columns: ``gbit_s`` (the load generator's figure), ``bytes`` (received), per role
    ``{rx,worker,tx}_{utime_ns,stime_ns,cpu_ns,nvcsw,nivcsw,work_ns,bytes}``, ``softirq_s`` and
    ``busy_s`` (all CPUs; NaN when /proc/stat was not sampled), ``other_cpu_s`` (CPU taken by
    everything else on the machine: busy minus the load generator's threads and softirq),
    ``free_cores`` (the machine's cores minus what others took) and ``gbit_s_per_free_core``,
    ``switches_per_gb`` (receiving + worker threads, voluntary +
    involuntary), ``cpu_s_per_gb_{user,sys,softirq}`` (receiver side: rx + worker threads),
    ``work_ns_per_kib_measured`` (wall time in the work function per KiB: includes preemption),
    ``recv_ns_per_byte`` (receiving-thread CPU outside the work function; the work's share bounded
    by user time) and the refill columns.
    """
    runs = ds.runs if include_failed else ds.usable_runs()
    out = runs.merge(_thread_sums(ds.threads), on=KEY, how="left")
    out = out.merge(_cpu_seconds(ds.system), on=KEY, how="left")
    out = out.merge(_interval_stats(ds.intervals), on=KEY, how="left")
    for role in ("rx", "worker", "tx"):
        for m in ("utime_ns", "stime_ns", "cpu_ns", "nvcsw", "nivcsw", "work_ns", "bytes"):
            col = f"{role}_{m}"
            out[col] = out[col].fillna(0) if col in out else 0
    out["bytes"] = out["bytes_received"]
    gb = out["bytes"].where(out["bytes"] > 0) / GB
    recv_user = out["rx_utime_ns"] + out["worker_utime_ns"]
    recv_sys = out["rx_stime_ns"] + out["worker_stime_ns"]
    out["switches_per_gb"] = (out["rx_nvcsw"] + out["rx_nivcsw"] + out["worker_nvcsw"] + out["worker_nivcsw"]) / gb
    out["voluntary_per_gb"] = (out["rx_nvcsw"] + out["worker_nvcsw"]) / gb
    out["cpu_s_per_gb_user"] = recv_user / 1e9 / gb
    out["cpu_s_per_gb_sys"] = recv_sys / 1e9 / gb
    out["cpu_s_per_gb_softirq"] = out["softirq_s"] / gb if "softirq_s" in out else np.nan
    out["cpu_s_per_gb_tx"] = out["tx_cpu_ns"] / 1e9 / gb
    kib = out["bytes"].where(out["bytes"] > 0) / 1024
    out["work_ns_per_kib_measured"] = (out["rx_work_ns"] + out["worker_work_ns"]) / kib
    ours = (out["rx_cpu_ns"] + out["worker_cpu_ns"] + out["tx_cpu_ns"]) / 1e9 + out["softirq_s"]
    out["other_cpu_s"] = (out["busy_s"] - ours).clip(lower=0)
    cores = pd.to_numeric(out["dataset"].map(lambda d: (ds.metadata_by_name[d].get("machine") or {}).get("cores")),
                          errors="coerce").astype("float64")
    out["free_cores"] = (cores - out["other_cpu_s"] / out["loadgen_duration_s"]).clip(lower=0.1)
    out["gbit_s_per_free_core"] = out["gbit_s"] / out["free_cores"]
    rx_work_cpu = out["rx_work_ns"].clip(upper=out["rx_utime_ns"])
    out["recv_ns_per_byte"] = (out["rx_cpu_ns"] - rx_work_cpu) / out["bytes"].where(out["bytes"] > 0)
    return out.reset_index(drop=True)


def background_load(runs: pd.DataFrame) -> pd.DataFrame:
    """Per topology: how many cores' worth of CPU other processes took during its runs
    (``other_cpu_s`` / run length; median and maximum) — large values mean a shared, noisy machine."""
    share = runs["other_cpu_s"] / runs["loadgen_duration_s"]
    return (runs.assign(other_cores=share).groupby(["dataset", "topology"], as_index=False)
            .agg(other_cores_median=("other_cores", "median"), other_cores_max=("other_cores", "max"),
                 runs=("run_id", "count")))
