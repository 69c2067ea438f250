#!/usr/bin/env python3
"""zcrxstat launcher: the same as `python -m zcrxprof.probes.zcrxstat` (see its --help)."""
from _launcher import launch

if __name__ == "__main__":
    launch("zcrxstat")
