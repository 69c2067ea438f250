"""One run: start the receiving and sending load generators, sample every interval, build table rows.

The receiver (``--listen``) runs in this namespace, the sender (``--connect``) in the sender's
namespace (or both over loopback), each through the typed client (``loadgen.LoadgenProcess``)
in its own process group (``zcrxprof.children``): a Ctrl-C at the terminal reaches only the
collector, which then stops them with SIGINT (they print a summary with status ``interrupted``),
and kills their groups on every path; the kernel kills them if the collector dies.
"""
from __future__ import annotations

import datetime as dt
import selectors
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from zcrxprof import children
from zcrxprof.children import signals_deferred
from zcrxprof.collect.plan import RunSpec
from zcrxprof.collect.plugins import RunContext
from zcrxprof.collect.samplers import SystemSampler
from zcrxprof.errors import ZcrxprofError
from zcrxprof.loadgen import Event, Interval, LoadgenProcess, Record
from zcrxprof.vocab import is_zero_copy, join_emulated, place_emulated

LISTEN_TIMEOUT_S = 10.0       # receiver must be listening by then
STOP_GRACE_S = 5.0            # after SIGINT, time to print a summary before SIGKILL
EXTRA_TIME_S = 30.0           # beyond the requested duration before a run is declared hung
STDERR_TAIL = 2000            # characters of a failed load generator's stderr kept in runs.error


@dataclass
class Placement:
    """Where the two halves of a run go: receiver address, sender command prefix and address."""

    listen_host: str                    # address the receiver binds
    connect_host: str                   # address the sender connects to
    sender_prefix: list[str] = field(default_factory=list)   # e.g. ["ip", "netns", "exec", NS]
    sender: str = "local"               # runs.sender label: netns | local


@dataclass
class RunSetup:
    """Everything fixed for the whole recording that a run needs."""

    loadgen: str
    backend: str
    placement: Placement
    labels: dict                        # kernel, place, accelerator (runs columns)
    interval_s: float = 1.0


@dataclass
class RunOutcome:
    """What one run produced: its table rows and how it ended."""

    tables: dict[str, list[dict]]      # table name → rows (plain dicts, schema columns)
    status: str
    gbit_s: float | None
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    metadata: dict = field(default_factory=dict)     # collectors' additions to the dataset metadata
    first_sample_at: float | None = None               # wall clock of the run's first sample


def receiver_argv(spec: RunSpec, setup: RunSetup) -> list[str]:
    """The receiving load generator's command line (it picks a free port and reports it)."""
    argv = [setup.loadgen, "--json", "--topology", spec.topology, "--backend", setup.backend,
            "--connections", str(spec.connections), "--interval", f"{setup.interval_s:g}",
            "--work", "checksum", "--work-ns-per-kib", str(int(round(spec.work_ns_per_kib))),
            "--listen", f"{setup.placement.listen_host}:0",
            "--duration", f"{spec.duration_s + EXTRA_TIME_S / 2:g}"]
    if spec.topology == "workers":
        argv += ["--workers", str(spec.workers)]
    elif spec.topology != "single":
        argv += ["--rings", str(spec.rings)]
    return argv


def sender_argv(spec: RunSpec, setup: RunSetup, port: int) -> list[str]:
    """The sending load generator's command line (with the namespace prefix)."""
    argv = setup.placement.sender_prefix + [
        setup.loadgen, "--json", "--connect", f"{setup.placement.connect_host}:{port}",
        "--connections", str(spec.connections), "--duration", f"{spec.duration_s:g}",
        "--interval", f"{setup.interval_s:g}"]
    if spec.rate_gbit_s:
        argv += ["--rate", f"{spec.rate_gbit_s:g}"]
    return argv


def start_loadgen(argv: list[str], name: str) -> LoadgenProcess:
    """One load generator of a run (``name``: receiver or sender); it dies with the collector."""
    return LoadgenProcess.from_argv(argv, die_with_parent=True, name=name)


def wait_listening(rx: LoadgenProcess, timeout: float) -> int | None:
    """The port from the receiver's `listening` event; None if it exits or times out first."""
    rec = rx.wait_for(lambda r: isinstance(r, Event) and r.event == "listening", timeout)
    return int(rec.extra["port"]) if rec is not None else None


def _expected_threads(spec: RunSpec) -> list[str]:
    names = [f"rx{i}" for i in range(spec.rings)]
    return names + [f"worker{i}" for i in range(spec.workers)]


class RunRecorder:
    """Runs one spec and gathers its rows; ``run()`` returns a RunOutcome on every path."""

    def __init__(self, spec: RunSpec, setup: RunSetup, probes=None, collectors=(), progress=None) -> None:
        """``probes``: a ProbeSet (or None); ``collectors``: plug-in RunCollectors."""
        self.spec, self.setup, self.probes = spec, setup, probes
        self.collectors = list(collectors)
        self.progress = progress
        self.system_rows: list[dict] = []
        self.probe_rows: list[dict] = []
        self.notes: list[str] = []
        self.started: list = []          # collectors whose start() succeeded
        self.start_tried = False
        self.first_sample_at: float | None = None     # wall clock (time.time()) of the first sample
        self.rx_gbit_s: dict[int, float] = {}          # progress: receive rate per reporting second

    def _sample(self, t: float, pids: list[int]) -> None:
        if self.first_sample_at is None:
            self.first_sample_at = time.time()
        self.system_rows += SystemSampler(pids).sample(t)
        if self.probes is not None:
            self.probe_rows += self.probes.snapshot(t)

    def run(self) -> RunOutcome:
        """Execute the run and return its outcome, also when interrupted (then ``interrupted`` is set).

        The wrap-up (stopping the children, reading their summaries, building rows) runs with
        SIGINT/SIGTERM blocked, so a signal arriving then cannot lose the run; it stops the
        recording after this run instead.
        """
        spec, setup = self.spec, self.setup
        started_at = dt.datetime.now(dt.timezone.utc).isoformat()
        t_wall = time.monotonic()
        rx = tx = ctx = None
        t0 = t_wall
        interrupted = hung = False
        outcome = None
        workdir = tempfile.TemporaryDirectory(prefix="zcrxprof-run-")
        try:
            with signals_deferred():      # a started child is always known to the wrap-up below
                rx = start_loadgen(receiver_argv(spec, setup), "receiver")
            t0 = time.monotonic()
            port = wait_listening(rx, LISTEN_TIMEOUT_S)
            if port is not None:
                with signals_deferred():
                    tx = start_loadgen(sender_argv(spec, setup, port), "sender")
            if self.probes is not None:
                self.probes.begin_run([c.proc.pid for c in (rx, tx) if c is not None])
            ctx = RunContext(run_id=spec.run_id, topology=spec.topology, backend=setup.backend,
                             pid=rx.proc.pid, t0=t0, duration_s=spec.duration_s, workdir=workdir.name)
            self._sample(0.0, [p.proc.pid for p in (rx, tx) if p])
            self._loop(rx, tx, ctx, t0)
            hung = rx.proc.poll() is None or (tx is not None and tx.proc.poll() is None)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            try:
                with signals_deferred():
                    try:
                        outcome = self._wrap_up(rx, tx, ctx, t0, started_at, t_wall, interrupted, hung)
                    finally:
                        for child in (rx, tx):
                            if child is not None:
                                child.close()
                        workdir.cleanup()
            except KeyboardInterrupt:
                interrupted = True      # arrived during the wrap-up: this run is whole, stop after it
        outcome.interrupted = interrupted
        return outcome

    def _wrap_up(self, rx, tx, ctx, t0, started_at, t_wall, interrupted, hung) -> RunOutcome:
        """Stop the children (SIGINT, then their summaries), stop collectors, build the rows."""
        for child in (rx, tx):
            if child is not None:
                child.stop(signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in (rx, tx):
            if child is not None:
                child.drain(deadline)
        if rx is not None:
            self._sample(round(time.monotonic() - t0, 3), [])
        tables: dict[str, list[dict]] = {}
        for c in self.started:
            try:
                tables = _merge(tables, c.stop(ctx))
            except ZcrxprofError as exc:
                self.notes.append(f"run {self.spec.run_id}: {c.name}: {exc}")
        outcome = self._outcome(rx, tx, started_at, time.monotonic() - t_wall, interrupted, hung, tables)
        outcome.metadata = ctx.metadata if ctx is not None else {}
        outcome.first_sample_at = self.first_sample_at
        return outcome

    def _loop(self, rx: LoadgenProcess, tx: LoadgenProcess | None, ctx: RunContext, t0: float) -> None:
        sel = selectors.DefaultSelector()
        for child in (rx, tx):
            if child is not None:
                sel.register(child.proc.stdout, selectors.EVENT_READ, child)
        interval = self.setup.interval_s
        next_sample = interval
        hard_stop = self.spec.duration_s + EXTRA_TIME_S
        expected = _expected_threads(self.spec)
        pids = [c.proc.pid for c in (rx, tx) if c is not None]
        try:
            while True:
                now = time.monotonic() - t0
                alive = [c for c in (rx, tx) if c is not None and not c.eof]
                if not alive or now > hard_stop:
                    break
                for key, _ in sel.select(timeout=max(0.0, min(next_sample - now, 0.25))):
                    child = key.data
                    for rec in child.read():
                        if child is rx and isinstance(rec, Interval):
                            self._progress(rec)
                    if child.eof:
                        sel.unregister(key.fileobj)
                if not self.start_tried and self.collectors:
                    tids = children.thread_names(rx.proc.pid)
                    if all(n in tids for n in expected):
                        ctx.tids = tids
                        self.start_tried = True
                        for c in self.collectors:
                            try:
                                c.start(ctx)
                                self.started.append(c)
                            except ZcrxprofError as exc:
                                self.notes.append(f"run {self.spec.run_id}: {c.name}: {exc}")
                now = time.monotonic() - t0
                if now >= next_sample:
                    self._sample(round(now, 3), pids)
                    next_sample += interval
                    if next_sample < now:
                        next_sample = now + interval
            for c in (rx, tx):
                if c is not None:
                    try:
                        c.proc.wait(timeout=max(0.1, hard_stop - (time.monotonic() - t0)))
                    except subprocess.TimeoutExpired:
                        pass
        finally:
            sel.close()

    def _progress(self, rec: Interval) -> None:
        """Show the receive rate: the rx threads' interval records, summed per reporting time."""
        if self.progress is None or rec.role != "rx":
            return
        t = round(float(rec.t or 0.0))
        gbit = rec.bytes * 8 / 1e9 / max(rec.interval_s or 0.0, 1e-9)
        self.rx_gbit_s[t] = self.rx_gbit_s.get(t, 0.0) + gbit
        self.progress.update(self.rx_gbit_s[t])

    def _outcome(self, rx, tx, started_at, elapsed_s, interrupted, hung, extra_tables) -> RunOutcome:
        spec, setup = self.spec, self.setup
        rsum = _row(rx.summary()) if rx else None
        tsum = _row(tx.summary()) if tx else None
        problems = []
        for child in (rx, tx):
            if child is None:
                continue
            err = _row(child.error())
            code = child.proc.returncode
            if err:
                problems.append(f"{child.name}: {err.get('message', '?')}"
                                + (f" ({err['call']}: {err['errno']})" if err.get("call") and err.get("errno") else ""))
            elif code not in (0, None) and not (interrupted and code in (0, -signal.SIGINT)):
                problems.append(f"{child.name} exited with status {code}")
            if child.bad_lines:
                problems.append(f"{child.name}: {len(child.bad_lines)} unparsable output line(s), first: {child.bad_lines[0]}")
        if rx is not None and rsum is None and not interrupted:
            problems.append("receiver printed no summary")
        if tx is None and rx is not None and not interrupted:
            problems.append(f"receiver did not listen within {LISTEN_TIMEOUT_S:g} s")
        if hung:
            problems.append(f"run did not end within {spec.duration_s + EXTRA_TIME_S:g} s; stopped")
        if rsum and rsum.get("verify_errors"):
            problems.append(f"{rsum['verify_errors']} payload verification error(s)")
        if interrupted:
            status = "interrupted"
        elif problems or (rsum or {}).get("status") == "error":
            status = "failed"
        else:
            status = "ok"
        error = ""
        if status == "failed":
            tails = [f"{c.name} stderr: {c.stderr_text().strip()[-STDERR_TAIL:]}" for c in (rx, tx)
                     if c is not None and c.stderr_text().strip()]
            error = "\n".join(problems + tails)
        rsum = rsum or {}
        run = {
            "run_id": spec.run_id, "repetition": spec.repetition, "topology": spec.topology,
            "backend": setup.backend, "zero_copy": is_zero_copy(setup.backend),
            "emulated": join_emulated(_emulated(rx, setup)), **setup.labels,
            "rings": spec.rings, "workers": spec.workers, "connections": spec.connections,
            "work_ns_per_kib": spec.work_ns_per_kib, "rate_gbit_s": spec.rate_gbit_s,
            "duration_s": spec.duration_s, "sender": setup.placement.sender, "started_at": started_at,
            "elapsed_s": elapsed_s, "status": status, "error": error,
            "exit_code": rx.proc.returncode if rx is not None and rx.proc.returncode is not None else -1,
            "bytes_sent": (tsum or {}).get("bytes_sent", rsum.get("bytes_sent")),
            "bytes_received": rsum.get("bytes_received"), "gbit_s": rsum.get("gbit_s"),
            "verify_errors": rsum.get("verify_errors"), "loadgen_duration_s": rsum.get("duration_s"),
        }
        records = [(r.row(), c) for c in (rx, tx) if c is not None for r in c.records]
        intervals = [r for r, _ in records if r.get("type") == "interval"]
        threads = [th for r, _ in records if r.get("type") == "summary" for th in (r.get("threads") or [])]
        regs = [r for r, c in records if r.get("type") == "registration" and c is rx]
        events = []
        for r, c in records:
            if r.get("type") == "event" and c is rx and r.get("event") != "listening":
                for k, v in r.items():
                    if k not in ("type", "topology", "backend", "emulated", "t", "event", "ring") and isinstance(v, (int, float)) and not isinstance(v, bool):
                        events.append({"t": r.get("t"), "event": r.get("event", ""), "ring": r.get("ring", -1),
                                       "metric": k, "value": v})
        tables = {
            "runs": [run],
            "intervals": _with_run(intervals, spec.run_id),
            "threads": _with_run(threads, spec.run_id),
            "registrations": _with_run(regs, spec.run_id),
            "events": _with_run(events, spec.run_id),
            "system": _with_run(self.system_rows, spec.run_id),
        }
        if self.probes is not None:
            tables["probes"] = _with_run(self.probe_rows, spec.run_id)
            tables["histograms"] = _with_run(self.probes.histograms(), spec.run_id)
        tables = _merge(tables, extra_tables)
        return RunOutcome(tables, status, rsum.get("gbit_s"), list(self.notes))


def _row(rec: Record | None) -> dict | None:
    """A record as the dict it was printed as (None stays None)."""
    return rec.row() if rec is not None else None


def _emulated(rx: LoadgenProcess | None, setup: RunSetup) -> list[str]:
    """What the run emulates: the load generator's own `emulated` tokens plus the place's."""
    tokens = [tok for rec in (rx.records if rx else []) for tok in rec.emulated or []]
    return list(dict.fromkeys(tokens + place_emulated(setup.labels.get("accelerator"))))


def _with_run(rows: list[dict], run_id: int) -> list[dict]:
    return [{**r, "run_id": run_id} for r in rows]


def _merge(a: dict[str, list[dict]], b: dict | None) -> dict[str, list[dict]]:
    """Concatenate row lists per table; a collector's DataFrames become rows."""
    out = dict(a)
    for k, v in (b or {}).items():
        rows = v.to_dict(orient="records") if hasattr(v, "to_dict") else list(v)
        out[k] = out.get(k, []) + rows
    return out
