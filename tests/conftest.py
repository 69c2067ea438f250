"""Shared fixtures: the built load generator and a sender network namespace."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from zcrxprof import loadgen, netns


@pytest.fixture(scope="session")
def loadgen_bin() -> Path:
    """loadgen/zcrx-loadgen, built if missing or stale."""
    return loadgen.binary()


@pytest.fixture(scope="module")
def sender_ns() -> Iterator[netns.VethPair]:
    """A sender namespace + veth pair (MTU 65535) for the module; removed afterwards."""
    with netns.sender_netns(mtu=65535) as pair:
        yield pair
