"""Analysis functions on the committed real host dataset (datasets/, picked by `dataset.pick`)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from zcrxprof import dataset, schema
from zcrxprof.analysis import cache, capacity, label, per_run, probes, refill, saturation, switches, verdict
from zcrxprof.dataset import Dataset, load, pick
from zcrxprof.errors import UsageError, ZcrxprofError


HOST_DATASETS = sorted(d["path"] for d in dataset.list_datasets() if d["where"] == "host" and d["complete"])


@pytest.fixture(scope="module", params=HOST_DATASETS, ids=lambda p: p.rsplit("/", 1)[-1])
def host_path(request):
    return request.param


def test_a_committed_host_dataset_exists_and_pick_finds_the_newest():
    assert HOST_DATASETS, "no complete host dataset committed under datasets/"
    newest = max(dataset.list_datasets(), key=lambda d: (d["where"] == "host" and d["complete"], d["created"] or ""))
    assert str(pick("host")) == newest["path"]


@pytest.fixture(scope="module")
def frames(host_path):
    return load(host_path)


@pytest.fixture(scope="module")
def runs(frames):
    return per_run(frames)


def test_load_keeps_each_datasets_identity(host_path, frames):
    both = load([host_path, host_path])
    first, second = both.names
    assert second == f"{first}#2"
    assert len(both.runs) == 2 * len(frames.runs)
    for table in schema.TABLES:
        t = getattr(both, table)
        assert list(t.columns) == ["dataset", *schema.TABLES[table].column_names]
        if len(t):
            assert (t.groupby("dataset").size() == len(frames.tables[table])).all()


def test_load_rejects_what_is_not_a_dataset(tmp_path, host_path):
    with pytest.raises(UsageError):
        load(tmp_path / "nothing-here")
    copy = tmp_path / "copy"
    shutil.copytree(host_path, copy)
    meta = json.loads((copy / "metadata.json").read_text())
    meta["schema_version"] = 999
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ZcrxprofError, match="schema version 999 is newer"):
        load(copy)
    foreign = tmp_path / "foreign"
    shutil.copytree(host_path, foreign)
    pd.DataFrame({"x": [1.0]}).to_parquet(foreign / "runs.parquet", index=False)
    with pytest.raises(ZcrxprofError, match="not a zcrxprof runs table"):
        load(foreign)
    (foreign / "runs.parquet").unlink()
    with pytest.raises(ZcrxprofError, match="runs.parquet missing"):
        load(foreign)


def test_label_names_backend_kernel_machine_and_timing(frames):
    text = label(frames)
    r = frames.runs
    assert all(b in text for b in set(r["backend"]))
    assert all(k in text for k in set(r["kernel"]))
    assert "cores" in text and "timing" in text
    if not (r["backend"] == "zcrx").all():
        assert "not zero-copy" in text


def test_per_run_costs_follow_from_the_thread_totals(frames, runs):
    th = frames.threads
    for _, row in runs.iterrows():
        t = th[th["run_id"] == row["run_id"]]
        recv = t[t["role"].isin(["rx", "worker"])]
        gb = row["bytes_received"] / 1e9
        assert row["switches_per_gb"] == pytest.approx((recv["nvcsw"].sum() + recv["nivcsw"].sum()) / gb)
        assert row["cpu_s_per_gb_user"] == pytest.approx(recv["utime_ns"].sum() / 1e9 / gb)
    assert set(runs["status"]) == {"ok"}


def test_throughput_summary_matches_the_runs(runs):
    tp = saturation.throughput(runs)
    for _, row in tp.iterrows():
        sel = runs[(runs["topology"] == row["topology"]) & (runs["rings"] == row["rings"])
                   & (runs["workers"] == row["workers"]) & (runs["work_ns_per_kib"] == row["work_ns_per_kib"])
                   & (runs["rate_gbit_s"] == row["rate_gbit_s"])]
        assert row["median"] == pytest.approx(sel["gbit_s"].median())
        assert row["ci_lo"] <= row["median"] <= row["ci_hi"]
        assert row["n"] == len(sel)


def test_scaling_is_relative_to_single(runs):
    sc = saturation.scaling(runs)
    single = sc[sc["topology"] == "single"]
    assert len(single) and np.allclose(single["speedup"], 1.0)
    multi = sc[sc["topology"] != "single"]
    assert np.allclose(multi["efficiency"], multi["speedup"] / multi["parallelism"])


def test_ring_shares_sum_to_one_per_run(frames):
    shares = saturation.ring_share(frames)
    assert not shares.empty
    sums = shares.groupby(["dataset", "run_id"])["share"].sum()
    assert np.allclose(sums, 1.0)
    assert ((shares["fairness"] > 0) & (shares["fairness"] <= 1.0 + 1e-9)).all()


def test_verdict_winner_has_the_highest_median(runs):
    v = verdict.winners(runs)
    assert not v.empty
    tp = saturation.throughput(runs)
    tp["threads"] = saturation.parallelism(tp)
    for _, row in v.iterrows():
        cfg = tp[(tp["work_ns_per_kib"] == row["work_ns_per_kib"]) & (tp["rate_gbit_s"] == row["rate_gbit_s"])
                 & ((tp["topology"] == "single") | (tp["threads"] == row["threads"]))]
        assert cfg.loc[cfg["median"].idxmax(), "topology"] == row["winner"]
        assert row["ranking"].split(" > ")[:2] == [row["winner"], row["runner_up"]]
        assert row["ratio"] >= 1.0
        assert row["backend"] in row["statement"] and row["kernel"] in row["statement"]
        if row["backend"] != "zcrx":
            assert "not zero-copy" in row["statement"]


def test_costs_and_handoff_are_consistent(runs):
    c = switches.costs(runs)
    assert {"switches_per_gb", "cpu_s_per_gb_user", "cpu_s_per_gb_sys"} <= set(c["metric"])
    ho = switches.handoff_cost(runs)
    if set(runs["topology"]) >= {"workers", "shared-ifq"}:
        assert not ho.empty
        row = ho.iloc[0]
        assert row["extra_cpu_s_per_gb"] == pytest.approx(row["workers_cpu_s_per_gb"] - row["shared_cpu_s_per_gb"])


def test_hot_and_cold_work_cost_come_from_the_right_threads(runs):
    w = cache.work_cost(runs)
    assert set(w["placement"]) <= {"hot", "cold"}
    assert (w[w["placement"] == "cold"]["topology"] == "workers").all()
    assert (w["measured_ns_per_kib"] > 0).all()


def test_pmu_statement_is_precise_when_there_is_no_pmu(frames):
    table, statement = cache.pmu_counters(frames)
    kernels = set(frames.runs["kernel"])
    if table.empty:
        assert any(k in statement for k in kernels)
        assert "hot-vs-cold" in statement


def test_refill_table_covers_every_topology(runs):
    r = refill.backlog(runs)
    assert set(r["topology"]) == set(runs["topology"])
    assert (r["runs"] > 0).all()


def test_capacity_model_validates_from_single_runs(frames, runs):
    cores = frames.metadata["machine"]["cores"]
    val = capacity.validate(runs, cores)
    assert set(val["topology"]) == set(runs["topology"])
    single = val[val["topology"] == "single"]
    assert np.isfinite(val["error"]).all() and (val["predicted_gbit_s"] > 0).all()
    # a ring thread cannot use more than 100 % of a core, so the single-ring prediction from its own
    # CPU per byte is an upper bound of what it achieved (10 % slack: interval edges)
    assert (single["predicted_gbit_s"] >= 0.9 * single["measured_gbit_s"]).all()


def test_kernel_switch_counts_cover_the_load_generators_own(frames):
    # ringsched counts every switch of the process from attach on; the load generator counts its
    # threads' switches during the run: the kernel's totals (summed over threads) are never smaller

    for metric, column in (("switch_voluntary", "nvcsw"), ("switch_preempted", "nivcsw")):
        cmp = probes.against_loadgen(frames, metric, column, roles=("rx", "worker", "tx"))
        assert len(cmp) == len(frames.usable_runs())
        assert (cmp[f"kernel_{metric}"] >= cmp[f"loadgen_{column}"]).all()
    att = probes.attach_report(frames)
    assert set(att["status"]) <= {"attached", "unavailable"}
    assert (att[att["status"] == "unavailable"]["reason"] != "").all()


LAB = dataset.resolve("lab-nodev-4topo-kprobes")


def test_copy_fallback_reads_the_zcrx_stats_and_the_copy_event_totals():
    frames = load(LAB)
    cp = refill.copy_fallback(frames).set_index(["run_id", "source", "metric"])["value"]
    ev = frames.events
    ok = frames.usable_runs()["run_id"]
    assert len(ok) > 0
    for run in ok:
        stats = ev[(ev["run_id"] == run) & (ev["event"] == "stats")].groupby("metric")["value"].sum()
        assert stats["bytes"] > 0
        assert cp[(run, "zcrx_stats", "copy_bytes")] == stats["bytes"]
        assert cp[(run, "zcrx_stats", "copy_chunks")] == stats["count"]
        # the kernel probes count the same copies independently
        assert cp[(run, "zcrx_stats", "copy_bytes")] == cp[(run, "probes", "copy_bytes")]
        assert cp[(run, "zcrx_stats", "copy_chunks")] == cp[(run, "probes", "copy_chunks")]
        # the end-of-run totals, not totals plus the interval records they already include
        counts = ev[(ev["run_id"] == run) & (ev["metric"] == "count")].groupby("event")["value"].sum()
        assert cp[(run, "events", "copy_events")] == counts["copy_events"]
        assert 0 < counts["copy"] <= counts["copy_events"]


def _frames_with_events(rows: list[tuple[int, str, int, str, float]]) -> Dataset:
    """Two ok zcrx runs and no probes; events from (run_id, event, ring, metric, value)."""
    tables = {t: schema.empty_frame(t).assign(dataset=pd.Series(dtype="str")) for t in schema.TABLES}
    tables["runs"] = pd.DataFrame({"dataset": "d", "run_id": [0, 1], "topology": ["single", "workers"],
                                   "backend": "zcrx", "status": "ok", "verify_errors": 0})
    tables["events"] = pd.DataFrame([{"dataset": "d", "run_id": r, "t": float(i), "event": e, "ring": ring,
                                      "metric": m, "value": v} for i, (r, e, ring, m, v) in enumerate(rows)])
    return Dataset(tables)


def test_event_counts_take_totals_once_and_never_add_bytes():
    rows = [(0, "alloc_fail", 0, "count", 2), (0, "alloc_fail", 0, "bytes", 4096),
            (0, "alloc_fail", 0, "count", 3), (0, "alloc_fail_events", 0, "count", 7),
            (0, "alloc_fail_events", 0, "bytes", 0), (0, "alloc_fail_events", 1, "count", 1),
            (0, "copy", 0, "count", 4), (0, "copy_events", 0, "count", 6),
            (0, "stats", 0, "count", 10), (0, "stats", 0, "bytes", 20480),
            (0, "stats", 1, "count", 5), (0, "stats", 1, "bytes", 8192),
            # run 1 lost its totals: its interval records are all there is
            (1, "alloc_fail", 0, "count", 2), (1, "alloc_fail", 0, "bytes", 9999), (1, "alloc_fail", 0, "count", 5)]
    frames = _frames_with_events(rows)
    st = refill.starvation(frames).set_index(["run_id", "metric"])["value"]
    assert st.to_dict() == {(0, "alloc_fail_events"): 8, (1, "alloc_fail_events"): 7}
    cp = refill.copy_fallback(frames).set_index(["run_id", "source", "metric"])["value"]
    assert cp.to_dict() == {(0, "zcrx_stats", "copy_chunks"): 15, (0, "zcrx_stats", "copy_bytes"): 28672,
                            (0, "events", "copy_events"): 6}


def test_senders_say_which_host_was_the_bottleneck_with_its_retransmits_and_rtt():
    """Two usable runs, two sending hosts: a thread on a CPU for ≥ 90 % of the run makes its host
    the bottleneck of that run; retransmits add up over intervals, RTT only from intervals that
    sent (an idle one's 0 does not count); a dataset without TCP_INFO says unknown, not 0."""
    from zcrxprof.analysis.senders import sender_verdict, senders
    tables = {t: schema.empty_frame(t).assign(dataset=pd.Series(dtype="str")) for t in schema.TABLES}
    tables["runs"] = pd.DataFrame({"dataset": "d", "run_id": [0, 1], "topology": "single", "rings": 1,
                                   "status": "ok", "verify_errors": 0, "loadgen_duration_s": 2.0})
    th = [("a", 0, 1.9e9, 100), ("b", 0, 0.2e9, 50), ("a", 1, 0.4e9, 10), ("b", 1, 0.1e9, 10)]
    tables["threads"] = pd.DataFrame([{"dataset": "d", "run_id": r, "thread": "tx0", "host": h, "role": "tx",
                                       "bytes": b, "utime_ns": 0, "stime_ns": cpu} for h, r, cpu, b in th])
    iv = [("a", 0, 100, 3, 40, 50), ("a", 0, 0, 1, 0, 0), ("b", 0, 50, 0, 20, 30),
          ("a", 1, 10, 2, 60, 90), ("b", 1, 10, 0, 10, 10)]
    tables["intervals"] = pd.DataFrame([{"dataset": "d", "run_id": r, "thread": "tx0", "host": h, "role": "tx",
                                         "bytes": b, "tcp_retrans": rt, "tcp_rtt_us": rtt, "tcp_rtt_max_us": mx}
                                        for h, r, b, rt, rtt, mx in iv])
    s = senders(Dataset(tables)).set_index(["run_id", "host"])
    assert s["sender_bound"].to_dict() == {(0, "a"): True, (0, "b"): False, (1, "a"): False, (1, "b"): False}
    assert s.loc[(0, "a"), "retransmits"] == 4 and s.loc[(0, "a"), "rtt_us_mean"] == 40
    assert s.loc[(0, "a"), "rtt_us_max"] == 50 and s.loc[(0, "a"), "tx_busy_max"] == pytest.approx(0.95)
    assert s.loc[(0, "a"), "gbit_s"] == pytest.approx(100 * 8 / 1e9 / 2)
    line = sender_verdict(Dataset(tables))
    assert "a: the bottleneck in 1 of 2 runs (busiest sending thread 95%" in line, line
    assert "b: not the bottleneck" in line and "a: the bottleneck in 1 of 2 runs (busiest sending thread 95% " \
           "of the run on a CPU), 6 retransmits, RTT median 50 µs (max 90 µs)" in line, line
    tables["intervals"] = tables["intervals"].assign(tcp_retrans=-1, tcp_rtt_us=-1, tcp_rtt_max_us=-1)
    old = senders(Dataset(tables))
    assert (old["retransmits"] == -1).all() and old["rtt_us_mean"].isna().all()
    assert "retransmits" not in sender_verdict(Dataset(tables))
