"""Benchmark for zcrx-loadgen, every reference measured in the same run.

1. Receivers ("receivers"), loopback, every receiver process pinned to CPU 0 and every sender to
   CPU 1, sends of 16 KiB, 64 KiB, 256 KiB and 1 MiB, REPS repetitions interleaved (the order of
   the tools turns with each repetition):
   - `zcrx-loadgen --listen --work none --no-verify` (otherwise its defaults) fed by
     `zcrx-loadgen --connect`;
   - bench/minrecv.c, a minimal liburing loop (one single-shot recv of 64 KiB at a time) fed by
     the same sender; targets: Gbit/s >= 1.00x, receiver CPU per KiB <= 1.10x;
   - neper's tcp_stream pair (server and client, one flow, -B = send size), built from the
     checkout NEPER_DIR names into bench/out/neper (skipped, with one line, without it), and
     iperf3's pair (-l = send size): the zcrx-loadgen pair's targets are Gbit/s >= 1.00x and
     receiver CPU per byte <= 1.00x.
   Receiver CPU is counted the same way for every tool: the receiving process's utime+stime from
   /proc/PID/stat, from just before its sender starts until it exited (read before it is
   reaped), never a tool's own report. Gbit/s: bytes the receiver got x 8 / the sending time
   (every sender is told to send for BENCH_SECONDS). Printed: median [min..max] of each tool's
   runs and of the per-repetition ratios, the load generator's run-time receive parameters
   (params.bundle_rule says why its bundle is what it is, params.reuse_rule in which order it
   gives buffers back to the kernel), and as a diagnostic the receiver's
   own count of voluntary context switches per GB (load generator and minrecv only);
   written: bench/out/loadgen-receivers.json (every run).
2. ("scaling") single vs shared-ifq (2 rings) at --work-ns-per-kib 2000, sender paced: scaling
   of the median Gbit/s; target >= 1.6x on 2 cores.
3. ("connections") Connections sweep, 1 / 100 / 1,000 / 10,000 connections, 64 KiB sends: a
   receiver process `zcrx-loadgen --listen --topology single --work none --no-verify` (CPU 0)
   against bench/minrecv.c with CONNECTIONS (one multishot receive per socket, one 128-buffer
   ring, CPU 0), both driven by the same `zcrx-loadgen --connect` sender process (CPU 1; 64
   sender threads above 64 connections).
   Reported: receiver Gbit/s and receiver CPU ns/KiB (zcrx-loadgen: its rx thread; minrecv: the
   process), median [min..max], and the per-repetition ratios. No target: it shows the cost of scale.
   Sender and receiver are separate processes, so 10,000 connections fit a 20,000 open-file limit.
Backend copy, host kernel (not emulated); copy numbers are not zero-copy numbers.
Environment: BENCH_REPS (default 9), BENCH_SECONDS (default 2), NEPER_DIR (a neper checkout).
Usage: python bench/loadgen.py [receivers|scaling|connections]...   (default: all three parts)
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from zcrxprof import loadgen  # noqa: E402

REPS = int(os.environ.get("BENCH_REPS", "9"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
BUF = "64K"
SYSROOT = ROOT / ".build" / "sysroot" / "usr"
MINRECV = ROOT / "bench" / "out" / "minrecv"


def build_minrecv() -> Path:
    """Compile bench/minrecv.c against the same static liburing as the load generator."""
    src = ROOT / "bench" / "minrecv.c"
    if MINRECV.exists() and MINRECV.stat().st_mtime > src.stat().st_mtime:
        return MINRECV
    MINRECV.parent.mkdir(exist_ok=True)
    subprocess.run(["cc", "-O2", "-Wall", "-D_GNU_SOURCE", "-isystem", str(SYSROOT / "include"),
                    "-isystem", str(SYSROOT / "include" / "x86_64-linux-gnu"), "-o", str(MINRECV),
                    str(src), str(SYSROOT / "lib" / "x86_64-linux-gnu" / "liburing.a")], check=True)
    return MINRECV


def size_bytes(s: str) -> int:
    return int(s[:-1]) << {"K": 10, "M": 20}[s[-1]]


def rx_ns_per_kib(cpu_ns: float, nbytes: int) -> float:
    return cpu_ns / (nbytes / 1024)


NEPER_BUILD = ROOT / "bench" / "out" / "neper"
RECEIVER_CPU, SENDER_CPU = "0", "1"
SIZES = ("16K", "64K", "256K", "1M")
TOOLS = ("loadgen", "minrecv", "neper", "iperf3")
LABELS = {"loadgen": "zcrx-loadgen --listen", "minrecv": "minrecv (same sender)",
          "neper": "neper tcp_stream pair", "iperf3": "iperf3 pair"}
JSON_OUT = ROOT / "bench" / "out" / "loadgen-receivers.json"


def build_neper() -> Path | None:
    """tcp_stream built from the neper checkout NEPER_DIR into bench/out/neper (the checkout is
    only read: its sources are copied there first); None, after one line, without a checkout."""
    src = Path(os.environ.get("NEPER_DIR", ""))
    if not os.environ.get("NEPER_DIR") or not (src / "tcp_stream_main.c").is_file():
        print("neper: NEPER_DIR is unset or not a neper checkout; its comparison is skipped")
        return None
    NEPER_BUILD.mkdir(parents=True, exist_ok=True)
    for f in [*src.glob("*.c"), *src.glob("*.h"), src / "Makefile"]:
        dest = NEPER_BUILD / f.name
        if not dest.exists() or dest.read_bytes() != f.read_bytes():
            dest.write_bytes(f.read_bytes())
    res = subprocess.run(["make", "-s", "-C", str(NEPER_BUILD), "tcp_stream"], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"neper: building tcp_stream failed ({(res.stderr.strip().splitlines() or ['?'])[-1]}); skipped")
        return None
    return NEPER_BUILD / "tcp_stream"


TICK_NS = 1e9 / os.sysconf("SC_CLK_TCK")


def cpu_ns(pid: int) -> float:
    """utime + stime of process pid (all its threads, also once it is a zombie), in ns."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_NS


def exited_unreaped(proc: subprocess.Popen, timeout: float, pump=lambda: None) -> None:
    """Wait until proc exits but leave it unreaped, so its /proc/PID/stat still holds its final
    CPU times; pump() runs meanwhile (to drain a pipe)."""
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"receiver {proc.args} did not exit within {timeout:.0f} s")
        pump()
        time.sleep(0.02)


def listening(port: int, timeout: float = 10) -> None:
    """Wait until something listens on TCP port (from /proc/net/tcp)."""
    deadline = time.monotonic() + timeout
    want = f":{port:04X} "
    while time.monotonic() < deadline:
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            if f[1].endswith(want.strip()) and f[3] == "0A":
                return
        time.sleep(0.01)
    raise RuntimeError(f"nothing listens on port {port}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu: str, argv: list) -> list[str]:
    return ["taskset", "-c", cpu, *map(str, argv)]


def measure(receiver: subprocess.Popen, send, pump=lambda: None) -> tuple[float, float]:
    """Receiver CPU ns and wall seconds over one window: from just before the sender starts
    (send() runs it to its end) until the receiver process has exited."""
    c0, t0 = cpu_ns(receiver.pid), time.monotonic()
    send()
    exited_unreaped(receiver, SECONDS + 60, pump)
    return cpu_ns(receiver.pid) - c0, time.monotonic() - t0


def loadgen_sender(port: int, send: str) -> None:
    """zcrx-loadgen --connect on the sender CPU: the sender of the loadgen and minrecv runs."""
    argv = pinned(SENDER_CPU, [LOADGEN, "--connect", f"127.0.0.1:{port}", "--send-size", send,
                               "--duration", SECONDS, "--tx-cpus", SENDER_CPU, "--json"])
    res = loadgen.LoadgenProcess.from_argv(argv).wait(timeout=SECONDS + 30)
    assert res.returncode == 0 and res.summary.bytes_sent > 0, res.stderr


def run_loadgen(send: str) -> dict:
    """zcrx-loadgen --listen with its defaults (no payload work), fed by zcrx-loadgen --connect."""
    argv = pinned(RECEIVER_CPU, [LOADGEN, "--listen", "127.0.0.1:0", "--work", "none",
                                 "--no-verify", "--rx-cpus", RECEIVER_CPU, "--json"])
    rx = loadgen.LoadgenProcess.from_argv(argv)
    try:
        port = rx.listening_port(timeout=30)
        cpu, wall = measure(rx.proc, lambda: loadgen_sender(port, send), rx.read)
        s = rx.wait(timeout=30).summary
    finally:
        rx.close()
    assert s.status == "ok" and s.bytes_received > 0
    t = next(t for t in s.threads if t["role"] == "rx")
    params = {k: s.params.get(k) for k in ("bufs", "buf_size", "bundle", "bundle_rule", "reuse", "reuse_rule",
                                            "wait_batch", "wait_min_us")}
    return {"bytes": s.bytes_received, "cpu_ns": cpu, "wall_s": wall, "nvcsw": t["nvcsw"], "params": params}


def run_minrecv(send: str) -> dict:
    """bench/minrecv.c (one single-shot recv of BUF at a time), fed by the same sender."""
    with subprocess.Popen(pinned(RECEIVER_CPU, [MINRECV, size_bytes(BUF)]), stdout=subprocess.PIPE,
                          text=True, start_new_session=True) as p:
        assert p.stdout is not None
        port = int(p.stdout.readline().split()[1])
        cpu, wall = measure(p, lambda: loadgen_sender(port, send))
        out = json.loads(p.stdout.readline())
    return {"bytes": out["bytes"], "cpu_ns": cpu, "wall_s": wall, "nvcsw": out["nvcsw"]}


def run_neper(send: str) -> dict:
    """neper tcp_stream server (CPU 0) and client (CPU 1), one flow, -B = the send size."""
    port, cport = free_port(), free_port()
    common = ["-B", size_bytes(send), "-l", max(1, round(SECONDS)), "-P", port, "-C", cport, "--nolog"]
    samples = NEPER_BUILD / "samples.csv"
    with subprocess.Popen(pinned(RECEIVER_CPU, [NEPER, *common, f"--all-samples={samples}"]),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                          cwd=NEPER_BUILD) as p:
        listening(port)
        cpu, wall = measure(p, lambda: subprocess.run(
            pinned(SENDER_CPU, [NEPER, "-c", "-H", "127.0.0.1", *common]), stdout=subprocess.DEVNULL,
            check=True, timeout=SECONDS + 30, cwd=NEPER_BUILD))
    last: dict[tuple[str, str], int] = {}
    for row in samples.read_text().splitlines()[1:]:    # tid,flow_id,time,bytes_read,...
        f = row.split(",")
        last[(f[0], f[1])] = int(f[3])
    return {"bytes": sum(last.values()), "cpu_ns": cpu, "wall_s": wall}


def run_iperf3(send: str) -> dict:
    """iperf3 -s -1 (CPU 0) and iperf3 -c -l SEND (CPU 1); bytes as the server counted them."""
    port = free_port()
    with subprocess.Popen(pinned(RECEIVER_CPU, ["iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", port]),
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True) as p:
        listening(port)
        res: list[subprocess.CompletedProcess] = []
        cpu, wall = measure(p, lambda: res.append(subprocess.run(
            pinned(SENDER_CPU, ["iperf3", "-c", "127.0.0.1", "-p", port, "-t", SECONDS, "-l", send, "-J"]),
            capture_output=True, text=True, timeout=SECONDS + 30)))
    return {"bytes": json.loads(res[0].stdout)["end"]["sum_received"]["bytes"], "cpu_ns": cpu, "wall_s": wall}


RUNNERS = {"loadgen": run_loadgen, "minrecv": run_minrecv, "neper": run_neper, "iperf3": run_iperf3}
NEPER: Path | None = None
LOADGEN = Path()        # resolved (and built) once, before anything is measured


def gbit_s(r: dict) -> float:
    """Received bytes over the nominal sending time (every sender sends for SECONDS)."""
    return r["bytes"] * 8 / SECONDS / 1e9


def ns_per_kib(r: dict) -> float:
    return r["cpu_ns"] / (r["bytes"] / 1024)


# targets: (reference, Gbit/s ratio at least, receiver CPU per KiB ratio at most)
TARGETS = (("minrecv", 1.00, 1.10), ("neper", 1.00, 1.00), ("iperf3", 1.00, 1.00))


def run_receivers() -> bool:
    """Part 1: print and save the receivers' figures at every send size; True if targets met."""
    tools = [t for t in TOOLS if t != "neper" or NEPER]
    out: dict = {"machine": machine(), "reps": REPS, "seconds": SECONDS, "recv_buf": BUF,
                 "receiver_cpu": "utime+stime of the receiving process from /proc/PID/stat, "
                                 "from just before the sender starts until the receiver exited",
                 "gbit_s": "bytes received x 8 / sending time (every sender sends for `seconds`)",
                 "sizes": {}}
    ok = True
    print(f"\nreceivers: receiver process on CPU {RECEIVER_CPU}, sender on CPU {SENDER_CPU}; receiver CPU "
          "= its utime+stime from /proc/PID/stat over the same window for every tool")
    for send in SIZES:
        runs: dict[str, list[dict]] = {t: [] for t in tools}
        for rep in range(REPS):                     # interleaved; the order turns each repetition
            for t in tools[rep % len(tools):] + tools[:rep % len(tools)]:
                runs[t].append(RUNNERS[t](send))
        print(f"\nsend {send} (minrecv: one {BUF} recv at a time; neper -B {send}; iperf3 -l {send})")
        print(f"  {'receiver':24s} {'Gbit/s':>24s} {'rx CPU ns/KiB':>26s} {'rx wake-ups/GB':>24s}")
        for t in tools:
            g = [gbit_s(r) for r in runs[t]]
            n = [ns_per_kib(r) for r in runs[t]]
            w = [r["nvcsw"] / (r["bytes"] / 1e9) if "nvcsw" in r else float("nan") for r in runs[t]]
            print(f"  {LABELS[t]:24s} {fmt(g):>24s} {fmt(n):>26s} {fmt(w):>24s}")
        if runs["loadgen"][0]["params"]:
            print(f"  zcrx-loadgen receiver parameters: {runs['loadgen'][0]['params']}")
        ratios = {}
        for ref, g_min, c_max in TARGETS:
            if ref not in runs:
                continue
            g = pair_ratios([gbit_s(r) for r in runs["loadgen"]], [gbit_s(r) for r in runs[ref]])
            c = pair_ratios([ns_per_kib(r) for r in runs["loadgen"]], [ns_per_kib(r) for r in runs[ref]])
            met = statistics.median(g) >= g_min and statistics.median(c) <= c_max
            ok &= met
            ratios[ref] = {"gbit_s": g, "cpu_per_kib": c, "target_gbit_s": g_min, "target_cpu_per_kib": c_max,
                           "met": met}
            print(f"  loadgen/{ref:8s} Gbit/s {fmt(g)} (>= {g_min:.2f}), rx CPU/KiB {fmt(c)} "
                  f"(<= {c_max:.2f}) {'met' if met else 'MISSED'}")
        out["sizes"][send] = {"runs": runs, "ratios": ratios}
    print("  (ratios: median [min..max] of the per-repetition ratios)")
    JSON_OUT.parent.mkdir(exist_ok=True)
    JSON_OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"  written: {JSON_OUT.relative_to(ROOT)}")
    return ok


def machine() -> dict:
    """What the figures were measured on."""
    model = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                  if l.startswith("model name")), "?")
    return {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "kernel": os.uname().release,
            "cpus": os.cpu_count(), "cpu_model": model, "backend": "copy", "emulated": False,
            "loopback": True, "load_average_start": os.getloadavg()[0]}


def run_scaling(topology: str) -> tuple[float, float]:
    """Gbit/s and CPU cores the receiving threads got (user + sys over the run)."""
    rings = ["--rings", "2"] if topology == "shared-ifq" else []
    cpus = "0,1" if topology == "shared-ifq" else "0"
    s = loadgen.run(["--topology", topology, *rings, "--connections", "2", "--work", "checksum",
                     "--work-ns-per-kib", "2000", "--rate", "10", "--send-size", "256K",
                     "--duration", str(SECONDS + 1), "--rx-cpus", cpus], timeout=SECONDS + 30).summary
    assert s.verify_errors == 0 and s.bytes_received == s.bytes_sent
    rx_cpu_ns = sum(t["utime_ns"] + t["stime_ns"] for t in s.threads if t["role"] == "rx")
    return s.gbit_s, rx_cpu_ns / 1e9 / s.duration_s


SWEEP_CONNECTIONS = (1, 100, 1000, 10000)
SWEEP_SEND = "64K"


def sweep_sender(port: int, conns: int) -> loadgen.Summary:
    """The one sender both receivers of the sweep get: --connect, CPU 1."""
    res = loadgen.run(["--connect", f"127.0.0.1:{port}", "--connections", str(conns), "--send-size",
                       SWEEP_SEND, "--duration", str(SECONDS), "--tx-cpus", "1"], timeout=SECONDS + 120)
    assert res.returncode == 0, res.stderr
    return res.summary


def sweep_loadgen(conns: int) -> tuple[float, float]:
    """zcrx-loadgen as a receiver process: Gbit/s and rx ns/KiB."""
    rx_args = ["--listen", "127.0.0.1:0", "--topology", "single", "--connections", str(conns), "--work",
               "none", "--no-verify", "--buf-size", BUF, "--rx-cpus", "0"]
    with loadgen.LoadgenProcess(rx_args) as receiver:
        sent = sweep_sender(receiver.listening_port(timeout=30), conns)
        s = receiver.wait(timeout=SECONDS + 120).summary
    assert s.status == "ok" and s.bytes_received == sent.bytes_sent > 0
    rx = next(t for t in s.threads if t["thread"] == "rx0")
    return s.gbit_s, rx_ns_per_kib(rx["utime_ns"] + rx["stime_ns"], rx["bytes"])


def sweep_minrecv(conns: int) -> tuple[float, float]:
    """bench/minrecv.c with CONNECTIONS: Gbit/s and process ns/KiB."""
    with subprocess.Popen(["taskset", "-c", "0", str(MINRECV), str(size_bytes(BUF)), str(conns)],
                          stdout=subprocess.PIPE, text=True) as p:
        assert p.stdout is not None
        port = int(p.stdout.readline().split()[1])
        sent = sweep_sender(port, conns)
        out = json.loads(p.stdout.readline())
        p.wait(timeout=60)
    assert out["bytes"] == sent.bytes_sent > 0
    return out["bytes"] * 8 / out["seconds"] / 1e9, rx_ns_per_kib(out["cpu_ns"], out["bytes"])


def run_sweep() -> None:
    """Part 3: print the connections sweep."""
    print(f"\nconnections sweep: send {SWEEP_SEND}, receive buffers {BUF}, receiver CPU 0, sender "
          f"CPU 1 (zcrx-loadgen --connect), receiver as its own process")
    print(f"  {'connections':>11s} {'receiver':28s} {'Gbit/s':>24s} {'rx ns/KiB':>26s}")
    for conns in SWEEP_CONNECTIONS:
        res: dict[str, tuple[list[float], list[float]]] = {"loadgen": ([], []), "minrecv": ([], [])}
        for _ in range(REPS):                      # interleaved, as in part 1
            for name, fn in (("loadgen", sweep_loadgen), ("minrecv", sweep_minrecv)):
                g, n = fn(conns)
                res[name][0].append(g)
                res[name][1].append(n)
        labels = {"loadgen": "zcrx-loadgen (single ring)", "minrecv": "minrecv (mshot per socket)"}
        for name, (g, n) in res.items():
            print(f"  {conns:>11,d} {labels[name]:28s} {fmt(g):>24s} {fmt(n):>26s}")
        gbit = pair_ratios(res["loadgen"][0], res["minrecv"][0])
        cpu = pair_ratios(res["loadgen"][1], res["minrecv"][1])
        print(f"  {'':>11s} {'ratio loadgen/minrecv':28s} {fmt(gbit):>24s} {fmt(cpu):>26s}")


def pair_ratios(a: list[float], b: list[float]) -> list[float]:
    """a[i] / b[i] for each repetition i."""
    return [x / y for x, y in zip(a, b)]


def fmt(values: list[float]) -> str:
    if any(v != v for v in values):
        return "—"
    return f"{statistics.median(values):8.2f} [{min(values):.2f}..{max(values):.2f}]"


def run_scaling_part() -> bool:
    """Part 2: single vs shared-ifq at 2000 ns/KiB; True if the scaling target is met."""
    single: tuple[list[float], list[float]] = ([], [])
    shared: tuple[list[float], list[float]] = ([], [])
    for _ in range(REPS):
        for out, topology in ((single, "single"), (shared, "shared-ifq")):
            g, cores = run_scaling(topology)
            out[0].append(g)
            out[1].append(cores)
    scale = statistics.median(shared[0]) / statistics.median(single[0])
    print("\nwork 2000 ns/KiB + checksum + verify, sender paced at 10 Gbit/s, 2 connections, 256 KiB sends")
    print(f"  {'receiver':40s} {'Gbit/s':>24s} {'rx CPU cores used':>26s}")
    print(f"  {'single (1 ring, CPU 0)':40s} {fmt(single[0]):>24s} {fmt(single[1]):>26s}")
    print(f"  {'shared-ifq (2 rings, CPUs 0,1; EMULATED)':40s} {fmt(shared[0]):>24s} {fmt(shared[1]):>26s}")
    print(f"  scaling shared-ifq/single {scale:.2f}x (target >= 1.6 on 2 cores; needs the receiving "
          f"threads to get ~1 core each: see 'rx CPU cores used')")
    return scale >= 1.6


PARTS = ("receivers", "scaling", "connections")


def main() -> int:
    """Run the parts named on the command line (default: all) and print the figures."""
    global NEPER, LOADGEN
    parts = sys.argv[1:] or list(PARTS)
    if any(p not in PARTS for p in parts):
        print(f"usage: python bench/loadgen.py [{'|'.join(PARTS)}]...", file=sys.stderr)
        return 2
    LOADGEN = loadgen.binary()
    build_minrecv()
    if "receivers" in parts:
        NEPER = build_neper()
    kernel = os.uname().release
    print(f"zcrx-loadgen benchmark: backend copy, loopback, host kernel {kernel} (not emulated), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start (shared machine), "
          f"{REPS} runs x {SECONDS:g} s, median [min..max]")
    ok = True
    if "receivers" in parts:
        ok &= run_receivers()
    if "scaling" in parts:
        ok &= run_scaling_part()
    if "connections" in parts:
        run_sweep()
    print(f"\nload average {os.getloadavg()[0]:.1f} at end; targets {'met' if ok else 'NOT all met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
