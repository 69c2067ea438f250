"""One function per figure: frames in, a matplotlib ``Figure`` out (no pyplot, no global state).

Every function takes ``label`` — ``zcrxprof.analysis.label(frames)``: backend, kernel, machine and
whether timings were emulated — and prints it under the title, so no figure travels unlabelled.
"""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from zcrxprof.vocab import TOPOLOGIES, topology_order

COLOURS = dict(zip(TOPOLOGIES, ("#4c72b0", "#dd8452", "#55a868", "#c44e52")))

# What to look at in each figure: its caption in the report, keyed by the function's name.
CAPTIONS = {
    "throughput": "Median Gbit/s per topology, whiskers the 95% bootstrap interval over runs. Look at "
                  "whether single sits below the multi-ring topologies (one ring saturates) and whether "
                  "shared-ifq reaches ifq-per-ring with one queue.",
    "scaling": "Speed-up over single against the number of rings (workers for workers); the dotted "
               "line is linear scaling. Points under it lose throughput to sharing cores or queues.",
    "saturation_curve": "Achieved against offered (or against the swept parameter). Where a curve "
                        "leaves the dotted offered = achieved line, that topology saturates.",
    "ring_share": "Each ring's share of the bytes per run. Boxes near 1/rings mean the rings shared "
                  "the load evenly; a spread means one ring starved.",
    "costs_per_gb": "Left: CPU-seconds per GB, stacked user/sys/softirq; right: context switches per GB. "
                    "Compare workers with shared-ifq: the difference is the hand-off cost.",
    "log2_histogram": "Share of wake-ups per log2 latency bucket. A curve further right means threads "
                      "waited longer to run after being woken.",
    "hot_vs_cold": "User CPU per KiB of the thread doing the work: hot (the receiving thread) against "
                   "cold (a worker on another core). Cold boxes above hot ones are a cache effect.",
    "capacity_validation": "Measured (blue) against predicted from single runs only (orange), with the "
                           "relative error and the bound that binds. Large errors mean the model misses "
                           "a cost (hand-off, refill sync, a shared machine).",
    "extrapolation_side_by_side": "Predicted Gbit/s against rings on the hypothetical host, left from this "
                                  "recording's per-byte costs, right from the published zcrx figure. The "
                                  "inputs are never mixed; read the gap between panels as the gap between "
                                  "this recording's receive path and zcrx on a real NIC.",
    "probe_questions": "The handful of kernel counters that answer a question, per GB received, per "
                       "topology (symlog scale). Look at which topology sleeps, wakes or copies more per byte.",
}


def _figure(title: str, label: str, ncols: int = 1, width: float = 8.0, height: float = 4.2):
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    fig.suptitle(textwrap.fill(title, int(width * 13)) + "\n" + textwrap.fill(label, int(width * 15)), fontsize=8)
    return fig, axes


def _order(topologies) -> list[str]:
    return topology_order(topologies)


def _config_name(row: pd.Series) -> str:
    rate = f"{row['rate_gbit_s']:g} Gbit/s offered" if row.get("rate_gbit_s", 0) > 0 else "unpaced"
    return f"work {row['work_ns_per_kib']:g} ns/KiB, {rate}"


def throughput(summary: pd.DataFrame, label: str) -> Figure:
    """Median receive throughput per topology (bars) with 95 % bootstrap CI, one panel per
    configuration; ``summary`` from ``analysis.saturation.throughput``."""
    configs = summary.drop_duplicates(["work_ns_per_kib", "rate_gbit_s"])
    fig, axes = _figure("Receive throughput per topology (median of runs, 95% bootstrap CI)", label,
                        ncols=max(1, len(configs)), width=max(6.0, 4.0 * len(configs)))
    for ax, (_, cfg) in zip(axes, configs.iterrows()):
        s = summary[(summary["work_ns_per_kib"] == cfg["work_ns_per_kib"]) &
                    (summary["rate_gbit_s"] == cfg["rate_gbit_s"])]
        s = s.set_index("topology").loc[_order(s["topology"])].reset_index()
        names = [f"{t}\n({int(r)} ring{'s' if r > 1 else ''})" if t != "workers" else f"{t}\n({int(w)} workers)"
                 for t, r, w in zip(s["topology"], s["rings"], s["workers"])]
        err = np.vstack([s["median"] - s["ci_lo"], s["ci_hi"] - s["median"]]).clip(min=0)
        ax.bar(names, s["median"], yerr=err, capsize=4, color=[COLOURS.get(t, "grey") for t in s["topology"]])
        ax.set_ylabel("Gbit/s received")
        ax.set_title(_config_name(cfg), fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    return fig


def saturation_curve(sat: pd.DataFrame, label: str, x: str = "rate_gbit_s") -> Figure:
    """Achieved vs ``x`` (offered load, rings or work) per topology; from
    ``analysis.saturation.offered_vs_achieved`` (or ``throughput``)."""
    fig, (ax,) = _figure(f"Throughput against {x.replace('_', ' ')}", label)
    y = "achieved_gbit_s" if "achieved_gbit_s" in sat else "median"
    others = [c for c in ("work_ns_per_kib", "rate_gbit_s", "rings") if c != x and sat[c].nunique() > 1]
    for topo in _order(sat["topology"]):
        for key, s in sat[sat["topology"] == topo].groupby(others) if others else [((), sat[sat["topology"] == topo])]:
            s = s.sort_values(x)
            key = key if isinstance(key, tuple) else (key,)
            name = topo + "".join(f", {c.split('_')[0]} {v:g}" for c, v in zip(others, key))
            ax.errorbar(s[x], s[y], yerr=[(s[y] - s["ci_lo"]).clip(lower=0), (s["ci_hi"] - s[y]).clip(lower=0)],
                        marker="o", capsize=3, label=name, color=COLOURS.get(topo))
    if x == "rate_gbit_s":
        lim = sat[x].max()
        ax.plot([0, lim], [0, lim], ls=":", color="black", label="offered = achieved")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel("Gbit/s received (median)")
    ax.legend(fontsize=8)
    return fig


def scaling(scal: pd.DataFrame, label: str) -> Figure:
    """Speed-up over ``single`` against parallelism per topology, with the linear ideal; from
    ``analysis.saturation.scaling``."""
    fig, (ax,) = _figure("Scaling against single (median throughput ratio)", label)
    for topo in _order(scal["topology"]):
        s = scal[scal["topology"] == topo].sort_values("parallelism")
        ax.plot(s["parallelism"], s["speedup"], marker="o", label=topo, color=COLOURS.get(topo))
    top = max(2, int(scal["parallelism"].max())) if scal["parallelism"].notna().any() else 2   # no single runs
    ax.plot([1, top], [1, top], ls=":", color="black", label="linear")
    ax.set_xlabel("rings (workers for `workers`)")
    ax.set_ylabel("speed-up over single")
    ax.legend(fontsize=8)
    return fig


def ring_share(shares: pd.DataFrame, label: str) -> Figure:
    """Each ring's share of the received bytes per run (box per topology and ring); from
    ``analysis.saturation.ring_share``."""
    fig, (ax,) = _figure("Per-ring share of received bytes", label)
    groups, names = [], []
    for topo in _order(shares["topology"]):
        for ring, g in shares[shares["topology"] == topo].groupby("ring"):
            groups.append(g["share"].to_numpy())
            names.append(f"{topo}\nring {ring}")
    if groups:
        ax.boxplot(groups, tick_labels=names)
    ax.set_ylabel("share of bytes")
    ax.tick_params(axis="x", labelsize=7)
    return fig


def costs_per_gb(runs: pd.DataFrame, label: str) -> Figure:
    """Receiver-side CPU-seconds per GB (user/sys/softirq, stacked medians) and context switches
    per GB per topology; from ``analysis.per_run``. A part measured in no run is drawn as zero
    and its legend entry says so (softirq: no /proc/stat samples)."""
    fig, (ax1, ax2) = _figure("Cost per GB received (median of runs)", label, ncols=2, width=10)
    order = _order(runs["topology"])
    med = runs.groupby("topology")[["cpu_s_per_gb_user", "cpu_s_per_gb_sys", "cpu_s_per_gb_softirq",
                                    "switches_per_gb"]].median().reindex(order)
    bottom = np.zeros(len(order))
    for col, colour, why in (("cpu_s_per_gb_user", "#4c72b0", "not measured"),
                             ("cpu_s_per_gb_sys", "#dd8452", "not measured"),
                             ("cpu_s_per_gb_softirq", "#8172b3", "not measured: no /proc/stat samples")):
        name = col.rsplit("_", 1)[-1]
        vals = med[col].fillna(0).to_numpy()
        ax1.bar(order, vals, bottom=bottom, label=name if med[col].notna().any() else f"{name} ({why})",
                color=colour)
        bottom += vals
    ax1.set_ylabel("CPU-seconds per GB")
    ax1.legend(fontsize=8)
    ax2.bar(order, med["switches_per_gb"], color=[COLOURS.get(t, "grey") for t in order])
    ax2.set_ylabel("context switches per GB (rx + worker threads)")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", labelsize=8)
    return fig


def log2_histogram(hist: pd.DataFrame, label: str, title: str, unit: str = "ns") -> Figure:
    """Share of events per log2 bucket, one line per topology; ``hist`` has ``topology, lo, hi,
    count, share`` (``analysis.switches.wakeup_latency``)."""
    fig, (ax,) = _figure(title, label)
    for topo in _order(hist["topology"]):
        h = hist[hist["topology"] == topo].sort_values("lo")
        ax.step(np.maximum(h["lo"], 1), h["share"], where="post", label=topo, color=COLOURS.get(topo))
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"bucket lower bound ({unit}, log2)")
    ax.set_ylabel("share of events")
    ax.legend(fontsize=8)
    return fig


def hot_vs_cold(work: pd.DataFrame, label: str) -> Figure:
    """User-CPU ns/KiB of the working threads per run, payload hot (receiving thread) or cold
    (worker thread); from ``analysis.cache.work_cost``."""
    fig, (ax,) = _figure("Work function cost: payload hot (receiving core) vs cold (worker)", label)
    groups, names = [], []
    for placement in ("hot", "cold"):
        for topo in _order(work["topology"]):
            g = work[(work["placement"] == placement) & (work["topology"] == topo)]
            if len(g):
                groups.append(g["measured_ns_per_kib"].to_numpy())
                names.append(f"{placement}\n{topo}")
    if groups:
        ax.boxplot(groups, tick_labels=names)
    ax.set_ylabel("user CPU ns per KiB of the working thread")
    ax.tick_params(axis="x", labelsize=8)
    return fig


def capacity_validation(val: pd.DataFrame, label: str) -> Figure:
    """Predicted (from ``single`` runs only) against measured median throughput per topology; from
    ``analysis.capacity.validate``."""
    fig, (ax,) = _figure("Capacity model: predicted from single-ring runs vs measured", label)
    if val.empty or "topology" not in val:      # no single runs with per-thread CPU costs
        ax.text(0.5, 0.5, "no prediction: no single runs with per-thread CPU costs", ha="center",
                transform=ax.transAxes)
        return fig
    names = [f"{t}\n{r} ring{'s' if r > 1 else ''}" for t, r in zip(val["topology"], val["rings"])]
    xs = np.arange(len(val))
    ax.bar(xs - 0.2, val["measured_gbit_s"], width=0.4, label="measured (median)", color="#4c72b0")
    ax.bar(xs + 0.2, val["predicted_gbit_s"], width=0.4, label="predicted", color="#dd8452")
    for x, (_, r) in zip(xs, val.iterrows()):
        ax.annotate(f"{r['error']:+.0%}\n{r['bound']}", (x + 0.2, r["predicted_gbit_s"]),
                    ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, names, fontsize=8)
    ax.set_ylabel("Gbit/s")
    ax.legend(fontsize=8)
    return fig


def extrapolation(ext: pd.DataFrame, label: str) -> Figure:
    """Model-predicted throughput against rings per topology on a hypothetical machine; from
    ``analysis.capacity.extrapolate`` (an extrapolation, said in the title)."""
    cores = int(ext["cores"].iloc[0])
    line = float(ext["line_rate_gbit_s"].iloc[0])
    queues = ext["queues"].iloc[0]
    fig, (ax,) = _figure(f"EXTRAPOLATION (model, not measured): {cores} cores, {line:g} Gbit/s line, "
                         f"{queues:g} HW queues for ifq-per-ring", label)
    for topo in _order(ext["topology"]):
        e = ext[ext["topology"] == topo].sort_values("rings")
        ax.plot(e["rings"], e["predicted_gbit_s"], marker="o", label=topo, color=COLOURS.get(topo))
    ax.axhline(line, ls=":", color="black", label="line rate")
    ax.set_xlabel("rings (workers for `workers`)")
    ax.set_ylabel("predicted Gbit/s")
    ax.legend(fontsize=8)
    return fig


def extrapolation_side_by_side(ext: pd.DataFrame, label: str, published_source: str) -> Figure:
    """Two panels of predicted Gbit/s against rings per topology: from this recording's costs
    (``measured_gbit_s``) and from the published zcrx figure (``published_gbit_s``); from
    ``analysis.capacity.extrapolate_side_by_side`` (an extrapolation, said in the title)."""
    cores = int(ext["cores"].iloc[0])
    line = float(ext["line_rate_gbit_s"].iloc[0])
    fig, axes = _figure(f"EXTRAPOLATION (model, not measured): {cores} cores, {line:g} Gbit/s line, "
                        f"{ext['queues'].iloc[0]:g} HW queues for ifq-per-ring", label, ncols=2, width=10)
    for ax, column, name in ((axes[0], "measured_gbit_s", "input: this recording's per-byte costs"),
                             (axes[1], "published_gbit_s", f"input: {published_source}")):
        for topo in _order(ext["topology"]):
            e = ext[ext["topology"] == topo].sort_values("rings")
            ax.plot(e["rings"], e[column], marker="o", label=topo, color=COLOURS.get(topo))
        ax.axhline(line, ls=":", color="black", label="line rate")
        ax.set_xscale("log", base=2)
        ax.set_title(textwrap.fill(name, 60), fontsize=8)
        ax.set_xlabel("rings (workers for `workers`)")
        ax.set_ylabel("predicted Gbit/s")
        ax.set_ylim(0, line * 1.08)
    axes[0].legend(fontsize=7)
    return fig


def probe_questions(q: pd.DataFrame, label: str,
                    title: str = "Kernel counts that answer a question, per GB received (median over runs)") -> Figure:
    """Horizontal bars of ``analysis.probes.questions``: one group per question, one bar per topology."""
    from zcrxprof.analysis.probes import QUESTION_COLUMN
    topo = [c for c in q.columns if c not in (QUESTION_COLUMN, "counter")]
    fig, (ax,) = _figure(title, label, height=max(3.0, 0.13 * len(q) * max(len(topo), 1) + 2.0))
    step = 0.8 / max(len(topo), 1)
    for i, t in enumerate(topo):
        ax.barh([k + i * step for k in range(len(q))], q[t].fillna(0), height=step, label=t,
                color=COLOURS.get(t, "grey"))
    ax.set_yticks([k + step * (len(topo) - 1) / 2 for k in range(len(q))],
                  [textwrap.fill(f"{question} [{counter}]", 48) for question, counter in zip(q[QUESTION_COLUMN], q["counter"])])
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xscale("symlog")
    ax.set_xlabel("per GB received (symlog)")
    ax.invert_yaxis()
    if topo:
        ax.legend(fontsize=7)
    return fig
