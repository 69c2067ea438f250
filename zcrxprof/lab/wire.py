"""A virtual wire between the lab guest and the host: ``lab run --wire``.

The guest gets a virtio-net NIC whose other end is a tap device on the host. The tap lives in a
network namespace of its own, ``zcxp-<pid>-lab`` (the pid of the process running :func:`lab.run`;
named like :mod:`zcrxprof.netns`'s namespaces), so the host's own interfaces and routes are never
touched and the addresses below cannot collide with anything: QEMU (hence vng) is started inside
that namespace, and so must be the host side of the traffic (``ip netns exec zcxp-<pid>-lab …``). The guest's script puts ``GUEST_ADDR`` on the
virtio-net interface and exports its name as ``ZCRXPROF_LAB_WIRE_IF`` and the address as
``ZCRXPROF_LAB_WIRE_ADDR``.

Traffic from the host reaches the guest's TCP stack through QEMU's virtio-net device model and the
guest's virtio_net driver (NAPI, GRO): a NIC receive path, unlike loopback. virtio_net has no
header split and no queue-management ops, so it can host only ``zcrx-nodev`` (the kernel copies),
never ``zcrx`` (docs/lab.md, "The lab over a virtual wire").
"""
from __future__ import annotations

import os
import shlex
import subprocess

from zcrxprof import children, netns
from zcrxprof.errors import ZcrxprofError

NETNS_SUFFIX = "-lab"             # zcxp-<pid>-lab: not a recording's zcxp-<pid>-<n>
TAP = "zlabtap0"                 # inside the namespace: no name clash with the host's devices
HOST_ADDR = "10.199.0.1"
GUEST_ADDR = "10.199.0.2"
PREFIX_LEN = 24


def netns_name(pid: int | None = None) -> str:
    """The namespace of the wire of the lab run in process ``pid`` (default: this process)."""
    return f"{netns.PREFIX}-{pid or os.getpid()}{NETNS_SUFFIX}"


def _ip(*args: str) -> None:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ZcrxprofError(f"lab run --wire: `ip {' '.join(args)}` failed: {last}"
                            + (" (the wire needs root: a network namespace and a tap device)"
                               if os.geteuid() != 0 else ""))


def remove(name: str) -> None:
    """Delete the namespace ``name`` (its tap goes with it); nothing if it is gone."""
    children.release(netns.NETNS_DIR / name)
    if (netns.NETNS_DIR / name).exists():
        subprocess.run(["ip", "netns", "del", name], capture_output=True, stdin=subprocess.DEVNULL)


def remove_stale() -> None:
    """Delete the wire namespaces of lab runs whose process died without cleaning up (SIGKILL):
    ``children.abandoned``, as a recording's sender namespaces."""
    for p in netns.NETNS_DIR.glob(f"{netns.PREFIX}-*{NETNS_SUFFIX}") if netns.NETNS_DIR.is_dir() else []:
        owner = p.name.removeprefix(f"{netns.PREFIX}-").removesuffix(NETNS_SUFFIX)
        if owner.isdigit() and children.abandoned(p, int(owner)):
            remove(p.name)


def create() -> str:
    """The host end: namespace ``netns_name()`` with lo up and a persistent tap holding HOST_ADDR,
    which QEMU (started in the namespace) attaches to. Returns the namespace's name."""
    remove_stale()
    name = netns_name()
    remove(name)
    _ip("netns", "add", name)
    children.claim(netns.NETNS_DIR / name)       # ours while we live (remove_stale)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "tuntap", "add", "dev", TAP, "mode", "tap")
        _ip("-n", name, "addr", "add", f"{HOST_ADDR}/{PREFIX_LEN}", "dev", TAP)
        _ip("-n", name, "link", "set", TAP, "up")
    except ZcrxprofError:
        remove(name)
        raise
    return name


def exec_prefix(name: str) -> list[str]:
    """The argv prefix that starts a command (vng, a sender) in the wire's namespace."""
    return ["ip", "netns", "exec", name]


def vng_args() -> list[str]:
    """vng's arguments for the guest's virtio-net NIC on the tap (no DHCP: the guest sets its address)."""
    return ["--qemu-opt=-netdev", f"--qemu-opt=tap,id=zlab0,ifname={TAP},script=no,downscript=no",
            "--qemu-opt=-device", "--qemu-opt=virtio-net-pci,netdev=zlab0"]


def guest_lines(run_dir: str) -> list[str]:
    """Guest script lines: load virtio_net, give its interface GUEST_ADDR, export its name and
    address; a line in ``<run dir>/wire.err`` (read back as the start of stderr) when it fails."""
    err = shlex.quote(f"{run_dir}/wire.err")
    return [
        f"modprobe virtio_net 2>> {err}",
        'W=; for i in /sys/class/net/*; do [ "$(basename "$(readlink -f "$i/device/driver")")" = virtio_net ] '
        '&& W=${i##*/}; done',
        f'if [ -n "$W" ] && ip addr add {GUEST_ADDR}/{PREFIX_LEN} dev "$W" 2>> {err} && ip link set "$W" up 2>> {err}; '
        f'then export ZCRXPROF_LAB_WIRE_IF="$W" ZCRXPROF_LAB_WIRE_ADDR={GUEST_ADDR}; '
        f'else echo "lab run --wire: the guest has no virtio_net interface to configure" >> {err}; fi',
    ]
