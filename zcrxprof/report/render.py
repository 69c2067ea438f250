"""The report's content: one section per question, each from analysis functions and plots."""
from __future__ import annotations

import json

import pandas as pd

from zcrxprof import plots
from zcrxprof.analysis import background_load, label, per_run
from zcrxprof.analysis import cache, capacity, probes, profile, queues, refill, saturation, switches, verdict
from zcrxprof.dataset import Dataset, absent_notes, default_root, usable_summary
from zcrxprof.export.perfetto_trace import export_command
from zcrxprof.perf import flame
from zcrxprof.report import html as h

VERDICT_COLUMNS = ["backend", "kernel", "place", "work_ns_per_kib", "rate_gbit_s", "threads", "winner", "runner_up",
                   "winner_median", "runner_up_median", "ratio", "ratio_lo", "ratio_hi", "p_value",
                   "p_floor", "cliffs_delta", "hedges_g", "confidence"]


def _header(ds: Dataset, lab: str) -> str:
    parts = [h.paragraph(lab)]
    for name, meta in ds.metadata_by_name.items():
        complete = meta.get("complete")
        state = "complete" if complete else "PARTIAL (recording did not finish)"
        parts.append(h.paragraph(f"Dataset {name}: {state}; created {meta.get('created')}; "
                                 f"command: {meta.get('command_line')}", "" if complete else "warn"))
        parts.append(h.paragraph(f"{name}: {usable_summary(ds.runs[ds.runs['dataset'] == name])}"))
        for note in meta.get("notes") or []:
            parts.append(h.paragraph(f"note: {note}", "note"))
    for note in absent_notes(ds):
        parts.append(h.paragraph(note, "warn"))
    parts.append(h.paragraph("Only the zcrx backend is zero copy; copy and zcrx-nodev figures are not. "
                             "Timings from a TCG lab guest are emulated: they show counts and shapes, "
                             "not absolute performance.", "note"))
    return h.section("Dataset", *parts)


def _verdict(runs: pd.DataFrame) -> str:
    v = verdict.winners(runs)
    if v.empty:
        return h.section("Verdict", h.paragraph("Fewer than two topologies with successful runs: no verdict."))
    statements = "".join(f"<li>{h.esc(s)}</li>" for s in v["statement"])
    parts = [h.table(v[VERDICT_COLUMNS]), f"<ul>{statements}</ul>",
             h.paragraph("Ratio: winner median / runner-up median (95% percentile bootstrap CI over runs). "
                         "p: exact two-sided permutation test on the means; p_floor is the smallest p the "
                         "number of runs allows. Cliff's delta: ±1 means every run of one beat every run of "
                         "the other.", "note")]
    load = background_load(runs)
    if load["other_cores_median"].notna().any():
        parts += [h.paragraph("Other processes on the machine during the runs (cores' worth of CPU they took; "
                              "a shared machine makes raw throughput comparisons noisy):"), h.table(load)]
        free = verdict.winners(runs.dropna(subset=["gbit_s_per_free_core"]), "gbit_s_per_free_core",
                               "Gbit/s per free core")
        if not free.empty:
            parts += [h.paragraph("The same verdict on throughput per core left free by other processes:"),
                      f"<ul>{''.join(f'<li>{h.esc(s)}</li>' for s in free['statement'])}</ul>"]
    return h.section("Verdict", *parts)


def _throughput(runs: pd.DataFrame, ds: Dataset, lab: str) -> str:
    tp = saturation.throughput(runs)
    parts = [h.figure(plots.throughput(tp, lab), "throughput per topology"), h.table(tp)]
    sc = saturation.scaling(runs)
    if not sc.empty:
        parts += [h.figure(plots.scaling(sc, lab), "scaling over single"),
                  h.table(sc[["topology", "rings", "workers", "work_ns_per_kib", "rate_gbit_s", "median",
                              "single_gbit_s", "speedup", "efficiency"]])]
    for value, unit in (("gbit_s", "Gbit/s"), ("gbit_s_per_free_core", "Gbit/s per free core")):
        for r in saturation.ratio_to_single(runs, "shared-ifq", value).itertuples():
            rate = f"{r.rate_gbit_s:g} Gbit/s offered" if r.rate_gbit_s > 0 else "unpaced"
            parts.append(h.paragraph(f"{r.dataset}, work {r.work_ns_per_kib:g} ns/KiB, {rate}: shared-ifq with "
                                     f"{r.rings} rings ({r.runs} runs) against single: "
                                     f"x{r.ratio:.2f} {unit} (95% CI x{r.ratio_lo:.2f}-x{r.ratio_hi:.2f}, "
                                     f"{'resolved' if r.resolved else 'not resolved: the interval includes 1'})."))
    sat = saturation.offered_vs_achieved(runs)
    if (runs["rate_gbit_s"] > 0).any():
        parts += [h.figure(plots.saturation_curve(sat, lab), "saturation against offered load"),
                  h.table(sat[["topology", "rings", "workers", "work_ns_per_kib", "rate_gbit_s", "achieved_gbit_s",
                               "achieved_share", "saturated", "saturation_gbit_s"]])]
    for sweep in ("work_ns_per_kib", "rings"):
        if runs[sweep].nunique() > 1 and (sweep != "rings" or runs[runs["topology"] != "single"][sweep].nunique() > 1):
            parts.append(h.figure(plots.saturation_curve(tp, lab, x=sweep), f"throughput against {sweep}"))
    sleeps = saturation.receiver_sleeps(ds)
    if not sleeps.empty:
        parts += [h.paragraph("How often receiving threads slept waiting for data (voluntary switches a second; "
                              "at most about one: the thread never waited, it is saturated):"), h.table(sleeps)]
    shares = saturation.ring_share(ds)
    if not shares.empty:
        parts += [h.figure(plots.ring_share(shares, lab), "per-ring share"),
                  h.table(shares.groupby(["topology", "rings"], as_index=False)["fairness"].median())]
    return h.section("Throughput and saturation", *parts)


def _queues(runs: pd.DataFrame, ds: Dataset) -> str:
    budget = queues.queue_budget(ds)
    if budget.empty:
        return h.section("Queue budget", h.paragraph("No registration records in this dataset.", "note"))
    parts = [h.paragraph("Hardware RX queues each topology used: the most distinct ifqs one run registered "
                         "(ifq-per-ring needs one per ring by design, the others one; on the copy backend an "
                         "ifq is a buffer pool, so this is what the topology would need on a NIC)."), h.table(budget)]
    one = queues.shared_over_per_ring(runs)
    for row in one.itertuples():
        parts.append(h.paragraph(f"{row.dataset}: with one queue, shared-ifq at {row.rings} rings moved "
                                 f"x{row.ratio:.2f} of ifq-per-ring's throughput (95% CI "
                                 f"x{row.ratio_lo:.2f}-x{row.ratio_hi:.2f})."))
    return h.section("Queue budget", *parts)


def _costs(runs: pd.DataFrame, ds: Dataset, lab: str) -> str:
    c = switches.costs(runs)
    table = c.pivot_table(index=["dataset", "topology", "rings", "workers"], columns="metric",
                          values="median").reset_index()
    parts = [h.figure(plots.costs_per_gb(runs, lab), "cost per GB"),
             h.paragraph("Medians over runs (rx + worker threads; softirq over all CPUs):"), h.table(table)]
    ho = switches.handoff_cost(runs)
    if not ho.empty:
        parts += [h.paragraph("Hand-off cost: workers against shared-ifq with the same number of threads."),
                  h.table(ho)]
    wl = switches.wakeup_latency(ds)
    if not wl.empty:
        parts.append(h.figure(plots.log2_histogram(wl, lab, "Wake-up to run latency"), "wake-up latency"))
    else:
        parts.append(h.paragraph("No wake-up latency histogram in this dataset.", "note"))
    return h.section("Context switches and CPU per GB", *parts)


def _cache(runs: pd.DataFrame, ds: Dataset, lab: str) -> str:
    work = cache.work_cost(runs)
    hc = cache.hot_vs_cold(runs)
    pmu, statement = cache.pmu_counters(ds)
    parts = [h.paragraph(statement)]
    if not work.empty:
        parts.append(h.figure(plots.hot_vs_cold(work, lab), "hot vs cold work cost"))
    parts.append(h.table(hc) if not hc.empty else
                 h.paragraph("No hot/cold pair (needs workers and a receiving-thread topology with work).", "note"))
    if not pmu.empty:
        parts.append(h.table(pmu))
    return h.section("Cache effects", *parts)


def _refill(runs: pd.DataFrame, ds: Dataset) -> str:
    parts = [h.table(refill.backlog(runs))]
    cp = refill.copy_fallback(ds)
    st = refill.starvation(ds)
    if not cp.empty:
        parts += [h.paragraph("Copy fallback (the kernel copied instead of receiving zero-copy):"),
                  h.table(cp.groupby(["topology", "backend", "metric", "source"], as_index=False)["value"].median())]
    else:
        parts.append(h.paragraph("No copy-fallback counters in this dataset (they come from kernel probes "
                                 "or 7.2 zcrx_stats in the kernel lab).", "note"))
    if not st.empty:
        parts.append(h.table(st.groupby(["topology", "metric", "source"], as_index=False)["value"].median()))
    return h.section("Refill ring and copy fallback", *parts)


def _probes(ds: Dataset, lab: str) -> str:
    counts = probes.probe_medians(ds)
    parts = []
    if not counts.empty:
        parts += [h.figure(plots.probe_counters(counts, lab), "kernel probe counters"), h.table(counts)]
    else:
        parts.append(h.paragraph("No kernel probe samples in this dataset.", "note"))
    parts += [h.paragraph("Probe attach report (what attached, and why the others did not):"),
              h.table(probes.attach_report(ds))]
    return h.section("Kernel probes", *parts)


def _capacity(runs: pd.DataFrame, ds: Dataset, lab: str) -> str:
    cores = capacity.fewest_cores(ds)
    val = capacity.validate(runs, cores)
    if val.empty:
        return h.section("Capacity model", h.paragraph("No single runs with a measurable receive cost "
                                                            "per byte to build the model from."))
    errors = "; ".join(f"{e.dataset}: median {e.median_error:.0%}, worst {e.worst_error:.0%}"
                       for e in capacity.validation_error(val).itertuples()) or "no multi-ring runs"
    return h.section("Capacity model",
                     h.paragraph(f"Per-byte costs measured on the single runs predict the others on "
                                 f"{cores} cores (hand-off and refill-sync costs unknown to it); "
                                 f"absolute error on multi-ring runs: {errors}."),
                     h.figure(plots.capacity_validation(val, lab), "capacity model validation"), h.table(val))


def _profile(ds: Dataset, lab: str) -> str:
    parts = []
    for name in ds.names:
        prof = ds.profile[ds.profile["dataset"] == name].drop(columns="dataset")
        if prof.empty:
            continue
        runs = ds.runs[ds.runs["dataset"] == name].drop(columns="dataset")
        breakdown = profile.receive_breakdown(prof, runs)
        labelled = prof.merge(runs[["run_id", "topology", "backend", "kernel", "emulated"]], on="run_id")
        parts += [h.paragraph(f"{name}: share of receiving-thread samples per category ({lab})"),
                  h.table(breakdown), h.figure(flame.figure(labelled), f"icicle graph {name}", dpi=60)]
    if not parts:
        parts.append(h.paragraph("No perf profile in this dataset (record --profile).", "note"))
    return h.section("Where receive time goes (perf record)", *parts)


def _runs(ds: Dataset) -> str:
    cols = ["dataset", "run_id", "repetition", "topology", "backend", "zero_copy", "kernel", "place",
            "accelerator", "rings", "workers", "work_ns_per_kib", "rate_gbit_s", "gbit_s", "status", "error"]
    return h.section("Runs", h.table(ds.runs[cols], max_rows=500), *_timeline_commands(ds))


def _timeline_commands(ds: Dataset) -> list[str]:
    """Per dataset, the command that puts run N on a Perfetto timeline (docs/perfetto.md)."""
    lines = []
    for name, path in ds.paths.items():
        where = path.name if path.parent.resolve() == default_root().resolve() else path
        lines.append(h.paragraph(f"Timeline of run N of {name} for ui.perfetto.dev: "
                                 f"{export_command(where, 'N')}", "note"))
    return lines


def _metadata(ds: Dataset) -> str:
    return h.section("Metadata", *(f"<h3>{h.esc(n)}</h3><pre>{h.esc(json.dumps(m, indent=1, default=str))}</pre>"
                                   for n, m in ds.metadata_by_name.items()))


def build(ds: Dataset) -> str:
    """The whole report for ``ds`` as one self-contained HTML string."""
    lab = label(ds)
    runs = per_run(ds)
    title = "zcrxprof report: " + ", ".join(ds.names)
    body = [_header(ds, lab)]
    if runs.empty:
        body.append(h.section("Results", h.paragraph("No successful run in this dataset.", "warn")))
    else:
        body += [_verdict(runs), _throughput(runs, ds, lab), _queues(runs, ds), _costs(runs, ds, lab),
                 _cache(runs, ds, lab), _refill(runs, ds), _capacity(runs, ds, lab)]
    body += [_probes(ds, lab), _profile(ds, lab), _runs(ds), _metadata(ds)]
    return h.page(title, body)
