"""Find or build `loadgen/zcrx-loadgen`, run it (optionally in a network namespace) and parse its
JSON lines into typed records (the contract: docs/architecture.md, fields: docs/loadgen-output.md).
"""
from __future__ import annotations

import json
import math
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from zcrxprof import children, paths
from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.vocab import TOPOLOGIES



@dataclass
class Record:
    """Fields every record carries."""

    type: str
    topology: str
    backend: str
    emulated: list[str]
    t: float
    extra: dict[str, Any] = field(default_factory=dict)   # fields this version does not know
    printed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # CPUs the receiving threads may run on, and whether rings + workers outnumber them (None from
    # a load generator that did not print them)
    cpus_available: int | None = None
    rings_share_cores: bool | None = None

    def row(self) -> dict[str, Any]:
        """Every field exactly as the load generator printed it (a dataset table row)."""
        return dict(self.printed)


@dataclass
class Interval(Record):
    """Per-thread counter deltas over one interval."""

    thread: str = ""
    tid: int = 0
    role: str = ""
    ring: int = -1
    interval_s: float = 0.0
    bytes: int = 0
    completions: int = 0
    bufs_returned: int = 0
    refill_backlog: int = 0
    enobufs: int = 0
    rearms: int = 0
    utime_ns: int = 0
    stime_ns: int = 0
    nvcsw: int = 0
    nivcsw: int = 0
    work_ns: int = 0
    cpu: int = -1
    # tx only (TCP_INFO of the thread's connections): retransmits in the interval, smoothed RTT
    # mean and max at its end, in µs; -1 on other threads
    tcp_retrans: int = -1
    tcp_rtt_us: int = -1
    tcp_rtt_max_us: int = -1


@dataclass
class Registration(Record):
    """Backend facts for one ring."""

    thread: str = ""
    ring: int = 0
    zcrx_id: int = -1
    ifq: int = 0
    exported: bool = False
    imported: bool = False
    rq_entries: int = 0
    area_bytes: int = 0
    rx_buf_len: int = 0
    kernel: str = ""


@dataclass
class Event(Record):
    """A backend event (zcrx copy/alloc_fail/stats), a verification error, or `listening`."""

    event: str = ""
    thread: str = ""
    ring: int = -1
    count: int = 0
    bytes: int = 0


@dataclass
class ErrorRecord(Record):
    """A runtime failure: one line, the failed call and the errno name."""

    message: str = ""
    call: str = ""
    errno: str = ""


@dataclass
class Summary(Record):
    """The last line of a run."""

    status: str = ""
    duration_s: float = 0.0
    bytes_sent: int = 0
    bytes_received: int = 0
    verify_errors: int = 0
    first_verify_error: dict[str, int] | None = None
    gbit_s: float = 0.0
    rings: int = 0
    workers: int = 0
    connections: int = 0
    mode: str = ""
    kernel: str = ""
    fairness_jain: float | None = None
    conn_bytes_min: int | None = None
    conn_bytes_max: int | None = None
    rss_max_kib: int = 0
    rss_kib_per_connection: float = 0.0
    threads: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def shared_cores_note(self) -> str:
        """``4 rings on 2 CPUs: rings share cores`` when the run's rings and workers outnumbered
        the CPUs they could use (``rings_share_cores``), else ``""``."""
        from zcrxprof.vocab import shared_cores_note
        if not self.rings_share_cores:
            return ""
        return shared_cores_note(self.rings, self.workers, self.cpus_available)


_TYPES: dict[str, type[Record]] = {
    "interval": Interval, "registration": Registration, "event": Event,
    "error": ErrorRecord, "summary": Summary,
}


def parse_record(obj: dict[str, Any]) -> Record:
    """One decoded JSON object → its typed record (unknown fields kept in ``extra``)."""
    if not isinstance(obj, dict):
        raise ZcrxprofError(f"loadgen: a record must be a JSON object, not {type(obj).__name__}")
    cls = _TYPES.get(obj.get("type", ""))
    if cls is None:
        raise ZcrxprofError(f"loadgen: unknown record type {obj.get('type')!r}")
    names = {f.name for f in fields(cls)} - {"extra", "printed"}
    missing = {"type", "topology", "backend", "emulated", "t"} - obj.keys()
    if missing:
        raise ZcrxprofError(f"loadgen: {obj['type']} record lacks {', '.join(sorted(missing))}")
    known = {k: v for k, v in obj.items() if k in names}
    extra = {k: v for k, v in obj.items() if k not in names}
    return cls(**known, extra=extra, printed=dict(obj))


def parse_lines(lines: Iterable[str]) -> list[Record]:
    """JSON lines (blank lines skipped) → records; a malformed line is one-line error."""
    out = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ZcrxprofError(f"loadgen: line {n} is not JSON ({exc.msg}): {line[:80]}") from None
        out.append(parse_record(obj))
    return out


@dataclass
class LoadgenResult:
    """Everything one run printed, split by record type."""

    argv: list[str]
    returncode: int
    records: list[Record]
    stderr: str

    def of(self, cls: type[Record]) -> list[Any]:
        """Records of one type, in order."""
        return [r for r in self.records if isinstance(r, cls)]

    @property
    def intervals(self) -> list[Interval]:
        """Interval records."""
        return self.of(Interval)

    @property
    def registrations(self) -> list[Registration]:
        """Registration records (one per ring)."""
        return self.of(Registration)

    @property
    def events(self) -> list[Event]:
        """Event records."""
        return self.of(Event)

    @property
    def errors(self) -> list[ErrorRecord]:
        """Error records."""
        return self.of(ErrorRecord)

    @property
    def summary(self) -> Summary:
        """The summary record; a run without one is a failure."""
        s = self.of(Summary)
        if not s:
            line = (self.stderr.strip().splitlines() or ["no output"])[-1]
            raise ZcrxprofError(f"loadgen exited {self.returncode} without a summary: {line}")
        return s[-1]


def _sources_newer_than(path: Path, sources: Path) -> bool:
    mtime = path.stat().st_mtime
    return any(p.stat().st_mtime > mtime for p in sources.iterdir()
               if p.suffix in (".c", ".h") or p.name == "Makefile")


def binary(build: bool = True) -> Path:
    """Path of zcrx-loadgen, (re)built with make when missing or older than its sources (in a
    checkout; an installed package finds it on PATH or in its build directory)."""
    path, sources = paths.loadgen_binary(), paths.loadgen_source_dir()
    if path.exists() and not (build and sources and _sources_newer_than(path, sources)):
        return path
    if not build or sources is None:
        raise ZcrxprofError(f"{path} is not built (run: make -C loadgen in a zcrxprof checkout)")
    res = subprocess.run(["make", "-s", "-C", str(sources)], capture_output=True, text=True)
    if res.returncode != 0 or not path.exists():
        lines = [l for l in res.stderr.splitlines() if "error" in l] or res.stderr.splitlines() or ["?"]
        raise ZcrxprofError(f"building zcrx-loadgen failed: {lines[0].strip()}")
    return path


def kernel_features(path: str | Path | None = None) -> dict[str, Any]:
    """What the running kernel offers for zcrx, as the load generator detects it (``--kernel-features``:
    release, whether ``IORING_REGISTER_QUERY`` answered, the flags and opcodes it reported)."""
    argv = [str(path or binary()), "--kernel-features"]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ZcrxprofError(f"zcrx-loadgen --kernel-features did not run: {exc}") from None
    try:
        obj = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 and p.stdout.strip() else None
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or obj.get("type") != "kernel":
        last = (p.stderr.strip().splitlines() or ["no kernel record"])[-1]
        raise ZcrxprofError(f"zcrx-loadgen --kernel-features exited {p.returncode}: {last}")
    return obj


def build_args(topology: str = "single", **opts: Any) -> list[str]:
    """Keyword options → flags: rings=4 → --rings 4, verify=False → --no-verify, json=True → --json.

    Lists (rx_cpus=[0, 1]) are joined with commas; None values are left out.
    """
    if topology not in TOPOLOGIES:
        raise UsageError(f"unknown topology {topology!r} ({', '.join(TOPOLOGIES)})")
    args = ["--topology", topology]
    for key, value in opts.items():
        flag = "--" + key.replace("_", "-")
        if value is None:
            continue
        if key == "verify":
            args.append("--verify" if value else "--no-verify")
        elif isinstance(value, bool):
            if value:
                args.append(flag)
        elif isinstance(value, (list, tuple)):
            args += [flag, ",".join(str(v) for v in value)]
        else:
            args += [flag, str(value)]
    return args


def command(args: Sequence[str], netns: str | None = None, json_lines: bool = True) -> list[str]:
    """Full argv: the binary (inside `ip netns exec NETNS` if given) with args (+ --json)."""
    argv = [str(binary()), *args]
    if json_lines and "--json" not in argv:
        argv.append("--json")
    return (["ip", "netns", "exec", netns] if netns else []) + argv


def run(args: Sequence[str], netns: str | None = None, timeout: float | None = None) -> LoadgenResult:
    """Run zcrx-loadgen to completion with --json and parse what it printed.

    On timeout the process gets SIGINT (clean summary), then SIGKILL after 5 s.
    """
    proc = LoadgenProcess(args, netns=netns)
    return proc.wait(timeout=timeout)


class LoadgenProcess:
    """A running zcrx-loadgen in its own process group, its JSON lines read as they come.

    Reading never blocks on the child: :meth:`read` takes what arrived, :meth:`wait_for` waits
    for a record, :meth:`wait` for the end. Lines that are not a record of the contract are kept
    in ``bad_lines`` (:meth:`wait` raises on them). stderr goes to a file (:meth:`stderr_text`).
    ``die_with_parent``: the kernel kills the load generator when this process dies.
    """

    def __init__(self, args: Sequence[str], netns: str | None = None, *, die_with_parent: bool = False,
                 name: str = "loadgen") -> None:
        self._start(command(args, netns), die_with_parent, name)

    @classmethod
    def from_argv(cls, argv: Sequence[str], *, die_with_parent: bool = False,
                  name: str = "loadgen", stdin: int = subprocess.DEVNULL) -> LoadgenProcess:
        """Start a complete command line (the binary's path first, or behind a namespace or ssh
        prefix); ``stdin=subprocess.PIPE`` keeps a pipe open to it until :meth:`close`."""
        self = cls.__new__(cls)
        self._start(list(argv), die_with_parent, name, stdin)
        return self

    def _start(self, argv: list[str], die_with_parent: bool, name: str,
               stdin: int = subprocess.DEVNULL) -> None:
        self.argv, self.name = argv, name
        self.host = ""          # where it runs, when not on this machine (a remote sender's host)
        self.records: list[Record] = []
        self.bad_lines: list[str] = []
        self.eof = False
        self._buf = b""
        self._stderr = tempfile.TemporaryFile(mode="w+")
        try:
            self.proc = children.start(argv, stdin=stdin, stdout=subprocess.PIPE,
                                       stderr=self._stderr, die_with_parent=die_with_parent)
        except ZcrxprofError:
            self._stderr.close()
            raise
        os.set_blocking(self.proc.stdout.fileno(), False)

    @property
    def pid(self) -> int:
        """Process id (of `ip netns exec`, which execs the binary in place)."""
        return self.proc.pid

    def read(self) -> list[Record]:
        """Parse whatever complete lines arrived (never blocks); returns the new records."""
        try:
            chunk = self.proc.stdout.read()
        except (BlockingIOError, ValueError):
            chunk = None
        if chunk == b"":
            self.eof = True
        elif chunk:
            self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        if self.eof and self._buf:
            lines.append(self._buf)
            self._buf = b""
        new = []
        for line in lines:
            text = line.decode(errors="replace").strip()
            if not text:
                continue
            try:
                new += parse_lines([text])
            except ZcrxprofError:
                self.bad_lines.append(text[:200])
        self.records += new
        return new

    def wait_for(self, predicate: Callable[[Record], bool], timeout: float = 10.0) -> Record | None:
        """Read records as they come until one satisfies ``predicate`` (returned); None at the end
        of the output or after ``timeout`` seconds. Records read here stay in ``records``."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not self.eof:
                for rec in self.read():
                    if predicate(rec):
                        return rec
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sel.select(timeout=min(left, 0.25))
        return None

    def listening_port(self, timeout: float = 10.0) -> int:
        """For --listen: the port from the `listening` event (a receiver that fails is an error)."""
        rec = self.wait_for(lambda r: isinstance(r, (Event, ErrorRecord, Summary))
                            and getattr(r, "event", "listening") == "listening", timeout)
        if isinstance(rec, Event):
            return int(rec.extra["port"])
        self.close()
        raise ZcrxprofError(f"loadgen receiver did not start listening: {self.stderr_text().strip() or 'no output'}")

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Send a signal to the load generator's group if it still runs (SIGINT: the run ends
        with an `interrupted` summary)."""
        if self.proc.poll() is None:
            children.signal_group(self.proc.pid, sig)

    def drain(self, deadline: float) -> None:
        """Read until the load generator exits or the monotonic ``deadline`` passes."""
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read()
            time.sleep(0.02)
        self.read()
        self.read()

    def summary(self) -> Summary | None:
        """The summary record, if it printed one."""
        return next((r for r in reversed(self.records) if isinstance(r, Summary)), None)

    def error(self) -> ErrorRecord | None:
        """The first error record, if any."""
        return next((r for r in self.records if isinstance(r, ErrorRecord)), None)

    def stderr_text(self) -> str:
        """Everything the load generator wrote on stderr so far."""
        if self._stderr.closed:
            return self._stderr_text
        self._stderr.seek(0)
        return self._stderr.read()

    def wait(self, timeout: float | None = None) -> LoadgenResult:
        """Wait for the end (SIGINT at ``timeout``, SIGKILL of the group 5 s later), then the
        parsed output; a line that is not a record is a one-line error."""
        try:
            self.drain(math.inf if timeout is None else time.monotonic() + timeout)
            if self.proc.poll() is None:
                self.stop(signal.SIGINT)
                self.drain(time.monotonic() + 5)
            if self.proc.poll() is None:
                children.kill_group(self.proc)
            self.wait_for(lambda r: False, timeout=5)     # what is left in the pipe
        finally:
            self.close()
        if self.bad_lines:
            parse_lines([self.bad_lines[0]])
        return LoadgenResult(self.argv, self.proc.returncode, list(self.records), self.stderr_text())

    def close(self) -> None:
        """Kill the group if anything of it is left, reap, release the files (idempotent)."""
        if self.proc.returncode is None or children.group_members(self.proc.pid):
            children.kill_group(self.proc)
        if not self._stderr.closed:
            self._stderr_text = self.stderr_text()
            self._stderr.close()
        self.proc.stdout.close()
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    def __enter__(self) -> LoadgenProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
