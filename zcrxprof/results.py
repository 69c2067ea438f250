"""The notebook entry point: ``zcrxprof.open(name_or_paths)`` returns ``Results``, one object holding
the loaded datasets, the per-run table and the label, with every analysis as a ``df_*`` method
(returns a DataFrame) and every figure as a ``plot_*`` method (returns a matplotlib Figure).

Each method only delegates to the plain functions of ``zcrxprof.analysis`` and ``zcrxprof.plots``
(which the report calls too), so a notebook and the report show the same numbers.
"""
from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from zcrxprof import dataset, plots
from zcrxprof.analysis import (background_load, cache, capacity, claims, compare, label, per_run, probes, profile,
                               queues, refill, saturation, switches, verdict)
from zcrxprof.perf import flame


class Results:
    """Loaded datasets with their analyses (``df_*``) and figures (``plot_*``) as methods."""

    def __init__(self, ds: dataset.Dataset) -> None:
        """Wrap a loaded ``Dataset``; ``open`` is the usual way in."""
        self.dataset = ds
        self.runs = per_run(ds)
        self.label = label(ds)

    def __repr__(self) -> str:
        return f"<Results {', '.join(self.names)}: {len(self.runs)} usable runs — {self.label}>"

    @property
    def names(self) -> list[str]:
        """Dataset names, in load order."""
        return self.dataset.names

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table of the datasets (schema columns plus ``dataset``)."""
        return self.dataset.tables

    @property
    def cores(self) -> int:
        """``analysis.capacity.fewest_cores``: the fewest cores the datasets were recorded on."""
        return capacity.fewest_cores(self.dataset)

    # throughput, verdict and saturation
    def df_throughput(self) -> pd.DataFrame:
        """``analysis.saturation.throughput``: median Gbit/s per topology and configuration."""
        return saturation.throughput(self.runs)

    def df_verdict(self, value: str = "gbit_s", unit: str = "Gbit/s") -> pd.DataFrame:
        """``analysis.verdict.winners``: which topology wins each configuration, how sure."""
        return verdict.winners(self.runs.dropna(subset=[value]), value, unit)

    def df_claims(self) -> pd.DataFrame:
        """``analysis.claims.df_claims``: the cover letter's three claims with their verdicts."""
        return claims.df_claims(self.dataset)

    def df_compare(self, other: "Results", metric: str = "gbit_s") -> pd.DataFrame:
        """``analysis.compare.df_compare``: ``other`` (B) against this one dataset (A), per match."""
        return compare.df_compare(self.dataset, other.dataset, metric)

    def df_background_load(self) -> pd.DataFrame:
        """``analysis.background_load``: CPU other processes took during the runs."""
        return background_load(self.runs)

    def df_scaling(self) -> pd.DataFrame:
        """``analysis.saturation.scaling``: speed-up over ``single``."""
        return saturation.scaling(self.runs)

    def df_offered_vs_achieved(self) -> pd.DataFrame:
        """``analysis.saturation.offered_vs_achieved``: achieved against offered load."""
        return saturation.offered_vs_achieved(self.runs)

    def df_receiver_sleeps(self) -> pd.DataFrame:
        """``analysis.saturation.receiver_sleeps``: how often receiving threads waited for data."""
        return saturation.receiver_sleeps(self.dataset)

    def df_ring_share(self) -> pd.DataFrame:
        """``analysis.saturation.ring_share``: each ring's share of the bytes per run."""
        return saturation.ring_share(self.dataset)

    def df_fairness(self, min_rings: int = 1) -> pd.DataFrame:
        """``analysis.saturation.fairness``: median Jain's index per topology."""
        return saturation.fairness(self.dataset, min_rings)

    def df_ratio_to_single(self, topology: str, value: str = "gbit_s", min_rings: int = 2) -> pd.DataFrame:
        """``analysis.saturation.ratio_to_single``: a topology's ``value`` over ``single``'s."""
        return saturation.ratio_to_single(self.runs, topology, value, min_rings)

    # queues
    def df_queue_budget(self) -> pd.DataFrame:
        """``analysis.queues.queue_budget``: hardware queues each topology used."""
        return queues.queue_budget(self.dataset)

    def df_shared_over_per_ring(self) -> pd.DataFrame:
        """``analysis.queues.shared_over_per_ring``: one queue against a queue per ring."""
        return queues.shared_over_per_ring(self.runs)

    # costs, switches, cache
    def df_costs(self) -> pd.DataFrame:
        """``analysis.switches.costs``: per-GB costs, long form."""
        return switches.costs(self.runs)

    def df_switches_per_gb(self) -> pd.DataFrame:
        """``analysis.switches.switches_per_gb``: median switches per GB per topology."""
        return switches.switches_per_gb(self.runs)

    def df_handoff_cost(self) -> pd.DataFrame:
        """``analysis.switches.handoff_cost``: ``workers`` against ``shared-ifq``."""
        return switches.handoff_cost(self.runs)

    def df_wakeup_latency(self) -> pd.DataFrame:
        """``analysis.switches.wakeup_latency``: wake-up to run latency histograms."""
        return switches.wakeup_latency(self.dataset)

    def df_work_cost(self) -> pd.DataFrame:
        """``analysis.cache.work_cost``: work cost per KiB, payload hot or cold."""
        return cache.work_cost(self.runs)

    def df_hot_vs_cold(self) -> pd.DataFrame:
        """``analysis.cache.hot_vs_cold``: cold over hot work cost per configuration."""
        return cache.hot_vs_cold(self.runs)

    def df_pmu_counters(self) -> pd.DataFrame:
        """``analysis.cache.pmu_counters``: cache misses per KiB (empty without a PMU)."""
        return cache.pmu_counters(self.dataset)[0]

    def pmu_statement(self) -> str:
        """What the datasets hold of hardware cache counters, in one line."""
        return cache.pmu_counters(self.dataset)[1]

    # refill ring
    def df_refill_backlog(self) -> pd.DataFrame:
        """``analysis.refill.backlog``: refill backlog and ENOBUFS per GB."""
        return refill.backlog(self.runs)

    def df_copy_fallback(self) -> pd.DataFrame:
        """``analysis.refill.copy_fallback``: bytes the kernel copied instead."""
        return refill.copy_fallback(self.dataset)

    def df_starvation(self) -> pd.DataFrame:
        """``analysis.refill.starvation``: refill starvation counters."""
        return refill.starvation(self.dataset)

    # capacity model
    @functools.cached_property
    def capacity_costs(self) -> capacity.Costs:
        """``analysis.capacity.measure_costs`` with hand-off and sync costs."""
        return capacity.measure_costs(self.runs, include_handoff_and_sync=True)

    def df_capacity_costs(self) -> pd.DataFrame:
        """``analysis.capacity.costs_table`` of ``capacity_costs``."""
        return capacity.costs_table(self.capacity_costs)

    def df_capacity_validation(self) -> pd.DataFrame:
        """``analysis.capacity.validate``: predictions from single runs against measurements."""
        return capacity.validate(self.runs, self.cores)

    def df_capacity_error(self) -> pd.DataFrame:
        """``analysis.capacity.validation_error``: worst and median prediction error."""
        return capacity.validation_error(self.df_capacity_validation())

    def df_extrapolation(self, cores: int = 64, line_rate_gbit_s: float = 200.0, queues: float = 8,
                         rings: list[int] | None = None) -> pd.DataFrame:
        """``analysis.capacity.extrapolate`` to another machine (a model, not a measurement)."""
        return capacity.extrapolate(self.capacity_costs, cores, line_rate_gbit_s, queues,
                                    rings or [1, 2, 4, 8, 16, 32])

    # kernel probes
    def df_attach_report(self) -> pd.DataFrame:
        """``analysis.probes.attach_report``: what attached, and why the others did not."""
        return probes.attach_report(self.dataset)

    def df_probe_totals(self) -> pd.DataFrame:
        """``analysis.probes.probe_totals``: probe counters per run."""
        return probes.probe_totals(self.dataset)

    def df_probe_medians(self) -> pd.DataFrame:
        """``analysis.probes.probe_medians``: probe counters per topology."""
        return probes.probe_medians(self.dataset)

    def df_probe_questions(self) -> pd.DataFrame:
        """``analysis.probes.questions``: the counters that answer a question, per GB, per topology."""
        return probes.questions(self.dataset, self.runs)

    def df_probe_metric_total(self, metric: str) -> pd.DataFrame:
        """``analysis.probes.metric_total``: one probe metric summed over runs."""
        return probes.metric_total(self.dataset, metric)

    def df_against_loadgen(self, metric: str, loadgen_column: str) -> pd.DataFrame:
        """``analysis.probes.against_loadgen``: kernel counts against the load generator's."""
        return probes.against_loadgen(self.dataset, metric, loadgen_column)

    # perf profile
    def df_receive_breakdown(self) -> pd.DataFrame:
        """``analysis.profile.receive_breakdown``: receiving-thread samples per category."""
        return profile.receive_breakdown(self.dataset.profile, self.dataset.runs)

    def df_profile_shares(self) -> pd.DataFrame:
        """``analysis.profile.shares_by_topology``: category × topology sample shares."""
        return profile.shares_by_topology(self.dataset.profile, self.dataset.runs)

    def df_handoff_share(self) -> pd.DataFrame:
        """``analysis.profile.handoff_share``: scheduler and lock share per topology."""
        return profile.handoff_share(self.dataset.profile, self.dataset.runs).rename("share").rename_axis(
            "topology").reset_index()

    # figures
    def plot_throughput(self) -> Figure:
        """``plots.throughput``."""
        return plots.throughput(self.df_throughput(), self.label)

    def plot_offered_vs_achieved(self) -> Figure:
        """``plots.saturation_curve`` against offered load."""
        return plots.saturation_curve(self.df_offered_vs_achieved(), self.label)

    def plot_scaling(self) -> Figure:
        """``plots.scaling``."""
        return plots.scaling(self.df_scaling(), self.label)

    def plot_ring_share(self) -> Figure:
        """``plots.ring_share``."""
        return plots.ring_share(self.df_ring_share(), self.label)

    def plot_costs_per_gb(self) -> Figure:
        """``plots.costs_per_gb``."""
        return plots.costs_per_gb(self.runs, self.label)

    def plot_hot_vs_cold(self) -> Figure:
        """``plots.hot_vs_cold``."""
        return plots.hot_vs_cold(self.df_work_cost(), self.label)

    def plot_wakeup_latency(self, title: str = "Wake-up to run latency") -> Figure:
        """``plots.log2_histogram`` of ``df_wakeup_latency``."""
        return plots.log2_histogram(self.df_wakeup_latency(), self.label, title)

    def plot_capacity_validation(self) -> Figure:
        """``plots.capacity_validation``."""
        return plots.capacity_validation(self.df_capacity_validation(), self.label)

    def plot_extrapolation(self, **kwargs) -> Figure:
        """``plots.extrapolation`` of ``df_extrapolation(**kwargs)``."""
        return plots.extrapolation(self.df_extrapolation(**kwargs), self.label)

    def plot_probe_questions(self) -> Figure:
        """``plots.probe_questions`` of ``df_probe_questions``."""
        return plots.probe_questions(self.df_probe_questions(), self.label)

    def plot_icicle(self) -> Figure:
        """``perf.flame.figure``: an icicle graph of the profile per topology."""
        return flame.figure(profile.labelled(self.dataset.profile, self.dataset.runs))


def open(name_or_paths: str | Path | list[str | Path] = "", root: Path | None = None, where: str = "host",
         with_probes: bool = False) -> Results:
    """Load one dataset (directory, or name under the datasets root) or several into ``Results``;
    an empty name picks the newest complete dataset recorded ``where`` (``dataset.pick``)."""
    ds = dataset.load(name_or_paths or dataset.pick(where, root=root, with_probes=with_probes), root)
    for note in dataset.absent_notes(ds):
        print(note)
    return Results(ds)

