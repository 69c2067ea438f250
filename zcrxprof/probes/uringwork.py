"""uringwork: io_uring's own work per thread — task-work runs (DEFER_TASKRUN local work and
regular task work) with their item and loop counts, CQ overflows, and io_uring_register calls by
opcode and result (zcrx registration is opcode 32, zcrx control 36).

Probe points (tracepoints; host and lab guest):
  io_uring:io_uring_local_work_run   local_runs, local_items, local_loops; histogram local_items
  io_uring:io_uring_task_work_run    task_runs, task_items (task_loops where the format has it)
  io_uring:io_uring_cqe_overflow     cqe_overflows
  io_uring:io_uring_register         register_op<N>_ret<R> (R = 0 or -errno), one row per pair

examples:
  uringwork -p 1234          # process 1234, 1 s intervals
  uringwork -j 1 5           # every thread, JSON lines
"""
from __future__ import annotations

import sys

from zcrxprof.probes.tool import Point, ProbeTool

# io_uring_register opcodes worth naming in reports (include/uapi/linux/io_uring.h).
REGISTER_OPCODES = {0: "REGISTER_BUFFERS", 1: "UNREGISTER_BUFFERS", 2: "REGISTER_FILES",
                    3: "UNREGISTER_FILES", 4: "REGISTER_EVENTFD", 5: "UNREGISTER_EVENTFD",
                    18: "REGISTER_IOWQ_AFF", 20: "REGISTER_RING_FDS", 21: "UNREGISTER_RING_FDS",
                    22: "REGISTER_PBUF_RING", 23: "UNREGISTER_PBUF_RING",
                    32: "REGISTER_ZCRX_IFQ", 33: "REGISTER_RESIZE_RINGS", 34: "REGISTER_MEM_REGION",
                    35: "REGISTER_QUERY", 36: "REGISTER_ZCRX_CTRL"}


class UringWork(ProbeTool):
    """io_uring task-work, overflow and registration counters per thread (see the module docstring)."""

    NAME = "uringwork"
    POINTS = (
        Point("io_uring:io_uring_local_work_run"),
        Point("io_uring:io_uring_task_work_run"),
        Point("io_uring:io_uring_cqe_overflow"),
        Point("io_uring:io_uring_register"),
    )
    METRICS = {
        0: ("io_uring:io_uring_local_work_run", "local_runs"),
        1: ("io_uring:io_uring_local_work_run", "local_items"),
        2: ("io_uring:io_uring_local_work_run", "local_loops"),
        3: ("io_uring:io_uring_task_work_run", "task_runs"),
        4: ("io_uring:io_uring_task_work_run", "task_items"),
        5: ("io_uring:io_uring_task_work_run", "task_loops"),
        6: ("io_uring:io_uring_cqe_overflow", "cqe_overflows"),
    }
    HISTOGRAMS = {0: ("io_uring:io_uring_local_work_run", "local_items")}

    def extra_rows(self, t: float) -> list[dict]:
        """One row per (thread, register opcode, result)."""
        return [{"t": t, "probe": f"{self.NAME}:io_uring_register", "tid": int(k.tid),
                 "metric": f"register_op{k.opcode}_ret{k.ret}", "value": int(v.value)}
                for k, v in self.bpf[b"registers"].items()]

    def registrations(self) -> list[dict]:
        """io_uring_register calls seen: ``{tid, opcode, name, ret, count}``."""
        return [{"tid": int(k.tid), "opcode": int(k.opcode),
                 "name": REGISTER_OPCODES.get(int(k.opcode), f"opcode {k.opcode}"),
                 "ret": int(k.ret), "count": int(v.value)} for k, v in self.bpf[b"registers"].items()]


if __name__ == "__main__":
    from zcrxprof.probes.cli import main
    sys.exit(main(UringWork, __doc__))
