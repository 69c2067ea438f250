"""Where zcrxprof finds and keeps things, in a source checkout and when pip-installed.

From a checkout (the package's parent holds ``pyproject.toml`` and ``loadgen/``) everything lives
in the checkout: ``datasets/``, ``.build/``, ``loadgen/zcrx-loadgen``. Installed, the package has
no checkout: datasets go to ``$ZCRXPROF_HOME/datasets`` or the XDG data directory, built and
prepared things to ``$ZCRXPROF_HOME/build`` or the XDG cache directory. Downloads are cached
machine-wide in ``$ZCRXPROF_CACHE`` (default ``/var/cache/zcrxprof``); ``$ZCRXPROF_DATASETS``
overrides the datasets root everywhere.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
BPF_DIR = PACKAGE_DIR / "probes" / "bpf"        # the probes' BPF C sources, shipped with the package
LOADGEN_NAME = "zcrx-loadgen"


def checkout() -> Path | None:
    """The source checkout this package runs from, or None when it is installed."""
    top = PACKAGE_DIR.parent
    if (top / "pyproject.toml").is_file() and (top / "loadgen").is_dir():
        return top
    return None


def _xdg(variable: str, default: str) -> Path:
    return Path(os.environ.get(variable) or Path.home() / default) / "zcrxprof"


def _home() -> Path | None:
    home = os.environ.get("ZCRXPROF_HOME")
    return Path(home) if home else None


def datasets_root() -> Path:
    """Where datasets live: ``$ZCRXPROF_DATASETS``, the checkout's ``datasets/``, ``$ZCRXPROF_HOME/datasets``
    or ``$XDG_DATA_HOME/zcrxprof/datasets`` (``~/.local/share``)."""
    env = os.environ.get("ZCRXPROF_DATASETS")
    if env:
        return Path(env)
    top = checkout()
    if top is not None:
        return top / "datasets"
    home = _home()
    return home / "datasets" if home else _xdg("XDG_DATA_HOME", ".local/share") / "datasets"


def build_dir() -> Path:
    """Built and prepared things (sysroot, lab kernels, header trees, lab runs): the checkout's
    ``.build``, else ``$ZCRXPROF_HOME/build``, else ``$XDG_CACHE_HOME/zcrxprof`` (``~/.cache``)."""
    top = checkout()
    if top is not None:
        return top / ".build"
    home = _home()
    return home / "build" if home else _xdg("XDG_CACHE_HOME", ".cache")


def cache_dir() -> Path:
    """Machine-wide cache for downloads: ``$ZCRXPROF_CACHE``, default ``/var/cache/zcrxprof``."""
    return Path(os.environ.get("ZCRXPROF_CACHE") or "/var/cache/zcrxprof")


def probes_dir() -> Path:
    """The BPF C sources of the probe tools (``common.h``, ``NAME.bpf.c``)."""
    return BPF_DIR


def loadgen_source_dir() -> Path | None:
    """The load generator's C sources (only a checkout has them)."""
    top = checkout()
    return top / "loadgen" if top is not None else None


def loadgen_binary() -> Path:
    """Where ``zcrx-loadgen`` is (or would be built): the checkout's ``loadgen/``, else one on PATH,
    else ``build_dir()/bin``."""
    src = loadgen_source_dir()
    if src is not None:
        return src / LOADGEN_NAME
    found = shutil.which(LOADGEN_NAME)
    return Path(found) if found else build_dir() / "bin" / LOADGEN_NAME


def lab_share_dir() -> Path:
    """What the kernel lab shares read-write with its guest and runs commands in: the checkout,
    else :func:`build_dir` (it holds the prepared kernels and the runs' output)."""
    return checkout() or build_dir()


def versions_env() -> Path | None:
    """The pinned versions of set-up (``scripts/versions.env``), only in a checkout."""
    top = checkout()
    return top / "scripts" / "versions.env" if top is not None else None
