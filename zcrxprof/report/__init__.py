"""The self-contained HTML report: ``write(paths, out)`` renders datasets into one offline file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from zcrxprof.errors import ZcrxprofError

if TYPE_CHECKING:
    from zcrxprof.dataset import Dataset


def default_output(dataset_dirs: list[Path]) -> Path:
    """Next to the (first) dataset: ``datasets/NAME.report.html`` (names joined by ``+``)."""
    first = dataset_dirs[0]
    name = "+".join(p.name for p in dataset_dirs)
    return first.parent / f"{name}.report.html"


def write(paths: list[str | Path], out: str | Path | None = None) -> Path:
    """Load the datasets, render the report and write it atomically; returns the file written."""
    from zcrxprof import dataset

    return write_dataset(dataset.load(paths), out)


def write_dataset(ds: "Dataset", out: str | Path | None = None) -> Path:
    """Render the report of loaded datasets and write it atomically (default: ``default_output``
    of their directories); returns the file written."""
    import matplotlib
    matplotlib.use("Agg")
    from zcrxprof.report.render import build

    text = build(ds)
    target = Path(out) if out else default_output(list(ds.paths.values()))
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ZcrxprofError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target
