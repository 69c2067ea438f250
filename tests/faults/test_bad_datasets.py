"""Damaged datasets: truncated, corrupt or foreign parquet and JSON, a newer schema version. Every
command that reads a dataset (show, report, export, ls) answers with one line and a non-zero exit,
or — where the damage does not touch what it reads — works; never a traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcrxprof import cli, schema
from tally import count, has_traceback


def run(argv: list[str], capsys) -> tuple[int, list[str]]:
    """``zcrxprof ARGV`` in-process: (exit status, stderr lines); fails on a traceback."""
    capsys.readouterr()
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # what would have been a traceback
        pytest.fail(f"zcrxprof {' '.join(argv)} raised {type(exc).__name__}: {exc}")
    err = capsys.readouterr().err
    assert not has_traceback(err), err
    return rc, [l for l in err.splitlines() if l.strip()]


def _truncate(f: Path) -> None:
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])


def _flip_middle(f: Path) -> None:
    data = bytearray(f.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    f.write_bytes(bytes(data))


def _foreign_parquet(f: Path) -> None:
    pd.DataFrame({"something": ["else"], "n": [1]}).to_parquet(f)


def _wrong_dtypes(f: Path) -> None:
    frame = pd.read_parquet(f)
    frame = frame.astype(str)
    if frame.empty:
        frame = pd.DataFrame({c: ["not a number"] for c in frame.columns})
    frame.to_parquet(f)


def _csv(f: Path) -> None:
    f.write_text("run_id,topology\n0,single\n")


def _directory(f: Path) -> None:
    f.unlink()
    f.mkdir()


def _delete(f: Path) -> None:
    f.unlink()


def _meta(change):
    def apply(f: Path) -> None:
        meta = json.loads(f.read_text())
        f.write_text(json.dumps(change(meta)))
    return apply


DAMAGE = {
    "runs.parquet": {"truncated": _truncate, "bytes flipped": _flip_middle, "foreign columns": _foreign_parquet,
                     "strings for numbers": _wrong_dtypes, "a CSV": _csv, "a directory": _directory,
                     "empty": lambda f: f.write_bytes(b""), "missing": _delete},
    "intervals.parquet": {"truncated": _truncate, "foreign columns": _foreign_parquet,
                          "strings for numbers": _wrong_dtypes},
    "metadata.json": {
        "truncated": _truncate, "not JSON": lambda f: f.write_text("{not json"),
        "a list": lambda f: f.write_text("[1, 2]"), "empty": lambda f: f.write_bytes(b""),
        "binary": lambda f: f.write_bytes(b"\xff\xfe\x00garbage"),
        "newer schema": _meta(lambda m: {**m, "schema_version": schema.SCHEMA_VERSION + 1}),
        "schema_version a string": _meta(lambda m: {**m, "schema_version": "two"}),
        "plan a string": _meta(lambda m: {**m, "plan": "x", "place": 3}),
        "keys missing": _meta(lambda m: {"name": m.get("name")}),
    },
}
CASES = [(f, d) for f, kinds in DAMAGE.items() for d in kinds]


def commands(ds: Path, tmp: Path) -> list[list[str]]:
    return [["show", str(ds)], ["report", str(ds), "-o", str(tmp / "r.html")],
            ["export", "--pyperf", str(tmp / "e.json"), str(ds)]]


@pytest.mark.parametrize("name, damage", CASES, ids=[f"{f} {d}" for f, d in CASES])
def test_a_damaged_dataset_is_refused_in_one_line(name, damage, small_dataset, tmp_path, capsys):
    ds = tmp_path / "damaged"
    shutil.copytree(small_dataset, ds)
    DAMAGE[name][damage](ds / name)
    count("bad inputs tried: damaged datasets")
    for argv in commands(ds, tmp_path):
        rc, lines = run(argv, capsys)
        count("bad inputs tried: commands on damaged datasets")
        if damage == "newer schema":
            assert rc != 0 and len(lines) == 1 and "newer" in lines[0], (argv, rc, lines)
        elif argv[0] == "show" and name == "intervals.parquet":
            assert rc == 0 or len(lines) == 1, (argv, rc, lines)    # show does not read intervals
        else:
            assert rc != 0 and len(lines) == 1, (argv, rc, lines)
    rc, lines = run(["ls", "--root", str(tmp_path)], capsys)          # ls lists what it can
    assert rc == 0 or len(lines) == 1, lines


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=st.sampled_from(["runs", "threads", "intervals", "system"]),
       cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=8))
def test_random_damage_never_gives_a_traceback(table, cut, flips, small_dataset, tmp_path_factory, capsys):
    ds = tmp_path_factory.mktemp("rnd") / "ds"
    shutil.copytree(small_dataset, ds)
    f = ds / f"{table}.parquet"
    data = bytearray(f.read_bytes())
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    f.write_bytes(bytes(data[: max(0, int(cut * len(data)))] if cut < 1 else data))
    count("bad inputs tried: random parquet damage")
    rc, lines = run(["show", str(ds)], capsys)
    assert rc == 0 or len(lines) == 1, lines
