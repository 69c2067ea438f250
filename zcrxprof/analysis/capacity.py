"""A capacity model: from measured per-byte costs, predict throughput for N rings on M cores with
Q hardware queues at line rate L — and validate it against the runs it did not see.

Model (all costs in CPU-ns per byte, medians over runs):

* ``recv``  receiving-thread CPU that is not the work function (syscalls, copy, io_uring, verify),
* ``work``  the work function (checksum + calibrated busy cost; its wall time, bounded by the
  thread's user CPU time since preemption inflates wall time),
* ``softirq`` the network stack in softirq context (all CPUs), ``tx`` the sender's CPU when it
  shares the machine, ``handoff`` the extra CPU of handing buffers to workers, ``sync`` the extra
  CPU per byte of synchronising a shared refill ring.

A ring thread runs on one core, so one ring moves at most ``1 / (recv + work + sync)`` bytes/ns; N
threads at most N times that; all of it together with softirq and a local sender must fit in M
cores; a hardware queue's softirq runs on one core, so Q queues bound throughput by Q / softirq;
and the line rate bounds everything. The prediction is the smallest bound, and the model names it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from zcrxprof.analysis.saturation import BASE
from zcrxprof.dataset import Dataset
from zcrxprof.vocab import TOPOLOGIES


@dataclass(frozen=True)
class Costs:
    """Per-byte CPU costs (ns/byte) measured from runs; ``source`` says which runs."""

    recv: float
    work: float
    softirq: float = 0.0
    tx: float = 0.0
    handoff: float = 0.0
    sync: float = 0.0
    source: str = ""


def _median_per_byte(runs: pd.DataFrame, numerator: pd.Series) -> float:
    b = runs["bytes"].where(runs["bytes"] > 0)
    v = (numerator / b).dropna()
    return float(v.median()) if len(v) else math.nan


def measure_costs(runs: pd.DataFrame, include_handoff_and_sync: bool = False) -> Costs:
    """Per-byte costs from the ``single`` runs of ``runs`` (one configuration); with
    ``include_handoff_and_sync`` also the hand-off (``workers``) and sync (``shared-ifq`` vs
    ``ifq-per-ring``) costs from those runs when present."""
    single = runs[runs["topology"] == "single"]
    if single.empty:
        raise ValueError("no single runs to measure per-byte costs from")
    # work_ns is wall time inside the work function (it includes time the thread was preempted):
    # its CPU share is bounded by the thread's user time
    work_cpu = single["rx_work_ns"].clip(upper=single["rx_utime_ns"])
    work = _median_per_byte(single, work_cpu)
    recv = _median_per_byte(single, single["rx_cpu_ns"] - work_cpu)
    soft = _median_per_byte(single, single["softirq_s"] * 1e9) if single["softirq_s"].notna().any() else 0.0
    tx = _median_per_byte(single, single["tx_cpu_ns"]) if (single["tx_cpu_ns"] > 0).any() else 0.0
    handoff = sync = 0.0
    used = "single"
    if include_handoff_and_sync:
        w = runs[runs["topology"] == "workers"]
        if not w.empty:
            handoff = max(0.0, _median_per_byte(w, w["rx_cpu_ns"] + w["worker_cpu_ns"]) - recv - work)
            used += ", workers"
        s, q = runs[runs["topology"] == "shared-ifq"], runs[runs["topology"] == "ifq-per-ring"]
        if not s.empty and not q.empty:
            sync = max(0.0, _median_per_byte(s, s["rx_cpu_ns"]) - _median_per_byte(q, q["rx_cpu_ns"]))
            used += ", shared-ifq vs ifq-per-ring"
    return Costs(recv=recv, work=work, softirq=soft if math.isfinite(soft) else 0.0,
                 tx=tx if math.isfinite(tx) else 0.0, handoff=handoff, sync=sync,
                 source=f"medians over {used} runs")


def predict(costs: Costs, topology: str, rings: int, cores: float, queues: float = math.inf,
            line_rate_gbit_s: float = math.inf, local_sender: bool = True) -> tuple[float, str]:
    """Predicted throughput in Gbit/s and the name of the binding bound (``ring``, ``workers``,
    ``cpu``, ``queue``, ``line``)."""
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}")
    if rings < 1 or cores <= 0 or queues < 1:
        raise ValueError("rings and queues must be >= 1 and cores > 0")
    bounds: dict[str, float] = {}  # bytes per ns
    per_ring = costs.recv + costs.work
    if not (math.isfinite(per_ring) and per_ring > 0 and (topology != "workers" or costs.recv > 0)):
        raise ValueError(f"no measurable receive cost per byte ({costs.source or 'no runs'})")
    if topology == "single":
        bounds["ring"] = 1 / per_ring
        used_queues = 1
        extra = 0.0
    elif topology == "workers":
        bounds["ring"] = 1 / costs.recv
        per_worker = costs.work + costs.handoff      # 0 when the runs did no work (e.g. imported)
        bounds["workers"] = rings / per_worker if per_worker > 0 else math.inf
        used_queues = 1
        extra = costs.handoff
    elif topology == "ifq-per-ring":
        used_queues = min(rings, queues)
        bounds["ring"] = used_queues / per_ring
        extra = 0.0
    else:  # shared-ifq: N rings on one queue
        bounds["ring"] = rings / (per_ring + costs.sync)
        used_queues = 1
        extra = costs.sync
    total = costs.recv + costs.work + costs.softirq + extra + (costs.tx if local_sender else 0.0)
    bounds["cpu"] = cores / total
    if costs.softirq > 0:
        bounds["queue"] = used_queues / costs.softirq
    bounds["line"] = line_rate_gbit_s / 8
    name = min(bounds, key=bounds.get)
    return bounds[name] * 8, name


def available_cores(runs: pd.DataFrame, cores: int) -> float:
    """Cores left to the workload: ``cores`` minus the median CPU share other processes took
    during ``runs`` (``other_cpu_s`` / run length; the machine may be shared)."""
    other = (runs["other_cpu_s"] / runs["loadgen_duration_s"]).dropna()
    return max(0.05, cores - (float(other.median()) if len(other) else 0.0))


def validate(runs: pd.DataFrame, cores: int) -> pd.DataFrame:
    """Predict every topology's median throughput from the ``single`` runs of the same
    configuration only (hand-off and sync costs unknown to the model, hence 0) and report the
    relative error against the measured median. The model is told the cores other processes left
    free during the predicted runs (``available_cores``), never their throughput."""
    rows = []
    for key, g in runs.groupby(BASE, dropna=False):
        if not (g["topology"] == "single").any():
            continue
        costs = measure_costs(g)
        if not (math.isfinite(costs.recv + costs.work) and costs.recv > 0):
            continue        # e.g. no receiving thread's CPU time in these runs: nothing to model
        rate = dict(zip(BASE, key))["rate_gbit_s"]
        line = rate if rate and rate > 0 else math.inf
        for (topo, rings, workers), t in g.groupby(["topology", "rings", "workers"]):
            n = workers if topo == "workers" else rings
            free = available_cores(t, cores)
            pred, bound = predict(costs, topo, int(n), free, line_rate_gbit_s=line)
            meas = float(t["gbit_s"].median())
            rows.append({**dict(zip(BASE, key)), "topology": topo, "rings": int(n), "cores": cores,
                         "cores_available": free, "predicted_gbit_s": pred, "bound": bound,
                         "measured_gbit_s": meas, "error": (pred - meas) / meas if meas else math.nan,
                         "runs": len(t), "from_single_only": True})
    return pd.DataFrame(rows)


def extrapolate(costs: Costs, cores: int, line_rate_gbit_s: float, queues: float,
                rings: list[int], local_sender: bool = False) -> pd.DataFrame:
    """Predicted Gbit/s per topology and ring count on another machine (an extrapolation from the
    measured costs, not a measurement)."""
    rows = []
    for topo in TOPOLOGIES:
        for n in ([1] if topo == "single" else rings):
            pred, bound = predict(costs, topo, n, cores, queues, line_rate_gbit_s, local_sender)
            rows.append({"topology": topo, "rings": n, "cores": cores, "queues": queues,
                         "line_rate_gbit_s": line_rate_gbit_s, "predicted_gbit_s": pred, "bound": bound})
    return pd.DataFrame(rows)


# The zcrx v1 cover letter (io_uring zero copy rx, netdev/io-uring lists, 2024): a single flow
# received at 116.2 Gbit/s on a 200G Broadcom bnxt NIC, the application and the softirq on
# different cores.
PUBLISHED_SOURCE = ("zcrx v1 cover letter: 116.2 Gbit/s single flow on a 200G bnxt NIC, application "
                    "and softirq on different cores")
PUBLISHED_SINGLE_FLOW_GBIT_S = 116.2


def published_costs(work_ns_per_kib: float) -> Costs:
    """Per-byte receive costs derived from the published zcrx figure (``PUBLISHED_SOURCE``): the
    application core and the softirq core each moved 116.2 Gbit/s, so each costs at most
    8 / 116.2 ns per byte (taken as equal to it: both cores busy, an upper bound on the cost and a
    lower bound on what zcrx does). ``work`` is the workload's nominal work function
    (``work_ns_per_kib`` / 1024 ns per byte), an input of the configuration, not a measurement;
    hand-off, sync and sender costs are unknown to the figure and left at 0. Never combined
    with ``measure_costs``' numbers."""
    per_byte = 8 / PUBLISHED_SINGLE_FLOW_GBIT_S
    return Costs(recv=per_byte, work=work_ns_per_kib / 1024, softirq=per_byte,
                 source=f"published: {PUBLISHED_SOURCE}; work {work_ns_per_kib:g} ns/KiB (nominal)")


def extrapolate_side_by_side(measured: Costs, published: Costs, cores: int, line_rate_gbit_s: float,
                             queues: float, rings: list[int]) -> pd.DataFrame:
    """``extrapolate`` from each input separately, one row per topology and ring count:
    ``measured_gbit_s``/``measured_bound`` from this recording's costs and
    ``published_gbit_s``/``published_bound`` from ``published_costs`` (no input mixes the two)."""
    a = extrapolate(measured, cores, line_rate_gbit_s, queues, rings)
    b = extrapolate(published, cores, line_rate_gbit_s, queues, rings)
    keys = ["topology", "rings", "cores", "queues", "line_rate_gbit_s"]
    return (a.rename(columns={"predicted_gbit_s": "measured_gbit_s", "bound": "measured_bound"})
            .merge(b.rename(columns={"predicted_gbit_s": "published_gbit_s", "bound": "published_bound"}),
                   on=keys))


def costs_table(costs: Costs) -> pd.DataFrame:
    """The costs as a two-column frame (component, ns/byte) for reports."""
    d = asdict(costs)
    source = d.pop("source")
    return pd.DataFrame({"component": list(d), "ns_per_byte": list(d.values()), "source": source})


def validation_error(val: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, from ``validate``: the worst and the median absolute relative error of the
    model's predictions for the topologies it did not see (all but ``single``)."""
    if val.empty or "topology" not in val:      # nothing predicted (no single runs with CPU costs)
        return pd.DataFrame(columns=["dataset", "worst_error", "median_error", "predictions"])
    multi = val[val["topology"] != "single"].assign(abs_error=lambda d: d["error"].abs())
    return (multi.groupby("dataset", as_index=False)
            .agg(worst_error=("abs_error", "max"), median_error=("abs_error", "median"), predictions=("abs_error", "size")))


def fewest_cores(ds: Dataset) -> int:
    """The fewest cores among the machines the datasets were recorded on (1 when unknown)."""
    return min(int((m.get("machine") or {}).get("cores") or 1) for m in ds.metadata_by_name.values())
