"""Saturation: throughput per topology against rings, work and offered load; where each topology
saturates; how evenly rings share the load; scaling against ``single``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from zcrxprof.dataset import KEY, Dataset
from zcrxprof.analysis.stats import bootstrap_median, bootstrap_ratio

# Same configuration apart from topology and parallelism: the set a comparison is made within.
BASE = ["dataset", "backend", "kernel", "place", "accelerator", "work_ns_per_kib", "rate_gbit_s"]
# A run is saturated when it achieves less than this share of the offered load.
SATURATED_BELOW = 0.95


def parallelism(runs: pd.DataFrame) -> pd.Series:
    """Threads that do the work per run: rings, or workers for ``workers``, 1 for ``single``."""
    p = runs["rings"].where(runs["topology"] != "workers", runs["workers"])
    return p.where(runs["topology"] != "single", 1).clip(lower=1)


def summarise(runs: pd.DataFrame, value: str = "gbit_s", by: list[str] | None = None) -> pd.DataFrame:
    """Median of ``value`` over repetitions with a 95 % bootstrap interval, min, max and n."""
    by = by or [*BASE, "topology", "rings", "workers"]
    rows = []
    for key, g in runs.groupby(by, dropna=False, sort=True):
        est = bootstrap_median(g[value])
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))),
                     "median": est.value, "ci_lo": est.lo, "ci_hi": est.hi,
                     "min": g[value].min(), "max": g[value].max(), "n": est.n})
    return pd.DataFrame(rows)


def throughput(runs: pd.DataFrame) -> pd.DataFrame:
    """Receive throughput (Gbit/s) per topology and configuration: median, CI, min/max, n."""
    return summarise(runs, "gbit_s")


def offered_vs_achieved(runs: pd.DataFrame) -> pd.DataFrame:
    """Per topology and configuration: achieved vs offered load and whether it saturated.

    Unpaced runs (``rate_gbit_s`` 0) are saturated by definition (the receiver or the sender is the
    bottleneck); ``saturation_gbit_s`` is the highest median throughput each topology reached
    across the offered loads of its configuration.
    """
    s = throughput(runs).rename(columns={"median": "achieved_gbit_s"})
    offered = s["rate_gbit_s"].where(s["rate_gbit_s"] > 0)
    s["achieved_share"] = s["achieved_gbit_s"] / offered
    s["saturated"] = offered.isna() | (s["achieved_share"] < SATURATED_BELOW)
    group = [c for c in BASE if c != "rate_gbit_s"] + ["topology", "rings", "workers"]
    s["saturation_gbit_s"] = s.groupby(group, dropna=False)["achieved_gbit_s"].transform("max")
    return s


def ring_share(ds: Dataset) -> pd.DataFrame:
    """Per run: each receiving ring's share of the bytes and Jain's fairness index over rings
    (1 = perfectly even, 1/N = one ring took everything)."""
    th = ds.threads[(ds.threads["role"] == "rx") & (ds.threads["ring"] >= 0)]
    ok = ds.usable_runs()[[*KEY, "topology", "rings"]]
    th = th.merge(ok, on=KEY)
    if th.empty:
        return pd.DataFrame(columns=[*KEY, "topology", "rings", "ring", "share", "fairness"])
    per_ring = th.groupby([*KEY, "topology", "rings", "ring"], as_index=False)["bytes"].sum()
    total = per_ring.groupby(KEY)["bytes"].transform("sum")
    per_ring["share"] = per_ring["bytes"] / total.where(total > 0)

    def jain(x: pd.Series) -> float:
        x = x.to_numpy(dtype=float)
        return float(x.sum() ** 2 / (len(x) * (x ** 2).sum())) if (x ** 2).sum() > 0 else np.nan

    per_ring["fairness"] = per_ring.groupby(KEY)["bytes"].transform(jain)
    return per_ring


def scaling(runs: pd.DataFrame) -> pd.DataFrame:
    """Speed-up of each topology over ``single`` in the same configuration, and efficiency =
    speed-up / parallelism (1.0 = perfect linear scaling)."""
    tp = throughput(runs)
    single = tp[tp["topology"] == "single"][[*BASE, "median"]].rename(columns={"median": "single_gbit_s"})
    out = tp.merge(single, on=BASE, how="inner")
    p = parallelism(out)
    out["parallelism"] = p
    out["speedup"] = out["median"] / out["single_gbit_s"]
    out["efficiency"] = out["speedup"] / p
    return out


def receiver_sleeps(ds: Dataset) -> pd.DataFrame:
    """Per dataset, topology, rings and workers: how often the receiving threads of usable runs slept
    waiting for data — ``sleeps_per_s_median`` and ``_max`` over threads (voluntary context
    switches a second; at most about one means the thread never waited: it is saturated),
    ``busy_share_median`` (its CPU time over the run's wall time), ``gbit_s_median``, ``runs``."""
    runs = ds.usable_runs()[[*KEY, "topology", "rings", "workers", "loadgen_duration_s", "gbit_s"]]
    th = ds.threads[ds.threads["role"] == "rx"].merge(runs, on=KEY)
    group = ["dataset", "topology", "rings", "workers"]
    if th.empty:
        return pd.DataFrame(columns=[*group, "runs", "threads", "sleeps_per_s_median", "sleeps_per_s_max",
                                     "busy_share_median", "gbit_s_median"])
    th = th.assign(sleeps_per_s=th["nvcsw"] / th["loadgen_duration_s"],
                   busy_share=(th["utime_ns"] + th["stime_ns"]) / (th["loadgen_duration_s"] * 1e9))
    g = th.groupby(group)
    out = pd.DataFrame({"runs": g["run_id"].nunique(), "threads": g.size(),
                        "sleeps_per_s_median": g["sleeps_per_s"].median(), "sleeps_per_s_max": g["sleeps_per_s"].max(),
                        "busy_share_median": g["busy_share"].median()}).reset_index()
    gbit = runs.groupby(group, as_index=False)["gbit_s"].median().rename(columns={"gbit_s": "gbit_s_median"})
    return out.merge(gbit, on=group, how="left")


def fairness(ds: Dataset, min_rings: int = 1) -> pd.DataFrame:
    """Per dataset and topology: the median Jain's index of runs with at least ``min_rings`` rings
    (from ``ring_share``; 1 = the rings share the bytes evenly)."""
    shares = ring_share(ds)
    shares = shares[shares["rings"] >= min_rings]
    return shares.groupby(["dataset", "topology"], as_index=False)["fairness"].median()


def ratio_to_single(runs: pd.DataFrame, topology: str, value: str = "gbit_s", min_rings: int = 2) -> pd.DataFrame:
    """Per configuration (``BASE``): ``value`` of ``topology``'s runs with at least ``min_rings``
    rings over that of the ``single`` runs, with a 95 % bootstrap CI; ``resolved`` when the
    interval excludes 1."""
    rows = []
    for key, g in runs.groupby(BASE, dropna=False, sort=True):
        mine = g[(g["topology"] == topology) & (g["rings"] >= min_rings)]
        one = g[g["topology"] == "single"][value].dropna()
        if mine[value].dropna().empty or one.empty:
            continue
        r = bootstrap_ratio(mine[value].dropna(), one)
        rows.append({**dict(zip(BASE, key)), "topology": topology, "value": value, "runs": len(mine),
                     "rings": int(mine["rings"].max()), "ratio": r.value, "ratio_lo": r.lo, "ratio_hi": r.hi,
                     "resolved": bool(r.lo > 1 or r.hi < 1)})
    return pd.DataFrame(rows, columns=[*BASE, "topology", "value", "runs", "rings", "ratio", "ratio_lo", "ratio_hi",
                                       "resolved"])
