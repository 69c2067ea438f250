"""The one process policy: how zcrxprof starts, stops and watches child processes, and how it
treats the signals that stop it.

- :func:`start` runs a child in its own session and process group, so a Ctrl-C at the terminal
  reaches only zcrxprof, which then stops the child itself. ``die_with_parent`` makes the kernel
  SIGKILL the child when zcrxprof dies, however it dies (PR_SET_PDEATHSIG); ``guard`` puts a
  guard process at the head of the group that kills the whole group then (for children that fork
  their own children, such as vng and QEMU).
- :func:`stop` ends a child: a signal (SIGINT: it writes its last output) to its group, a
  deadline, then SIGKILL of the whole group. :func:`kill_group` is the SIGKILL alone.
- Stop signals (SIGINT, SIGTERM, SIGHUP) are turned into one exception, :class:`Stopped` (a
  KeyboardInterrupt carrying the signal; exit status 128 + signal), by :class:`raising_signals`;
  :func:`signals_deferred` holds them over a step that must not be cut (a table write) and
  delivers them when it ends.
- :func:`group_members`, :func:`descendants` and :func:`thread_names` read /proc.
- What a process leaves behind when it is SIGKILLed (a network namespace, a directory) is named
  after its pid, and :func:`claim` holds a lock on it while it lives: :func:`abandoned` (owner not
  alive here and no claim held) is what a later process may remove, so one in another PID
  namespace, which cannot see the owner's pid, still leaves a live owner's things alone.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from zcrxprof.errors import ZcrxprofError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1
GROUP_EXIT_WAIT_S = 10.0       # after SIGKILL of a group, how long its members get to be gone


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which (the command exits with 128 + signum)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a command ended by that signal."""
        return 128 + self.signum


# ---- starting ---------------------------------------------------------------------------------

def set_parent_death_signal(sig: int) -> None:
    """prctl(PR_SET_PDEATHSIG, sig): the kernel sends ``sig`` to this process when its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")


def _child_setup(parent: int | None, sigint_default: bool):
    """A preexec function. ``parent``: SIGKILL on the death of ``parent`` (also if it died before
    the call). ``sigint_default``: SIGINT back to its default action — an ignored SIGINT (this
    process started as a shell's background job, or by nohup) is inherited across exec, and a
    Python child then never installs its KeyboardInterrupt handler, so :func:`stop` could not
    reach it."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl if parent is not None else None    # looked up before the fork

    def setup() -> None:
        if sigint_default:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGKILL)
    return setup


def guarded(argv: Sequence[str]) -> list[str]:
    """``argv`` run under :func:`guard_main`, for a parent that is this process."""
    entry = "import sys; from zcrxprof.children import guard_main; sys.exit(guard_main(sys.argv[1:]))"
    return [sys.executable, "-c", entry, str(os.getpid()), *argv]


def guard_main(argv: list[str]) -> int:
    """The guard process: ``argv`` = [parent pid, command, its arguments...].

    It leads its own process group and runs the command in it; what the command forks stays in
    the group. When the parent dies, however it dies (SIGKILL too), the kernel sends the guard
    SIGTERM (PR_SET_PDEATHSIG) and it kills the whole group, itself included, with SIGKILL; so do
    SIGTERM, SIGHUP and SIGINT sent to it.
    """
    parent = int(argv[0])

    def kill_own_group(signum, frame) -> None:
        os.killpg(0, signal.SIGKILL)
    for sig in STOP_SIGNALS:
        signal.signal(sig, kill_own_group)
    set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != parent:       # the parent died before the death signal was armed
        kill_own_group(signal.SIGTERM, None)
    return subprocess.Popen(argv[1:]).wait()


def start(argv: Sequence[str], *, die_with_parent: bool = False, guard: bool = False,
          **popen: Any) -> subprocess.Popen:
    """Start ``argv`` in a new session and process group (its pid is the group id).

    ``die_with_parent``: the kernel SIGKILLs the child when the calling thread's process dies
    (call from the main thread: the death of the thread that started it counts). ``guard``: the
    command runs under :func:`guard_main`, which kills the whole group then (``pid`` is the
    guard's). Other keywords go to ``subprocess.Popen``. A command that cannot start is one
    ZcrxprofError line. A stop signal that arrives while it starts is raised once it has started,
    the child killed first (the caller never got it).
    """
    argv = guarded(argv) if guard else list(argv)
    sigint_ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if die_with_parent or sigint_ignored:
        popen["preexec_fn"] = _child_setup(os.getpid() if die_with_parent else None, sigint_ignored)
    # Stop signals are held across the fork: with a preexec function the interpreter runs the
    # Python at-fork hooks (logging's lock release) right after fork(), and an exception that a
    # raising handler throws there is printed as "ignored" and lost, so a SIGTERM that arrived
    # during the fork would never stop the caller. Held, it is raised here once Popen returned;
    # the child, which the caller then never sees, is killed with its group first.
    proc = None
    try:
        with signals_deferred():
            proc = subprocess.Popen(argv, start_new_session=True, **popen)
    except OSError as exc:
        raise ZcrxprofError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    except BaseException:
        if proc is not None:
            kill_group(proc)
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        raise
    return proc


# ---- stopping ---------------------------------------------------------------------------------

def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid`` (nothing if the group is gone)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_group(proc: subprocess.Popen, wait_s: float = GROUP_EXIT_WAIT_S) -> None:
    """SIGKILL the child's whole process group, reap the child, and wait (at most ``wait_s``)
    until no member of the group is left."""
    signal_group(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + wait_s
    while group_members(proc.pid) and time.monotonic() < deadline:
        signal_group(proc.pid, signal.SIGKILL)
        time.sleep(0.05)


def stop(proc: subprocess.Popen, grace_s: float, sig: int = signal.SIGINT) -> tuple[Any, Any, bool]:
    """End a child started by :func:`start`: ``sig`` to its group, up to ``grace_s`` for it to
    exit (its pipes are read meanwhile), then SIGKILL of the whole group.

    Returns (stdout, stderr, killed) — the pipes' text (None where not piped) and whether the
    deadline passed. Any exception while waiting (a second Ctrl-C) kills the group, then passes.
    """
    if proc.poll() is None:
        signal_group(proc.pid, sig)
    killed = False
    try:
        out, err = proc.communicate(timeout=grace_s)
    except subprocess.TimeoutExpired:
        killed = True
        kill_group(proc)
        out, err = proc.communicate()
    except BaseException:
        kill_group(proc)
        raise
    signal_group(proc.pid, signal.SIGKILL)      # members the leader left behind, if any
    return out, err, killed


# ---- signals ----------------------------------------------------------------------------------

def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _caller_handles(sig: int) -> bool:
    """Whether someone installed their own handler for ``sig`` (not Python's or the default)."""
    h = signal.getsignal(sig)
    return h not in (signal.SIG_DFL, signal.default_int_handler, None)


class raising_signals:
    """Context manager: inside, each of ``signals`` raises :class:`Stopped` (main thread only;
    elsewhere signals cannot be handled and nothing changes). The old handlers come back at exit.

    ``once``: only the first signal raises, later ones are noted in ``received`` and ignored, so
    the clean-up it starts can finish; :meth:`ignore_from_now` ends raising early.
    ``unless_handled``: signals the caller already handles keep the caller's handler.
    """

    def __init__(self, signals: Sequence[int] = STOP_SIGNALS, *, once: bool = False,
                 unless_handled: bool = False) -> None:
        self.signals = tuple(signals)
        self.once = once
        self.unless_handled = unless_handled
        self.received: list[int] = []
        self._quiet = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: object) -> None:
        first = not self.received
        self.received.append(signum)
        if not self._quiet and (first or not self.once):
            raise Stopped(signum)

    def ignore_from_now(self) -> None:
        """Clean-up has begun: from now on signals are noted, not raised."""
        self._quiet = True

    @property
    def first(self) -> int | None:
        """The first signal received, None if none."""
        return self.received[0] if self.received else None

    def __enter__(self) -> "raising_signals":
        if _in_main_thread():
            for sig in self.signals:
                if not (self.unless_handled and _caller_handles(sig)):
                    self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._old.clear()


@contextlib.contextmanager
def signals_deferred(signals: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """Hold ``signals`` for the duration; one that arrived is delivered at the end, to whatever
    handler is then in place (:class:`raising_signals`' raises :class:`Stopped`).

    The handlers are swapped rather than the signal mask changed: Python runs handlers in the
    main thread whichever thread the kernel picked, and a mask would not cover the threads that
    libraries (pyarrow, BCC) start, which would take the signal and cut the step anyway.
    """
    if not _in_main_thread():
        yield
        return
    held: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in signals}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        for s in dict.fromkeys(held):
            signal.raise_signal(s)


# ---- /proc walkers ----------------------------------------------------------------------------

def _stat_fields(pid: int | str) -> list[str]:
    """Fields of /proc/PID/stat after the command name (state first); empty if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != "Z"


_claims: dict[str, int] = {}        # path → the open descriptor holding the claim


def claim(path: str | Path) -> None:
    """Hold a shared lock on ``path`` (a file, a directory or a network namespace's file) until
    :func:`release` or this process's end, however it ends."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_SH)
    _claims[str(path)] = fd


def release(path: str | Path) -> None:
    """Drop the claim on ``path`` (an open descriptor would keep a network namespace alive)."""
    fd = _claims.pop(str(path), None)
    if fd is not None:
        os.close(fd)


def abandoned(path: str | Path, owner: int) -> bool:
    """Whether ``path``, made by process ``owner``, is left over: that pid is not alive here and no
    process holds a :func:`claim` on it. False when ``path`` cannot be opened."""
    if alive(owner):
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
                found.append(int(entry))
    return found


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (of all its threads)."""
    kids: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                kids += [int(k) for k in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
            except OSError:
                continue
    except OSError:
        pass
    return kids


def descendants(pid: int) -> list[int]:
    """Every descendant process of ``pid`` (children first)."""
    out, todo = [], [pid]
    while todo:
        kids = children_of(todo.pop())
        out += kids
        todo += kids
    return out


def thread_names(pid: int) -> dict[str, int]:
    """Thread name → thread id of process ``pid`` (empty if it is gone)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out[Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()] = int(tid)
        except OSError:
            continue
    return out
