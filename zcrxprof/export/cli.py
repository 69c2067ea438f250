"""`zcrxprof export --pyperf OUT.json DATASET`: cost metrics as a pyperf BenchmarkSuite."""
from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  zcrxprof export --pyperf a.json datasets/NAME
  python -m pyperf compare_to a.json b.json --table     # two exports side by side
"""


def register(subparsers) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser("export", help="export a dataset's costs for other tools (pyperf)",
                              description=__doc__, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pyperf", metavar="OUT.json", required=True,
                   help="write a pyperf BenchmarkSuite (time per byte, CPU per GB; lower is better)")
    p.add_argument("dataset", metavar="DATASET", help="dataset directory or name under datasets/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Export and print what was written."""
    from zcrxprof.analysis import load
    from zcrxprof.export.pyperf_export import export

    n = export(load(args.dataset), args.pyperf)
    print(f"{args.pyperf}: {n} benchmarks")
    return 0
