"""`record --peer`: remote senders over real OpenSSH servers, each in its own network namespace.

Two namespaces joined to this one by veth are the "hosts"; each runs Debian's sshd with a host
key, an authorised client key and a known_hosts made for the module in a temporary directory
(never ~/.ssh). The recording reaches them through an ssh configuration file (--ssh-config).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import leftovers
from zcrxprof import children, dataset, netns
from zcrxprof.vocab import TOPOLOGIES

SSHD = "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(not (os.path.exists(SSHD) and os.geteuid() == 0),
                                reason="needs root and openssh-server (scripts/setup.sh)")


@dataclass
class Peers:
    tmp: Path
    pairs: list            # netns.VethPair per peer
    sshd: list             # sshd listener processes
    config: Path           # ssh -F file: peer1, peer2 (good), badkey, changed, unreachable
    peer_dir: Path         # --peer-dir on the peers (the namespaces share this file system)
    private_key: str

    def processes(self, i: int) -> list[int]:
        """Processes in peer i's namespace besides its sshd listener."""
        out = subprocess.run(["ip", "netns", "pids", self.pairs[i].netns], capture_output=True, text=True).stdout
        return [int(p) for p in out.split() if int(p) != self.sshd[i].pid]

    def nothing_left(self, wait_s: float = 15.0) -> tuple[list, list]:
        """(processes, files) still on the peers once ``wait_s`` passed or both are empty."""
        deadline = time.monotonic() + wait_s
        while True:
            procs = self.processes(0) + self.processes(1)
            files = sorted(p.name for p in self.peer_dir.iterdir())
            if (not procs and not files) or time.monotonic() > deadline:
                return procs, files
            time.sleep(0.2)


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


@pytest.fixture(scope="module")
def peers(tmp_path_factory) -> Peers:
    tmp = tmp_path_factory.mktemp("peers")
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
        for i in (1, 2):
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
        changed = Path(f"{tmp}/host2-other.pub").read_text().strip()
        (tmp / "known_hosts_changed").write_text(f"{hosts[1]} {changed}\n")
        common = (f"  User root\n  IdentitiesOnly yes\n  IdentityAgent none\n  GlobalKnownHostsFile /dev/null\n"
                  f"  StrictHostKeyChecking yes\n")
        entries = [("peer1", hosts[0], 22, "id_client", "known_hosts"),
                   ("peer2", hosts[1], 22, "id_client", "known_hosts"),
                   ("badkey", hosts[0], 22, "id_other", "known_hosts"),
                   ("changed", hosts[1], 22, "id_client", "known_hosts_changed"),
                   ("unreachable", hosts[0], 2, "id_client", "known_hosts")]
        config = tmp / "ssh_config"
        config.write_text("".join(f"Host {name}\n  HostName {addr}\n  Port {port}\n  IdentityFile {tmp}/{key}\n"
                                  f"  UserKnownHostsFile {tmp}/{kh}\n" + common
                                  for name, addr, port, key, kh in entries))
        for proc, addr in zip(sshd, hosts):      # wait until both listen
            deadline = time.monotonic() + 10
            while subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", "peer1" if addr == hosts[0]
                                  else "peer2", "true"], capture_output=True).returncode != 0:
                assert time.monotonic() < deadline, "sshd did not start"
                time.sleep(0.2)
        yield Peers(tmp, pairs, sshd, config, peer_dir, (tmp / "id_client").read_text())


def _stop_sshd(pair, proc) -> None:
    """The listener, then every process left in its namespace (sessions fork off the listener)."""
    children.stop(proc, 5, signal.SIGTERM)
    out = subprocess.run(["ip", "netns", "pids", pair.netns], capture_output=True, text=True).stdout
    for pid in out.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass


def _record(peers: Peers, out: Path, *args: str, **popen):
    argv = [sys.executable, "-m", "zcrxprof", "record", "--out", str(out), "--name", "ds",
            "--ssh-config", str(peers.config), "--peer-dir", str(peers.peer_dir), "--probes", "none",
            "--repeat", "1", "--quiet", "--backend", "copy", *args]
    return argv


def test_two_peers_send_every_byte_the_receiver_gets(peers, tmp_path):
    """The four topologies with senders on two peers: every run ok, bytes received == the sum
    of what each peer sent, no verification error, rows tagged by host and time-aligned, the
    preflight in the metadata, nothing secret in the dataset, nothing left on the peers."""
    res = subprocess.run(_record(peers, tmp_path, "--peers", "peer1,peer2", "--topology", "all",
                                 "--rings", "2", "--duration", "1"), capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr
    ds = tmp_path / "ds"
    assert dataset.validate(ds) == []
    runs = pd.read_parquet(ds / "runs.parquet")
    assert sorted(runs.topology) == sorted(TOPOLOGIES) and (runs.status == "ok").all(), runs.error.tolist()
    assert (runs.sender == "peers").all() and (runs.verify_errors == 0).all()
    threads = pd.read_parquet(ds / "threads.parquet")
    for run_id, run in runs.set_index("run_id").iterrows():
        tx = threads[(threads.run_id == run_id) & (threads.role == "tx")]
        per_peer = tx.groupby("host").bytes.sum()
        assert sorted(per_peer.index) == ["peer1", "peer2"] and (per_peer > 0).all()
        assert per_peer.sum() == run.bytes_received == run.bytes_sent
    intervals = pd.read_parquet(ds / "intervals.parquet")
    assert {"peer1", "peer2"} <= set(intervals.host)
    assert set(intervals[intervals.role == "rx"].host) == {os.uname().nodename}
    tx_t = intervals[intervals.role == "tx"].t
    assert tx_t.min() > 0 and tx_t.max() < 1 + 15           # on the receiver's time line
    meta = json.loads((ds / "metadata.json").read_text())
    assert [p["peer"] for p in meta["peers"]] == ["peer1", "peer2"]
    for p, pair in zip(meta["peers"], peers.pairs):
        assert p["driver"] == "veth" and p["nic"] == pair.ns_if and p["mtu"] == pair.mtu
        assert p["receiver_address"] == pair.host_addr and p["cpus"] > 0 and p["kernel"] == os.uname().release
        assert abs(p["clock_offset_s"]) < 0.5 and p["clock_rtt_s"] > 0
        assert "--connect" in p["sender_command"] and len(p["loadgen_sha256"]) == 64
    blob = b"".join(f.read_bytes() for f in ds.iterdir())
    key_body = peers.private_key.splitlines()[1].encode()
    assert key_body not in blob and b"id_client" not in blob and b"IdentityAgent" not in blob
    assert peers.nothing_left() == ([], [])


@pytest.mark.parametrize("peer,says", [("unreachable", "Connection refused"),
                                        ("badkey", "key login refused; set up key login first"),
                                        ("changed", "host key changed")])
def test_a_peer_that_cannot_be_used_is_one_line_and_nothing_starts(peers, tmp_path, peer, says):
    """Unreachable, a refused key or a changed host key: one line naming the peer, exit 1, no
    dataset, and nothing started or copied on the good peer listed first."""
    res = subprocess.run(_record(peers, tmp_path, "--peer", "peer1", "--peer", peer, "--topology", "single",
                                 "--duration", "1"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and f"peer {peer}" in lines[0] and says in lines[0], lines
    assert not (tmp_path / "ds").exists()
    assert peers.nothing_left() == ([], [])


def _wait_for_sender(peers: Peers, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for i in (0, 1) for p in peers.processes(i) if leftovers.comm(p) == "zcrx-loadgen"]
        if len(found) >= 2:
            return found
        time.sleep(0.1)
    raise AssertionError("the senders did not start on the peers")


def test_a_sender_killed_mid_run_fails_the_run_and_sigkill_of_record_leaves_nothing(peers, tmp_path):
    """A remote sender killed with SIGKILL: the run ends at once, failed, naming that sender.
    Then a recording killed with SIGKILL: its senders stop and its directory goes from the peers."""
    argv = _record(peers, tmp_path, "--peers", "peer1,peer2", "--topology", "single", "--duration", "20")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        os.kill(_wait_for_sender(peers)[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=15)          # far less than the 20 s the run asked for
    finally:
        proc.kill()
    runs = pd.read_parquet(tmp_path / "ds" / "runs.parquet")
    assert list(runs.status) == ["failed"] and "sender@peer" in runs.error[0], runs.error[0]
    assert "exited with status 137" in runs.error[0]
    assert peers.nothing_left() == ([], [])

    argv = _record(peers, tmp_path, "--peers", "peer1,peer2", "--topology", "single", "--duration", "30")
    for sig, name in ((signal.SIGKILL, "ds2"), (signal.SIGTERM, "ds3")):
        argv[argv.index("--name") + 1] = name
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_sender(peers)
            assert any(peers.peer_dir.iterdir())
        finally:
            proc.send_signal(sig)
            assert proc.wait(timeout=30) == (-sig if sig == signal.SIGKILL else 128 + sig)
        assert peers.nothing_left() == ([], []), signal.Signals(sig).name
