"""`zcrxprof compare A B`: two recordings matched configuration by configuration, B against A."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from zcrxprof.errors import ZcrxprofError

METRIC_CHOICES = ("gbit_s", "cpu_per_gb", "switches_per_gb")


def register(subparsers) -> None:
    """Add the `compare` subcommand."""
    p = subparsers.add_parser(
        "compare", help="compare two datasets (B against A), configuration by configuration",
        description="Match the runs of two datasets by topology, rings, workers, work and rate; per match "
                    "print the ratio B/A of the medians with its 95% bootstrap interval, an exact "
                    "permutation test and a verdict (faster/slower, cheaper/costlier, not significant), "
                    "and warn where the two are not comparable.")
    p.add_argument("a", metavar="A", help="reference dataset (name under --root, or path)")
    p.add_argument("b", metavar="B", help="dataset compared against A")
    p.add_argument("--metric", choices=METRIC_CHOICES, default="gbit_s",
                   help="gbit_s (higher is better), cpu_per_gb or switches_per_gb (receiver side; lower is "
                        "better) (default gbit_s)")
    p.add_argument("--root", type=Path, default=None, help="datasets directory (default: datasets/)")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=cmd_compare)


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rate(rate: float) -> str:
    return f"{rate:g}" if rate else "-"


def _work(a: float, b: float) -> str:
    return f"{a:g}" if a == b else f"{a:g}>{b:g}"


def _ratio_interval(lo: float, hi: float) -> str:
    return f"{lo:.2f}-{hi:.2f}" if math.isfinite(lo) and math.isfinite(hi) else "-"


def render_text(frame, name_a: str, name_b: str, label_a: str, label_b: str) -> list[str]:
    """The comparison as plain-text lines; work, rate and run counts equal for every match are
    said once above the table instead of in a column."""
    from zcrxprof.analysis.compare import ALPHA
    from zcrxprof.cli.text import estimate, table, wrap
    lines = [*wrap(f"A: {name_a} - {label_a}", "   "), *wrap(f"B: {name_b} - {label_b}", "   ")]
    if frame.empty:
        return lines
    unit, better = frame["unit"].iloc[0], frame["better"].iloc[0]
    columns = {"work": [_work(r.work_a, r.work_b) for r in frame.itertuples()],
               "rate": [_rate(r.rate_gbit_s) for r in frame.itertuples()],
               "runs": [f"{r.n_a}/{r.n_b}" for r in frame.itertuples()]}
    said = {"work": "work {} ns/KiB", "rate": "rate {} Gbit/s", "runs": "runs A/B {}"}
    constant = [said[c].format(v[0]).replace("rate - Gbit/s", "unpaced") for c, v in columns.items()
                if len(set(v)) == 1]
    varying = [c for c, v in columns.items() if len(set(v)) > 1]
    lines += wrap(f"{unit}, {better} is better; B/A = ratio of medians with its 95% bootstrap interval; "
                  f"verdict at permutation-test p < {ALPHA:g} with the interval excluding 1"
                  + (f"; {', '.join(constant)}" if constant else "")
                  + ("; work in ns/KiB" if "work" in varying else "")
                  + ("; rate in Gbit/s (- unpaced)" if "rate" in varying else ""))
    rows = [[r.topology, r.workers if r.topology == "workers" else r.rings, *(columns[c][i] for c in varying),
             estimate(r.median_a, math.nan, math.nan)[0], estimate(r.median_b, math.nan, math.nan)[0],
             f"{r.ratio:.2f}" if math.isfinite(r.ratio) else "-", _ratio_interval(r.ratio_lo, r.ratio_hi),
             f"{r.p_value:.2g}" if math.isfinite(r.p_value) else "-", r.verdict]
            for i, r in enumerate(frame.itertuples())]
    lines += ["", *table(["topology", "N", *varying, "A", "B", "B/A", "95% CI", "p", "verdict"], rows)]
    notes = []
    for text in dict.fromkeys(w for ws in frame["warnings"] for w in ws.split("; ") if w):
        notes += wrap(f"warning: {text}", "  ")
    floors = frame[frame["p_floor"] >= ALPHA]
    if len(floors):
        r = floors.iloc[0]
        notes += wrap(f"note: {len(floors)} of {len(frame)} matches have too few runs ({r.n_a} against {r.n_b}: "
                      f"the smallest p is {r.p_floor:.2g}) for any difference to be significant; record "
                      f"--repeat 4 or more", "  ")
    return lines + ([""] + notes if notes else [])


def cmd_compare(args: argparse.Namespace) -> int:
    """Print B against A, one line per matched configuration."""
    import sys

    from zcrxprof import dataset
    from zcrxprof.analysis import label
    from zcrxprof.analysis.compare import df_compare
    a, b = dataset.load(args.a, args.root), dataset.load(args.b, args.root)
    for note in dict.fromkeys(dataset.absent_notes(a) + dataset.absent_notes(b)):   # A may be B
        print(note, file=sys.stderr)
    frame = df_compare(a, b, args.metric)
    only_a, only_b = frame.attrs.get("unmatched", (0, 0))
    if args.json:
        doc = {"a": a.name, "b": b.name, "metric": args.metric, "unmatched_a": only_a, "unmatched_b": only_b,
               "matches": [{k: _finite(v) for k, v in rec.items()} for rec in frame.to_dict(orient="records")]}
        print(json.dumps(doc, default=float))
        return 0 if len(frame) else 1
    for line in render_text(frame, a.name, b.name, label(a), label(b)):
        print(line)
    if frame.empty:
        raise ZcrxprofError(f"no configuration of {a.name} matches one of {b.name} "
                            "(topology, rings, workers, work, rate)")
    if only_a or only_b:
        print(f"not matched: {only_a} configuration(s) of A, {only_b} of B")
    return 0
