#!/usr/bin/env python3
"""Set-up: the host fallback kernel header tree for BCC (see zcrxprof/probes/headers.py).

Downloads Debian bookworm's ``linux-headers-amd64`` flavour package with its ``-common`` and
``linux-kbuild`` packages through the host's apt sources into the cache, and joins them into one tree
under ``.build/kheaders/`` (recorded in its tree.json, which the probes read). Idempotent: an existing
complete tree is kept. ``show`` prints the tree a probe tool would compile against now.

    .venv/bin/python scripts/host_headers.py [prepare|show]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the checkout

from zcrxprof.errors import ZcrxprofError  # noqa: E402
from zcrxprof.paths import cache_dir  # noqa: E402
from zcrxprof.probes.headers import FALLBACK_DIR, FALLBACK_META, META_PACKAGE, HeaderTree, fallback_tree, select  # noqa: E402


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
    """``prepare`` (default: make the host fallback tree) or ``show`` (the tree a tool would use now)."""
    ap = argparse.ArgumentParser(prog="scripts/host_headers.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", nargs="?", default="prepare", choices=("prepare", "show"))
    args = ap.parse_args(argv)
    try:
        tree = prepare_host() if args.action == "prepare" else select()
    except ZcrxprofError as exc:
        print(f"zcrxprof: error: {exc}", file=sys.stderr)
        return 1
    print(tree.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
