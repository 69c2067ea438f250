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

Every tool states the tree it used. Set-up step (idempotent, prints the tree)::

    python3 -m zcrxprof.probes.headers prepare-host
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from zcrxprof.errors import ZcrxprofError

PROJECT_DIR = Path(__file__).resolve().parents[2]
FALLBACK_DIR = PROJECT_DIR / ".build" / "kheaders"
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


def _apt(args: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(["apt-cache" if args[0] in ("depends", "policy") else "apt-get", *args],
                          cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ZcrxprofError(f"apt {args[0]} {' '.join(args[1:])} failed: {last}")
    return proc.stdout


def _depends(package: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in _apt(["depends", package]).splitlines()
            if line.strip().startswith("Depends:")]


def _candidate(package: str) -> str:
    for line in _apt(["policy", package]).splitlines():
        if line.strip().startswith("Candidate:"):
            return line.split(":", 1)[1].strip()
    raise ZcrxprofError(f"no candidate version of {package} in the host's apt sources")


def prepare_host() -> HeaderTree:
    """Download bookworm's linux-headers (flavour, common, kbuild), join them under .build/kheaders."""
    have = fallback_tree()
    if have is not None:
        return have
    from zcrxprof.debarchive import cache_dir
    flavour = next((d for d in _depends(META_PACKAGE) if d.startswith("linux-headers-")), None)
    if flavour is None:
        raise ZcrxprofError(f"{META_PACKAGE} names no linux-headers package in the host's apt sources")
    deps = _depends(flavour)
    common = next((d for d in deps if d.startswith("linux-headers-") and d.endswith("-common")), None)
    kbuild = next((d for d in deps if d.startswith("linux-kbuild-")), None)
    if common is None or kbuild is None:
        raise ZcrxprofError(f"{flavour} does not depend on a -common and a linux-kbuild package")
    version = _candidate(flavour)
    debs = cache_dir() / "kheaders"
    debs.mkdir(parents=True, exist_ok=True)
    for pkg in (flavour, common, kbuild):
        if not list(debs.glob(f"{pkg}_*.deb")):
            print(f"zcrxprof: downloading {pkg} (BCC header tree for the host)", file=sys.stderr)
            _apt(["-q", "download", pkg], cwd=debs)
    root = FALLBACK_DIR / "root"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for pkg in (flavour, common, kbuild):
        deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    src = root / "usr" / "src"
    merged = src / f"{flavour}-merged"
    for part in (src / common, src / flavour):   # the flavour's generated files win
        subprocess.run(["cp", "-a", f"{part}/.", str(merged)], check=True)
    if not (merged / "include" / "linux" / "kconfig.h").is_file():
        raise ZcrxprofError(f"joined header tree {merged} lacks include/linux/kconfig.h")
    for part in (src / common, src / flavour):   # joined copies only; kbuild stays for the links
        shutil.rmtree(part)
    FALLBACK_META.write_text(json.dumps({"path": str(merged), "package": flavour, "version": version,
                                         "packages": [flavour, common, kbuild]}, indent=1))
    tree = fallback_tree()
    assert tree is not None
    return tree


def main(argv: list[str] | None = None) -> int:
    """``prepare-host`` (set-up) or ``show`` (the tree a tool would use now)."""
    ap = argparse.ArgumentParser(prog="python3 -m zcrxprof.probes.headers", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("prepare-host", "show"))
    args = ap.parse_args(argv)
    try:
        tree = prepare_host() if args.action == "prepare-host" else select()
    except ZcrxprofError as exc:
        print(f"zcrxprof: error: {exc}", file=sys.stderr)
        return 1
    print(tree.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
