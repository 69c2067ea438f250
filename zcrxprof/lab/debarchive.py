"""Fetch Debian packages from suites the host does not use, without touching its apt setup.

A private apt configuration (sources, lists, cache) lives under the cache directory; packages are
downloaded as .debs and extracted with ``dpkg-deb -x`` — never installed system-wide. Used by the
kernel lab (kernels and headers) and by set-up (liburing and uapi headers for the load generator,
through ``scripts/debarchive.py``). Stdlib only: set-up runs it before the project's venv exists.
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from zcrxprof import paths
from zcrxprof.errors import ZcrxprofError

SOURCES = (
    "deb http://deb.debian.org/debian sid main\n"
    "deb http://deb.debian.org/debian trixie-backports main\n"
)
LISTS_MAX_AGE_S = 24 * 3600


def _apt_root() -> Path:
    root = paths.cache_dir() / "apt"
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "debs").mkdir(parents=True, exist_ok=True)
    src = root / "sources.list"
    if not src.exists() or src.read_text() != SOURCES:
        src.write_text(SOURCES)
    return root


def _apt_opts(root: Path) -> list[str]:
    return [
        "-o", f"Dir::Etc::sourcelist={root / 'sources.list'}",
        "-o", "Dir::Etc::sourceparts=-",
        "-o", f"Dir::State::Lists={root / 'lists'}",
        "-o", f"Dir::Cache={root / 'cache'}",
        "-o", "APT::Get::List-Cleanup=0",
        "-o", "Debug::NoLocking=1",
    ]


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ZcrxprofError(f"{cmd[0]} {cmd[1]} failed: {last}")
    return proc.stdout


def update(force: bool = False) -> None:
    """Refresh the private package lists when missing or older than a day."""
    root = _apt_root()
    lists = [p for p in (root / "lists").glob("*_Packages*")]
    fresh = lists and all(time.time() - p.stat().st_mtime < LISTS_MAX_AGE_S for p in lists)
    if fresh and not force:
        return
    print("zcrxprof: updating the private apt lists (sid, trixie-backports)", file=sys.stderr)
    _run(["apt-get", *_apt_opts(root), "-q", "update"])


def versions(package: str) -> list[str]:
    """All versions of a package in the private suites, newest first."""
    root = _apt_root()
    out = _run(["apt-cache", *_apt_opts(root), "madison", package])
    found = [line.split("|")[1].strip() for line in out.splitlines() if "|" in line]
    return sorted(set(found), key=_VersionKey, reverse=True)


def search(pattern: str) -> list[str]:
    """Package names matching a regular expression over names only."""
    root = _apt_root()
    out = _run(["apt-cache", *_apt_opts(root), "search", "--names-only", pattern])
    return sorted({line.split(" - ")[0].strip() for line in out.splitlines() if line.strip()})


def version_ge(a: str, b: str) -> bool:
    """Debian version comparison, ``a >= b``."""
    return subprocess.run(["dpkg", "--compare-versions", a, "ge", b]).returncode == 0


class _VersionKey:
    def __init__(self, v: str) -> None:
        self.v = v

    def __lt__(self, other: "_VersionKey") -> bool:
        return subprocess.run(["dpkg", "--compare-versions", self.v, "lt", other.v]).returncode == 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _VersionKey) and self.v == other.v


def resolve(package: str, minimum: str | None = None, pinned: str | None = None) -> str:
    """The version to use: the pinned one if given, else the newest ≥ minimum."""
    update()
    avail = versions(package)
    if pinned:
        if pinned not in avail:
            raise ZcrxprofError(f"{package} {pinned} is not in Debian's archive now (have: {', '.join(avail) or 'none'})")
        return pinned
    ok = [v for v in avail if minimum is None or version_ge(v, minimum)]
    if not ok:
        raise ZcrxprofError(f"no {package} >= {minimum} in Debian's archive (have: {', '.join(avail) or 'none'})")
    return ok[0]


def download(package: str, version: str) -> Path:
    """Download one .deb into the cache (kept between runs) and return its path."""
    root = _apt_root()
    debs = root / "debs"
    safe = re.sub(r"^\d+:", "", version)
    hits = sorted(debs.glob(f"{package}_{safe.replace(':', '%3a')}_*.deb"))
    if hits:
        return hits[0]
    update()
    _run(["apt-get", *_apt_opts(root), "-q", "download", f"{package}={version}"], cwd=debs)
    hits = sorted(debs.glob(f"{package}_*{safe.replace(':', '%3a')}_*.deb"))
    if not hits:
        raise ZcrxprofError(f"apt-get download {package}={version} left no .deb in {debs}")
    return hits[0]


def extract(deb: Path, dest: Path) -> None:
    """Unpack a .deb's files under dest (no maintainer scripts run)."""
    dest.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb), str(dest)])
