"""zcrxprof.loadgen (parsing, argv) and zcrxprof.netns (names, cleanup on every path)."""
from __future__ import annotations

import json
import socket
import subprocess

import pytest

from leftovers import netns_names

from zcrxprof import loadgen, netns
from zcrxprof.errors import UsageError, ZcrxprofError

COMMON = {"topology": "single", "backend": "copy", "emulated": [], "t": 1.5}


def test_records_are_typed_and_keep_unknown_fields():
    lines = [json.dumps({**COMMON, "type": "interval", "thread": "rx0", "bytes": 10, "future": 1}),
             "",
             json.dumps({**COMMON, "type": "summary", "status": "ok", "bytes_sent": 10,
                         "bytes_received": 10, "threads": [], "params": {"rings": 1}})]
    recs = loadgen.parse_lines(lines)
    assert isinstance(recs[0], loadgen.Interval) and recs[0].bytes == 10
    assert recs[0].extra == {"future": 1}
    res = loadgen.LoadgenResult([], 0, recs, "")
    assert res.summary.params == {"rings": 1} and res.intervals == [recs[0]]
    # the CPUs the receiving threads could use are typed fields; a line without them reads None
    assert recs[0].cpus_available is None and recs[0].rings_share_cores is None
    shared = loadgen.parse_record({**COMMON, "type": "summary", "cpus_available": 2, "rings_share_cores": True,
                                   "rings": 4, "workers": 0})
    assert (shared.cpus_available, shared.rings_share_cores, shared.extra) == (2, True, {})
    assert shared.shared_cores_note == "4 rings on 2 CPUs: rings share cores"


@pytest.mark.parametrize("line,needle", [
    ("{not json", "line 1 is not JSON"),
    (json.dumps({**COMMON, "type": "bogus"}), "unknown record type"),
    (json.dumps({"type": "interval", "t": 0}), "lacks backend, emulated, topology"),
])
def test_malformed_lines_are_one_line_errors(line, needle):
    with pytest.raises(ZcrxprofError, match=needle):
        loadgen.parse_lines([line])


def test_result_without_summary_names_the_last_stderr_line():
    res = loadgen.LoadgenResult([], 1, [], "warming up\nzcrx-loadgen: error: broken\n")
    with pytest.raises(ZcrxprofError, match="exited 1 without a summary: zcrx-loadgen: error: broken"):
        _ = res.summary


def test_build_args_maps_keywords_to_flags():
    args = loadgen.build_args("shared-ifq", rings=4, verify=False, json=True, rx_cpus=[0, 1],
                              rate=None, work_ns_per_kib=2000)
    assert args == ["--topology", "shared-ifq", "--rings", "4", "--no-verify", "--json",
                    "--rx-cpus", "0,1", "--work-ns-per-kib", "2000"]
    with pytest.raises(UsageError):
        loadgen.build_args("mesh")


def _links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


@pytest.mark.root
def test_namespaces_are_unique_addressed_and_removed():
    with netns.sender_netns(mtu=9000) as a, netns.sender_netns() as b:
        assert a.netns != b.netns and a.host_if != b.host_if
        assert a.host_addr.rsplit(".", 1)[0] != b.host_addr.rsplit(".", 1)[0]
        assert {a.netns, b.netns} <= netns_names()
        assert f"{a.host_if}@" in _links() and "mtu 9000" in _links().split(f"{a.host_if}@")[1].split("\n")[0]
        with socket.create_server((a.host_addr, 0)) as srv:     # reachable from inside
            port = srv.getsockname()[1]
            nc = subprocess.run([*a.exec_prefix(), "nc", "-z", "-w", "2", a.host_addr, str(port)],
                                capture_output=True, text=True)
        assert nc.returncode == 0, nc.stderr
    assert not {a.netns, b.netns} & netns_names()
    assert a.host_if not in _links() and b.host_if not in _links()


@pytest.mark.root
def test_namespace_removed_when_the_body_raises():
    with pytest.raises(KeyboardInterrupt):
        with netns.sender_netns() as pair:
            name = pair.netns
            raise KeyboardInterrupt
    assert name not in netns_names() and pair.host_if not in _links()


@pytest.mark.root
def test_stale_namespaces_of_dead_processes_are_removed():
    dead = subprocess.Popen(["true"])
    dead.wait()
    name = f"{netns.PREFIX}-{dead.pid}-0"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        assert name in netns.remove_stale()
        assert name not in netns_names()
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_bad_mtu_is_one_line():
    with pytest.raises(ZcrxprofError, match="MTU 10 out of range"):
        with netns.sender_netns(mtu=10):
            pass


def test_the_client_keeps_lines_that_are_not_records_and_wait_names_them():
    summary = json.dumps({**COMMON, "type": "summary", "status": "ok", "bytes_received": 7})
    p = loadgen.LoadgenProcess.from_argv(["sh", "-c", f"echo '{summary}'; echo garbage; echo '[1]'"])
    with pytest.raises(ZcrxprofError, match="line 1 is not JSON"):
        p.wait(timeout=30)
    assert p.bad_lines == ["garbage", "[1]"]
    assert p.summary().bytes_received == 7 and p.summary().row()["status"] == "ok"
    assert p.proc.returncode == 0
