"""The zcrx backends of zcrx-loadgen.

In the kernel lab (the guest boot the lab tests share, tests/lab_guest.py): every topology on zcrx-nodev over loopback,
verified byte for byte, with the registration records that prove shared-ifq really exported one ifq
and imported it on the other rings, and the 7.2 stats that prove the kernel received every byte
through that one ifq, and the refill backlog each ring samples. On the host (6.18, no zcrx-capable
NIC): the precise one-line errors, and that a refused `--setup-nic` changes nothing (this machine's
NIC, and a veth pair in a namespace the test creates and removes).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from lab_guest import ZCRX_TOPOLOGIES as TOPOLOGIES, records
from zcrxprof import vocab
from zcrxprof.collect import nicstate

PROJECT = Path(__file__).resolve().parent.parent
LOADGEN = PROJECT / "loadgen" / "zcrx-loadgen"


def build_loadgen() -> None:
    subprocess.run(["make", "-s", "-C", str(PROJECT / "loadgen")], check=True)


@pytest.fixture(scope="module")
def guest_runs(lab_guest) -> dict[str, dict]:
    """Every topology run once in the shared lab guest boot; per run: its records and exit status."""
    assert not lab_guest.result.timed_out, "the guest did not finish the loadgen runs"
    out, kernel = lab_guest.part("zcrx"), lab_guest.result.kernel
    return {name: {"rc": int((out / f"{name}.rc").read_text()),
                   "records": records((out / f"{name}.json").read_text()),
                   "stderr": (out / f"{name}.err").read_text(), "kernel": kernel}
            for name in TOPOLOGIES}


def by_type(recs: list[dict], kind: str) -> list[dict]:
    return [r for r in recs if r["type"] == kind]


@pytest.mark.lab
@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_nodev_topology_receives_every_byte_verified(guest_runs, name):
    run = guest_runs[name]
    assert run["rc"] == 0, run["stderr"]
    summary = by_type(run["records"], "summary")[-1]
    assert summary["status"] == "ok"
    assert summary["bytes_received"] == summary["bytes_sent"] > 0
    assert summary["verify_errors"] == 0
    assert summary["rings"] == TOPOLOGIES[name]
    # every record is labelled: backend, the emulated NIC (never zero-copy), the guest kernel
    for r in run["records"]:
        assert r["backend"] == "zcrx-nodev" and r["emulated"] == ["nic"]
    regs = by_type(run["records"], "registration")
    assert sorted(r["ring"] for r in regs) == list(range(TOPOLOGIES[name]))
    assert all(r["kernel"] == run["kernel"] and r["rx_buf_len"] == 4096 for r in regs)
    assert all(r["rq_entries"] >= r["area_bytes"] // 4096 for r in regs)   # RQ cannot overflow


@pytest.mark.lab
@pytest.mark.parametrize("name", ["shared-ifq", "shared-ifq-3"])
def test_shared_ifq_exports_one_ifq_and_imports_it_on_every_other_ring(guest_runs, name):
    run = guest_runs[name]
    regs = sorted(by_type(run["records"], "registration"), key=lambda r: r["ring"])
    assert [r["exported"] for r in regs] == [True] + [False] * (len(regs) - 1)
    assert [r["imported"] for r in regs] == [False] + [True] * (len(regs) - 1)
    assert {r["ifq"] for r in regs} == {0}
    assert {r["zcrx_id"] for r in regs} == {0}          # ids are per ring: each ring's first ifq
    assert len({r["area_bytes"] for r in regs}) == 1
    # every ring received through the shared ifq ...
    threads = {t["thread"]: t for t in by_type(run["records"], "summary")[-1]["threads"]}
    assert all(threads[f"rx{i}"]["bytes"] > 0 for i in range(len(regs)))
    # ... and the kernel's own stats for that one ifq (7.2+) count the bytes of all rings: never
    # more than were received, and all of them but for the rare update the kernel loses when rings
    # on two CPUs copy at once (seen once in CI: 32,609 of 309,329,920 bytes with 3 rings)
    stats = [e for e in by_type(run["records"], "event") if e["event"] == "stats"]
    if vocab.kernel_has(run["kernel"], "events/stats"):
        assert len(stats) == 1 and stats[0]["ring"] == 0
        received = by_type(run["records"], "summary")[-1]["bytes_received"]
        assert 0.999 * received <= stats[0]["bytes"] <= received


@pytest.mark.lab
def test_nodev_workers_write_the_rqes_themselves(guest_runs):
    summary = by_type(guest_runs["workers"]["records"], "summary")[-1]
    assert summary["params"]["workers_return"] == "worker"
    threads = {t["thread"]: t for t in summary["threads"]}
    workers = [t for name, t in threads.items() if name.startswith("worker")]
    # every buffer rx0 received went back through the refill ring from a worker, none from rx0
    assert len(workers) >= 2 and all(t["bufs_returned"] > 0 for t in workers)
    assert sum(t["bufs_returned"] for t in workers) == threads["rx0"]["completions"] > 0
    assert threads["rx0"]["bufs_returned"] == 0
    assert threads["rx0"]["buffers_used"] is None      # counted by the copy backend only


@pytest.mark.lab
@pytest.mark.parametrize("name", list(TOPOLOGIES))
def test_nodev_refill_backlog_stays_within_the_refill_ring(guest_runs, name):
    """refill_backlog (rq_tail - *khead + RQEs not yet written) is sampled by each ring right after
    its refill: it can never exceed the refill ring. Where the ring thread is its refill ring's only
    writer (single, ifq-per-ring) it has just written every RQE and flushed (ZCRX_CTRL_FLUSH_RQ), so
    the kernel has taken them all and it is 0; with workers or other rings writing concurrently it
    may be anything up to rq_entries."""
    recs = guest_runs[name]["records"]
    rq_entries = {r["ring"]: r["rq_entries"] for r in by_type(recs, "registration")}
    rx = [r for r in by_type(recs, "interval") if r["role"] == "rx"]
    assert rx and {r["ring"] for r in rx} == set(rq_entries)
    assert all(0 <= r["refill_backlog"] <= rq_entries[r["ring"]] for r in rx), [r["refill_backlog"] for r in rx]
    if name in ("single", "ifq-per-ring"):
        assert [r["refill_backlog"] for r in rx] == [0] * len(rx)


@pytest.mark.lab
def test_ifq_per_ring_registers_separate_ifqs(guest_runs):
    regs = by_type(guest_runs["ifq-per-ring"]["records"], "registration")
    assert sorted(r["ifq"] for r in regs) == [0, 1]
    assert not any(r["exported"] or r["imported"] for r in regs)
    stats = [e for e in by_type(guest_runs["ifq-per-ring"]["records"], "event") if e["event"] == "stats"]
    if vocab.kernel_has(guest_runs["ifq-per-ring"]["kernel"], "events/stats"):
        summary = by_type(guest_runs["ifq-per-ring"]["records"], "summary")[-1]
        assert sorted(s["ring"] for s in stats) == [0, 1]
        assert sum(s["bytes"] for s in stats) == summary["bytes_received"]


@pytest.mark.lab
def test_copy_events_arrive_on_the_exporting_ring_only(guest_runs):
    if not vocab.kernel_has(guest_runs["shared-ifq"]["kernel"], "events/stats"):
        pytest.skip("zcrx events need a 7.2+ lab kernel")
    events = [e for e in by_type(guest_runs["shared-ifq"]["records"], "event") if e["event"] == "copy"]
    assert events and {e["ring"] for e in events} == {0}
    total = [e for e in by_type(guest_runs["shared-ifq"]["records"], "event") if e["event"] == "copy_events"]
    assert total[0]["count"] >= sum(e["count"] for e in events)


# ---- host (6.18): precise errors --------------------------------------------------------------

def run_host(*args: str, netns: str | None = None) -> subprocess.CompletedProcess:
    cmd = [str(LOADGEN), *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def one_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


def host_kernel() -> str:
    return subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def host_loadgen():
    build_loadgen()


def test_nodev_on_an_old_kernel_says_which_kernel_it_needs(host_loadgen):
    if vocab.kernel_has(host_kernel(), "NODEV"):
        pytest.skip("the host kernel has NODEV (this test is for older kernels)")
    p = run_host("--backend", "zcrx-nodev", "--duration", "1")
    assert p.returncode == 1
    line = one_line(p)
    assert f"zcrx-nodev needs Linux >= {vocab.version_text(vocab.ZCRX_FEATURES['NODEV'])}" in line and "zcrxprof lab run" in line


def test_zcrx_on_loopback_is_refused_with_the_reason(host_loadgen):
    p = run_host("--backend", "zcrx", "--ifname", "lo", "--queue", "0", "--duration", "1", "--json")
    assert p.returncode == 1
    assert "lo" in one_line(p) and "EOPNOTSUPP" in one_line(p) and "queue-management ops" in one_line(p)
    err = by_type(records(p.stdout), "error")[0]
    assert err["errno"] == "EOPNOTSUPP" and err["backend"] == "zcrx"


def test_zcrx_on_veth_names_the_driver_and_the_reason(host_loadgen, veth_netns):
    p = run_host("--backend", "zcrx", "--ifname", "zv0", "--queue", "0", "--duration", "1", netns=veth_netns)
    assert p.returncode == 1
    line = one_line(p)
    assert line.startswith("zcrx-loadgen: error: zv0 (veth)") and "EOPNOTSUPP" in line


def nic_state(ifname: str, netns: str | None = None) -> str:
    """Everything --setup-nic may touch (and its neighbours), as the tools print it."""
    wrap = ["ip", "netns", "exec", netns] if netns else []
    parts = [subprocess.run(wrap + c, capture_output=True, text=True).stdout for c in
             (["ip", "-d", "link", "show", ifname], ["ethtool", "-g", ifname], ["ethtool", "-l", ifname],
              ["ethtool", "-x", ifname], ["ethtool", "-n", ifname], ["ethtool", "-k", ifname])]
    return "\n".join(parts)


def default_route_ifname() -> str | None:
    out = subprocess.run(["ip", "-j", "route", "show", "default"], capture_output=True, text=True).stdout
    routes = json.loads(out or "[]")
    return routes[0].get("dev") if routes else None


def test_zcrx_setup_nic_on_this_machines_nic_fails_precisely_and_changes_nothing(host_loadgen):
    ifname = default_route_ifname()
    if ifname is None:
        pytest.skip("this machine has no NIC with a default route")
    before = nic_state(ifname)
    p = run_host("--backend", "zcrx", "--ifname", ifname, "--queue", "0", "--setup-nic", "--duration", "1")
    if p.returncode == 0:
        pytest.skip(f"{ifname} can host zcrx: this test is for machines without a zcrx-capable NIC")
    assert p.returncode == 1
    line = one_line(p)
    assert line.startswith(f"zcrx-loadgen: error: {ifname} (") and "cannot host zcrx" in line
    assert nic_state(ifname) == before


def test_zcrx_setup_nic_on_veth_fails_precisely_and_changes_nothing(host_loadgen, veth_netns):
    """veth reports no ring parameters (no tcp-data-split): nothing is set up, and the registration
    gives the kernel's reason. The `nic_state` events report the state as found and once restored (the
    same here), and the recorder folds them into metadata.nic."""
    before = nic_state("zv0", veth_netns)
    assert "ntuple-filters: off [fixed]" in before         # what --setup-nic could not change anyway
    p = run_host("--backend", "zcrx", "--ifname", "zv0", "--queue", "0", "--setup-nic", "--duration", "1",
                 "--json", netns=veth_netns)
    assert p.returncode == 1
    line = one_line(p)
    assert line.startswith("zcrx-loadgen: error: zv0 (veth) queue 0 cannot host zcrx") and "EOPNOTSUPP" in line
    assert nic_state("zv0", veth_netns) == before
    nic = [r for r in by_type(records(p.stdout), "event") if r["event"] == "nic_state"]
    assert [r["phase"] for r in nic] == ["before", "after"] and nic[1]["changed"] == []
    state = {k: v for k, v in nic[0].items() if k not in ("phase", "t")}
    assert state == {k: v for k, v in nic[1].items() if k not in ("phase", "t", "changed")}
    assert state["ifname"] == "zv0" and state["driver"] == "veth" and state["queue"] == 0 and state["setup_nic"]
    assert state["tcp_data_split"] == "n/a" and state["hds_thresh"] == -1 and state["ntuple"] is False
    assert state["rx_queues"] == int(re.search(r"Current hardware settings:\s+RX:\s+(\d+)", before)[1])
    meta = nicstate.merge(None, 1, nic)
    meta = nicstate.merge(meta, 2, [{**nic[0], "ntuple": True}, nic[1]])   # a run that left ntuple changed
    assert meta["ifname"] == "zv0" and meta["before"]["tcp_data_split"] == "n/a" and meta["setup_nic"]
    assert [r["restored"] for r in meta["runs"]] == [True, False] and meta["restored"] is False
    assert nicstate.merge(meta, 3, []) is meta                               # a run without nic events


def test_zcrx_queue_range_follows_the_channels_the_driver_reports(host_loadgen, veth_netns):
    subprocess.run(["ip", "netns", "exec", veth_netns, "ethtool", "-L", "zv0", "rx", "2"], check=True)
    p = run_host("--backend", "zcrx", "--ifname", "zv0", "--queue", "2", "--duration", "1", netns=veth_netns)
    assert p.returncode == 1 and one_line(p).endswith("zv0 (veth) has 2 RX queue(s): queue 2 is out of range")
    p = run_host("--backend", "zcrx", "--ifname", "zv0", "--queue", "1", "--duration", "1", netns=veth_netns)
    assert p.returncode == 1 and "zv0 (veth) queue 1 cannot host zcrx" in one_line(p)   # past the preflight


@pytest.mark.parametrize("args, fragment", [
    (["--backend", "zcrx"], "needs --ifname IF and --queue Q"),
    (["--backend", "zcrx", "--ifname", "lo"], "needs --ifname IF and --queue Q"),
    (["--backend", "zcrx-nodev", "--ifname", "lo"], "go with --backend zcrx"),
    (["--backend", "zcrx", "--ifname", "lo", "--queue", "x"], "--queue"),
    (["--backend", "zcrx-nodev", "--bundle", "4"], "--bundle goes with --backend copy"),
])
def test_zcrx_usage_errors_exit_2_with_one_line(host_loadgen, args, fragment):
    p = run_host(*args, "--duration", "1")
    assert p.returncode == 2
    assert fragment in one_line(p)


def test_zcrx_listen_checks_the_nic_before_accepting_connections(host_loadgen):
    """With --listen the NIC is checked (and with --setup-nic steered) before the listener opens,
    so a rule holds from a connection's first packet: a bad NIC fails at once, never listening."""
    p = run_host("--backend", "zcrx", "--ifname", "nosuch0", "--queue", "0", "--listen", "127.0.0.1:0",
                 "--json")
    assert p.returncode == 1 and "no network interface nosuch0" in one_line(p)
    assert [r.get("event") for r in by_type(records(p.stdout), "event")] == []   # no "listening"
    assert by_type(records(p.stdout), "summary")[0]["status"] == "error"


def test_zcrx_unknown_interface_and_queue_out_of_range(host_loadgen):
    p = run_host("--backend", "zcrx", "--ifname", "nosuch0", "--queue", "0", "--duration", "1")
    assert p.returncode == 1 and "no network interface nosuch0" in one_line(p)
    ifname = default_route_ifname()
    if ifname is None:
        return
    p = run_host("--backend", "zcrx", "--ifname", ifname, "--queue", "4000", "--duration", "1")
    assert p.returncode == 1 and "out of range" in one_line(p)


def test_zcrx_ifq_per_ring_with_several_rings_is_refused_before_touching_the_nic(host_loadgen):
    """One --queue cannot carry N ifqs: refused as usage (exit 2) naming the queue budget."""
    p = run_host("--backend", "zcrx", "--ifname", "lo", "--queue", "0", "--topology", "ifq-per-ring",
                 "--rings", "3", "--duration", "1")
    assert p.returncode == 2
    assert "ifq-per-ring with 3 rings needs one queue per ring: --queues Q1,..,Q3" in one_line(p)
    p = run_host("--backend", "zcrx", "--ifname", "lo", "--queue", "0", "--topology", "ifq-per-ring",
                 "--rings", "1", "--duration", "1")
    assert p.returncode == 1 and "cannot host zcrx" in one_line(p)   # one ring: the NIC is asked
