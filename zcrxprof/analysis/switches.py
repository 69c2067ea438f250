"""Context-switch cost: switches and CPU-seconds per GB, wake-up latency, the hand-off cost of
``workers`` against ``shared-ifq``."""
from __future__ import annotations

import numpy as np
import pandas as pd

from zcrxprof.dataset import KEY, Dataset
from zcrxprof.analysis.saturation import BASE, summarise
from zcrxprof.analysis.stats import bootstrap_ratio, cliffs_delta, permutation_test

COST_COLUMNS = ["switches_per_gb", "voluntary_per_gb", "cpu_s_per_gb_user", "cpu_s_per_gb_sys",
                "cpu_s_per_gb_softirq"]


def costs(runs: pd.DataFrame) -> pd.DataFrame:
    """Per topology and configuration, median (95 % CI) of each per-GB cost, long form:
    ``metric, median, ci_lo, ci_hi, min, max, n``. Receiver side = rx + worker threads."""
    parts = []
    for metric in COST_COLUMNS:
        if metric not in runs or runs[metric].isna().all():
            continue
        s = summarise(runs.dropna(subset=[metric]), metric)
        parts.append(s.assign(metric=metric))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def handoff_cost(runs: pd.DataFrame) -> pd.DataFrame:
    """``workers`` against ``shared-ifq`` with the same parallelism and configuration: extra
    switches per GB and CPU-seconds per GB (user + sys, receiver side), with the ratio's CI, an
    exact permutation test on CPU-s/GB and Cliff's delta."""
    r = runs.assign(cpu_s_per_gb=runs["cpu_s_per_gb_user"] + runs["cpu_s_per_gb_sys"],
                    n=runs["rings"].where(runs["topology"] != "workers", runs["workers"]))
    rows = []
    for key, g in r.groupby([*BASE, "n"], dropna=False):
        w = g[g["topology"] == "workers"]
        s = g[g["topology"] == "shared-ifq"]
        if w.empty or s.empty:
            continue
        ratio = bootstrap_ratio(w["cpu_s_per_gb"], s["cpu_s_per_gb"])
        test = permutation_test(w["cpu_s_per_gb"], s["cpu_s_per_gb"])
        rows.append({**dict(zip([*BASE, "threads"], key)),
                     "workers_switches_per_gb": w["switches_per_gb"].median(),
                     "shared_switches_per_gb": s["switches_per_gb"].median(),
                     "extra_switches_per_gb": w["switches_per_gb"].median() - s["switches_per_gb"].median(),
                     "workers_cpu_s_per_gb": w["cpu_s_per_gb"].median(),
                     "shared_cpu_s_per_gb": s["cpu_s_per_gb"].median(),
                     "extra_cpu_s_per_gb": w["cpu_s_per_gb"].median() - s["cpu_s_per_gb"].median(),
                     "cpu_ratio": ratio.value, "cpu_ratio_lo": ratio.lo, "cpu_ratio_hi": ratio.hi,
                     "p_value": test.p_value, "p_floor": test.p_floor,
                     "cliffs_delta": cliffs_delta(w["cpu_s_per_gb"], s["cpu_s_per_gb"]),
                     "n_workers": len(w), "n_shared": len(s)})
    return pd.DataFrame(rows)


def wakeup_latency(ds: Dataset) -> pd.DataFrame:
    """Wake-up→run latency log2 histograms summed per topology: ``topology, lo, hi, count, share``
    (empty when no probe recorded one). Only metrics named like ``*wakeup*``/``*latency*``."""
    h = ds.histograms
    h = h[h["metric"].str.contains("wakeup|latency", case=False, regex=True)]
    if h.empty:
        return pd.DataFrame(columns=["dataset", "topology", "metric", "lo", "hi", "count", "share"])
    h = h.merge(ds.usable_runs()[[*KEY, "topology"]], on=KEY)
    agg = h.groupby(["dataset", "topology", "metric", "lo", "hi"], as_index=False)["count"].sum()
    agg["share"] = agg["count"] / agg.groupby(["dataset", "topology", "metric"])["count"].transform("sum")
    return agg


def histogram_quantile(hist: pd.DataFrame, q: float) -> float:
    """Quantile of a log2 histogram (``lo, hi, count``), interpolating inside the bucket."""
    h = hist.sort_values("lo")
    counts = h["count"].to_numpy(dtype=float)
    total = counts.sum()
    if total <= 0:
        return float("nan")
    target = q * total
    cum = np.cumsum(counts)
    i = int(np.searchsorted(cum, target, side="left"))
    i = min(i, len(h) - 1)
    before = cum[i] - counts[i]
    frac = (target - before) / counts[i] if counts[i] else 0.0
    lo, hi = float(h["lo"].iloc[i]), float(h["hi"].iloc[i])
    return lo + frac * (hi - lo)


def switches_per_gb(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and topology: median context switches per GB over all its runs (every ring
    count together)."""
    return runs.groupby(["dataset", "topology"], as_index=False)["switches_per_gb"].median()
