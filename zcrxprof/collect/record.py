"""The whole recording: plan, set up once (namespace, probes, plug-ins), run, write, clean up.

Signals (``zcrxprof.children``): the first SIGINT, SIGTERM or SIGHUP stops the run in progress
(its load generators print their summaries), writes what was measured, marks the dataset
``complete: false`` and undoes every set-up step through one ExitStack; further signals are
ignored while that happens (it is bounded by the runner's timeouts). Writes to the dataset run
with those signals held so a table is never left half-written. SIGKILL cannot be caught: the
load generators die with the recording (parent-death signal), and the next recording removes
the network namespace and ssh control directory it left (``netns.remove_stale``,
``peers.remove_stale_control_dirs``; one line on stderr each).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import sys
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from zcrxprof import __version__, children, paths, vocab
from zcrxprof.children import signals_deferred
from zcrxprof.collect.plan import RunSpec, build_plan
from zcrxprof.collect.probeset import ProbeSet, auto_tools
from zcrxprof.collect.progress import Progress
from zcrxprof.collect.runner import NicPlan, Placement, RunRecorder, RunSetup, receiver_argv
from zcrxprof.errors import UsageError, ZcrxprofError

LOCAL_HOST = "127.0.0.1"


@dataclass
class RecordOptions:
    """A recording as requested on the command line (already validated)."""

    topologies: list[str]
    rings: list[int]
    works: list[float]
    rates: list[float]
    duration_s: float
    repeat: int
    backend: str
    probes: list[str]
    name: str | None
    out: Path | None
    sender: str = "netns"                 # netns | local
    interval_s: float = 1.0
    command_line: str = ""
    collectors: list = field(default_factory=list)   # plug-in RunCollectors
    quiet: bool = False
    notes: list = field(default_factory=list)        # remarks for the dataset's metadata
    peers: list = field(default_factory=list)        # remote sender hosts (collect.peers.PeerAddress)
    ssh_config: str | None = None                    # ssh -F FILE for the peers (default: the user's)
    peer_dir: str | None = None                      # where on the peers the temp directory goes
    kernel_build: dict | None = None      # a user's kernel (`--kernel PATH`): UserKernel.identity()
    nic: NicPlan | None = None            # --backend zcrx: the NIC, its queues, --setup-nic, address, port


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def machine_info() -> dict:
    """CPU model, cores, memory, kernel and host name of the machine the runs execute on."""
    model = ""
    try:
        model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                      if l.startswith("model name")), "")
    except OSError:
        pass
    mem = 0
    try:
        mem = int(next(l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines()
                       if l.startswith("MemTotal:"))) * 1024
    except (OSError, StopIteration):
        pass
    return {"cpu_model": model or platform.processor(), "cores": os.cpu_count(), "memory_bytes": mem,
            "kernel": os.uname().release, "hostname": socket.gethostname(), "arch": platform.machine(),
            "loadavg_at_start": list(os.getloadavg())}


def git_sha() -> str | None:
    """The checkout's commit (with ``-dirty`` when the tree has changes), None outside git."""
    top = paths.checkout()
    if top is None:
        return None
    try:
        sha = subprocess.run(["git", "-C", str(top), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        # --no-optional-locks: status never takes .git/index.lock, which a SIGKILLed record would
        # leave in the user's checkout
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(top), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def dataset_name(opts: RecordOptions, place: str) -> str:
    """The given ``--name`` (checked) or ``<UTC timestamp>-<backend>-<place>``."""
    if opts.name:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", opts.name):
            raise UsageError(f"--name {opts.name!r}: use letters, digits, '.', '_' and '-'")
        return opts.name
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{opts.backend}-{place}"


def loadgen_binary() -> str:
    """Path of the load generator (rebuilt by make when stale, except inside the lab guest)."""
    from zcrxprof import loadgen
    return str(loadgen.binary(build=not vocab.in_lab()))


def receiver_cpus() -> int:
    """CPUs the receiving load generator may run on: this process's affinity mask, which it
    inherits (the load generator counts them itself and records the fact per run)."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def shared_cores_warning(specs: list[RunSpec], cpus: int) -> str:
    """One line when a planned run has more receiving threads (rings + workers) than ``cpus``:
    ``record: warning: …: rings share cores …``; empty when none has."""
    over = [s for s in specs if vocab.shares_cores(s.rings, s.workers, cpus)]
    if not over:
        return ""
    labels = list(dict.fromkeys(s.label().split(" work=")[0] for s in over))
    return (f"record: warning: {len(over)} of {len(specs)} planned runs have more rings (plus workers) than the "
            f"{cpus} CPU{'s' if cpus != 1 else ''} the receiver may use: rings share cores in "
            f"{', '.join(labels)} (runs.rings_share_cores)")


def remove_what_dead_recordings_left() -> None:
    """Remove what recordings that died left (killed with SIGKILL: they could not clean up): their
    ssh control directories, and (root) their sender namespaces and veths; one line for each kind
    removed. Those of live recordings stay."""
    from zcrxprof.collect.peers import remove_stale_control_dirs
    dirs = remove_stale_control_dirs()
    if dirs:
        print(f"zcrxprof: removed {len(dirs)} ssh control director{'ies' if len(dirs) > 1 else 'y'} left by a "
              f"recording that died ({', '.join(d.name for d in dirs)})", file=sys.stderr, flush=True)
    if os.geteuid() != 0:
        return
    from zcrxprof import netns
    try:
        line = netns.describe_removed(netns.remove_stale())
    except ZcrxprofError:       # no `ip` here: the sender namespace step will say so if needed
        return
    if line:
        print(line, file=sys.stderr, flush=True)


PREFLIGHT_TIMEOUT_S = 60.0     # one receiver preflight: NIC set-up, registrations, restore (queue restarts)


def nic_address(ifname: str) -> str:
    """The address the peers connect to with ``--backend zcrx``: the NIC's primary IPv4 address
    (``SIOCGIFADDR``: the first one ``ip -4 addr show dev IF`` lists); one line when it has none."""
    import errno
    import fcntl
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            raw = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", ifname.encode()[:15]))  # SIOCGIFADDR
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise ZcrxprofError(f"--ifname {ifname}: no network interface {ifname} here") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ZcrxprofError(f"--ifname {ifname}: it has no IPv4 address, and the peers connect to the "
                                    f"NIC's address: add one (`ip addr add ADDR/LEN dev {ifname}`)") from None
            raise ZcrxprofError(f"--ifname {ifname}: reading its IPv4 address: {exc.strerror}") from None
    return socket.inet_ntoa(raw[20:24])


def free_ports(address: str, count: int) -> int:
    """A port P with P..P+count-1 free on ``address`` now (the kernel picks P; a few tries)."""
    for _ in range(20):
        socks = []
        try:
            first = socket.socket()
            socks.append(first)
            first.bind((address, 0))
            base = first.getsockname()[1]
            if base + count - 1 > 65535:
                continue
            for k in range(1, count):
                extra = socket.socket()
                socks.append(extra)
                extra.bind((address, base + k))
            return base
        except OSError:
            continue
        finally:
            for sk in socks:
                sk.close()
    raise ZcrxprofError(f"no {count} consecutive free TCP ports on {address}; pass --port P")


def nic_preflight(opts: RecordOptions, specs: list[RunSpec], binary: str) -> None:
    """``--backend zcrx``, before any peer is contacted: the receiver of each planned (topology,
    rings) runs once with ``--preflight`` (the NIC checks, with ``--setup-nic`` the settings and
    flow rules, every ring's ifq registration, then all released and restored, no listening);
    the first failure is raised as its one line."""
    from zcrxprof.loadgen import LoadgenProcess
    where = Placement(opts.nic.address, "", [], "peers", list(opts.peers))
    setup = RunSetup(binary, opts.backend, where, {}, opts.interval_s, nic=opts.nic)
    seen = set()
    for spec in specs:
        if (spec.topology, spec.rings, spec.workers) in seen:
            continue
        seen.add((spec.topology, spec.rings, spec.workers))
        rx = LoadgenProcess.from_argv(receiver_argv(spec, setup) + ["--preflight"], die_with_parent=True,
                                      name="receiver preflight")
        try:
            try:
                rx.drain(time.monotonic() + PREFLIGHT_TIMEOUT_S)
            except KeyboardInterrupt:       # it restores the NIC on its way out: let it finish
                rx.drain(time.monotonic() + PREFLIGHT_TIMEOUT_S)
                raise
        finally:
            rx.close()
        err = rx.error()
        if err is None and rx.proc.returncode == 0:
            continue
        tail = [l for l in rx.stderr_text().splitlines() if l.strip()]
        why = err.message if err is not None else (tail[-1] if tail else f"exited with status {rx.proc.returncode}")
        raise ZcrxprofError(f"record --backend zcrx: {spec.label().split(' work=')[0]}: {why}")


def placement(stack: contextlib.ExitStack, sender: str, opts: RecordOptions | None = None,
              binary: str = "") -> Placement:
    """Sender placement: remote peers (connected, checked and deployed now), its own namespace
    joined by veth (created now) or local; ``stack`` undoes it."""
    if opts is not None and opts.peers:
        from zcrxprof.collect import peers
        address = opts.nic.address if opts.nic else None     # zcrx: the peers connect to the NIC
        remote = peers.open_peers(stack, opts.peers, binary, ssh_config=opts.ssh_config, peer_dir=opts.peer_dir,
                                  receiver_address=address)
        return Placement(address or peers.listen_address(remote), "", [], "peers", remote)
    if sender == "local":
        return Placement(LOCAL_HOST, LOCAL_HOST, [], "local")
    from zcrxprof import netns
    pair = stack.enter_context(netns.sender_netns())
    return Placement(pair.host_addr, pair.host_addr, pair.exec_prefix(), "netns")


def record(opts: RecordOptions, writer_class=None) -> Path:
    """Record the dataset; returns its directory (also when interrupted: then it is partial).

    ``writer_class`` defaults to the parquet DatasetWriter; the lab guest passes the JSON
    SpoolWriter (same methods) because loading pandas under TCG takes minutes.
    """
    if writer_class is None:
        from zcrxprof.dataset import DatasetWriter as writer_class
    place = vocab.place()
    accel = vocab.accelerator()
    kernel = os.uname().release
    specs = build_plan(opts.topologies, opts.rings, opts.works, opts.rates, opts.duration_s, opts.repeat)
    binary = loadgen_binary()
    if opts.nic is not None:            # where the peers connect: the NIC's address, a fixed port
        import dataclasses
        address = opts.nic.address or nic_address(opts.nic.ifname)
        port = opts.nic.port or free_ports(address, max(opts.nic.ports(s) for s in specs))
        opts.nic = dataclasses.replace(opts.nic, address=address, port=port)
    if opts.out:
        root = Path(opts.out)
    else:
        from zcrxprof.dataset import default_root
        root = default_root()
    path = root / dataset_name(opts, place)
    progress = Progress(len(specs), stream=io.StringIO() if opts.quiet else None)
    metadata = {
        "created": utc_now(), "zcrxprof": {"version": __version__, "git_sha": git_sha()},
        "command_line": opts.command_line, "machine": machine_info(),
        "place": {"where": place, "accelerator": accel or None, "kernel": kernel},
        "backend": opts.backend, "nic": None, "emulated": vocab.place_emulated(accel), "probes": [],
        "plan": {"topologies": opts.topologies, "rings": opts.rings, "work_ns_per_kib": opts.works,
                 "rate_gbit_s": opts.rates, "duration_s": opts.duration_s, "repeat": opts.repeat,
                 "interval_s": opts.interval_s, "sender": opts.sender, "runs": len(specs)},
        "versions": _versions(), "notes": list(opts.notes),
        "kernel_build": _kernel_build(opts.kernel_build, binary),
    }
    remove_what_dead_recordings_left()
    interrupted = False
    writer = None
    with children.raising_signals(once=True) as stop, contextlib.ExitStack() as stack:
        try:
            with signals_deferred():
                writer = writer_class(path, metadata)
            progress.message(f"dataset {path} ({len(specs)} runs, {opts.backend} backend, {place} {kernel})")
            warning = shared_cores_warning(specs, receiver_cpus())    # not progress: said even with --quiet
            if warning:
                print(warning, file=sys.stderr, flush=True)
            if opts.nic is not None:     # the NIC first: a refusal there contacts no peer
                with signals_deferred():
                    writer.update_metadata(nic={"ifname": opts.nic.ifname, "address": opts.nic.address,
                                                "port": opts.nic.port, "queue": opts.nic.queue,
                                                "queues": list(opts.nic.queues), "setup_nic": opts.nic.setup})
                nic_preflight(opts, specs, binary)
            where = placement(stack, opts.sender, opts, binary)
            if where.peers:
                with signals_deferred():
                    writer.update_metadata(peers=_peer_metadata(where, specs[0], binary, opts.interval_s, opts.nic))
            probes, notes = None, []
            tools = opts.probes
            if tools == ["auto"]:
                tools, notes = auto_tools(opts.backend)
            if tools:
                probes = stack.enter_context(ProbeSet(tools))
                report = probes.attach()
                attached = sum(r["status"] == "attached" for r in report)
                progress.message(f"probes: {attached} of {len(report)} probe points attached")
            with signals_deferred():
                writer.update_metadata(
                    notes=writer.metadata["notes"] + notes,
                    probes=probes.report if probes else [],
                    versions={**writer.metadata["versions"], "probe_headers": probes.headers if probes else {}})
            for c in opts.collectors:
                stack.callback(c.close)
            setup = RunSetup(binary, opts.backend, where,
                             {"kernel": kernel, "place": place, "accelerator": accel}, opts.interval_s, nic=opts.nic)
            for i, spec in enumerate(specs, 1):
                progress.start_run(i, spec.label())
                outcome = RunRecorder(spec, setup, probes, opts.collectors, progress).run()
                with signals_deferred():
                    writer.add_run(outcome.tables)
                    _merge_metadata(writer, outcome, spec)
                progress.end_run(outcome.status, outcome.gbit_s)
                if outcome.interrupted:
                    raise KeyboardInterrupt
                lost = [p.dest for p in where.peers if p.lost()]
                if lost:        # its senders, temporary directory and copy are gone: stop here
                    raise ZcrxprofError(f"peer {', '.join(lost)}: connection lost in run {i} of {len(specs)} "
                                        f"(no answer to ssh keep-alives); the recording stops with {i} of "
                                        f"{len(specs)} runs on disk in {path}")
        except KeyboardInterrupt:
            interrupted = True
        except ZcrxprofError:
            # set-up failed before anything was measured: leave no empty dataset behind
            if writer is not None and writer.metadata["runs_done"] == 0:
                shutil.rmtree(path, ignore_errors=True)
                writer = None
            raise
        finally:
            stop.ignore_from_now()   # the clean-up here and in the ExitStack must finish
            progress.close()
            if writer is not None:
                with signals_deferred():
                    writer.close(complete=not interrupted and writer.metadata["runs_done"] == len(specs),
                                 finished=utc_now())
    if interrupted:
        done = writer.metadata["runs_done"] if writer else 0
        progress.message(f"interrupted: {done} of {len(specs)} runs on disk in {path} (complete: false)")
        raise children.Stopped(stop.first or signal.SIGINT)
    return path


def _kernel_build(identity: dict | None, binary: Path) -> dict | None:
    """A user kernel's identity with what ``IORING_REGISTER_QUERY`` answers in this kernel (``query``:
    the load generator's ``--kernel-features`` line, or null with ``query_error`` when it did not run)."""
    if identity is None:
        return None
    from zcrxprof.loadgen import kernel_features
    try:
        return {**identity, "query": kernel_features(binary), "query_error": None}
    except ZcrxprofError as exc:
        return {**identity, "query": None, "query_error": str(exc)}


def _peer_metadata(where: Placement, spec: RunSpec, binary: str, interval_s: float,
                   nic: NicPlan | None = None) -> list[dict]:
    """The peers' preflight facts, each with its sender's command line (``PORT``: the run's port)."""
    from zcrxprof.collect.peers import spread
    from zcrxprof.collect.runner import receiver_connections, sender_args
    setup = RunSetup(binary, "", where, {}, interval_s, nic=nic)
    total = receiver_connections(spec, setup)
    out = []
    for peer, n in zip(where.peers, spread(total, len(where.peers))):
        args = sender_args(spec, setup, peer.facts["receiver_address"], 0, n, spec.rate_gbit_s * n / total)
        command = shlex.join([f"{peer.remote_dir}/zcrx-loadgen", *args]).replace(":0 ", ":PORT ")
        out.append({**peer.facts, "sender_command": command})
    return out


def _merge_metadata(writer, outcome, spec: RunSpec) -> None:
    meta = writer.metadata
    emulated = list(dict.fromkeys([*(meta.get("emulated") or []),
                                   *vocab.split_emulated(outcome.tables["runs"][0]["emulated"])]))
    notes = list(meta.get("notes") or []) + outcome.notes + list(outcome.metadata.get("notes") or [])
    versions = {**(meta.get("versions") or {}), **(outcome.metadata.get("versions") or {})}
    extra = {k: v for k, v in outcome.metadata.items() if k not in ("notes", "versions")}
    if meta.get("first_sample_at") is None and outcome.first_sample_at is not None:
        extra["first_sample_at"] = dt.datetime.fromtimestamp(outcome.first_sample_at, dt.timezone.utc).isoformat()
    if outcome.nic_events:          # --backend zcrx: the NIC's state before and after the run
        from zcrxprof.collect import nicstate
        extra["nic"] = nicstate.merge(meta.get("nic"), spec.run_id, outcome.nic_events, spec.rings)
    writer.update_metadata(emulated=emulated, notes=list(dict.fromkeys(notes)), versions=versions, **extra)


def _versions() -> dict:
    """External versions: liburing and uapi headers the load generator was built with, Python."""
    out = {"python": platform.python_version()}
    stamp = paths.build_dir() / "sysroot" / ".versions"
    try:
        for line in stamp.read_text().splitlines():
            if "=" in line:
                k, v = line.split("=", 1)
                out[k.strip()] = v.strip()
    except OSError:
        pass
    return out


def command_line(argv: list[str]) -> str:
    """The command as typed, shell-quoted."""
    return shlex.join(["zcrxprof"] + argv)
