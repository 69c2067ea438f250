#!/usr/bin/env python3
"""Set-up: fetch Debian packages from newer suites into a directory, never installing them.

Runs with the system's python3 before the project's venv exists (stdlib only); the archive access
itself is :mod:`zcrxprof.lab.debarchive`, which the kernel lab also uses to download kernels.

Examples:
    python3 scripts/debarchive.py resolve liburing-dev --min 2.15
    python3 scripts/debarchive.py extract liburing-dev liburing2 --min 2.15 --dest .build/sysroot
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the checkout, before any venv

from zcrxprof.errors import ZcrxprofError  # noqa: E402
from zcrxprof.lab import debarchive  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """``resolve PKG`` prints the version that would be used; ``extract PKG[=VER]…`` unpacks them."""
    ap = argparse.ArgumentParser(prog="scripts/debarchive.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("resolve", help="print the version that would be used")
    r.add_argument("package")
    r.add_argument("--min")
    r.add_argument("--pin")
    x = sub.add_parser("extract", help="download PKG[=VER]… and unpack them under --dest")
    x.add_argument("packages", nargs="+", metavar="PKG[=VER]")
    x.add_argument("--dest", required=True, type=Path)
    x.add_argument("--min", help="minimum version for packages given without =VER")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "resolve":
            print(debarchive.resolve(args.package, args.min, args.pin))
        else:
            for spec in args.packages:
                name, _, ver = spec.partition("=")
                ver = ver or debarchive.resolve(name, args.min)
                debarchive.extract(debarchive.download(name, ver), args.dest)
                print(f"{name}={ver}")
    except ZcrxprofError as exc:
        print(f"zcrxprof: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
