"""The kernel probes of a recording: attached once, re-targeted and re-based at every run.

Compiling a BCC program takes 0.2–0.35 s on the host and 6–30 s in a TCG guest, so the tools are
attached once before the first run. Each run then points their tgid filter at its load generators
(``begin_run``) and takes a baseline, so the rows this class returns count that run only:
``snapshot(t)`` values are cumulative since the run began, ``histograms()`` hold the run's counts.
"""
from __future__ import annotations

import os

from zcrxprof import probes as probes_pkg
from zcrxprof.errors import UsageError, ZcrxprofError

TOOLS = ("ringsched", "uringwork", "zcrxstat", "pagepool")   # in attach order


def auto_tools(backend: str) -> tuple[list[str], list[str]]:
    """The tools worth attaching to a recording with ``backend``, and one note per tool left out (and why).

    ``zcrxstat`` probes kernel functions: only where kprobes exist or fentry attaches (tried, as
    ``zcrxprof doctor`` does). ``pagepool`` watches the page pool and NAPI of the NIC that receives:
    only with ``--backend zcrx`` (the other backends receive over loopback or a veth). The scheduler
    and io_uring tracepoint tools always.
    """
    from zcrxprof import doctor
    tools, notes = ["ringsched", "uringwork"], []
    kprobes = doctor.check_kprobes(doctor.kernel_config())
    fentry = doctor.check_fentry() if not kprobes.ok else kprobes
    if kprobes.ok or fentry.ok:
        tools.append("zcrxstat")
    else:
        notes.append(f"probes auto: zcrxstat left out: {kprobes.detail}; {fentry.detail} (--probes all tries anyway)")
    if backend == "zcrx":
        tools.append("pagepool")
    else:
        notes.append(f"probes auto: pagepool left out: backend {backend} receives through no NIC page pool "
                     "(only --backend zcrx does; --probes all tries anyway)")
    return tools, notes


def parse_probes(text: str) -> list[str]:
    """``--probes`` value → tool names (``all`` = every tool, ``none`` = no probes, ``auto`` kept as is)."""
    text = text.strip()
    if text == "none":
        return []
    if text in ("all", "auto"):
        return list(TOOLS) if text == "all" else ["auto"]
    names = [s.strip() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in TOOLS]
    if bad or not names:
        raise UsageError(f"--probes: unknown {', '.join(bad) or '(empty)'}; choose from {', '.join(TOOLS)}, "
                         "auto, all or none")
    return list(dict.fromkeys(names))


class ProbeSet:
    """Several probe tools used together; context manager that detaches all of them on exit."""

    def __init__(self, names: list[str]) -> None:
        """Tools by name; nothing is attached until ``attach()``."""
        self.names = list(names)
        self.tools: list = []
        self.report: list[dict] = []     # attach report: one dict per probe point (and per failed tool)
        self.headers: dict[str, str] = {}
        self._base: dict[tuple, float] = {}
        self._hbase: dict[tuple, int] = {}

    def attach(self) -> list[dict]:
        """Compile and attach every tool; a tool that fails entirely is reported, not fatal."""
        for name in self.names:
            user_headers = os.environ.get("BCC_KERNEL_SOURCE")
            try:
                tool = probes_pkg.tool_class(name)(pids=[])
                tool.attach()
            except ZcrxprofError as exc:
                self.report.append({"tool": name, "target": "*", "method": "none", "status": "unavailable",
                                    "reason": str(exc), "symbol": ""})
                continue
            finally:
                # each tool chooses its header tree itself instead of inheriting the previous choice
                if user_headers is None:
                    os.environ.pop("BCC_KERNEL_SOURCE", None)
                else:
                    os.environ["BCC_KERNEL_SOURCE"] = user_headers
            self.tools.append(tool)
            self.report += tool.report_dicts()
            if tool.headers is not None:
                self.headers[name] = getattr(tool.headers, "label", str(tool.headers))
        return self.report

    def begin_run(self, pids: list[int]) -> None:
        """Count only ``pids``' threads from now on, and take the run's baseline."""
        for tool in self.tools:
            tool.set_targets(pids)
        self._base = {(r["probe"], r["tid"], r["metric"]): r["value"] for r in self._raw_snapshot(0.0)}
        self._hbase = {(r["probe"], r["tid"], r["metric"], r["lo"], r["hi"]): r["count"] for r in self._raw_histograms()}

    def _raw_snapshot(self, t: float) -> list[dict]:
        return [r for tool in self.tools for r in tool.snapshot(t)]

    def _raw_histograms(self) -> list[dict]:
        return [r for tool in self.tools for r in tool.histograms()]

    def snapshot(self, t: float) -> list[dict]:
        """Rows ``t, probe, tid, metric, value`` cumulative since ``begin_run``."""
        rows = []
        for r in self._raw_snapshot(t):
            key = (r["probe"], r["tid"], r["metric"])
            value = r["value"] - self._base.get(key, 0)
            if key in self._base and value == 0:
                continue   # a thread of an earlier run, idle since
            rows.append({"t": t, "probe": r["probe"], "tid": r["tid"], "metric": r["metric"], "value": value})
        return rows

    def histograms(self) -> list[dict]:
        """Histogram buckets counted since ``begin_run`` (empty buckets dropped)."""
        rows = []
        for r in self._raw_histograms():
            count = r["count"] - self._hbase.get((r["probe"], r["tid"], r["metric"], r["lo"], r["hi"]), 0)
            if count > 0:
                rows.append({**{k: r[k] for k in ("probe", "tid", "metric", "lo", "hi")}, "count": count})
        return rows

    def detach(self) -> None:
        """Detach every tool (idempotent)."""
        while self.tools:
            self.tools.pop().detach()

    def __enter__(self) -> "ProbeSet":
        return self

    def __exit__(self, *exc) -> None:
        self.detach()
