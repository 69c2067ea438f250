"""`zcrxprof export --pyperf`: a pyperf BenchmarkSuite of cost metrics that `pyperf compare_to`
reads."""
from __future__ import annotations

import subprocess
import sys

import pyperf
import pytest

from zcrxprof.analysis import load, per_run, pick


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "a.json"
    proc = run("-m", "zcrxprof", "export", "--pyperf", str(out), str(pick("host")))
    assert proc.returncode == 0, proc.stderr
    return out


def test_suite_holds_one_value_per_run_equal_to_its_cost(exported):
    suite = pyperf.BenchmarkSuite.load(str(exported))
    runs = per_run(load(pick("host")))
    benches = {b.get_name(): b for b in suite.get_benchmarks()}
    topologies = set(runs["topology"])
    assert {b.get_metadata()["topology"] for b in benches.values()} == topologies
    for topo in topologies:
        sel = runs[runs["topology"] == topo]
        name = next(n for n in benches if n.startswith(topo + " ") and n.endswith("time per byte")
                    and f"work={sel['work_ns_per_kib'].iloc[0]:g}ns/KiB" in n)
        b = benches[name]
        meta = b.get_metadata()
        assert meta["backend"] == sel["backend"].iloc[0] and meta["unit"] == "second"
        cfg = sel[sel["work_ns_per_kib"] == sel["work_ns_per_kib"].iloc[0]]
        cfg = cfg[cfg["rings"] == cfg["rings"].iloc[0]] if topo != "workers" else cfg
        assert sorted(b.get_values()) == pytest.approx(sorted(8e-9 / cfg["gbit_s"]))
    assert all(v > 0 for b in benches.values() for v in b.get_values())
    assert any(n.endswith("CPU per GB") for n in benches)


def test_compare_to_reads_two_exports(exported, tmp_path):
    # two exports of different datasets when there are two, else the same one twice
    other = tmp_path / "b.json"
    try:
        second = pick("lab")
    except Exception:
        second = pick("host")
    proc = run("-m", "zcrxprof", "export", "--pyperf", str(other), str(second))
    assert proc.returncode == 0, proc.stderr
    proc = run("-m", "pyperf", "compare_to", str(exported), str(other), "--table")
    assert proc.returncode == 0, proc.stderr
    assert "time per byte" in proc.stdout or "not significant" in proc.stdout


def test_compare_to_shows_a_real_difference(exported, tmp_path):
    # the suite against itself with every value doubled: compare_to must call it slower
    suite = pyperf.BenchmarkSuite.load(str(exported))
    doubled = []
    for b in suite.get_benchmarks():
        runs = [pyperf.Run([v * 2 for v in r.values], metadata=r.get_metadata(), collect_metadata=False)
                for r in b.get_runs()]
        doubled.append(pyperf.Benchmark(runs))
    slow = tmp_path / "slow.json"
    pyperf.BenchmarkSuite(doubled).dump(str(slow))
    proc = run("-m", "pyperf", "compare_to", str(exported), str(slow))
    assert proc.returncode == 0, proc.stderr
    assert "2.00x slower" in proc.stdout


def test_export_errors_are_one_line(tmp_path):
    proc = run("-m", "zcrxprof", "export", "--pyperf", str(tmp_path / "x.json"), str(tmp_path / "none"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = run("-m", "zcrxprof", "export", str(pick("host")))
    assert proc.returncode == 2 and "--pyperf" in proc.stderr
