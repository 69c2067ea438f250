"""A prepared Debian lab kernel laid out as a user's kernel build tree (for `--kernel PATH` tests).

A build tree as virtme-ng boots it: ``arch/x86/boot/bzImage``, ``.config``, ``Makefile``,
``include/config/kernel.release``, and what vng's ``virtme-prep-kdir-mods`` reads to give the guest
its modules: ``modules.order`` (here only the modules the catalogue decompressed, which are those
the guest needs: vng's initramfs cannot read ``.ko.xz``), ``modules.builtin*`` and ``System.map``.
Every file is a link into the prepared kernel or a copy of it; nothing is built.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from zcrxprof import lab


def debian_kernel_as_build_tree(k: lab.LabKernel, dest: Path, release: str | None = None) -> Path:
    """Lay ``k`` out as a build tree in ``dest`` (``release`` overrides kernel.release); returns ``dest``."""
    boot = dest / "arch" / "x86" / "boot"
    boot.mkdir(parents=True)
    (boot / "bzImage").symlink_to(k.vmlinuz)
    shutil.copyfile(k.moddir / "config", dest / ".config")
    (dest / "Makefile").write_text("# stands in for the Makefile of a kernel source tree\n")
    (dest / "include" / "config").mkdir(parents=True)
    (dest / "include" / "config" / "kernel.release").write_text(f"{release or k.version}\n")
    for name in ("System.map", "modules.builtin", "modules.builtin.modinfo", "kernel"):
        (dest / name).symlink_to(k.moddir / name)
    unpacked = sorted(p.relative_to(k.moddir) for p in (k.moddir / "kernel").rglob("*.ko"))
    (dest / "modules.order").write_text("".join(f"{p}\n" for p in unpacked))
    return dest
