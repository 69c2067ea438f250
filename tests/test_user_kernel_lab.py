"""`--kernel PATH` booted: the prepared Debian kernel presented as a user's build tree
(tests/user_kernel.py) runs `lab run` (one boot) and `record` (one boot), both in the session's lab
work (tests/lab_guest.py); the dataset carries the tree's identity and what
`IORING_REGISTER_QUERY` answered in the guest."""
from __future__ import annotations

import hashlib
import json

import pytest

from zcrxprof import dataset

pytestmark = [pytest.mark.lab, pytest.mark.root]


def test_lab_run_boots_a_build_tree(lab_kernel, lab_user_kernel):
    """lab_guest.py: USER_KERNEL_SCRIPT, run by the session's lab work beside the host tests."""
    tree, p = lab_user_kernel["tree"], lab_user_kernel["run"]
    out = p["stdout"].splitlines()
    assert out[0] == lab_kernel.version, (p["stdout"], p["stderr"])
    features = json.loads(out[1])
    assert features["type"] == "kernel" and features["release"] == lab_kernel.version
    assert features["query"] is True and features["nodev"] and features["sharing"]  # 7.3 answers the query
    assert out[2] == "veth-loaded"                          # the tree's modules reach the guest
    # the v4 sharing uAPI on a kernel with the merged sharing: one line naming the kernel it needs
    refusal = [l for l in p["stderr"].splitlines() if l.startswith("zcrx-loadgen:")]
    assert len(refusal) == 1 and "v4 ifq-sharing series (never merged" in refusal[0], p["stderr"]
    assert f"this kernel ({lab_kernel.version}) has the merged sharing" in refusal[0]
    assert p["returncode"] == 1                             # the guest command's own status
    assert f"{tree}: tree of {lab_kernel.version}" in p["stderr"]


def test_record_on_a_build_tree_keeps_its_identity(lab_kernel, lab_user_kernel):
    """lab_guest.py: RECORD_ARGV, run by the session's lab work beside the host tests."""
    tree, p, path = lab_user_kernel["tree"], lab_user_kernel["record"], lab_user_kernel["dataset"]
    assert p["returncode"] == 0, p["stderr"]
    ds = dataset.load(path)
    assert dataset.validate(path) == []
    meta, runs = ds.metadata, ds["runs"]
    build = meta["kernel_build"]
    assert build["path"] == tree and build["kind"] == "tree" and build["release"] == lab_kernel.version
    assert build["config_sha256"] == hashlib.sha256((lab_kernel.moddir / "config").read_bytes()).hexdigest()
    assert build["git_describe"] is None and build["features"] == lab_kernel.features()
    assert build["query"]["query"] is True and build["query"]["release"] == lab_kernel.version, build
    assert build["query_error"] is None
    assert meta["place"] == {"where": "lab", "accelerator": meta["place"]["accelerator"], "kernel": lab_kernel.version}
    assert (runs["kernel"] == lab_kernel.version).all() and (runs["status"] == "ok").all(), runs["error"].tolist()
    assert (runs["backend"] == "zcrx-nodev").all() and (runs["bytes_received"] > 0).all()
