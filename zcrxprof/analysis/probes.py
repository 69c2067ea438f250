"""The kernel's view from probe data: per-run totals of the probe counters, the attach report, and
how kernel counts compare with what the load generator counted itself."""
from __future__ import annotations

import pandas as pd

from zcrxprof.dataset import KEY, Dataset


def probe_totals(ds: Dataset) -> pd.DataFrame:
    """One row per run, probe and metric: the cumulative counter's last sample summed over
    threads, with the run's topology, backend and place."""
    p = ds.probes
    if p.empty:
        return pd.DataFrame(columns=[*KEY, "probe", "metric", "value", "topology", "backend", "place"])
    last = p.sort_values("t").groupby([*KEY, "probe", "tid", "metric"], as_index=False)["value"].last()
    tot = last.groupby([*KEY, "probe", "metric"], as_index=False)["value"].sum()
    return tot.merge(ds.usable_runs()[[*KEY, "topology", "backend", "place"]], on=KEY)


def probe_medians(ds: Dataset) -> pd.DataFrame:
    """Median over runs of each probe total, per topology (``topology, probe, metric, value``)."""
    tot = probe_totals(ds)
    return tot.groupby(["topology", "probe", "metric"], as_index=False)["value"].median()


def attach_report(ds: Dataset) -> pd.DataFrame:
    """The probe attach report of every dataset (one row per probe point: tool, target, method,
    status, reason)."""
    rows = []
    for name, meta in ds.metadata_by_name.items():
        for row in meta.get("probes") or []:
            if isinstance(row, dict):
                rows.append({"dataset": name, **{k: str(v) for k, v in row.items()}})
    return pd.DataFrame(rows)


def against_loadgen(ds: Dataset, metric: str, loadgen_column: str, roles=("rx",)) -> pd.DataFrame:
    """Per run: a kernel probe total (``metric``) next to the load generator's own total of
    ``loadgen_column`` over threads of ``roles``, and their ratio (kernel / load generator)."""
    tot = probe_totals(ds)
    k = tot[tot["metric"] == metric].groupby(KEY, as_index=False)["value"].sum()
    th = ds.threads[ds.threads["role"].isin(roles)]
    lg = th.groupby(KEY, as_index=False)[loadgen_column].sum()
    out = k.merge(lg, on=KEY).merge(ds.usable_runs()[[*KEY, "topology", "backend"]], on=KEY)
    out["ratio"] = out["value"] / out[loadgen_column].where(out[loadgen_column] > 0)
    return out.rename(columns={"value": f"kernel_{metric}", loadgen_column: f"loadgen_{loadgen_column}"})


def metric_total(ds: Dataset, metric: str) -> pd.DataFrame:
    """Per dataset: the sum over usable runs of one probe metric's totals (``probe_totals``);
    0 where the metric never counted."""
    tot = probe_totals(ds)
    sums = tot[tot["metric"] == metric].groupby("dataset")["value"].sum()
    return pd.DataFrame({"dataset": ds.names, "metric": metric,
                         "value": [float(sums.get(n, 0.0)) for n in ds.names]})
