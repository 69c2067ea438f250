"""System samplers: /proc and /sys values as tidy `system` rows, once per interval.

Sources (all cumulative counters, stored raw; difference consecutive samples for rates):
``stat`` per-CPU times from /proc/stat in seconds (incl. softirq), ``softirqs`` /proc/softirqs per
CPU, ``softnet`` /proc/net/softnet_stat per CPU, ``netstat`` TCP counters from /proc/net/netstat, and
``task`` per-thread context switches, CPU times and last CPU from /proc/<pid>/task/<tid>/.
"""
from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")
STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
SOFTIRQS = ("NET_RX", "NET_TX", "TIMER", "SCHED", "RCU", "TASKLET")
SOFTNET_FIELDS = {0: "processed", 1: "dropped", 2: "time_squeeze", 9: "received_rps", 10: "flow_limit_count"}
TCP_COUNTERS = (
    "TCPRcvCoalesce", "TCPBacklogCoalesce", "TCPOFOQueue", "TCPRcvQDrop", "TCPBacklogDrop",
    "PruneCalled", "RcvPruned", "TCPRcvCollapsed", "TCPZeroWindowDrop", "TCPToZeroWindowAdv",
    "TCPFromZeroWindowAdv", "TCPWantZeroWindowAdv", "TCPMemoryPressures", "DelayedACKs",
    "TCPHPHits", "TCPPureAcks", "TCPAutoCorking", "TCPOrigDataSent",
)
TASK_STATUS = ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:   # a thread or process that just exited
        return ""


def _row(t: float, source: str, entity: str, metric: str, value: float, unit: str = "", tid: int = -1) -> dict:
    return {"t": t, "source": source, "entity": entity, "tid": tid, "metric": metric, "value": float(value),
            "unit": unit}


def proc_stat(t: float, text: str | None = None) -> list[dict]:
    """Per-CPU and total CPU times (s) from /proc/stat."""
    rows = []
    for line in (text if text is not None else _read("/proc/stat")).splitlines():
        parts = line.split()
        if not parts or not parts[0].startswith("cpu"):
            continue
        for name, ticks in zip(STAT_FIELDS, parts[1:]):
            rows.append(_row(t, "stat", parts[0], name, int(ticks) / CLK_TCK, "s"))
    return rows


def proc_softirqs(t: float, text: str | None = None) -> list[dict]:
    """Softirq counts per CPU from /proc/softirqs (networking, timer, scheduler, RCU)."""
    lines = (text if text is not None else _read("/proc/softirqs")).splitlines()
    if not lines:
        return []
    cpus = [c.lower() for c in lines[0].split()]
    rows = []
    for line in lines[1:]:
        parts = line.split()
        if not parts or parts[0].rstrip(":") not in SOFTIRQS:
            continue
        for cpu, count in zip(cpus, parts[1:]):
            rows.append(_row(t, "softirqs", cpu, parts[0].rstrip(":"), int(count)))
    return rows


def softnet_stat(t: float, text: str | None = None) -> list[dict]:
    """Per-CPU packet processing counters from /proc/net/softnet_stat (hex columns)."""
    rows = []
    for i, line in enumerate((text if text is not None else _read("/proc/net/softnet_stat")).splitlines()):
        cols = [int(c, 16) for c in line.split()]
        cpu = cols[12] if len(cols) > 12 else i   # newer kernels name the CPU in column 13
        for idx, name in SOFTNET_FIELDS.items():
            if idx < len(cols):
                rows.append(_row(t, "softnet", f"cpu{cpu}", name, cols[idx]))
    return rows


def tcp_netstat(t: float, text: str | None = None) -> list[dict]:
    """Receive-side TCP counters (TcpExt) from /proc/net/netstat."""
    lines = (text if text is not None else _read("/proc/net/netstat")).splitlines()
    rows = []
    for head, vals in zip(lines[::2], lines[1::2]):
        names, values = head.split(), vals.split()
        if not names or names[0] != "TcpExt:":
            continue
        table = dict(zip(names[1:], values[1:]))
        rows += [_row(t, "netstat", "TcpExt", n, int(table[n])) for n in TCP_COUNTERS if n in table]
    return rows


def task_status(t: float, pid: int) -> list[dict]:
    """Per-thread context switches (status), CPU times in s and last CPU (stat) of process ``pid``."""
    rows = []
    try:
        tids = sorted(int(x) for x in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return rows
    for tid in tids:
        base = f"/proc/{pid}/task/{tid}"
        status = _read(f"{base}/status")
        stat = _read(f"{base}/stat")
        if not status or not stat:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        name = fields.get("Name", "").strip()
        for key in TASK_STATUS:
            if key in fields:
                rows.append(_row(t, "task", name, key, int(fields[key]), tid=tid))
        after = stat[stat.rfind(")") + 2:].split()   # fields from 3 (state) on
        rows.append(_row(t, "task", name, "utime", int(after[11]) / CLK_TCK, "s", tid))
        rows.append(_row(t, "task", name, "stime", int(after[12]) / CLK_TCK, "s", tid))
        rows.append(_row(t, "task", name, "processor", int(after[36]), tid=tid))
    return rows


class SystemSampler:
    """Samples every source at once; ``pids`` are the processes whose threads are sampled."""

    def __init__(self, pids: list[int] | None = None) -> None:
        """Sample system-wide sources and the threads of ``pids``."""
        self.pids = list(pids or [])

    def sample(self, t: float) -> list[dict]:
        """All rows for one sample at run time ``t`` (s)."""
        rows = proc_stat(t) + proc_softirqs(t) + softnet_stat(t) + tcp_netstat(t)
        for pid in self.pids:
            rows += task_status(t, pid)
        return rows
