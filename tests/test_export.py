"""`zcrxprof export --pyperf`: a pyperf BenchmarkSuite of cost metrics that `pyperf compare_to`
reads."""
from __future__ import annotations

import subprocess
import sys

import pyperf
import pytest

from zcrxprof import dataset
from zcrxprof.analysis import per_run
from zcrxprof.dataset import load
from zcrxprof.export.pyperf_export import benchmark_name

HOST = dataset.resolve("host-copy-4topo")
LAB = dataset.resolve("lab-nodev-4topo-kprobes")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "a.json"
    proc = run("-m", "zcrxprof", "export", "--pyperf", str(out), str(HOST))
    assert proc.returncode == 0, proc.stderr
    return out


def test_suite_holds_one_value_per_run_equal_to_its_cost(exported):
    suite = pyperf.BenchmarkSuite.load(str(exported))
    runs = per_run(load(HOST))
    benches = {b.get_name(): b for b in suite.get_benchmarks()}
    assert {b.get_metadata()["topology"] for b in benches.values()} == set(runs["topology"])
    for _, row in runs.iterrows():
        b = benches[benchmark_name(row, "time per byte")]
        meta = b.get_metadata()
        assert (meta["topology"], meta["backend"], meta["unit"]) == (row["topology"], row["backend"], "second")
        assert meta["zero_copy"] == "false"
        assert any(v == pytest.approx(8e-9 / row["gbit_s"]) for v in b.get_values())
        cpu = benches[benchmark_name(row, "CPU per GB")]
        assert any(v == pytest.approx(row["cpu_s_per_gb_user"] + row["cpu_s_per_gb_sys"]) for v in cpu.get_values())
    assert sum(len(b.get_values()) for b in benches.values()) == 2 * len(runs)
    assert all(v > 0 for b in benches.values() for v in b.get_values())


def test_compare_to_reads_two_exports(exported, tmp_path):
    # the host recording against the lab one: same benchmark names where topology and configuration
    # agree, different backend in the metadata
    other = tmp_path / "b.json"
    proc = run("-m", "zcrxprof", "export", "--pyperf", str(other), str(LAB))
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
    proc = run("-m", "zcrxprof", "export", str(HOST))
    assert proc.returncode == 2 and "--pyperf" in proc.stderr
