"""The leftover check every test runs under (tests/leftovers.py) can fail: planted leftovers — a
network namespace and a veth pair named like zcrxprof's, processes named like the load generator,
perf, QEMU, vng and sshd, a BPF program one of them holds — are each reported and removed, while
a namespace named like ours but made by someone else's live process is not counted."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

import leftovers

pytestmark = pytest.mark.root

PLANTED_NAMES = ["zcrx-loadgen", "perf", "qemu-system-x86_64", "vng", "sshd"]

# a child that loads a two-instruction socket filter (r0 = 0; exit), prints its fd and sleeps holding it
BPF_HOLDER = r"""
import ctypes, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
insns = struct.pack("<BBhiBBhi", 0xb7, 0, 0, 0, 0x95, 0, 0, 0)
buf, lic = ctypes.create_string_buffer(insns), ctypes.create_string_buffer(b"GPL")
attr = struct.pack("<IIQQIIQII16s", 1, 2, ctypes.addressof(buf), ctypes.addressof(lic), 0, 0, 0, 0, 0, b"zcrxtest_leak")
a = ctypes.create_string_buffer(attr, len(attr))
fd = libc.syscall(321, 5, a, len(attr))
print(fd, flush=True)
time.sleep(600)
"""


def plant_process(name: str, tmp_path) -> subprocess.Popen:
    """A sleeping process whose command name is ``name`` (a copy of sleep under that name)."""
    exe = tmp_path / name
    shutil.copy("/bin/sleep", exe)
    return subprocess.Popen([str(exe), "600"])


def test_planted_leftovers_are_each_reported_and_removed(tmp_path):
    me = os.getpid()
    ns, veth = f"zcxp-{me}-99", (f"zx{me}n99h", f"zx{me}n99s")
    foreign = "zcxp-1-99"                # named like ours, but pid 1 is alive and not ours
    procs: list[subprocess.Popen] = []
    progs_before = leftovers.bpf_prog_ids()
    try:
        with pytest.raises(AssertionError) as failed:
            with leftovers.nothing_left(settle_s=0.5):
                subprocess.run(["ip", "netns", "add", ns], check=True)
                subprocess.run(["ip", "netns", "add", foreign], check=True)
                subprocess.run(["ip", "link", "add", veth[0], "type", "veth", "peer", "name", veth[1]], check=True)
                procs = [plant_process(name, tmp_path) for name in PLANTED_NAMES]
                holder = subprocess.Popen([sys.executable, "-c", BPF_HOLDER], stdout=subprocess.PIPE, text=True)
                procs.append(holder)
                assert int(holder.stdout.readline()) >= 0, "the BPF program did not load"
        report = str(failed.value)
        assert f"network namespace {ns}" in report
        assert foreign not in report
        assert f"link {veth[0]}" in report and f"link {veth[1]}" in report
        for p, name in zip(procs, PLANTED_NAMES):
            assert f"process {p.pid} ({name[:15]})" in report
        assert f"held by [{holder.pid}]" in report and "BPF program" in report
        # ... and removed: the next test starts clean
        assert ns not in leftovers.netns_names() and not set(veth) & leftovers.link_names()
        for p in procs:
            assert p.wait(timeout=10) == -9
        deadline = time.monotonic() + 10           # the kernel frees the program asynchronously
        while not leftovers.bpf_prog_ids() <= progs_before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert leftovers.bpf_prog_ids() <= progs_before
    finally:
        subprocess.run(["ip", "netns", "del", foreign], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", veth[0]], capture_output=True)
        for p in procs:
            p.kill()
            p.wait()


def test_a_clean_block_passes():
    with leftovers.nothing_left(settle_s=0):
        subprocess.run(["ip", "netns", "list"], capture_output=True)


def test_descendants_walks_children_of_children():
    p = subprocess.Popen(["sh", "-c", "sleep 30 & sleep 30 & wait"])
    try:
        deadline = time.monotonic() + 10      # two children, each past its exec (a fork is still `sh`)
        while [leftovers.comm(k) for k in leftovers.descendants(p.pid)] != ["sleep", "sleep"] \
                and time.monotonic() < deadline:
            time.sleep(0.02)
        kids = leftovers.descendants(p.pid)
        assert [leftovers.comm(k) for k in kids] == ["sleep", "sleep"]
        assert set(leftovers.descendants(os.getpid())) >= {p.pid, *kids}
        assert leftovers.children(os.getpid()).count(p.pid) == 1
    finally:
        for k in leftovers.descendants(p.pid):
            os.kill(k, 9)
        p.kill()
        p.wait()


def test_a_session_long_process_counts_for_the_session_only(tmp_path):
    """The session's lab work (leftovers.BACKGROUND_VAR) outlives every test on purpose: the
    per-test check leaves it alone, the session's check reports it."""
    exe = tmp_path / "qemu-system-x86_64"
    shutil.copy("/bin/sleep", exe)
    with leftovers.nothing_left(settle_s=0.5) as before:
        proc = subprocess.Popen([str(exe), "600"], env={**os.environ, leftovers.BACKGROUND_VAR: "1"})
        # Popen returns once exec closed its pipe; the kernel renames the task a moment later
        deadline = time.monotonic() + 10
        while not leftovers.comm(proc.pid).startswith("qemu") and time.monotonic() < deadline:
            time.sleep(0.01)
    try:
        found = leftovers.leftovers(before, settle_s=0.5, background=True)
        assert [f.pid for f in found] == [proc.pid]
    finally:
        proc.kill()
        proc.wait()
