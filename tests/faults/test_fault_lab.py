"""SIGKILL of the kernel lab guest (QEMU) in the middle of a recording: `record --kernel` says so in
one line, the runs the guest finished before are converted into a dataset that loads, and no qemu,
vng or spool is left. One guest boot (~25 s under TCG here) plus the recording."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from zcrxprof import lab
from zcrxprof.collect import guest
from tally import count, has_traceback
from test_fault_signals import loaded_runs

pytestmark = [pytest.mark.root, pytest.mark.lab]


def test_sigkill_of_the_lab_guest_keeps_the_finished_runs(tmp_path, clean):
    kernels = lab.kernels()
    assert kernels, "no lab kernel prepared: run `scripts/setup.sh --lab` (make test does)"
    name = f"fault-{clean.tag}"
    clean.datasets = tmp_path
    p = clean.popen([sys.executable, "-m", "zcrxprof", "record", "--kernel", kernels[0].version, "--out",
                     str(tmp_path), "--name", name, "--probes", "none", "--topology", "single",
                     "--repeat", "4", "--duration", "3"])
    spool = guest.SPOOL_ROOT / name
    deadline = time.monotonic() + 400
    while not list(spool.glob("run-*.json")):        # the guest finished its first run
        assert p.poll() is None, p.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the guest did not finish a run in time"
        time.sleep(0.2)
    qemu = [pid for pid, comm in clean_processes(clean.tag).items() if comm.startswith("qemu")]
    assert len(qemu) == 1, clean_processes(clean.tag)
    os.kill(qemu[0], signal.SIGKILL)
    count("faults injected: SIGKILL of the lab guest (qemu)")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    assert not has_traceback(err), err
    last = err.strip().splitlines()[-1]
    assert last.startswith("zcrxprof: error: ") and str(tmp_path / name) in last, err
    ds = loaded_runs(tmp_path / name)
    assert ds.metadata["complete"] is False
    assert len(ds["runs"]) >= 1 and (ds["runs"]["status"] == "ok").sum() >= 1
    assert (ds["runs"]["place"] == "lab").all()
    assert not spool.exists(), "the guest's spool was left behind"


def clean_processes(tag: str) -> dict[int, str]:
    import leftovers
    return leftovers.tagged_processes(tag)
