"""`zcrxprof summary NAME`: the claims carry the numbers the library computes, the verdict words follow
the data, every line fits in 80 columns, bad input is one line and exit 2."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from zcrxprof import dataset
from zcrxprof.analysis.claims import (CONTRADICTED, NOT_RESOLVED, SUPPORTED, df_claims, handoff_claim)
from zcrxprof.analysis.queues import shared_over_per_ring
from zcrxprof.analysis.runs import per_run
from zcrxprof.analysis.stats import bootstrap_median
from zcrxprof.analysis.switches import handoff_cost
from zcrxprof.cli import main

SHIPPED = ["host-copy-4topo", "host-copy-rate-sweep", "lab-nodev-4topo-kprobes"]


def _claim(frame: pd.DataFrame, number: int) -> pd.DataFrame:
    return frame[frame["claim"] == number].set_index("quantity")


def test_the_claims_carry_the_library_numbers():
    ds = dataset.load("host-copy-4topo")
    runs, claims = per_run(ds), df_claims(ds)
    assert sorted(set(claims["claim"])) == [1, 2, 3, 4]
    one = _claim(claims, 1)
    single = bootstrap_median(runs[runs["topology"] == "single"]["gbit_s"])
    assert one.loc["single Gbit/s", "median"] == pytest.approx(single.value)
    assert one.loc["single Gbit/s", "ci_lo"] == pytest.approx(single.lo)
    assert one["verdict"].iloc[0] == SUPPORTED and f"{single.value:.2f} Gbit/s" in one["title"].iloc[0]
    two = _claim(claims, 2)
    h = handoff_cost(runs).sort_values("threads").iloc[-1]
    assert two.loc["workers switches/GB", "median"] == pytest.approx(h["workers_switches_per_gb"])
    assert two.loc["shared-ifq CPU-s/GB", "median"] == pytest.approx(h["shared_cpu_s_per_gb"])
    assert two.loc["CPU ratio", "p_value"] == pytest.approx(h["p_value"])
    # 3 runs against 3 cannot reach p < 0.05: the recording does not resolve it, and says why
    assert two["verdict"].iloc[0] == NOT_RESOLVED and "too few runs" in two["reason"].iloc[0]
    assert two["note"].iloc[0] == "1 ring and 2 workers on 2 CPUs: rings and workers share cores"   # machine's cores
    three = _claim(claims, 3)
    ratio = shared_over_per_ring(runs).iloc[0]
    assert three.loc["shared/per-ring", "median"] == pytest.approx(ratio["ratio"])
    assert (three.loc["ifq-per-ring queues", "median"], three.loc["shared-ifq queues", "median"]) == (2, 1)
    assert three["verdict"].iloc[0] == SUPPORTED


def test_a_recording_without_the_topologies_does_not_resolve_their_claims():
    claims = df_claims(dataset.load("host-copy-rate-sweep"))
    assert _claim(claims, 1)["verdict"].iloc[0] == SUPPORTED   # 3.7 of 8 Gbit/s offered
    assert _claim(claims, 2)["verdict"].iloc[0] == NOT_RESOLVED
    assert _claim(claims, 3)["verdict"].iloc[0] == NOT_RESOLVED


def _handoff_runs(workers_cpu: float, workers_switches: float, n: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for topology, cpu, sw in (("workers", workers_cpu, workers_switches), ("shared-ifq", 2.0, 600.0)):
        for i in range(n):
            jitter = 1 + rng.uniform(-0.01, 0.01)
            rows.append({"dataset": "x", "backend": "copy", "kernel": "k", "place": "host", "accelerator": "",
                         "work_ns_per_kib": 2000.0, "rate_gbit_s": 0.0, "topology": topology,
                         "rings": 1 if topology == "workers" else 2, "workers": 2 if topology == "workers" else 0,
                         "switches_per_gb": sw * jitter, "cpu_s_per_gb_user": cpu * jitter * 0.9,
                         "cpu_s_per_gb_sys": cpu * jitter * 0.1})
    return pd.DataFrame(rows)


def test_the_handoff_verdict_follows_separated_runs():
    costly = pd.DataFrame(handoff_claim(_handoff_runs(2.6, 14000.0), "x", cores=16))
    assert costly["verdict"].iloc[0] == SUPPORTED and costly["note"].iloc[0] == ""
    cheap = pd.DataFrame(handoff_claim(_handoff_runs(1.5, 14000.0), "x", cores=2))
    assert cheap["verdict"].iloc[0] == CONTRADICTED and "share cores" in cheap["note"].iloc[0]
    # each run's own fact wins over the machine's cores: rings pinned to 1 CPU share it on 16 cores,
    # a receiver free to use 4 CPUs does not share them on a machine said to have 2
    pinned = _handoff_runs(2.6, 14000.0).assign(cpus_available=1, rings_share_cores=True)
    assert pd.DataFrame(handoff_claim(pinned, "x", cores=16))["note"].iloc[0] == (
        "1 ring and 2 workers on 1 CPU: rings and workers share cores; 2 rings on 1 CPU: rings share cores")
    free = _handoff_runs(2.6, 14000.0).assign(cpus_available=4, rings_share_cores=False)
    assert pd.DataFrame(handoff_claim(free, "x", cores=2))["note"].iloc[0] == ""


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_every_line_fits_in_80_columns(name, fmt, capsys):
    assert main(["summary", name, "--format", fmt]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert out.isascii()
    assert "Reproduce with:" in out and f"--name {name}" in out


def test_text_shows_the_environment_numbers_and_verdicts(capsys):
    ds = dataset.load("lab-nodev-4topo-kprobes")
    claims = df_claims(ds)
    assert main(["summary", "lab-nodev-4topo-kprobes"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].startswith("Backend zcrx-nodev (not zero copy), kernel 7.3.4+deb13-amd64")
    assert "emulated timing (TCG guest)" in out and "2 cores, QEMU TCG CPU" in out
    for number, g in claims.groupby("claim"):
        assert f"Verdict: {g['verdict'].iloc[0]} -- " in out
    gbit = _claim(claims, 3).loc["shared-ifq Gbit/s"]
    row = next(line for line in lines if line.strip().startswith("shared-ifq Gbit/s"))
    assert row.split()[2:4] == [f"{gbit['median']:.3f}", f"{gbit['ci_lo']:.3f}-{gbit['ci_hi']:.3f}"]
    flat = " ".join(out.split())
    assert "2 of 8 runs had more rings than CPUs (1 ring and 2 workers on 2 CPUs: rings and workers share " \
        "cores), counted from the machine's 2 cores" in flat
    assert "Note: 1 ring and 2 workers on 2 CPUs: rings and workers share cores" in flat


@pytest.mark.parametrize("args, words", [
    (["summary", "no-such-dataset"], "no dataset at no-such-dataset"),
    (["summary", "host-copy-4topo", "--format", "html"], "invalid choice: 'html'"),
])
def test_bad_input_is_one_line_and_exit_2(args, words):
    p = subprocess.run([sys.executable, "-m", "zcrxprof", *args], capture_output=True, text=True)
    assert p.returncode == 2
    assert len(p.stderr.splitlines()) == 1 and words in p.stderr and "Traceback" not in p.stderr
