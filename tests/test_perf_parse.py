"""Parsers of perf's own output, checked against golden files recorded on this machine
(tests/golden/perf/record.sh: perf 6.1 on the 6.18 host, no hardware PMU)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from zcrxprof.errors import ZcrxprofError
from zcrxprof.analysis import cache, profile
from zcrxprof.perf import flame
from zcrxprof.perf.profile import KERNEL_START, parse_profile_json, profile_from_json, top_symbols
from zcrxprof.perf.stat import mark_suppressed, parse_stat_csv, parse_stat_json
from zcrxprof.perf.tool import HARDWARE_EVENTS

GOLDEN = Path(__file__).parent / "golden" / "perf"
SOFTWARE = ["task-clock", "context-switches", "cpu-migrations", "page-faults"]


@pytest.fixture(scope="module", params=["csv", "json"])
def stat(request) -> pd.DataFrame:
    if request.param == "csv":
        return parse_stat_csv((GOLDEN / "stat-interval-per-thread.csv").read_text())
    return parse_stat_json((GOLDEN / "stat-interval-per-thread.json").read_text())


def _raw_lines(name: str) -> list[str]:
    return [ln for ln in (GOLDEN / name).read_text().splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.mark.parametrize("name,parse", [("stat-interval-per-thread.csv", parse_stat_csv),
                                        ("stat-interval-per-thread.json", parse_stat_json)])
def test_every_line_becomes_one_row(name, parse):
    frame = parse((GOLDEN / name).read_text())
    assert len(frame) == len(_raw_lines(name))
    # per interval: every thread x every event exactly once
    per = frame.groupby("t").size()
    assert (per == frame["thread"].nunique() * frame["event"].nunique()).all()


def test_threads_are_split_from_comm_and_tid(stat):
    threads = dict(zip(stat["thread"], stat["tid"]))
    assert {"rx0", "tx0", "idle0"} <= set(threads)
    assert all(tid > 0 for tid in threads.values())


def test_no_pmu_means_not_supported_never_zero(stat):
    hw = stat[stat["event"].isin(HARDWARE_EVENTS)]
    assert set(hw["event"]) == set(HARDWARE_EVENTS)
    assert (hw["status"] == "not supported").all()
    assert hw["value"].isna().all()


def test_idle_thread_is_not_counted(stat):
    idle = stat[(stat["thread"] == "idle0") & stat["event"].isin(SOFTWARE)]
    assert (idle["status"] == "not counted").all() and idle["value"].isna().all()


def test_counts_are_consistent(stat):
    rx = stat[(stat["thread"] == "rx0") & (stat["status"] == "counted")].pivot(index="t", columns="event", values="value")
    # a per-thread sched_switch fires exactly when that thread is switched out; the two counters
    # are read a moment apart, so allow a switch or two per interval
    assert ((rx["sched:sched_switch"] - rx["context-switches"]).abs() <= 2).all()
    assert rx["sched:sched_switch"].sum() > 0
    clock = stat[(stat["event"] == "task-clock") & (stat["status"] == "counted")]
    assert (clock["unit"] == "msec").all()
    # a thread cannot run longer than the interval
    assert (clock["value"] <= clock["interval_s"] * 1000 * 1.01).all()


def test_intervals_tile_the_measurement(stat):
    one = stat[(stat["thread"] == "rx0") & (stat["event"] == "task-clock")]
    assert one["interval_s"].sum() == pytest.approx(one["t"].max())
    assert (one["interval_s"] > 0).all()
    assert stat["running_pct"].eq(100.0).all()


def test_csv_thread_names_may_hold_dashes_and_the_separator():
    text = ("     1.000000000,my-rx-thread-42,12,,context-switches,1000,100.00,12.000,/sec\n"
            "     1.000000000,a,b-43,<not counted>,,context-switches,0,100.00,,\n")
    frame = parse_stat_csv(text)
    assert list(frame["thread"]) == ["a,b", "my-rx-thread"]
    assert list(frame["tid"]) == [43, 42]
    assert frame["status"].tolist() == ["not counted", "counted"]
    assert frame["value"].iloc[1] == 12


@pytest.mark.parametrize("text", ["1.0,rx0-1,12\n", '{"interval": 1.0, "thread": "rx0-1", '])
def test_malformed_output_is_one_line_error(text):
    parse = parse_stat_json if text.startswith("{") else parse_stat_csv
    with pytest.raises(ZcrxprofError) as err:
        parse(text)
    assert "\n" not in str(err.value) and "line 1" in str(err.value)


@pytest.mark.parametrize("interval,per_thread,short,needed", [
    (True, True, "1.0,rx0-1,12,,task-clock,100", 7),
    (False, True, "rx0-1,12,,task-clock,100", 6),
    (False, False, "12,,task-clock,100", 5),
])
def test_csv_error_names_the_fields_a_line_needs(interval, per_thread, short, needed):
    with pytest.raises(ZcrxprofError, match=f"{needed - 1} fields, expected at least {needed}:"):
        parse_stat_csv(short, interval=interval, per_thread=per_thread)
    # as many fields as the message asks for is a line the parser takes
    frame = parse_stat_csv(short + ",100.00", interval=interval, per_thread=per_thread)
    assert frame["value"].tolist() == [12] and frame["running_pct"].tolist() == [100.0]


@pytest.fixture(scope="module")
def golden_profile() -> tuple[dict, pd.DataFrame]:
    doc = json.loads((GOLDEN / "profile.json").read_text())
    return doc, parse_profile_json(GOLDEN / "profile.json")


def test_profile_keeps_every_sample(golden_profile):
    doc, prof = golden_profile
    assert prof["samples"].sum() == len(doc["samples"])
    assert prof["share"].sum() == pytest.approx(1.0)
    assert not prof.duplicated(["thread", "tid", "stack"]).any()
    per_thread = prof.groupby("thread")["samples"].sum().to_dict()
    comms = pd.Series([s["comm"] for s in doc["samples"]]).value_counts().to_dict()
    assert per_thread == comms


def test_profile_leaf_and_space(golden_profile):
    doc, prof = golden_profile
    for stack, symbol, space in zip(prof["stack"], prof["symbol"], prof["space"]):
        leaf = stack.split(";")[-1]
        assert leaf == (symbol + "_[k]" if space == "kernel" else symbol)
    kernel_ips = {int(e["ip"], 16) >= KERNEL_START for s in doc["samples"] for e in s["callchain"]
                  if e.get("dso") == "[kernel.kallsyms]"}
    assert kernel_ips == {True}
    # the receiver was sampled inside the kernel's TCP receive path
    rx = prof[prof["thread"] == "rx0"]
    assert rx["stack"].str.contains("tcp_recvmsg_[k]", regex=False).any()


def test_profile_of_unresolved_and_empty_callchains():
    doc = {"samples": [
        {"comm": "rx0", "tid": 7, "callchain": [{"ip": "0x401000"}, {"ip": "0xe7ba6dbc24971038"}, {"ip": "0x1"}]},
        {"comm": "rx0", "tid": 7, "callchain": [{"ip": "0x401000"}, {"ip": "0x402000", "symbol": "main"}, {"ip": "0x1"}]},
        {"comm": "rx0", "tid": 7, "callchain": []},
        {"comm": "rx0", "tid": 7, "callchain": [{"ip": "0xffffffff81000000", "symbol": "f", "dso": "[kernel.kallsyms]"},
                                                 {"ip": "0x401000", "symbol": "main", "dso": "/usr/bin/x"}]},
    ]}
    prof = profile_from_json(doc).set_index("stack")
    assert prof.loc["[unknown]", "samples"] == 2  # runs of unresolvable frames collapse to one
    assert prof.loc["[unknown];main;[unknown]", "space"] == "user"
    assert prof.loc["main;f_[k]", ["symbol", "space"]].tolist() == ["f", "kernel"]
    assert prof.loc["main;f_[k]", "dso"] == "[kernel.kallsyms]"


def test_profile_rejects_other_json(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"not": "perf"}')
    with pytest.raises(ZcrxprofError, match="not `perf data convert --to-json`"):
        parse_profile_json(bad)


def test_top_symbols_orders_by_samples(golden_profile):
    _, prof = golden_profile
    top = top_symbols(prof, "kernel", n=3)
    assert list(top["samples"]) == sorted(top["samples"], reverse=True)
    assert (top["space"] == "kernel").all()
    leaf_counts = prof[prof["space"] == "kernel"].groupby("symbol")["samples"].sum()
    assert top["samples"].iloc[0] == leaf_counts.max()


def test_top_symbols_inclusive_counts_each_stack_once(golden_profile):
    _, prof = golden_profile
    top = top_symbols(prof, "kernel", n=100, inclusive=True).set_index("symbol")
    # every syscall sample passes through the entry code exactly once
    entry = prof["stack"].str.contains("entry_SYSCALL_64_after_hwframe_[k]", regex=False)
    assert top.loc["entry_SYSCALL_64_after_hwframe", "samples"] == prof.loc[entry, "samples"].sum()
    assert top["share"].max() <= 1.0
    synthetic = pd.DataFrame(dict(stack=["a;b;a", "a;c_[k]"], samples=[2, 3], share=[0.4, 0.6]))
    inc = top_symbols(synthetic, inclusive=True).set_index(["symbol", "space"])["samples"].to_dict()
    assert inc == {("a", "user"): 5, ("c", "kernel"): 3, ("b", "user"): 2}


@pytest.mark.parametrize("stack,category", [
    ("main;io_uring_enter_[k];io_cqring_wait_[k];schedule_[k];__schedule_[k]", "scheduler"),
    ("ring_main;shared_refill;pthread_mutex_lock", "locks (refill ring, hand-off queue)"),
    ("worker_main;__lll_lock_wait;futex_wait_[k];schedule_[k];__schedule_[k]", "locks (refill ring, hand-off queue)"),
    ("ring_main;consume;work_checksum", "work function (checksum, busy, verify)"),
    ("worker_main;consume;work_busy;spin", "work function (checksum, busy, verify)"),
    ("worker_main;consume;pattern_verify", "work function (checksum, busy, verify)"),
    ("worker_main;hand_off", "other user"),
    ("rx_thread;io_uring_enter_[k];io_recv_[k];_copy_to_iter_[k]", "copy to user"),
    ("rx_thread;io_uring_enter_[k];io_run_task_work_[k];tctx_task_work_[k]", "io_uring"),
    ("rx_thread;io_uring_enter_[k];tcp_recvmsg_[k];lock_sock_nested_[k]", "io_uring"),
    ("rx_thread;__libc_recv;tcp_recvmsg_[k];skb_release_data_[k]", "network stack"),
    ("rx_thread;do_page_fault_[k]", "other kernel"),
    ("rx_thread;[unknown]", "other user"),
])
def test_categorise(stack, category):
    assert profile.categorise(stack) == category


def _runs(topologies: list[str], **extra) -> pd.DataFrame:
    n = len(topologies)
    return pd.DataFrame(dict(run_id=range(n), topology=topologies, backend=["copy"] * n, kernel=["6.18"] * n,
                             emulated=[""] * n, status=["ok"] * n, verify_errors=[0] * n, bytes_received=[2**30] * n, **extra))


def test_receive_breakdown_shares_per_topology(golden_profile):
    _, prof = golden_profile
    two = pd.concat([prof.assign(run_id=0), prof.assign(run_id=1)]).assign(event="cpu-clock")
    out = profile.receive_breakdown(two, _runs(["single", "workers"]))
    assert set(out["topology"]) == {"single", "workers"}
    assert out.groupby("topology")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    # only receiving threads: tx0's samples are not counted
    rx_samples = prof.loc[prof["thread"] == "rx0", "samples"].sum()
    assert out.groupby("topology")["samples"].sum().tolist() == [rx_samples, rx_samples]


def test_cache_effects_says_not_supported_here(stat):
    counters = stat.assign(run_id=0, thread=stat["thread"].replace({"tx0": "rx9"}))
    out = cache.cache_effects(counters, _runs(["single"]))
    assert set(out["status"]) == {"not supported"}
    assert out["misses_per_kib_median"].isna().all()
    assert out["note"].str.contains("hot-vs-cold").all()


def test_cache_effects_counts_misses_per_kib_where_counted():
    rows = [dict(run_id=r, t=1.0, thread=th, tid=1, event="cache-misses", value=v, unit="",
                 running_pct=100.0, status="counted")
            for r, th, v in [(0, "rx0", 1000.0), (0, "rx1", 1000.0), (0, "tx0", 9e9), (1, "rx0", 4096.0)]]
    runs = _runs(["single", "single"]).assign(bytes_received=[2 * 2**20, 2**20])
    out = cache.cache_effects(pd.DataFrame(rows), runs).set_index("event")
    assert out.loc["cache-misses", "status"] == "counted"
    assert out.loc["cache-misses", "misses_per_kib_min"] == pytest.approx(2000 / 2048)
    assert out.loc["cache-misses", "misses_per_kib_max"] == pytest.approx(4.0)
    assert out.loc["LLC-load-misses", "status"] == "absent"


def test_counter_rates_per_mib(stat):
    out = cache.counter_rates(stat.assign(run_id=0), _runs(["single"]))
    sw = out.set_index("event").loc["sched:sched_switch"]
    assert sw["per_mib"] == pytest.approx(stat.loc[(stat["event"] == "sched:sched_switch"), "value"].sum() / 1024)
    assert not set(HARDWARE_EVENTS) & set(out["event"])


def test_flame_figure_one_panel_per_topology(golden_profile):
    _, prof = golden_profile
    two = pd.concat([prof.assign(run_id=0), prof.assign(run_id=1)]).merge(_runs(["shared-ifq", "single"]), on="run_id")
    fig = flame.figure(two.assign(event="cpu-clock"))
    axes = fig.get_axes()
    assert [a.get_title(loc="left").split(" — ")[0] for a in axes] == ["single", "shared-ifq"]
    assert "not emulated" in axes[0].get_title(loc="left") and "backend copy" in axes[0].get_title(loc="left")
    # the top row covers all samples: widths of depth-0 bars add up to 1
    bars = axes[0].patches
    top = [b.get_width() for b in bars if math.isclose(b.get_y() + b.get_height() / 2, 0.0, abs_tol=1e-9)]
    assert sum(top) == pytest.approx(1.0, abs=0.01)
    labels = {t.get_text() for t in axes[0].texts}
    assert "__send" in labels and not any(t.endswith("_[k]") for t in labels)


def test_flame_figure_without_samples_says_so():
    fig = flame.figure(pd.DataFrame(columns=["stack", "samples"]))
    assert "no profile samples" in fig.get_axes()[0].texts[0].get_text()


def test_mark_suppressed_checks_sched_switch_against_context_switches(stat):
    frame = stat.copy()
    first_t = frame["t"].min()
    hit = (frame["thread"] == "rx0") & (frame["event"] == "sched:sched_switch") & (frame["t"] == first_t)
    frame.loc[hit, "value"] = 0.0
    out, events = mark_suppressed(frame, set())
    assert events == ["sched:sched_switch"]
    assert out.loc[hit, "status"].tolist() == ["suppressed"] and out.loc[hit, "value"].isna().all()
    assert (out.loc[~hit, "status"] == stat.loc[~hit, "status"]).all()
    # untouched golden output: nothing suppressed
    assert mark_suppressed(stat, set())[1] == []


def test_a_small_sched_switch_shortfall_is_suppression_only_with_a_bpf_program_on_it(stat):
    frame = stat.copy()
    cs = frame[(frame["event"] == "context-switches") & (frame["status"] == "counted")]
    row = cs[cs["value"] >= 10].iloc[0]       # an interval with switches enough to fall 3 short
    hit = ((frame["tid"] == row["tid"]) & (frame["t"] == row["t"]) & (frame["event"] == "sched:sched_switch"))
    frame.loc[hit, "value"] = row["value"] - 3
    assert mark_suppressed(frame, set())[1] == []                       # read skew, not suppression
    out, events = mark_suppressed(frame, {"sched_switch"})
    assert events == ["sched:sched_switch"] and out.loc[hit, "status"].tolist() == ["suppressed"]


def test_mark_suppressed_zero_counts_of_tracepoints_with_bpf_programs(stat):
    out, events = mark_suppressed(stat, {"io_uring_task_work_run", "softirq_entry"})
    assert events == ["io_uring:io_uring_task_work_run"]  # counted zeros only; softirq_entry counted > 0
    tw = out[out["event"] == "io_uring:io_uring_task_work_run"]
    assert set(tw["status"]) <= {"suppressed", "not counted"} and "suppressed" in set(tw["status"])
    assert (out.loc[out["event"] == "irq:softirq_entry", "status"] == stat.loc[stat["event"] == "irq:softirq_entry", "status"]).all()
