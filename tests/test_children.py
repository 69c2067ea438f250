"""zcrxprof.children, the one process policy: own process group, SIGINT → deadline → SIGKILL of
the whole group, death with the parent, stop signals raised or deferred in one way."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from zcrxprof import children
from zcrxprof.errors import ZcrxprofError

# ignores SIGINT, starts a grandchild in its group, prints both pids, then sleeps
STUBBORN = textwrap.dedent("""
    import signal, subprocess, sys, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kid = subprocess.Popen(["sleep", "600"])
    print(kid.pid, flush=True)
    time.sleep(600)
""")


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """The pids still alive after at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while any(children.alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if children.alive(p)]


def wait_group_gone(pgid: int, timeout: float = 10.0) -> list[int]:
    """The members of group ``pgid`` still alive after at most ``timeout`` seconds (a SIGKILLed
    process stays in the group until it has finished exiting, later on a busy machine)."""
    deadline = time.monotonic() + timeout
    while children.group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return children.group_members(pgid)


def test_a_child_leads_its_own_group_and_a_stubborn_one_is_killed_with_its_group():
    p = children.start([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True)
    grandchild = int(p.stdout.readline())
    assert os.getpgid(p.pid) == p.pid != os.getpgid(0)
    assert sorted(children.group_members(p.pid)) == sorted([p.pid, grandchild])
    assert grandchild in children.descendants(p.pid)
    _, _, killed = children.stop(p, grace_s=0.5)
    assert killed and p.returncode == -signal.SIGKILL
    assert wait_gone([grandchild]) == [] and children.group_members(p.pid) == []


OBEYS_SIGINT = "import time\ntry: time.sleep(600)\nexcept KeyboardInterrupt: print('bye')"


@pytest.mark.parametrize("ours", ["default", "ignored"])
def test_a_child_that_obeys_sigint_is_not_killed(ours):
    """Also when this process ignores SIGINT (a shell's background job does, `cmd &`): the child
    gets SIGINT's default back, so stop() reaches it instead of waiting out the grace."""
    before = signal.signal(signal.SIGINT, signal.SIG_IGN if ours == "ignored" else signal.default_int_handler)
    try:
        p = children.start([sys.executable, "-c", OBEYS_SIGINT], stdout=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, before)
    time.sleep(0.5)        # the interpreter is up and in the sleep (a SIGINT earlier only ends it sooner)
    out, _, killed = children.stop(p, grace_s=30)
    assert not killed and p.returncode in (0, -signal.SIGINT)


def test_a_command_that_cannot_start_is_one_line():
    with pytest.raises(ZcrxprofError, match="cannot start /nonexistent/x"):
        children.start(["/nonexistent/x"])


# a parent that starts `sleep` (with or without the death signal), prints its pid, then waits
PARENT = textwrap.dedent("""
    import sys, time
    from zcrxprof import children
    p = children.start(["sleep", "600"], die_with_parent=sys.argv[1] == "1")
    print(p.pid, flush=True)
    time.sleep(600)
""")


@pytest.mark.parametrize("die", [True, False], ids=["die_with_parent", "control"])
def test_die_with_parent_kills_the_child_when_the_parent_is_sigkilled(die):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, "1" if die else "0"], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    try:
        left = wait_gone([child], timeout=5 if die else 1)
        assert left == ([] if die else [child])
    finally:
        if children.alive(child):
            os.kill(child, signal.SIGKILL)


def test_guard_kills_the_whole_group_when_the_parent_dies():
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time, subprocess
        from zcrxprof import children
        g = children.start(["sh", "-c", "sleep 600 & echo $!; wait"], guard=True, stdout=subprocess.PIPE, text=True)
        print(g.pid, g.stdout.readline().strip(), flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    guard, sleeper = map(int, parent.stdout.readline().split())
    parent.kill()
    parent.wait()
    assert wait_gone([guard, sleeper]) == []
    assert wait_group_gone(guard) == []       # the shell between them too


def test_raising_signals_raises_once_and_restores():
    before = signal.getsignal(signal.SIGTERM)
    with children.raising_signals(once=True) as stop:
        with pytest.raises(children.Stopped) as exc:
            signal.raise_signal(signal.SIGTERM)
        assert exc.value.signum == signal.SIGTERM and exc.value.exit_status == 143
        assert isinstance(exc.value, KeyboardInterrupt)
        signal.raise_signal(signal.SIGHUP)          # later ones are noted, not raised
        assert stop.received == [signal.SIGTERM, signal.SIGHUP] and stop.first == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def test_unless_handled_keeps_the_callers_handler():
    with children.raising_signals(once=True) as outer:
        with children.raising_signals(unless_handled=True):
            with pytest.raises(children.Stopped):
                signal.raise_signal(signal.SIGTERM)
        assert outer.received == [signal.SIGTERM]       # the outer policy took it


def test_signals_deferred_holds_and_delivers_at_the_end():
    with children.raising_signals() as stop:
        with pytest.raises(children.Stopped) as exc:
            with children.signals_deferred():
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGINT)
                done = True                             # the step ran to its end
        assert done and exc.value.signum == signal.SIGINT and stop.received == [signal.SIGINT]


# a stop signal that arrives during start()'s fork: the hook sends it from the parent's at-fork
# callbacks and then runs Python code, where a raising handler's exception would be lost
SIGNAL_IN_FORK = textwrap.dedent("""
    import os, signal, sys
    from zcrxprof import children
    armed = []
    def noop():
        pass
    def hook():
        if armed:
            armed.clear()
            os.kill(os.getpid(), signal.SIGTERM)
            noop()
    os.register_at_fork(after_in_parent=hook)
    with children.raising_signals(once=True):
        try:
            armed.append(1)
            children.start(["sleep", "600"], die_with_parent=True)
            print("not stopped", flush=True)
        except children.Stopped as exc:
            print("stopped", exc.signum, len(children.descendants(os.getpid())), flush=True)
""")


def test_a_stop_signal_during_the_fork_of_start_stops_the_caller_and_leaves_no_child():
    """Held across the fork, it is raised once start() has the child, which is killed first."""
    res = subprocess.run([sys.executable, "-c", SIGNAL_IN_FORK], capture_output=True, text=True, timeout=30)
    assert res.stdout.split() == ["stopped", str(int(signal.SIGTERM)), "0"], (res.stdout, res.stderr)
    assert "Exception ignored" not in res.stderr, res.stderr


def test_thread_names_of_a_process():
    names = children.thread_names(os.getpid())
    assert names
    for name, tid in names.items():     # threads sharing a name: the last one read is kept
        assert (Path(f"/proc/{os.getpid()}/task/{tid}/comm")).read_text().strip() == name
    assert children.thread_names(2 ** 22 + 1) == {}


def test_a_claimed_path_is_not_abandoned_even_where_its_owners_pid_cannot_be_seen(tmp_path):
    """What a live process claims stays its own for a process in another PID namespace (which
    sees no such pid); once released, or without a claim, a dead-looking owner's path is abandoned."""
    path = tmp_path / "thing"
    path.mkdir()
    ask = ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", sys.executable, "-c",
           f"from zcrxprof import children; print(children.abandoned({str(path)!r}, {os.getpid()}))"]
    children.claim(path)
    try:
        assert not children.abandoned(path, os.getpid())          # alive here
        assert subprocess.run(ask, capture_output=True, text=True, timeout=60).stdout.split() == ["False"]
    finally:
        children.release(path)
    assert subprocess.run(ask, capture_output=True, text=True, timeout=60).stdout.split() == ["True"]
    assert not children.abandoned(tmp_path / "missing", 2 ** 22 + 1)
