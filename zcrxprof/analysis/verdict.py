"""The one-table verdict: for each configuration, which topology wins and by how much, with
confidence."""
from __future__ import annotations

import pandas as pd

from zcrxprof.analysis.saturation import BASE, parallelism
from zcrxprof.vocab import is_emulated_timing, is_zero_copy
from zcrxprof.analysis.stats import (bootstrap_median, bootstrap_ratio, cliffs_delta, describe_delta,
                                     hedges_g, permutation_test)



def confidence(ratio_lo: float, delta: float, p_value: float, alpha: float = 0.05,
               n: int = 3, n_min: int = 3) -> str:
    """``significant`` (permutation p < alpha), ``too few runs`` (fewer than ``n_min`` runs per
    topology), ``clear`` (ratio CI above 1 and no overlap between runs), ``likely`` (ratio CI above
    1) or ``not distinguishable``."""
    if p_value < alpha and ratio_lo > 1:
        return "significant"
    if n < n_min:
        return "too few runs"
    if ratio_lo > 1 and abs(delta) == 1:
        return "clear"
    if ratio_lo > 1:
        return "likely"
    return "not distinguishable"


def _compare(base: dict, g: pd.DataFrame, value: str, unit: str) -> dict | None:
    """The verdict row for one set of comparable runs (``None`` with fewer than two topologies)."""
    per_topo = {t: gg[value].dropna() for t, gg in g.groupby("topology")}
    per_topo = {t: v for t, v in per_topo.items() if len(v)}
    if len(per_topo) < 2:
        return None
    ranked = sorted(per_topo, key=lambda t: bootstrap_median(per_topo[t]).value, reverse=True)
    win, second = ranked[0], ranked[1]
    a, b = per_topo[win], per_topo[second]
    ratio = bootstrap_ratio(a, b)
    test = permutation_test(a, b)
    delta = cliffs_delta(a, b)
    word = confidence(ratio.lo, delta, test.p_value, n=min(len(a), len(b)))
    wg = g[g["topology"] == win]
    copy_kind = "zero-copy" if is_zero_copy(base["backend"]) else "not zero-copy"
    emulated = "; ".join(sorted({e for e in wg["emulated"] if e})) or "nothing"
    timing = "emulated timing (TCG guest)" if is_emulated_timing(base["accelerator"]) else "real timing"
    statement = (f"{win} wins over {second}: {bootstrap_median(a).value:.2f} vs "
                 f"{bootstrap_median(b).value:.2f} {unit} (x{ratio.value:.2f}, 95% CI "
                 f"x{ratio.lo:.2f}-x{ratio.hi:.2f}; exact permutation test p={test.p_value:.2g}, floor "
                 f"{test.p_floor:.2g} with {test.n_a} vs {test.n_b} runs; Cliff's delta "
                 f"{delta:+.2f}, {describe_delta(delta)}) — {word}; backend {base['backend']} "
                 f"({copy_kind}), kernel {base['kernel']}, {base['place']}, {timing}; "
                 f"emulated: {emulated}")
    return {**base, "threads": int(g["threads"].max()), "metric": value, "winner": win, "runner_up": second,
            "winner_median": bootstrap_median(a).value, "runner_up_median": bootstrap_median(b).value,
            "ratio": ratio.value, "ratio_lo": ratio.lo, "ratio_hi": ratio.hi,
            "p_value": test.p_value, "p_floor": test.p_floor, "cliffs_delta": delta,
            "hedges_g": hedges_g(a, b), "effect": describe_delta(delta), "confidence": word,
            "ranking": " > ".join(ranked), "statement": statement}


def winners(runs: pd.DataFrame, value: str = "gbit_s", unit: str = "Gbit/s") -> pd.DataFrame:
    """One row per configuration (``BASE`` columns and the parallelism ``threads`` of the
    multi-thread topologies, each set against ``single``): the winning topology by median
    ``value`` (higher is better), the runner-up, the ratio with a 95 % bootstrap CI, an exact
    two-sided permutation test on the means (with the smallest p the design allows), Cliff's delta
    and Hedges' g, the confidence word and a one-sentence ``statement`` naming backend, kernel and
    whether it is zero copy."""
    rows = []
    runs = runs.assign(threads=parallelism(runs))
    for key, group in runs.groupby(BASE, dropna=False, sort=True):
        multi = group[group["topology"] != "single"]
        for n in sorted(set(multi["threads"])) or [1]:
            row = _compare(dict(zip(BASE, key)),
                           group[(group["topology"] == "single") | (group["threads"] == n)], value, unit)
            if row:
                rows.append(row)
    return pd.DataFrame(rows)
