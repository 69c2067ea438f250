"""The report's content: one section per question, each from analysis functions and plots."""
from __future__ import annotations

import json

import pandas as pd

from zcrxprof import plots
from zcrxprof.analysis import Frames, background_load, label, per_run
from zcrxprof.analysis import cache, capacity, kernel, refill, saturation, switches, verdict
from zcrxprof.perf import analysis as perf_analysis
from zcrxprof.perf import flame
from zcrxprof.report import html as h

VERDICT_COLUMNS = ["backend", "kernel", "place", "work_ns_per_kib", "rate_gbit_s", "threads", "winner", "runner_up",
                   "winner_median", "runner_up_median", "ratio", "ratio_lo", "ratio_hi", "p_value",
                   "p_floor", "cliffs_delta", "hedges_g", "confidence"]


def _header(frames: Frames, lab: str) -> str:
    parts = [h.paragraph(lab)]
    for name, meta in frames.metadata.items():
        complete = meta.get("complete")
        state = "complete" if complete else "PARTIAL (recording did not finish)"
        parts.append(h.paragraph(f"Dataset {name}: {state}; created {meta.get('created')}; "
                                 f"command: {meta.get('command_line')}", "" if complete else "warn"))
        for note in meta.get("notes") or []:
            parts.append(h.paragraph(f"note: {note}", "note"))
    parts.append(h.paragraph("Only the zcrx backend is zero copy; copy and zcrx-nodev figures are not. "
                             "Timings from a TCG lab guest are emulated: they show counts and shapes, "
                             "not absolute performance.", "note"))
    return h.section("Dataset", *parts)


def _verdict(runs: pd.DataFrame) -> str:
    v = verdict.verdict(runs)
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
        free = verdict.verdict(runs.dropna(subset=["gbit_s_per_free_core"]), "gbit_s_per_free_core",
                               "Gbit/s per free core")
        if not free.empty:
            parts += [h.paragraph("The same verdict on throughput per core left free by other processes:"),
                      f"<ul>{''.join(f'<li>{h.esc(s)}</li>' for s in free['statement'])}</ul>"]
    return h.section("Verdict", *parts)


def _throughput(runs: pd.DataFrame, frames: Frames, lab: str) -> str:
    tp = saturation.throughput(runs)
    parts = [h.figure(plots.throughput(tp, lab), "throughput per topology"), h.table(tp)]
    sc = saturation.scaling(runs)
    if not sc.empty:
        parts += [h.figure(plots.scaling(sc, lab), "scaling over single"),
                  h.table(sc[["topology", "rings", "workers", "work_ns_per_kib", "rate_gbit_s", "median",
                              "single_gbit_s", "speedup", "efficiency"]])]
    sat = saturation.saturation(runs)
    if (runs["rate_gbit_s"] > 0).any():
        parts += [h.figure(plots.saturation_curve(sat, lab), "saturation against offered load"),
                  h.table(sat[["topology", "rings", "workers", "work_ns_per_kib", "rate_gbit_s", "achieved_gbit_s",
                               "achieved_share", "saturated", "saturation_gbit_s"]])]
    for sweep in ("work_ns_per_kib", "rings"):
        if runs[sweep].nunique() > 1 and (sweep != "rings" or runs[runs["topology"] != "single"][sweep].nunique() > 1):
            parts.append(h.figure(plots.saturation_curve(tp, lab, x=sweep), f"throughput against {sweep}"))
    shares = saturation.ring_share(frames)
    if not shares.empty:
        parts += [h.figure(plots.ring_share(shares, lab), "per-ring share"),
                  h.table(shares.groupby(["topology", "rings"], as_index=False)["fairness"].median())]
    return h.section("Throughput and saturation", *parts)


def _costs(runs: pd.DataFrame, frames: Frames, lab: str) -> str:
    c = switches.costs(runs)
    table = c.pivot_table(index=["dataset", "topology", "rings", "workers"], columns="metric",
                          values="median").reset_index()
    parts = [h.figure(plots.costs_per_gb(runs, lab), "cost per GB"),
             h.paragraph("Medians over runs (rx + worker threads; softirq over all CPUs):"), h.table(table)]
    ho = switches.handoff_cost(runs)
    if not ho.empty:
        parts += [h.paragraph("Hand-off cost: workers against shared-ifq with the same number of threads."),
                  h.table(ho)]
    wl = switches.wakeup_latency(frames)
    if not wl.empty:
        parts.append(h.figure(plots.log2_histogram(wl, lab, "Wake-up to run latency"), "wake-up latency"))
    else:
        parts.append(h.paragraph("No wake-up latency histogram in this dataset.", "note"))
    return h.section("Context switches and CPU per GB", *parts)


def _cache(runs: pd.DataFrame, frames: Frames, lab: str) -> str:
    work = cache.work_cost(runs)
    hc = cache.hot_vs_cold(runs)
    pmu, statement = cache.pmu_counters(frames)
    parts = [h.paragraph(statement)]
    if not work.empty:
        parts.append(h.figure(plots.hot_vs_cold(work, lab), "hot vs cold work cost"))
    parts.append(h.table(hc) if not hc.empty else
                 h.paragraph("No hot/cold pair (needs workers and a receiving-thread topology with work).", "note"))
    if not pmu.empty:
        parts.append(h.table(pmu))
    return h.section("Cache effects", *parts)


def _refill(runs: pd.DataFrame, frames: Frames) -> str:
    parts = [h.table(refill.refill(runs))]
    cp = refill.copy_fallback(frames)
    st = refill.starvation(frames)
    if not cp.empty:
        parts += [h.paragraph("Copy fallback (the kernel copied instead of receiving zero-copy):"),
                  h.table(cp.groupby(["topology", "backend", "metric", "source"], as_index=False)["value"].median())]
    else:
        parts.append(h.paragraph("No copy-fallback counters in this dataset (they come from kernel probes "
                                 "or 7.2 zcrx_stats in the kernel lab).", "note"))
    if not st.empty:
        parts.append(h.table(st.groupby(["topology", "metric", "source"], as_index=False)["value"].median()))
    return h.section("Refill ring and copy fallback", *parts)


def _probes(frames: Frames, lab: str) -> str:
    counts = kernel.probe_medians(frames)
    parts = []
    if not counts.empty:
        parts += [h.figure(plots.probe_counters(counts, lab), "kernel probe counters"), h.table(counts)]
    else:
        parts.append(h.paragraph("No kernel probe samples in this dataset.", "note"))
    parts += [h.paragraph("Probe attach report (what attached, and why the others did not):"),
              h.table(kernel.attach_report(frames))]
    return h.section("Kernel probes", *parts)


def _capacity(runs: pd.DataFrame, frames: Frames, lab: str) -> str:
    cores = min(int((m.get("machine") or {}).get("cores") or 1) for m in frames.metadata.values())
    val = capacity.validate(runs, cores)
    if val.empty:
        return h.section("Capacity model", h.paragraph("No single runs with a measurable receive cost "
                                                            "per byte to build the model from."))
    multi = val[val["topology"] != "single"]
    err = multi["error"].abs().median() if len(multi) else float("nan")
    return h.section("Capacity model",
                     h.paragraph(f"Per-byte costs measured on the single runs predict the others on "
                                 f"{cores} cores (hand-off and refill-sync costs unknown to it); median "
                                 f"absolute error on multi-ring runs: {err:.0%}."),
                     h.figure(plots.capacity_validation(val, lab), "capacity model validation"), h.table(val))


def _profile(frames: Frames, lab: str) -> str:
    parts = []
    for name in frames.names:
        prof = frames.profile[frames.profile["dataset"] == name].drop(columns="dataset")
        if prof.empty:
            continue
        runs = frames.runs[frames.runs["dataset"] == name].drop(columns="dataset")
        breakdown = perf_analysis.receive_breakdown(prof, runs)
        labelled = prof.merge(runs[["run_id", "topology", "backend", "kernel", "emulated"]], on="run_id")
        parts += [h.paragraph(f"{name}: share of receiving-thread samples per category ({lab})"),
                  h.table(breakdown), h.figure(flame.figure(labelled), f"icicle graph {name}", dpi=60)]
    if not parts:
        parts.append(h.paragraph("No perf profile in this dataset (record --profile).", "note"))
    return h.section("Where receive time goes (perf record)", *parts)


def _runs(frames: Frames) -> str:
    cols = ["dataset", "run_id", "repetition", "topology", "backend", "zero_copy", "kernel", "place",
            "accelerator", "rings", "workers", "work_ns_per_kib", "rate_gbit_s", "gbit_s", "status", "error"]
    return h.section("Runs", h.table(frames.runs[cols], max_rows=500))


def _metadata(frames: Frames) -> str:
    return h.section("Metadata", *(f"<h3>{h.esc(n)}</h3><pre>{h.esc(json.dumps(m, indent=1, default=str))}</pre>"
                                   for n, m in frames.metadata.items()))


def build(frames: Frames) -> str:
    """The whole report for ``frames`` as one self-contained HTML string."""
    lab = label(frames)
    runs = per_run(frames)
    title = "zcrxprof report: " + ", ".join(frames.names)
    body = [_header(frames, lab)]
    if runs.empty:
        body.append(h.section("Results", h.paragraph("No successful run in this dataset.", "warn")))
    else:
        body += [_verdict(runs), _throughput(runs, frames, lab), _costs(runs, frames, lab),
                 _cache(runs, frames, lab), _refill(runs, frames), _capacity(runs, frames, lab)]
    body += [_probes(frames, lab), _profile(frames, lab), _runs(frames), _metadata(frames)]
    return h.page(title, body)
