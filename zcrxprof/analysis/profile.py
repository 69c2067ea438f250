"""Where receive time goes: the `profile` table's receiving-thread samples per category.

Plain functions over dataset tables (``runs``, ``profile``); every result carries the labels of the
runs it came from (backend, kernel, emulated). Rows join on ``(dataset, run_id)``; tables of one
dataset without a ``dataset`` column join on ``run_id``.
"""
from __future__ import annotations

import re

import pandas as pd

from zcrxprof.dataset import KEY, usable

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


def join_key(frame: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """``(dataset, run_id)`` when both tables carry ``dataset``, else ``run_id``."""
    return [c for c in KEY if c in frame.columns and c in runs.columns]


def labelled(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``frame`` rows of usable runs only, with the runs' labels joined in."""
    key = join_key(frame, runs)
    keep = [*key, *[c for c in LABELS if c in runs.columns and c not in key]]
    ok = runs[usable(runs)] if "status" in runs.columns else runs
    return frame.merge(ok[keep], on=key, how="inner")


def receive_breakdown(profile: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Share of receiving-thread samples per topology and category (columns: dataset, labels,
    event, category, samples, share). Shares add up to 1 within each dataset/topology/backend/kernel/event."""
    prof = labelled(profile[profile["thread"].str.contains(RECEIVING)], runs)
    keys = [c for c in ["dataset", *LABELS] if c in prof.columns] + ["event"]
    if prof.empty:
        return pd.DataFrame(columns=[*keys, "category", "samples", "share"])
    cats = {s: categorise(s) for s in prof["stack"].unique()}
    prof = prof.assign(category=prof["stack"].map(cats))
    out = prof.groupby([*keys, "category"], as_index=False)["samples"].sum()
    out["share"] = out["samples"] / out.groupby(keys)["samples"].transform("sum")
    return out.sort_values([*keys, "share"], ascending=[True] * len(keys) + [False]).reset_index(drop=True)


HANDOFF_CATEGORIES = ["scheduler", "locks (refill ring, hand-off queue)"]


def shares_by_topology(profile: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Share of receiving-thread samples per category (rows) and topology (columns), summed over
    events; from ``receive_breakdown`` (empty without a profile)."""
    breakdown = receive_breakdown(profile, runs)
    if breakdown.empty:
        return pd.DataFrame()
    return breakdown.pivot_table(index="category", columns="topology", values="share", aggfunc="sum", fill_value=0)


def handoff_share(profile: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """Per topology: the share of receiving-thread samples in the scheduler and in locks — what
    handing buffers to other threads costs (``HANDOFF_CATEGORIES``)."""
    share = shares_by_topology(profile, runs)
    if share.empty:
        return pd.Series(dtype="float64")
    return share.reindex(HANDOFF_CATEGORIES, fill_value=0).sum()
