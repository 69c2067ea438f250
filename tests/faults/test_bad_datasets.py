"""Damaged datasets: truncated, corrupt or foreign parquet and JSON, a newer schema version, in every
table file and in the part files an unfinished recording leaves (``parts/<table>.<n>.parquet``, which
readers append to the table). Every command that reads a dataset (show, report, export, ls) answers
with one line and a non-zero exit, or — where the damage does not touch what it reads — works; an
absent table (other than runs) is read as empty and named in one note line (docs/dataset.md);
never a traceback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zcrxprof import cli, dataset, schema
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


# what is done to a parquet file (a table file, or a part file of an unfinished recording)
PARQUET_DAMAGE = {"truncated": _truncate, "bytes flipped": _flip_middle, "foreign columns": _foreign_parquet,
                  "strings for numbers": _wrong_dtypes, "a CSV": _csv, "a directory": _directory,
                  "empty": lambda f: f.write_bytes(b""), "missing": _delete}
DAMAGE = {
    **{f"{table}.parquet": PARQUET_DAMAGE for table in schema.TABLES},
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
# a part missing is no damage: a run writes no part for a table it has no rows for
PART_DAMAGE = {d: f for d, f in PARQUET_DAMAGE.items() if d != "missing"}
# the tables the small dataset's one run fills, so the unfinished recording left a part of each
PART_TABLES = ("runs", "intervals", "threads", "registrations", "system", "perf_counters")


def _reads_the_same(f: Path, intact: pd.DataFrame) -> bool:
    """True when the damaged parquet ``f`` still decodes to ``intact`` (flipped bytes pyarrow never
    decodes: a table with no rows is all footer metadata, which pyarrow may ignore)."""
    try:
        return pd.read_parquet(f).equals(intact)
    except Exception:  # pyarrow raises several kinds for a damaged file
        return False


@pytest.fixture(scope="module")
def unfinished_dataset(small_dataset, tmp_path_factory) -> Path:
    """The small dataset as a recording killed before it ended leaves it: empty table files, the
    run's rows in part files, ``complete: false`` (written by the real writer, never closed)."""
    small = dataset.load(small_dataset)
    meta = {k: v for k, v in small.metadata.items() if k not in ("complete", "runs_done", "finished", "name")}
    path = tmp_path_factory.mktemp("unfinished") / "unfinished"
    dataset.DatasetWriter(path, meta).add_run(dict(small.tables))
    return path


def commands(ds: Path, tmp: Path) -> list[list[str]]:
    return [["show", str(ds)], ["report", str(ds), "-o", str(tmp / "r.html")],
            ["export", "--pyperf", str(tmp / "e.json"), str(ds)],
            ["export", "--perfetto", str(tmp / "e.pftrace"), str(ds)],
            ["summary", str(ds)], ["compare", str(ds), str(ds)]]


def check_commands(ds: Path, tmp: Path, capsys, expect, damaged: bool = True) -> None:
    """Run every reading command on ``ds``; ``expect(argv, rc, lines)`` asserts the answer."""
    for argv in commands(ds, tmp):
        rc, lines = run(argv, capsys)
        if damaged:
            count("commands run on damaged datasets")
        expect(argv, rc, lines)
    rc, lines = run(["ls", "--root", str(ds.parent)], capsys)          # ls lists what it can
    assert rc == 0 or len(lines) == 1, lines


@pytest.mark.parametrize("name, damage", CASES, ids=[f"{f} {d}" for f, d in CASES])
def test_a_damaged_dataset_is_refused_in_one_line(name, damage, small_dataset, tmp_path, capsys):
    ds = tmp_path / "damaged"
    shutil.copytree(small_dataset, ds)
    f = ds / name
    intact = pd.read_parquet(f) if damage == "bytes flipped" and name.endswith(".parquet") else None
    DAMAGE[name][damage](f)
    unchanged = intact is not None and _reads_the_same(f, intact)
    count("bad inputs tried: damaged datasets")

    def expect(argv, rc, lines):
        if unchanged:                   # nothing the commands read was damaged: they work as before
            assert rc == 0 and not lines, (argv, rc, lines)
        elif damage == "newer schema":
            assert rc != 0 and len(lines) == 1 and "newer" in lines[0], (argv, rc, lines)
        elif damage == "missing" and name != "runs.parquet":
            # every command reads an absent table as empty (a dataset older than the table) and says so
            table = name.removesuffix(".parquet")
            assert len(lines) == 1 and lines[0].startswith("note: ") and f"{table} table" in lines[0], (argv, rc, lines)
            assert rc == 0, (argv, rc, lines)
        else:
            assert rc != 0 and len(lines) == 1, (argv, rc, lines)
    check_commands(ds, tmp_path, capsys, expect)


def test_an_unfinished_recording_is_read_with_its_parts(unfinished_dataset, small_dataset, tmp_path, capsys):
    """The control for the part damage below: undamaged, the parts are read (the refusals there come
    from the damage) — also with a staged temporary left by a recording killed inside a write."""
    ds = tmp_path / "unfinished"
    shutil.copytree(unfinished_dataset, ds)
    assert {f.name.split(".")[0] for f in (ds / "parts").glob("*.parquet")} == set(PART_TABLES)
    (ds / "parts" / ".runs.000001.parquet.x1y2z3.tmp").write_bytes(b"half a parquet file")
    loaded, small = dataset.load(ds), dataset.load(small_dataset)
    for table in schema.TABLES:
        assert len(loaded[table]) == len(small[table]), table
    assert loaded.metadata["complete"] is False

    def expect(argv, rc, lines):
        assert rc == 0 and not lines, (argv, rc, lines)
    check_commands(ds, tmp_path, capsys, expect, damaged=False)
    capsys.readouterr()
    assert cli.main(["show", str(ds)]) == 0
    assert "PARTIAL" in capsys.readouterr().out


@pytest.mark.parametrize("damage", PART_DAMAGE)
def test_a_damaged_part_of_an_unfinished_recording_is_refused_in_one_line(damage, unfinished_dataset, tmp_path,
                                                                           capsys):
    for table in PART_TABLES:
        ds = tmp_path / table / "unfinished"
        shutil.copytree(unfinished_dataset, ds)
        f = ds / "parts" / f"{table}.000000.parquet"
        assert f.is_file(), f
        intact = pd.read_parquet(f)
        PART_DAMAGE[damage](f)
        unchanged = damage == "bytes flipped" and _reads_the_same(f, intact)
        count("bad inputs tried: damaged part files")

        def expect(argv, rc, lines):
            if unchanged:
                assert rc == 0 and not lines, (table, argv, rc, lines)
            else:
                assert rc != 0 and len(lines) == 1, (table, argv, rc, lines)
        check_commands(ds, tmp_path / table, capsys, expect)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from([f"{t}.parquet" for t in schema.TABLES]
                              + [f"parts/{t}.000000.parquet" for t in PART_TABLES]),
       cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255)), max_size=8))
def test_random_damage_never_gives_a_traceback(target, cut, flips, small_dataset, unfinished_dataset,
                                               tmp_path_factory, capsys):
    ds = tmp_path_factory.mktemp("rnd") / "ds"
    shutil.copytree(unfinished_dataset if target.startswith("parts/") else small_dataset, ds)
    f = ds / target
    data = bytearray(f.read_bytes())
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    f.write_bytes(bytes(data[: max(0, int(cut * len(data)))] if cut < 1 else data))
    count("bad inputs tried: random parquet damage")
    rc, lines = run(["show", str(ds)], capsys)
    assert rc == 0 or len(lines) == 1, lines
