"""`record --peer`: remote senders over real OpenSSH servers, each in its own network namespace.

Two namespaces joined to this one by veth are the "hosts" (zcrxprof/peerlab.py, shared with
bench/peers.py); each runs Debian's sshd with a host key, an authorised client key and a
known_hosts made for the module in a temporary directory (never ~/.ssh). The recording reaches
them through an ssh configuration file (--ssh-config).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

import leftovers
from paced import PACED
from zcrxprof import dataset, loadgen, peerlab
from zcrxprof.analysis.senders import sender_verdict
from zcrxprof.collect import peers as remote
from zcrxprof.vocab import TOPOLOGIES

pytestmark = pytest.mark.skipif(not peerlab.available(), reason="needs root and openssh-server (scripts/setup.sh)")


@pytest.fixture(scope="module")
def peers(tmp_path_factory) -> peerlab.PeerHosts:
    with peerlab.peer_hosts(tmp_path_factory.mktemp("peers"), 2) as hosts:
        yield hosts


def _record(peers: peerlab.PeerHosts, out: Path, *args: str, **popen):
    argv = [sys.executable, "-m", "zcrxprof", "record", "--out", str(out), "--name", "ds",
            "--ssh-config", str(peers.config), "--peer-dir", str(peers.peer_dir), "--probes", "none",
            "--repeat", "1", "--quiet", "--backend", "copy", *PACED, *args]
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
    tx_iv = intervals[intervals.role == "tx"]
    tx_t = tx_iv.t
    assert tx_t.min() > 0 and tx_t.max() < 1 + 15           # on the receiver's time line
    # the senders' TCP_INFO: retransmits counted on every interval, an RTT wherever bytes went out
    assert (tx_iv.tcp_retrans >= 0).all() and (tx_iv.tcp_rtt_max_us >= tx_iv.tcp_rtt_us).all()
    assert (tx_iv[tx_iv.bytes > 0].tcp_rtt_us > 0).all(), tx_iv[["host", "bytes", "tcp_rtt_us"]]
    assert (intervals[intervals.role == "rx"].tcp_rtt_us == -1).all()
    line = sender_verdict(dataset.load(ds))
    assert "peer1: not the bottleneck" in line or "peer1: the bottleneck" in line
    assert "peer2:" in line and " retransmits, RTT median " in line, line
    meta = json.loads((ds / "metadata.json").read_text())
    assert [p["peer"] for p in meta["peers"]] == ["peer1", "peer2"]
    for p, pair in zip(meta["peers"], peers.pairs):
        assert p["driver"] == "veth" and p["nic"] == pair.ns_if and p["mtu"] == pair.mtu
        assert p["receiver_address"] == pair.host_addr and p["cpus"] > 0 and p["kernel"] == os.uname().release
        assert abs(p["clock_offset_s"]) < 0.5 and p["clock_rtt_s"] > 0
        assert "--connect" in p["sender_command"] and len(p["loadgen_sha256"]) == 64
        steps = p["setup_steps_s"]
        assert set(steps) == {"connect", "preflight", "deploy", "clock"} and min(steps.values()) > 0
        assert abs(p["setup_s"] - sum(steps.values())) < 0.01 and p["setup_s"] >= p["clock_rtt_s"]
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


def test_a_peer_of_another_architecture_or_without_a_writable_directory_is_refused(peers, tmp_path):
    """The load generator built for another architecture than the peers' (a copy with its ELF
    machine patched to aarch64, given to `record` in place of the real one), then a --peer-dir
    nobody can write (not even root: /proc): each one line naming the peer, exit 1, no dataset,
    nothing copied or started on either peer."""
    foreign = tmp_path / "zcrx-loadgen"
    image = bytearray(loadgen.binary().read_bytes())
    image[18:20] = (183).to_bytes(2, "little")                           # EM_AARCH64
    foreign.write_bytes(bytes(image))
    assert remote.elf_arch(foreign) == "aarch64"
    swap = ("import sys; from zcrxprof.collect import record; binary = sys.argv.pop(1); "
            "record.loadgen_binary = lambda: binary; from zcrxprof.cli import main; sys.exit(main())")
    argv = _record(peers, tmp_path, "--peers", "peer1,peer2", "--topology", "single", "--duration", "1")
    cases = [([sys.executable, "-c", swap, str(foreign), *argv[3:]],
              f"peer peer1: architecture {os.uname().machine}, the load generator is built for aarch64"),
             (argv[:argv.index("--peer-dir") + 1] + ["/proc"] + argv[argv.index("--peer-dir") + 2:],
              "peer peer1: no writable temporary directory in /proc (--peer-dir DIR)")]
    for cmd, says in cases:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert res.returncode == 1, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("zcrxprof: error: " + says), lines
        assert not (tmp_path / "ds").exists()
        assert peers.nothing_left() == ([], [])


def _wait_for_sender(peers: peerlab.PeerHosts, timeout: float = 20.0) -> list[int]:
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

    # a run far longer than the wait below: record ends because of the signal, not at the run's end
    argv = _record(peers, tmp_path, "--peers", "peer1,peer2", "--topology", "single", "--duration", "600")
    killed = None
    for sig, name in ((signal.SIGKILL, "ds2"), (signal.SIGTERM, "ds3")):
        argv[argv.index("--name") + 1] = name
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_sender(peers)
            assert any(peers.peer_dir.iterdir())
        finally:
            proc.send_signal(sig)
            _, err = proc.communicate(timeout=120)
        assert proc.returncode == (-sig if sig == signal.SIGKILL else 128 + sig)
        assert peers.nothing_left() == ([], []), signal.Signals(sig).name
        control = sorted(Path(tempfile.gettempdir()).glob(f"zcrxprof-ssh-{proc.pid}-*"))
        if sig == signal.SIGKILL:       # its ssh control directory stays until the next record starts
            assert len(control) == 1, control
            killed = control[0]
        else:
            assert control == [] and not killed.exists(), (control, killed)
            assert f"zcrxprof: removed 1 ssh control directory left by a recording that died ({killed.name})" \
                in err.splitlines(), err


def test_a_peers_link_taken_down_mid_run_fails_the_run_and_stops_the_recording(peers, tmp_path):
    """peer1's veth taken down while the senders send (two runs planned, each far longer than the
    wait below): ssh's keep-alives drop the connection — peer1's as the ssh configuration sets them
    (every 1 s, 3 unanswered: 4 s), peer2's by default (8 s) —, the run ends failed naming peer1's
    lost connection, the recording stops with that run on disk (one line, exit 1), and once the
    link is back up nothing is left on either peer."""
    config = tmp_path / "ssh_config"      # ssh takes the first value it reads: this block comes first
    config.write_text("Host peer1\n  ServerAliveInterval 1\n  ServerAliveCountMax 3\n" + peers.config.read_text())
    argv = _record(peers, tmp_path, "--peers", "peer1,peer2", "--topology", "single", "--duration", "60")
    argv[argv.index("--repeat") + 1] = "2"
    argv[argv.index("--ssh-config") + 1] = str(config)
    pair = peers.pairs[0]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_sender(peers)
        subprocess.run(["ip", "-n", pair.netns, "link", "set", pair.ns_if, "down"], check=True)
        out, err = proc.communicate(timeout=45)
    finally:
        proc.kill()
        subprocess.run(["ip", "-n", pair.netns, "link", "set", pair.ns_if, "up"], check=True)
        subprocess.run(["ip", "-n", pair.netns, "route", "replace", "default", "via", pair.host_addr], check=True)
    lines = err.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, err
    assert lines[0].startswith("zcrxprof: error: peer peer1: connection lost in run 1 of 2"), lines
    runs = pd.read_parquet(tmp_path / "ds" / "runs.parquet")
    assert list(runs.status) == ["failed"], runs.error.tolist()
    assert runs.error[0].startswith("peer peer1: connection lost (no answer to ssh keep-alives within 4 s)"), \
        runs.error[0]
    assert "sender@peer1 exited with status 255" in runs.error[0]
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    assert meta["complete"] is False
    assert [(p["peer"], p["lost_after_s"]) for p in meta["peers"]] == [("peer1", 4), ("peer2", 8)]
    assert peers.nothing_left(30) == ([], [])


INJECT = Path(__file__).resolve().parent / "faults" / "inject.py"


@pytest.mark.parametrize("phase,sig", [("preflight", signal.SIGINT), ("preflight", signal.SIGTERM),
                                       ("deploy", signal.SIGINT), ("deploy", signal.SIGTERM)],
                         ids=["preflight-SIGINT", "preflight-SIGTERM", "deploy-SIGINT", "deploy-SIGTERM"])
def test_ctrl_c_or_sigterm_while_the_peers_are_set_up_leaves_nothing_on_them(peers, tmp_path, phase, sig):
    """SIGINT/SIGTERM of `record` when the first peer's preflight is done (both control connections
    up) or when the load generator is copied to the first peer (both temporary directories made),
    reached by a hook (tests/faults/inject.py), not a guessed sleep: exit 128 + signal, one line
    saying so, no sender process and no file left on either peer."""
    markers = tmp_path / "markers"
    markers.mkdir()
    argv = _record(peers, tmp_path, "--peers", "peer1,peer2", "--topology", "single", "--duration", "1")
    argv = [sys.executable, str(INJECT), phase, str(markers), "--", *[a for a in argv[3:] if a != "--quiet"]]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (markers / "reached").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (markers / "reached").read_text().split()[1] == phase
        made = [p.name for d in peers.peer_dir.iterdir() for p in d.iterdir()]
        assert made == (["zcrx-loadgen"] if phase == "deploy" else []), made   # on the first peer only
        assert len(list(peers.peer_dir.iterdir())) == (2 if phase == "deploy" else 0)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    lines = err.strip().splitlines()
    said = [l for l in lines if "interrupted" in l]
    assert "Traceback" not in err and said == lines[-1:], err
    assert said[0].endswith(f"interrupted: 0 of 1 runs on disk in {tmp_path / 'ds'} (complete: false)"), said
    assert peers.nothing_left() == ([], []), f"{phase} {signal.Signals(sig).name}"


def test_zcrx_on_a_nic_that_cannot_host_it_is_one_line_before_any_peer_is_contacted(peers, tmp_path):
    """--backend zcrx on this machine's veth (no header split, no queue management: no zcrx here):
    the receiver's preflight line, exit 1, before any peer is contacted (an unreachable peer in the
    list would otherwise be the line), nothing started or copied on them, no dataset; then
    ifq-per-ring with a queue per ring and --setup-nic: its line."""
    pair = peers.pairs[0]
    base = _record(peers, tmp_path, "--peers", "peer1,unreachable", "--duration", "1", "--backend", "zcrx",
                   "--ifname", pair.host_if)
    cases = [(["--queue", "0", "--topology", "single"],
              f"record --backend zcrx: single ×1: {pair.host_if} (veth) queue 0 cannot host zcrx: "),
             (["--queues", "0,1", "--topology", "ifq-per-ring", "--rings", "2", "--setup-nic"],
              f"record --backend zcrx: ifq-per-ring ×2: {pair.host_if} (veth) ")]
    for extra, says in cases:
        res = subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1 and len(lines) == 1, res.stderr
        assert lines[0].startswith("zcrxprof: error: " + says), lines
        assert "io_uring_register(ZCRX_IFQ)" in lines[0] or "out of range" in lines[0], lines
        assert not (tmp_path / "ds").exists()
        assert peers.nothing_left() == ([], [])
