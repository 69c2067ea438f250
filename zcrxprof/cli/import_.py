"""`zcrxprof import`: another tool's results (iperf3, neper, kperf) as a dataset (zcrxprof/importers/)."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from zcrxprof.vocab import TOPOLOGIES


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1 or value > 4096:
        raise argparse.ArgumentTypeError(f"{value}: must be 1..4096")
    return value


def register(subparsers) -> None:
    """Add the `import` subcommand."""
    p = subparsers.add_parser(
        "import", help="turn iperf3, neper or kperf results into a dataset",
        description="Write another tool's results as a dataset with the runs and intervals tables, so that show, "
                    "compare, report and the notebooks put them beside zcrxprof's own runs. What the tool does "
                    "not measure stays empty and is named in metadata.json (not_measured); runs are filed as "
                    "backend copy (never zero copy) and compare warns that the tool differs.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--iperf3", nargs="+", metavar="FILE",
                     help="iperf3 -J or --json-stream output, one file per run (client or server side)")
    src.add_argument("--neper", metavar="DIR", help="directory of neper tcp_stream outputs (key=value) and "
                                                   "their -A samples CSV files")
    src.add_argument("--kperf", metavar="FILE", help="kperf client --out-csv output (one line per run)")
    p.add_argument("--name", required=True, help="dataset name (letters, digits, '.', '_', '-')")
    p.add_argument("--topology", choices=TOPOLOGIES,
                   help="topology to file the runs under (default: single for one receiving thread, "
                        "ifq-per-ring for several)")
    p.add_argument("--rings", type=_positive, metavar="N",
                   help="receiving threads to file the runs under (default: what the tool reports)")
    p.add_argument("--label", help="free text kept in metadata.json and printed by show")
    p.add_argument("--root", type=Path, default=None, help="datasets directory (default: datasets/)")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    """Parse the tool's output, write the dataset, print where it went."""
    from zcrxprof import dataset
    from zcrxprof.importers import common, iperf3, kperf, neper
    common.check_name(args.name)
    if args.iperf3:
        imported = iperf3.parse(args.iperf3)
    elif args.neper:
        imported = neper.parse(args.neper)
    else:
        imported = kperf.parse(args.kperf)
    root = args.root or dataset.default_root()
    path = common.write_dataset(imported, args.name, Path(root), topology=args.topology, rings=args.rings,
                                label=args.label,
                                command_line=shlex.join(["zcrxprof", *sys.argv[1:]]) if sys.argv[1:2] == ["import"]
                                else "zcrxprof import")
    print(f"{path}: {len(imported.runs)} {imported.tool} run(s) imported; `zcrxprof show {args.name}` says "
          "what the tool does not measure")
    return 0
