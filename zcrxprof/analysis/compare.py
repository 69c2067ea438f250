"""A/B comparison of two recordings (two kernels, commits, machines, patched or not): runs matched by
topology, rings, workers, work and offered rate; per match the ratio B / A of the medians with a 95 %
bootstrap interval, an exact permutation test and a verdict word, and the reasons the two may not be
comparable (tool, backend, emulated timing, cores, sender, work model)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from zcrxprof.analysis.runs import per_run
from zcrxprof.analysis.stats import Estimate, bootstrap_median, bootstrap_ratio, permutation_test
from zcrxprof.dataset import Dataset
from zcrxprof.importers.common import tool_of
from zcrxprof.vocab import is_emulated_timing, topology_order

# A difference is significant when the permutation test's p is below this and the ratio's 95 %
# interval excludes 1.
ALPHA = 0.05
# Run columns a match is made on; WORK is dropped when A and B never recorded the same work.
WORK = "work_ns_per_kib"
MATCH = ["topology", "rings", "workers", WORK, "rate_gbit_s"]


@dataclass(frozen=True)
class Metric:
    """A per-run quantity a comparison is made on, its unit and which direction is better."""

    name: str
    unit: str
    higher_is_better: bool


METRICS = {
    "gbit_s": Metric("gbit_s", "Gbit/s", True),
    "cpu_per_gb": Metric("cpu_per_gb", "CPU-s/GB", False),
    "switches_per_gb": Metric("switches_per_gb", "switches/GB", False),
}


def metric_values(runs: pd.DataFrame, metric: str) -> pd.Series:
    """``metric`` per run of a ``per_run`` table: ``gbit_s``, ``switches_per_gb`` (receiving and
    worker threads) or ``cpu_per_gb`` (their user + system CPU-seconds per GB)."""
    if metric == "cpu_per_gb":
        return runs["cpu_s_per_gb_user"] + runs["cpu_s_per_gb_sys"]
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    return runs[metric]


def significant_direction(ratio: Estimate, p_value: float, alpha: float = ALPHA) -> int:
    """+1 when B / A is significantly above 1 (p < ``alpha`` and the interval above 1), -1 when
    significantly below, 0 otherwise."""
    if not (math.isfinite(p_value) and p_value < alpha):
        return 0
    if ratio.lo > 1:
        return 1
    if ratio.hi < 1:
        return -1
    return 0


def verdict_word(direction: int, metric: Metric) -> str:
    """pyperf's words for B against A: ``faster``/``slower`` for throughput, ``cheaper``/``costlier``
    for a cost (lower is better), else ``not significant``."""
    if direction == 0:
        return "not significant"
    if metric.higher_is_better:
        return "faster" if direction > 0 else "slower"
    return "costlier" if direction > 0 else "cheaper"


def _facts(ds: Dataset, runs: pd.DataFrame) -> dict[str, str]:
    """What must be equal for A and B to be comparable, as printable words."""
    machine = ds.metadata.get("machine") or {}
    accel = (ds.metadata.get("place") or {}).get("accelerator") or next((a for a in runs["accelerator"] if a), "")
    return {"tool": tool_of(ds.metadata),
            "backend": "/".join(sorted(set(runs["backend"]))) or str(ds.metadata.get("backend") or "?"),
            "emulated timing": "yes" if is_emulated_timing(accel) else "no",
            "cores": str(machine.get("cores") or "?"),
            "sender": "/".join(sorted(set(runs["sender"]))) or "?"}


def incomparable(a: Dataset, runs_a: pd.DataFrame, b: Dataset, runs_b: pd.DataFrame) -> list[str]:
    """One warning per fact that differs between A and B and makes their numbers incomparable:
    the tool that measured them (zcrxprof or an imported iperf3/neper/kperf), backend, emulated
    timing, cores, sender (``work model differs`` is added per match)."""
    fa, fb = _facts(a, runs_a), _facts(b, runs_b)
    return [f"{what} differs: A {fa[what]}, B {fb[what]}" for what in fa if fa[what] != fb[what]]


def _configs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[MATCH].drop_duplicates()


def match_columns(runs_a: pd.DataFrame, runs_b: pd.DataFrame) -> list[str]:
    """The columns A and B are matched on: ``MATCH``, or ``MATCH`` without the work when no
    configuration of A has the work of one of B (two work levels compared) and some match then."""
    if not _configs(runs_a).merge(_configs(runs_b), on=MATCH).empty:
        return MATCH
    rest = [c for c in MATCH if c != WORK]
    if not runs_a[rest].drop_duplicates().merge(runs_b[rest].drop_duplicates(), on=rest).empty:
        return rest
    return MATCH


COLUMNS = ["topology", "rings", "workers", "rate_gbit_s", "work_a", "work_b", "metric", "unit", "better",
           "n_a", "median_a", "ci_lo_a", "ci_hi_a", "n_b", "median_b", "ci_lo_b", "ci_hi_b",
           "ratio", "ratio_lo", "ratio_hi", "p_value", "p_floor", "verdict", "warnings"]


def compare_runs(runs_a: pd.DataFrame, runs_b: pd.DataFrame, metric: str = "gbit_s",
                 warnings: list[str] | None = None) -> pd.DataFrame:
    """One row per matched configuration of two ``per_run`` tables (see ``df_compare``)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; one of {', '.join(METRICS)}")
    m = METRICS[metric]
    on = match_columns(runs_a, runs_b)
    by = on if WORK in on else [*on, WORK]      # A's work levels stay apart even when ignored
    a = runs_a.assign(value=metric_values(runs_a, metric)).dropna(subset=["value"])
    b = runs_b.assign(value=metric_values(runs_b, metric)).dropna(subset=["value"])
    rows = []
    for key, ga in a.groupby(by, sort=False):
        keys = dict(zip(by, key))
        gb = b.merge(pd.DataFrame([{c: keys[c] for c in on}]), on=on)
        for work_b, gbw in gb.groupby(WORK, sort=True):
            ea, eb = bootstrap_median(ga["value"]), bootstrap_median(gbw["value"])
            ratio = bootstrap_ratio(gbw["value"], ga["value"])
            test = permutation_test(gbw["value"], ga["value"])
            notes = list(warnings or [])
            if keys[WORK] != work_b:
                notes.append(f"work model differs: A {keys[WORK]:g}, B {work_b:g} ns/KiB")
            rows.append({"topology": keys["topology"], "rings": int(keys["rings"]), "workers": int(keys["workers"]),
                         "rate_gbit_s": keys["rate_gbit_s"], "work_a": keys[WORK], "work_b": work_b,
                         "metric": metric, "unit": m.unit, "better": "higher" if m.higher_is_better else "lower",
                         "n_a": ea.n, "median_a": ea.value, "ci_lo_a": ea.lo, "ci_hi_a": ea.hi,
                         "n_b": eb.n, "median_b": eb.value, "ci_lo_b": eb.lo, "ci_hi_b": eb.hi,
                         "ratio": ratio.value, "ratio_lo": ratio.lo, "ratio_hi": ratio.hi,
                         "p_value": test.p_value, "p_floor": test.p_floor,
                         "verdict": verdict_word(significant_direction(ratio, test.p_value), m),
                         "warnings": "; ".join(notes)})
    out = pd.DataFrame(rows, columns=COLUMNS)
    if out.empty:
        return out
    order = {t: i for i, t in enumerate(topology_order(set(out["topology"])))}
    return (out.assign(_o=out["topology"].map(order))
            .sort_values(["_o", "rings", "workers", "work_a", "work_b", "rate_gbit_s"])
            .drop(columns="_o").reset_index(drop=True))


def df_compare(a: Dataset, b: Dataset, metric: str = "gbit_s") -> pd.DataFrame:
    """A (reference) against B, one row per matched configuration: ``topology, rings, workers,
    rate_gbit_s, work_a, work_b``, the metric with its ``unit`` and ``better`` direction, per side
    ``n, median, ci_lo, ci_hi`` (95 % bootstrap), ``ratio`` B / A with ``ratio_lo``/``ratio_hi``
    (95 % bootstrap), the two-sided permutation test's ``p_value`` and ``p_floor`` (the smallest p
    the run counts allow), ``verdict`` (faster/slower, cheaper/costlier or not significant: p <
    ``ALPHA`` and the interval excluding 1) and ``warnings`` (what makes A and B incomparable).

    Matching: topology, rings, workers, work and rate; when A and B share no work level, the
    work is ignored and every row warns ``work model differs``. Usable runs only.
    ``attrs["unmatched"]``: how many configurations of A and of B found no partner."""
    runs_a, runs_b = per_run(a), per_run(b)
    out = compare_runs(runs_a, runs_b, metric, incomparable(a, runs_a, b, runs_b))
    out.attrs["unmatched"] = unmatched(runs_a, runs_b)
    return out


def unmatched(runs_a: pd.DataFrame, runs_b: pd.DataFrame) -> tuple[int, int]:
    """How many configurations of A and of B (two ``per_run`` tables) found no partner."""
    on = match_columns(runs_a, runs_b)
    ca, cb = runs_a[on].drop_duplicates(), runs_b[on].drop_duplicates()
    both = ca.merge(cb, on=on)
    return len(ca) - len(both), len(cb) - len(both)
