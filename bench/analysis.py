"""Benchmark the analysis side: report generation, load() per MiB, papermill time per notebook.

Each figure is a median over repetitions (min/max shown) next to a reference measured in the same
run, and printed as a ratio:
  report      `zcrxprof report` end to end (new interpreter)  vs  the 5 s target; and in-process
              build vs pandas reading the same parquet files
  load        dataset.load() per MiB of dataset                vs  bare pd.read_parquet of every table
  notebooks   papermill per notebook                           vs  papermill on an empty notebook
              (kernel start-up + papermill overhead)
Usage: .venv/bin/python bench/analysis.py [--repeat N] [--dataset PATH] [--no-notebooks]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import nbformat  # noqa: E402
import pandas as pd  # noqa: E402

from zcrxprof import schema  # noqa: E402
from zcrxprof.dataset import load  # noqa: E402
from zcrxprof.report.render import build  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
REPORT_TARGET_S = 5.0


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def line(name: str, values: list[float], ref: list[float] | float, unit: str = "s") -> None:
    med = statistics.median(values)
    rmed = statistics.median(ref) if isinstance(ref, list) else ref
    print(f"  {name:<44} median {med:8.3f} {unit} (min {min(values):.3f}, max {max(values):.3f})"
          f"   ratio to reference {med / rmed:6.2f}x (reference median {rmed:.3f} {unit})")


def papermill(nb: Path, params: dict, out_dir: Path) -> None:
    args = [sys.executable, "-m", "papermill", "--log-level", "ERROR", str(nb), str(out_dir / nb.name)]
    for k, v in params.items():
        args += ["-p", k, str(v)]
    subprocess.run(args, check=True, capture_output=True, cwd=ROOT, stdin=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dataset", type=Path, help="default: datasets/host-copy-4topo (four topologies)")
    ap.add_argument("--no-notebooks", action="store_true")
    a = ap.parse_args()
    path = a.dataset or ROOT / "datasets" / "host-copy-4topo"
    frames = load(path)
    size_mib = sum(f.stat().st_size for f in path.glob("*.parquet")) / 2**20
    runs = frames.runs
    print(f"dataset {path.name}: {len(runs)} runs, topologies {sorted(set(runs['topology']))}, "
          f"{size_mib:.2f} MiB parquet; backend {sorted(set(runs['backend']))}, kernel "
          f"{sorted(set(runs['kernel']))}, place {sorted(set(runs['place']))}")

    def raw_read():
        for t in schema.TABLES:
            f = path / f"{t}.parquet"
            if f.exists():
                pd.read_parquet(f)

    print("report")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.html"
        cli = timed(lambda: subprocess.run([sys.executable, "-m", "zcrxprof", "report", str(path), "-o", str(out)],
                                           check=True, capture_output=True), a.repeat)
        line("zcrxprof report (CLI, end to end)", cli, REPORT_TARGET_S)
        raw = timed(raw_read, a.repeat)
        inproc = timed(lambda: build(load(path)), a.repeat)
        line("report build in-process vs raw parquet read", inproc, raw)
    print("load")
    loads = timed(lambda: load(path), a.repeat)
    line("dataset.load() per MiB", [v / size_mib for v in loads], [v / size_mib for v in raw], "s/MiB")
    if a.no_notebooks or not NOTEBOOKS:
        return 0
    print("notebooks (papermill)")
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        empty = tmpd / "empty.ipynb"
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("dataset = ''", metadata={"tags": ["parameters"]})]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, empty)
        reps = max(3, a.repeat // 2)
        ref = timed(lambda: papermill(empty, {}, tmpd), reps)
        line("empty notebook (reference)", ref, ref)
        for book in NOTEBOOKS:  # each on the dataset its parameters cell names (what CI executes)
            line(book.name, timed(lambda: papermill(book, {}, tmpd), reps), ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
