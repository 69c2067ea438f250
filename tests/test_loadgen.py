"""zcrx-loadgen (copy backend) run for real: four topologies over loopback and over veth between
network namespaces, verification, hand-off, signals and usage errors."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from zcrxprof import loadgen
from zcrxprof.loadgen import LoadgenProcess, Summary

pytestmark = pytest.mark.root

TOPO_ARGS = {
    "single": [],
    "workers": ["--workers", "2"],
    "ifq-per-ring": ["--rings", "2", "--connections", "4"],
    "shared-ifq": ["--rings", "2", "--connections", "4"],
}
SHORT = ["--duration", "0.4", "--interval", "0.2", "--send-size", "256K"]


def rx_totals(s: Summary, key: str) -> int:
    return sum(t[key] for t in s.threads if t["role"] == "rx")


def check_clean_transfer(res: loadgen.LoadgenResult, topology: str, rings: int, cpus: int | None = None) -> None:
    s = res.summary
    assert res.returncode == 0, res.stderr
    assert s.status == "ok"
    assert s.bytes_sent > 0
    assert s.bytes_received == s.bytes_sent
    assert s.verify_errors == 0 and s.first_verify_error is None
    rx = [t for t in s.threads if t["role"] == "rx"]
    assert [t["thread"] for t in rx] == [f"rx{i}" for i in range(rings)]
    assert all(t["completions"] > 0 for t in rx)
    # interval records are deltas: per thread they add up to the summary's totals
    for t in s.threads:
        got = sum(i.bytes for i in res.intervals if i.thread == t["thread"])
        assert got == t["bytes"], t["thread"]
    assert s.topology == topology and s.backend == "copy"
    assert s.emulated == (["shared-ifq"] if topology == "shared-ifq" else [])
    assert all(r.emulated == s.emulated for r in res.records)
    # every record says whether the rings (and workers) outnumber the CPUs this process may use
    cpus = cpus or len(os.sched_getaffinity(0))
    assert {(r.cpus_available, r.rings_share_cores) for r in res.records} == {(cpus, rings + s.workers > cpus)}


@pytest.mark.parametrize("topology", list(TOPO_ARGS))
def test_topology_over_loopback(loadgen_bin, topology):
    res = loadgen.run(["--topology", topology, *TOPO_ARGS[topology], *SHORT], timeout=60)
    rings = 2 if topology in ("ifq-per-ring", "shared-ifq") else 1
    check_clean_transfer(res, topology, rings)
    regs = res.registrations
    assert [r.ring for r in regs] == list(range(rings))
    ifqs = {r.ifq for r in regs}
    assert ifqs == ({0} if topology == "shared-ifq" else set(range(rings)))
    assert len(res.summary.threads) == rings + (2 if topology == "workers" else 0) + res.summary.connections
    # the kernel receives into the buffer given back last, but where rings share one refill queue
    p = res.summary.params
    assert (p["reuse"], p["reuse_rule"]) == (("fifo", "shared-ifq: one refill queue, in order")
                                             if topology == "shared-ifq" else
                                             ("lifo", "default: the buffer given back last first")), p


@pytest.mark.parametrize("topology", list(TOPO_ARGS))
def test_topology_over_veth_between_namespaces(loadgen_bin, sender_ns, topology):
    conns = 4 if topology in ("ifq-per-ring", "shared-ifq") else 1
    rx_args = ["--topology", topology, *TOPO_ARGS[topology], "--listen", f"{sender_ns.host_addr}:0",
               "--connections", str(conns), "--duration", "30"]
    with LoadgenProcess(rx_args) as receiver:
        port = receiver.listening_port()
        sender = loadgen.run(["--connect", f"{sender_ns.host_addr}:{port}", "--connections", str(conns),
                              *SHORT], netns=sender_ns.netns, timeout=60)
        res = receiver.wait(timeout=60)
    assert sender.returncode == 0, sender.stderr
    assert sender.summary.mode == "connect" and sender.summary.bytes_sent > 0
    assert res.returncode == 0, res.stderr
    s = res.summary
    assert s.mode == "listen" and s.status == "ok"
    assert s.bytes_received == sender.summary.bytes_sent
    assert s.verify_errors == 0
    assert all(t["completions"] > 0 for t in s.threads if t["role"] == "rx")
    assert all(t["role"] != "tx" for t in s.threads)


def test_rings_on_fewer_cpus_say_they_share_cores_in_every_record(loadgen_bin):
    cpu = str(min(os.sched_getaffinity(0)))
    one_cpu = ["taskset", "-c", cpu, str(loadgen_bin)]
    four = LoadgenProcess.from_argv([*one_cpu, "--topology", "shared-ifq", "--rings", "4", *SHORT, "--json"]).wait(60)
    check_clean_transfer(four, "shared-ifq", 4, cpus=1)
    kinds = Counter(r.type for r in four.records)
    assert kinds["registration"] == 4 and kinds["interval"] >= 8 and kinds["summary"] == 1
    assert all(r.cpus_available == 1 and r.rings_share_cores is True for r in four.records)
    assert four.summary.shared_cores_note == "4 rings on 1 CPU: rings share cores"
    # as many rings as CPUs: they do not share
    single = LoadgenProcess.from_argv([*one_cpu, "--topology", "single", *SHORT, "--json"]).wait(60)
    assert single.records and all(r.cpus_available == 1 and r.rings_share_cores is False for r in single.records)
    assert single.summary.shared_cores_note == ""
    # --rx-cpus counts instead of the affinity; the table says it before the rows and in the summary
    table = subprocess.run([str(loadgen_bin), "--topology", "workers", "--workers", "2", "--rx-cpus", cpu, *SHORT],
                           capture_output=True, text=True, timeout=60)
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("1 ring and 2 workers on 1 CPU: rings and workers share cores") == 2


def test_injected_corruption_is_caught_with_connection_and_offset(loadgen_bin):
    res = loadgen.run(["--topology", "single", "--test-corrupt-offset", "300001", *SHORT], timeout=60)
    assert res.returncode == 1
    s = res.summary
    assert s.verify_errors == 1
    assert s.first_verify_error == {"connection": 0, "offset": 300001}
    ev = [e for e in res.events if e.event == "verify_error"]
    assert len(ev) == 1 and ev[0].extra["offset"] == 300001 and ev[0].extra["connection"] == 0
    assert ev[0].extra["expected"] != ev[0].extra["got"]
    assert "connection 0" in res.stderr and "offset 300001" in res.stderr


def test_verification_off_ignores_corruption(loadgen_bin):
    res = loadgen.run(["--test-corrupt-offset", "1000", "--no-verify", *SHORT], timeout=60)
    assert res.returncode == 0 and res.summary.verify_errors == 0
    assert res.summary.bytes_received == res.summary.bytes_sent


def test_workers_hand_off_and_switch_context_single_does_not(loadgen_bin):
    paced = ["--rate", "2", *SHORT]
    w = loadgen.run(["--topology", "workers", "--workers", "2", *paced], timeout=60).summary
    workers = [t for t in w.threads if t["role"] == "worker"]
    assert [t["thread"] for t in workers] == ["worker0", "worker1"]
    # on copy, rx0 gives every handed-back buffer to the provided-buffer ring itself
    assert w.params["workers_return"] == "rx0"
    rx = rx_totals(w, "bufs_returned")
    assert rx >= rx_totals(w, "completions") > 0      # a bundled completion carries several
    # every buffer rx0 received was consumed by a worker and handed back
    assert sum(t["completions"] for t in workers) == rx
    assert sum(t["bytes"] for t in workers) == w.bytes_received
    assert sum(t["bufs_returned"] for t in workers) == rx
    assert sum(t["nvcsw"] for t in workers) > 0            # idle workers sleep and are woken
    # no --bundle: the buffers that fill an eighth of the receiving CPU's L2 (1..16), rule recorded
    rule = w.params["bundle_rule"]
    m = re.match(r"L2 (\d+) KiB of CPU \d+ / 8 / 64 KiB buffers$", rule)
    assert m or rule == "L2 unknown: 256 KiB / 64 KiB buffers", rule
    assert w.params["bundle"] == max(1, min(16, (int(m.group(1)) if m else 2048) // 8 // 64)), w.params

    s = loadgen.run(["--topology", "single", "--bundle", "1", *paced], timeout=60).summary
    assert {t["role"] for t in s.threads} == {"rx", "tx"}
    rx0 = next(t for t in s.threads if t["thread"] == "rx0")
    assert rx0["bufs_returned"] == rx0["completions"] > 0  # consumed and returned in rx0 itself


@pytest.mark.parametrize("topology", list(TOPO_ARGS))
def test_bundled_receives_deliver_every_byte_in_order(loadgen_bin, topology):
    # 4 KiB buffers, 16 to a pool: bundles wrap the buffer ring and often run it dry (ENOBUFS)
    res = loadgen.run(["--topology", topology, *TOPO_ARGS[topology], "--buf-size", "4K", "--bufs", "16",
                       "--bundle", "4", *SHORT], timeout=60)
    check_clean_transfer(res, topology, 2 if topology in ("ifq-per-ring", "shared-ifq") else 1)
    s = res.summary
    assert s.params["bundle"] == 4                  # Linux 6.18: bundles with the per-receive cap
    cqes, bufs, nbytes = (rx_totals(s, k) for k in ("completions", "bufs_returned", "bytes"))
    assert cqes < bufs                              # completions carried several buffers ...
    assert nbytes <= cqes * 4 * 4096                # ... never more than --bundle of them
    # every buffer of a completion is full but its last
    assert nbytes / 4096 <= bufs <= nbytes / 4096 + cqes


def test_bundle_1_gives_one_buffer_per_completion(loadgen_bin):
    # a small pool, given back most recent first (lifo): often dry, every byte still in order
    s = loadgen.run(["--bundle", "1", "--buf-size", "4K", "--bufs", "16", *SHORT], timeout=60).summary
    assert s.params["bundle"] == 1 and s.params["bundle_rule"] == "--bundle 1"
    assert (s.params["bufs"], s.params["reuse"]) == (16, "lifo")        # an explicit --bufs wins
    assert s.verify_errors == 0 and s.bytes_received == s.bytes_sent
    assert rx_totals(s, "completions") == rx_totals(s, "bufs_returned") >= s.bytes_received / 4096
    # --reuse fifo: every buffer of the pool in turn, recorded as asked
    f = loadgen.run(["--reuse", "fifo", "--buf-size", "4K", "--bufs", "16", *SHORT], timeout=60).summary
    assert (f.params["reuse"], f.params["reuse_rule"], f.params["bufs"]) == ("fifo", "--reuse fifo", 16)
    assert f.verify_errors == 0 and f.bytes_received == f.bytes_sent > 0


def test_lifo_receives_into_the_buffers_given_back_last_and_fifo_cycles_the_pool(loadgen_bin):
    """A slow stream of one-buffer sends (~60 over the run), the ring woken by each: lifo puts each
    buffer back in front of the ring, so the kernel receives into the same one or two again; fifo
    goes round all 32. lifo would reach 16 only if one wake found half a second of sends waiting."""
    used = {}
    for reuse in ("lifo", "fifo"):
        s = loadgen.run(["--reuse", reuse, "--rate", "0.001", "--duration", "2", "--send-size", "4K",
                         "--buf-size", "4K", "--bufs", "32", "--wait-batch", "1"], timeout=60).summary
        rx0 = next(t for t in s.threads if t["role"] == "rx")
        assert s.verify_errors == 0 and rx0["completions"] > 32, rx0
        used[reuse] = rx0["buffers_used"]
    assert 1 <= used["lifo"] <= 16 and used["fifo"] == 32, used


def test_paced_sender_keeps_the_rate(loadgen_bin):
    s = loadgen.run(["--rate", "0.2", "--duration", "1", "--send-size", "64K"], timeout=60).summary
    gbit = s.bytes_sent * 8 / 1e9 / s.duration_s
    assert 0.1 < gbit <= 0.2 * 1.05                 # never faster than asked


def _switches_per_gb(extra: list[str]) -> tuple[float, dict]:
    s = loadgen.run(["--work", "none", "--no-verify", "--send-size", "1M", "--duration", "1",
                     "--rx-cpus", "0", "--tx-cpus", "1", *extra], timeout=60).summary
    rx0 = next(t for t in s.threads if t["thread"] == "rx0")
    return rx0["nvcsw"] / (rx0["bytes"] / 1e9), s.params


def test_wait_batch_lets_the_ring_sleep_less_often(loadgen_bin):
    release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    one, p1 = _switches_per_gb(["--wait-batch", "1"])
    batched, p16 = _switches_per_gb(["--wait-batch", "16", "--wait-min-us", "200"])
    assert p1["wait_batch"] == 1 and p16["wait_min_us"] == 200
    if release < (6, 12):           # no IORING_FEAT_MIN_TIMEOUT: the ring waits for one
        assert p16["wait_batch"] == 1
        return
    assert p16["wait_batch"] == 16
    # one wake-up per 16 completions instead of one per completion (measured: ~5x fewer)
    assert batched < one * 0.7, (batched, one)


def ring_waits(trace: Path, tid: int) -> Counter:
    """The waits of thread ``tid`` in an strace of io_uring_enter: completions asked for → count."""
    waits: Counter = Counter()
    for line in trace.read_text().splitlines():
        m = re.match(r"(\d+)\s+io_uring_enter\(\d+, \d+, (\d+), ([A-Z_|]+)", line)
        if m and int(m.group(1)) == tid and "IORING_ENTER_GETEVENTS" in m.group(3):
            waits[int(m.group(2))] += 1
    return waits


def test_a_saturated_ring_never_idles_for_its_batch(loadgen_bin, tmp_path):
    """2000 ns/KiB of work: the ring is busy far longer than --wait-min-us between waits and its
    data waits in the socket; with bundles it holds fewer completions than --wait-batch, which must
    not make it sleep out the minimum wait for a batch. Counted where the ring asks the kernel,
    whoever else runs: the waits in which it asked for more than one completion. Measured (2 s,
    with and without a `stress-ng --cpu 1` neighbour): 0 of ~400-800 waits; the receiver that
    counted the minimum from the sleep's start asked for its batch in every wait (173 of 173), and
    its voluntary switches (1.5-5.5 a second) could not be told from this one's under the neighbour
    (0.5-3.5)."""
    trace = tmp_path / "trace"
    res = subprocess.run(["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=io_uring_enter", "-o", str(trace),
                          str(loadgen_bin), "--json", "--work-ns-per-kib", "2000", "--duration", "2",
                          "--rx-cpus", "0", "--tx-cpus", "1", "--wait-batch", "8", "--wait-min-us", "100",
                          "--bundle", "16"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    s = loadgen.parse_lines(res.stdout.splitlines())[-1]
    assert isinstance(s, Summary) and s.status == "ok"
    rx0 = next(t for t in s.threads if t["thread"] == "rx0")
    assert s.params["bundle"] == 16 and rx0["bufs_returned"] > 2 * rx0["completions"]
    waits = ring_waits(trace, rx0["tid"])
    batch_waits = sum(n for asked, n in waits.items() if asked > 1)
    assert sum(waits.values()) >= 50, waits                        # the trace saw the ring's waits
    # a wake with nothing to do (an interval tick) may be followed by one batch wait
    assert batch_waits <= 0.05 * sum(waits.values()), waits


def test_wait_batch_never_holds_back_a_trickle(loadgen_bin):
    # 4 KiB every ~3 ms: a batch of 64 never fills, the minimum wait lets each one through
    res = loadgen.run(["--rate", "0.01", "--send-size", "4K", "--duration", "1", "--interval", "0.25",
                       "--wait-batch", "64", "--wait-min-us", "500"], timeout=60)
    s = res.summary
    assert res.returncode == 0 and s.status == "ok"
    assert s.bytes_received == s.bytes_sent > 0 and s.verify_errors == 0
    rx0 = next(t for t in s.threads if t["thread"] == "rx0")
    # each lone completion is delivered after the minimum wait (a wake-up each), not held until
    # the interval tick's timeout (which would gather ~15 sends per wake-up: ~8 wake-ups in all).
    # ~300 sends; beside a CPU hog queued sends arrive together (74 completions seen), so the
    # count only has to leave the held-back case no way to pass the ratio
    assert rx0["completions"] > 30 and rx0["nvcsw"] >= 0.5 * rx0["completions"], rx0


@pytest.mark.parametrize("args", [
    ["--bogus"], ["--rings"], ["--topology", "star"], ["--rings", "0"],
    ["--topology", "single", "--rings", "2"], ["--topology", "shared-ifq", "--workers", "2"],
    ["--send-size", "12Q"], ["--rx-cpus", "4096"], ["--duration", "-1"], ["--listen", "nowhere"],
    ["--listen", "127.0.0.1:1", "--connect", "127.0.0.1:2"], ["--backend", "rdma"],
    ["--connections", "1", "--topology", "ifq-per-ring", "--rings", "2"], ["stray"],
    ["--listen", "127.0.0.1:0", "--test-corrupt-offset", "5"], ["--wait-batch", "0"],
    ["--wait-min-us", "soon"], ["--bundle", "0"], ["--bundle", "4097"], ["--connect", "localhost:5201"],
])
def test_bad_flags_one_line_exit_2(loadgen_bin, args):
    res = subprocess.run([str(loadgen_bin), *args], capture_output=True, text=True, timeout=20)
    assert res.returncode == 2                      # not a signal (-11, -6: no core dump)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("zcrx-loadgen: ")
    assert res.stdout == ""


def test_the_binary_is_static_and_peers_refuse_a_dynamic_one(loadgen_bin):
    """No program interpreter (record --peer copies it to hosts with other libraries); a dynamically
    linked one is refused in one line."""
    from zcrxprof.collect import peers
    assert peers.elf_interpreter(loadgen_bin) is None
    with pytest.raises(peers.ZcrxprofError, match=r"^/bin/sh is dynamically linked \(interpreter /lib"):
        peers.check_static("/bin/sh")


def test_help_states_the_shared_ifq_emulation(loadgen_bin):
    res = subprocess.run([str(loadgen_bin), "--help"], capture_output=True, text=True, timeout=20)
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    assert "EMULATES ifq sharing" in text and 'emulated: ["shared-ifq"]' in text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_with_a_summary(loadgen_bin, sig):
    with LoadgenProcess(["--topology", "ifq-per-ring", "--duration", "120", "--interval", "0.1",
                         "--send-size", "256K"]) as p:
        flowing = p.wait_for(lambda r: isinstance(r, loadgen.Interval) and r.role == "rx" and r.bytes > 0,
                             timeout=60)
        assert flowing is not None, "no data flowed"
        t0 = time.monotonic()
        p.stop(sig)
        res = p.wait(timeout=30)
    assert time.monotonic() - t0 < 10
    assert res.returncode == 0
    s = res.summary
    assert s.status == "interrupted"
    assert s.bytes_received == s.bytes_sent > 0 and s.verify_errors == 0


def test_threads_carry_their_names_in_the_kernel(loadgen_bin):
    with LoadgenProcess(["--topology", "workers", "--workers", "2", "--duration", "120",
                         "--interval", "0.1", "--rate", "1"]) as p:
        first = p.wait_for(lambda r: isinstance(r, loadgen.Interval) and r.thread == "rx0", timeout=60)
        assert first is not None
        comms = {int(t.name): (t / "comm").read_text().strip()
                 for t in Path(f"/proc/{p.pid}/task").iterdir()}
        p.stop(signal.SIGINT)
        res = p.wait(timeout=30)
    assert {"rx0", "worker0", "worker1", "tx0"} <= set(comms.values())
    for t in res.summary.threads:               # the tids the records name are those threads
        assert comms[t["tid"]] == t["thread"]


def test_listen_counts_a_foreign_clients_bytes_exactly(loadgen_bin):
    payload = os.urandom(777_777)
    with LoadgenProcess(["--listen", "127.0.0.1:0", "--no-verify", "--connections", "2"]) as p:
        port = p.listening_port()
        for part in (payload, payload[:1234]):
            with socket.create_connection(("127.0.0.1", port)) as c:
                c.sendall(part)
        res = p.wait(timeout=30)
    assert res.returncode == 0 and res.summary.status == "ok"
    assert res.summary.bytes_received == len(payload) + 1234


def test_listen_interrupted_before_any_client(loadgen_bin):
    with LoadgenProcess(["--listen", "127.0.0.1:0"]) as p:
        p.listening_port()
        p.stop(signal.SIGTERM)
        res = p.wait(timeout=30)
    assert res.returncode == 0
    assert res.summary.status == "interrupted" and res.summary.bytes_received == 0


def test_connect_refused_is_one_error_line(loadgen_bin):
    with socket.socket() as s:                      # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = loadgen.run(["--connect", f"127.0.0.1:{port}", "--duration", "1"], timeout=30)
    assert res.returncode == 1
    assert [e.errno for e in res.errors] == ["ECONNREFUSED"] and res.errors[0].call == "connect"
    assert res.summary.status == "error"
    assert len(res.stderr.splitlines()) == 1


def test_a_ring_whose_sleeps_fill_its_socket_shortens_its_minimum_wait(loadgen_bin):
    """Small socket buffers (tcp_rmem is per namespace) and --wait-min-us 2000: a ring that kept
    sleeping 2 ms would let TCP close its window on every sleep (measured: ~245 wake-ups/s and half
    the throughput); the ring halves its minimum wait while a sleep fills a quarter of SO_RCVBUF.
    Wake-ups are counted where nobody else can take the CPU (SCHED_FIFO): a preempted ring stays
    busy and never sleeps, so a busy neighbour would hide the count. Measured at SCHED_FIFO, idle
    and beside `stress-ng --cpu 1`: 1,839-4,416 wake-ups/s; without the shortening 400-405."""
    ns = f"zcxp-{os.getpid()}-zw"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
                        "net.ipv4.tcp_rmem=4096 131072 262144"], check=True)
        res = subprocess.run(["ip", "netns", "exec", ns, "chrt", "--fifo", "1", str(loadgen_bin), "--json",
                              "--work", "none", "--send-size", "1M", "--duration", "1", "--wait-batch", "8",
                              "--wait-min-us", "2000"], capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=True)
    assert res.returncode == 0, res.stderr
    s = loadgen.parse_lines(res.stdout.splitlines())[-1]
    assert isinstance(s, Summary)
    assert s.bytes_received == s.bytes_sent > 0 and s.verify_errors == 0
    rx0 = next(t for t in s.threads if t["thread"] == "rx0")
    assert s.params["wait_min_us"] == 2000 and s.params["wait_batch"] in (1, 8)
    # sleeping 2 ms at a time allows at most 500 wake-ups/s; the shortened wait gives thousands
    assert rx0["nvcsw"] / s.duration_s > 1000, rx0


def test_preflight_and_a_listener_per_ring_for_queues(loadgen_bin):
    """--preflight registers every ring, releases all and exits 0 without listening; --queues
    opens ring i's listener on PORT+i and a sender with --ports spreads its connections over them
    (lo cannot host zcrx: the run then fails at the registration, after accepting all four, and
    the nic events name both queues)."""
    res = subprocess.run([str(loadgen_bin), "--json", "--listen", "127.0.0.1:0", "--topology", "shared-ifq",
                          "--rings", "2", "--preflight"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert '"event":"preflight","status":"ok"' in res.stdout and '"listening"' not in res.stdout
    from zcrxprof.collect.record import free_ports
    port = free_ports("127.0.0.1", 2)                # as record picks them
    with LoadgenProcess.from_argv([str(loadgen_bin), "--json", "--backend", "zcrx", "--ifname", "lo", "--queues",
                                   "0,1", "--topology", "ifq-per-ring", "--rings", "2", "--connections", "4",
                                   "--listen", f"127.0.0.1:{port}"], name="receiver") as rx:
        up = rx.wait_for(lambda r: isinstance(r, loadgen.Event) and r.event == "listening", timeout=10)
        assert up is not None and up.extra["port"] == port and up.extra["ports"] == 2
        tx = subprocess.run([str(loadgen_bin), "--json", "--connect", f"127.0.0.1:{port}", "--ports", "2",
                             "--connections", "4", "--duration", "1"], capture_output=True, text=True, timeout=30)
        rx.drain(time.monotonic() + 10)
    nic = [r for r in rx.records if isinstance(r, loadgen.Event) and r.event == "nic_state"]
    assert [n.extra["phase"] for n in nic] == ["before", "after"] and nic[0].extra["queues"] == [0, 1]
    assert "io_uring_register(ZCRX_IFQ)" in rx.error().message and rx.summary().connections == 4
    assert tx.returncode != 0          # its peer went away at the registration failure
