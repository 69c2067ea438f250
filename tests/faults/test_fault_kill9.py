"""SIGKILL of `zcrxprof record` itself at each phase: it cannot clean up, so its load generators
and perf must die with it (parent-death signal) and the next `record` must remove the network
namespace and veth pair it left, saying so in one line; then nothing is left: no namespace, veth,
BPF program, perf or load generator process."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

import leftovers as lo
from zcrxprof import netns
from paced import PACED
from tally import count, has_traceback
from test_fault_signals import LOADGEN, start, wait_reached

pytestmark = pytest.mark.root
PLAN = ["--topology", "single,workers", "--rings", "2", "--repeat", "1", "--duration", "1.5", "--interval", "0.5",
        *PACED]       # `midrun` (the second run's first sample) leaves 1 s of the run
NEXT = ["--duration", "1", "--repeat", "1", "--topology", "single", "--probes", "none", "--quiet", *PACED]
PHASES = ["setup", "attach", "midrun", "writing"]


def _children_named(pid: int) -> dict[int, str]:
    """Descendants of ``pid`` that are a load generator or perf → their command name."""
    found = {}
    for k in lo.descendants(pid):
        argv = lo.cmdline(k)
        if argv and (argv[0] == LOADGEN or lo.comm(k) == "perf"):
            found[k] = lo.comm(k)
    return found


@pytest.fixture(autouse=True)
def no_other_record_starting() -> None:
    """No `record` of the offline session starts (and reaps) meanwhile."""
    with lo.record_starts_held():
        yield


@pytest.mark.parametrize("phase", PHASES)
def test_sigkill_of_record_then_the_next_record_leaves_nothing(phase, tmp_path, clean):
    p, markers, _ = start(phase, tmp_path, clean, *PLAN, "--probes", "ringsched")
    wait_reached(p, markers)
    helpers = _children_named(p.pid)
    if phase == "midrun":      # the second run's load generators and its perf stat are running (the
        # first run's perf may still be closing its counters: PerfStatCollector reaps it later)
        names = sorted(helpers.values())
        assert names.count("perf") in (1, 2) and names.count("zcrx-loadgen") == 2, helpers
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=30)
    count(f"faults injected: SIGKILL of record at {phase}")
    left_ns = f"zcxp-{p.pid}-0"
    assert left_ns in lo.netns_names(), "the killed recording's namespace should still exist"

    deadline = time.monotonic() + 5           # its children die with it, nobody reaps them
    while any(lo.alive(k) for k in helpers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [k for k in helpers if lo.alive(k)] == [], helpers

    nxt = clean.run([sys.executable, "-m", "zcrxprof", "record", "--out", str(tmp_path / "next"),
                     "--name", "next", *NEXT])
    assert nxt.returncode == 0, nxt.stderr
    assert not has_traceback(nxt.stderr)
    notice = f"zcrxprof: removed 1 network namespace left by a recording that died ({left_ns})"
    assert nxt.stderr.splitlines().count(notice) == 1, nxt.stderr
    assert left_ns not in lo.netns_names()
    assert not [link for link in lo.link_names() if link.startswith(f"zx{p.pid}n")]
    assert [str(f) for f in clean.check()] == []


def test_the_next_record_keeps_a_live_recordings_namespace(tmp_path, clean):
    """Two recordings at once: the one starting second removes nothing of the first, though it runs
    in a PID namespace of its own, where the first one's pid does not exist (a container, or the
    lab's stand-in guest); nor does the reaping a record does at its start, run from here."""
    p, markers, _ = start("midrun", tmp_path, clean, *PLAN, "--probes", "none")
    wait_reached(p, markers)
    live_ns = f"zcxp-{p.pid}-0"
    assert live_ns in lo.netns_names()
    nxt = clean.run(["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", sys.executable, "-m",
                     "zcrxprof", "record", "--out", str(tmp_path / "next"), "--name", "next", *NEXT,
                     "--sender", "local"])
    assert nxt.returncode == 0, nxt.stderr
    assert "removed" not in nxt.stderr, nxt.stderr
    assert live_ns in lo.netns_names() and f"zx{p.pid}n0h" in lo.link_names()
    assert netns.remove_stale() == [] and live_ns in lo.netns_names()
    (markers / "release").touch()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert live_ns not in lo.netns_names()
    assert os.path.isdir(tmp_path / "datasets" / "ds")
