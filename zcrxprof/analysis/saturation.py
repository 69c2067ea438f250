"""Saturation: throughput per topology against rings, work and offered load; where each topology
saturates; how evenly rings share the load; scaling against ``single``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from zcrxprof.analysis.load import KEY, Frames
from zcrxprof.analysis.stats import bootstrap_median

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


def saturation(runs: pd.DataFrame) -> pd.DataFrame:
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


def ring_share(frames: Frames) -> pd.DataFrame:
    """Per run: each receiving ring's share of the bytes and Jain's fairness index over rings
    (1 = perfectly even, 1/N = one ring took everything)."""
    th = frames.threads[(frames.threads["role"] == "rx") & (frames.threads["ring"] >= 0)]
    ok = frames.ok_runs()[[*KEY, "topology", "rings"]]
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
