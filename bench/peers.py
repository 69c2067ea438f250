#!/usr/bin/env python3
"""Benchmark of `zcrxprof record --peer`: the same recording with the sender in a local network
namespace (record's default) and with senders on SSH peers, all measured in this run.

The peers are network namespaces on this machine running Debian's sshd (zcrxprof/peerlab.py, the
harness tests/test_peers.py uses: generated host and client keys, an `ssh -F` configuration),
joined by veth like record's own sender namespace, so the two placements differ only by what the
SSH path adds. Every repetition records the three variants back to back, in a rotating order:

  netns   record --sender netns (one sender process, one veth)
  ssh-1   record --peers peer1 (one sender process over ssh, one veth): the same layout
  ssh-2   record --peers peer1,peer2 (two sender processes, two veths; the connections shared)

Each recording: topologies single and shared-ifq, --rings 2, backend copy, --probes none
--no-perf (the collector's own sampling only), BENCH_SECONDS per run, one run per topology.

Reported, as median [min–max] over the repetitions:
1. receive Gbit/s per variant and topology, and the ratio ssh/netns within each repetition
   (median of the per-repetition ratios [min–max]); target ssh-1/netns ≥ 0.97.
2. set-up time per peer (connect + preflight + deploy + clock offset), from the dataset's
   metadata.peers[].setup_s / setup_steps_s, which record measures.
3. the cost of the peer-side samplers and their transport: on-CPU time per second of sending
   (/proc/PID/schedstat, ns resolution, polled every POLL_S) of (a) the sender's main thread,
   which writes its interval records (the sending threads are not counted), in every variant;
   (b) everything else the recording runs on a peer — sshd's session processes that carry the
   records, the wrapper shell and its watcher, the keeper of the temporary directory (the sshd
   listener is not counted); (c) the ssh client processes on the receiving side. Counted over
   the polls at which that namespace's sender was alive (what runs before and after, deploy and
   preflight included, is not counted), so a process's last fraction of a poll period is lost.

Labels: copy backend (not zero copy), this host's kernel, not emulated; machine shared with other
work, so figures are noisy. Needs root and openssh-server. Every sshd and namespace started here
is stopped on every exit path (also Ctrl-C and SIGTERM).
Environment: BENCH_REPS (default 5), BENCH_SECONDS (default 3), BENCH_DEBUG=1 (per-process CPU).
Usage: sudo .venv/bin/python bench/peers.py
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zcrxprof import children, loadgen, peerlab  # noqa: E402
from zcrxprof.dataset import load  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", "5"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
TOPOLOGIES = ("single", "shared-ifq")
RINGS = 2
POLL_S = 0.25
VARIANTS = ("netns", "ssh-1", "ssh-2")
TARGET = 0.97
CLIENT = "client"           # the Poller's key for the ssh clients on this side
DEBUG = bool(os.environ.get("BENCH_DEBUG"))


# ---- on-CPU time of the peer-side processes, from /proc ---------------------------------------

def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _oncpu_ns(pid: int, tid: int | None = None) -> int | None:
    """Nanoseconds on CPU of one thread (schedstat's first field); None if gone."""
    text = _read(f"/proc/{pid}/task/{tid or pid}/schedstat")
    return int(text.split()[0]) if text else None


def _netns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return ""


class Poller(threading.Thread):
    """Polls every POLL_S: per network namespace holding a sender (`zcrx-loadgen --connect`), the
    sender's main thread and every other process there but ``exclude`` (the sshd listeners); and
    the ssh clients here that use ``ssh_config``. Accumulates on-CPU ns over the polls at which the
    namespace's sender was alive (before and after), and the seconds that covers."""

    def __init__(self, exclude: set[int], ssh_config: str) -> None:
        super().__init__(daemon=True)
        self.exclude, self.ssh_config = exclude, ssh_config
        self.halt = threading.Event()
        self.cpu_ns: dict[tuple[str, str], int] = defaultdict(int)    # (namespace, kind) -> ns
        self.seconds: dict[str, float] = defaultdict(float)            # namespace -> s of sending
        self.lock = threading.Lock()
        self.by_comm: dict[tuple[str, str], int] = defaultdict(int)      # BENCH_DEBUG: (kind, comm) -> ns

    def sample(self) -> tuple[float, dict]:
        here = _netns(os.getpid())
        procs = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) not in self.exclude:
                pid = int(entry)
                ns = _netns(pid)
                if ns:
                    procs.append((pid, _read(f"/proc/{pid}/comm").strip(), ns))
        sender = {pid for pid, comm, ns in procs if comm == "zcrx-loadgen" and ns != here
                  and "--connect" in _read(f"/proc/{pid}/cmdline").split("\0")}
        senders = {ns for pid, comm, ns in procs if pid in sender}
        values = {}
        for pid, comm, ns in procs:
            if ns in senders:
                key = (ns, "main" if pid in sender else "harness", pid, comm)
            elif ns == here and comm == "ssh" and self.ssh_config in _read(f"/proc/{pid}/cmdline"):
                key = (CLIENT, "ssh-client", pid, comm)
            else:
                continue
            oncpu = _oncpu_ns(pid)
            if oncpu is not None:
                values[key] = oncpu
        return time.monotonic(), {"senders": senders, "values": values}

    def run(self) -> None:
        last_t, last = self.sample()
        while not self.halt.wait(POLL_S):
            t, now = self.sample()
            both = last["senders"] & now["senders"]
            with self.lock:
                for ns in both | ({CLIENT} if both else set()):
                    self.seconds[ns] += t - last_t
                for key, v in now["values"].items():
                    if key in last["values"] and (key[0] in both or (key[0] == CLIENT and both)):
                        self.cpu_ns[key[:2]] += v - last["values"][key]
                        if DEBUG:
                            self.by_comm[(key[1], key[3])] += v - last["values"][key]
            last_t, last = t, now

    def take(self) -> tuple[dict, dict]:
        """(cpu ns by (namespace, kind), seconds by namespace) since the last take; reset."""
        with self.lock:
            cpu, secs = dict(self.cpu_ns), dict(self.seconds)
            self.cpu_ns.clear()
            self.seconds.clear()
        return cpu, secs


# ---- one recording ----------------------------------------------------------------------------

def record(variant: str, hosts: peerlab.PeerHosts, out: Path, name: str) -> dict:
    """One `zcrxprof record`; Gbit/s per topology and (ssh) the peers' set-up seconds."""
    argv = [sys.executable, "-m", "zcrxprof", "record", "--topology", ",".join(TOPOLOGIES),
            "--rings", str(RINGS), "--repeat", "1", "--duration", f"{SECONDS:g}", "--backend", "copy",
            "--probes", "none", "--no-perf", "--out", str(out), "--name", name, "--quiet"]
    if variant != "netns":
        peers = hosts.names[:int(variant.split("-")[1])]
        argv += ["--peers", ",".join(peers), "--ssh-config", str(hosts.config),
                 "--peer-dir", str(hosts.peer_dir)]
    proc = children.start(argv, die_with_parent=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, stdin=subprocess.DEVNULL)
    try:
        _, err = proc.communicate(timeout=120 + 4 * SECONDS)
    finally:
        if proc.poll() is None:
            children.stop(proc, 30)
    if proc.returncode != 0:
        raise SystemExit(f"bench/peers.py: record ({variant}) failed: {(err.strip().splitlines() or ['?'])[-1]}")
    ds = load(out / name)
    runs = ds["runs"]
    bad = runs[(runs.status != "ok") | (runs.verify_errors != 0) | (runs.bytes_received != runs.bytes_sent)]
    if len(bad):
        raise SystemExit(f"bench/peers.py: {variant}: a run was not usable: {bad.error.tolist()}")
    return {"gbit_s": dict(zip(runs.topology, runs.gbit_s.astype(float))),
            "setup": [(p["setup_s"], p["setup_steps_s"]) for p in ds.metadata.get("peers") or []]}


# ---- figures ----------------------------------------------------------------------------------

def fmt(values: list[float], digits: int = 3, unit: str = "") -> str:
    """median [min–max]."""
    if not values:
        return "n/a"
    f = f"{{:.{digits}f}}"
    return f"{f.format(statistics.median(values))}{unit} [{f.format(min(values))}–{f.format(max(values))}]"


def main() -> int:
    if not peerlab.available():
        print("bench/peers.py: needs root and openssh-server (scripts/setup.sh)", file=sys.stderr)
        return 2
    loadgen.binary()
    began = time.monotonic()
    cpu_model = next((l.split(":", 1)[1].strip() for l in _read("/proc/cpuinfo").splitlines()
                      if l.startswith("model name")), platform.machine())
    print(f"bench/peers.py — {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, backend copy (not zero copy), "
          f"topologies {', '.join(TOPOLOGIES)}, --rings {RINGS}, host kernel {os.uname().release} "
          f"(not emulated), {os.cpu_count()} CPUs ({cpu_model}), load average {os.getloadavg()[0]:.1f} "
          f"at start (shared machine); {REPS} repetitions x {len(VARIANTS)} variants, {SECONDS:g} s per run")
    gbit = {v: defaultdict(list) for v in VARIANTS}                  # variant -> topology -> [Gbit/s]
    ratios = {v: defaultdict(list) for v in VARIANTS[1:]}            # variant -> topology -> [ratio]
    setup: dict[str, list] = defaultdict(list)                       # variant -> [(total, steps)]
    cost = defaultdict(list)                                         # (variant, kind) -> [ms per s]
    with children.raising_signals(once=True), tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        (Path(tmp) / "peers").mkdir()
        with peerlab.peer_hosts(Path(tmp) / "peers", 2) as hosts:
            poller = Poller({p.pid for p in hosts.sshd}, str(hosts.config))
            poller.start()
            try:
                n = 0
                for rep in range(REPS):
                    order = VARIANTS[rep % 3:] + VARIANTS[:rep % 3]
                    this = {}
                    for variant in order:
                        n += 1
                        poller.take()
                        this[variant] = record(variant, hosts, Path(tmp), f"r{n}")
                        cpu, secs = poller.take()
                        if DEBUG:
                            print(f"    {variant}: seconds {secs} on-CPU ms by (kind, comm) "
                                  f"{ {k: round(v / 1e6, 2) for k, v in poller.by_comm.items()} }", flush=True)
                            poller.by_comm.clear()
                        for (ns, kind), value in cpu.items():
                            if secs.get(ns):
                                cost[(variant, kind)].append(value / 1e6 / secs[ns])
                        setup[variant] += this[variant]["setup"]
                        for topo, g in this[variant]["gbit_s"].items():
                            gbit[variant][topo].append(g)
                    for variant in VARIANTS[1:]:
                        for topo in TOPOLOGIES:
                            ratios[variant][topo].append(this[variant]["gbit_s"][topo] / this["netns"]["gbit_s"][topo])
                    print(f"  repetition {rep + 1}/{REPS}: " + "; ".join(
                        f"{v} " + " ".join(f"{this[v]['gbit_s'][t]:.2f}" for t in TOPOLOGIES) for v in order),
                        flush=True)
            finally:
                poller.halt.set()
                poller.join()
            left = hosts.nothing_left()
    print(f"\n1. receive Gbit/s, median [min–max] over {REPS} repetitions")
    for topo in TOPOLOGIES:
        print(f"  {topo:<11} " + "  ".join(f"{v} {fmt(gbit[v][topo], 2)}" for v in VARIANTS))
    print("   ratio ssh/netns within each repetition, median [min–max]:")
    all_ok = True
    for variant in VARIANTS[1:]:
        for topo in TOPOLOGIES:
            r = ratios[variant][topo]
            verdict = ""
            if variant == "ssh-1":
                met = statistics.median(r) >= TARGET
                all_ok &= met
                verdict = f"  target ≥ {TARGET} {'met' if met else 'NOT met'}"
            print(f"  {variant}/netns {topo:<11} {fmt(r)}{verdict}")
    print("\n2. set-up time per peer (metadata.peers[].setup_s), s, median [min–max]")
    for variant in VARIANTS[1:]:
        totals = [t for t, _ in setup[variant]]
        steps = {k: [s[k] for _, s in setup[variant]] for k in ("connect", "preflight", "deploy", "clock")}
        print(f"  {variant}: {len(totals)} peer set-ups: total {fmt(totals)}; "
              + ", ".join(f"{k} {fmt(v)}" for k, v in steps.items()))
    print("\n3. peer-side sampler cost: on-CPU ms per second of sending, per peer, median [min–max]")
    names = {"main": "sender main thread (interval records)", "harness": "sshd sessions + wrapper + keeper",
             "ssh-client": "ssh clients on the receiver (all peers)"}
    for kind, label in names.items():
        print(f"  {label}: " + "  ".join(f"{v} {fmt(cost[(v, kind)], 2)}" for v in VARIANTS if cost[(v, kind)]))
    print(f"\n{time.monotonic() - began:.0f} s in all; load average {os.getloadavg()[0]:.1f} at end; left on the peers after the last recording: "
          f"{left if left != ([], []) else 'nothing'}; targets {'met' if all_ok else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as exc:       # Ctrl-C, or SIGTERM/SIGHUP raised as children.Stopped
        print("bench/peers.py: interrupted; the peers' sshd and namespaces it started are stopped", file=sys.stderr)
        sys.exit(exc.exit_status if isinstance(exc, children.Stopped) else 130)
