"""The cover letter's claims, each checked against a recording: (1) one ring saturates under
userspace work (``single``); (2) handing the work to threads costs context switches and CPU per GB
over rings sharing an ifq with as many threads (``workers`` against ``shared-ifq``); (3) an ifq per
ring needs a hardware queue per ring where sharing needs one, at what throughput ratio
(``ifq-per-ring`` against ``shared-ifq``); (4) working on a payload received on another core costs
more than on the receiving core (cache effect: PMU cache misses per KiB where the machine has a
PMU, the working thread's user CPU per KiB hot against cold otherwise). Each gets ``supported``,
``contradicted`` or ``not resolved`` by the recording, with the numbers behind it."""
from __future__ import annotations

import math

import pandas as pd

from zcrxprof.analysis.cache import pmu_misses_per_kib, work_cost
from zcrxprof.analysis.compare import ALPHA, significant_direction
from zcrxprof.analysis.queues import queue_budget
from zcrxprof.analysis.runs import per_run
from zcrxprof.analysis.saturation import BASE, SATURATED_BELOW
from zcrxprof.analysis.stats import Estimate, bootstrap_median, bootstrap_ratio, permutation_test
from zcrxprof.analysis.switches import handoff_cost
from zcrxprof.dataset import Dataset
from zcrxprof.analysis.labels import shared_cores_notes
from zcrxprof.vocab import HOT_TOPOLOGIES, is_emulated_timing

SUPPORTED, CONTRADICTED, NOT_RESOLVED = "supported", "contradicted", "not resolved"
# A receiving thread that sleeps at most this often a second never waited for data: it is saturated.
SATURATED_SLEEPS_PER_S = 1.0
COLUMNS = ["dataset", "claim", "title", "verdict", "reason", "note", "quantity", "unit", "median", "ci_lo",
           "ci_hi", "runs", "p_value"]


def _row(quantity: str, unit: str, est: Estimate | None = None, value: float = math.nan,
         runs: int = 0, p_value: float = math.nan) -> dict:
    if est is not None:
        return {"quantity": quantity, "unit": unit, "median": est.value, "ci_lo": est.lo, "ci_hi": est.hi,
                "runs": est.n, "p_value": p_value}
    return {"quantity": quantity, "unit": unit, "median": value, "ci_lo": math.nan, "ci_hi": math.nan,
            "runs": runs, "p_value": p_value}


def _claim(name: str, number: int, title: str, verdict: str, reason: str, note: str, rows: list[dict]) -> list[dict]:
    return [{"dataset": name, "claim": number, "title": title, "verdict": verdict, "reason": reason,
             "note": note, **r} for r in rows]


def _unresolved(name: str, number: int, title: str, reason: str) -> list[dict]:
    return _claim(name, number, title, NOT_RESOLVED, reason, "", [_row("", "")])


def _why_unresolved(p_floor: float, what: str) -> str:
    if math.isfinite(p_floor) and p_floor >= ALPHA:
        return (f"too few runs: the smallest p they allow is {p_floor:.2g}, not below {ALPHA:g} "
                f"(record --repeat 4 or more)")
    return f"the 95% interval of {what} includes 1 or p >= {ALPHA:g}"


def _cores(ds: Dataset, name: str) -> int | None:
    cores = (ds.metadata_by_name[name].get("machine") or {}).get("cores")
    return int(cores) if cores else None


def _sharing(runs: pd.DataFrame, cores: int | None) -> str:
    """``4 rings on 2 CPUs: rings share cores`` for the claim's runs whose rings and workers
    outnumbered the CPUs they could use (each run's own fact; ``cores`` for older datasets)."""
    return "; ".join(shared_cores_notes(runs, cores))


def _count(x: float) -> str:
    return f"{x:.0f}" if abs(x) >= 10 else f"{x:.2g}"


def saturation_claim(runs: pd.DataFrame, name: str, emulated: bool = False) -> list[dict]:
    """Claim 1 for one dataset's ``per_run`` rows: the ``single`` runs with the most work, unpaced
    (else the highest offered rate); saturated when the ring thread slept at most once a second
    (unpaced) or achieved less than 95 % of the offered load (paced). ``emulated``: the timing was
    emulated (TCG guest), said in the note."""
    title = "One ring saturates under userspace work (single)"
    single = runs[runs["topology"] == "single"]
    if single.empty:
        return _unresolved(name, 1, title, "no usable single run in this recording")
    work = single["work_ns_per_kib"].max()
    at_work = single[single["work_ns_per_kib"] == work]
    rate = 0.0 if (at_work["rate_gbit_s"] == 0).any() else at_work["rate_gbit_s"].max()
    g = at_work[at_work["rate_gbit_s"] == rate]
    gbit = bootstrap_median(g["gbit_s"])
    sleeps = bootstrap_median(g["rx_nvcsw"] / g["loadgen_duration_s"].where(g["loadgen_duration_s"] > 0))
    title = f"One ring saturates at {gbit.value:.2f} Gbit/s under {work:g} ns/KiB of work (single)"
    rows = [_row("single Gbit/s", "Gbit/s", gbit)]
    if rate > 0:
        rows.append(_row("offered Gbit/s", "Gbit/s", value=rate, runs=len(g)))
        saturated = gbit.value < SATURATED_BELOW * rate
        reason = (f"it achieved {gbit.value / rate:.0%} of the {rate:g} Gbit/s offered" +
                  ("" if saturated else ": it kept up with the offered load"))
    else:
        saturated = sleeps.value <= SATURATED_SLEEPS_PER_S
        reason = (f"unpaced, the ring thread slept {_count(sleeps.value)} times a second "
                  + ("(never waited for data)" if saturated else "waiting for data: the sender limited it"))
    rows.append(_row("ring thread sleeps/s", "1/s", sleeps))
    note = "timing emulated (TCG guest): not the speed of hardware" if emulated else ""
    return _claim(name, 1, title, SUPPORTED if saturated else CONTRADICTED, reason, note, rows)


def handoff_claim(runs: pd.DataFrame, name: str, cores: int | None) -> list[dict]:
    """Claim 2 for one dataset's ``per_run`` rows, at the most threads ``handoff_cost`` pairs:
    supported when ``workers`` costs significantly more switches and CPU-s per GB than
    ``shared-ifq``, contradicted when either is significantly lower."""
    title = "Handing work to threads costs switches and CPU per GB (workers vs shared-ifq)"
    pairs = handoff_cost(runs)
    if pairs.empty:
        return _unresolved(name, 2, title, "no workers and shared-ifq runs with equal parallelism")
    h = pairs.sort_values(["threads", "work_ns_per_kib"]).iloc[-1]
    r = runs.assign(n=runs["rings"].where(runs["topology"] != "workers", runs["workers"]))
    g = r[r["n"] == h["threads"]].merge(pd.DataFrame([h[BASE]]), on=BASE)
    w, s = g[g["topology"] == "workers"], g[g["topology"] == "shared-ifq"]
    w_cpu, s_cpu = w["cpu_s_per_gb_user"] + w["cpu_s_per_gb_sys"], s["cpu_s_per_gb_user"] + s["cpu_s_per_gb_sys"]
    sw_ratio, sw_test = bootstrap_ratio(w["switches_per_gb"], s["switches_per_gb"]), \
        permutation_test(w["switches_per_gb"], s["switches_per_gb"])
    cpu_ratio = Estimate(h["cpu_ratio"], h["cpu_ratio_lo"], h["cpu_ratio_hi"], int(min(len(w), len(s))))
    n = int(h["threads"])
    title = (f"Handing work to {n} threads costs {h['extra_switches_per_gb']:.0f} switches and "
             f"{h['extra_cpu_s_per_gb']:.2g} CPU-s per GB more than {n} rings sharing an ifq")
    directions = (significant_direction(sw_ratio, sw_test.p_value), significant_direction(cpu_ratio, h["p_value"]))
    if directions == (1, 1):
        verdict, reason = SUPPORTED, "workers costs more switches and CPU-s per GB (p < 0.05, intervals above 1)"
    elif -1 in directions:
        verdict, reason = CONTRADICTED, "workers costs significantly less " + (
            "switches" if directions[0] == -1 else "CPU") + " per GB than shared-ifq"
    else:
        verdict, reason = NOT_RESOLVED, _why_unresolved(max(sw_test.p_floor, h["p_floor"]), "a ratio")
    rows = [_row("workers switches/GB", "1/GB", bootstrap_median(w["switches_per_gb"])),
            _row("shared-ifq switches/GB", "1/GB", bootstrap_median(s["switches_per_gb"])),
            _row("switches ratio", "x", sw_ratio, p_value=sw_test.p_value),
            _row("workers CPU-s/GB", "s/GB", bootstrap_median(w_cpu)),
            _row("shared-ifq CPU-s/GB", "s/GB", bootstrap_median(s_cpu)),
            _row("CPU ratio", "x", cpu_ratio, p_value=h["p_value"])]
    return _claim(name, 2, title, verdict, reason, _sharing(g, cores), rows)


def queues_claim(ds: Dataset, runs: pd.DataFrame, name: str, cores: int | None) -> list[dict]:
    """Claim 3 for one dataset, at the most rings ``shared-ifq`` ran with (at least two): supported
    when the runs registered a queue per ring for ``ifq-per-ring`` and one for ``shared-ifq`` and
    sharing is not significantly slower; contradicted when either fails."""
    title = "One ifq per ring needs a queue per ring where sharing needs one"
    shared_runs = runs[(runs["topology"] == "shared-ifq") & (runs["rings"] >= 2)]
    per_ring_runs = runs[(runs["topology"] == "ifq-per-ring") & (runs["rings"] >= 2)]
    rings = sorted(set(shared_runs["rings"]) & set(per_ring_runs["rings"]))
    if not rings:
        return _unresolved(name, 3, title, "no ifq-per-ring and shared-ifq runs with the same rings (2 or more)")
    n = int(rings[-1])
    s_runs, p_runs = shared_runs[shared_runs["rings"] == n], per_ring_runs[per_ring_runs["rings"] == n]
    s, p = s_runs["gbit_s"], p_runs["gbit_s"]
    ratio, test = bootstrap_ratio(s, p), permutation_test(s, p)
    budget = queue_budget(ds)
    budget = budget[(budget["dataset"] == name) & (budget["rings"] == n)].set_index("topology")
    q_per_ring = int(budget.loc["ifq-per-ring", "queues"]) if "ifq-per-ring" in budget.index else None
    q_shared = int(budget.loc["shared-ifq", "queues"]) if "shared-ifq" in budget.index else None
    title = (f"One ifq per ring needs {q_per_ring if q_per_ring is not None else '?'} queues where sharing "
             f"needs {q_shared if q_shared is not None else '?'}, at x{ratio.value:.2f} the throughput "
             f"({n} rings)")
    direction = significant_direction(ratio, test.p_value)
    if q_per_ring is None or q_shared is None:
        verdict, reason = NOT_RESOLVED, "the runs recorded no queue registrations"
    elif q_per_ring != n or q_shared != 1:
        verdict, reason = CONTRADICTED, f"registered {q_per_ring} and {q_shared} queues, not {n} and 1"
    elif direction < 0:
        verdict, reason = CONTRADICTED, "sharing one ifq is significantly slower"
    else:
        verdict = SUPPORTED
        reason = (f"{q_per_ring} queues against 1; sharing is "
                  + ("significantly faster" if direction > 0 else "not significantly slower"))
    rows = [_row("ifq-per-ring queues", "", value=q_per_ring if q_per_ring is not None else math.nan,
                 runs=len(p)),
            _row("shared-ifq queues", "", value=q_shared if q_shared is not None else math.nan, runs=len(s)),
            _row("ifq-per-ring Gbit/s", "Gbit/s", bootstrap_median(p)),
            _row("shared-ifq Gbit/s", "Gbit/s", bootstrap_median(s)),
            _row("shared/per-ring", "x", ratio, p_value=test.p_value)]
    return _claim(name, 3, title, verdict, reason, _sharing(pd.concat([p_runs, s_runs]), cores), rows)


def _hot_cold_groups(frame: pd.DataFrame, value: str) -> tuple[pd.Series, pd.Series, dict]:
    """The hot and cold per-run ``value`` of the configuration (``BASE``) with the most work that
    has both placements, and that configuration."""
    best: tuple[pd.Series, pd.Series, dict] = (pd.Series(dtype=float), pd.Series(dtype=float), {})
    for key, g in frame.groupby(BASE, dropna=False):
        hot, cold = g[g["placement"] == "hot"][value], g[g["placement"] == "cold"][value]
        config = dict(zip(BASE, key))
        if len(hot) and len(cold) and (not best[2] or config["work_ns_per_kib"] >= best[2]["work_ns_per_kib"]):
            best = (hot, cold, config)
    return best


def cache_claim(ds: Dataset, runs: pd.DataFrame, name: str, cores: int | None) -> list[dict]:
    """Claim 4 for one dataset: cold (``workers``: a worker works on what the ring thread received
    on another core) against hot (a ring thread works on what it received). Where perf counted a
    hardware cache event, its misses per KiB received (``cache.pmu_misses_per_kib``); otherwise
    the working thread's user CPU ns per KiB (``cache.work_cost``, as ``cache.hot_vs_cold``).
    Supported when cold is significantly dearer, contradicted when significantly cheaper."""
    title = "Work on a payload received on another core costs more (cache effect, workers vs rings)"
    pmu = pmu_misses_per_kib(ds, runs)
    if not pmu.empty:
        event = pmu["event"].iloc[0]
        frame, value, unit = pmu[pmu["event"] == event], "misses_per_kib", f"{event}/KiB"
        measure = f"{event} per KiB (PMU)"
    else:
        frame, value, unit = work_cost(runs), "measured_ns_per_kib", "ns/KiB"
        measure = "user CPU per KiB (no PMU counters)"
    hot, cold, config = _hot_cold_groups(frame, value)
    if hot.empty:
        return _unresolved(name, 4, title, "no workers run next to a ring-thread topology with work "
                                           "in the same configuration")
    ratio, test = bootstrap_ratio(cold, hot), permutation_test(cold, hot)
    title = (f"Working on a payload from another core costs x{ratio.value:.2f} in {measure} "
             f"at {config['work_ns_per_kib']:g} ns/KiB of work")
    direction = significant_direction(ratio, test.p_value)
    if direction > 0:
        verdict, reason = SUPPORTED, "cold (workers) is significantly dearer than hot (p < 0.05, interval above 1)"
    elif direction < 0:
        verdict, reason = CONTRADICTED, "cold (workers) is significantly cheaper than hot"
    else:
        verdict, reason = NOT_RESOLVED, _why_unresolved(test.p_floor, "cold/hot")
    rows = [_row(f"hot {unit}", unit, bootstrap_median(hot)), _row(f"cold {unit}", unit, bootstrap_median(cold)),
            _row("cold/hot", "x", ratio, p_value=test.p_value)]
    compared = runs.merge(pd.DataFrame([config]), on=BASE)
    notes = [_sharing(compared[compared["topology"].isin([*HOT_TOPOLOGIES, "workers"])], cores)]
    if pmu.empty and is_emulated_timing((ds.metadata_by_name[name].get("place") or {}).get("accelerator")):
        notes.append("timing emulated (TCG guest): CPU times do not show a real cache")
    note = "; ".join(n for n in notes if n)
    return _claim(name, 4, title, verdict, reason, note, rows)


def df_claims(ds: Dataset) -> pd.DataFrame:
    """The four claims per dataset, long form: one row per quantity shown, with the claim's
    ``claim`` number, ``title`` (its numbers filled in), ``verdict`` (supported / contradicted /
    not resolved), ``reason``, ``note`` (``4 rings on 2 CPUs: rings share cores``) and per quantity ``median``,
    ``ci_lo``/``ci_hi`` (95 % bootstrap; NaN for counts), ``runs`` and ``p_value`` (exact
    permutation test, ratios only). Usable runs only."""
    runs = per_run(ds)
    rows: list[dict] = []
    for name in ds.names:
        mine = runs[runs["dataset"] == name]
        cores = _cores(ds, name)
        accel = (ds.metadata_by_name[name].get("place") or {}).get("accelerator")
        rows += saturation_claim(mine, name, is_emulated_timing(accel))
        rows += handoff_claim(mine, name, cores)
        rows += queues_claim(ds, mine, name, cores)
        rows += cache_claim(ds, mine, name, cores)
    return pd.DataFrame(rows, columns=COLUMNS)
