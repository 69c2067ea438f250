"""The summary `zcrxprof show` prints: medians per topology of a dataset's usable runs."""
from __future__ import annotations

import pandas as pd

from zcrxprof.dataset import KEY, Dataset


def topology_summary(ds: Dataset) -> pd.DataFrame:
    """Medians per topology (and per swept parameter) of the usable runs, as ``zcrxprof show``
    prints them: runs, Gbit/s median/min/max, receiver CPU ns per KiB (rx + worker threads) and
    their context switches a second."""
    ok = ds.usable_runs()
    rx = ds.threads[ds.threads["role"].isin(["rx", "worker"])]
    cpu = rx.groupby(KEY)[["utime_ns", "stime_ns"]].sum().sum(axis=1).rename("cpu_ns")
    csw = rx.groupby(KEY)[["nvcsw", "nivcsw"]].sum().sum(axis=1).rename("csw")
    per_run = ok.set_index(KEY).join(cpu).join(csw)
    per_run["cpu_ns_per_kib"] = per_run["cpu_ns"] / (per_run["bytes_received"] / 1024).where(per_run["bytes_received"] > 0)
    per_run["csw_per_s"] = per_run["csw"] / per_run["loadgen_duration_s"].where(per_run["loadgen_duration_s"] > 0)
    per_run["n"] = per_run["workers"].where(per_run["topology"] == "workers", per_run["rings"])
    keys = ["topology", "n", "work_ns_per_kib", "rate_gbit_s"]
    if len(ds.names) > 1:
        keys = ["dataset", *keys]
    if per_run.empty:
        return pd.DataFrame(columns=keys + ["runs", "gbit_s_median", "gbit_s_min", "gbit_s_max",
                                            "cpu_ns_per_kib_median", "csw_per_s_median"])
    g = per_run.groupby(keys, sort=False)
    out = pd.DataFrame({
        "runs": g.size(),
        "gbit_s_median": g["gbit_s"].median(), "gbit_s_min": g["gbit_s"].min(), "gbit_s_max": g["gbit_s"].max(),
        "cpu_ns_per_kib_median": g["cpu_ns_per_kib"].median(), "csw_per_s_median": g["csw_per_s"].median(),
    }).reset_index()
    return out
