"""Find or build `loadgen/zcrx-loadgen`, run it (optionally in a network namespace) and parse its
JSON lines into typed records (the contract: docs/architecture.md, fields: docs/loadgen-output.md).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from zcrxprof.errors import UsageError, ZcrxprofError

REPO = Path(__file__).resolve().parent.parent
LOADGEN_DIR = REPO / "loadgen"
BINARY = LOADGEN_DIR / "zcrx-loadgen"
TOPOLOGIES = ("single", "workers", "ifq-per-ring", "shared-ifq")


@dataclass
class Record:
    """Fields every record carries."""

    type: str
    topology: str
    backend: str
    emulated: list[str]
    t: float
    extra: dict[str, Any] = field(default_factory=dict)   # fields this version does not know


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
    threads: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)


_TYPES: dict[str, type[Record]] = {
    "interval": Interval, "registration": Registration, "event": Event,
    "error": ErrorRecord, "summary": Summary,
}


def parse_record(obj: dict[str, Any]) -> Record:
    """One decoded JSON object → its typed record (unknown fields kept in ``extra``)."""
    cls = _TYPES.get(obj.get("type", ""))
    if cls is None:
        raise ZcrxprofError(f"loadgen: unknown record type {obj.get('type')!r}")
    names = {f.name for f in fields(cls)} - {"extra"}
    missing = {"type", "topology", "backend", "emulated", "t"} - obj.keys()
    if missing:
        raise ZcrxprofError(f"loadgen: {obj['type']} record lacks {', '.join(sorted(missing))}")
    known = {k: v for k, v in obj.items() if k in names}
    extra = {k: v for k, v in obj.items() if k not in names}
    return cls(**known, extra=extra)


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


def _sources_newer_than(path: Path) -> bool:
    mtime = path.stat().st_mtime
    return any(p.stat().st_mtime > mtime for p in LOADGEN_DIR.iterdir()
               if p.suffix in (".c", ".h") or p.name == "Makefile")


def binary(build: bool = True) -> Path:
    """Path of zcrx-loadgen, (re)built with make when missing or older than its sources."""
    if BINARY.exists() and not (build and _sources_newer_than(BINARY)):
        return BINARY
    if not build:
        raise ZcrxprofError(f"{BINARY} is not built (run: make -C loadgen)")
    res = subprocess.run(["make", "-s", "-C", str(LOADGEN_DIR)], capture_output=True, text=True)
    if res.returncode != 0 or not BINARY.exists():
        lines = [l for l in res.stderr.splitlines() if "error" in l] or res.stderr.splitlines() or ["?"]
        raise ZcrxprofError(f"building zcrx-loadgen failed: {lines[0].strip()}")
    return BINARY


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
    """A running zcrx-loadgen (e.g. a --listen receiver while a sender runs elsewhere)."""

    def __init__(self, args: Sequence[str], netns: str | None = None) -> None:
        self.argv = command(args, netns)
        self._lines: list[str] = []
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)

    @property
    def pid(self) -> int:
        """Process id (of `ip netns exec`, which execs the binary in place)."""
        return self.proc.pid

    def wait_for(self, predicate: Callable[[Record], bool], timeout: float = 10.0) -> Record | None:
        """Read records as they come until one satisfies predicate (returned); None at EOF.

        Records read here are kept and included in ``wait()``'s result.
        """
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                return None
            self._lines.append(line)
            rec = parse_lines([line])[0]
            if predicate(rec):
                return rec
        return None

    def listening_port(self, timeout: float = 10.0) -> int:
        """For --listen: the port from the `listening` event (a receiver that fails is an error)."""
        rec = self.wait_for(lambda r: isinstance(r, (Event, ErrorRecord, Summary))
                            and getattr(r, "event", "listening") == "listening", timeout)
        if isinstance(rec, Event):
            return int(rec.extra["port"])
        self.stop(signal.SIGKILL)
        err = self.proc.stderr.read().strip() if self.proc.stderr else ""
        raise ZcrxprofError(f"loadgen receiver did not start listening: {err or 'no output'}")

    def stop(self, sig: int = signal.SIGINT) -> None:
        """Send a signal if still running (SIGINT: the run ends with an `interrupted` summary)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> LoadgenResult:
        """Wait for the end (SIGINT at timeout, SIGKILL 5 s later) and parse the output."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(signal.SIGINT)
            try:
                out, err = self.proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                out, err = self.proc.communicate()
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            raise
        return LoadgenResult(self.argv, self.proc.returncode, parse_lines([*self._lines, *out.splitlines()]), err)

    def __enter__(self) -> LoadgenProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
