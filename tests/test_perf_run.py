"""perf stat / perf record run for real on a small named-thread workload (root, Debian's perf)."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zcrxprof.collect.plugins import RunContext
from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.perf import collector, tool
from zcrxprof.perf.profile import ProfileSession, top_symbols
from zcrxprof.perf.stat import StatSession

WORKLOAD = Path(__file__).parent / "golden" / "perf" / "workload.py"
PERF = tool.find_perf()
pytestmark = pytest.mark.skipif(PERF is None, reason="perf (Debian linux-perf) is not installed")


def _threads(pid: int) -> dict[str, int]:
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        out[(task / "comm").read_text().strip()] = int(task.name)
    return out


def _ctx_switches(pid: int, tid: int) -> int:
    status = Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines()
    return sum(int(ln.split()[1]) for ln in status if ln.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")))


@contextlib.contextmanager
def running_workload(seconds: float):
    """The golden workload (threads rx0, tx0, idle0) running for ``seconds``; always reaped."""
    proc = subprocess.Popen([sys.executable, str(WORKLOAD), str(seconds)], stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not {"rx0", "tx0", "idle0"} <= set(_threads(proc.pid)):
            assert time.monotonic() < deadline, "workload threads did not appear"
            time.sleep(0.02)
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def workload():
    with running_workload(4.0) as proc:
        yield proc


def _cpu_seconds(pid: int, tid: int) -> float:
    """utime + stime of one thread (/proc/PID/task/TID/stat)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_stat_session_counts_per_thread_consistently_with_proc(workload, tmp_path, fmt):
    """The same live session through both of perf's machine formats (`-j`, and `-x,` as a perf
    without `-j` gets it)."""
    perf = dataclasses.replace(PERF, stat_json=fmt == "json")
    threads = _threads(workload.pid)
    rx = threads["rx0"]
    events = ["task-clock", "context-switches", "sched:sched_switch", "cycles"]
    session = StatSession(perf, sorted(threads.values()), events, tmp_path / "out", interval_ms=200)
    before = _ctx_switches(workload.pid, rx)
    session.start()
    time.sleep(1.0)
    after = _ctx_switches(workload.pid, rx)
    frame = session.stop()
    assert session.proc is None
    assert set(frame["thread"]) >= {"rx0", "tx0", "idle0"}
    assert frame["t"].nunique() >= 4
    counted = frame[(frame["tid"] == rx) & (frame["event"] == "sched:sched_switch") & (frame["status"] == "counted")]
    # perf's window lies inside [before, after + stop time]: its count is at most what /proc saw
    # grow over a slightly longer window, and most of it
    perf_switches = counted["value"].sum()
    final = _ctx_switches(workload.pid, rx)
    assert 0 < perf_switches <= final - before
    assert perf_switches >= 0.5 * (after - before)
    assert set(frame.loc[frame["event"] == "cycles", "status"]) == (
        {"not supported"} if not tool.hardware_pmu(PERF.path) else {"counted"})


def test_profile_session_samples_the_receiver(workload, tmp_path):
    rx = _threads(workload.pid)["rx0"]
    session = ProfileSession(PERF, [rx], tmp_path, freq_hz=499)
    cpu0 = _cpu_seconds(workload.pid, rx)
    session.start()
    time.sleep(1.0)
    cpu1 = _cpu_seconds(workload.pid, rx)
    prof = session.stop()
    cpu2 = _cpu_seconds(workload.pid, rx)
    assert set(prof["tid"]) == {rx} and set(prof["thread"]) == {"rx0"}
    assert session.event == ("cycles" if tool.hardware_pmu(PERF.path) else "cpu-clock")
    # at most one sample per 1/499 s of the thread's CPU time (± a clock tick each side); the timer
    # loses samples when the CPU is contended (measured here: 43 for 0.5 CPU-s while a TCG guest
    # saturated both cores, ~250 when idle), so the lower bound is loose
    tick = 1 / os.sysconf("SC_CLK_TCK")
    samples = prof["samples"].sum()
    assert 0.1 * 499 * max(cpu1 - cpu0 - 2 * tick, 0) <= samples <= 1.5 * 499 * (cpu2 - cpu0 + 2 * tick)
    if samples >= 20:
        assert prof["stack"].str.contains("recv", regex=False).any()


def test_stat_session_on_vanished_thread_is_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(proc.stdout)
    session = StatSession(PERF, [gone], ["task-clock"], tmp_path / "out", interval_ms=100)
    session.start()
    time.sleep(0.3)
    with pytest.raises(ZcrxprofError) as err:
        session.stop()
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("perf stat failed: The sys_perf_event_open() syscall returned with 3 (No such process)")


def _args(**kw) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    collector.add_arguments(ap)
    argv = []
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        argv += [flag] if v is True else ["--no-" + k.replace("_", "-")] if v is False else [flag, str(v)]
    return ap.parse_args(argv)


def test_perf_is_on_by_default_and_profile_is_opt_in():
    assert [c.name for c in collector.make_collectors(_args())] == ["perf-stat"]
    assert [c.name for c in collector.make_collectors(_args(profile=True))] == ["perf-stat", "perf-profile"]
    assert [c.name for c in collector.make_collectors(_args(perf=False, profile=True))] == ["perf-profile"]
    assert collector.make_collectors(_args(perf=False)) == []


def test_perf_and_no_perf_exclude_each_other():
    ap = argparse.ArgumentParser()
    collector.add_arguments(ap)
    with pytest.raises(UsageError, match="exclude each other"):
        collector.make_collectors(ap.parse_args(["--perf", "--no-perf"]))


@pytest.mark.parametrize("kw,match", [(dict(perf_interval=5), "10..3600000 ms"),
                                      (dict(profile_freq=0), "1..100000")])
def test_bad_perf_flags_are_usage_errors(kw, match):
    with pytest.raises(UsageError, match=match):
        collector.make_collectors(_args(**kw))


def test_without_perf_installed(monkeypatch):
    monkeypatch.setenv("ZCRXPROF_PERF", "/nonexistent/perf")
    tool.find_perf.cache_clear()
    try:
        assert collector.make_collectors(_args()) == []
        with pytest.raises(ZcrxprofError, match="--profile needs perf, which is not installed"):
            collector.make_collectors(_args(profile=True))
    finally:
        monkeypatch.delenv("ZCRXPROF_PERF")
        tool.find_perf.cache_clear()


def test_collectors_through_the_plugin_protocol(workload, tmp_path):
    threads = _threads(workload.pid)
    ctx = RunContext(run_id=3, topology="single", backend="copy", pid=workload.pid,
                     tids={n: t for n, t in threads.items() if n in ("rx0", "tx0", "idle0")}, t0=time.monotonic() - 0.5,
                     duration_s=1.0, workdir=str(tmp_path), metadata={})
    cols = collector.make_collectors(_args(profile=True, perf_interval=250))
    try:
        for c in cols:
            c.start(ctx)
        time.sleep(0.8)
        tables = {}
        for c in cols:
            tables.update(c.stop(ctx))
    finally:
        for c in cols:
            c.close()
    counters, prof = tables["perf_counters"], tables["profile"]
    assert set(counters["run_id"]) == {3} and set(prof["run_id"]) == {3}
    # t is on the run's clock: perf started 0.5 s after t0 and its first interval lasts >= 0.25 s
    assert 0.75 <= counters["t"].min() < 0.75 + 1.0
    assert counters["t"].max() <= time.monotonic() - ctx.t0
    assert set(prof["thread"]) == {"rx0"}  # only receiving threads are profiled
    assert set(counters["thread"]) == {"rx0", "tx0", "idle0"}
    assert ctx.metadata["versions"]["perf"] == PERF.version_text
    if not tool.hardware_pmu(PERF.path):
        assert any("<not supported>" in n and "cache-misses" in n for n in ctx.metadata["notes"])
    assert not any(p.suffix == ".data" for p in tmp_path.rglob("*"))
    assert not list(Path("/dev/shm").glob("zcrxprof-perf-*"))  # scratch removed
    assert _no_perf_child_of_ours()


def test_stat_stop_returns_the_whole_output_while_perf_still_closes_its_counters(workload, tmp_path):
    """stop() returns once perf is closing its counters (tracepoints unregister slowly), with every
    line perf ever writes: the file read after perf exited parses to the same frame."""
    from zcrxprof.perf.stat import mark_suppressed, parse_stat
    events = [*tool.SOFTWARE_EVENTS, *tool.available_tracepoints(tool.TRACEPOINTS)[0]]
    s = StatSession(PERF, sorted(_threads(workload.pid).values()), events, tmp_path / "out", interval_ms=200)
    s.start()
    time.sleep(0.5)
    frame = s.stop()
    left = s.draining
    s.finish()
    assert s.draining is None and (left is None or left.poll() is not None)
    assert _no_perf_child_of_ours()
    after = parse_stat((tmp_path / "out").read_text(), s.fmt)
    assert len(frame) > 0 and frame.equals(after)
    assert frame["t"].nunique() >= 2          # the ticks, then the last, partial interval
    # stopped at once, while perf still starts up (and closes files): whatever it writes, it is all
    # there too, and marking suppressed counts copes with no interval at all
    s = StatSession(PERF, sorted(_threads(workload.pid).values()), events, tmp_path / "early", interval_ms=200)
    s.start()
    frame = s.stop()
    s.finish()
    early = tmp_path / "early"               # perf may not have opened it yet
    assert frame.equals(parse_stat(early.read_text() if early.exists() else "", s.fmt)) and _no_perf_child_of_ours()
    assert mark_suppressed(frame.iloc[:0], {"sched_switch"})[1] == []


def _no_perf_child_of_ours() -> bool:
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and "perf" in (stat.parent / "comm").read_text():
            return False
    return True


def test_bpf_tracepoint_program_returning_0_is_marked_suppressed(tmp_path):
    from zcrxprof.perf.stat import mark_suppressed
    from zcrxprof.probes import headers
    headers.use(headers.select())
    from bcc import BPF
    bpf = BPF(text=b"TRACEPOINT_PROBE(sched, sched_switch) { return 0; }")
    try:
        attached = tool.bpf_tracepoint_programs()
        assert os.getpid() in [p["pid"] for p in attached.get("sched_switch", [])]
        with running_workload(3.0) as proc:
            session = StatSession(PERF, [_threads(proc.pid)["rx0"]], ["context-switches", "sched:sched_switch"],
                                  tmp_path / "o", 250)
            session.start()
            time.sleep(0.8)
            frame = session.stop()
    finally:
        bpf.cleanup()
    sw = frame[frame["event"] == "sched:sched_switch"]
    assert sw["value"].sum() == 0  # what perf printed: the kernel dropped every event
    assert frame.loc[frame["event"] == "context-switches", "value"].sum() > 0
    out, events = mark_suppressed(frame, set(attached))
    assert events == ["sched:sched_switch"]
    assert set(out.loc[out["event"] == "sched:sched_switch", "status"]) == {"suppressed"}
    after = tool.bpf_tracepoint_programs().get("sched_switch", [])
    assert os.getpid() not in [p["pid"] for p in after]  # detached
