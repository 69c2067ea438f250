"""The report's content. First screen: per dataset, the cover letter's claims with their numbers,
95 % intervals and verdicts (``analysis.claims.df_claims``, the numbers of ``zcrxprof summary``),
labelled with backend, kernel, place, timing and cores. Then a contents list and one section per
question, each dataset lined up under the same section; with two datasets a comparison
(``analysis.compare.df_compare``); the details (per-run tables, metadata, attach report, every
probe counter) folded at the end."""
from __future__ import annotations

import json
import math

import pandas as pd

from zcrxprof import plots
from zcrxprof.analysis import background_load, label, per_run
from zcrxprof.analysis import cache, capacity, probes, profile, queues, refill, saturation, switches, verdict
from zcrxprof.analysis.senders import sender_verdict, senders
from zcrxprof.analysis.claims import df_claims
from zcrxprof.analysis.compare import METRICS, df_compare
from zcrxprof.analysis.labels import emulation_note, receiver_cpus, shared_cores_notes, shared_cores_sentence
from zcrxprof.cli.text import estimate
from zcrxprof.dataset import Dataset, absent_notes, default_root, usable_summary
from zcrxprof.importers import describe as describe_import
from zcrxprof.export.perfetto_trace import export_command
from zcrxprof.perf import flame
from zcrxprof.report import html as h
from zcrxprof.vocab import is_zero_copy, topology_order

VERDICT_COLUMNS = ["work_ns_per_kib", "rate_gbit_s", "threads", "winner", "runner_up", "winner_median",
                   "runner_up_median", "ratio", "ratio_lo", "ratio_hi", "p_value", "p_floor", "cliffs_delta",
                   "confidence"]
# The extrapolation's hypothetical host (as the notebooks' default).
HOST_CORES, HOST_LINE_GBIT_S, HOST_QUEUES, HOST_RINGS = 64, 200.0, 8, [1, 2, 4, 8, 16, 32]
def subset(ds: Dataset, name: str) -> Dataset:
    """The one dataset ``name`` of a loaded set, as a ``Dataset`` of its own."""
    tables = {t: f[f["dataset"] == name].reset_index(drop=True) if "dataset" in f.columns else f
              for t, f in ds.tables.items()}
    return Dataset(tables=tables, metadata_by_name={name: ds.metadata_by_name[name]},
                   paths={name: ds.paths[name]} if name in ds.paths else {}, absent=list(ds.absent))


def _cores(meta: dict) -> str:
    return str((meta.get("machine") or {}).get("cores") or "?")


def _labels_line(ds: Dataset, name: str) -> str:
    """backend (zero copy or not) · kernel · place · timing · cores, CPU · usable runs."""
    meta, runs = ds.metadata_by_name[name], ds.runs
    backends = sorted(set(runs["backend"])) or [str(meta.get("backend") or "?")]
    zc = "zero copy" if all(is_zero_copy(b) for b in backends) else "not zero copy"
    kernels = sorted(set(runs["kernel"])) or [str((meta.get("machine") or {}).get("kernel") or "?")]
    place = meta.get("place") or {}
    where = place.get("where") or (sorted(set(runs["place"])) or ["?"])[0]
    accel = place.get("accelerator") or ""
    machine = meta.get("machine") or {}
    rx_cpus = receiver_cpus(runs)
    receiver = f" (the receiver could use {'/'.join(map(str, rx_cpus))})" if rx_cpus else ""
    return (f"backend {'/'.join(backends)} ({zc}) · kernel {'/'.join(kernels)} · place {where}"
            f"{' (' + accel + ')' if accel else ''} · {emulation_note(ds, name)} · {_cores(meta)} cores"
            f"{receiver}, {machine.get('cpu_model') or 'unknown CPU'} · {usable_summary(runs)}")


def _machine_cores(ds: Dataset, name: str) -> int | None:
    cores = (ds.metadata_by_name[name].get("machine") or {}).get("cores")
    return int(cores) if cores else None


def _sharing(ds: Dataset, name: str) -> str:
    """A warning under the labels when some runs' rings shared cores ("" when none did)."""
    sentence = shared_cores_sentence(ds.runs, _machine_cores(ds, name))
    return h.paragraph(sentence, "warn") if sentence else ""


def _number(r) -> str:
    """One quantity of a claim as ``zcrxprof summary`` prints it: median (95 % CI), runs, p."""
    value, ci = estimate(r.median, r.ci_lo, r.ci_hi)
    if not math.isfinite(r.ci_lo) and math.isfinite(r.median) and float(r.median).is_integer():
        value = f"{r.median:.0f}"   # a count
    text = f"{r.quantity}: {value}" + (f" (95% CI {ci})" if ci != "-" else "")
    if r.runs:
        text += f", {int(r.runs)} runs"
    if math.isfinite(r.p_value):
        text += f", p = {r.p_value:.2g}"
    return text


def _claims_card(ds: Dataset, name: str, claims: pd.DataFrame) -> str:
    rows = []
    for number, g in claims.groupby("claim", sort=True):
        first = g.iloc[0]
        numbers = "<br>".join(f'<span class="q">{h.esc(_number(r))}</span>' for r in g.itertuples() if r.quantity)
        note = f'<br><span class="warn">{h.esc(first.note)}</span>' if first.note else ""
        cls = "v-" + first.verdict.replace(" ", "-")
        rows.append(f"<tr><td>{number}</td><td><b>{h.esc(first.title)}</b><br>{h.esc(first.reason)}</td>"
                    f'<td><span class="v {cls}">{h.esc(first.verdict)}</span></td>'
                    f"<td>{numbers}{note}</td></tr>")
    head = "<tr><th>#</th><th>claim (numbers from this recording)</th><th>verdict</th><th>medians, 95% bootstrap " \
           "intervals over runs, exact permutation p</th></tr>"
    return (f'<div class="card">{h.heading(name)}<p class="labels">{h.esc(_labels_line(ds, name))}</p>'
            f'{_sharing(ds, name)}{_senders_line(ds)}<table class="claims"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
            f'{_recording(ds, name)}</div>')


def _senders_line(ds: Dataset) -> str:
    """Was a sender the bottleneck (with its retransmits and RTT), when sending threads were recorded."""
    line = sender_verdict(ds)
    return h.paragraph(line, "warn" if "the bottleneck in" in line else "note") if line else ""


def _answer(parts: dict[str, Dataset], runs: dict[str, pd.DataFrame]) -> str:
    cards = []
    for name, one in parts.items():
        if runs[name].empty:
            cards.append(f'<div class="card">{h.heading(name)}<p class="labels">{h.esc(_labels_line(one, name))}</p>'
                         f"{_sharing(one, name)}{h.paragraph('No successful run in this dataset.', 'warn')}{_recording(one, name)}</div>")
        else:
            cards.append(_claims_card(one, name, df_claims(one)))
    return h.section("The claims, as this recording answers them", *cards,
                     h.paragraph("Claim 1: supported when the single ring never waited for data (unpaced) or "
                                 "fell short of the offered load (paced). Claims 2-4: supported or contradicted "
                                 "when the difference is significant (exact permutation p < 0.05 and the 95% "
                                 "interval excludes 1); not resolved when it is not, or the recording lacks the "
                                 "runs (3 runs against 3 can never reach p < 0.05). "
                                 "Only the zcrx backend is zero copy; copy and zcrx-nodev figures are not. "
                                 "Timings from a TCG lab guest are emulated: counts and shapes hold, "
                                 "durations do not.", "note"))


def _recording(ds: Dataset, name: str) -> str:
    """A partial recording said in red; the command line and the recording's notes folded."""
    meta = ds.metadata_by_name[name]
    notes = [h.paragraph(f"Created {meta.get('created')}; command: {meta.get('command_line')}", "note")]
    notes += [h.paragraph(f"note: {note}", "note") for note in meta.get("notes") or []]
    partial = "" if meta.get("complete") else h.paragraph("PARTIAL: the recording did not finish.", "warn")
    partial += "".join(h.paragraph(line, "warn") for line in describe_import(meta))   # imported from another tool
    return partial + h.details(f"Recording: command line and {len(meta.get('notes') or [])} notes", *notes)


def _throughput(runs: pd.DataFrame, ds: Dataset, lab: str) -> list[str]:
    tp = saturation.throughput(runs)
    parts = [h.figure(plots.throughput(tp, lab), "throughput per topology", plots.CAPTIONS["throughput"]),
             h.table(tp.drop(columns=["dataset"], errors="ignore"))]
    lines = []
    for value, unit in (("gbit_s", "Gbit/s"), ("gbit_s_per_free_core", "Gbit/s per free core")):
        for r in saturation.ratio_to_single(runs, "shared-ifq", value).itertuples():
            rate = f"{r.rate_gbit_s:g} Gbit/s offered" if r.rate_gbit_s > 0 else "unpaced"
            mine = runs[(runs["topology"] == "shared-ifq") & (runs["rings"] == r.rings)
                        & (runs["work_ns_per_kib"] == r.work_ns_per_kib) & (runs["rate_gbit_s"] == r.rate_gbit_s)]
            shared = "; ".join(shared_cores_notes(mine, _machine_cores(ds, ds.names[0])))
            lines.append(f"Work {r.work_ns_per_kib:g} ns/KiB, {rate}: shared-ifq with {r.rings} rings "
                         f"({r.runs} runs) against single: x{r.ratio:.2f} {unit} (95% CI x{r.ratio_lo:.2f}"
                         f"-x{r.ratio_hi:.2f}, {'resolved' if r.resolved else 'not resolved: the interval includes 1'})"
                         + (f" — {shared}." if shared else "."))
    parts += [h.paragraph(line) for line in lines]
    sc = saturation.scaling(runs)
    if not sc.empty:
        parts += [h.figure(plots.scaling(sc, lab), "scaling over single", plots.CAPTIONS["scaling"]),
                  h.table(sc[["topology", "rings", "workers", "work_ns_per_kib", "rate_gbit_s", "median",
                              "single_gbit_s", "speedup", "efficiency"]])]
    if (runs["rate_gbit_s"] > 0).any():
        sat = saturation.offered_vs_achieved(runs)
        parts += [h.figure(plots.saturation_curve(sat, lab), "saturation against offered load",
                           plots.CAPTIONS["saturation_curve"]),
                  h.table(sat[["topology", "rings", "workers", "work_ns_per_kib", "rate_gbit_s", "achieved_gbit_s",
                               "achieved_share", "saturated", "saturation_gbit_s"]])]
    for sweep in ("work_ns_per_kib", "rings"):
        if runs[sweep].nunique() > 1 and (sweep != "rings" or runs[runs["topology"] != "single"][sweep].nunique() > 1):
            parts.append(h.figure(plots.saturation_curve(tp, lab, x=sweep), f"throughput against {sweep}",
                                  plots.CAPTIONS["saturation_curve"]))
    sleeps = saturation.receiver_sleeps(ds)
    if not sleeps.empty:
        parts += [h.paragraph("How often receiving threads slept waiting for data (voluntary switches a second; "
                              "at most about one: the thread never waited, it is saturated):"),
                  h.table(sleeps.drop(columns=["dataset"], errors="ignore"))]
    tx = senders(ds)
    if not tx.empty:
        parts += [h.paragraph("The sending side, per run and host (TCP retransmits and smoothed RTT from the "
                              "senders' TCP_INFO; -1 / empty: not recorded):"),
                  h.table(tx.drop(columns=["dataset"], errors="ignore"), max_rows=200)]
    shares = saturation.ring_share(ds)
    if not shares.empty:
        parts += [h.figure(plots.ring_share(shares, lab), "per-ring share", plots.CAPTIONS["ring_share"]),
                  h.table(shares.groupby(["topology", "rings"], as_index=False)["fairness"].median())]
    return parts


def _ranking(runs: pd.DataFrame) -> list[str]:
    """Every configuration's fastest topology against the runner-up (details)."""
    v = verdict.winners(runs)
    if v.empty:
        return [h.paragraph("Fewer than two topologies with successful runs: no ranking.", "note")]
    parts = [h.table(v[VERDICT_COLUMNS]), f"<ul>{''.join(f'<li>{h.esc(s)}</li>' for s in v['statement'])}</ul>"]
    load = background_load(runs)
    if load["other_cores_median"].notna().any():
        parts += [h.paragraph("Other processes on the machine during the runs (cores' worth of CPU they took; "
                              "a shared machine makes raw throughput comparisons noisy):"), h.table(load)]
    return parts


def _queues(runs: pd.DataFrame, ds: Dataset) -> list[str]:
    budget = queues.queue_budget(ds)
    if budget.empty:
        return [h.paragraph("No registration records in this dataset.", "note")]
    parts = [h.paragraph("Hardware RX queues each topology used: the most distinct ifqs one run registered "
                         "(ifq-per-ring needs one per ring by design, the others one; on the copy backend an "
                         "ifq is a buffer pool, so this is what the topology would need on a NIC)."),
             h.table(budget.drop(columns=["dataset"], errors="ignore"))]
    for row in queues.shared_over_per_ring(runs).itertuples():
        parts.append(h.paragraph(f"With one queue, shared-ifq at {row.rings} rings moved x{row.ratio:.2f} of "
                                 f"ifq-per-ring's throughput (95% CI x{row.ratio_lo:.2f}-x{row.ratio_hi:.2f})."))
    return parts


def _costs(runs: pd.DataFrame, ds: Dataset, lab: str) -> list[str]:
    c = switches.costs(runs)
    if c.empty:     # no per-thread CPU or switch counts (e.g. a tool imported without them)
        return [h.paragraph("No per-thread CPU time or context switches in this dataset: no cost per GB.", "note")]
    table = c.pivot_table(index=["topology", "rings", "workers"], columns="metric", values="median").reset_index()
    parts = [h.figure(plots.costs_per_gb(runs, lab), "cost per GB", plots.CAPTIONS["costs_per_gb"]),
             h.paragraph("Medians over runs (rx + worker threads; softirq over all CPUs):"), h.table(table)]
    ho = switches.handoff_cost(runs)
    if not ho.empty:
        parts += [h.paragraph("Hand-off cost: workers against shared-ifq with the same number of threads."),
                  h.table(ho.drop(columns=["dataset"], errors="ignore"))]
    wl = switches.wakeup_latency(ds)
    if not wl.empty:
        parts.append(h.figure(plots.log2_histogram(wl, lab, "Wake-up to run latency"), "wake-up latency",
                              plots.CAPTIONS["log2_histogram"]))
    else:
        parts.append(h.paragraph("No wake-up latency histogram in this dataset.", "note"))
    return parts


def _cache(runs: pd.DataFrame, ds: Dataset, lab: str) -> list[str]:
    work = cache.work_cost(runs)
    hc = cache.hot_vs_cold(runs)
    pmu, statement = cache.pmu_counters(ds)
    parts = [h.paragraph(statement)]
    if not work.empty:
        parts.append(h.figure(plots.hot_vs_cold(work, lab), "hot vs cold work cost", plots.CAPTIONS["hot_vs_cold"]))
    parts.append(h.table(hc.drop(columns=["dataset"], errors="ignore")) if not hc.empty else
                 h.paragraph("No hot/cold pair (needs workers and a receiving-thread topology with work).", "note"))
    if not pmu.empty:
        parts.append(h.table(pmu.drop(columns=["dataset"], errors="ignore")))
    return parts


def _refill(runs: pd.DataFrame, ds: Dataset) -> list[str]:
    parts = [h.table(refill.backlog(runs).drop(columns=["dataset"], errors="ignore"))]
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
    return parts


def _probes(runs: pd.DataFrame, ds: Dataset) -> list[str]:
    q = probes.questions(ds, runs)
    if q.empty:
        return [h.paragraph("No kernel probe samples in this dataset (record --probes).", "note")]
    return [h.paragraph("The kernel's counts that answer a question, per GB received (median over runs, "
                        "receiving and worker threads summed); every counter is in the details."), h.table(q)]


def _capacity(runs: pd.DataFrame, ds: Dataset, lab: str) -> list[str]:
    cores = capacity.fewest_cores(ds)
    val = capacity.validate(runs, cores)
    if val.empty:
        return [h.paragraph("No single runs with a measurable receive cost per byte to build the model from.")]
    errors = "; ".join(f"median {e.median_error:.0%}, worst {e.worst_error:.0%}"
                       for e in capacity.validation_error(val).itertuples()) or "no multi-ring runs"
    parts = [h.paragraph(f"Per-byte costs measured on the single runs predict the others on {cores} cores "
                         f"(hand-off and refill-sync costs unknown to it); absolute error on multi-ring runs: "
                         f"{errors}."),
             h.figure(plots.capacity_validation(val, lab), "capacity model validation",
                      plots.CAPTIONS["capacity_validation"]),
             h.table(val.drop(columns=["dataset"], errors="ignore"))]
    measured = capacity.measure_costs(runs, include_handoff_and_sync=True)
    work = float(runs[runs["topology"] == "single"]["work_ns_per_kib"].max())
    published = capacity.published_costs(work)
    try:
        ext = capacity.extrapolate_side_by_side(measured, published, HOST_CORES, HOST_LINE_GBIT_S, HOST_QUEUES,
                                                HOST_RINGS)
    except ValueError as exc:
        return parts + [h.paragraph(f"No extrapolation: {exc}", "note")]
    inputs = pd.concat([capacity.costs_table(measured).assign(input="A: this recording"),
                        capacity.costs_table(published).assign(input="B: published zcrx figure")])
    inputs = inputs.pivot_table(index="component", columns="input", values="ns_per_byte", sort=False).reset_index()
    inputs.columns.name = None
    parts += [h.heading(f"Extrapolation to a {HOST_CORES}-core host, {HOST_LINE_GBIT_S:g} Gbit/s line, "
                        f"{HOST_QUEUES} hardware queues (a model, not a measurement)", 4),
              h.paragraph(f"Two inputs, each predicting on its own (never mixed). A: this recording's per-byte "
                          f"costs ({measured.source}; backend {'/'.join(sorted(set(runs['backend'])))}, not zero "
                          f"copy unless zcrx). B: per-byte costs derived from published figures — "
                          f"{capacity.PUBLISHED_SOURCE}: each of the two cores costs at most 8/116.2 ns per byte "
                          f"(receive and softirq, taken as equal to it), plus this configuration's nominal work "
                          f"of {work:g} ns/KiB; hand-off and refill-sync costs unknown (0)."),
              h.table(inputs),
              h.figure(plots.extrapolation_side_by_side(ext, lab, "published zcrx figure (zcrx v1 cover letter)"),
                       "extrapolation from both inputs", plots.CAPTIONS["extrapolation_side_by_side"]),
              h.table(ext[["topology", "rings", "measured_gbit_s", "measured_bound", "published_gbit_s",
                           "published_bound", "cores", "queues", "line_rate_gbit_s"]])]
    return parts


def _profile(ds: Dataset, name: str, lab: str) -> list[str]:
    prof = ds.profile.drop(columns="dataset")
    if prof.empty:
        return [h.paragraph("No perf profile in this dataset (record --profile).", "note")]
    runs = ds.runs.drop(columns="dataset")
    breakdown = profile.receive_breakdown(prof, runs)
    shares = breakdown.pivot_table(index="category", columns="topology", values="share", aggfunc="sum",
                                   sort=False).reset_index()
    shares.columns.name = None
    shares = shares[["category", *topology_order([c for c in shares.columns if c != "category"])]]
    labelled = prof.merge(runs[["run_id", "topology", "backend", "kernel", "emulated"]], on="run_id")
    return [h.paragraph(f"Share of receiving-thread samples per category and topology ({lab}):"), h.table(shares),
            h.details("Samples per topology and category", h.table(breakdown)),
            h.details("Icicle graph per topology (tall)",
                      h.figure(flame.figure(labelled), f"icicle graph {name}",
                               "Icicle graph per topology: each bar is a function, its width its share of "
                               "samples, callers above callees. Wide bars low down are where receive time "
                               "goes.", dpi=60))]


def _config_runs(ds: Dataset, row, work: float) -> pd.DataFrame:
    """The runs of ``ds`` a comparison row matched (topology, rings, workers, rate; its side's work)."""
    runs = ds.runs
    return runs[(runs["topology"] == row.topology) & (runs["rings"] == row.rings) & (runs["workers"] == row.workers)
                & (runs["work_ns_per_kib"] == work) & (runs["rate_gbit_s"] == row.rate_gbit_s)]


def _compare(parts: dict[str, Dataset]) -> str:
    (name_a, a), (name_b, b) = parts.items()
    body = [h.paragraph(f"A = {name_a}, B = {name_b}: runs matched by topology, rings, workers, work and rate; "
                        f"ratio B / A with its 95% bootstrap interval and the exact permutation test "
                        f"(as `zcrxprof compare`).")]
    full = []
    for metric, m in METRICS.items():
        cmp = df_compare(a, b, metric)
        body.append(h.heading(f"{m.unit} ({'higher' if m.higher_is_better else 'lower'} is better)", 4))
        if cmp.empty:
            body.append(h.paragraph("No configuration matched.", "note"))
            continue
        items = []
        warnings = {str(w) for w in cmp["warnings"] if isinstance(w, str) and w}
        shared = warnings.pop() if len(warnings) == 1 and cmp["warnings"].nunique() == 1 else ""
        if shared:      # the same on every row: said once
            body.append(h.paragraph(f"On every row: {shared}", "warn"))
        for r in cmp.itertuples():
            rate = f"{r.rate_gbit_s:g} Gbit/s offered" if r.rate_gbit_s > 0 else "unpaced"
            warn = f" — {r.warnings}" if isinstance(r.warnings, str) and r.warnings and not shared else ""
            cores = {side: "; ".join(shared_cores_notes(_config_runs(one, r, work), _machine_cores(one, one.names[0])))
                     for side, one, work in (("A", a, r.work_a), ("B", b, r.work_b))}
            if cores["A"] and cores["A"] == cores["B"]:
                warn += f" — A and B: {cores['A']}"
            else:
                warn += "".join(f" — {side}: {note}" for side, note in cores.items() if note)
            items.append(f"{r.topology}, {r.rings} rings, {r.workers} workers, {rate}: B/A x{r.ratio:.3g} "
                         f"(95% CI x{r.ratio_lo:.3g}-x{r.ratio_hi:.3g}), p = {r.p_value:.2g} "
                         f"(floor {r.p_floor:.2g}): {r.verdict}{warn}")
        body.append("<ul>" + "".join(f"<li>{h.esc(i)}</li>" for i in items) + "</ul>")
        full.append(h.heading(m.unit, 4) + h.table(cmp))
    body.append(h.details("Comparison tables", *full))
    return h.section("Comparison", *body)


def _timeline_commands(ds: Dataset) -> list[str]:
    """Per dataset, the command that puts run N on a Perfetto timeline (docs/perfetto.md)."""
    lines = []
    for name, path in ds.paths.items():
        where = path.name if path.parent.resolve() == default_root().resolve() else path
        lines.append(h.paragraph(f"Timeline of run N of {name} for ui.perfetto.dev: "
                                 f"{export_command(where, 'N')}", "note"))
    return lines


def _details(ds: Dataset, parts: dict[str, Dataset], runs: dict[str, pd.DataFrame]) -> str:
    cols = ["dataset", "run_id", "repetition", "topology", "backend", "zero_copy", "kernel", "place",
            "accelerator", "rings", "workers", "cpus_available", "rings_share_cores", "work_ns_per_kib",
            "rate_gbit_s", "gbit_s", "status", "error"]
    folded = [h.details("Runs (every run, usable or not)", h.table(ds.runs[cols], max_rows=500),
                        *_timeline_commands(ds))]
    for name, r in runs.items():
        if not r.empty:
            folded.append(h.details(f"Topology ranking: fastest against runner-up ({name})", *_ranking(r)))
    for name, one in parts.items():
        counts = probes.probe_medians(one)
        folded.append(h.details(f"Every kernel probe counter, median per run ({name})", h.table(counts, max_rows=500)))
    folded.append(h.details("Probe attach report (what attached, and why the others did not)",
                            h.table(probes.attach_report(ds), max_rows=500)))
    folded.append(h.details("Metadata", *(f"<h4>{h.esc(n)}</h4><pre>{h.esc(json.dumps(m, indent=1, default=str))}</pre>"
                                          for n, m in ds.metadata_by_name.items())))
    return h.section("Details", *folded)


def _lined_up(title: str, parts: dict[str, Dataset], runs: dict[str, pd.DataFrame], make) -> str:
    """One section, the same content per dataset (a heading per dataset when there are several)."""
    body = []
    for name, one in parts.items():
        if len(parts) > 1:
            body.append(h.heading(name))
        if runs[name].empty:
            body.append(h.paragraph("No successful run in this dataset.", "warn"))
            continue
        body += make(name, one, runs[name], label(one))
    return h.section(title, *body)


SECTIONS = [
    ("Throughput and saturation", lambda n, d, r, lab: _throughput(r, d, lab)),
    ("Queue budget", lambda n, d, r, lab: _queues(r, d)),
    ("Context switches and CPU per GB", lambda n, d, r, lab: _costs(r, d, lab)),
    ("Cache effects", lambda n, d, r, lab: _cache(r, d, lab)),
    ("Refill ring and copy fallback", lambda n, d, r, lab: _refill(r, d)),
    ("Kernel probes", lambda n, d, r, lab: _probes(r, d)),
    ("Where receive time goes (perf record)", lambda n, d, r, lab: _profile(d, n, lab)),
    ("Capacity model", lambda n, d, r, lab: _capacity(r, d, lab)),
]


def build(ds: Dataset) -> str:
    """The whole report for ``ds`` (one or several datasets) as one self-contained HTML string."""
    parts = {name: subset(ds, name) for name in ds.names}
    runs = {name: per_run(one) for name, one in parts.items()}
    title = "zcrxprof report: " + ", ".join(ds.names)
    body = [_answer(parts, runs)] + [h.paragraph(note, "warn") for note in absent_notes(ds)]
    sections = [(t, _lined_up(t, parts, runs, make)) for t, make in SECTIONS]
    if len(parts) == 2 and all(not r.empty for r in runs.values()):
        sections.append(("Comparison", _compare(parts)))
    sections.append(("Details", _details(ds, parts, runs)))
    body.append(h.contents([t for t, _ in sections]))
    body += [html for _, html in sections]
    return h.page(title, body)
