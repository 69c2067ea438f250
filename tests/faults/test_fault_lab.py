"""SIGKILL of the kernel lab guest (QEMU) in the middle of a recording: `record --kernel` says so in
one line, the runs the guest finished before are converted into a dataset that loads, and no qemu,
vng or spool is left. The recording runs in the session's lab work (tests/lab_guest.py,
``_qemu_killed_mid_recording``), beside the host tests, with a stand-in for vng whose "QEMU" runs
the guest script on the host in a PID namespace of its own, killed once the guest finished its first
run: all of `record --kernel`'s side of it, without a boot. This test reads what it found."""
from __future__ import annotations

from pathlib import Path

import pytest

from tally import count, has_traceback
from test_fault_signals import loaded_runs

pytestmark = [pytest.mark.root, pytest.mark.lab]


def test_sigkill_of_the_lab_guest_keeps_the_finished_runs(lab_fault):
    assert lab_fault["error"] is None, lab_fault
    assert lab_fault["qemu"] == 1, lab_fault          # one guest, and it was the one killed
    count("faults injected: SIGKILL of the lab guest (qemu)")
    err = lab_fault["stderr"]
    assert lab_fault["returncode"] == 1, err
    assert not has_traceback(err), err
    path = Path(lab_fault["dataset"])
    last = err.strip().splitlines()[-1]
    assert last.startswith("zcrxprof: error: ") and str(path) in last, err
    ds = loaded_runs(path)
    assert ds.metadata["complete"] is False
    assert len(ds["runs"]) >= 1 and (ds["runs"]["status"] == "ok").sum() >= 1
    assert (ds["runs"]["place"] == "lab").all()
    assert not lab_fault["spool_left"], "the guest's spool was left behind"
    assert lab_fault["outlived"] == [], "processes of the killed recording outlived it"
