"""`zcrxprof record` end to end on this host: a short recording validates, SIGINT leaves a partial
dataset and nothing behind, a load generator that dies fails its run only, bad flags exit 2."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import leftovers as lo
from paced import PACED
from zcrxprof import dataset

pytestmark = pytest.mark.root
ROOT = Path(__file__).resolve().parents[1]
LOADGEN = str(ROOT / "loadgen" / "zcrx-loadgen")


def _progs_held_by(pid: int) -> set[int]:
    """BPF programs ``pid`` holds open."""
    return {prog for prog, holders in lo.bpf_prog_holders().items() if pid in holders}


def _record(*args: str, out: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zcrxprof", "record", "--out", str(out), *PACED, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _meta(path: Path) -> dict:
    try:
        return json.loads((path / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}


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


def test_sigint_mid_run_leaves_a_partial_dataset_and_nothing_behind(tmp_path):
    p = _record("--topology", "single,shared-ifq", "--rings", "2", "--duration", "3", "--repeat", "2",
                "--probes", "ringsched", "--name", "cut", out=tmp_path)
    path = tmp_path / "cut"
    deadline = time.monotonic() + 120
    while _meta(path).get("runs_done", 0) < 1 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()[1]
    time.sleep(1.5)                                  # well inside run 2
    kids = lo.descendants(p.pid)
    progs = _progs_held_by(p.pid)
    assert kids and progs, "the second run and the probe should be live"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    meta = _meta(path)
    assert meta["complete"] is False and meta["finished"]
    assert dataset.validate(path) == []
    runs = dataset.load(path)["runs"]
    assert runs["status"].tolist() == ["ok", "interrupted"]
    assert runs.iloc[1]["bytes_received"] > 0          # what was measured before the signal is kept
    assert [k for k in kids if lo.alive(k)] == []
    assert not progs & lo.bpf_prog_ids()


def test_sigterm_during_setup_leaves_nothing(tmp_path):
    p = _record("--topology", "single", "--duration", "2", "--repeat", "1", "--name", "early", out=tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "early" / "metadata.json").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    p.send_signal(signal.SIGTERM)                     # namespace and probe set-up in progress
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "interrupted: 0 of 1 runs on disk" in err
    meta = _meta(tmp_path / "early")
    assert meta["complete"] is False and meta["runs_done"] == 0


def test_a_dead_load_generator_fails_its_run_and_recording_goes_on(tmp_path):
    p = _record("--topology", "single,workers", "--duration", "2", "--repeat", "1", "--probes", "none",
                "--name", "dead", out=tmp_path)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        for k in lo.descendants(p.pid):
            cmd = lo.cmdline(k)
            if cmd and cmd[0] == LOADGEN and "--listen" in cmd:
                victim = k
        time.sleep(0.05)
    assert victim, "receiver of run 1 not found"
    time.sleep(0.5)
    os.kill(victim, signal.SIGKILL)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    ds = dataset.load(tmp_path / "dead")
    runs = ds["runs"]
    assert runs["status"].tolist() == ["failed", "ok"]
    assert "receiver exited with status -9" in runs.iloc[0]["error"]
    assert ds.metadata["complete"] is True


@pytest.mark.parametrize("args, words", [
    (["--topology", "rings"], "--topology"),
    (["--rings", "0"], "--rings"),
    (["--rings", "two"], "--rings"),
    (["--duration", "0"], "--duration"),
    (["--probes", "everything"], "--probes"),
    (["--backend", "zcrx-nodev"], "7.1"),
    (["--ifname", "eth0"], "--queue"),
    (["--name", "../x"], "--name"),
    (["--backend", "zcrx", "--ifname", "lo", "--queue", "0"], "--peer HOST"),
    (["--backend", "zcrx", "--ifname", "lo", "--queues", "1", "--topology", "ifq-per-ring", "--rings", "2",
      "--peer", "h"], "needs one queue per ring: --queues gives 1"),
    (["--backend", "zcrx", "--ifname", "lo", "--queue", "0", "--queues", "1,2", "--topology", "single,workers",
      "--peer", "h"], "has no ifq-per-ring"),
    (["--backend", "copy", "--setup-nic"], "--backend zcrx"),
])
def test_bad_arguments_are_one_line_exit_2(tmp_path, args, words):
    p = subprocess.run([sys.executable, "-m", "zcrxprof", "record", "--out", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr
    assert not list(tmp_path.iterdir())


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
