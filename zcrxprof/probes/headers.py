"""Which kernel header tree BCC compiles against, and the host fallback tree set-up provides.

BCC needs a kernel header tree even for tracepoint programs, and neither the host kernel nor the lab
kernel ships one (no ``/lib/modules/$(uname -r)/build``, no ``CONFIG_IKHEADERS``). The choice, first
match wins:

1. ``BCC_KERNEL_SOURCE`` already set by the user;
2. the running kernel's own ``/lib/modules/$(uname -r)/build`` when complete (Debian's flavour
   package alone, as in the lab guest, lacks ``include/linux/kconfig.h``);
3. the lab kernel's merged tree (``zcrxprof.lab.headers_dir``) when running inside the lab guest;
4. the host fallback: Debian bookworm's ``linux-headers-amd64`` (+ its ``-common`` and
   ``linux-kbuild`` packages) joined into one tree under ``.build/kheaders/`` by set-up. It is another
   kernel version than the host's: good for programs that read no kernel structs (tracepoints take
   their fields from tracefs; fentry/kprobe handlers here read only scalar arguments).

Every tool states the tree it used. Set-up makes the host fallback tree (idempotent, prints it)::

    .venv/bin/python scripts/host_headers.py
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from zcrxprof import paths
from zcrxprof.errors import ZcrxprofError

FALLBACK_DIR = paths.build_dir() / "kheaders"
FALLBACK_META = FALLBACK_DIR / "tree.json"
META_PACKAGE = "linux-headers-amd64"   # bookworm's meta package: names the current 6.1 ABI


@dataclass(frozen=True)
class HeaderTree:
    """A kernel header tree BCC compiles against, and where it came from."""

    path: Path
    origin: str          # env | kernel | lab | fallback
    label: str           # one line for reports, e.g. "fallback: Debian linux-headers-6.1.0-56-amd64 6.1.192-2"
    matches_kernel: bool  # built for the running kernel release

    def describe(self) -> str:
        """One line: label, path and whether it matches the running kernel."""
        match = "matches the running kernel" if self.matches_kernel else \
            f"not the running kernel's ({os.uname().release})"
        return f"{self.label} at {self.path} ({match})"


def _lab_tree(release: str) -> Path | None:
    try:
        from zcrxprof import lab
        path = lab.headers_dir(release)
    except (ImportError, ZcrxprofError, AttributeError):
        return None
    return path if (path / "include" / "linux" / "kconfig.h").is_file() else None


def fallback_tree() -> HeaderTree | None:
    """The host fallback tree prepared by set-up, if present and complete."""
    try:
        meta = json.loads(FALLBACK_META.read_text())
    except (OSError, ValueError):
        return None
    path = Path(meta["path"])
    if not (path / "include" / "linux" / "kconfig.h").is_file():
        return None
    return HeaderTree(path, "fallback", f"fallback: Debian {meta['package']} {meta['version']}",
                      matches_kernel=False)


_used: HeaderTree | None = None   # what use() set, so later tools in this process report it, not "user"


def select() -> HeaderTree:
    """The header tree to compile against (see the module docstring for the order)."""
    release = os.uname().release
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env and _used is not None and env == str(_used.path):
        return _used
    if env:
        return HeaderTree(Path(env), "env", "BCC_KERNEL_SOURCE (set by the user)",
                          matches_kernel=release in env)
    build = Path("/lib/modules") / release / "build"
    if (build / "include" / "linux" / "kconfig.h").is_file():   # a complete tree, not a flavour dir alone
        return HeaderTree(build.resolve(), "kernel", f"kernel's own /lib/modules/{release}/build",
                          matches_kernel=True)
    lab = _lab_tree(release)
    if lab is not None:
        return HeaderTree(lab, "lab", f"lab kernel headers for {release}", matches_kernel=True)
    fb = fallback_tree()
    if fb is not None:
        return fb
    raise ZcrxprofError("no kernel header tree for BCC: run scripts/setup.sh (host fallback tree) "
                        "or set BCC_KERNEL_SOURCE")


def use(tree: HeaderTree) -> None:
    """Point BCC at ``tree`` (libbcc reads ``BCC_KERNEL_SOURCE`` when it compiles)."""
    global _used
    os.environ["BCC_KERNEL_SOURCE"] = str(tree.path)
    _used = tree
