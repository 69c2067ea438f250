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
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

from zcrxprof import children
from zcrxprof.children import signals_deferred
from zcrxprof.collect.peers import START_MARK, start_time
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
    sender: str = "local"               # runs.sender label: netns | local | peers
    peers: list = field(default_factory=list)                # remote senders (collect.peers.Peer)


@dataclass(frozen=True)
class NicPlan:
    """``--backend zcrx``: the NIC, its queues, ``--setup-nic`` and the receiver's fixed port.

    ifq-per-ring with N > 1 rings: ring i registers ``queues[i]`` and listens on ``port + i`` (a
    flow rule per port steers it to that queue); every other run registers ``queue`` for all its
    rings and listens on ``port``.
    """

    ifname: str
    queue: int | None                   # single, shared-ifq, workers (and ifq-per-ring ×1)
    queues: tuple = ()                  # ifq-per-ring: one per ring, ring i on queues[i]
    setup: bool = False                 # --setup-nic: the load generator applies and restores
    address: str = ""                   # the NIC's address: the receiver listens there
    port: int = 0                       # fixed: flow rules match destination ports

    def ring_queues(self, spec: RunSpec) -> list[int]:
        """The queue each ring of the run registers (index = ring)."""
        if spec.topology == "ifq-per-ring" and spec.rings > 1:
            return list(self.queues[:spec.rings])
        return [self.queue if self.queue is not None else self.queues[0]] * spec.rings

    def ports(self, spec: RunSpec) -> int:
        """Listening ports of the run: one per ring with --queues, else one."""
        return spec.rings if spec.topology == "ifq-per-ring" and spec.rings > 1 else 1

    def argv(self, spec: RunSpec) -> list[str]:
        """The receiver's NIC flags for the run."""
        queues = self.ring_queues(spec)
        argv = ["--ifname", self.ifname]
        argv += (["--queues", ",".join(map(str, queues))] if self.ports(spec) > 1 else ["--queue", str(queues[0])])
        return argv + (["--setup-nic"] if self.setup else [])


@dataclass
class RunSetup:
    """Everything fixed for the whole recording that a run needs."""

    loadgen: str
    backend: str
    placement: Placement
    labels: dict                        # kernel, place, accelerator (runs columns)
    interval_s: float = 1.0
    nic: NicPlan | None = None          # --backend zcrx


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
    nic_events: list[dict] = field(default_factory=list)   # the receiver's `nic_state` events (--backend zcrx)


def receiver_argv(spec: RunSpec, setup: RunSetup) -> list[str]:
    """The receiving load generator's command line: it picks a free port and reports it, or with
    ``--backend zcrx`` listens on the NIC's address and the recording's fixed port (flow rules
    match it) with the NIC flags (``NicPlan.argv``)."""
    nic = setup.nic
    listen = setup.placement.listen_host
    target = f"[{listen}]" if ":" in listen else listen
    argv = [setup.loadgen, "--json", "--topology", spec.topology, "--backend", setup.backend,
            "--connections", str(receiver_connections(spec, setup)), "--interval", f"{setup.interval_s:g}",
            "--work", "checksum", "--work-ns-per-kib", str(int(round(spec.work_ns_per_kib))),
            "--listen", f"{target}:{nic.port if nic else 0}",
            "--duration", f"{spec.duration_s + EXTRA_TIME_S / 2:g}"]
    if spec.topology == "workers":
        argv += ["--workers", str(spec.workers)]
    elif spec.topology != "single":
        argv += ["--rings", str(spec.rings)]
    return argv + (nic.argv(spec) if nic else [])


def sender_argv(spec: RunSpec, setup: RunSetup, port: int) -> list[str]:
    """The sending load generator's command line (with the namespace prefix)."""
    return setup.placement.sender_prefix + [setup.loadgen] + sender_args(
        spec, setup, setup.placement.connect_host, port, spec.connections, spec.rate_gbit_s)


def sender_args(spec: RunSpec, setup: RunSetup, host: str, port: int, connections: int,
                rate_gbit_s: float) -> list[str]:
    """A sender's flags: connect to HOST:PORT with this many connections at this rate."""
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    argv = ["--json", "--connect", target, "--connections", str(connections),
            "--duration", f"{spec.duration_s:g}", "--interval", f"{setup.interval_s:g}"]
    if rate_gbit_s:
        argv += ["--rate", f"{rate_gbit_s:g}"]
    ports = setup.nic.ports(spec) if setup.nic else 1
    if ports > 1:                       # ring i listens on PORT+i: connection k to PORT + k mod rings
        argv += ["--ports", str(ports)]
    return argv


def receiver_connections(spec: RunSpec, setup: RunSetup) -> int:
    """Connections the receiver waits for: the run's, or at least one per remote sender; with a
    port per ring (ifq-per-ring on a NIC) every sender opens one connection to each ring's port."""
    ports = setup.nic.ports(spec) if setup.nic else 1
    if ports > 1:
        return ports * max(1, len(setup.placement.peers))
    return max(spec.connections, len(setup.placement.peers))


def start_senders(spec: RunSpec, setup: RunSetup, port: int) -> list[LoadgenProcess]:
    """The run's senders: one here (or in the namespace), or one per peer with its share of the
    connections and of the offered rate (``collect.peers.spread``, docs/peers.md)."""
    peers = setup.placement.peers
    if not peers:
        return [start_loadgen(sender_argv(spec, setup, port), "sender")]
    from zcrxprof.collect.peers import spread
    total = receiver_connections(spec, setup)
    out = []
    for peer, n in zip(peers, spread(total, len(peers))):
        args = sender_args(spec, setup, peer.facts["receiver_address"], port, n, spec.rate_gbit_s * n / total)
        out.append(peer.start_sender(args, peer.sender_name))
    return out


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
        self.rx_started_at = 0.0                       # wall clock when the receiver started
        self.sender_failed = False
        self.dead_senders: set[str] = set()

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
        rx = ctx = None
        txs: list[LoadgenProcess] = []
        t0 = t_wall
        interrupted = hung = False
        outcome = None
        workdir = tempfile.TemporaryDirectory(prefix="zcrxprof-run-")
        try:
            with signals_deferred():      # a started child is always known to the wrap-up below
                rx = start_loadgen(receiver_argv(spec, setup), "receiver")
            t0 = time.monotonic()
            self.rx_started_at = time.time()
            port = wait_listening(rx, LISTEN_TIMEOUT_S)
            if port is not None:
                with signals_deferred():
                    txs = start_senders(spec, setup, port)
            local = [c.proc.pid for c in (rx, *txs) if not c.host]
            if self.probes is not None:
                self.probes.begin_run(local)
            ctx = RunContext(run_id=spec.run_id, topology=spec.topology, backend=setup.backend,
                             pid=rx.proc.pid, t0=t0, duration_s=spec.duration_s, workdir=workdir.name)
            self._sample(0.0, local)
            self._loop(rx, txs, ctx, t0)
            hung = any(c.proc.poll() is None for c in (rx, *txs))
        except KeyboardInterrupt:
            interrupted = True
        finally:
            try:
                with signals_deferred():
                    try:
                        outcome = self._wrap_up(rx, txs, ctx, t0, started_at, t_wall, interrupted, hung)
                    finally:
                        for child in (rx, *txs):
                            if child is not None:
                                child.close()
                        workdir.cleanup()
            except KeyboardInterrupt:
                interrupted = True      # arrived during the wrap-up: this run is whole, stop after it
        outcome.interrupted = interrupted
        return outcome

    def _wrap_up(self, rx, txs, ctx, t0, started_at, t_wall, interrupted, hung) -> RunOutcome:
        """Stop the children (SIGINT, then their summaries), stop collectors, build the rows."""
        for child in (rx, *txs):
            if child is not None:
                child.stop(signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in (rx, *txs):
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
        outcome = self._outcome(rx, txs, started_at, time.monotonic() - t_wall, interrupted, hung, tables)
        outcome.metadata = ctx.metadata if ctx is not None else {}
        outcome.first_sample_at = self.first_sample_at
        return outcome

    def _loop(self, rx: LoadgenProcess, txs: list[LoadgenProcess], ctx: RunContext, t0: float) -> None:
        sel = selectors.DefaultSelector()
        for child in (rx, *txs):
            sel.register(child.proc.stdout, selectors.EVENT_READ, child)
        interval = self.setup.interval_s
        next_sample = interval
        hard_stop = self.spec.duration_s + EXTRA_TIME_S
        expected = _expected_threads(self.spec)
        pids = [c.proc.pid for c in (rx, *txs) if not c.host]
        try:
            while True:
                now = time.monotonic() - t0
                alive = [c for c in (rx, *txs) if not c.eof]
                if not alive or now > hard_stop:
                    break
                dead = {c.name for c in txs if c.eof and c.proc.poll() not in (None, 0)}
                dead |= {p.sender_name for p in self.setup.placement.peers if p.lost()}
                if not self.sender_failed and dead:
                    self.sender_failed = True    # a sender or a peer died: end the run now (it is failed)
                    self.dead_senders = dead     # the others are stopped here: their exit is no failure
                    for c in (rx, *txs):
                        c.stop(signal.SIGINT)
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
            for c in (rx, *txs):
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

    def _outcome(self, rx, txs, started_at, elapsed_s, interrupted, hung, extra_tables) -> RunOutcome:
        spec, setup = self.spec, self.setup
        rsum = _row(rx.summary()) if rx else None
        tsums = [_row(tx.summary()) for tx in txs]
        problems = [f"peer {p.dest}: connection lost (no answer to ssh keep-alives within {p.lost_after_s} s)"
                    for p in setup.placement.peers if p.lost()]
        for child in (rx, *txs):
            if child is None:
                continue
            err = _row(child.error())
            code = child.proc.returncode
            if err:
                problems.append(f"{child.name}: {err.get('message', '?')}"
                                + (f" ({err['call']}: {err['errno']})" if err.get("call") and err.get("errno") else ""))
            elif code not in (0, None) and not (interrupted and code in (0, -signal.SIGINT)) and not (
                    self.sender_failed and child in txs and child.name not in self.dead_senders):
                problems.append(f"{child.name} exited with status {code}")
            if child.bad_lines:
                problems.append(f"{child.name}: {len(child.bad_lines)} unparsable output line(s), first: {child.bad_lines[0]}")
        if rx is not None and rsum is None and not interrupted:
            problems.append("receiver printed no summary")
        if not txs and rx is not None and not interrupted:
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
            tails = [f"{c.name} stderr: {_stderr_tail(c)}" for c in (rx, *txs)
                     if c is not None and _stderr_tail(c)]
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
            "bytes_sent": (sum(t.get("bytes_sent") or 0 for t in tsums) if tsums and all(tsums)
                           else rsum.get("bytes_sent")),
            "bytes_received": rsum.get("bytes_received"), "gbit_s": rsum.get("gbit_s"),
            "verify_errors": rsum.get("verify_errors"), "loadgen_duration_s": rsum.get("duration_s"),
            **_cores_fact(rx),
        }
        here = socket.gethostname()
        records = [(_placed(r.row(), c, here, self._shift(c)), c)
                   for c in (rx, *txs) if c is not None for r in c.records]
        intervals = [r for r, _ in records if r.get("type") == "interval"]
        threads = [th for r, _ in records if r.get("type") == "summary" for th in (r.get("threads") or [])]
        regs = [r for r, c in records if r.get("type") == "registration" and c is rx]
        events = []
        for r, c in records:
            if r.get("type") == "event" and c is rx and r.get("event") not in ("listening", "nic_state"):
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
        nic = [r for r, c in records if c is rx and r.get("type") == "event" and r.get("event") == "nic_state"]
        return RunOutcome(tables, status, rsum.get("gbit_s"), list(self.notes), nic_events=nic)


    def _shift(self, child: LoadgenProcess) -> float:
        """Seconds to add to a remote sender's ``t`` to put it on the receiver's time line: its
        start on the peer's clock, less the measured offset, less the receiver's start."""
        peer = next((p for p in self.setup.placement.peers if child.name == p.sender_name), None)
        started = start_time(child) if peer is not None else None
        if started is None:
            return 0.0
        return round(started - peer.clock_offset_s - self.rx_started_at, 6)


def _placed(row: dict, child: LoadgenProcess, here: str, shift: float) -> dict:
    """A record's row with the host it ran on and, for a remote sender, ``t`` on the receiver's
    time line (the summary's per-thread rows too)."""
    row["host"] = child.host or here
    if shift and isinstance(row.get("t"), (int, float)):
        row["t"] = round(row["t"] + shift, 6)
    if row.get("type") == "summary":
        row["threads"] = [{**th, "host": row["host"]} for th in row.get("threads") or []]
    return row


def _stderr_tail(child: LoadgenProcess) -> str:
    """The end of a load generator's stderr, without a remote wrapper's start line."""
    lines = [l for l in child.stderr_text().splitlines() if not l.startswith(START_MARK)]
    return "\n".join(lines).strip()[-STDERR_TAIL:]


def _row(rec: Record | None) -> dict | None:
    """A record as the dict it was printed as (None stays None)."""
    return rec.row() if rec is not None else None


def _cores_fact(rx: LoadgenProcess | None) -> dict:
    """``cpus_available`` and ``rings_share_cores`` as the receiver printed them on its records
    (every record carries them; the last one that does wins), or unknown (-1, false)."""
    rec = next((r for r in reversed(rx.records if rx else []) if r.cpus_available is not None), None)
    if rec is None:
        return {"cpus_available": -1, "rings_share_cores": False}
    return {"cpus_available": int(rec.cpus_available), "rings_share_cores": bool(rec.rings_share_cores)}


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
