"""Shared fixtures: the built load generator, a sender network namespace, and the leftover check
around every test and around the session (tests/leftovers.py says what it looks for)."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import leftovers
from lab_guest import TIMEOUT_S as LAB_GUEST_TIMEOUT_S, SharedBoot, boot_shared_guest
from zcrxprof import lab, loadgen, netns


def pytest_configure(config) -> None:
    """Tag the session: every process the tests start inherits the tag (leftovers.py)."""
    leftovers.tag_session()


def pytest_collection_modifyitems(config, items) -> None:
    """A test that may be the one booting the shared lab guest gets the time that boot needs."""
    for item in items:
        if "lab_guest" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.timeout(LAB_GUEST_TIMEOUT_S + 60))


@pytest.fixture(scope="session", autouse=True)
def nothing_left_by_the_session() -> Iterator[None]:
    """After the session (its shared fixtures too): nothing of ours is left."""
    with leftovers.nothing_left():
        yield


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
def lab_guest(lab_kernel: lab.LabKernel, loadgen_bin: Path) -> Iterator[SharedBoot]:
    """The one lab guest boot the lab tests share (lab_guest.py says what runs in it)."""
    boot = boot_shared_guest(lab_kernel)
    try:
        yield boot
    finally:
        shutil.rmtree(boot.out, ignore_errors=True)
