"""`pip install .` (not editable) into a fresh venv: `zcrxprof --help`, `doctor`, `show` and `report`
work on a shipped dataset from a directory that is no checkout.

The tree is copied first (the files git tracks or would track), so the installed package cannot see
the checkout; its dependencies are the test environment's (what `pip install` would fetch is
pyproject's business, checked by tests/test_environment.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from zcrxprof import paths

pytestmark = pytest.mark.install

ROOT = paths.checkout()
DATASET = "host-copy-4topo"


def _run(cmd: list, cwd: Path, env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}: {res.stderr[-2000:]}"
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin dir, environment, working directory) of a fresh non-editable install."""
    top = tmp_path_factory.mktemp("installed")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    src = top / "src"
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    venv = top / "venv"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZCRXPROF_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(top / "home"), XDG_DATA_HOME="", XDG_CACHE_HOME="")
    _run([sys.executable, "-m", "venv", venv], top, env)
    # the dependencies come from the test's own environment (a .pth naming its site-packages, whose
    # own .pth files -- the checkout's editable install -- are not read); zcrxprof itself is built
    # from the copy and installed into the fresh venv, which comes first on sys.path
    site = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "zcrxprof-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([venv / "bin" / "pip", "install", "-q", "--no-deps", src], top, env, timeout=600)
    work = top / "elsewhere"
    work.mkdir()
    shutil.copytree(ROOT / "datasets" / DATASET, work / DATASET)
    return venv / "bin", env, work


def test_installed_package_is_no_checkout_and_ships_its_bpf_sources(installed):
    bin_dir, env, work = installed
    code = ("import json, zcrxprof, zcrxprof.paths as p; print(json.dumps([zcrxprof.__file__, str(p.checkout()), "
            "str(p.datasets_root()), str(p.build_dir()), sorted(f.name for f in p.probes_dir().iterdir())]))")
    package, checkout, datasets, build, bpf = json.loads(_run([bin_dir / "python", "-c", code], work, env).stdout)
    assert "site-packages" in package and checkout == "None"
    home = env["HOME"]
    assert datasets == f"{home}/.local/share/zcrxprof/datasets" and build == f"{home}/.cache/zcrxprof"
    assert "common.h" in bpf and "zcrxstat.bpf.c" in bpf


def test_installed_help_and_doctor_run(installed):
    bin_dir, env, work = installed
    assert "usage: zcrxprof" in _run([bin_dir / "zcrxprof", "--help"], work, env).stdout
    doctor = json.loads(_run([bin_dir / "zcrxprof", "doctor", "--json"], work, env).stdout)
    loadgen = next(c for c in doctor["capabilities"] if c["name"] == "loadgen")
    assert "site-packages" not in loadgen["detail"]


def test_installed_show_and_report_read_a_shipped_dataset(installed):
    bin_dir, env, work = installed
    shown = _run([bin_dir / "zcrxprof", "show", work / DATASET], work, env).stdout
    assert all(t in shown for t in ("single", "workers", "ifq-per-ring", "shared-ifq"))
    _run([bin_dir / "zcrxprof", "report", work / DATASET, "-o", work / "report.html"], work, env)
    assert DATASET in (work / "report.html").read_text()
