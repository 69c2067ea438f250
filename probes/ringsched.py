#!/usr/bin/env python3
"""ringsched launcher: the same as `python -m zcrxprof.probes.ringsched` (see its --help)."""
from _launcher import launch

if __name__ == "__main__":
    launch("ringsched")
