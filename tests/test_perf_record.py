"""End to end: `zcrxprof record --perf --profile` on the host (copy backend, real load generator)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from zcrxprof import dataset
from zcrxprof.analysis import cache, profile
from zcrxprof.perf import flame, tool
from zcrxprof.perf.profile import top_symbols

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / "loadgen" / "zcrx-loadgen"
PERF = tool.find_perf()
# the receive path of loadgen/receiver.c: thread function, loop, CQE handler, per-buffer work
RECEIVE_FUNCTIONS = {"ring_main", "ring_loop", "handle_cqe", "consume"}

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(PERF is None, reason="perf (Debian linux-perf) is not installed")]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dataset.Dataset:
    if not LOADGEN.exists():
        subprocess.run(["make", "-s", "-C", str(ROOT / "loadgen")], check=True)
    out = tmp_path_factory.mktemp("datasets")
    proc = subprocess.run(
        [sys.executable, "-m", "zcrxprof", "record", "--topology", "single,workers", "--rings", "1",
         "--duration", "3", "--repeat", "1", "--probes", "none", "--sender", "local", "--quiet",
         "--perf", "--profile", "--perf-interval", "500", "--out", str(out), "--name", "perf-e2e"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    ds = dataset.load(out / "perf-e2e")
    assert (ds["runs"]["status"] == "ok").all(), ds["runs"][["topology", "status", "error"]]
    return ds


def test_dataset_is_valid_and_labelled(recorded):
    assert dataset.validate(recorded.path) == []
    assert recorded.metadata["versions"]["perf"] == PERF.version_text
    counters = recorded["perf_counters"]
    hw = counters[counters["event"].isin(tool.HARDWARE_EVENTS)]
    if tool.hardware_pmu(PERF.path):
        assert (hw["status"] == "counted").any()
    else:
        assert set(hw["status"]) == {"not supported"} and hw["value"].isna().all()
        assert any("<not supported>" in n for n in recorded.metadata["notes"])
        assert set(recorded["profile"]["event"]) == {"cpu-clock"}


def _proc_switches(system: pd.DataFrame, run_id: int, thread: str) -> pd.Series:
    rows = system[(system["run_id"] == run_id) & (system["source"] == "task") & (system["entity"] == thread)
                  & system["metric"].isin(["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"])]
    return rows.groupby("t")["value"].sum().sort_index()


def test_sched_switch_counts_agree_with_proc(recorded):
    counters, system, threads = recorded["perf_counters"], recorded["system"], recorded["threads"]
    checked = 0
    for (run_id, thread), rows in counters[counters["thread"].str.match(r"^(?:rx|worker)\d")].groupby(["run_id", "thread"]):
        sw = rows[rows["event"] == "sched:sched_switch"]
        # `not counted`: the thread was off CPU for the whole interval (a worker waiting for its
        # last buffer, a thread that has exited), so there was nothing to count. `suppressed` would
        # mean another process had a BPF program returning 0 on sched_switch.
        assert set(sw["status"]) <= {"counted", "not counted"}, recorded.metadata["notes"]
        assert (sw["status"] == "counted").sum() >= len(sw) - 1
        assert sw.loc[sw["status"] == "not counted", "value"].isna().all()
        perf_total = sw["value"].sum()
        start = (sw["t"] - sw["interval_s"]).min()
        end = sw["t"].max()
        proc = _proc_switches(system, run_id, thread)
        inside = proc[(proc.index >= start) & (proc.index <= end)]
        before = proc[proc.index <= start]
        final = threads[(threads["run_id"] == run_id) & (threads["thread"] == thread)].iloc[0]
        # perf's window contains [first, last] /proc sample inside it, and lies within
        # [last /proc sample before it (or thread start), thread exit (the load generator's
        # getrusage totals, equal to /proc's)]
        assert len(inside) >= 2
        assert perf_total >= inside.iloc[-1] - inside.iloc[0] - 3
        assert perf_total <= final["nvcsw"] + final["nivcsw"] - (before.iloc[-1] if len(before) else 0) + 3
        checked += 1
    assert checked >= 3  # rx0 of both runs and worker0


def test_receive_function_among_top_user_symbols(recorded):
    prof = recorded["profile"]
    rx = prof[prof["thread"] == "rx0"]
    top = top_symbols(rx, "user", n=5, inclusive=True)
    assert RECEIVE_FUNCTIONS & set(top["symbol"]), top
    leaves = top_symbols(rx, "user", n=5)
    assert "zcrx-loadgen" in set(leaves["dso"])


def test_breakdown_shows_the_hand_off_cost(recorded):
    out = profile.receive_breakdown(recorded["profile"], recorded["runs"])
    share = out.pivot_table(index="category", columns="topology", values="share", fill_value=0.0)
    locks = "locks (refill ring, hand-off queue)"
    assert locks in share.index
    # the workers topology hands every buffer over a mutex + condition variable; single never does
    assert share.loc[locks, "workers"] > share.loc[locks, "single"]
    # 2000 ns/KiB of busy work dominates the single receiver's time
    assert share.loc["work function (checksum, busy, verify)", "single"] > 0.3
    fig = flame.figure(recorded["profile"].merge(recorded["runs"][["run_id", "topology", "backend", "kernel", "emulated"]]))
    titles = [a.get_title(loc="left") for a in fig.get_axes()]
    assert [t.split(" — ")[0] for t in titles] == ["single", "workers"]
    assert all("backend copy" in t and "not emulated" in t for t in titles)
