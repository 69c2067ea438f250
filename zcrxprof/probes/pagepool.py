"""pagepool: page-pool buffer moves and NAPI polling — holds/releases and polls, work per poll and
polls that used their whole budget — attributed to the thread in whose context they ran.

Probe points (tracepoints; host and lab guest; napi_poll as a raw tracepoint when the kernel's BTF
shows the arguments the program expects):
  page_pool:page_pool_state_hold      holds (buffers handed out by a page pool)
  page_pool:page_pool_state_release   releases (buffers returned)
  napi:napi_poll                      polls, poll_work, poll_full_budget; histogram poll_work
Meaningful on a real NIC: zcrx-nodev has no page pool and no NAPI, and virtio/loopback traffic
here exercises the generic stack only. Both run in softirq context: tid 0 is the idle task, and a
-p filter keeps only work done while the target's threads were running.

examples:
  pagepool                 # system-wide, 1 s intervals
  pagepool -j 1 5          # JSON lines
"""
from __future__ import annotations

import sys

from zcrxprof.probes.tool import Point, ProbeTool


class PagePool(ProbeTool):
    """Page-pool and NAPI counters per thread context (see the module docstring)."""

    NAME = "pagepool"
    POINTS = (
        Point("page_pool:page_pool_state_hold"),
        Point("page_pool:page_pool_state_release"),
        Point("napi:napi_poll", raw=("struct napi_struct *", "int", "int")),
    )
    METRICS = {
        0: ("page_pool:page_pool_state_hold", "holds"),
        1: ("page_pool:page_pool_state_release", "releases"),
        2: ("napi:napi_poll", "polls"),
        3: ("napi:napi_poll", "poll_work"),
        4: ("napi:napi_poll", "poll_full_budget"),
    }
    HISTOGRAMS = {0: ("napi:napi_poll", "poll_work")}


if __name__ == "__main__":
    from zcrxprof.probes.cli import main
    sys.exit(main(PagePool, __doc__))
