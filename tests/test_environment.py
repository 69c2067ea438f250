"""environment.yml (conda-forge) stays in step with pyproject.toml."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda-only entries that have no pyproject counterpart, and why.
CONDA_ONLY = {
    "python": "the interpreter (pyproject's requires-python)",
    "bcc": "BCC; Debian's python3-bpfcc outside conda, never PyPI's unrelated 'bcc'",
    "pip": "installs the pip-only entries",
}
REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:>=\s*([0-9][0-9.]*))?\s*$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(spec: str) -> tuple[str, str | None]:
    m = REQ.match(spec)
    assert m, f"unparsable requirement {spec!r} (use NAME or NAME>=VERSION)"
    return _norm(m.group(1)), m.group(2)


def _pyproject() -> dict[str, str | None]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs.extend(extra)
    return dict(_parse(s) for s in specs)


def _environment() -> tuple[dict[str, str | None], dict[str, str | None], dict]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda: dict[str, str | None] = {}
    pip: dict[str, str | None] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep.get("pip", []):
                name, ver = _parse(spec)
                pip[name] = ver
        else:
            name, ver = _parse(dep)
            conda[name] = ver
    return conda, pip, env


def test_every_pyproject_dependency_is_in_environment_with_the_same_minimum():
    wanted = _pyproject()
    conda, pip, _ = _environment()
    found = {**conda, **pip}
    missing = sorted(set(wanted) - set(found))
    assert not missing, f"in pyproject.toml but not environment.yml: {missing}"
    mismatched = {n: (wanted[n], found[n]) for n in wanted if wanted[n] != found[n]}
    assert not mismatched, f"minimum versions differ (pyproject, environment): {mismatched}"


def test_environment_has_nothing_pyproject_does_not_know():
    wanted = _pyproject()
    conda, pip, _ = _environment()
    extra = sorted(n for n in {**conda, **pip} if n not in wanted and n not in CONDA_ONLY)
    assert not extra, f"in environment.yml but not pyproject.toml: {extra}"
    assert not (set(conda) & set(pip)), "a package is listed for both conda and pip"


def test_python_floor_matches_requires_python_and_channel_is_conda_forge():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    floor = re.search(r">=\s*([0-9.]+)", data["project"]["requires-python"]).group(1)
    conda, _, env = _environment()
    assert conda["python"] == floor
    assert env["channels"][0] == "conda-forge"
    assert "bcc" in conda and "bcc" not in _environment()[1], "bcc must come from conda-forge"
