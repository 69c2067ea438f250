"""Refill and copy: refill-ring backlog, buffer starvation and copy-fallback bytes per topology."""
from __future__ import annotations

import pandas as pd

from zcrxprof.dataset import KEY, Dataset


def _last_per_run(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Cumulative counters: the last sample of each (run, cols...) series."""
    return df.sort_values("t").groupby([*KEY, *cols], as_index=False)["value"].last()


def _event_cqes(events: pd.DataFrame, name: str) -> pd.DataFrame:
    """zcrx event CQEs of one type per run: the rings' end-of-run totals (``<name>_events``); for a
    run without totals, the sum of its interval records (``<name>``), never both."""
    c = events[events["metric"] == "count"]
    total = c[c["event"] == f"{name}_events"].groupby(KEY, as_index=False)["value"].sum()
    arm = c[c["event"] == name].groupby(KEY, as_index=False)["value"].sum()
    arm = arm[~arm.set_index(KEY).index.isin(total.set_index(KEY).index)]
    return pd.concat([total, arm], ignore_index=True).assign(metric=f"{name}_events", source="events")


# The end-of-run `stats` event of each ifq: the kernel's zcrx_stats counters, named like the probes'.
_STATS_METRICS = {"count": "copy_chunks", "bytes": "copy_bytes"}


def copy_fallback(ds: Dataset) -> pd.DataFrame:
    """Copy-fallback bytes and chunks per run, from kernel probes (``*copy*`` metrics summed over
    threads) and from 7.2 zcrx_stats (``copy_chunks``, ``copy_bytes`` summed over ifqs), plus the
    ZCRX_EVENT_COPY CQEs (``copy_events``); ``source`` says which."""
    parts = []
    p = ds.probes[ds.probes["metric"].str.contains("copy", case=False)]
    if not p.empty:
        last = _last_per_run(p, ["probe", "tid", "metric"])
        parts.append(last.groupby([*KEY, "metric"], as_index=False)["value"].sum().assign(source="probes"))
    ev = ds.events
    s = ev[(ev["event"] == "stats") & ev["metric"].isin(list(_STATS_METRICS))]
    if not s.empty:
        last = _last_per_run(s, ["ring", "metric"])
        parts.append(last.groupby([*KEY, "metric"], as_index=False)["value"].sum()
                     .assign(metric=lambda d: d["metric"].map(_STATS_METRICS), source="zcrx_stats"))
    e = _event_cqes(ev, "copy")
    if not e.empty:
        parts.append(e)
    if not parts:
        return pd.DataFrame(columns=[*KEY, "topology", "backend", "metric", "value", "source"])
    out = pd.concat(parts, ignore_index=True)
    return out.merge(ds.usable_runs()[[*KEY, "topology", "backend"]], on=KEY)


def starvation(ds: Dataset) -> pd.DataFrame:
    """Refill starvation per run: kernel probe counters (``refill_empty``: the page pool asked the
    refill ring for buffers and got none; ``*starv*``, ``*alloc_fail*``) and 7.2 ZCRX_EVENT_ALLOC_FAIL
    CQEs (``alloc_fail_events``)."""
    parts = []
    p = ds.probes[ds.probes["metric"].str.contains("starv|alloc_fail|alloc_zero|refill_empty", case=False)]
    if not p.empty:
        last = _last_per_run(p, ["probe", "tid", "metric"])
        parts.append(last.groupby([*KEY, "metric"], as_index=False)["value"].sum().assign(source="probes"))
    e = _event_cqes(ds.events, "alloc_fail")
    if not e.empty:
        parts.append(e)
    if not parts:
        return pd.DataFrame(columns=[*KEY, "topology", "metric", "value", "source"])
    return pd.concat(parts, ignore_index=True).merge(ds.usable_runs()[[*KEY, "topology"]], on=KEY)


def backlog(runs: pd.DataFrame) -> pd.DataFrame:
    """Per topology: median and maximum refill backlog (buffers handed back, not yet taken) and
    ENOBUFS (receives that found no buffer) per GB received."""
    r = runs.assign(enobufs_per_gb=runs["enobufs"] / (runs["bytes"].where(runs["bytes"] > 0) / 1e9))
    return r.groupby(["dataset", "backend", "topology", "rings"], as_index=False).agg(
        refill_backlog_median=("refill_backlog_median", "median"),
        refill_backlog_max=("refill_backlog_max", "max"),
        enobufs_per_gb=("enobufs_per_gb", "median"),
        runs=("run_id", "count"))
