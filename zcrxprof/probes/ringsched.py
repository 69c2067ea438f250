"""ringsched: how the receive and worker threads are scheduled — switches (voluntary vs preempted),
migrations, wake-ups, wake-up→run latency (log2 histogram) and time on CPU, per thread.

Probe points (tracepoints; they work on the host and in the lab guest; the first three as raw
tracepoints when the kernel's BTF shows the arguments the program expects):
  sched:sched_switch        switch_voluntary, switch_preempted, oncpu_ns; histogram wakeup_latency_ns
  sched:sched_wakeup        wakeups (and the wake-up time for the latency)
  sched:sched_wakeup_new    wakeups of new threads
  sched:sched_migrate_task  migrations
switch_voluntary + switch_preempted of a thread equal its voluntary + involuntary context switches
in /proc/<pid>/task/<tid>/status over the same window. Filter to the load generator with -p.

examples:
  ringsched -p $(pgrep -f zcrx-loadgen)     # the load generator's threads, 1 s intervals
  ringsched 2 5                              # every thread, five 2 s intervals
  ringsched -t 4321 -j 1 3                   # one thread, JSON lines
"""
from __future__ import annotations

import sys

from zcrxprof.probes.tool import Point, ProbeTool


class RingSched(ProbeTool):
    """Scheduling counters per thread (see the module docstring)."""

    NAME = "ringsched"
    POINTS = (
        Point("sched:sched_switch", raw=("bool", "struct task_struct *", "struct task_struct *", "unsigned int")),
        Point("sched:sched_wakeup", core=False, raw=("struct task_struct *",), raw_reads=("task_struct.pid",)),
        Point("sched:sched_wakeup_new", core=False, raw=("struct task_struct *",), raw_reads=("task_struct.pid",)),
        Point("sched:sched_migrate_task", core=False),
    )
    METRICS = {
        0: ("sched:sched_switch", "switch_voluntary"),
        1: ("sched:sched_switch", "switch_preempted"),
        2: ("sched:sched_migrate_task", "migrations"),
        3: ("sched:sched_wakeup", "wakeups"),
        4: ("sched:sched_switch", "oncpu_ns"),
    }
    HISTOGRAMS = {0: ("sched:sched_switch", "wakeup_latency_ns")}
    STATE = ("woken_at",)   # the last wake-up not yet followed by a run, next to the thread's counters


if __name__ == "__main__":
    from zcrxprof.probes.cli import main
    sys.exit(main(RingSched, __doc__))
