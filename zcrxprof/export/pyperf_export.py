"""Export a dataset's cost metrics as a pyperf BenchmarkSuite (lower is better, values > 0).

One benchmark per topology × configuration × metric; one pyperf run per repetition, with one value
(the run's cost). Metrics:

* ``time per byte`` — wall-clock seconds per received byte (1 / throughput; pyperf shows ns),
* ``CPU per GB`` — receiver-side CPU-seconds (user + sys of rx and worker threads) per GB.

Benchmark names carry topology and configuration but not the backend or kernel, so
``python -m pyperf compare_to a.json b.json`` pairs the same topology across two datasets; backend,
kernel, place and what was emulated are in each benchmark's metadata.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyperf

from zcrxprof.analysis import per_run
from zcrxprof.dataset import Dataset
from zcrxprof.errors import ZcrxprofError

METRICS = {
    # name: (function of a per_run row -> seconds, description)
    "time per byte": (lambda r: 8e-9 / r["gbit_s"] if r["gbit_s"] > 0 else float("nan"),
                      "wall-clock seconds per received byte (1/throughput)"),
    "CPU per GB": (lambda r: r["cpu_s_per_gb_user"] + r["cpu_s_per_gb_sys"],
                   "receiver-side CPU-seconds (user+sys, rx and worker threads) per GB received"),
}


def benchmark_name(row: pd.Series, metric: str) -> str:
    """``shared-ifq rings=2 work=2000ns/KiB unpaced: time per byte``."""
    n = f"workers={int(row['workers'])}" if row["topology"] == "workers" else f"rings={int(row['rings'])}"
    rate = f"rate={row['rate_gbit_s']:g}Gbit/s" if row["rate_gbit_s"] > 0 else "unpaced"
    return f"{row['topology']} {n} work={row['work_ns_per_kib']:g}ns/KiB {rate}: {metric}"


def _metadata(row: pd.Series, dataset_name: str, description: str) -> dict:
    meta = {"topology": row["topology"], "backend": row["backend"], "kernel": row["kernel"],
            "place": row["place"], "zero_copy": str(bool(row["zero_copy"])).lower(),
            "dataset": dataset_name, "description": description}
    if row["accelerator"]:
        meta["accelerator"] = row["accelerator"]
    if row["emulated"]:
        meta["emulated"] = row["emulated"]
    return {k: " ".join(str(v).split()) for k, v in meta.items() if str(v).strip()}


def to_suite(ds: Dataset) -> pyperf.BenchmarkSuite:
    """The suite for ``ds`` (usable runs only)."""
    runs = per_run(ds)
    benches: dict[str, list[pyperf.Run]] = {}
    for _, row in runs.iterrows():
        for metric, (fn, description) in METRICS.items():
            value = float(fn(row))
            if not value > 0:  # also drops NaN: pyperf needs values > 0
                continue
            name = benchmark_name(row, metric)
            meta = {"name": name, "unit": "second", "loops": 1,
                    **_metadata(row, row["dataset"], description)}
            benches.setdefault(name, []).append(
                pyperf.Run([value], metadata=meta, collect_metadata=False))
    if not benches:
        raise ZcrxprofError("no successful run with a positive cost to export")
    return pyperf.BenchmarkSuite([pyperf.Benchmark(r) for r in benches.values()])


def export(ds: Dataset, out: str | Path) -> int:
    """Write the suite to ``out`` (JSON; replaced if it exists); returns the number of benchmarks."""
    suite = to_suite(ds)
    out = Path(out)
    try:
        suite.dump(str(out), replace=True)
    except OSError as exc:
        raise ZcrxprofError(f"cannot write {out}: {exc.strerror or exc}") from None
    return len(suite)
