"""Load one or several datasets into one set of frames, keeping each dataset's identity.

Every table gets a leading ``dataset`` column (the dataset's name); ``(dataset, run_id)`` is the
join key once several datasets are concatenated. Columns are those of ``zcrxprof.schema``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from zcrxprof import dataset, schema
from zcrxprof.errors import UsageError, ZcrxprofError

KEY = ["dataset", "run_id"]


@dataclass
class Frames:
    """The tables of one or more datasets (schema columns plus ``dataset``) and their metadata."""

    tables: dict[str, pd.DataFrame]
    metadata: dict[str, dict] = field(default_factory=dict)  # dataset name -> metadata.json

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
        return list(self.metadata)

    def ok_runs(self) -> pd.DataFrame:
        """Runs with status ``ok`` and no verification error (the ones numbers are drawn from)."""
        r = self.tables["runs"]
        return r[(r["status"] == "ok") & (r["verify_errors"] <= 0)]


def _read_one(path: str | Path) -> tuple[str, dict, dict[str, pd.DataFrame]]:
    """One dataset, refused in one line (ZcrxprofError) when it is not what the schema says."""
    ds = dataset.load(path)
    meta = ds.metadata
    if not isinstance(meta, dict):
        raise ZcrxprofError(f"{ds.path}: metadata.json is not a JSON object")
    version = meta.get("schema_version")
    if isinstance(version, int) and version > schema.SCHEMA_VERSION:
        raise ZcrxprofError(f"{ds.path}: schema version {version} is newer than this zcrxprof reads "
                            f"({schema.SCHEMA_VERSION}); update zcrxprof")
    if version != schema.SCHEMA_VERSION:
        raise ZcrxprofError(f"{ds.path}: schema version {version!r}, this zcrxprof reads "
                            f"{schema.SCHEMA_VERSION}")
    for key in ("machine", "place"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise ZcrxprofError(f"{ds.path}: metadata {key} is not a JSON object")
    for table in schema.TABLES:
        if not (ds.path / f"{table}.parquet").is_file():
            raise ZcrxprofError(f"{ds.path}: table {table}.parquet missing")
        problems = schema.check_frame(table, ds.tables[table])
        if problems:
            raise ZcrxprofError(f"{ds.path}: {problems[0]}")
    name = str(meta.get("name") or ds.name)
    return name, meta, dict(ds.tables)


def load(paths: str | Path | list[str | Path]) -> Frames:
    """Read one dataset (directory or name under ``datasets/``) or a list of them; tables are concatenated with a ``dataset``
    column, and metadata is kept per dataset name (a repeated name gets a ``#2`` suffix)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise UsageError("no dataset given")
    metadata: dict[str, dict] = {}
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in schema.TABLES}
    for p in paths:
        name, meta, tables = _read_one(Path(p))
        unique, k = name, 2
        while unique in metadata:
            unique, k = f"{name}#{k}", k + 1
        metadata[unique] = meta
        for table, frame in tables.items():
            parts[table].append(frame.assign(dataset=unique)[["dataset", *frame.columns]])
    tables = {t: pd.concat(frames, ignore_index=True) for t, frames in parts.items()}
    return Frames(tables=tables, metadata=metadata)


def label(frames: Frames, dataset: str | None = None) -> str:
    """One line naming backend, kernel, machine and whether timings were emulated — for titles."""
    names = [dataset] if dataset else frames.names
    pieces = []
    for name in names:
        meta = frames.metadata[name]
        runs = frames.runs[frames.runs["dataset"] == name]
        backends = sorted(set(runs["backend"])) or [str(meta.get("backend", "?"))]
        kernels = sorted(set(runs["kernel"])) or [str((meta.get("machine") or {}).get("kernel", "?"))]
        machine = meta.get("machine") or {}
        cores = machine.get("cores")
        cpu = machine.get("cpu_model") or "unknown CPU"
        place = meta.get("place") or {}
        where = place.get("where") or (sorted(set(runs["place"])) or ["?"])[0]
        accel = place.get("accelerator") or ""
        timing = emulation_note(frames, name)
        zc = "zero-copy" if set(backends) == {"zcrx"} else "not zero-copy"
        pieces.append(f"backend {'/'.join(backends)} ({zc}) · kernel {'/'.join(kernels)} · "
                      f"{where}{' ' + accel if accel else ''}, {cores} cores, {cpu} · {timing}")
    return " | ".join(pieces)


def emulation_note(frames: Frames, dataset: str) -> str:
    """``timing emulated (TCG guest)`` or ``timing real``, plus what the backend emulates."""
    meta = frames.metadata[dataset]
    runs = frames.runs[frames.runs["dataset"] == dataset]
    accel = (meta.get("place") or {}).get("accelerator") or ""
    if not accel and len(runs):
        accel = next((a for a in runs["accelerator"] if a), "")
    timing = "timing emulated (TCG guest)" if accel == "tcg" else "timing real"
    emulated = set(meta.get("emulated") or [])
    for e in runs["emulated"]:
        emulated.update(x.strip() for x in e.split(";") if x.strip())
    if emulated:
        timing += "; emulated: " + "; ".join(sorted(emulated))
    return timing


def pick(where: str = "host", backend: str | None = None, root: Path | None = None,
         with_probes: bool = False) -> Path:
    """The committed dataset to analyse by default: the newest complete one recorded ``where``
    (``host`` or ``lab``), of ``backend`` if given, with kernel probe samples if asked; UsageError
    when there is none."""
    found = []
    for d in dataset.list_datasets(root):
        if not d["complete"] or d["where"] != where or (backend and d["backend"] != backend):
            continue
        path = Path(d["path"])
        if with_probes and dataset.read_table(path, "probes").empty:
            continue
        found.append((str(d["created"] or ""), path))
    if not found:
        what = f"{where}{' ' + backend if backend else ''}{' with probes' if with_probes else ''}"
        raise UsageError(f"no complete {what} dataset under {root or dataset.default_root()}")
    return max(found)[1]
