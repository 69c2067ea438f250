"""`zcrxprof export --pyperf OUT.json DATASET` or `--perfetto OUT.pftrace DATASET [--run ID …]`:
a dataset for other tools — its cost metrics as a pyperf BenchmarkSuite, or every run on one
Perfetto timeline (docs/perfetto.md)."""
from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  zcrxprof export --pyperf a.json datasets/NAME
  python -m pyperf compare_to a.json b.json --table     # two exports side by side
  zcrxprof export --perfetto all.pftrace NAME           # every run; open it in ui.perfetto.dev
  zcrxprof export --perfetto run-3.pftrace NAME --run 3 # one run (--run repeats)

A dataset without runs is refused in one line (exit status 1), an unknown --run id too (exit
status 2); a partial dataset gives a trace of what exists (failed and interrupted runs included).
"""


def register(subparsers) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser("export", help="export a dataset for other tools (pyperf, Perfetto)",
                              description=__doc__, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--pyperf", metavar="OUT.json",
                      help="write a pyperf BenchmarkSuite (time per byte, CPU per GB; lower is better)")
    what.add_argument("--perfetto", metavar="OUT.pftrace",
                      help="write a Perfetto trace: per run a process, per thread its interval, probe "
                           "and perf counters, per CPU its softirq time")
    p.add_argument("--run", metavar="ID", type=int, action="append", dest="runs",
                   help="with --perfetto: only this run (repeat for more; default: every run)")
    p.add_argument("dataset", metavar="DATASET", help="dataset directory or name under datasets/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print what was written."""
    import sys

    from zcrxprof import dataset
    from zcrxprof.errors import UsageError

    if not args.pyperf and not args.perfetto:      # e.g. an empty --pyperf= value
        raise UsageError("zcrxprof export: give --pyperf OUT.json or --perfetto OUT.pftrace (see --help)")
    if args.runs and not args.perfetto:
        raise UsageError("zcrxprof export: --run goes with --perfetto (see --help)")
    ds = dataset.load(args.dataset)
    for note in dataset.absent_notes(ds):
        print(note, file=sys.stderr)
    if args.perfetto:
        from zcrxprof.export.perfetto_trace import write_trace

        summary = write_trace(ds, args.perfetto, args.runs)
        print(f"{args.perfetto}: {summary.runs} run{'s' * (summary.runs != 1)}, "
              f"{summary.counter_tracks} counter tracks, "
              f"{summary.samples} samples (open it in https://ui.perfetto.dev)")
        return 0
    from zcrxprof.export.pyperf_export import export

    n = export(ds, args.pyperf)
    print(f"{args.pyperf}: {n} benchmarks")
    return 0
