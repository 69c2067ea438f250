"""`zcrxprof record` end to end on this host: a short recording validates and is labelled, the plan
and the zcrx command lines per topology, set-up failures are one line. Signals, dead load generators
and bad flags are the fault suite's (tests/faults/)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from paced import PACED
from zcrxprof import dataset

pytestmark = pytest.mark.root


def _record(*args: str, out: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zcrxprof", "record", "--out", str(out), *PACED, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_short_record_produces_a_valid_labelled_dataset(tmp_path):
    # on one CPU (taskset -c 0's way): single's ring has it to itself, workers' ring and 2 workers share it
    cpu = min(os.sched_getaffinity(0))
    p = _record("--topology", "single,workers", "--rings", "2", "--duration", "1", "--repeat", "1",
                "--name", "short", out=tmp_path, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert warnings == ["record: warning: 1 of 2 planned runs have more rings (plus workers) than the 1 CPU the "
                        "receiver may use: rings share cores in workers ×2 (runs.rings_share_cores)"], err
    path = tmp_path / "short"
    assert out.strip() == str(path)
    assert dataset.validate(path) == []
    ds = dataset.load(path)
    meta, runs = ds.metadata, ds["runs"]
    assert meta["complete"] is True and meta["runs_done"] == 2
    assert meta["place"] == {"where": "host", "accelerator": None, "kernel": os.uname().release}
    assert runs["topology"].tolist() == ["single", "workers"]
    assert (runs["status"] == "ok").all(), runs["error"].tolist()
    assert (runs["backend"] == "copy").all() and not runs["zero_copy"].any()
    assert (runs["sender"] == "netns").all() and (runs["place"] == "host").all()
    assert (runs["bytes_received"] == runs["bytes_sent"]).all() and (runs["bytes_received"] > 0).all()
    assert runs["cpus_available"].tolist() == [1, 1] and runs["rings_share_cores"].tolist() == [False, True]
    from zcrxprof.analysis.claims import df_claims
    from zcrxprof.cli.summary import render
    summary = " ".join(" ".join(render(ds, df_claims(ds))).split())
    assert "1 of 2 runs had more rings than CPUs (1 ring and 2 workers on 1 CPU: rings and workers share " \
        "cores)." in summary and "the receiver could use 1 of them" in summary
    # the per-interval rx records add up to the run's total
    rx = ds["intervals"][ds["intervals"]["role"] == "rx"].groupby("run_id")["bytes"].sum()
    assert rx.tolist() == runs["bytes_received"].tolist()
    # the workers run has worker threads that switched context, the single run has none
    th = ds["threads"]
    workers = th[(th["run_id"] == 1) & (th["role"] == "worker")]
    assert len(workers) == 2 and (workers["nvcsw"] > 0).all()
    assert not (th[th["run_id"] == 0]["role"] == "worker").any()
    # system samples: per-CPU softirq time at several times per run, the threads' context switches
    system = ds["system"]
    soft = system[(system["source"] == "stat") & (system["metric"] == "softirq") & (system["entity"] == "cpu0")]
    assert soft.groupby("run_id")["t"].nunique().min() >= 2
    task = system[(system["source"] == "task") & (system["metric"] == "voluntary_ctxt_switches")]
    assert {"rx0", "tx0"} <= set(task["entity"])
    # host probes: the sched_switch counter saw the load generator's threads
    probes = ds["probes"]
    switches = probes[probes["metric"].str.startswith("switch_")]
    assert len(switches) > 0 and (switches["value"] >= 0).all()
    assert any(r["status"] == "attached" for r in meta["probes"])
    # zcrxstat is either left out with the reason (probes auto) or reported unavailable with one
    assert any("zcrxstat left out" in n for n in meta["notes"]) or \
        any(r["tool"] == "zcrxstat" and (r["status"] == "attached" or r["reason"]) for r in meta["probes"])
    # pagepool watches the receiving NIC's page pool: left out on the copy backend, with the reason
    assert "pagepool" not in {r["tool"] for r in meta["probes"]}
    assert [n for n in meta["notes"] if "pagepool left out" in n] == [
        "probes auto: pagepool left out: backend copy receives through no NIC page pool (only --backend zcrx "
        "does; --probes all tries anyway)"], meta["notes"]


def test_probes_auto_attaches_pagepool_only_with_the_zcrx_backend():
    from zcrxprof.collect.probeset import auto_tools
    for backend in ("copy", "zcrx-nodev", "zcrx"):
        tools, notes = auto_tools(backend)
        assert ("pagepool" in tools) == (backend == "zcrx"), (backend, tools)
        assert any("pagepool left out" in n for n in notes) == (backend != "zcrx"), (backend, notes)
        assert tools[:2] == ["ringsched", "uringwork"]


def test_plan_interleaves_topologies_and_runs_single_once_per_sweep_point():
    from zcrxprof.collect.plan import build_plan
    specs = build_plan(["single", "workers", "shared-ifq"], [1, 2], [0, 500], [0.0], 1.0, 2)
    first = [(s.topology, s.rings, s.workers, s.work_ns_per_kib) for s in specs if s.repetition == 0]
    assert first == [("single", 1, 0, 0), ("workers", 1, 1, 0), ("shared-ifq", 1, 0, 0),
                     ("single", 1, 0, 500), ("workers", 1, 1, 500), ("shared-ifq", 1, 0, 500),
                     ("workers", 1, 2, 0), ("shared-ifq", 2, 0, 0),
                     ("workers", 1, 2, 500), ("shared-ifq", 2, 0, 500)]
    assert [s.run_id for s in specs] == list(range(len(specs))) and len(specs) == 2 * len(first)
    assert all(s.connections == max(s.rings, s.workers) for s in specs)


def test_zcrx_receiver_and_sender_command_lines_per_topology():
    """--backend zcrx: each topology's receiver listens on the NIC's address and the fixed port with
    its queue(s) — ifq-per-ring one per ring (ring i on PORT+i, so each sender opens one connection
    per ring and spreads them with --ports) — and the dataset's ring → queue map follows."""
    from zcrxprof.collect import nicstate
    from zcrxprof.collect.plan import build_plan
    from zcrxprof.collect.runner import (NicPlan, Placement, RunSetup, receiver_argv, receiver_connections,
                                         sender_args)
    nic = NicPlan("eth9", 3, (8, 9, 10), True, "10.1.2.3", 7000)
    setup = RunSetup("/lg", "zcrx", Placement("10.1.2.3", "", [], "peers", ["p1", "p2"]), {}, 1.0, nic=nic)
    seen = {}
    for spec in build_plan(["single", "workers", "shared-ifq", "ifq-per-ring"], [1, 3], [0], [0.0], 1.0, 1):
        argv = receiver_argv(spec, setup)
        flag = lambda f: argv[argv.index(f) + 1] if f in argv else None
        assert flag("--listen") == "10.1.2.3:7000" and argv[-1] == "--setup-nic" and flag("--ifname") == "eth9"
        tx = sender_args(spec, setup, "10.1.2.3", 7000, receiver_connections(spec, setup) // 2, 0)
        seen[(spec.topology, max(spec.rings, spec.workers))] = (flag("--queue"), flag("--queues"), flag("--connections"),
                                             tx[tx.index("--ports") + 1] if "--ports" in tx else None,
                                             nic.ring_queues(spec))
    assert seen == {
        ("single", 1): ("3", None, "2", None, [3]),              # 1 connection, at least one per peer
        ("workers", 1): ("3", None, "2", None, [3]), ("workers", 3): ("3", None, "3", None, [3]),
        ("shared-ifq", 1): ("3", None, "2", None, [3]), ("shared-ifq", 3): ("3", None, "3", None, [3, 3, 3]),
        ("ifq-per-ring", 1): ("3", None, "2", None, [3]),
        ("ifq-per-ring", 3): (None, "8,9,10", "6", "3", [8, 9, 10]),   # each of 2 peers: one per ring port
    }
    assert nicstate.ring_queues([8, 9, 10], 3) == [8, 9, 10] and nicstate.ring_queues([3], 3) == [3, 3, 3]
    merged = nicstate.merge(None, 0, [{"event": "nic_state", "phase": "before", "ifname": "eth9", "queue": 8,
                                       "queues": [8, 9, 10]}], 3)
    assert merged["runs"][0]["ring_queues"] == [8, 9, 10] and merged["ifname"] == "eth9"


@pytest.fixture
def world_writable_dir():
    """A directory an unprivileged user can write to (pytest's tmp_path is root-only)."""
    import shutil
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="zcrxprof-test-", dir="/tmp"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d)


def _as_nobody(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                           "zcrxprof", "record", "--topology", "single", "--duration", "1", "--repeat", "1",
                           "--no-perf", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_a_set_up_failure_is_one_line_and_leaves_no_empty_dataset(world_writable_dir):
    out = world_writable_dir
    p = _as_nobody("--out", str(out), "--name", "nobody", cwd=out)
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip().splitlines()[-1] == "zcrxprof: error: netns: creating network namespaces needs root"
    assert "Traceback" not in p.stderr
    assert not (out / "nobody").exists()


def test_an_unwritable_output_directory_is_one_line(world_writable_dir):
    out = world_writable_dir / "ro"
    out.mkdir()
    out.chmod(0o555)
    p = _as_nobody("--out", str(out), cwd=world_writable_dir)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("zcrxprof: error: cannot")
