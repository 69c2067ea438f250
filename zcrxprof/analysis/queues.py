"""The queue budget: how many hardware RX queues each topology needs. ``ifq-per-ring`` registers an
ifq per ring (N rings, N queues); ``shared-ifq`` registers one and imports it into the other rings
(one queue). On the copy backend an "ifq" is a buffer pool: the budget is what the same topology
would need on a NIC."""
from __future__ import annotations

import pandas as pd

from zcrxprof.analysis.stats import bootstrap_ratio
from zcrxprof.dataset import KEY, Dataset


def queues_by_design(topology: str, rings: int) -> int:
    """The hardware queues a topology needs by design: one per ring for ``ifq-per-ring``, else one."""
    return int(rings) if topology == "ifq-per-ring" else 1


def queue_budget(ds: Dataset) -> pd.DataFrame:
    """Per dataset, topology and ring count: ``queues``, the most distinct ifqs one usable run
    registered, next to ``by_design`` (``queues_by_design``) and ``as_designed``."""
    reg = ds.registrations.merge(ds.usable_runs()[[*KEY, "topology", "rings"]], on=KEY)
    group = ["dataset", "topology", "rings"]
    if reg.empty:
        return pd.DataFrame(columns=[*group, "queues", "by_design", "as_designed"])
    used = reg.groupby([*group, "run_id"])["ifq"].nunique().groupby(group).max().rename("queues").reset_index()
    used["by_design"] = [queues_by_design(t, r) for t, r in zip(used["topology"], used["rings"])]
    used["as_designed"] = used["queues"] == used["by_design"]
    return used


def shared_over_per_ring(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset: throughput of ``shared-ifq`` (one queue) over ``ifq-per-ring`` (a queue per
    ring) at the most rings ``shared-ifq`` ran with, with a 95 % bootstrap CI."""
    rows = []
    for name, g in runs.groupby("dataset"):
        shared = g[g["topology"] == "shared-ifq"]
        if shared.empty:
            continue
        n = int(shared["rings"].max())
        per_ring = g[(g["topology"] == "ifq-per-ring") & (g["rings"] == n)]["gbit_s"]
        if per_ring.empty:
            continue
        r = bootstrap_ratio(shared[shared["rings"] == n]["gbit_s"], per_ring)
        rows.append({"dataset": name, "rings": n, "ratio": r.value, "ratio_lo": r.lo, "ratio_hi": r.hi})
    return pd.DataFrame(rows, columns=["dataset", "rings", "ratio", "ratio_lo", "ratio_hi"])
