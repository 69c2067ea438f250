"""`zcrxprof report DATASET… [-o FILE]`: one self-contained HTML file (no network, no script)."""
from __future__ import annotations

import argparse

EXAMPLES = """\
examples:
  zcrxprof report datasets/NAME                 # writes datasets/NAME.report.html
  zcrxprof report NAME1 NAME2 -o compare.html   # several datasets in one report
"""


def register(subparsers) -> None:
    """Add the ``report`` subcommand."""
    p = subparsers.add_parser("report", help="write a self-contained HTML report of datasets",
                              description=__doc__, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("datasets", nargs="+", metavar="DATASET", help="dataset directory or name under datasets/")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="output file (default: next to the first dataset, NAME.report.html)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the report and print its path."""
    import sys

    from zcrxprof import dataset
    from zcrxprof.report import write_dataset

    ds = dataset.load(args.datasets)
    for note in dataset.absent_notes(ds):
        print(note, file=sys.stderr)
    print(write_dataset(ds, args.output))
    return 0
