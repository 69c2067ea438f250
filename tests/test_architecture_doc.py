"""docs/architecture.md: every path its "Where to add" table names exists, and the docs speak of
this repository only."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PATH = re.compile(r"`([A-Za-z0-9_./-]+/[A-Za-z0-9_./-]*)`")


def _where_to_add_rows() -> list[str]:
    text = DOC.read_text()
    section = text.split("## Where to add", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]


def _named_paths(row: str) -> list[str]:
    """Backticked tokens in a row that look like repository paths (``make -C loadgen vocab`` is a
    command, ``NAME``/``VERB`` placeholders name files to create)."""
    paths = []
    for token in PATH.findall(row):
        if any(p in token for p in ("NAME", "VERB")):
            token = token.rsplit("/", 1)[0] + "/"      # the directory the new file goes into
        paths.append(token)
    return paths


def test_every_path_in_the_where_to_add_table_exists():
    rows = _where_to_add_rows()
    assert len(rows) >= 10, "the table lost its rows"
    named = [p for row in rows for p in _named_paths(row)]
    assert len(named) >= 30
    missing = [p for p in named if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_a_missing_path_would_be_caught(tmp_path):
    assert _named_paths("| x | `zcrxprof/no_such_module.py`, `zcrxprof/cli/VERB.py` |") == [
        "zcrxprof/no_such_module.py", "zcrxprof/cli/"]
    assert not (ROOT / "zcrxprof/no_such_module.py").exists()


def test_documents_speak_of_this_repository_only():
    stale = re.compile(r"\bBRIEF\b|\bthe brief\b|\bissue \d+", re.IGNORECASE)
    files = [*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("notebooks/*.ipynb"),
             *ROOT.glob("bench/*.py")]
    hits = [f"{f.relative_to(ROOT)}: {m.group(0)}" for f in files for m in stale.finditer(f.read_text())]
    assert not hits, hits


def test_every_offline_module_exists():
    """conftest.py's OFFLINE_MODULES (run beside the system tests by scripts/test.sh) names files
    that exist: a renamed module would otherwise drop out of the offline half silently."""
    import ast
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text())
    OFFLINE_MODULES = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                           and getattr(node.targets[0], "id", "") == "OFFLINE_MODULES")
    modules = {p.stem for p in (ROOT / "tests").rglob("test_*.py")}
    assert OFFLINE_MODULES <= modules, sorted(OFFLINE_MODULES - modules)
