"""zcrx-loadgen at server scale (copy backend, loopback): ten thousand connections over four rings
with every byte verified, the summary's per-connection fairness and memory, and the one-line
refusals above the connection maximum and under a too low open-file limit."""
from __future__ import annotations

import resource
import subprocess

from zcrxprof import loadgen
from zcrxprof.loadgen import LoadgenProcess

MANY = 10_000
MAX_CONNECTIONS = 16_384
SENDER_THREADS = 64


def test_ten_thousand_connections_over_four_rings(loadgen_bin):
    # Receiver and sender as two processes over loopback: one process holding both ends needs
    # 2 x 10,000 sockets, more than a common container hard limit of 20,000 open files.
    rx_args = ["--topology", "shared-ifq", "--rings", "4", "--listen", "127.0.0.1:0",
               "--connections", str(MANY), "--duration", "300"]
    with LoadgenProcess(rx_args) as receiver:
        port = receiver.listening_port(timeout=30)
        sender = loadgen.run(["--connect", f"127.0.0.1:{port}", "--connections", str(MANY),
                              "--duration", "2", "--send-size", "64K"], timeout=240)
        res = receiver.wait(timeout=240)
    assert sender.returncode == 0, sender.stderr
    assert res.returncode == 0, res.stderr
    tx, s = sender.summary, res.summary
    assert tx.status == "ok" and s.status == "ok"
    assert s.connections == tx.connections == MANY
    # every byte verified, none lost
    assert s.verify_errors == 0 and s.first_verify_error is None
    assert s.bytes_received == tx.bytes_sent > 0
    # the sender shares a bounded set of threads; the receiver spreads over its four rings
    assert [t["thread"] for t in tx.threads] == [f"tx{i}" for i in range(SENDER_THREADS)]
    rx = [t for t in s.threads if t["role"] == "rx"]
    assert [t["thread"] for t in rx] == ["rx0", "rx1", "rx2", "rx3"]
    assert all(t["bytes"] > 0 for t in rx)
    # Jain's index over per-connection received bytes, J = (sum x)^2 / (n sum x^2): how fair a
    # busy machine lets the run be is not this test's business (0.40-0.98 seen), but J is bounded
    # by what the summary also reports: (mean / max)^2 <= J <= 1 and J >= 1/n
    mean = s.bytes_received / MANY
    assert s.fairness_jain is not None and (mean / s.conn_bytes_max) ** 2 - 1e-6 <= s.fairness_jain <= 1.0
    assert s.fairness_jain >= 1 / MANY
    assert 0 <= s.conn_bytes_min <= s.conn_bytes_max
    assert s.conn_bytes_max * MANY >= s.bytes_received >= s.conn_bytes_min * MANY
    assert s.rss_max_kib > 0
    assert s.rss_kib_per_connection == round(s.rss_max_kib / MANY, 6) > 0
    # a sender reports no received-bytes fairness
    assert tx.fairness_jain is None and tx.conn_bytes_min is None


def test_soft_open_file_limit_is_raised_for_loopback(loadgen_bin):
    # 600 loopback connections need ~1,200 open files; the soft limit starts at 256
    res = run_limited(["--topology", "ifq-per-ring", "--rings", "2", "--connections", "600",
                       "--duration", "0.5", "--send-size", "64K", "--json"], soft=256, hard=4096)
    assert res.returncode == 0, res.stderr
    s = loadgen.parse_lines(res.stdout.splitlines())[-1]
    assert isinstance(s, loadgen.Summary) and s.status == "ok"
    assert s.connections == 600 and s.verify_errors == 0
    assert s.bytes_received == s.bytes_sent > 0
    assert 0.0 < s.fairness_jain <= 1.0


def test_above_the_maximum_is_refused_in_one_line(loadgen_bin):
    res = subprocess.run([str(loadgen_bin), "--connections", "20000", "--json"], capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "--connections" in lines[0] and str(MAX_CONNECTIONS) in lines[0]


def test_the_maximum_fits_the_help(loadgen_bin):
    res = subprocess.run([str(loadgen_bin), "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0
    assert f"1..{MAX_CONNECTIONS}" in res.stdout and "ulimit -n" in res.stdout


def test_too_low_hard_open_file_limit_is_refused_in_one_line(loadgen_bin):
    res = run_limited(["--connections", "1000", "--json"], soft=256, hard=256)
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert "RLIMIT_NOFILE" in lines[0] and "256" in lines[0] and "ulimit -n" in lines[0]


def run_limited(args: list[str], soft: int, hard: int) -> subprocess.CompletedProcess[str]:
    """The load generator under RLIMIT_NOFILE soft/hard (as `prlimit --nofile=SOFT:HARD`)."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return subprocess.run([str(loadgen.binary()), *args], capture_output=True, text=True, timeout=120,
                          preexec_fn=limit)
