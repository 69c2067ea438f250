"""Which accelerator boots the lab guest here (KVM or TCG), remembered per host and QEMU build."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from zcrxprof import paths


def _accel_file() -> Path:
    return paths.cache_dir() / "lab-accelerator.json"


def _host_key() -> str:
    qemu = shutil.which("qemu-system-x86_64") or ""
    return f"{os.uname().release} {qemu} {Path(qemu).stat().st_mtime if qemu else 0}"


def known_accelerator() -> str | None:
    """The accelerator that worked here last ("kvm"|"tcg"), if recorded for this host and QEMU."""
    try:
        meta = json.loads(_accel_file().read_text())
    except (OSError, ValueError):
        return None
    return meta.get("accelerator") if meta.get("host") == _host_key() else None


def record_accelerator(accel: str) -> None:
    """Remember that ``accel`` ("kvm"|"tcg") booted the guest on this host and QEMU."""
    _accel_file().parent.mkdir(parents=True, exist_ok=True)
    _accel_file().write_text(json.dumps({"accelerator": accel, "host": _host_key()}))


def kvm_usable() -> bool:
    """Whether /dev/kvm can be opened read-write."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True
