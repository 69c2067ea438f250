"""Booting the lab guest: run one command as root in a prepared lab kernel under virtme-ng/QEMU.

vng shares the host's root filesystem read-only and the project directory read-write. ``vng`` does
not bring the guest's output or exit status back (it exits 255), so :func:`run` wraps the command
in a script that writes status, stdout and stderr into a run directory under ``.build/lab/``, which
the host reads afterwards. vng, virtme-run and QEMU run in one process group led by a guard process
(``zcrxprof.children.guard_main``); the group is killed on every exit path of :func:`run`, and by the
guard when the process that called :func:`run` dies, even by SIGKILL. KVM is tried first, TCG used when KVM
cannot boot the guest (:mod:`zcrxprof.lab.accelerator` remembers which works here).
"""
from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from zcrxprof import children, paths, vocab
from zcrxprof.children import group_members
from zcrxprof.errors import UsageError, ZcrxprofError
from zcrxprof.lab import accelerator, catalogue, userkernel, wire as wire_mod
from zcrxprof.lab.catalogue import LabKernel
from zcrxprof.lab.userkernel import UserKernel

DEFAULT_TIMEOUT_S = 600.0
MAX_GUEST_CPUS = 256          # QEMU's q35 machine with TCG: more is a typo
# guest CPUs when the caller names none: under TCG one, because a second emulated CPU spins in the
# guest's locks whenever the host deschedules the other one's thread (docs/lab.md: beside a CPU hog
# on 2 cores, a boot and a BCC compile cost 47-86 CPU-s with two, 24 with one, and took longer)
DEFAULT_CPUS = {"kvm": 2, "tcg": 1}
KVM_FAILED = b"KVM internal error"  # QEMU's message when KVM cannot run the guest (it then hangs)
KVM_BOOT_DEADLINE_S = 30.0   # a trial KVM boot that has not started the command by then failed


@dataclass
class LabResult:
    """The outcome of one guest command."""

    returncode: int
    stdout: str
    stderr: str
    accelerator: str             # "kvm" | "tcg"
    kernel: str                  # guest kernel version
    boot_s: float                # vng start → command start (host clock)
    command_s: float             # command start → command end (host clock)
    timed_out: bool = False
    pgid: int = 0                # process group of vng and QEMU (all killed before returning)
    wire_netns: str = ""         # --wire: the host end's network namespace (removed before returning)
    cpus: int = 0                # the guest's CPUs

    @property
    def emulated_timing(self) -> bool:
        """True when the guest ran under TCG (timings are emulated)."""
        return vocab.is_emulated_timing(self.accelerator)


SHARE_HIDDEN_EXIT = 97   # the guest script's status when a writable share is hidden (see _guest_script)
BOOT_ATTEMPTS = 3        # boots before "the command never started" is final


class _NotStarted(ZcrxprofError):
    """The guest ended before the command started (boot failure, or a share hidden by a race)."""


def _guest_script(run_dir: Path, cmd: list[str], cwd: Path, env: dict[str, str], shares: list[Path],
                  wire: bool = False) -> str:
    # The guest's init mounts the writable shares (9p, in --rwdir order) and tmpfs overlays on /tmp,
    # /home, /var, … concurrently: an overlay mounted last hides a share below it (a project cloned
    # under /tmp) and the guest's writes would vanish. Then leave before "started": run() boots again.
    lines = ["#!/bin/sh"]
    for d in shares:
        q = shlex.quote(str(d))
        lines.append(f"mountpoint -q {q} || exit {SHARE_HIDDEN_EXIT}")  # 9p's statfs shows the host fs type
    lines += [f"R={shlex.quote(str(run_dir))}", "date +%s.%N > \"$R/started\""]
    for key, val in env.items():
        lines.append(f"export {key}={shlex.quote(val)}")
    if wire:
        lines += wire_mod.guest_lines(str(run_dir))
    lines += [f"cd {shlex.quote(str(cwd))} || {{ echo 127 > \"$R/status.tmp\"; mv \"$R/status.tmp\" \"$R/status\"; exit; }}",
              f"{shlex.join(cmd)} > \"$R/stdout\" 2> \"$R/stderr\" < /dev/null",
              "echo $? > \"$R/status.tmp\"",
              "sync",
              "mv \"$R/status.tmp\" \"$R/status\"",
              "sync", ""]
    return "\n".join(lines)


def kernel_for(kernel: str | None) -> LabKernel | UserKernel:
    """The kernel ``--kernel`` names: a user's build tree or image (a path), else a prepared lab
    kernel (a version; None: the default). One line naming the fix when it cannot boot."""
    if userkernel.is_path(kernel):
        return userkernel.load(kernel)
    return catalogue.prepared(kernel)


def _vng() -> str:
    return shutil.which("vng") or str(Path(sys.executable).parent / "vng")


def _vng_argv(k: LabKernel | UserKernel, accel: str, cpus: int, memory: str, rwdirs: list[Path],
              script: Path, wire_netns: str = "") -> list[str]:
    vng = _vng()
    argv = wire_mod.exec_prefix(wire_netns) if wire_netns else []   # QEMU opens the tap in its namespace
    argv += [vng, "--run", k.boot_target, "--cpus", str(cpus), "--memory", memory,
            "--user", "root", "--cwd", str(paths.lab_share_dir())]
    if accel == "tcg":
        argv.append("--disable-kvm")
    for d in rwdirs:
        argv += ["--rwdir", str(d)]
    if wire_netns:
        argv += wire_mod.vng_args()
    argv += ["--exec", f"sh {shlex.quote(str(script))}"]
    return argv


TERM_SIGNALS = (signal.SIGTERM, signal.SIGHUP)   # raise in lab.run: the guest is killed on the way out


def _wait_for_guest(proc, run_dir: Path, t0: float, timeout: float, boot_deadline: float | None,
                    started_at: list[float], log: list[bytes]) -> bool:
    """Wait until the guard exits, a trial boot gives up (``boot_deadline``, QEMU's KVM error) or
    ``timeout`` passes (then True); notes when the guest started the command in ``started_at``."""
    while proc.poll() is None:
        if not started_at and (run_dir / "started").exists():
            started_at.append(time.monotonic())
        if time.monotonic() - t0 > timeout:
            return True
        if boot_deadline is not None and not started_at and (
                time.monotonic() - t0 > boot_deadline or any(KVM_FAILED in line for line in log[-20:])):
            return False
        time.sleep(0.02)
    return False


def _remove_stale_runs(runs_dir: Path) -> None:
    """Remove the scratch directories of lab runs whose process died without cleaning up (SIGKILL);
    each is named ``run-<pid>-…`` after the process that made it and claimed by it
    (``children.abandoned``)."""
    for d in runs_dir.glob("run-*-*"):
        owner = d.name.split("-")[1]
        if owner.isdigit() and children.abandoned(d, int(owner)):
            shutil.rmtree(d, ignore_errors=True)


def _boot_once(k: LabKernel | UserKernel, accel: str, cmd: list[str], cpus: int, memory: str,
               timeout: float, rwdirs: list[Path], cwd: Path, env: dict[str, str],
               boot_deadline: float | None = None, wire_netns: str = "") -> LabResult | None:
    """One boot; None when a trial boot never started the command (the accelerator failed)."""
    runs_dir = catalogue.RUNS_DIR
    runs_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_runs(runs_dir)
    run_dir = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=runs_dir))
    children.claim(run_dir)
    try:
        script = run_dir / "cmd.sh"
        share = paths.lab_share_dir()
        dirs = [share] + [d for d in rwdirs if d != share]
        script.write_text(_guest_script(run_dir, cmd, cwd, env, dirs, wire=bool(wire_netns)))
        argv = _vng_argv(k, accel, cpus, memory, dirs, script, wire_netns)
        started_at: list[float] = []
        t0 = time.monotonic()
        host_env = dict(os.environ)
        host_env["PATH"] = f"{Path(_vng()).parent}:{host_env.get('PATH', '/usr/bin:/bin')}"  # vng calls virtme-run
        log: list[bytes] = []
        proc = reader = None
        try:
            # the handlers first: a signal from the moment the guest starts stops it the same way
            with children.raising_signals(TERM_SIGNALS):
                with children.signals_deferred(TERM_SIGNALS):
                    proc = children.start(argv, guard=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, cwd=share, env=host_env)
                reader = threading.Thread(target=lambda: log.extend(iter(proc.stdout.readline, b"")), daemon=True)
                reader.start()
                timed_out = _wait_for_guest(proc, run_dir, t0, timeout, boot_deadline, started_at, log)
        except children.Stopped as stop:
            raise ZcrxprofError(f"lab run: terminated by {signal.Signals(stop.signum).name}; "
                                "the guest was killed") from None
        finally:
            if proc is not None:
                children.kill_group(proc)
            if reader is not None:
                reader.join(timeout=5)
        t_end = time.monotonic()
        if not started_at and (run_dir / "started").exists():
            started_at.append(t_end)
        status_file = run_dir / "status"
        if not started_at:
            if boot_deadline is not None:
                return None
            if timed_out:
                raise ZcrxprofError(f"lab guest ({accel}) did not start the command within {timeout:.0f} s")
            tail = (b"".join(log).decode(errors="replace").strip().splitlines() or ["(no output)"])[-1]
            raise _NotStarted(f"lab guest failed to boot {k.version} under {accel.upper()}: {tail[:200]}")
        read = lambda name: (run_dir / name).read_text(errors="replace") if (run_dir / name).exists() else ""
        if timed_out:
            rc = 124
        elif status_file.exists():
            rc = int(status_file.read_text().strip() or 1)
        else:
            rc = 125   # the guest died (or vng gave up) while the command ran
        return LabResult(rc, read("stdout"), read("wire.err") + read("stderr"), accel, k.version,
                         boot_s=started_at[0] - t0, command_s=t_end - started_at[0], timed_out=timed_out,
                         pgid=proc.pid, wire_netns=wire_netns, cpus=cpus)
    finally:
        children.release(run_dir)
        shutil.rmtree(run_dir, ignore_errors=True)


def run(cmd: list[str], kernel: str | None = None, cpus: int | None = None, memory: str = "4G",
        timeout: float = DEFAULT_TIMEOUT_S, rwdirs: list[str | Path] | None = None,
        cwd: str | Path | None = None, env: dict[str, str] | None = None, wire: bool = False) -> LabResult:
    """Boot the lab kernel, run ``cmd`` as root in the guest and return its status and output.

    ``kernel`` is a prepared kernel's version (default: the pinned or newest one) or the path of a
    user's kernel build tree or image (:mod:`zcrxprof.lab.userkernel`).

    The project directory (and ``rwdirs``) are writable in the guest, the rest of the host's root
    filesystem is shared read-only. KVM is tried first and TCG used when KVM fails (one notice on
    stderr); the working accelerator is remembered. ``cpus``: the guest's CPUs (default
    ``DEFAULT_CPUS`` of the accelerator: 2 with KVM, 1 under TCG). After ``timeout`` seconds the
    guest is killed and the result has ``timed_out`` set and returncode 124.

    ``wire``: the guest gets a virtio-net NIC wired to a tap in the network namespace
    ``wire.netns_name()`` (made here, removed before returning), guest ``wire.GUEST_ADDR``, host
    end ``wire.HOST_ADDR``; run the host side of the traffic in that namespace (:mod:`.wire`).
    """
    if not cmd:
        raise UsageError("lab run: no command given")
    if cpus is not None and not 1 <= cpus <= MAX_GUEST_CPUS:
        raise UsageError(f"lab run: --cpus must be 1..{MAX_GUEST_CPUS} (got {cpus})")
    if not re.fullmatch(r"\d+[MG]?", memory):
        raise UsageError(f"lab run: --memory must look like 4G or 2048M (got {memory!r})")
    if not math.isfinite(timeout) or timeout <= 0:
        raise UsageError(f"lab run: timeout must be a finite number > 0 (got {timeout})")
    k = kernel_for(kernel)       # refuses a damaged kernel, tree or image before booting
    dirs = [Path(d).resolve() for d in (rwdirs or [])]
    for d in dirs:
        if not d.is_dir():
            raise UsageError(f"lab run: rwdir {d} is not a directory")
    where = Path(cwd).resolve() if cwd else Path.cwd()
    guest_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root",
                 "LANG": "C.UTF-8", vocab.LAB_ENV: k.version, "ZCRXPROF_CACHE": str(paths.cache_dir())}
    guest_env.update(env or {})
    netns = wire_mod.create() if wire else ""
    if netns:       # after every check: a refused run stays one line
        print(f"zcrxprof lab: wire: the guest is {wire_mod.GUEST_ADDR} on a virtio-net NIC, the host end "
              f"{wire_mod.HOST_ADDR} in network namespace {netns}: ip netns exec {netns} CMD",
              file=sys.stderr, flush=True)
    try:
        return _boot(k, cmd, cpus, memory, timeout, dirs, where, guest_env, netns)
    finally:
        if netns:
            wire_mod.remove(netns)


def _boot(k: LabKernel | UserKernel, cmd: list[str], cpus: int | None, memory: str, timeout: float, dirs: list[Path],
          where: Path, guest_env: dict[str, str], netns: str) -> LabResult:
    """KVM when it may work, else (or when it cannot boot the guest) TCG, booting again when the
    guest ended before the command started."""
    accel = accelerator.known_accelerator() or ("kvm?" if accelerator.kvm_usable() else "tcg")
    if accel != "tcg":
        # every KVM boot has the trial deadline, also where KVM worked before: this kernel (or a
        # changed host) may still fail under it, and then TCG runs the command
        res = _boot_once(k, "kvm", cmd, cpus or DEFAULT_CPUS["kvm"], memory, timeout, dirs, where, guest_env,
                         KVM_BOOT_DEADLINE_S, netns)
        if res is not None:
            accelerator.record_accelerator("kvm")
            return res
        print("zcrxprof lab: KVM cannot boot the guest here; falling back to TCG (emulated, slower)",
              file=sys.stderr)
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        try:
            res = _boot_once(k, "tcg", cmd, cpus or DEFAULT_CPUS["tcg"], memory, timeout, dirs, where, guest_env,
                             wire_netns=netns)
            break
        except _NotStarted as exc:
            if attempt == BOOT_ATTEMPTS:
                raise
            print(f"zcrxprof lab: {exc}; booting again ({attempt + 1} of {BOOT_ATTEMPTS})", file=sys.stderr)
    assert res is not None
    accelerator.record_accelerator("tcg")
    return res


def result_dict(res: LabResult) -> dict:
    """A LabResult as plain data (for JSON)."""
    return asdict(res)
