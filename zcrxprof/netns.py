"""A sender network namespace joined to the root namespace by a veth pair, always removed.

Names and addresses are derived from the process id and a counter, so two recordings running at
the same time never collide; ``remove_stale()`` deletes leftovers of processes that died.
"""
from __future__ import annotations

import atexit
import itertools
import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from zcrxprof.errors import ZcrxprofError

PREFIX = "zcxp"            # namespace names: zcxp-<pid>-<n>; veth names: zx<pid>n<n>h / ...s
_counter = itertools.count()
_live: set[str] = set()


@dataclass(frozen=True)
class VethPair:
    """A sender namespace and the veth pair joining it to the root namespace."""

    netns: str
    host_if: str       # stays in the root namespace (the receiver's side)
    ns_if: str         # inside `netns` (the sender's side)
    host_addr: str
    ns_addr: str
    prefixlen: int
    mtu: int

    def exec_prefix(self) -> list[str]:
        """Argv prefix that runs a command inside the sender namespace."""
        return ["ip", "netns", "exec", self.netns]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise ZcrxprofError("netns: the 'ip' command (iproute2) is not installed") from None
    if check and res.returncode != 0:
        msg = (res.stderr.strip().splitlines() or ["failed"])[-1]
        raise ZcrxprofError(f"netns: ip {' '.join(args)}: {msg}")
    return res


def _addresses_in_use() -> set[str]:
    out = _ip("-o", "-4", "addr", "show", check=False).stdout
    return set(re.findall(r"inet (\d+\.\d+\.\d+)\.\d+/", out))


def _pick_subnet(pid: int, n: int) -> str:
    """A 10.x.y.0/30 block (x in 100..199) unused in the root namespace, derived from pid and counter."""
    used = _addresses_in_use()
    for attempt in range(256):
        h = (pid * 7919 + n * 104729 + attempt * 15485863) % (100 * 256)
        base = f"10.{100 + h // 256}.{h % 256}"
        if base not in used:
            return base
    raise ZcrxprofError("netns: no free 10.x.y.0/30 block for the veth pair")


def _delete(netns: str, host_if: str) -> None:
    _ip("link", "del", host_if, check=False)
    _ip("netns", "del", netns, check=False)
    _live.discard(netns)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale() -> list[str]:
    """Delete namespaces and veths left by zcrxprof processes that no longer exist."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(rf"{PREFIX}-(\d+)-(\d+)", name)
        if m and not _pid_alive(int(m.group(1))):
            _delete(name, f"zx{m.group(1)}n{m.group(2)}h")
            removed.append(name)
    return removed


@atexit.register
def _cleanup_at_exit() -> None:
    for name in list(_live):
        m = re.fullmatch(rf"{PREFIX}-(\d+)-(\d+)", name)
        if m:
            _delete(name, f"zx{m.group(1)}n{m.group(2)}h")


@contextmanager
def sender_netns(mtu: int = 1500) -> Iterator[VethPair]:
    """Create a uniquely named namespace + veth pair with addresses; remove them on every path.

    SIGTERM is turned into SystemExit while inside (main thread only), so a terminated recording
    still cleans up; KeyboardInterrupt and exceptions pass through after cleanup.
    """
    if not 68 <= mtu <= 65535:
        raise ZcrxprofError(f"netns: MTU {mtu} out of range (68..65535)")
    if os.geteuid() != 0:
        raise ZcrxprofError("netns: creating network namespaces needs root")
    pid, n = os.getpid(), next(_counter)
    netns = f"{PREFIX}-{pid}-{n}"
    host_if, ns_if = f"zx{pid}n{n}h", f"zx{pid}n{n}s"
    if len(host_if) > 15:
        raise ZcrxprofError(f"netns: interface name {host_if} too long")
    old_term = None
    if threading.current_thread() is threading.main_thread():
        def _term(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)
        old_term = signal.signal(signal.SIGTERM, _term)
    _live.add(netns)
    try:
        base = _pick_subnet(pid, n)
        pair = VethPair(netns, host_if, ns_if, f"{base}.1", f"{base}.2", 30, mtu)
        _ip("netns", "add", netns)
        _ip("link", "add", host_if, "mtu", str(mtu), "type", "veth", "peer", "name", ns_if,
            "mtu", str(mtu))
        _ip("link", "set", ns_if, "netns", netns)
        _ip("addr", "add", f"{pair.host_addr}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", netns, "addr", "add", f"{pair.ns_addr}/30", "dev", ns_if)
        _ip("-n", netns, "link", "set", ns_if, "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        yield pair
    finally:
        _delete(netns, host_if)
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
