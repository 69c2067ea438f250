"""The self-contained HTML report: ``write(paths, out)`` renders datasets into one offline file."""
from __future__ import annotations

import os
from pathlib import Path

from zcrxprof.errors import ZcrxprofError


def default_output(dataset_dirs: list[Path]) -> Path:
    """Next to the (first) dataset: ``datasets/NAME.report.html`` (names joined by ``+``)."""
    first = dataset_dirs[0]
    name = "+".join(p.name for p in dataset_dirs)
    return first.parent / f"{name}.report.html"


def write(paths: list[str | Path], out: str | Path | None = None) -> Path:
    """Load the datasets, render the report and write it atomically; returns the file written."""
    import matplotlib
    matplotlib.use("Agg")
    from zcrxprof import dataset
    from zcrxprof.analysis import load
    from zcrxprof.report.render import build

    dirs = [dataset.resolve(p) for p in paths]
    frames = load(dirs)
    text = build(frames)
    target = Path(out) if out else default_output(dirs)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ZcrxprofError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target
