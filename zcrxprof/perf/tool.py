"""Find Debian's `perf` (linux-perf) and learn what it can do on this machine.

Everything is detected, never assumed from a version number alone: `perf stat -j` (JSON output,
perf >= 5.19), `perf data convert --to-json` (>= 5.17), which tracepoints this kernel has (tracefs),
and whether a hardware PMU exists (``cycles`` opens or prints ``<not supported>``).
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zcrxprof.errors import ZcrxprofError

TRACEFS = Path("/sys/kernel/tracing")

SOFTWARE_EVENTS = ("task-clock", "context-switches", "cpu-migrations", "page-faults")
TRACEPOINTS = ("sched:sched_switch", "sched:sched_wakeup", "irq:softirq_entry", "io_uring:*")
HARDWARE_EVENTS = ("cycles", "instructions", "cache-misses", "LLC-load-misses", "L1-dcache-load-misses")
CACHE_EVENTS = ("cache-misses", "LLC-load-misses", "L1-dcache-load-misses")


@dataclass(frozen=True)
class Perf:
    """The installed perf: its path, version and the output formats it offers."""

    path: str
    version: tuple[int, ...]
    version_text: str
    stat_json: bool
    convert_json: bool

    @property
    def stat_format(self) -> str:
        """`json` when `perf stat -j` exists, else `csv` (`-x,`)."""
        return "json" if self.stat_json else "csv"


def _help_text(path: str, *sub: str) -> str:
    """`perf SUB -h` output (perf prints usage on stderr and exits 129)."""
    proc = subprocess.run([path, *sub, "-h"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30)
    return proc.stdout + proc.stderr


@functools.lru_cache(maxsize=None)
def find_perf(path: str | None = None) -> Perf | None:
    """The perf at ``path`` (default: `$ZCRXPROF_PERF` or `perf` on PATH), or None if absent or broken."""
    exe = path or os.environ.get("ZCRXPROF_PERF") or shutil.which("perf")
    if not exe or not os.access(exe, os.X_OK):
        return None
    try:
        out = subprocess.run([exe, "--version"], stdin=subprocess.DEVNULL, capture_output=True,
                             text=True, timeout=30)
    except OSError:
        return None
    m = re.search(r"perf version (\d+(?:\.\d+)*)", out.stdout)
    if out.returncode != 0 or not m:
        return None
    version = tuple(int(x) for x in m.group(1).split("."))
    return Perf(path=exe, version=version, version_text=m.group(1),
                stat_json="--json-output" in _help_text(exe, "stat"),
                convert_json="--to-json" in _help_text(exe, "data", "convert"))


def require_perf() -> Perf:
    """The installed perf, or a one-line error saying how to get it."""
    perf = find_perf()
    if perf is None:
        raise ZcrxprofError("perf is not installed (Debian package linux-perf; scripts/setup.sh installs it)")
    return perf


def ensure_tracefs() -> bool:
    """Mount tracefs at /sys/kernel/tracing if needed (perf reads tracepoint ids there); True if usable."""
    if (TRACEFS / "events").is_dir():
        return True
    proc = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True, text=True)
    return proc.returncode == 0 and (TRACEFS / "events").is_dir()


def available_tracepoints(patterns: tuple[str, ...] = TRACEPOINTS) -> tuple[list[str], list[str]]:
    """Expand ``sys:name`` patterns (``*`` allowed in the name) against tracefs.

    Returns (events found, patterns with no match on this kernel).
    """
    found: list[str] = []
    missing: list[str] = []
    have_tracefs = ensure_tracefs()
    for pat in patterns:
        system, _, name = pat.partition(":")
        try:
            matches = sorted(p.name for p in (TRACEFS / "events" / system).glob(name)
                             if (p / "id").exists()) if have_tracefs else []
        except PermissionError:  # tracefs is root-only: nothing to count without it
            matches = []
        if matches:
            found += [f"{system}:{m}" for m in matches]
        else:
            missing.append(pat)
    return found, missing


@functools.lru_cache(maxsize=None)
def hardware_pmu(perf_path: str) -> bool:
    """True when `cycles` can be counted here (a hardware PMU), by asking perf itself."""
    proc = subprocess.run([perf_path, "stat", "-x,", "-e", "cycles", "--", "true"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    for line in proc.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("cycles"):
            return not fields[0].startswith("<")
    return False


def bpf_tracepoint_programs() -> dict[str, list[dict]]:
    """BPF programs attached to tracepoints through perf events (`bpftool perf show`), by tracepoint
    name (without its system). Such a program returning 0 makes the kernel drop the event for every
    perf counter on that tracepoint (perf_trace_run_bpf_submit); raw tracepoints do not. Empty when
    bpftool is missing."""
    exe = shutil.which("bpftool")
    if not exe:
        return {}
    proc = subprocess.run([exe, "perf", "show", "--json"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30)
    try:
        entries = json.loads(proc.stdout or "[]")
    except json.JSONDecodeError:
        return {}
    out: dict[str, list[dict]] = {}
    for e in entries:
        if e.get("fd_type") == "tracepoint" and e.get("tracepoint"):
            out.setdefault(e["tracepoint"], []).append({"pid": e.get("pid"), "prog_id": e.get("prog_id")})
    return out
