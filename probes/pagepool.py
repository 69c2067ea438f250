#!/usr/bin/env python3
"""pagepool launcher: the same as `python -m zcrxprof.probes.pagepool` (see its --help)."""
from _launcher import launch

if __name__ == "__main__":
    launch("pagepool")
