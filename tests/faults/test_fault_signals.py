"""SIGINT and SIGTERM at every phase of `record`, a SIGKILLed load generator and a probe that fails
to attach midway: the command ends with one line and 128+signal, nothing is left behind, and every
run measured before the fault loads."""
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
from zcrxprof import dataset
from paced import PACED
from tally import count, has_traceback

pytestmark = pytest.mark.root
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LOADGEN = str(ROOT / "loadgen" / "zcrx-loadgen")
# runs of 1.5 s sampled every 0.5 s: `midrun` (the second run's first sample) leaves 1 s of the run
PLAN = ["--topology", "single,workers,shared-ifq", "--rings", "2", "--repeat", "1", "--duration", "1.5",
        "--interval", "0.5", *PACED]
RUNS_PLANNED = 3


def start(phase: str, tmp_path: Path, clean, *args: str, out: Path | None = None):
    """`record` under the phase hook; returns the process, the marker directory and the dataset path."""
    markers = tmp_path / "markers"
    markers.mkdir()
    out = out or tmp_path / "datasets"
    argv = [sys.executable, str(HERE / "inject.py"), phase, str(markers), "--",
            "record", "--out", str(out), "--name", "ds", *args]
    return clean.popen(argv), markers, out / "ds"


def wait_reached(p: subprocess.Popen, markers: Path, timeout: float = 120) -> None:
    """Until the hook says its phase is reached (fails if the command ends first)."""
    deadline = time.monotonic() + timeout
    while not (markers / "reached").exists():
        if p.poll() is not None:
            out, err = p.communicate()
            pytest.fail(f"record ended (status {p.returncode}) before the phase: {err[-2000:]}")
        if time.monotonic() > deadline:
            p.kill()
            pytest.fail("phase not reached in time")
        time.sleep(0.02)


def loaded_runs(path: Path) -> "dataset.Dataset":
    """The dataset loads, validates, and every ok run has its interval records."""
    assert dataset.validate(path) == []
    ds = dataset.load(path)
    ok = ds["runs"][ds["runs"]["status"] == "ok"]
    for run_id in ok["run_id"]:
        assert (ds["intervals"]["run_id"] == run_id).any(), f"run {run_id} has no intervals"
        assert ok.set_index("run_id").loc[run_id, "bytes_received"] > 0
    return ds


# phase → statuses of the runs on disk afterwards
PHASES = {
    "setup": [],
    "attach": [],
    "midrun": ["ok", "interrupted"],
    "between": ["ok"],
    "writing": ["ok", "ok"],
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", list(PHASES))
def test_signal_at_each_phase_of_record(phase, sig, tmp_path, clean):
    clean.datasets = tmp_path
    p, markers, path = start(phase, tmp_path, clean, *PLAN, "--probes", "ringsched,uringwork")
    wait_reached(p, markers)
    p.send_signal(sig)
    count(f"faults injected: {signal.Signals(sig).name} at {phase}")
    time.sleep(0.3)
    (markers / "release").touch()     # where signals are held (a write), the hook lets it finish
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + sig, err
    assert not has_traceback(err), err
    done = len(PHASES[phase])
    assert err.strip().splitlines()[-1].endswith(
        f"interrupted: {done} of {RUNS_PLANNED} runs on disk in {path} (complete: false)"), err
    assert out == ""
    ds = loaded_runs(path)
    assert ds.metadata["complete"] is False and ds.metadata["finished"]
    assert ds["runs"]["status"].tolist() == PHASES[phase]
    if phase == "midrun":               # what the interrupted run measured before the signal is kept
        assert ds["runs"].iloc[1]["bytes_received"] > 0
    if phase not in ("setup", "attach"):   # the attach report is written once attach finished
        assert ds.metadata["probes"], "the attach report was lost"


def test_sighup_midrun_stops_like_sigterm(tmp_path, clean):
    """The terminal closing (SIGHUP) is a stop signal too: the run measured so far is kept."""
    clean.datasets = tmp_path
    p, markers, path = start("midrun", tmp_path, clean, *PLAN, "--probes", "none")
    wait_reached(p, markers)
    p.send_signal(signal.SIGHUP)
    count("faults injected: SIGHUP at midrun")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGHUP, err
    assert not has_traceback(err), err
    assert err.strip().splitlines()[-1].endswith(
        f"interrupted: 2 of {RUNS_PLANNED} runs on disk in {path} (complete: false)"), err
    assert loaded_runs(path)["runs"]["status"].tolist() == PHASES["midrun"]


def loadgen_children(pid: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every load generator below ``pid``."""
    return [(k, cmd) for k, cmd in ((k, lo.cmdline(k)) for k in lo.descendants(pid)) if cmd[:1] == [LOADGEN]]


@pytest.mark.parametrize("side, flag, probes", [("receiving", "--listen", "ringsched"),
                                                  ("sending", "--connect", "none")])
def test_sigkill_of_a_load_generator_fails_that_run_only(tmp_path, clean, side, flag, probes):
    clean.datasets = tmp_path
    p, markers, path = start("midrun", tmp_path, clean, *PLAN, "--probes", probes)
    wait_reached(p, markers)
    victims = [(k, flag in cmd) for k, cmd in loadgen_children(p.pid)]
    assert sorted(v[1] for v in victims) == [False, True], victims   # the run's receiver and sender
    os.kill(next(k for k, hit in victims if hit), signal.SIGKILL)
    count(f"faults injected: SIGKILL of the {side} load generator")
    (markers / "release").touch()
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, err
    assert not has_traceback(err)
    ds = loaded_runs(path)
    runs = ds["runs"]
    assert runs["status"].tolist() == ["ok", "failed", "ok"], runs["error"].tolist()
    who = "receiver" if side == "receiving" else "sender"
    assert f"{who} exited with status -9" in runs.iloc[1]["error"], runs.iloc[1]["error"]
    assert ds.metadata["complete"] is True


def test_a_probe_failing_to_attach_midway_is_reported_and_recording_goes_on(tmp_path, clean):
    clean.datasets = tmp_path
    p, markers, path = start("probefail", tmp_path, clean, "--topology", "single", "--repeat", "1",
                             "--duration", "1", "--probes", "ringsched", *PACED)
    count("faults injected: probe attach failure")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert not has_traceback(err)
    ds = loaded_runs(path)
    report = ds.metadata["probes"]
    failed = [r for r in report if "injected fault" in r["reason"]]
    assert len(failed) == 1 and failed[0]["status"] == "unavailable", report
    assert sum(r["status"] == "attached" for r in report) >= 1, report
    assert ds["runs"]["status"].tolist() == ["ok"]
    # the other points still counted the run
    assert len(ds["probes"]) > 0
