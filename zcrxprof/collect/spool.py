"""A recording spool: the dataset's rows as JSON, for places where loading pandas is too slow.

Under QEMU's TCG the lab guest takes minutes to import pandas and pyarrow, so the recording inside
the guest writes this spool instead (standard library only) and the host converts it into the
parquet dataset afterwards. Same methods and guarantees as ``zcrxprof.dataset.DatasetWriter``:
``metadata.json`` and one ``run-NNNN.json`` per run, each written atomically, ``complete`` false
until ``close(complete=True)``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from zcrxprof.errors import UsageError, ZcrxprofError

METADATA = "metadata.json"


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and a rename.

    A full or read-only disk becomes a one-line ZcrxprofError; the earlier files stay as they were.
    """
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ZcrxprofError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise


class SpoolWriter:
    """Writes a spool directory run by run (the DatasetWriter interface, without pandas)."""

    def __init__(self, path: Path, metadata: dict[str, Any]) -> None:
        """Create ``path`` (must not hold a spool yet) with ``complete: false``."""
        self.path = Path(path)
        if (self.path / METADATA).exists():
            raise UsageError(f"{self.path} already holds a recording")
        self.metadata = {"name": self.path.name, "complete": False, "runs_done": 0, "notes": [], **metadata}
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ZcrxprofError(f"cannot write the recording in {self.path}: {exc.strerror}") from None
        _write_json(self.path / METADATA, self.metadata)

    def add_run(self, tables: dict[str, list[dict]]) -> None:
        """Write one run's rows (table name → list of row dicts), then the metadata."""
        rows = {k: (v.to_dict(orient="records") if hasattr(v, "to_dict") else list(v)) for k, v in tables.items()}
        _write_json(self.path / f"run-{self.metadata['runs_done']:04d}.json", rows)
        self.metadata["runs_done"] += 1
        _write_json(self.path / METADATA, self.metadata)

    def update_metadata(self, **fields: Any) -> None:
        """Set metadata keys and rewrite metadata.json atomically."""
        self.metadata.update(fields)
        _write_json(self.path / METADATA, self.metadata)

    def close(self, complete: bool, finished: str) -> None:
        """Mark the recording ended, complete or partial."""
        self.update_metadata(complete=bool(complete), finished=finished)


def convert(spool: Path, dest: Path) -> Path:
    """Turn a spool into a parquet dataset at ``dest``; runs and completeness carried over as written."""
    from zcrxprof.dataset import DatasetWriter
    meta = json.loads((Path(spool) / METADATA).read_text())
    complete, finished = bool(meta.get("complete")), meta.get("finished")
    base = {k: v for k, v in meta.items() if k not in ("complete", "finished", "runs_done", "name")}
    writer = DatasetWriter(dest, base)
    for f in sorted(Path(spool).glob("run-*.json")):
        writer.add_run(json.loads(f.read_text()))
    writer.close(complete=complete, finished=finished)
    return Path(dest)
