"""Dataset I/O: write tables atomically run by run, read them back, validate, list datasets.

Layout (columns in zcrxprof/schema.py, documented in docs/dataset.md)::

    datasets/<name>/metadata.json
    datasets/<name>/<table>.parquet      one per table in schema.TABLES, always present
    datasets/<name>/parts/<table>.<n>.parquet   rows of run n while recording (see below)

``DatasetWriter.add_run`` writes only the run's rows, one part file per table, each through a
temporary file and renamed once all were written, then ``metadata.json`` the same way: a crash or
signal between runs never leaves a half-written table, and the cost of a run (memory, I/O) does not
grow with the recording. The ``runs`` part is renamed last: a run is on disk once its ``runs`` row
is, and readers leave out part-file rows whose run has no ``runs`` row (a SIGKILL between the
renames leaves such orphans). ``close()`` folds the parts into ``<table>.parquet``; a recording
killed before that keeps its parts, which readers append to the table file. ``complete`` stays
false until ``close(complete=True)``.

Reading: ``load`` (one dataset or several) returns the one in-memory type, ``Dataset``; what it
refuses and what it reads as empty is the one rule stated in docs/dataset.md ("Reading a
dataset"), and ``usable`` is the one definition of a run numbers are drawn from.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from zcrxprof import paths, schema
from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.vocab import is_zero_copy

METADATA = "metadata.json"
PARTS = "parts"


def default_root() -> Path:
    """Where datasets live (:func:`zcrxprof.paths.datasets_root`)."""
    return paths.datasets_root()


def _staged_write(path: Path, write) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path`` (fsynced); returns the temporary.

    On failure the temporary is removed; a full or read-only disk becomes a ZcrxprofError.
    """
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ZcrxprofError(f"cannot write {path}: {exc.strerror}") from None
    os.fchmod(fd, 0o644)    # mkstemp's 0600 would hide the dataset from other users
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ZcrxprofError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
    return Path(tmp)


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the result over ``path`` (same directory, fsynced)."""
    os.replace(_staged_write(path, write), path)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n"))


def write_table(directory: Path, table: str, frame: pd.DataFrame) -> None:
    """Write one table (conformed to the schema) to ``directory/<table>.parquet`` atomically."""
    frame = schema.conform(table, frame)
    _atomic_write(directory / f"{table}.parquet", lambda tmp: frame.to_parquet(tmp, index=False))


class DatasetWriter:
    """Creates a dataset directory and appends runs to it, each append atomic per table."""

    def __init__(self, path: Path, metadata: dict[str, Any]) -> None:
        """Create ``path`` (must not hold a dataset yet) with empty tables and ``complete: false``."""
        self.path = Path(path)
        if (self.path / METADATA).exists():
            raise UsageError(f"{self.path} already holds a dataset; choose another --name")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            # claim the name: of two recordings started at once with one name, only one creates this
            os.close(os.open(self.path / METADATA, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            raise UsageError(f"{self.path} already holds a dataset; choose another --name") from None
        except OSError as exc:
            raise ZcrxprofError(f"cannot create dataset {self.path}: {exc.strerror}") from None
        self.metadata = {key: None for key in schema.METADATA_KEYS}
        self.metadata.update(schema_version=schema.SCHEMA_VERSION, name=self.path.name, complete=False,
                             runs_done=0, notes=[])
        self.metadata.update(metadata)
        self._runs = 0          # rows of the runs table written
        self._parts = 0         # add_run calls that wrote parts (names the part files)
        try:
            for table in schema.TABLES:
                write_table(self.path, table, schema.empty_frame(table))
            write_json(self.path / METADATA, self.metadata)
        except BaseException as exc:   # e.g. a full disk: leave no half-made dataset behind
            for name in [*(f"{t}.parquet" for t in schema.TABLES), METADATA]:
                (self.path / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                self.path.rmdir()
            if isinstance(exc, OSError):
                raise ZcrxprofError(f"cannot write dataset {self.path}: {exc.strerror}") from None
            raise

    def add_run(self, tables: dict[str, pd.DataFrame | list[dict]]) -> None:
        """Write one run's rows (table name → frame or list of row dicts) as part files, then metadata."""
        unknown = set(tables) - set(schema.TABLES)
        if unknown:
            raise ZcrxprofError(f"unknown dataset table(s): {', '.join(sorted(unknown))}")
        parts = self.path / PARTS
        # every part is written to a temporary first and renamed only once all were written, so a
        # failure (disk full) leaves the earlier runs on disk, consistent, and the run absent
        staged: dict[str, tuple[int, Path]] = {}
        try:
            parts.mkdir(exist_ok=True)
            for table, frame in tables.items():
                if isinstance(frame, list):
                    frame = pd.DataFrame(frame)
                if frame is None or frame.empty:
                    continue
                frame = schema.conform(table, frame)
                staged[table] = (len(frame), _staged_write(_part_path(parts, table, self._parts),
                                                           lambda tmp, f=frame: f.to_parquet(tmp, index=False)))
        except BaseException as exc:
            for _, tmp in staged.values():
                tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise ZcrxprofError(f"cannot write dataset {self.path}: {exc.strerror}") from None
            raise
        for table in sorted(staged, key=lambda t: t == "runs"):   # runs last: then the run exists
            os.replace(staged[table][1], _part_path(parts, table, self._parts))
        self._parts += 1
        self._runs += staged["runs"][0] if "runs" in staged else 0
        self.metadata["runs_done"] = self._runs
        write_json(self.path / METADATA, self.metadata)

    def _fold_parts(self) -> None:
        """Fold every table's part files into its table file (atomically), then remove them."""
        parts = self.path / PARTS
        if not parts.is_dir():
            return
        for table in schema.TABLES:
            files = _part_files(self.path, table)
            if files:
                write_table(self.path, table, _read_rows(self.path, table))
                for f in files:
                    f.unlink()
        with contextlib.suppress(OSError):
            parts.rmdir()

    def update_metadata(self, **fields: Any) -> None:
        """Set metadata keys and rewrite metadata.json atomically."""
        self.metadata.update(fields)
        write_json(self.path / METADATA, self.metadata)

    def close(self, complete: bool, finished: str) -> None:
        """Fold the parts into the tables, then mark the recording ended (``finished``: ISO UTC
        time), complete or partial. Parts that cannot be folded (full disk) stay readable."""
        try:
            self._fold_parts()
        except (OSError, ZcrxprofError) as exc:    # e.g. a full disk: the parts stay, and load
            self.metadata.setdefault("notes", []).append(f"parts not folded into tables: {exc}")
        self.update_metadata(complete=bool(complete), finished=finished)


def _part_path(parts: Path, table: str, run: int) -> Path:
    return parts / f"{table}.{run:06d}.parquet"


def _part_files(path: Path, table: str) -> list[Path]:
    """The part files of ``table`` in a dataset, in run order (none once the writer closed)."""
    return sorted((Path(path) / PARTS).glob(f"{table}.[0-9]*.parquet"))


def _read_rows(path: Path, table: str) -> pd.DataFrame:
    """The rows of ``table`` as stored: its table file, then any part files (pyarrow errors pass).

    Part-file rows of a run without a ``runs`` row are left out: ``add_run`` renames the runs part
    last, so they are what a kill between its renames left of a run that never was written whole.
    """
    files = [Path(path) / f"{table}.parquet", *_part_files(path, table)]
    for f in files:
        if f.is_dir():   # pyarrow reads a directory as a multi-file dataset: an empty one would lose rows silently
            raise IsADirectoryError(errno.EISDIR, "a directory, not a parquet file", str(f))
    frames = [pd.read_parquet(f) for f in files]
    if len(frames) == 1:
        return frames[0]
    if table != "runs":
        ids = _run_ids(path)
        frames[1:] = [_written_runs_only(f, ids) for f in frames[1:]]
    return pd.concat(frames, ignore_index=True)


def _run_ids(path: Path) -> set[int] | None:
    """The run_ids of the runs table (file and parts); None when they cannot be read as integers
    (the runs table's own read reports that damage)."""
    ids: set[int] = set()
    for f in [Path(path) / "runs.parquet", *_part_files(path, "runs")]:
        if f.is_dir():
            return None
        try:
            col = pd.read_parquet(f, columns=["run_id"])["run_id"]
        except Exception:  # pyarrow raises several kinds for a damaged or foreign file
            return None
        if not pd.api.types.is_integer_dtype(col):
            return None
        ids.update(col.tolist())
    return ids


def _written_runs_only(part: pd.DataFrame, ids: set[int] | None) -> pd.DataFrame:
    """``part`` without rows of runs that have no runs row (unchanged when that cannot be told:
    no run ids, or a part without integer run_ids, whose damage the schema check reports)."""
    if ids is None or "run_id" not in part.columns or not pd.api.types.is_integer_dtype(part["run_id"]):
        return part
    return part[part["run_id"].isin(ids)]


KEY = ["dataset", "run_id"]   # identifies a run once several datasets are loaded together


def usable(runs: pd.DataFrame) -> pd.Series:
    """True for each usable run: ``status`` is ``ok`` and ``verify_errors`` is not positive (the one
    definition; only usable runs enter the numbers of show, report, export and the notebooks)."""
    return (runs["status"] == "ok") & (runs["verify_errors"] <= 0)


@dataclass
class Dataset:
    """One or several datasets in memory: every table of ``schema.TABLES`` with a leading ``dataset``
    column (the dataset's name), so ``(dataset, run_id)`` (``KEY``) identifies a run; metadata and
    directory per dataset name, in load order; ``absent`` names what the loader read as empty."""

    tables: dict[str, pd.DataFrame] = field(repr=False)
    metadata_by_name: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    paths: dict[str, Path] = field(default_factory=dict)
    absent: list[str] = field(default_factory=list)

    def __getitem__(self, table: str) -> pd.DataFrame:
        """The named table (``ds["runs"]``)."""
        return self.tables[table]

    runs = property(lambda self: self.tables["runs"], doc="the `runs` table")
    intervals = property(lambda self: self.tables["intervals"], doc="the `intervals` table")
    threads = property(lambda self: self.tables["threads"], doc="the `threads` table")
    registrations = property(lambda self: self.tables["registrations"], doc="the `registrations` table")
    events = property(lambda self: self.tables["events"], doc="the `events` table")
    probes = property(lambda self: self.tables["probes"], doc="the `probes` table")
    histograms = property(lambda self: self.tables["histograms"], doc="the `histograms` table")
    system = property(lambda self: self.tables["system"], doc="the `system` table")
    perf_counters = property(lambda self: self.tables["perf_counters"], doc="the `perf_counters` table")
    profile = property(lambda self: self.tables["profile"], doc="the `profile` table")

    @property
    def names(self) -> list[str]:
        """Dataset names, in load order."""
        return list(self.metadata_by_name)

    def _only(self) -> str:
        if len(self.metadata_by_name) != 1:
            raise ValueError(f"{len(self.metadata_by_name)} datasets loaded; use metadata_by_name or paths")
        return self.names[0]

    @property
    def name(self) -> str:
        """The name of the one dataset loaded (ValueError when several are)."""
        return self._only()

    @property
    def metadata(self) -> dict[str, Any]:
        """metadata.json of the one dataset loaded (ValueError when several are)."""
        return self.metadata_by_name[self._only()]

    @property
    def path(self) -> Path:
        """The directory of the one dataset loaded (ValueError when several are)."""
        return self.paths[self._only()]

    def usable_runs(self) -> pd.DataFrame:
        """The usable runs (see ``usable``): the ones every number is drawn from."""
        return self.runs[usable(self.runs)]


def resolve(name_or_path: str | Path, root: Path | None = None) -> Path:
    """A dataset directory from a path or a name under ``root``; UsageError if there is none."""
    p = Path(name_or_path)
    for cand in (p, (root or default_root()) / p):
        if (cand / METADATA).is_file():
            return cand
    raise UsageError(f"no dataset at {name_or_path} (no {METADATA}); `zcrxprof ls` lists datasets")


def read_metadata(path: Path) -> dict[str, Any]:
    """metadata.json of the dataset at ``path``; ZcrxprofError if unreadable."""
    try:
        meta = json.loads((Path(path) / METADATA).read_text())
    except (OSError, ValueError) as exc:
        raise ZcrxprofError(f"cannot read {Path(path) / METADATA}: {exc}") from None
    if not isinstance(meta, dict):
        raise ZcrxprofError(f"{Path(path) / METADATA}: not a zcrxprof metadata object (a JSON {type(meta).__name__})")
    return meta


# JSON kinds of the structured metadata keys (None is allowed for each); readers rely on them
METADATA_KINDS = {"zcrxprof": dict, "machine": dict, "place": dict, "plan": dict, "versions": dict, "nic": dict,
                  "emulated": list, "probes": list, "notes": list,
                  "source": dict, "not_measured": list}


def check_metadata(path: Path, meta: dict[str, Any]) -> None:
    """ZcrxprofError unless ``meta`` is metadata of a schema version this zcrxprof can read."""
    for key, kind in METADATA_KINDS.items():
        if meta.get(key) is not None and not isinstance(meta[key], kind):
            raise ZcrxprofError(f"{path}: metadata.json key {key} is a JSON {type(meta[key]).__name__}, "
                                f"expected {'an object' if kind is dict else 'a list'}; damaged dataset?")
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ZcrxprofError(f"{path}: metadata.json has no valid schema_version ({version!r}); not a zcrxprof dataset?")
    if version > schema.SCHEMA_VERSION:
        raise ZcrxprofError(f"{path}: schema version {version} is newer than this zcrxprof reads "
                            f"({schema.SCHEMA_VERSION}); update zcrxprof")


def read_table(path: Path, table: str) -> pd.DataFrame:
    """One table of the dataset at ``path``, in schema dtypes: an absent file reads as no rows and
    absent columns as their defaults (an older dataset); a present column of the wrong kind, or a
    file that is not the table, is refused (ZcrxprofError, one line)."""
    if table not in schema.TABLES:
        raise UsageError(f"unknown table {table}; tables: {', '.join(schema.TABLES)}")
    f = Path(path) / f"{table}.parquet"
    if not f.exists():
        return schema.empty_frame(table)
    try:
        frame = _read_rows(path, table)
    except Exception as exc:  # pyarrow raises several kinds for a damaged file
        raise ZcrxprofError(f"cannot read {f} or its parts: {_one_line(exc)}") from None
    problems = schema.check_frame(table, frame)
    if problems and ("run_id" not in frame.columns or not pd.api.types.is_integer_dtype(frame["run_id"])):
        raise ZcrxprofError(f"cannot read {f}: not a zcrxprof {table} table ({problems[0]})")
    wrong = [p for p in problems if not p.endswith(" missing")]
    if wrong:
        raise ZcrxprofError(f"cannot read {f}: {wrong[0]}")
    try:
        return schema.conform(table, frame)     # older datasets: missing columns get their defaults
    except Exception as exc:   # values a damaged file decoded into (pandas and pyarrow raise many kinds)
        raise ZcrxprofError(f"cannot read {f}: values do not fit the {table} schema ({_one_line(exc)})") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def absent_parts(path: Path) -> list[str]:
    """What the dataset at ``path`` lacks of the schema and the loader reads as empty: tables
    without a file (``intervals table``) and columns missing from a readable table file
    (``runs.zero_copy column``)."""
    out = []
    for table in schema.TABLES:
        f = Path(path) / f"{table}.parquet"
        if not f.exists():
            out.append(f"{table} table")
            continue
        try:
            names = set(pq.read_schema(f).names) if f.is_file() else None
        except Exception:  # a damaged file: read_table reports it
            names = None
        if names is not None:
            out += [f"{table}.{c} column" for c in schema.TABLES[table].column_names
                    if c not in names and f"{table}.{c}" not in schema.COLUMNS_ADDED_LATER]
    return out


def _load_one(path: Path) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Metadata and tables of one dataset directory, refused in one line (ZcrxprofError) as
    docs/dataset.md says ("Reading a dataset")."""
    meta = read_metadata(path)
    check_metadata(path, meta)
    if not (path / "runs.parquet").is_file():
        raise ZcrxprofError(f"{path}: runs.parquet missing; damaged dataset?")
    return meta, {t: read_table(path, t) for t in schema.TABLES}


def load(name_or_paths: str | Path | list[str | Path], root: Path | None = None) -> Dataset:
    """Load one dataset (directory, or name under ``root``) or a list of them into one ``Dataset``:
    tables concatenated with a leading ``dataset`` column (a repeated name gets a ``#2`` suffix)."""
    items = [name_or_paths] if isinstance(name_or_paths, (str, Path)) else list(name_or_paths)
    if not items:
        raise UsageError("no dataset given")
    metadata: dict[str, dict[str, Any]] = {}
    dirs: dict[str, Path] = {}
    absent: list[str] = []
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in schema.TABLES}
    for item in items:
        path = resolve(item, root)
        meta, tables = _load_one(path)
        name = str(meta.get("name") or path.name)
        unique, k = name, 2
        while unique in metadata:
            unique, k = f"{name}#{k}", k + 1
        metadata[unique], dirs[unique] = meta, path
        absent += [f"{unique}: {what}" for what in absent_parts(path)]
        for table, frame in tables.items():
            parts[table].append(frame.assign(dataset=unique)[["dataset", *frame.columns]])
    tables = {t: pd.concat(frames, ignore_index=True) for t, frames in parts.items()}
    return Dataset(tables, metadata, dirs, absent)


def absent_notes(ds: Dataset) -> list[str]:
    """One line per dataset that lacked tables or columns, naming them (read as empty/defaults)."""
    by_name: dict[str, list[str]] = {}
    for entry in ds.absent:
        name, what = entry.split(": ", 1)
        by_name.setdefault(name, []).append(what)
    return [f"note: {name}: no {', '.join(whats)} (older dataset? read as empty)" for name, whats in by_name.items()]


def validate(name_or_path: str | Path, root: Path | None = None) -> list[str]:
    """Every way the dataset departs from the current schema, as a recording must conform (empty
    list when it does): a stricter, exhaustive audit for the recorder's tests. Reading never calls
    it; ``load`` applies the reading rule (docs/dataset.md)."""
    path = resolve(name_or_path, root)
    meta = read_metadata(path)
    problems = [f"metadata: key {k} missing" for k in schema.METADATA_KEYS
                if k not in meta and k not in schema.METADATA_ADDED_LATER]
    if meta.get("schema_version") != schema.SCHEMA_VERSION:
        problems.append(f"metadata: schema_version {meta.get('schema_version')}, expected {schema.SCHEMA_VERSION}")
    frames = {}
    for table in schema.TABLES:
        f = path / f"{table}.parquet"
        if not f.exists():
            problems.append(f"{table}: file {f.name} missing")
            continue
        try:
            frames[table] = _read_rows(path, table)
        except Exception as exc:  # a damaged file is a problem to report, not a crash
            problems.append(f"{table}: cannot read {f.name} or its parts: {_one_line(exc)}")
            continue
        problems += schema.check_frame(table, frames[table])
    runs = frames.get("runs")
    if runs is not None and "run_id" in runs.columns:
        ids = set(runs["run_id"])
        if len(ids) != len(runs):
            problems.append("runs: run_id not unique")
        if meta.get("runs_done") != len(runs):
            problems.append(f"metadata: runs_done {meta.get('runs_done')} but runs has {len(runs)} rows")
        for table, frame in frames.items():
            if "run_id" in frame.columns and not set(frame["run_id"]) <= ids:
                problems.append(f"{table}: run_id not in runs")
        if "zero_copy" in runs.columns and "backend" in runs.columns:
            if (runs["zero_copy"] & ~runs["backend"].map(is_zero_copy).astype(bool)).any():
                problems.append("runs: zero_copy true for a backend that is not zero copy")
    return problems


def list_datasets(root: Path | None = None) -> list[dict[str, Any]]:
    """One summary per dataset under ``root``: name, created, topologies, backend, place, runs, complete."""
    root = root or default_root()
    out = []
    for meta_file in sorted(Path(root).glob(f"*/{METADATA}")):
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict):
            continue
        plan = meta.get("plan") if isinstance(meta.get("plan"), dict) else {}
        place = meta.get("place") if isinstance(meta.get("place"), dict) else {}
        out.append({"name": meta_file.parent.name, "path": str(meta_file.parent),
                    "created": meta.get("created"), "topologies": plan.get("topologies") or [],
                    "backend": meta.get("backend"), "where": place.get("where"),
                    "kernel": place.get("kernel"), "runs": meta.get("runs_done"),
                    "planned": plan.get("runs"), "complete": bool(meta.get("complete"))})
    return out


def pick(where: str = "host", backend: str | None = None, root: Path | None = None,
         with_probes: bool = False) -> Path:
    """The committed dataset to analyse by default: the newest complete one recorded ``where``
    (``host`` or ``lab``), of ``backend`` if given, with kernel probe samples if asked; UsageError
    when there is none."""
    found = []
    for d in list_datasets(root):
        if not d["complete"] or d["where"] != where or (backend and d["backend"] != backend):
            continue
        path = Path(d["path"])
        if with_probes and read_table(path, "probes").empty:
            continue
        found.append((str(d["created"] or ""), path))
    if not found:
        what = f"{where}{' ' + backend if backend else ''}{' with probes' if with_probes else ''}"
        raise UsageError(f"no complete {what} dataset under {root or default_root()}")
    return max(found)[1]


def usable_summary(runs: pd.DataFrame) -> str:
    """``19 of 21 runs usable (status ok, no verification error)``: the one wording of the count
    that show and the report print."""
    return f"{int(usable(runs).sum())} of {len(runs)} runs usable (status ok, no verification error)"
