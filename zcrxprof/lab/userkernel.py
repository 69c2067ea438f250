"""A kernel of the user's own, named by its path: a kernel build tree or a bare kernel image.

``--kernel`` takes either a prepared Debian kernel's version or a path (it contains ``/`` or
exists). A build tree (``arch/x86/boot/bzImage``, ``.config`` and ``Makefile``) is handed to
virtme-ng as it is: ``vng --run TREE`` boots it and builds its module directory from the tree's
``modules.order`` (``.virtme_mods/`` in the tree). An image file is booted as a kernel image; its
modules are found the way vng finds them (``lib/modules/<release>`` or ``usr/lib/modules/<release>``
in a directory above the image), its configuration beside it (``config-<release>``, ``config`` or
``.config``). Everything here is decided on the host, before a guest boots, and is standard
library only (the lab guest and set-up import :mod:`zcrxprof.lab`).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zcrxprof import vocab
from zcrxprof.errors import UsageError

TREE_IMAGE = Path("arch/x86/boot/bzImage")
HDRS_AT = 0x202               # x86 boot protocol: the setup header's "HdrS" signature ...
KERNEL_VERSION_PTR_AT = 0x20E  # ... and the pointer to the version string, relative to 0x200
# what vng's initramfs must load to mount the host's filesystem (built in or as modules)
BOOT_NEEDS = ("CONFIG_NET_9P", "CONFIG_NET_9P_VIRTIO", "CONFIG_9P_FS", "CONFIG_OVERLAY_FS")


def is_path(kernel: str | None) -> bool:
    """Whether ``--kernel`` names a path (a user's kernel) rather than a prepared kernel version."""
    return bool(kernel) and ("/" in kernel or os.path.exists(kernel))


def image_release(image: Path) -> str | None:
    """The kernel release an x86 bzImage carries in its setup header (``kernel_version``), or None."""
    try:
        with open(image, "rb") as f:
            head = f.read(0x210)
            if head[HDRS_AT:HDRS_AT + 4] != b"HdrS" or len(head) < 0x210:
                return None
            ptr = int.from_bytes(head[KERNEL_VERSION_PTR_AT:KERNEL_VERSION_PTR_AT + 2], "little")
            if ptr == 0:
                return None
            f.seek(ptr + 0x200)
            text = f.read(256).split(b"\0")[0].decode("ascii", errors="replace")
    except OSError:
        return None
    return text.split()[0] if text.split() else None


def _read_config(path: Path | None) -> dict[str, str]:
    out: dict[str, str] = {}
    if path is not None and path.is_file():
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("CONFIG_") and "=" in line:
                key, _, value = line.partition("=")
                out[key] = value
    return out


def _git_describe(tree: Path) -> str | None:
    """``git describe --always --dirty`` of a tree that is a git checkout, else None."""
    if not (tree / ".git").exists():
        return None
    try:
        p = subprocess.run(["git", "--no-optional-locks", "-C", str(tree), "describe", "--always", "--dirty"],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout.strip() or None if p.returncode == 0 else None


@dataclass
class UserKernel:
    """A user's kernel: what vng boots, its release, configuration and source identity."""

    given: str                   # the path as the user typed it (recorded as is)
    image: Path                  # the bzImage
    tree: Path | None            # the build tree, or None for a bare image
    version: str                 # the release (`uname -r` in the guest)
    config_path: Path | None     # .config (tree) or the configuration found beside the image
    git_describe: str | None     # `git describe --always --dirty` of a tree that is a git checkout

    @property
    def boot_target(self) -> str:
        """What ``vng --run`` gets: the build tree, or the image."""
        return str(self.tree or self.image)

    def config(self) -> dict[str, str]:
        """The kernel's CONFIG_* options (empty when no configuration was found)."""
        return _read_config(self.config_path)

    def config_sha256(self) -> str | None:
        """sha256 of the configuration file, or None without one."""
        if self.config_path is None or not self.config_path.is_file():
            return None
        return hashlib.sha256(self.config_path.read_bytes()).hexdigest()

    def features(self) -> list[str]:
        """zcrx features by version, none when its configuration lacks CONFIG_IO_URING_ZCRX."""
        config = self.config()
        if config and config.get("CONFIG_IO_URING_ZCRX") != "y":
            return []
        return vocab.kernel_features(self.version)

    def identity(self) -> dict:
        """What a dataset records of this kernel (``kernel_build``; ``query`` is filled in the guest)."""
        return {"path": self.given, "kind": "tree" if self.tree else "image", "release": self.version,
                "git_describe": self.git_describe, "config_sha256": self.config_sha256(),
                "config_zcrx": self.config().get("CONFIG_IO_URING_ZCRX"), "features": self.features(),
                "query": None}


def _image_config(image: Path, release: str) -> Path | None:
    for name in (f"config-{release}", "config", ".config"):
        if (image.parent / name).is_file():
            return image.parent / name
    return None


def _image_moddir(image: Path, release: str) -> Path | None:
    for d in image.resolve().parents:
        for mods in (d / "lib" / "modules" / release, d / "usr" / "lib" / "modules" / release):
            if (mods / "modules.dep").exists() or (mods / "kernel").is_dir():
                return mods
    return None


def load(given: str) -> UserKernel:
    """The user's kernel at path ``given``; UsageError (one line: what is wrong, what is needed)."""
    path = Path(given)
    what = f"--kernel {given}"
    if not path.exists():
        raise UsageError(f"{what}: no such file or directory (give a kernel build tree, a bzImage, or a "
                         "prepared kernel version from `zcrxprof lab status`)")
    if path.is_dir():
        missing = [n for n in (".config", "Makefile") if not (path / n).is_file()]
        if missing:
            raise UsageError(f"{what}: not a kernel build tree (no {' or '.join(missing)}); give the tree "
                             "a kernel was built in, or its arch/x86/boot/bzImage")
        image = path / TREE_IMAGE
        if not image.is_file():
            raise UsageError(f"{what}: the build tree has no built kernel ({TREE_IMAGE}): run "
                             "`make -j$(nproc) bzImage modules` in it first")
        release_file = path / "include" / "config" / "kernel.release"
        release = (release_file.read_text().strip() if release_file.is_file() else None) or image_release(image)
        if not release:
            raise UsageError(f"{what}: {TREE_IMAGE} is not an x86 kernel image (no \"HdrS\" setup header)")
        return UserKernel(given, image, path, release, path / ".config", _git_describe(path))
    release = image_release(path)
    if not release:
        raise UsageError(f"{what}: neither a kernel build tree nor an x86 kernel image (no \"HdrS\" setup "
                         "header with a version)")
    config = _image_config(path, release)
    k = UserKernel(given, path, None, release, config, None)
    modular = [n for n in BOOT_NEEDS if k.config().get(n) == "m"]
    if modular and _image_moddir(path, release) is None:
        raise UsageError(f"{what}: its configuration builds {', '.join(modular)} as modules and no "
                         f"lib/modules/{release}/ lies above the image: give the build tree instead, or "
                         f"install the modules (`make modules_install INSTALL_MOD_PATH=DIR`) next to it")
    return k

