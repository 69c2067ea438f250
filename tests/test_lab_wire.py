"""`lab run --wire`: a zcrx-nodev receiver in the lab guest behind its virtio-net NIC, the sender on
the host in the wire's network namespace (the ``wire`` part of the shared boot, tests/lab_guest.py),
and the namespace gone afterwards."""
from __future__ import annotations

import json
import re

import pytest

from lab_guest import WIRE_CONNECTIONS, records
from zcrxprof.lab import boot, wire

pytestmark = [pytest.mark.lab, pytest.mark.root]


def _summary(text: str) -> dict:
    found = [r for r in records(text) if r["type"] == "summary"]
    assert len(found) == 1, text[-2000:]
    return found[0]


def test_nodev_receiver_in_the_guest_takes_a_host_sender_over_virtio_net(lab_guest):
    d = lab_guest.part("wire")
    assert re.fullmatch(r"zcxp-\d+-lab", lab_guest.result.wire_netns)      # named like netns.py's
    assert "driver: virtio_net" in (d / "ethtool-i").read_text()
    assert (d / "tx.rc").read_text().strip() == "0", (d / "tx.err").read_text()[-2000:]
    assert (d / "rx.rc").read_text().strip() == "0", (d / "rx.err").read_text()[-2000:]
    rx, tx = _summary((d / "rx.json").read_text()), _summary((d / "tx.json").read_text())
    assert rx["status"] == tx["status"] == "ok"
    assert rx["backend"] == "zcrx-nodev" and rx["emulated"] == ["nic"]       # a kernel copy, never zero-copy
    assert rx["mode"] == "listen" and tx["mode"] == "connect"
    assert rx["kernel"] == lab_guest.result.kernel and tx["kernel"] != rx["kernel"]   # host → guest
    assert rx["connections"] == WIRE_CONNECTIONS
    assert rx["bytes_received"] == tx["bytes_sent"] > 0
    assert rx["verify_errors"] == 0
    # every byte came in through the NIC: its receive counter grew by at least the payload
    grew = int((d / "rx_bytes_after").read_text()) - int((d / "rx_bytes_before").read_text())
    assert grew >= rx["bytes_received"]
    # the host end is gone with the guest
    assert lab_guest.result.wire_netns not in json.loads((d / "netns_after").read_text())


def test_wire_runs_vng_in_the_namespace_with_a_tap_nic(lab_kernel, tmp_path):
    argv = boot._vng_argv(lab_kernel, "tcg", 2, "4G", [], tmp_path / "cmd.sh", "zcxp-1-lab")
    assert argv[:4] == ["ip", "netns", "exec", "zcxp-1-lab"]          # QEMU opens the tap in the namespace
    nic = argv.index(f"--qemu-opt=tap,id=zlab0,ifname={wire.TAP},script=no,downscript=no")
    assert nic < argv.index("--exec") and "--qemu-opt=virtio-net-pci,netdev=zlab0" in argv
    assert boot._vng_argv(lab_kernel, "tcg", 2, "4G", [], tmp_path / "cmd.sh")[0] != "ip"   # no wire: as before
    script = boot._guest_script(tmp_path / "r dir", ["true"], tmp_path, {}, [], wire=True)
    assert f"ip addr add {wire.GUEST_ADDR}/{wire.PREFIX_LEN}" in script and "ZCRXPROF_LAB_WIRE_IF" in script
    assert f"{tmp_path}/r dir/wire.err'" in script                    # quoted
    assert "virtio_net" not in boot._guest_script(tmp_path, ["true"], tmp_path, {}, [])
