"""What a zcrxprof process may leave behind, and a check that it left nothing.

``Snapshot.take()`` records the system resources zcrxprof creates: network namespaces, links,
BPF programs, tracefs kprobe/uprobe events, qemu processes, processes carrying a tag in their
environment, NIC settings (ethtool) and temporary files in the dataset directory.
``leftovers(before, tag)`` lists what is new since ``before`` and is ours: the machine is shared
with other engineers' tests, so a new BPF program held open by a process that is not ours is not
counted, while one held by nobody (pinned, or attached without a process) or by our processes is.
Resources the kernel frees asynchronously (BPF programs after their process exits) get a few
seconds to go before they count.

Processes are ours when their environment carries ``ZCRXPROF_FAULT_TAG=<tag>``: every child of a
command started with :func:`tagged_env` inherits it, also after it was orphaned by a SIGKILL.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

TAG_VAR = "ZCRXPROF_FAULT_TAG"
TRACEFS = Path("/sys/kernel/tracing")
NAME_PATTERN = re.compile(r"^(zcxp|zx\d|zcrx)")   # zcrxprof's namespace and veth names


def new_tag() -> str:
    """A fresh tag for one faulted command."""
    return uuid.uuid4().hex[:12]


def tagged_env(tag: str, **extra: str) -> dict[str, str]:
    """This process's environment plus the tag (and ``extra``), for a command under test."""
    return {**os.environ, TAG_VAR: tag, **extra}


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def netns_names() -> set[str]:
    """Network namespaces that exist now."""
    return {l.split()[0] for l in _run(["ip", "netns", "list"]).splitlines() if l.split()}


def link_names() -> set[str]:
    """Links of the root namespace."""
    return {l.split(":")[1].strip().split("@")[0] for l in _run(["ip", "-o", "link", "show"]).splitlines()
            if l.count(":") >= 2}


def bpf_prog_ids() -> set[int]:
    """Ids of the BPF programs loaded now (bpftool)."""
    try:
        return {p["id"] for p in json.loads(_run(["bpftool", "-j", "prog", "show"]) or "[]")}
    except ValueError:
        return set()


def tracefs_probe_events() -> set[str]:
    """Lines of tracefs kprobe_events and uprobe_events (absent files: none)."""
    out = set()
    for name in ("kprobe_events", "uprobe_events"):
        try:
            out |= {f"{name}: {l}" for l in (TRACEFS / name).read_text().splitlines() if l.strip()}
        except OSError:
            continue
    return out


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def tagged_processes(tag: str) -> dict[int, str]:
    """Live processes whose environment carries ``tag`` → their command name."""
    needle = f"{TAG_VAR}={tag}".encode()
    return {p: _comm(p) for p in _pids()
            if p != os.getpid() and needle in _environ(p).split(b"\0") and not _is_zombie(p)}


def qemu_processes() -> set[int]:
    """Live qemu processes (any owner)."""
    return {p for p in _pids() if _comm(p).startswith("qemu") and not _is_zombie(p)}


def bpf_prog_holders() -> dict[int, set[int]]:
    """BPF program id → pids holding a file descriptor to it (from /proc/*/fdinfo)."""
    out: dict[int, set[int]] = {}
    for pid in _pids():
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


@dataclass
class Snapshot:
    """The resources zcrxprof could leave behind, at one moment."""

    netns: set[str] = field(default_factory=set)
    links: set[str] = field(default_factory=set)
    progs: set[int] = field(default_factory=set)
    probe_events: set[str] = field(default_factory=set)
    qemu: set[int] = field(default_factory=set)
    nic: dict[str, str] = field(default_factory=dict)

    @classmethod
    def take(cls) -> "Snapshot":
        """Measure now."""
        return cls(netns_names(), link_names(), bpf_prog_ids(), tracefs_probe_events(), qemu_processes(),
                   nic_settings())


def _named_for(name: str, pids: set[int]) -> bool:
    """A namespace/veth name of zcrxprof's (they carry the creating pid) made by one of ``pids``."""
    m = NAME_PATTERN.match(name) and re.match(r"^(?:zcxp-|zx)(\d+)", name)
    return bool(m) and int(m.group(1)) in pids


def _find(before: Snapshot, tag: str | None, datasets: Path | None, pids: set[int]) -> list[str]:
    now = Snapshot.take()
    ours = tagged_processes(tag) if tag else {}
    mine = set(pids) | set(ours)
    found = [f"network namespace {n}" for n in sorted(now.netns - before.netns) if _named_for(n, mine)]
    found += [f"link {l}" for l in sorted(now.links - before.links) if _named_for(l, mine)]
    found += [f"tracefs {e}" for e in sorted(now.probe_events - before.probe_events)]
    found += [f"process {pid} ({comm})" for pid, comm in sorted(ours.items())]
    new_qemu = now.qemu - before.qemu
    found += [f"qemu process {pid}" for pid in sorted(new_qemu) if not tag or pid in ours]
    new_progs = now.progs - before.progs
    if new_progs:
        holders = bpf_prog_holders()
        for prog in sorted(new_progs):
            held = holders.get(prog, set())
            if not held or held & set(ours):
                found.append(f"BPF program {prog} (held by {sorted(held) or 'nobody: pinned or attached'})")
    found += [f"NIC setting changed: {k}" for k, v in now.nic.items() if before.nic.get(k) != v]
    found += [f"temporary file {f}" for f in sorted(temp_files(datasets))]
    return found


def leftovers(before: Snapshot, tag: str | None = None, datasets: Path | None = None,
              pids: set[int] | frozenset[int] = frozenset(), settle_s: float = 5.0) -> list[str]:
    """What is new since ``before`` and ours; waits up to ``settle_s`` for asynchronous frees.

    Ours: made by one of ``pids`` (the commands the test started) or by a process carrying ``tag``;
    namespaces and veths of other processes on this shared machine are not counted.
    """
    deadline = time.monotonic() + settle_s
    while True:
        found = _find(before, tag, datasets, set(pids))
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def kill_tagged(tag: str) -> None:
    """Last resort after a failed check: SIGKILL every process carrying ``tag``."""
    for pid in tagged_processes(tag):
        try:
            os.kill(pid, 9)
        except OSError:
            pass
