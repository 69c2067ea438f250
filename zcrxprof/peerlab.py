"""Stand-in peer hosts on this machine: network namespaces running the system's OpenSSH server.

Each "host" is a network namespace joined to this one by veth (``netns.sender_netns``) with a
default route back, running Debian's ``sshd`` (``-D``, foreground) with its own host key. A
client key, an authorised-keys file, known_hosts files and an ``ssh -F`` configuration are made
in a directory the caller gives (never ``~/.ssh``). The configuration names the good hosts
``peer1``, ``peer2``, …, and three that fail the way real peers do: ``badkey`` (a key the peer
does not authorise), ``changed`` (a known_hosts entry with another host key) and ``unreachable``
(a port nobody listens on). Each sshd runs in its own mount namespace that hides this machine's
``~/.bashrc`` (sshd's sessions would run it).

Used by the tests (``tests/test_peers.py``) and the benchmark (``bench/peers.py``); nothing in
zcrxprof's commands imports it. Needs root and ``openssh-server`` (scripts/setup.sh).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from zcrxprof import children, netns
from zcrxprof.errors import ZcrxprofError

SSHD = "/usr/sbin/sshd"
START_TIMEOUT_S = 10


def available() -> bool:
    """Whether peers can be started here (root and openssh-server)."""
    return os.path.exists(SSHD) and os.geteuid() == 0


@dataclass
class PeerHosts:
    """The running peers: their namespaces, sshd listeners and the client-side files."""

    tmp: Path
    pairs: list            # netns.VethPair per peer
    sshd: list             # the sshd listener processes
    config: Path           # ssh -F file: peer1, peer2, … (good), badkey, changed, unreachable
    peer_dir: Path         # --peer-dir on the peers (the namespaces share this file system)
    private_key: str       # the client's private key (to check that no dataset holds it)

    @property
    def names(self) -> list[str]:
        """The good peers' names in the ssh configuration: peer1, peer2, …"""
        return [f"peer{i}" for i in range(1, len(self.pairs) + 1)]

    def processes(self, i: int) -> list[int]:
        """Processes in peer i's namespace besides its sshd listener."""
        out = subprocess.run(["ip", "netns", "pids", self.pairs[i].netns], capture_output=True, text=True).stdout
        return [int(p) for p in out.split() if int(p) != self.sshd[i].pid]

    def nothing_left(self, wait_s: float = 15.0) -> tuple[list, list]:
        """(processes, files) still on the peers once ``wait_s`` passed or both are empty."""
        deadline = time.monotonic() + wait_s
        while True:
            procs = [p for i in range(len(self.pairs)) for p in self.processes(i)]
            files = sorted(p.name for p in self.peer_dir.iterdir())
            if (not procs and not files) or time.monotonic() > deadline:
                return procs, files
            time.sleep(0.2)


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


def _stop_sshd(pair, proc) -> None:
    """The listener, then every process left in its namespace (sessions fork off the listener)."""
    children.stop(proc, 5, signal.SIGTERM)
    out = subprocess.run(["ip", "netns", "pids", pair.netns], capture_output=True, text=True).stdout
    for pid in out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextmanager
def peer_hosts(tmp: Path, count: int = 2) -> Iterator[PeerHosts]:
    """Start ``count`` peers (files in ``tmp``); every sshd and namespace is gone on leaving,
    whatever ends the block (an exception, Ctrl-C, a stop signal raised as ``children.Stopped``)."""
    if not available():
        raise ZcrxprofError(f"peer hosts need root and openssh-server ({SSHD})")
    tmp = Path(tmp)
    os.chmod(tmp, 0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)       # sshd's privilege-separation directory
    client = _keygen(tmp / "id_client")
    _keygen(tmp / "id_other")
    (tmp / "authorized_keys").write_text(client + "\n")
    (tmp / "empty").write_text("")
    peer_dir = tmp / "peer-tmp"
    peer_dir.mkdir()
    with ExitStack() as stack:
        pairs, sshd, known, hosts = [], [], [], []
        for i in range(1, count + 1):
            pair = stack.enter_context(netns.sender_netns())
            subprocess.run(["ip", "-n", pair.netns, "route", "add", "default", "via", pair.host_addr], check=True)
            hostkey = _keygen(tmp / f"host{i}")
            _keygen(tmp / f"host{i}-other")
            cfg = tmp / f"sshd{i}.conf"
            cfg.write_text(f"ListenAddress {pair.ns_addr}:22\nHostKey {tmp}/host{i}\nPidFile none\n"
                           f"AuthorizedKeysFile {tmp}/authorized_keys\nStrictModes no\nUsePAM no\n"
                           "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
                           "KbdInteractiveAuthentication no\nMaxSessions 50\nMaxStartups 50\n")
            # the peer's own mount namespace hides this machine's ~/.bashrc (sshd's sessions run
            # it: a test must not depend on, nor disturb, the user's shell set-up)
            hide = f'[ -e "$HOME/.bashrc" ] && mount --bind {tmp}/empty "$HOME/.bashrc"; '
            proc = children.start(["ip", "netns", "exec", pair.netns, "unshare", "-m", "--propagation", "private",
                                   "sh", "-c", hide + f"exec {SSHD} -D -e -f {cfg}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            stack.callback(_stop_sshd, pair, proc)
            pairs.append(pair)
            sshd.append(proc)
            known.append(f"{pair.ns_addr} {hostkey}")
            hosts.append(pair.ns_addr)
        (tmp / "known_hosts").write_text("\n".join(known) + "\n")
        changed = Path(f"{tmp}/host{min(2, count)}-other.pub").read_text().strip()
        (tmp / "known_hosts_changed").write_text(f"{hosts[min(2, count) - 1]} {changed}\n")
        common = ("  User root\n  IdentitiesOnly yes\n  IdentityAgent none\n  GlobalKnownHostsFile /dev/null\n"
                  "  StrictHostKeyChecking yes\n")
        entries = [(f"peer{i + 1}", addr, 22, "id_client", "known_hosts") for i, addr in enumerate(hosts)]
        entries += [("badkey", hosts[0], 22, "id_other", "known_hosts"),
                    ("changed", hosts[min(2, count) - 1], 22, "id_client", "known_hosts_changed"),
                    ("unreachable", hosts[0], 2, "id_client", "known_hosts")]
        config = tmp / "ssh_config"
        config.write_text("".join(f"Host {name}\n  HostName {addr}\n  Port {port}\n  IdentityFile {tmp}/{key}\n"
                                  f"  UserKnownHostsFile {tmp}/{kh}\n" + common
                                  for name, addr, port, key, kh in entries))
        for i in range(1, count + 1):      # wait until every sshd listens
            deadline = time.monotonic() + START_TIMEOUT_S
            while subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", f"peer{i}", "true"],
                                 capture_output=True).returncode != 0:
                if time.monotonic() > deadline:
                    raise ZcrxprofError(f"peer{i}: sshd did not accept a login within {START_TIMEOUT_S} s")
                time.sleep(0.2)
        yield PeerHosts(tmp, pairs, sshd, config, peer_dir, (tmp / "id_client").read_text())
