"""`record --kernel` runs the whole recording inside the kernel lab guest (one boot) and yields a
dataset labelled lab / zcrx-nodev / its accelerator, with the shared-ifq import evidence. The
recording is the one of the lab kernel laid out as a build tree (test_user_kernel_lab.py checks its
identity; a kernel named by version boots the same way, and faults/test_fault_lab.py records with one)."""
from __future__ import annotations

import pytest

from zcrxprof import dataset, lab

pytestmark = [pytest.mark.lab, pytest.mark.root]


def test_record_kernel_produces_a_labelled_lab_dataset(lab_user_kernel, lab_kernel):
    """lab_guest.py: RECORD_ARGV (single and shared-ifq, 2 rings, zcrxstat), run by the session's
    lab work beside the host tests."""
    status, path = lab_user_kernel["record"], lab_user_kernel["dataset"]
    kernel = lab_kernel.version
    assert status["returncode"] == 0, status["stderr"]
    assert dataset.validate(path) == []
    ds = dataset.load(path)
    meta, runs = ds.metadata, ds["runs"]
    assert meta["complete"] is True
    assert meta["place"]["where"] == "lab" and meta["place"]["kernel"] == kernel
    accel = meta["place"]["accelerator"]
    assert accel in ("kvm", "tcg")
    assert meta["backend"] == "zcrx-nodev"
    assert (runs["place"] == "lab").all() and (runs["kernel"] == kernel).all()
    assert (runs["accelerator"] == accel).all()
    assert (runs["backend"] == "zcrx-nodev").all() and not runs["zero_copy"].any()
    if accel == "tcg":
        assert all("tcg guest (timing emulated)" in e for e in runs["emulated"])
    assert (runs["status"] == "ok").all(), runs["error"].tolist()
    assert (runs["bytes_received"] == runs["bytes_sent"]).all() and (runs["bytes_received"] > 0).all()
    # shared-ifq: ring 0 exported its ifq, ring 1 imported it — one ifq for two rings
    shared = runs.loc[runs["topology"] == "shared-ifq", "run_id"].item()
    regs = ds["registrations"][ds["registrations"]["run_id"] == shared].sort_values("ring")
    assert regs["exported"].tolist() == [True, False] and regs["imported"].tolist() == [False, True]
    assert regs["ifq"].nunique() == 1
    # kernel probes attached in the guest (kprobes exist there) and counted the zcrx receive path
    attached = [r for r in meta["probes"] if r["status"] == "attached"]
    assert any(r["method"] in ("kprobe", "kretprobe", "fentry", "fexit") for r in attached), meta["probes"]
    probes = ds["probes"]
    assert (probes.groupby("run_id")["value"].max() > 0).all()
