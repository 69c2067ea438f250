"""Analyses of the perf tables: where receive time goes, cache effects, counter rates per byte.

Plain functions over dataset frames (``runs``, ``perf_counters``, ``profile``); every result carries
the labels of the runs it came from (backend, kernel, emulated).
"""
from __future__ import annotations

import re

import pandas as pd

from zcrxprof.perf.tool import CACHE_EVENTS

RECEIVING = r"^(?:rx|worker)"
LABELS = ["topology", "backend", "kernel", "emulated"]

# Categories of receive-thread samples, tried in order; the first rule that matches a sample's stack
# wins. Each rule: (category, space whose frames are examined, regex on a frame's function name,
# leaf_only). Kernel frame names are given without their `_[k]` suffix.
CATEGORIES: list[tuple[str, str, str, bool]] = [
    # lock primitives first: a futex wait that ends in the scheduler is the lock's cost
    ("locks (refill ring, hand-off queue)", "user",
     r"^pthread_(mutex|cond|spin|rwlock)_|^__pthread_(mutex|cond)|lll_(un)?lock|futex|^sem_(wait|post)", False),
    ("locks (refill ring, hand-off queue)", "kernel", r"^futex_|^__x64_sys_futex|^do_futex", False),
    ("scheduler", "kernel", r"^(__)?schedule$|^finish_task_switch|^__switch_to|^pick_next_task|^context_switch", False),
    # the load generator's work model (work.c: checksum + calibrated busy loop) and verification
    ("work function (checksum, busy, verify)", "user", r"^work_(checksum|busy)|^spin$|checksum|csum|^pattern_verify|^consume$", False),
    ("copy to user", "kernel", r"copy_(to|from)_user|_copy_to_iter|copy_user|memcpy|rep_movs|copy_page|"
                               r"skb_copy_datagram|simple_copy_to_iter|io_zcrx_copy", True),
    ("io_uring", "kernel", r"^io_|^__io_|^tctx_task_work|io_uring", False),
    ("network stack", "kernel", r"^tcp_|^__tcp|^ip_|^__ip|^ipv6|^net_rx|napi|skb|^sock_|^__sock|^__netif|"
                                r"^netif|^inet_|softirq|^sk_|^__sk", False),
    ("other kernel", "kernel", r".", True),
    ("other user", "user", r".", True),
]
_COMPILED = [(c, s, re.compile(rx), leaf) for c, s, rx, leaf in CATEGORIES]


def categorise(stack: str) -> str:
    """The category (from CATEGORIES) of one folded stack (root→leaf, kernel frames `_[k]`)."""
    frames = [(f[:-4], "kernel") if f.endswith("_[k]") else (f, "user") for f in stack.split(";")]
    for category, space, rx, leaf_only in _COMPILED:
        candidates = frames[-1:] if leaf_only else frames
        if any(sp == space and rx.search(fn) for fn, sp in candidates):
            return category
    return "other user"


def _labelled(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    keep = ["run_id", *[c for c in LABELS if c in runs.columns]]
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    return frame.merge(ok[keep], on="run_id", how="inner")


def receive_breakdown(profile: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Share of receiving-thread samples per topology and category (columns: labels, event,
    category, samples, share). Shares add up to 1 within each topology/backend/kernel/event."""
    prof = _labelled(profile[profile["thread"].str.contains(RECEIVING)], runs)
    keys = [c for c in LABELS if c in prof.columns] + ["event"]
    if prof.empty:
        return pd.DataFrame(columns=[*keys, "category", "samples", "share"])
    cats = {s: categorise(s) for s in prof["stack"].unique()}
    prof = prof.assign(category=prof["stack"].map(cats))
    out = prof.groupby([*keys, "category"], as_index=False)["samples"].sum()
    out["share"] = out["samples"] / out.groupby(keys)["samples"].transform("sum")
    return out.sort_values([*keys, "share"], ascending=[True] * len(keys) + [False]).reset_index(drop=True)


def counter_rates(perf_counters: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per run and event: the total over all threads, per MiB received and per second of run.

    Only counted values are summed; events never counted in a run are left out (see
    ``cache_effects`` for what was not supported)."""
    counted = perf_counters[perf_counters["status"] == "counted"]
    per_run = counted.groupby(["run_id", "event", "unit"], as_index=False)["value"].sum()
    cols = ["run_id", *[c for c in [*LABELS, "bytes_received", "loadgen_duration_s"] if c in runs.columns]]
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    out = per_run.merge(ok[cols], on="run_id", how="inner")
    if "bytes_received" in out.columns:
        out["per_mib"] = out["value"] / (out["bytes_received"] / 2**20)
    if "loadgen_duration_s" in out.columns:
        out["per_s"] = out["value"] / out["loadgen_duration_s"]
    return out


def cache_effects(perf_counters: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Cache misses per KiB received by the receiving threads, by topology — or, per event, why not.

    Columns: labels, event, status (`counted` | `not supported` | `absent`), runs,
    misses_per_kib_median/min/max (NaN unless counted), note."""
    keys = [c for c in LABELS if c in runs.columns]
    rows = []
    recv = perf_counters[perf_counters["thread"].str.contains(RECEIVING)]
    recv = _labelled(recv[recv["event"].isin(CACHE_EVENTS)], runs)
    ok = runs[runs["status"] == "ok"] if "status" in runs.columns else runs
    for group, group_runs in ok.groupby(keys):
        label = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        for event in CACHE_EVENTS:
            ev = recv[recv["run_id"].isin(group_runs["run_id"]) & (recv["event"] == event)]
            row = {**label, "event": event, "runs": len(group_runs), "misses_per_kib_median": float("nan"),
                   "misses_per_kib_min": float("nan"), "misses_per_kib_max": float("nan")}
            if ev.empty:
                row.update(status="absent", note="perf stat did not run for these runs (record --perf)")
            elif not (ev["status"] == "counted").any():
                row.update(status="not supported",
                           note=f"perf reported {event} <not supported>: no hardware PMU where these runs "
                                "executed; use the hot-vs-cold work cost (work ns/KiB on the receiving "
                                "core vs another core) as the cache-effect measure")
            else:
                misses = ev[ev["status"] == "counted"].groupby("run_id")["value"].sum()
                kib = group_runs.set_index("run_id")["bytes_received"] / 1024
                per_kib = (misses / kib.reindex(misses.index)).dropna()
                row.update(status="counted", misses_per_kib_median=per_kib.median(),
                           misses_per_kib_min=per_kib.min(), misses_per_kib_max=per_kib.max(),
                           note="receiving threads only; perf scales multiplexed counts")
            rows.append(row)
    return pd.DataFrame(rows, columns=[*keys, "event", "status", "runs", "misses_per_kib_median",
                                       "misses_per_kib_min", "misses_per_kib_max", "note"])
