"""The `zcrxprof` command: parse, dispatch to one module per subcommand, print failures as one line.

Each subcommand lives in its own module of this package (``record``, ``import_`` (import),
``datasets`` for ls/show,
``summary``, ``compare``, ``report``, ``export``, ``lab``, ``doctor``; ``text`` holds their shared
plain-text helpers) exposing ``register(subparsers)``, which adds a parser
and sets ``func(args) -> int`` on it. The command's work stays in its library module; these modules
parse, call it and print. They import heavy dependencies (pandas, bcc, …) inside ``func`` so that
``--help`` and bad-argument errors stay fast.
"""
from __future__ import annotations

import argparse
import sys

from zcrxprof import __version__
from zcrxprof.cli import compare, datasets, doctor, export, import_, lab, record, report, summary
from zcrxprof.errors import UsageError, ZcrxprofError

# Subcommand modules, in the order `zcrxprof --help` lists them (data flow order).
COMMAND_MODULES = (record, import_, datasets, summary, compare, report, export, lab, doctor)

EPILOG = """\
examples:
  zcrxprof record --rings 4            # all four topologies, 3 x 10 s each, into datasets/
  zcrxprof import --iperf3 R.json --name X  # another tool's results as a dataset
  zcrxprof ls                          # recorded datasets
  zcrxprof summary NAME                # the claims it supports, as plain text (80 columns)
  zcrxprof compare A B                 # B against A, configuration by configuration
  zcrxprof report datasets/NAME        # one self-contained HTML file
  zcrxprof lab run -- uname -r         # run a command inside the kernel lab guest
  zcrxprof doctor                      # what this machine can measure
"""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        """argparse, plus: ``--flag=--`` is a missing value (argparse would hand the command a list)."""
        for arg in sys.argv[1:] if args is None else args:
            if arg == "--":
                break
            if isinstance(arg, str) and arg.startswith("--") and arg.endswith("=--"):
                self.error(f"argument {arg.split('=', 1)[0]}: expected one argument")
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every available subcommand registered."""
    ap = _Parser(prog="zcrxprof",
                 description="Performance analysis for io_uring zero-copy receive (zcrx) topologies.",
                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"zcrxprof {__version__}")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in COMMAND_MODULES:
        mod.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the process exit status."""
    try:
        ap = build_parser()
        args = ap.parse_args(argv)
        if not getattr(args, "func", None):
            ap.print_help()
            return 2
        return int(args.func(args) or 0)
    except ZcrxprofError as exc:
        print(f"zcrxprof: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("zcrxprof: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:   # a file the user named cannot be used (too long a name, no permission, disk full)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"zcrxprof: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1

