"""Shared fixtures: the built load generator, a sender network namespace, and the leftover check
around every test and around the session (tests/leftovers.py says what it looks for)."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import leftovers
from lab_guest import TIMEOUT_S as LAB_GUEST_TIMEOUT_S, BackgroundBoot, SharedBoot
from zcrxprof import lab, loadgen, netns


def pytest_configure(config) -> None:
    """Tag the session: every process the tests start inherits the tag (leftovers.py)."""
    leftovers.tag_session()


# modules whose tests compute from files (datasets, notebooks, parsers, docs) or refuse bad input
# before anything starts, and create nothing that needs root: marked `offline`, scripts/test.sh runs
# them in a session beside the system tests. Not test_notebooks_ui: its Chromium talks HTTP to a
# JupyterLab, and a veth appearing on the host (the system tests make them) aborts its requests
# with ERR_NETWORK_CHANGED, so it runs with the system tests, one at a time.
OFFLINE_MODULES = {
    "test_analysis", "test_analysis_stats", "test_architecture_doc", "test_dataset", "test_environment",
    "test_export", "test_export_perfetto", "test_import", "test_installed", "test_notebooks",
    "test_perf_parse", "test_plots", "test_report", "test_report_browser", "test_results",
    "test_summary", "test_user_kernel", "test_vocab", "test_bad_datasets", "test_report_safety",
    "test_bad_input", "test_hardware_doc",
}


def pytest_collection_modifyitems(config, items) -> None:
    """A test that may wait for the shared lab guest gets the time that boot needs; those tests run last."""
    waits = lambda item: bool(LAB_FIXTURES & set(getattr(item, "fixturenames", ())))
    for item in items:
        if item.module.__name__.rpartition(".")[2] in OFFLINE_MODULES:
            item.add_marker(pytest.mark.offline)
    for item in items:
        if waits(item):
            item.add_marker(pytest.mark.timeout(2 * LAB_GUEST_TIMEOUT_S + 60))
    # the session's lab work runs beside the host tests from the start: its tests go last, to find it done
    items.sort(key=waits)


_shared_boot: BackgroundBoot | None = None
LAB_FIXTURES = {"lab_guest", "lab_user_kernel", "lab_fault"}     # the tests that wait for the session's lab work


@pytest.fixture(scope="session", autouse=True)
def nothing_left_by_the_session(request) -> Iterator[None]:
    """After the session (its shared fixtures too): nothing of ours is left. When a collected test
    needs the shared lab guest, its boot starts here, first, and runs beside the host tests."""
    global _shared_boot
    with leftovers.nothing_left(background=True):
        if any(LAB_FIXTURES & set(getattr(item, "fixturenames", ())) for item in request.session.items):
            _shared_boot = BackgroundBoot(lab.prepare(check_archive=False))
        try:
            yield
        finally:
            if _shared_boot:
                _shared_boot.stop()


@pytest.fixture(autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """After every test: no namespace, veth, BPF program or process of ours is left (it fails the
    test, naming each, after removing them so that the next test starts clean)."""
    with leftovers.nothing_left():
        yield


@pytest.fixture(scope="session")
def loadgen_bin() -> Path:
    """loadgen/zcrx-loadgen, built if missing or stale."""
    return loadgen.binary()


@pytest.fixture(scope="module")
def sender_ns() -> Iterator[netns.VethPair]:
    """A sender namespace + veth pair (MTU 65535) for the module; removed afterwards."""
    with netns.sender_netns(mtu=65535) as pair:
        yield pair


@pytest.fixture(scope="session")
def lab_kernel() -> lab.LabKernel:
    """The default lab kernel, prepared once per session (downloads come from the cache)."""
    return lab.prepare(check_archive=False)


@pytest.fixture(scope="session")
def lab_guest(lab_kernel: lab.LabKernel, loadgen_bin: Path) -> SharedBoot:
    """The one lab guest boot the lab tests share (lab_guest.py says what runs in it), started at
    the beginning of the session; its files go with the session."""
    assert _shared_boot is not None, "the session's lab work was not started"
    return _shared_boot.wait()


@pytest.fixture(scope="session")
def lab_user_kernel(lab_kernel: lab.LabKernel, loadgen_bin: Path) -> dict:
    """The prepared kernel as a user's build tree, booted by `lab run` and `record --kernel TREE`
    in the session's lab work (lab_guest.py: USER_KERNEL_SCRIPT, RECORD_ARGV)."""
    assert _shared_boot is not None, "the session's lab work was not started"
    return _shared_boot.wait_user_kernel()


@pytest.fixture(scope="session")
def lab_fault(lab_kernel: lab.LabKernel, loadgen_bin: Path) -> dict:
    """`record --kernel` whose QEMU the session's lab work SIGKILLed after the guest's first run
    (lab_guest.py: FAULT_ARGV): what faults/test_fault_lab.py asserts on."""
    assert _shared_boot is not None, "the session's lab work was not started"
    return _shared_boot.wait_fault()


@pytest.fixture
def veth_netns():
    """A network namespace of this test's own with a veth pair (zv0 up, its peer zv1) and loopback up;
    removed afterwards (with the pair)."""
    name = f"zcrxtest{time.time_ns() % 10**8}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "add", "zv0", "type", "veth", "peer", "name", "zv1"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "zv0", "up"], check=True)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name])
