"""`zcrxprof doctor`: what this machine can measure, one line per capability (checks in zcrxprof.doctor)."""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict


def register(subparsers) -> None:
    """Add the `doctor` subcommand."""
    p = subparsers.add_parser("doctor", help="what this machine can measure",
                              description="One line per capability, with what a missing one disables.")
    p.add_argument("--json", action="store_true", help="one JSON document with every capability")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Print the capabilities (text or JSON); exit 0 — missing capabilities are facts, not errors."""
    from zcrxprof.doctor import capabilities
    caps = capabilities()
    if args.json:
        print(json.dumps({"kernel": os.uname().release, "capabilities": [asdict(c) for c in caps]}, indent=2))
        return 0
    width = max(len(c.name) for c in caps)
    for c in caps:
        tail = f" — disables: {c.disables}" if not c.ok and c.disables else \
            (f" — note: {c.disables}" if c.disables else "")
        print(f"{'ok ' if c.ok else 'no '} {c.name:<{width}}  {c.detail}{tail}")
    return 0
