"""Dataset schema and I/O: docs in sync, atomic per-run writes, validation, listing, CLI errors.

The frames written here are small hand-built rows exercising the I/O code (not measurements);
recorded datasets are checked in tests/test_collect.py and below for the shipped ones.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from zcrxprof import dataset, schema
from zcrxprof.errors import UsageError, ZcrxprofError

ROOT = Path(__file__).resolve().parents[1]


def _run_rows(run_id: int, topology: str = "single") -> dict[str, pd.DataFrame]:
    """One synthetic run's rows for I/O tests."""
    return {
        "runs": pd.DataFrame([{"run_id": run_id, "repetition": 0, "topology": topology, "backend": "copy",
                               "zero_copy": False, "status": "ok", "gbit_s": 1.5,
                               "started_at": pd.Timestamp("2026-01-01", tz="UTC")}]),
        "intervals": pd.DataFrame([{"run_id": run_id, "t": float(i), "thread": "rx0", "tid": 10, "role": "rx",
                                    "bytes": 1000 * i} for i in range(3)]),
    }


def test_docs_are_generated_from_schema():
    assert (ROOT / "docs" / "dataset.md").read_text() == schema.render_markdown()


def test_every_column_has_a_known_dtype_and_a_description():
    for table in schema.TABLES.values():
        names = table.column_names
        assert len(names) == len(set(names)), table.name
        for col in table.columns:
            assert col.dtype in schema.DTYPES, (table.name, col.name)
            assert col.description.strip(), (table.name, col.name)
        if table.name != "runs":
            assert "run_id" in names


def test_conform_fills_missing_values_by_dtype():
    frame = schema.conform("intervals", pd.DataFrame([{"run_id": 1, "thread": None, "bytes": "7"}]))
    assert list(frame.columns) == schema.TABLES["intervals"].column_names
    row = frame.iloc[0]
    assert row["bytes"] == 7 and row["ring"] == -1 and row["thread"] == "" and pd.isna(row["t"])
    assert schema.check_frame("intervals", frame) == []


def test_writer_round_trip_and_completion(tmp_path):
    w = dataset.DatasetWriter(tmp_path / "ds", {"backend": "copy", "plan": {"topologies": ["single", "workers"], "runs": 2}})
    assert dataset.read_metadata(tmp_path / "ds")["complete"] is False
    w.add_run(_run_rows(0))
    assert dataset.load(tmp_path / "ds")["runs"]["run_id"].tolist() == [0]
    w.add_run(_run_rows(1, "workers"))
    w.close(complete=True, finished="2026-01-01T00:00:00+00:00")
    ds = dataset.load(tmp_path / "ds")
    assert ds.metadata["complete"] is True and ds.metadata["runs_done"] == 2
    assert ds["runs"]["topology"].tolist() == ["single", "workers"]
    assert ds["intervals"].groupby("run_id")["bytes"].sum().tolist() == [3000, 3000]
    assert set(ds.tables) == set(schema.TABLES)
    assert dataset.validate(tmp_path / "ds") == []
    listed = dataset.list_datasets(tmp_path)
    assert [(d["name"], d["runs"], d["complete"], d["topologies"]) for d in listed] == \
        [("ds", 2, True, ["single", "workers"])]


def test_a_failed_write_keeps_the_previous_table_whole(tmp_path, monkeypatch):
    w = dataset.DatasetWriter(tmp_path / "ds", {})
    w.add_run(_run_rows(0))

    def boom(self, path, **kw):
        Path(path).write_bytes(b"half a parquet file")
        raise OSError("disk full")
    monkeypatch.setattr(pd.DataFrame, "to_parquet", boom)
    with pytest.raises(ZcrxprofError, match="disk full"):
        w.add_run(_run_rows(1))
    monkeypatch.undo()
    assert dataset.load(tmp_path / "ds")["runs"]["run_id"].tolist() == [0]
    assert not list((tmp_path / "ds").rglob(".*tmp")), "temporary files left behind"
    assert dataset.read_metadata(tmp_path / "ds")["complete"] is False


def test_runs_are_written_as_parts_until_close_folds_them(tmp_path):
    w = dataset.DatasetWriter(tmp_path / "ds", {})
    for run in range(3):
        w.add_run(_run_rows(run))
    parts = tmp_path / "ds" / "parts"
    # each run wrote only its own rows (the cost of a run does not grow with the recording) ...
    assert [pd.read_parquet(f)["run_id"].unique().tolist() for f in sorted(parts.glob("runs.*.parquet"))] == [[0], [1], [2]]
    assert pd.read_parquet(tmp_path / "ds" / "runs.parquet").empty
    # ... and a recording killed before close() still loads and validates, parts included
    assert dataset.load(tmp_path / "ds")["intervals"].groupby("run_id")["bytes"].sum().tolist() == [3000] * 3
    assert dataset.validate(tmp_path / "ds") == []
    w.close(complete=False, finished="2026-01-01T00:00:00+00:00")
    assert not parts.exists()
    assert pd.read_parquet(tmp_path / "ds" / "runs.parquet")["run_id"].tolist() == [0, 1, 2]
    assert dataset.load(tmp_path / "ds").metadata["runs_done"] == 3


class Killed(BaseException):
    """Stands in for SIGKILL: the writer stops where it is, nothing of it runs afterwards."""


def _run_rows_all(run_id: int) -> dict[str, pd.DataFrame]:
    """A run with rows in threads and system too (three tables besides runs)."""
    rows = _run_rows(run_id)
    rows["threads"] = pd.DataFrame([{"run_id": run_id, "thread": "rx0", "tid": 10, "role": "rx", "utime_ns": 5}])
    rows["system"] = pd.DataFrame([{"run_id": run_id, "t": 0.0, "source": "stat", "entity": "cpu",
                                    "metric": "user", "value": 1.0}])
    return rows


@pytest.mark.parametrize("renamed", [0, 1, 2, 3])
def test_a_run_killed_between_its_part_renames_is_absent_from_every_table(tmp_path, monkeypatch, renamed):
    """SIGKILL after ``renamed`` of the run's four part files were renamed: the runs part is renamed
    last, so the run is absent from runs, and the rows its other parts left are not read either."""
    w = dataset.DatasetWriter(tmp_path / "ds", {})
    for run in range(2):
        w.add_run(_run_rows_all(run))
    real_replace, done = dataset.os.replace, []

    def replace(src, dst):
        if len(done) == renamed:
            raise Killed
        real_replace(src, dst)
        done.append(Path(dst).name)
    monkeypatch.setattr(dataset.os, "replace", replace)
    with pytest.raises(Killed):
        w.add_run(_run_rows_all(2))
    monkeypatch.undo()
    assert len(done) == renamed and "runs.000002.parquet" not in done   # orphans of run 2 are on disk
    ds = dataset.load(tmp_path / "ds")
    assert ds["runs"]["run_id"].tolist() == [0, 1]
    for table in ("intervals", "threads", "system"):
        assert sorted(set(ds[table]["run_id"])) == [0, 1], table
    assert len(ds["intervals"]) == 6 and len(ds["threads"]) == 2 and len(ds["system"]) == 2
    assert dataset.validate(tmp_path / "ds") == []                      # runs_done 2 and no stray run_id
    # a part file of another table left for a run whose runs part never came is skipped alike
    orphan = schema.conform("intervals", _run_rows(7)["intervals"])
    orphan.to_parquet(tmp_path / "ds" / "parts" / "intervals.000009.parquet", index=False)
    assert sorted(set(dataset.load(tmp_path / "ds")["intervals"]["run_id"])) == [0, 1]


def test_rows_of_a_table_file_are_never_dropped(tmp_path):
    """Only part files can hold an interrupted run: a table file's rows without a run are damage,
    which validate reports (not hidden)."""
    w = dataset.DatasetWriter(tmp_path / "ds", {})
    w.add_run(_run_rows(0))
    w.close(complete=True, finished="2026-01-01T00:00:00+00:00")
    intervals = pd.concat([pd.read_parquet(tmp_path / "ds" / "intervals.parquet"),
                           schema.conform("intervals", _run_rows(5)["intervals"])], ignore_index=True)
    intervals.to_parquet(tmp_path / "ds" / "intervals.parquet", index=False)
    assert sorted(set(dataset.load(tmp_path / "ds")["intervals"]["run_id"])) == [0, 5]
    assert "intervals: run_id not in runs" in dataset.validate(tmp_path / "ds")


def test_validate_reports_departures(tmp_path):
    w = dataset.DatasetWriter(tmp_path / "ds", {})
    w.add_run(_run_rows(0))
    bad = _run_rows(1)
    bad["runs"]["zero_copy"] = True                      # a copy run claiming zero copy
    w.add_run(bad)
    pd.DataFrame({"run_id": [5]}).to_parquet(tmp_path / "ds" / "threads.parquet")   # columns missing, unknown run
    problems = dataset.validate(tmp_path / "ds")
    assert any("zero_copy" in p for p in problems)
    assert any(p.startswith("threads: column thread missing") for p in problems)
    assert any(p == "threads: run_id not in runs" for p in problems)
    meta = json.loads((tmp_path / "ds" / "metadata.json").read_text())
    meta["runs_done"] = 7
    (tmp_path / "ds" / "metadata.json").write_text(json.dumps(meta))
    assert any("runs_done 7" in p for p in dataset.validate(tmp_path / "ds"))


def test_writer_refuses_an_existing_dataset(tmp_path):
    dataset.DatasetWriter(tmp_path / "ds", {})
    with pytest.raises(UsageError):
        dataset.DatasetWriter(tmp_path / "ds", {})


def test_show_of_unknown_dataset_is_one_line_exit_2(tmp_path):
    p = subprocess.run([sys.executable, "-m", "zcrxprof", "show", "no-such-dataset", "--root", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "no dataset" in p.stderr


def test_ls_lists_partial_datasets_as_partial(tmp_path):
    w = dataset.DatasetWriter(tmp_path / "half", {"backend": "copy", "plan": {"topologies": ["single"], "runs": 3}})
    w.add_run(_run_rows(0))
    p = subprocess.run([sys.executable, "-m", "zcrxprof", "ls", "--root", str(tmp_path), "--json"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    (item,) = [json.loads(line) for line in p.stdout.splitlines()]
    assert (item["name"], item["runs"], item["planned"], item["complete"]) == ("half", 1, 3, False)


SHIPPED = sorted(p.parent for p in (ROOT / "datasets").glob("*/metadata.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_datasets_validate_and_are_labelled(path):
    assert dataset.validate(path) == []
    ds = dataset.load(path)
    runs = ds["runs"]
    assert len(runs) > 0 and (runs["status"] == "ok").any()
    assert set(runs["backend"]) == {ds.metadata["backend"]}
    assert not runs["zero_copy"].any() or set(runs.loc[runs["zero_copy"], "backend"]) == {"zcrx"}
    assert (runs["place"] == ds.metadata["place"]["where"]).all()
    assert (runs["kernel"] != "").all()
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 4 * 2**20, f"{path.name} is {size} bytes"


# --- reading: the one rule (docs/dataset.md, "Reading a dataset") and the one usable run ---------

def _written(tmp_path: Path, runs: int = 2) -> Path:
    w = dataset.DatasetWriter(tmp_path / "ds", {"backend": "copy"})
    for i in range(runs):
        w.add_run(_run_rows(i))
    w.close(complete=True, finished="2026-01-01T00:00:00+00:00")
    return tmp_path / "ds"


def test_an_absent_table_reads_as_empty_and_is_said(tmp_path):
    path = _written(tmp_path)
    (path / "intervals.parquet").unlink()
    ds = dataset.load(path)
    assert ds["intervals"].empty and list(ds["intervals"].columns) == ["dataset", *schema.TABLES["intervals"].column_names]
    assert ds.absent == ["ds: intervals table"]
    assert dataset.absent_notes(ds) == ["note: ds: no intervals table (older dataset? read as empty)"]


def test_an_older_dataset_without_a_column_reads_it_as_its_default_and_says_so(tmp_path):
    path = _written(tmp_path)
    meta = json.loads((path / "metadata.json").read_text())
    (path / "metadata.json").write_text(json.dumps({**meta, "schema_version": schema.SCHEMA_VERSION - 1}))
    pd.read_parquet(path / "runs.parquet").drop(columns=["verify_errors"]).to_parquet(path / "runs.parquet")
    ds = dataset.load(path)
    assert ds["runs"]["verify_errors"].tolist() == [-1, -1]
    assert ds.absent == ["ds: runs.verify_errors column"]
    assert len(ds.usable_runs()) == 2


def test_keys_and_columns_added_later_read_as_null_without_a_note(tmp_path):
    path = _written(tmp_path)
    meta = json.loads((path / "metadata.json").read_text())
    (path / "metadata.json").write_text(json.dumps({k: v for k, v in meta.items() if k not in schema.METADATA_ADDED_LATER}))
    pd.read_parquet(path / "intervals.parquet").drop(columns=["host"]).to_parquet(path / "intervals.parquet")
    assert dataset.validate(path) == []
    ds = dataset.load(path)
    assert ds.absent == [] and (ds["intervals"]["host"] == "").all()
    assert all(ds.metadata.get(k) is None for k in schema.METADATA_ADDED_LATER)
    # any other key is still required
    (path / "metadata.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "machine"}))
    assert dataset.validate(path) == ["metadata: key machine missing"]


def test_a_column_of_the_wrong_kind_is_refused_in_one_line(tmp_path):
    path = _written(tmp_path)
    runs = pd.read_parquet(path / "runs.parquet")
    runs.assign(gbit_s=runs["gbit_s"].astype(str)).to_parquet(path / "runs.parquet")
    with pytest.raises(ZcrxprofError, match=r"runs\.gbit_s: dtype \w+, schema says float64"):
        dataset.load(path)


def test_a_usable_run_is_ok_without_verification_errors():
    runs = pd.DataFrame({"status": ["ok", "ok", "failed", "ok"], "verify_errors": [0, 3, 0, -1]})
    assert dataset.usable(runs).tolist() == [True, False, False, True]
    assert dataset.usable_summary(runs) == "2 of 4 runs usable (status ok, no verification error)"


def test_several_datasets_load_into_one_with_their_identity(tmp_path):
    a = _written(tmp_path / "a", runs=2)
    b = _written(tmp_path / "b", runs=1)
    ds = dataset.load([a, b, a])
    assert ds.names == ["ds", "ds#2", "ds#3"]
    assert ds.paths == {"ds": a, "ds#2": b, "ds#3": a}
    assert ds["runs"].groupby("dataset").size().to_dict() == {"ds": 2, "ds#2": 1, "ds#3": 2}
    assert list(ds["runs"].columns[:2]) == dataset.KEY
    with pytest.raises(ValueError, match="3 datasets loaded"):
        ds.metadata
