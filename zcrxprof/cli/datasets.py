"""`zcrxprof ls` (recorded datasets) and `zcrxprof show NAME` (one dataset's medians per topology)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from zcrxprof.errors import ZcrxprofError
from zcrxprof.vocab import is_emulated_timing, is_zero_copy


def register(subparsers) -> None:
    """Add the `ls` and `show` subcommands."""
    ls = subparsers.add_parser("ls", help="list recorded datasets",
                               description="List datasets: name, date, topologies, backend, runs, complete.")
    ls.add_argument("--root", type=Path, default=None, help="datasets directory (default: datasets/)")
    ls.add_argument("--json", action="store_true", help="one JSON object per dataset")
    ls.set_defaults(func=cmd_ls)
    show = subparsers.add_parser("show", help="summarise one dataset (medians per topology)",
                                 description="Summarise a dataset: labels, then medians per topology.")
    show.add_argument("dataset", help="dataset name (under --root) or path")
    show.add_argument("--root", type=Path, default=None, help="datasets directory (default: datasets/)")
    show.add_argument("--json", action="store_true", help="print the summary table as JSON lines")
    show.set_defaults(func=cmd_show)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header)] + [fmt.format(*map(str, r)) for r in rows])


def cmd_ls(args: argparse.Namespace) -> int:
    """Print the datasets under the root."""
    from zcrxprof import dataset
    root = args.root or dataset.default_root()
    if args.root and not Path(args.root).is_dir():
        raise ZcrxprofError(f"no datasets directory at {args.root}")
    items = dataset.list_datasets(root)
    if args.json:
        for d in items:
            print(json.dumps(d))
        return 0
    if not items:
        print(f"no datasets under {root}")
        return 0
    rows = [[d["name"], (d["created"] or "")[:16].replace("T", " "), ",".join(d["topologies"]),
             d["backend"] or "?", f"{d['where'] or '?'} {d['kernel'] or ''}".strip(),
             f"{d['runs']}/{d['planned'] if d['planned'] is not None else '?'}",
             "yes" if d["complete"] else "no (partial)"] for d in items]
    print(_table(["name", "date (UTC)", "topologies", "backend", "where", "runs", "complete"], rows))
    return 0


def labels(meta: dict) -> str:
    """One line naming backend, kernel, where it ran, and what is emulated."""
    place = meta.get("place") or {}
    where = place.get("where") or "?"
    if where == "lab":
        where = f"lab guest ({place.get('accelerator') or '?'}{', emulated timing' if is_emulated_timing(place.get('accelerator')) else ''})"
    backend = meta.get("backend") or "?"
    zc = "zero-copy" if is_zero_copy(backend) else "not zero-copy"
    emulated = "; ".join(meta.get("emulated") or []) or "nothing"
    return f"backend {backend} ({zc}) · kernel {place.get('kernel') or '?'} · {where} · emulated: {emulated}"


def cmd_show(args: argparse.Namespace) -> int:
    """Print one dataset's labels and its medians per topology."""
    import sys

    from zcrxprof import dataset
    from zcrxprof.analysis.summary import topology_summary
    from zcrxprof.importers import describe as describe_import
    ds = dataset.load(args.dataset, args.root)
    for note in dataset.absent_notes(ds):
        print(note, file=sys.stderr)
    meta = ds.metadata
    frame = topology_summary(ds)
    if args.json:
        for rec in frame.to_dict(orient="records"):
            print(json.dumps(rec, default=float))
        return 0
    runs = ds["runs"]
    status = runs["status"].value_counts().to_dict()
    plan = meta.get("plan") or {}
    print(f"{ds.name}: {'complete' if meta.get('complete') else 'PARTIAL (recording did not finish)'}, "
          f"{len(runs)}/{plan.get('runs', '?')} runs ({', '.join(f'{v} {k}' for k, v in status.items()) or 'none'})")
    print(dataset.usable_summary(runs))
    print(labels(meta))
    for line in describe_import(meta):
        print(line)
    machine = meta.get("machine") or {}
    print(f"machine: {machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores; "
          f"recorded {meta.get('created', '?')}; command: {meta.get('command_line', '?')}")
    failed = runs[runs["status"] == "failed"]
    for _, r in failed.iterrows():
        print(f"  run {r.run_id} ({r.topology}) failed: {r.error.splitlines()[0] if r.error else '?'}")
    if frame.empty:
        print("no usable runs")
        return 0
    rows = [[r.topology, int(r.n), f"{r.work_ns_per_kib:g}", f"{r.rate_gbit_s:g}" if r.rate_gbit_s else "-",
             int(r.runs), f"{r.gbit_s_median:.2f}", f"{r.gbit_s_min:.2f}–{r.gbit_s_max:.2f}",
             f"{r.cpu_ns_per_kib_median:.0f}", f"{r.csw_per_s_median:.0f}"] for r in frame.itertuples()]
    print()
    print(_table(["topology", "N", "work ns/KiB", "rate", "runs", "Gbit/s (median)", "min–max",
                  "rx CPU ns/KiB", "ctx sw/s"], rows))
    return 0
