"""zcrxstat: per-thread zcrx receive activity — receive calls, data CQEs and bytes, copy fallback
and refill starvation — counted in the kernel from io_uring's zcrx functions.

Probe points (kernel functions, no tracepoints exist for them), each attached by the ladder
fentry/fexit → kprobe/kretprobe (clones such as .isra.0 matched by regex):
  io_zcrx_recv (return)          recv_calls, recv_bytes, recv_nodata; histogram recv_bytes
  io_recvzc                      recvzc_calls (RECV_ZC issues, multishot re-issues included)
  io_zcrx_queue_cqe              cqes, cqe_bytes (one per data CQE)
  io_zcrx_copy_chunk (return)    copy_chunks, copy_bytes (the copy-fallback path)
  io_pp_zc_alloc_netmems (return) refill_calls, refill_empty (0 returned: refill starvation)
  zcrx_flush_rq                  flushes (ZCRX_CTRL_FLUSH_RQ drained the refill ring; a .isra
                                 clone on Debian's 7.x kernels, so attached by kprobe)
zcrx-nodev receives through the copy path: its bytes show up as copy_bytes, never as zero copy.
Needs kprobes or fentry; the 6.18 host has neither and says so in one line.

examples:
  zcrxstat                 # every thread, 1 s intervals, until Ctrl-C
  zcrxstat 5 3             # three 5 s intervals
  zcrxstat -p 1234         # only process 1234's threads
  zcrxstat -j 1 10         # JSON lines: attach report, 10 intervals, summary with histograms
  zcrxprof lab run -- .venv/bin/python -m zcrxprof.probes.zcrxstat 1 5   # in the lab guest
"""
from __future__ import annotations

import sys

from zcrxprof.probes.tool import Point, ProbeTool


class ZcrxStat(ProbeTool):
    """zcrx receive counters per thread (see the module docstring)."""

    NAME = "zcrxstat"
    POINTS = (
        Point("io_zcrx_recv", "return"),
        Point("io_recvzc", "entry"),
        Point("io_zcrx_queue_cqe", "entry"),
        Point("io_zcrx_copy_chunk", "return"),
        Point("io_pp_zc_alloc_netmems", "return", core=False),
        Point("zcrx_flush_rq", "entry", core=False),
    )
    METRICS = {
        0: ("io_zcrx_recv", "recv_calls"),
        1: ("io_zcrx_recv", "recv_bytes"),
        2: ("io_zcrx_recv", "recv_nodata"),
        3: ("io_recvzc", "recvzc_calls"),
        4: ("io_zcrx_queue_cqe", "cqes"),
        5: ("io_zcrx_queue_cqe", "cqe_bytes"),
        6: ("io_zcrx_copy_chunk", "copy_chunks"),
        7: ("io_zcrx_copy_chunk", "copy_bytes"),
        8: ("io_pp_zc_alloc_netmems", "refill_calls"),
        9: ("io_pp_zc_alloc_netmems", "refill_empty"),
        10: ("zcrx_flush_rq", "flushes"),
    }
    HISTOGRAMS = {0: ("io_zcrx_recv", "recv_bytes")}


if __name__ == "__main__":
    from zcrxprof.probes.cli import main
    sys.exit(main(ZcrxStat, __doc__))
