"""`zcrxprof compare A B`: a dataset against itself is never significant, a recorded pair with a known
difference gets the verdict of its direction, incomparable pairs are warned about, bad input is one
line and exit 2."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from inprocess import zcrxprof
from paced import PACED
from zcrxprof import dataset
from zcrxprof.analysis.compare import (METRICS, compare_runs, df_compare, significant_direction,
                                       verdict_word)
from zcrxprof.analysis.stats import Estimate
from zcrxprof.cli import main

SHIPPED = "host-copy-4topo"
LAB = "lab-nodev-4topo-kprobes"


def _runs(values, work: float = 2000.0, topology: str = "single") -> pd.DataFrame:
    """A per-run table with one configuration and the given Gbit/s (costs proportional to them)."""
    v = np.asarray(values, dtype=float)
    return pd.DataFrame({"dataset": "x", "run_id": range(len(v)), "topology": topology, "rings": 1,
                         "workers": 0, "work_ns_per_kib": work, "rate_gbit_s": 0.0, "gbit_s": v,
                         "switches_per_gb": 100 * v, "cpu_s_per_gb_user": v, "cpu_s_per_gb_sys": v / 10})


@pytest.mark.parametrize("metric", list(METRICS))
def test_a_dataset_against_itself_is_never_significant(metric):
    ds = dataset.load(SHIPPED)
    frame = df_compare(ds, ds, metric)
    configs = ds.usable_runs()[["topology", "rings", "workers", "work_ns_per_kib", "rate_gbit_s"]].drop_duplicates()
    assert len(frame) == len(configs) == 7
    assert (frame["verdict"] == "not significant").all()
    assert np.allclose(frame["ratio"], 1.0)
    assert (frame["p_value"] == 1.0).all()
    assert (frame["ratio_lo"] <= 1).all() and (frame["ratio_hi"] >= 1).all()
    assert (frame["warnings"] == "").all() and frame.attrs["unmatched"] == (0, 0)


def test_the_verdict_follows_the_direction_and_the_metric():
    assert verdict_word(significant_direction(Estimate(1.2, 1.1, 1.3, 5), 0.01), METRICS["gbit_s"]) == "faster"
    assert verdict_word(significant_direction(Estimate(0.8, 0.7, 0.9, 5), 0.01), METRICS["gbit_s"]) == "slower"
    assert verdict_word(significant_direction(Estimate(1.2, 1.1, 1.3, 5), 0.01), METRICS["cpu_per_gb"]) == "costlier"
    assert verdict_word(significant_direction(Estimate(0.8, 0.7, 0.9, 5), 0.01),
                        METRICS["switches_per_gb"]) == "cheaper"
    # p too high, or an interval that includes 1: not significant
    assert significant_direction(Estimate(1.2, 1.1, 1.3, 3), 0.1) == 0
    assert significant_direction(Estimate(1.2, 0.9, 1.3, 5), 0.01) == 0


def test_separated_groups_are_significant_in_both_directions():
    a, b = _runs([10.0, 10.1, 9.9, 10.2, 9.8]), _runs([12.0, 12.1, 11.9, 12.2, 11.8])
    up = compare_runs(a, b, "gbit_s").iloc[0]
    assert up["verdict"] == "faster" and up["ratio"] == pytest.approx(1.2) and up["ratio_lo"] > 1
    assert up["p_value"] < 0.05 and up["n_a"] == up["n_b"] == 5
    assert compare_runs(b, a, "gbit_s").iloc[0]["verdict"] == "slower"
    assert compare_runs(a, b, "cpu_per_gb").iloc[0]["verdict"] == "costlier"
    assert compare_runs(b, a, "switches_per_gb").iloc[0]["verdict"] == "cheaper"


def test_work_is_ignored_and_warned_about_only_when_no_work_level_matches():
    a, b = _runs([10.0, 10.1, 9.9], work=0.0), _runs([2.0, 2.1, 1.9], work=4000.0)
    row = compare_runs(a, b).iloc[0]
    assert (row["work_a"], row["work_b"]) == (0.0, 4000.0)
    assert "work model differs" in row["warnings"]
    both = compare_runs(pd.concat([a, b]), b)
    assert len(both) == 1 and both.iloc[0]["work_a"] == 4000.0 and both.iloc[0]["warnings"] == ""
    assert compare_runs(a, _runs([1.0], topology="workers")).empty


def test_an_emulated_guest_against_the_host_is_warned_about():
    frame = df_compare(dataset.load(SHIPPED), dataset.load(LAB))
    assert len(frame) == 4 and frame.attrs["unmatched"] == (3, 0)
    assert frame["warnings"].str.contains("backend differs: A copy, B zcrx-nodev").all()
    assert frame["warnings"].str.contains("emulated timing differs: A no, B yes").all()


def test_text_prints_one_row_per_match_with_the_library_numbers(capsys):
    assert main(["compare", SHIPPED, SHIPPED, "--metric", "switches_per_gb"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = [line for line in out if line.endswith("not significant")]
    frame = df_compare(dataset.load(SHIPPED), dataset.load(SHIPPED), "switches_per_gb")
    assert len(rows) == len(frame)
    for line, r in zip(rows, frame.itertuples()):
        assert line.split()[0] == r.topology and " 1.00 " in line
    assert any("switches/GB, lower is better" in line for line in out)
    assert any("too few runs" in line for line in out)


def test_text_warns_when_the_pair_is_not_comparable(capsys):
    assert main(["compare", SHIPPED, LAB]) == 0
    out = capsys.readouterr().out
    assert "warning: backend differs" in out and "warning: emulated timing differs" in out
    assert "not matched: 3 configuration(s) of A, 0 of B" in out


def test_json_parses_and_equals_the_frame(capsys):
    assert main(["compare", SHIPPED, LAB, "--json", "--metric", "cpu_per_gb"]) == 0
    doc = json.loads(capsys.readouterr().out)
    frame = df_compare(dataset.load(SHIPPED), dataset.load(LAB), "cpu_per_gb")
    assert (doc["a"], doc["b"], doc["metric"]) == (SHIPPED, LAB, "cpu_per_gb")
    assert [m["ratio"] for m in doc["matches"]] == pytest.approx(frame["ratio"].tolist())
    assert [m["verdict"] for m in doc["matches"]] == frame["verdict"].tolist()


@pytest.mark.parametrize("args, code, words", [
    (["compare", SHIPPED, "no-such-dataset"], 2, "no dataset at no-such-dataset"),
    (["compare", SHIPPED, SHIPPED, "--metric", "latency"], 2, "invalid choice: 'latency'"),
    (["compare", SHIPPED], 2, "required"),
    (["compare", SHIPPED, "host-copy-rate-sweep"], 1, "no configuration of host-copy-4topo matches"),
])
def test_bad_input_is_one_line(args, code, words):
    p = zcrxprof(*args)
    assert p.returncode == code
    assert len(p.stderr.splitlines()) == 1 and words in p.stderr and "Traceback" not in p.stderr


@pytest.fixture(scope="module")
def work_pair(tmp_path_factory):
    """Two short single-ring recordings, recorded at the same time, that differ only in the work per
    KiB (0 and 40000 ns), the sender paced at 0.5 Gbit/s: the first keeps the pace, the second's
    receiver tops out near 0.2 Gbit/s."""
    out = tmp_path_factory.mktemp("pair")
    procs = [subprocess.Popen([sys.executable, "-m", "zcrxprof", "record", "--topology", "single", "--rings", "1",
                               "--work-ns-per-kib", work, "--duration", "1", "--repeat", "4", "--no-perf",
                               "--probes", "none", "--quiet", *PACED, "--name", f"work{work}", "--out", str(out)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for work in ("0", "40000")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    return out / "work0", out / "work40000"


@pytest.mark.root
def test_a_recorded_pair_gets_the_verdict_of_its_known_difference(work_pair, capsys):
    a, b = (dataset.load(p) for p in work_pair)
    gbit = df_compare(a, b, "gbit_s")
    assert len(gbit) == 1
    row = gbit.iloc[0]
    assert "work model differs: A 0, B 40000 ns/KiB" in row["warnings"]
    assert row["verdict"] == "slower" and row["ratio_hi"] < 1 and row["p_value"] < 0.05
    assert df_compare(a, b, "cpu_per_gb").iloc[0]["verdict"] == "costlier"
    assert df_compare(b, a, "gbit_s").iloc[0]["verdict"] == "faster"
    assert main(["compare", str(work_pair[0]), str(work_pair[1])]) == 0
    out = capsys.readouterr().out
    assert "slower" in out and "warning: work model differs" in out
