"""`zcrxprof doctor` reports this host's real capabilities, checked against independent evidence."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def report() -> dict:
    p = subprocess.run([sys.executable, "-m", "zcrxprof", "doctor", "--json"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    return {c["name"]: c for c in doc["capabilities"]} | {"_kernel": doc["kernel"]}


def _config() -> dict[str, str]:
    try:
        text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        text = Path(f"/boot/config-{os.uname().release}").read_text()
    return dict(l.split("=", 1) for l in text.splitlines() if l.startswith("CONFIG_") and "=" in l)


def test_kernel_line_names_this_kernel_and_its_zcrx_features(report):
    assert report["_kernel"] == os.uname().release
    kernel = report["kernel"]
    assert os.uname().release in kernel["detail"]
    major, minor = map(int, os.uname().release.split(".")[:2])
    assert ("NODEV" in kernel["detail"].split("zcrx features:")[1]) == ((major, minor) >= (7, 1))
    assert ("NODEV" in kernel["disables"]) == ((major, minor) < (7, 1))


def test_kprobes_agree_with_the_kernel_config(report):
    assert report["kprobes"]["ok"] == (_config().get("CONFIG_KPROBES") == "y")
    if not report["kprobes"]["ok"]:
        assert report["kprobes"]["disables"]


def test_pmu_agrees_with_perf_stat(report):
    p = subprocess.run(["perf", "stat", "-x,", "-e", "cycles", "true"], capture_output=True, text=True, timeout=60)
    supported = p.returncode == 0 and "<not supported>" not in p.stderr
    assert report["pmu"]["ok"] == supported, p.stderr


def test_netns_agrees_with_ip_netns(report):
    name = f"zcrxdoc{os.getpid()}"
    p = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=30)
    try:
        assert report["netns"]["ok"] == (p.returncode == 0)
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def test_zcrx_nic_agrees_with_the_drivers_present(report):
    drivers = {os.path.basename(os.readlink(d / "device" / "driver"))
               for d in Path("/sys/class/net").iterdir() if (d / "device" / "driver").exists()}
    capable = drivers & {"bnxt_en", "mlx5_core", "fbnic", "gve", "ice"}
    assert report["zcrx NIC"]["ok"] == bool(capable)


def test_fentry_was_decided_by_trying(report):
    fentry = report["fentry"]
    if fentry["ok"]:
        assert "attached" in fentry["detail"]
    else:
        assert "tcp_recvmsg" in fentry["detail"] or "BTF" in fentry["detail"]
        assert fentry["disables"]


def test_text_output_is_one_line_per_capability(report):
    p = subprocess.run([sys.executable, "-m", "zcrxprof", "doctor"], capture_output=True, text=True, timeout=120)
    lines = p.stdout.strip().splitlines()
    assert p.returncode == 0
    assert len(lines) == len([k for k in report if not k.startswith("_")])
    for line in lines:
        name = line[4:].split("  ")[0].strip()
        assert line.startswith("ok " if report[name]["ok"] else "no "), line
