"""What the suite's commands may leave behind, and the one check that they left nothing.

Every process the suite starts carries ``ZCRXPROF_TEST_SESSION=<tag>`` in its environment (set
once per session by conftest.py; children inherit it, also after a SIGKILL orphaned them), so a
leftover process is found by its environment, whoever its parent is now. The check, run around
every test (the ``nothing_left_behind`` fixture) and around the whole session, looks for:

- network namespaces and links named like zcrxprof's (``zcxp-<pid>-<n>``, ``zx<pid>n<n>h/s``, and
  the tests' own ``zcrx*``) that appeared since the snapshot and were made by one of our processes
  (the pid in the name is ours, or dead: a live process of someone else is not counted);
- BPF programs loaded since the snapshot and held by one of our processes, or by nobody (pinned, or
  attached without a process): a program another user's live process holds is not counted;
- our processes that should never outlive a test: zcrx-loadgen, perf, qemu, vng, virtme-run,
  virtiofsd and sshd.

The fault suite adds a per-test tag (``ZCRXPROF_TEST_TAG``; every process carrying it counts, any
name), the tracefs probe events, NIC settings and half-written dataset files (``.*.tmp``).
Resources the kernel frees asynchronously (a BPF program after its process exits) get a few
seconds to go before they count. The tests' /proc walkers are the library's (zcrxprof.children),
reached through here with comm/cmdline.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

# the library's /proc walkers, which the tests reach through this module
from zcrxprof.children import alive, descendants  # noqa: F401
from zcrxprof.children import children_of as children  # noqa: F401

SESSION_VAR = "ZCRXPROF_TEST_SESSION"
TAG_VAR = "ZCRXPROF_TEST_TAG"
BACKGROUND_VAR = "ZCRXPROF_TEST_BACKGROUND"   # a session-long process (the shared lab guest boot)
TRACEFS = Path("/sys/kernel/tracing")
NETNS_DIR = Path("/run/netns")
OUR_NAME = re.compile(r"^(zcxp-|zx\d|zcrx)")       # namespaces and veths of zcrxprof and the tests
CREATOR_PID = re.compile(r"^(?:zcxp-|zx)(\d+)")    # the pid zcrxprof puts into those names
WATCHED = ("zcrx-loadgen", "perf", "qemu", "vng", "virtme-run", "virtiofsd", "sshd")   # comm prefixes
RECORD_START_LOCK = Path(__file__).resolve().parents[1] / ".build" / "tests-record-start.lock"


@contextmanager
def record_starts_held() -> Iterator[None]:
    """Held by the tests that check what the next `record` start reaps (test_fault_kill9.py) and
    by the offline session's one recording (faults/conftest.py ``small_dataset``): every `record`
    start removes the namespaces of dead recordings, so a recording starting in the other session
    would take the notice the test waits for."""
    RECORD_START_LOCK.parent.mkdir(exist_ok=True)
    with open(RECORD_START_LOCK, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# ---- /proc ------------------------------------------------------------------------------------

def all_pids() -> list[int]:
    """Every pid in /proc now."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def comm(pid: int) -> str:
    """The process's command name ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> list[str]:
    """The process's argv ([] once it is gone)."""
    try:
        return [a.decode(errors="replace") for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
    except OSError:
        return []


def carries(pid: int, var: str, value: str) -> bool:
    """The process's environment holds ``var=value``."""
    try:
        return f"{var}={value}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def tagged_processes(tag: str, var: str = TAG_VAR) -> dict[int, str]:
    """Live processes (not this one) whose environment carries ``var=tag`` → their command name."""
    return {p: comm(p) for p in all_pids() if p != os.getpid() and carries(p, var, tag) and alive(p)}


def watched_processes(session: str | None = None, background: bool = True) -> dict[int, str]:
    """Live processes of this session that must not outlive a test (see WATCHED) → their name;
    ``background=False`` leaves out the session-long ones (BACKGROUND_VAR), which only the
    session's own check counts."""
    session = session or os.environ.get(SESSION_VAR, "")
    found = {}
    for p in all_pids():
        name = comm(p)
        if p != os.getpid() and name.startswith(WATCHED) and carries(p, SESSION_VAR, session) and alive(p) \
                and (background or not carries(p, BACKGROUND_VAR, "1")):
            found[p] = name
    return found


# ---- tags -------------------------------------------------------------------------------------

def new_tag() -> str:
    """A fresh tag."""
    return uuid.uuid4().hex[:12]


def tag_session() -> str:
    """Tag this process's environment for the session (once); every child inherits the tag."""
    return os.environ.setdefault(SESSION_VAR, new_tag())


def tagged_env(tag: str, **extra: str) -> dict[str, str]:
    """This process's environment plus a per-test ``tag`` (and ``extra``), for a command under test."""
    return {**os.environ, TAG_VAR: tag, **extra}


# ---- system resources -------------------------------------------------------------------------

def netns_names() -> set[str]:
    """Named network namespaces (what `ip netns list` shows)."""
    try:
        return set(os.listdir(NETNS_DIR))
    except OSError:
        return set()


def link_names() -> set[str]:
    """Links of this network namespace."""
    return set(os.listdir("/sys/class/net"))


_BPF_PROG_GET_NEXT_ID = 11
_SYS_BPF = 321            # x86_64


def bpf_prog_ids() -> set[int]:
    """Ids of the BPF programs loaded now (bpf(BPF_PROG_GET_NEXT_ID); empty without the right)."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 3)()          # start_id, next_id, open_flags
    ids: set[int] = set()
    while libc.syscall(_SYS_BPF, _BPF_PROG_GET_NEXT_ID, ctypes.byref(attr), ctypes.sizeof(attr)) == 0:
        ids.add(attr[1])
        attr[0] = attr[1]
    return ids


def bpf_prog_holders() -> dict[int, set[int]]:
    """BPF program id → pids holding a file descriptor to it (from /proc/*/fdinfo)."""
    out: dict[int, set[int]] = {}
    for pid in all_pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            except OSError:
                continue
            m = re.search(r"^prog_id:\s*(\d+)", info, re.M)
            if m:
                out.setdefault(int(m.group(1)), set()).add(pid)
    return out


def tracefs_probe_events() -> set[str]:
    """Lines of tracefs kprobe_events and uprobe_events (absent files: none)."""
    out = set()
    for name in ("kprobe_events", "uprobe_events"):
        try:
            out |= {f"{name}: {l}" for l in (TRACEFS / name).read_text().splitlines() if l.strip()}
        except OSError:
            continue
    return out


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def nic_settings() -> dict[str, str]:
    """ethtool's features, rings, channels and RSS of every physical NIC (what --setup-nic changes)."""
    out = {}
    for dev in sorted(Path("/sys/class/net").iterdir()):
        if not (dev / "device").exists():
            continue
        for opt in ("-k", "-g", "-l", "-x"):
            out[f"{dev.name} {opt}"] = _run(["ethtool", opt, dev.name])
    return out


def temp_files(directory: Path | None) -> set[str]:
    """Half-written files (``.*.tmp``) under a dataset directory."""
    if directory is None or not Path(directory).exists():
        return set()
    return {str(p) for p in Path(directory).rglob(".*.tmp")}


# ---- the check --------------------------------------------------------------------------------

@dataclass
class Snapshot:
    """What our commands could leave behind, at one moment (NIC settings only when asked)."""

    netns: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    progs: set[int] = field(default_factory=set)
    probe_events: set[str] = field(default_factory=set)
    processes: set[int] = field(default_factory=set)
    nic: dict[str, str] = field(default_factory=dict)

    @classmethod
    def take(cls, nic: bool = False) -> "Snapshot":
        """Measure now."""
        return cls(netns_names(), link_names(), bpf_prog_ids(), tracefs_probe_events(),
                   set(watched_processes()), nic_settings() if nic else {})


@dataclass(frozen=True)
class Leftover:
    """One thing left behind: its kind (network namespace, link, BPF program, process, ...)."""

    kind: str
    name: str
    pid: int | None = None          # the process to kill to remove it, if any

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


def _our_pids(pids: set[int], tag: str | None, background: bool = False) -> set[int]:
    """This process, ``pids``, and every live process carrying the session's or ``tag``'s tag;
    ``background=False`` leaves out the session-long ones (what they make, e.g. the lab's wire
    namespace, lives beside many tests and is the session check's business)."""
    session = set(tagged_processes(os.environ.get(SESSION_VAR, ""), SESSION_VAR))
    if not background:
        session -= set(tagged_processes("1", BACKGROUND_VAR))
    ours = set(pids) | {os.getpid()} | session
    return ours | set(tagged_processes(tag)) if tag else ours


def _made_by_us(name: str, ours: set[int]) -> bool:
    """A name of ours, made by one of ``ours`` or by a process now dead."""
    if not OUR_NAME.match(name):
        return False
    m = CREATOR_PID.match(name)
    if not m:
        return True                  # the tests' own names carry no pid
    pid = int(m.group(1))
    return pid in ours or not alive(pid)


def _event_of_ours(line: str, ours: set[int]) -> bool:
    """A probe event of one of ``ours`` or of a dead process (BCC names its events ..._bcc_<pid>)."""
    m = re.search(r"_bcc_(\d+)", line)
    return not m or int(m.group(1)) in ours or not alive(int(m.group(1)))


def _find(before: Snapshot, tag: str | None, datasets: Path | None, pids: set[int],
          background: bool = False) -> list[Leftover]:
    now = Snapshot.take(nic=bool(before.nic))
    procs = {p: n for p, n in watched_processes(background=background).items() if p not in before.processes}
    if tag:
        procs.update(tagged_processes(tag))
    new_netns, new_links, new_progs = now.netns - before.netns, now.links - before.links, now.progs - before.progs
    new_events = now.probe_events - before.probe_events
    ours = _our_pids(pids, tag, background) if new_netns or new_links or new_progs or new_events else set()
    found = [Leftover("network namespace", n) for n in sorted(new_netns) if _made_by_us(n, ours)]
    found += [Leftover("link", l) for l in sorted(new_links) if _made_by_us(l, ours)]
    found += [Leftover("tracefs", e) for e in sorted(new_events) if _event_of_ours(e, ours)]
    found += [Leftover("process", f"{pid} ({name})", pid) for pid, name in sorted(procs.items())]
    if new_progs:
        holders = bpf_prog_holders()
        for prog in sorted(new_progs):
            held = holders.get(prog, set())
            if not held or held & ours:
                killable = sorted(held & ours - {os.getpid()})
                found.append(Leftover("BPF program", f"{prog} (held by {sorted(held) or 'nobody: pinned or attached'})",
                                      killable[0] if killable else None))
    found += [Leftover("NIC setting changed:", k) for k, v in now.nic.items() if before.nic.get(k) != v]
    found += [Leftover("temporary file", f) for f in sorted(temp_files(datasets))]
    return found


def leftovers(before: Snapshot, tag: str | None = None, datasets: Path | None = None,
              pids: set[int] | frozenset[int] = frozenset(), settle_s: float = 5.0,
              background: bool = False) -> list[Leftover]:
    """What is new since ``before`` and ours; waits up to ``settle_s`` for asynchronous frees.

    Ours: see the module's docstring; ``tag`` adds every process carrying it, ``pids`` the
    commands a test started (their namespaces count after they died), ``datasets`` a directory
    checked for half-written files.
    """
    deadline = time.monotonic() + settle_s
    while True:
        found = _find(before, tag, datasets, set(pids), background)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def remove(found: list[Leftover], tag: str | None = None) -> None:
    """Remove what a check found (SIGKILL for processes, ``tag``'s too), so the next test starts clean."""
    pids = {f.pid for f in found if f.pid} | (set(tagged_processes(tag)) if tag else set())
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for f in found:
        if f.kind == "network namespace":
            subprocess.run(["ip", "netns", "del", f.name], capture_output=True)
        elif f.kind == "link":
            subprocess.run(["ip", "link", "del", f.name], capture_output=True)


@contextmanager
def nothing_left(settle_s: float = 5.0, background: bool = False) -> Iterator[Snapshot]:
    """Around a block: afterwards, whatever it left behind is removed and AssertionError lists it
    (``background``: the session-long processes count too)."""
    before = Snapshot.take()
    yield before
    found = leftovers(before, settle_s=settle_s, background=background)
    if found:
        remove(found)
        raise AssertionError("left behind: " + "; ".join(map(str, found)))
