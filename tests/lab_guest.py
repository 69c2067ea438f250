"""One kernel lab guest boot shared by the lab tests that only need commands run in a guest.

A TCG boot costs 15-40 s here, so test_lab.py, test_probes_lab.py and test_zcrx.py do not boot
one each: the session fixture ``lab_guest`` (conftest.py) boots once and runs one script of
parts, each writing into its own directory, a part's failure leaving the others to run:

- ``basics`` (test_lab.py): ``uname -r`` on stdout, a line on stderr, the kernel release into a
  file of the project directory (writable in the guest); the script then exits 7, so the guest
  command's own status and output come back through ``lab.run``;
- ``probes`` (test_probes_lab.py): the four probe tools compiled by BCC against the lab kernel's
  headers and attached through the API while the load generator (zcrx-nodev) runs with their
  targets set before it starts (PROBES below);
- ``zcrx`` (test_zcrx.py): every topology on zcrx-nodev over loopback (ZCRX_TOPOLOGIES);
- ``wire`` (test_lab_wire.py): the boot has ``lab.run(wire=True)``'s virtio-net NIC; a zcrx-nodev
  receiver listens on it in the guest and this process's sender connects from the wire's network
  namespace on the host (WIRE_PORT; ``wire/tx.json``).

The commands that boot a guest of their own cannot share it: `lab run` and `record` of the same
kernel laid out as a user's build tree (test_user_kernel_lab.py; the recording is also
test_collect_lab.py's) run after it, one at a time, in the same background process, while the host
tests run, and so does the fault suite's SIGKILL of QEMU in the middle of `record --kernel VERSION`
(faults/test_fault_lab.py), with a stand-in for vng and QEMU (STAND_IN_VNG: no boot); the signals
sent to `zcrxprof lab run` while QEMU starts stay in test_lab.py.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from leftovers import BACKGROUND_VAR, comm
from paced import PACED
from user_kernel import debian_kernel_as_build_tree
from zcrxprof import children, lab, netns
from zcrxprof.lab import wire

ROOT = Path(__file__).resolve().parents[1]
LOADGEN = ROOT / "loadgen" / "zcrx-loadgen"
EXIT_STATUS = 7                    # the script's own status, which must come back (not vng's 255)
TIMEOUT_S = 840.0                  # boot + every part under TCG, with room for a busy host
ZCRX_TOPOLOGIES = {"single": 1, "workers": 1, "ifq-per-ring": 2, "shared-ifq": 2, "shared-ifq-3": 3}
WIRE_PORT = 9419                   # the wire part's receiver (in the guest)
WIRE_CONNECTIONS = 2

# run by the venv's Python in the guest (cwd: the project), PACED defined above it; prints one JSON object
PROBES = r"""
import json, subprocess, sys
from zcrxprof.probes import TOOLS, tool_class
from zcrxprof.probes.ladder import btf_arity, kallsyms_matching
from zcrxprof.probes.tool import place
out = {"place": place(), "report": {}, "rows": {}, "hist": {}, "compile_s": {},
       "flush_rq": {"btf": btf_arity("zcrx_flush_rq") is not None, "symbols": kallsyms_matching("zcrx_flush_rq")}}
tools = {}
try:
    for name in TOOLS:
        tools[name] = tool_class(name)(pids=[])
        tools[name].attach()
        out["report"][name] = tools[name].report_dicts()
        out["compile_s"][name] = tools[name].compile_s
        out["headers"] = {"label": tools[name].headers.label, "matches": tools[name].headers.matches_kernel,
                          "path": str(tools[name].headers.path)}
    lg = subprocess.Popen(["sh", "-c", 'read _; exec "$0" "$@"', "loadgen/zcrx-loadgen", "--backend",
                           "zcrx-nodev", "--topology", "single", "--duration", "2", "--json", *PACED],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    for tool in tools.values():
        tool.set_targets([lg.pid])
    lg.stdin.write("go\n"); lg.stdin.flush()
    text, _ = lg.communicate(timeout=300)
    out["loadgen_status"] = lg.returncode
    out["loadgen"] = [json.loads(l) for l in text.splitlines() if l.startswith("{") and '"interval"' not in l]
    for name, tool in tools.items():
        tool.set_targets([])    # stop counting: the reads below agree with each other
        out["rows"][name] = tool.snapshot(0.0)
        out["hist"][name] = tool.histograms()
    out["registrations"] = tools["uringwork"].registrations()
finally:
    for tool in tools.values():
        tool.detach()
print(json.dumps(out))
"""


@dataclass
class SharedBoot:
    """The shared boot's result and the directory holding each part's files."""

    result: lab.LabResult
    out: Path

    def part(self, name: str) -> Path:
        """The directory of one part (basics, probes, zcrx, wire)."""
        return self.out / name


def _script(k: lab.LabKernel, out: Path) -> str:
    q = lambda p: shlex.quote(str(p))
    lines = [f"mkdir -p {q(out / 'basics')} {q(out / 'probes')} {q(out / 'zcrx')} {q(out / 'wire')}",
             # basics: stdout and stderr of the guest command itself
             f"uname -r; cat /proc/sys/kernel/osrelease > {q(out / 'basics' / 'osrelease')}; echo to-stderr >&2",
             # probes
             f"PYTHONPATH={q(ROOT)} {q(sys.executable)} {q(out / 'probes.py')} > {q(out / 'probes' / 'out')} 2> {q(out / 'probes' / 'err')}; "
             f"echo $? > {q(out / 'probes' / 'rc')}"]
    for name, rings in ZCRX_TOPOLOGIES.items():
        topo = name.removesuffix("-3")
        extra = f"--rings {rings}" if topo in ("ifq-per-ring", "shared-ifq") else ""
        d = out / "zcrx"
        lines.append(f"{q(LOADGEN)} --backend zcrx-nodev --topology {topo} {extra} --duration 1.5 --interval 0.5 {' '.join(PACED)} "
                     f"--json > {q(d / (name + '.json'))} 2> {q(d / (name + '.err'))}; echo $? > {q(d / (name + '.rc'))}")
    # wire: the receiver on the guest's virtio-net NIC; `ready` tells the host side to send
    w = out / "wire"
    lines += [f'echo "$ZCRXPROF_LAB_WIRE_IF" > {q(w / "ifname")}; ethtool -i "$ZCRXPROF_LAB_WIRE_IF" > {q(w / "ethtool-i")}; '
              f'cat /sys/class/net/"$ZCRXPROF_LAB_WIRE_IF"/statistics/rx_bytes > {q(w / "rx_bytes_before")}',
              f"timeout 120 {q(LOADGEN)} --backend zcrx-nodev --topology single --listen \"$ZCRXPROF_LAB_WIRE_ADDR:{WIRE_PORT}\" "
              f"--connections {WIRE_CONNECTIONS} --json > {q(w / 'rx.json')} 2> {q(w / 'rx.err')} & WIRE_RX=$!",
              f"i=0; until ss -Htln 'sport = :{WIRE_PORT}' | grep -q . || [ $i -ge 600 ]; do sleep 0.1; i=$((i+1)); done",
              f"touch {q(w / 'ready')}; wait $WIRE_RX; echo $? > {q(w / 'rx.rc')}",
              f'cat /sys/class/net/"$ZCRXPROF_LAB_WIRE_IF"/statistics/rx_bytes > {q(w / "rx_bytes_after")}']
    lines.append(f"exit {EXIT_STATUS}")
    return "\n".join(lines) + "\n"


USER_KERNEL_SCRIPT = ("uname -r; {loadgen} --kernel-features; modprobe veth && echo veth-loaded; "
                      "{loadgen} --backend zcrx --ifname eth0 --queue 0 --topology shared-ifq --share-uapi v4")
RECORD_ARGV = ["--topology", "single,shared-ifq", "--rings", "2", "--duration", "2", "--repeat", "1",
               "--probes", "zcrxstat", "--name", "lab", *PACED]    # the build tree's recording
FAULT_NAME = "fault-qemu-killed"                                   # faults/test_fault_lab.py's recording
FAULT_ARGV = ["--backend", "copy", "--sender", "local", "--no-perf", "--probes", "none", "--topology", "single",
              "--repeat", "4", "--duration", "1", *PACED, "--name", FAULT_NAME]   # runs on the host (below)
# vng's stand-in for the QEMU-kill scenario: its "QEMU" (unshare under QEMU's name) runs the guest
# script on the host in a PID namespace of its own, so SIGKILL of it ends every process of the
# "guest" at once, as the death of a real QEMU does (the same path in `record`, without a boot)
STAND_IN_VNG = """#!/bin/sh
while [ $# -gt 1 ]; do [ "$1" = --exec ] && script=$2; shift; done
exec "$(dirname "$0")/qemu/qemu-system-x86_64" --pid --fork --kill-child --mount-proc sh -c "$script"
"""


def _wire_sender(d: Path) -> None:
    """The host side of the wire part: once the guest's receiver listens, send to it from the
    wire's network namespace (``tx.json``, ``tx.rc``)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not (d / "ready").exists():
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)
    argv = [*wire.exec_prefix(wire.netns_name()), str(LOADGEN), "--connect", f"{wire.GUEST_ADDR}:{WIRE_PORT}",
            "--connections", str(WIRE_CONNECTIONS), "--duration", "1.5", *PACED, "--json"]
    with open(d / "tx.json", "w") as out, open(d / "tx.err", "w") as err:
        rc = subprocess.run(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=120).returncode
    (d / "tx.rc").write_text(str(rc))


def _run_background(version: str, out: Path) -> None:
    """The session's lab work, one guest at a time: boot ``version`` once and run every part
    (``out/result.json``: the LabResult), then the same kernel as a user's build tree: ``lab run``
    and ``record`` (``out/user-kernel.json``; the dataset in ``out/user-kernel/lab``), then
    ``record --kernel VERSION`` with its QEMU killed (``out/fault-lab.json``)."""
    k = lab.prepared(version)
    (out / "probes.py").write_text(f"PACED = {PACED!r}\n" + PROBES)
    (out / "guest.sh").write_text(_script(k, out))
    sender = threading.Thread(target=_wire_sender, args=(out / "wire",), daemon=True)
    sender.start()
    res = lab.run(["sh", str(out / "guest.sh")], kernel=k.version, cwd=ROOT, timeout=TIMEOUT_S, wire=True)
    (out / "wire" / "netns_after").write_text(json.dumps(sorted(p.name for p in netns.NETNS_DIR.glob("*"))))
    (out / "result.json").write_text(json.dumps(lab.result_dict(res)))
    # the prepared kernel presented as a user's build tree: `lab run`, then `record` (RECORD_ARGV)
    tree = debian_kernel_as_build_tree(k, out / "user-kernel" / "linux")
    run = subprocess.run([sys.executable, "-m", "zcrxprof", "lab", "run", "--kernel", str(tree), "--", "sh", "-c",
                          USER_KERNEL_SCRIPT.format(loadgen=LOADGEN)], capture_output=True, text=True,
                         timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    rec = subprocess.run([sys.executable, "-m", "zcrxprof", "record", "--kernel", str(tree), *RECORD_ARGV,
                          "--out", str(out / "user-kernel")], capture_output=True, text=True, timeout=TIMEOUT_S,
                         stdin=subprocess.DEVNULL)
    (out / "user-kernel.json").write_text(json.dumps({
        "tree": str(tree), "run": {"returncode": run.returncode, "stdout": run.stdout, "stderr": run.stderr[-3000:]},
        "record": {"returncode": rec.returncode, "stderr": rec.stderr[-3000:]}}))
    (out / "fault-lab.json").write_text(json.dumps(_qemu_killed_mid_recording(version, out / "fault-lab")))


def _qemu_killed_mid_recording(version: str, out: Path) -> dict:
    """faults/test_fault_lab.py's scenario: `record --kernel` whose QEMU (STAND_IN_VNG's) is
    SIGKILLed once the guest finished its first run. What the test asserts on: the status and
    stderr of `record`, the QEMU processes found, which of the recording's processes outlived it,
    whether the spool was left."""
    from zcrxprof.collect import guest
    spool = guest.SPOOL_ROOT / FAULT_NAME
    bindir = out / "bin"
    (bindir / "qemu").mkdir(parents=True)
    (bindir / "vng").write_text(STAND_IN_VNG)
    (bindir / "mountpoint").write_text("#!/bin/sh\nexit 0\n")     # the guest script asks about its shares
    for f in ("vng", "mountpoint"):
        (bindir / f).chmod(0o755)
    shutil.copy(shutil.which("unshare") or "/usr/bin/unshare", bindir / "qemu" / "qemu-system-x86_64")
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
    p = children.start([sys.executable, "-m", "zcrxprof", "record", "--kernel", version, "--out", str(out),
                        *FAULT_ARGV], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env)
    found: dict = {"dataset": str(out / FAULT_NAME), "error": None}
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while not list(spool.glob("run-*.json")):        # the guest finished its first run
            if p.poll() is not None or time.monotonic() > deadline:
                found["error"] = "the guest finished no run before record ended or the deadline"
                break
            time.sleep(0.2)
        seen = children.descendants(p.pid)
        qemu = [k for k in seen if comm(k).startswith("qemu")]
        found["qemu"] = len(qemu)
        if not found["error"]:
            for k in qemu:
                os.kill(k, signal.SIGKILL)
        _, err = p.communicate(timeout=300)
        found.update(returncode=p.returncode, stderr=err[-3000:], spool_left=spool.exists(),
                     outlived=[comm(k) for k in seen if children.alive(k)])
    finally:
        if p.poll() is None:
            children.stop(p, grace_s=10, sig=signal.SIGTERM)
    return found


class BackgroundBoot:
    """The session's lab work (``_run_background``), started at the beginning of the session in a
    process of its own so that it runs while the host tests do (its processes carry
    leftovers.BACKGROUND_VAR: the per-test leftover check leaves them to the session's); the lab
    tests wait for their part of it."""

    def __init__(self, k: lab.LabKernel) -> None:
        self.kernel = k.version
        self.out = Path(lab.RUNS_DIR) / f"test-shared-{time.time_ns()}"
        self.out.mkdir(parents=True)
        self.log = self.out / "background.log"
        with open(self.log, "wb") as log:
            self.proc = children.start([sys.executable, __file__, k.version, str(self.out)], die_with_parent=True,
                                       env={**os.environ, BACKGROUND_VAR: "1"}, stdout=log,
                                       stderr=subprocess.STDOUT)
        self._boot: SharedBoot | None = None

    def _wait_for(self, name: str) -> Path:
        """``out/name`` once the background process wrote it (AssertionError with its log if it never does)."""
        deadline = time.monotonic() + 2 * TIMEOUT_S
        path = self.out / name
        while not path.is_file() and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert path.is_file(), f"the session's lab work wrote no {name}: {self.log.read_text()[-2000:]}"
        return path

    def wait(self) -> SharedBoot:
        """The shared boot's result."""
        if self._boot is None:
            res = lab.LabResult(**json.loads(self._wait_for("result.json").read_text()))
            print(f"\nshared lab guest {res.kernel} ({res.accelerator}): boot {res.boot_s:.0f} s, "
                  f"command {res.command_s:.0f} s, status {res.returncode}")
            self._boot = SharedBoot(res, self.out)
        return self._boot

    def wait_user_kernel(self) -> dict:
        """The build-tree part: ``tree``, ``run`` and ``record`` (status, output), ``dataset`` (path)."""
        found = json.loads(self._wait_for("user-kernel.json").read_text())
        return {**found, "dataset": self.out / "user-kernel" / "lab"}

    def wait_fault(self) -> dict:
        """The QEMU-killed recording (``_qemu_killed_mid_recording``'s findings)."""
        return json.loads(self._wait_for("fault-lab.json").read_text())

    def stop(self) -> None:
        """Stop the lab work if it still runs (a session that never waited for it); remove its files."""
        if self.proc.poll() is None:
            children.stop(self.proc, grace_s=10, sig=signal.SIGTERM)
        shutil.rmtree(self.out, ignore_errors=True)


def records(text: str) -> list[dict]:
    """The JSON records of a load generator's output."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


if __name__ == "__main__":          # the background process of BackgroundBoot
    _run_background(sys.argv[1], Path(sys.argv[2]))
