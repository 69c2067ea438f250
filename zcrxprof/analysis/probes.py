"""The kernel's view from probe data: per-run totals of the probe counters, the attach report, and
how kernel counts compare with what the load generator counted itself."""
from __future__ import annotations

import pandas as pd

from zcrxprof.dataset import KEY, Dataset
from zcrxprof.vocab import topology_order

# The kernel probe counters that answer a question, per GB received (metric -> question).
QUESTIONS = {
    "switch_voluntary": "How often do the receiving threads sleep? (voluntary switches)",
    "switch_preempted": "How often are they preempted? (involuntary switches)",
    "wakeups": "How many wake-ups do they issue? (hand-offs wake workers)",
    "migrations": "How often do they move between CPUs?",
    "local_runs": "How often does io_uring run deferred task work?",
    "recv_nodata": "How often does a zcrx receive find no data?",
    "flushes": "How often is the refill ring flushed?",
    "copy_bytes": "How many bytes did the kernel copy instead of receiving zero-copy?",
}
QUESTION_COLUMN = "question (per GB received)"


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


def questions(ds: Dataset, runs: pd.DataFrame) -> pd.DataFrame:
    """The counters of ``QUESTIONS`` per GB received, median over the usable runs ``runs`` (the
    per-run table: ``bytes``): one row per counter (its question), one column per topology, then
    ``counter`` (probe and metric). Empty without probe samples."""
    tot = probe_totals(ds)
    tot = tot[tot["metric"].isin(QUESTIONS)]
    if tot.empty:
        return pd.DataFrame()
    tot = tot.groupby([*KEY, "probe", "metric", "topology"], as_index=False)["value"].sum()
    tot = tot.merge(runs[[*KEY, "bytes"]], on=KEY)
    tot = tot[tot["bytes"] > 0]
    tot["per_gb"] = tot["value"] / (tot["bytes"] / 1e9)
    med = tot.groupby(["metric", "probe", "topology"], as_index=False)["per_gb"].median()
    wide = med.pivot_table(index=["metric", "probe"], columns="topology", values="per_gb").reset_index()
    order = {m: i for i, m in enumerate(QUESTIONS)}
    wide = wide.sort_values("metric", key=lambda s: s.map(order))
    wide.insert(0, QUESTION_COLUMN, wide["metric"].map(QUESTIONS))
    wide["counter"] = wide["probe"] + " " + wide["metric"]
    topo = topology_order([c for c in wide.columns if c not in ("metric", "probe", "counter", QUESTION_COLUMN)])
    wide.columns.name = None
    return wide[[QUESTION_COLUMN, *topo, "counter"]].reset_index(drop=True)


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
