#!/usr/bin/env python3
"""uringwork launcher: the same as `python -m zcrxprof.probes.uringwork` (see its --help)."""
from _launcher import launch

if __name__ == "__main__":
    launch("uringwork")
