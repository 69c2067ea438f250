"""The sending side: per run and sending host, what was sent, how busy the sending threads were,
TCP retransmits and round-trip time, and whether a sender was the bottleneck.

A sending thread (``tx``) that was busy on a CPU for at least ``SENDER_BUSY`` of the run had no
time to spare: it could not have sent faster, so that host's senders limited the run (the receiver
waited for data) or were about to. Retransmits and RTT come from the senders' TCP_INFO (interval
records; absent in datasets recorded before those columns, then shown as unknown).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from zcrxprof.dataset import KEY, Dataset

SENDER_BUSY = 0.9    # share of the run a sending thread spent on a CPU from which it counts as saturated
COLUMNS = [*KEY, "topology", "rings", "host", "tx_threads", "bytes_sent", "gbit_s", "tx_busy_max",
           "retransmits", "rtt_us_mean", "rtt_us_max", "sender_bound"]


def senders(ds: Dataset) -> pd.DataFrame:
    """One row per usable run and sending host: ``tx_threads``, ``bytes_sent``, ``gbit_s`` (sent over
    the run's measured length), ``tx_busy_max`` (the busiest sending thread's CPU time over the run's
    length), ``retransmits`` (summed over the intervals; -1 unknown), ``rtt_us_mean`` / ``rtt_us_max``
    (smoothed RTT at interval ends over intervals that sent bytes; NaN unknown) and ``sender_bound``
    (``tx_busy_max`` ≥ SENDER_BUSY)."""
    runs = ds.usable_runs()[[*KEY, "topology", "rings", "loadgen_duration_s"]]
    tx = ds.threads[ds.threads["role"] == "tx"].merge(runs, on=KEY)
    if tx.empty:
        return pd.DataFrame(columns=COLUMNS)
    length = tx["loadgen_duration_s"].where(tx["loadgen_duration_s"] > 0)
    tx = tx.assign(busy=(tx["utime_ns"] + tx["stime_ns"]) / (length * 1e9))
    group = [*KEY, "topology", "rings", "host"]
    g = tx.groupby(group)
    out = pd.DataFrame({"tx_threads": g.size(), "bytes_sent": g["bytes"].sum(),
                        "length": g["loadgen_duration_s"].first(), "tx_busy_max": g["busy"].max()}).reset_index()
    out["gbit_s"] = out["bytes_sent"] * 8 / 1e9 / out["length"].where(out["length"] > 0)
    iv = ds.intervals[ds.intervals["role"] == "tx"]
    tcp = _tcp(iv)
    out = out.merge(tcp, on=[*KEY, "host"], how="left")
    out["retransmits"] = out["retransmits"].fillna(-1).astype("int64")
    out["sender_bound"] = out["tx_busy_max"] >= SENDER_BUSY
    return out[COLUMNS]


def _tcp(iv: pd.DataFrame) -> pd.DataFrame:
    """Retransmits and RTT per run and host from the sending threads' intervals that carry them."""
    cols = [*KEY, "host", "retransmits", "rtt_us_mean", "rtt_us_max"]
    if iv.empty or "tcp_retrans" not in iv:
        return pd.DataFrame(columns=cols)
    known = iv[iv["tcp_retrans"] >= 0]
    sent = known[(known["bytes"] > 0) & (known["tcp_rtt_us"] > 0)]
    g = known.groupby([*KEY, "host"])
    out = pd.DataFrame({"retransmits": g["tcp_retrans"].sum()})
    s = sent.groupby([*KEY, "host"])
    out["rtt_us_mean"] = s["tcp_rtt_us"].mean()
    out["rtt_us_max"] = s["tcp_rtt_max_us"].max().astype("float64")
    return out.reset_index()[cols]


def sender_verdict(ds: Dataset) -> str:
    """One sentence: was a sender the bottleneck (per host, over its usable runs), with its
    retransmits and RTT where recorded; empty when no sending thread was recorded."""
    s = senders(ds)
    if s.empty:
        return ""
    parts = []
    for host, g in s.groupby("host", sort=True):
        bound = int(g["sender_bound"].sum())
        busy = float(np.nanmax(g["tx_busy_max"])) if g["tx_busy_max"].notna().any() else float("nan")
        text = (f"{host}: {'the bottleneck in ' + str(bound) + ' of ' + str(len(g)) + ' runs' if bound else 'not the bottleneck'}"
                f" (busiest sending thread {busy:.0%} of the run on a CPU)")
        if (g["retransmits"] >= 0).any():
            rtt = g["rtt_us_mean"].dropna()
            text += (f", {int(g.loc[g['retransmits'] >= 0, 'retransmits'].sum())} retransmits"
                     + (f", RTT median {rtt.median():.0f} µs (max {g['rtt_us_max'].max():.0f} µs)" if len(rtt) else ""))
        parts.append(text)
    return (f"Senders — a sending thread busy ≥ {SENDER_BUSY:.0%} of the run could not send faster: "
            + "; ".join(parts) + ".")
