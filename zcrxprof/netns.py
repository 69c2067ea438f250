"""A sender network namespace joined to the root namespace by a veth pair, always removed.

Names and addresses are derived from the process id and a counter, so two recordings running at
the same time never collide. A recording killed with SIGKILL cannot remove its own: the owner's
pid in the names and its claim on each namespace (``children.claim``, held until it deletes the
namespace or dies) tell ``remove_stale()`` (called when every recording starts) which owners died.
"""
from __future__ import annotations

import atexit
import itertools
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from zcrxprof import children
from zcrxprof.errors import ZcrxprofError

PREFIX = "zcxp"            # namespace names: zcxp-<pid>-<n>; veth names: zx<pid>n<n>h / ...s
NETNS_DIR = Path("/run/netns")      # where `ip netns add` puts a named namespace's file
NETNS_NAME = re.compile(rf"{PREFIX}-(\d+)-(\d+)")
VETH_NAME = re.compile(r"zx(\d+)n(\d+)[hs]")
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
    children.release(NETNS_DIR / netns)
    _ip("link", "del", host_if, check=False)
    _ip("netns", "del", netns, check=False)
    _live.discard(netns)


def _netns_names() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines() if line.split()]


def _link_names() -> list[str]:
    return [line.split(":")[1].strip().split("@")[0]
            for line in _ip("-o", "link", "show", check=False).stdout.splitlines() if line.count(":") >= 2]


def remove_stale() -> list[str]:
    """Delete the namespaces whose owner (the pid in their name) is gone (``children.abandoned``)
    and their veths; returns the names removed. Those of live recordings stay, in whatever PID
    namespace they run."""
    removed = []
    names = _netns_names()
    for name in names:
        m = NETNS_NAME.fullmatch(name)
        if m and children.abandoned(NETNS_DIR / name, int(m.group(1))):
            _delete(name, f"zx{m.group(1)}n{m.group(2)}h")
            removed.append(name)
    for link in _link_names():       # a pair whose namespace was never made or is gone already
        m = VETH_NAME.fullmatch(link)
        if m and f"{PREFIX}-{m.group(1)}-{m.group(2)}" not in names and not children.alive(int(m.group(1))):
            _ip("link", "del", link, check=False)
            removed.append(link)
    gone = set(_netns_names()) | set(_link_names())
    return [n for n in removed if n not in gone]


def describe_removed(names: list[str]) -> str:
    """One line telling what :func:`remove_stale` removed (empty when nothing)."""
    if not names:
        return ""
    spaces = [n for n in names if NETNS_NAME.fullmatch(n)]
    veths = [n for n in names if n not in spaces]
    what = []
    if spaces:
        what.append(f"{len(spaces)} network namespace{'s' if len(spaces) > 1 else ''}")
    if veths:
        what.append(f"{len(veths)} veth{'s' if len(veths) > 1 else ''}")
    owners = {int(re.search(r"\d+", n).group()) for n in names}
    who = "a recording that died" if len(owners) == 1 else f"{len(owners)} recordings that died"
    return f"zcrxprof: removed {' and '.join(what)} left by {who} ({', '.join(names)})"


@atexit.register
def _cleanup_at_exit() -> None:
    for name in list(_live):
        m = NETNS_NAME.fullmatch(name)
        if m:
            _delete(name, f"zx{m.group(1)}n{m.group(2)}h")


@contextmanager
def sender_netns(mtu: int = 1500) -> Iterator[VethPair]:
    """Create a uniquely named namespace + veth pair with addresses; remove them on every path.

    Inside, stop signals the caller does not handle itself raise ``children.Stopped`` (main
    thread only), so a terminated process still cleans up; exceptions pass through after cleanup.
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
    _live.add(netns)
    with children.raising_signals(unless_handled=True):
        try:
            base = _pick_subnet(pid, n)
            pair = VethPair(netns, host_if, ns_if, f"{base}.1", f"{base}.2", 30, mtu)
            _ip("netns", "add", netns)
            children.claim(NETNS_DIR / netns)
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
