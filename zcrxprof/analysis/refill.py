"""Refill and copy: refill-ring backlog, buffer starvation and copy-fallback bytes per topology."""
from __future__ import annotations

import pandas as pd

from zcrxprof.analysis.load import KEY, Frames


def _last_per_run(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Cumulative counters: the last sample of each (run, cols...) series."""
    return df.sort_values("t").groupby([*KEY, *cols], as_index=False)["value"].last()


def copy_fallback(frames: Frames) -> pd.DataFrame:
    """Copy-fallback bytes and chunks per run, from kernel probes (``*copy*`` metrics summed over
    threads) and from 7.2 ``zcrx_stats`` events; ``source`` says which."""
    parts = []
    p = frames.probes[frames.probes["metric"].str.contains("copy", case=False)]
    if not p.empty:
        last = _last_per_run(p, ["probe", "tid", "metric"])
        parts.append(last.groupby([*KEY, "metric"], as_index=False)["value"].sum().assign(source="probes"))
    e = frames.events[frames.events["metric"].str.startswith("copy")]
    if not e.empty:
        last = _last_per_run(e, ["event", "ring", "metric"])
        parts.append(last.groupby([*KEY, "metric"], as_index=False)["value"].sum().assign(source="zcrx_stats"))
    if not parts:
        return pd.DataFrame(columns=[*KEY, "topology", "backend", "metric", "value", "source"])
    out = pd.concat(parts, ignore_index=True)
    return out.merge(frames.ok_runs()[[*KEY, "topology", "backend"]], on=KEY)


def starvation(frames: Frames) -> pd.DataFrame:
    """Refill starvation per run: kernel probe counters (``refill_empty``: the page pool asked the
    refill ring for buffers and got none; ``*starv*``, ``*alloc_fail*``) and 7.2 ``alloc_fail``
    events."""
    parts = []
    p = frames.probes[frames.probes["metric"].str.contains("starv|alloc_fail|alloc_zero|refill_empty", case=False)]
    if not p.empty:
        last = _last_per_run(p, ["probe", "tid", "metric"])
        parts.append(last.groupby([*KEY, "metric"], as_index=False)["value"].sum().assign(source="probes"))
    e = frames.events[frames.events["event"] == "alloc_fail"]
    if not e.empty:
        parts.append(e.groupby(KEY, as_index=False)["value"].sum().assign(metric="alloc_fail",
                                                                            source="events"))
    if not parts:
        return pd.DataFrame(columns=[*KEY, "topology", "metric", "value", "source"])
    return pd.concat(parts, ignore_index=True).merge(frames.ok_runs()[[*KEY, "topology"]], on=KEY)


def refill(runs: pd.DataFrame) -> pd.DataFrame:
    """Per topology: median and maximum refill backlog (buffers handed back, not yet taken) and
    ENOBUFS (receives that found no buffer) per GB received."""
    r = runs.assign(enobufs_per_gb=runs["enobufs"] / (runs["bytes"].where(runs["bytes"] > 0) / 1e9))
    return r.groupby(["dataset", "backend", "topology", "rings"], as_index=False).agg(
        refill_backlog_median=("refill_backlog_median", "median"),
        refill_backlog_max=("refill_backlog_max", "max"),
        enobufs_per_gb=("enobufs_per_gb", "median"),
        runs=("run_id", "count"))
