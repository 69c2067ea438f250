"""The kernel lab: a Debian kernel with zcrx NODEV and ifq sharing, booted under virtme-ng/QEMU.

The host kernel (6.18) has neither ``ZCRX_REG_NODEV`` (7.1) nor events/stats (7.2), and no kprobes.
The lab downloads a newer Debian kernel through a private apt configuration
(:mod:`zcrxprof.debarchive`), caches the .debs in ``$ZCRXPROF_CACHE``, unpacks them under ``.build/lab/kernels/<version>/``
(never into the host's /usr/lib/modules), decompresses the modules virtme-ng's initramfs must load, joins the
kernel's header packages into one tree for BCC, and boots it with ``vng`` sharing the host's root
filesystem read-only and the project directory read-write.

``vng`` does not bring the guest's output or exit status back (it exits 255), so :func:`run` wraps
the command in a script that writes status, stdout and stderr into a run directory under
``.build/lab/`` which the host reads afterwards. vng, virtme-run and QEMU run in one process group
led by a guard process (:func:`_guard_main`); the group is killed on every exit path of
:func:`run`, and by the guard when the process that called :func:`run` dies, even by SIGKILL.

Public API: :func:`prepare`, :func:`run`, :func:`status`, :func:`headers_dir`, :func:`kernels`,
:func:`prepared`.
"""
from __future__ import annotations

import json
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

from zcrxprof import debarchive
from zcrxprof.errors import UsageError, ZcrxprofError

PROJECT_DIR = Path(__file__).resolve().parent.parent
VERSIONS_ENV = PROJECT_DIR / "scripts" / "versions.env"
RUNS_DIR = PROJECT_DIR / ".build" / "lab"

# Modules virtme-ng's initramfs loads (it cannot read .ko.xz), plus what workloads need early.
INITRAMFS_MODULES = ("9p", "9pnet", "9pnet_virtio", "netfs", "virtio_mmio", "overlay", "veth")
KERNEL_NAME_RE = re.compile(r"^linux-binary-(\d+\.\d+\.\d+\+deb\d+-amd64)$")
DEFAULT_TIMEOUT_S = 600.0
MAX_GUEST_CPUS = 256          # QEMU's q35 machine with TCG: more is a typo
KVM_FAILED = b"KVM internal error"  # QEMU's message when KVM cannot run the guest (it then hangs)
KVM_BOOT_DEADLINE_S = 30.0   # a trial KVM boot that has not started the command by then failed

# Kernel version that introduced each zcrx feature (BRIEF §4).
FEATURES = (
    ("zcrx", (6, 15)),
    ("query", (6, 18)),
    ("export/import sharing + ctrl/flush", (6, 19)),
    ("large rx buffers", (7, 0)),
    ("NODEV", (7, 1)),
    ("events/stats", (7, 2)),
)


@dataclass
class LabKernel:
    """A prepared lab kernel: where its image, modules and BCC header tree are."""

    version: str                 # uname -r in the guest, e.g. 7.3.4+deb13-amd64
    root: Path                   # extracted tree (.build/lab/kernels/<version>)
    packages: dict[str, str] = field(default_factory=dict)   # package -> Debian version

    @property
    def vmlinuz(self) -> Path:
        """The kernel image vng boots."""
        return self.root / "usr" / "lib" / "modules" / self.version / "vmlinuz"

    @property
    def moddir(self) -> Path:
        """The modules directory (the guest sees it as /lib/modules/<version>)."""
        return self.root / "usr" / "lib" / "modules" / self.version

    @property
    def headers(self) -> Path:
        """The merged header tree for BCC (``BCC_KERNEL_SOURCE``)."""
        return self.root / "usr" / "src" / f"linux-bcc-{self.version}"

    def config(self) -> dict[str, str]:
        """The kernel's CONFIG_* options (y/m/values)."""
        out: dict[str, str] = {}
        cfg = self.moddir / "config"
        if cfg.exists():
            for line in cfg.read_text(errors="replace").splitlines():
                if line.startswith("CONFIG_") and "=" in line:
                    k, _, v = line.partition("=")
                    out[k] = v
        return out

    def features(self) -> list[str]:
        """zcrx features this kernel has, by version (and CONFIG_IO_URING_ZCRX)."""
        if self.config().get("CONFIG_IO_URING_ZCRX") != "y":
            return []
        have = version_tuple(self.version)
        return [name for name, since in FEATURES if have >= since]


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

    @property
    def emulated(self) -> bool:
        """True when the guest ran under TCG (timings are emulated)."""
        return self.accelerator == "tcg"


def version_tuple(version: str) -> tuple[int, int]:
    """``7.3.4+deb13-amd64`` → (7, 3)."""
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m:
        raise UsageError(f"not a kernel version: {version!r}")
    return int(m.group(1)), int(m.group(2))


def _versions_env() -> dict[str, str]:
    out: dict[str, str] = {}
    if VERSIONS_ENV.exists():
        for line in VERSIONS_ENV.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, _, v = line.partition("=")
                out[k.strip()] = v.strip().strip("'\"")
    return out


def lab_dir() -> Path:
    """Where prepared kernels live: ``.build/lab/kernels`` in the project.

    Not under ``$ZCRXPROF_CACHE`` (which keeps the downloaded .debs): virtme-ng's guest mounts a
    tmpfs over /var/cache, while the project directory is shared with the guest at the same path,
    so the modules and headers stay visible there.
    """
    return RUNS_DIR / "kernels"


BZIMAGE_MAGIC_AT = 0x202     # x86 boot protocol: the setup header's "HdrS" signature
BZIMAGE_MAGIC = b"HdrS"


def _image_problem(image: Path) -> str | None:
    """Why ``image`` cannot be booted (missing, unreadable, not an x86 kernel image), or None."""
    try:
        with open(image, "rb") as f:
            head = f.read(BZIMAGE_MAGIC_AT + len(BZIMAGE_MAGIC))
    except FileNotFoundError:
        return f"its kernel image {image} is missing"
    except OSError as exc:
        return f"its kernel image {image} cannot be read ({exc.strerror})"
    if head[BZIMAGE_MAGIC_AT:] != BZIMAGE_MAGIC:
        return f"{image} is not a kernel image (no \"HdrS\" header at offset 0x202)"
    return None


def _load_prepared(d: Path) -> LabKernel | str:
    """The prepared kernel in directory ``d`` (which has a ready.json), or one line saying what
    is damaged and how to fix it."""
    stamp = d / "ready.json"
    if not re.match(r"\d+\.\d+", d.name):
        return f"{d} is not named like a kernel version (e.g. 7.3.4+deb13-amd64); remove it"
    fix = f"re-run `zcrxprof lab prepare --kernel {d.name}`"
    try:
        meta = json.loads(stamp.read_text())
    except OSError as exc:
        return f"lab kernel {d.name}: {stamp} cannot be read ({exc.strerror}); {fix}"
    except UnicodeDecodeError:
        return f"lab kernel {d.name}: {stamp} is not UTF-8 text; {fix}"
    except (ValueError, RecursionError) as exc:
        return f"lab kernel {d.name}: {stamp} is not valid JSON ({str(exc)[:80]}); {fix}"
    if not isinstance(meta, dict):
        return f"lab kernel {d.name}: {stamp} holds a {type(meta).__name__}, not an object; {fix}"
    if meta.get("version") != d.name:
        said = "has no version" if "version" not in meta else f"names version {str(meta['version'])[:80]!r}"
        return f"lab kernel {d.name}: {stamp} {said}, not {d.name}; {fix}"
    packages = meta.get("packages", {})
    if not isinstance(packages, dict):
        return f"lab kernel {d.name}: {stamp} has packages that are not an object; {fix}"
    k = LabKernel(d.name, d, packages)
    problem = _image_problem(k.vmlinuz)
    if problem:
        return f"lab kernel {d.name}: {problem}; {fix}"
    return k


def _scan() -> tuple[list[LabKernel], dict[str, str]]:
    """Prepared kernels (newest first), and the damaged ones: version -> what is wrong (one line)."""
    found, damaged = [], {}
    if lab_dir().is_dir():
        for d in lab_dir().iterdir():
            if not d.name.startswith(".") and (d / "ready.json").is_file():   # .<version>.tmp: prepare's
                k = _load_prepared(d)
                if isinstance(k, LabKernel):
                    found.append(k)
                else:
                    damaged[d.name] = k
    return sorted(found, key=lambda k: debarchive._VersionKey(k.version), reverse=True), damaged


def kernels() -> list[LabKernel]:
    """Prepared kernels in the cache that can be booted, newest first (damaged ones are left out:
    :func:`status` lists them, :func:`prepared` says what is wrong with them)."""
    return _scan()[0]


def _find_prepared(kernel: str | None) -> LabKernel | None:
    for k in kernels():
        if kernel is None or k.version == kernel:
            return k
    return None


def prepared(kernel: str | None = None) -> LabKernel:
    """The prepared kernel ``kernel`` (default: LAB_KERNEL if pinned, else the newest), ready to
    boot; ZcrxprofError in one line when it is not prepared or damaged (which file, and the fix)."""
    want = kernel or _wanted_kernel()
    k = _find_prepared(want)
    if k is not None:
        return k
    damaged = _scan()[1]
    if want in damaged:
        raise ZcrxprofError(damaged[want])
    if want is None and damaged:
        raise ZcrxprofError(f"no usable lab kernel: {damaged[sorted(damaged)[-1]]}")
    if want is None:
        raise ZcrxprofError("lab kernel (default) is not prepared: run `zcrxprof lab prepare`")
    raise ZcrxprofError(f"lab kernel {want} is not prepared: run `zcrxprof lab prepare --kernel {want}` "
                        f"(`zcrxprof lab status` lists prepared kernels)")


def _wanted_kernel() -> str | None:
    """The pinned kernel (LAB_KERNEL in versions.env), if any."""
    return _versions_env().get("LAB_KERNEL") or None


def resolve_kernel(kernel: str | None = None) -> str:
    """The kernel version to use: ``kernel`` or LAB_KERNEL if pinned, else Debian's newest ≥ LAB_KERNEL_MIN."""
    pinned = kernel or _wanted_kernel()
    minimum = _versions_env().get("LAB_KERNEL_MIN", "7.1")
    debarchive.update()
    names = debarchive.search(r"^linux-binary-[0-9.]+\+deb[0-9]+-amd64$")
    avail = [m.group(1) for n in names if (m := KERNEL_NAME_RE.match(n))]
    if pinned:
        if pinned not in avail:
            raise ZcrxprofError(f"kernel {pinned} is not in Debian's archive now (have: {', '.join(avail) or 'none'})")
        return pinned
    ok = [v for v in avail if debarchive.version_ge(v.split("+")[0], minimum)]
    if not ok:
        raise ZcrxprofError(f"no Debian kernel >= {minimum} in the archive (have: {', '.join(avail) or 'none'})")
    return sorted(ok, key=debarchive._VersionKey, reverse=True)[0]


def _packages_for(version: str) -> list[str]:
    short = version.removesuffix("-amd64")
    return [f"linux-binary-{version}", f"linux-base-{version}", f"linux-modules-{version}",
            f"linux-headers-{version}", f"linux-headers-{short}-common", f"linux-kbuild-{short}"]


def _say(msg: str) -> None:
    print(f"zcrxprof lab: {msg}", file=sys.stderr)


def prepare(kernel: str | None = None, check_archive: bool = True) -> LabKernel:
    """Download, unpack and prepare a lab kernel (idempotent); returns it.

    Without ``kernel`` (and no LAB_KERNEL pin) the newest Debian kernel >= LAB_KERNEL_MIN is used;
    with ``check_archive=False`` an already prepared kernel is accepted without asking the archive.
    """
    want = kernel or _wanted_kernel()
    ready = _find_prepared(want)
    if ready is not None and (want or not check_archive):
        return ready
    version = resolve_kernel(want)
    ready = _find_prepared(version)
    if ready is not None:
        return ready
    for tool in ("depmod", "dpkg-deb", "xz"):
        if shutil.which(tool) is None:
            raise ZcrxprofError(f"lab prepare needs `{tool}` (run scripts/setup.sh)")
    root = lab_dir() / version
    tmp = lab_dir() / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    packages: dict[str, str] = {}
    total = 0
    try:
        for pkg in _packages_for(version):
            deb_version = debarchive.versions(pkg)
            if not deb_version:
                raise ZcrxprofError(f"{pkg} is not in Debian's archive now; pick another kernel with --kernel")
            deb = debarchive.download(pkg, deb_version[0])
            size = deb.stat().st_size
            total += size
            _say(f"{pkg} {deb_version[0]} ({size / 2**20:.1f} MiB, cached in {deb.parent})")
            debarchive.extract(deb, tmp)
            packages[pkg] = deb_version[0]
        k = LabKernel(version, tmp, packages)
        problem = _image_problem(k.vmlinuz)
        if problem:
            raise ZcrxprofError(f"after unpacking {version}: {problem}")
        _prepare_modules(k)
        _merge_headers(k)
        # written before the tree takes its name: a prepare stopped anywhere leaves no kernel
        # directory with a half-written ready.json (the .tmp tree is never taken for a kernel)
        (tmp / "ready.json").write_text(json.dumps({"version": version, "packages": packages,
                                                    "download_bytes": total}, indent=1))
    except BaseException:   # a failed or interrupted prepare leaves no half-unpacked tree behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    k = LabKernel(version, root, packages)
    _say(f"kernel {version} ready in {root} ({total / 2**20:.0f} MiB downloaded); features: "
         f"{', '.join(k.features()) or 'none'}")
    return k


def _prepare_modules(k: LabKernel) -> None:
    """Decompress the modules the initramfs needs (with their dependencies), then depmod."""
    base = k.root / "usr"
    _depmod(base, k.version)
    deps: dict[str, list[str]] = {}
    for line in (k.moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {Path(p).name.split(".ko")[0].replace("-", "_"): p for p in deps}
    todo = [by_name[n] for n in INITRAMFS_MODULES if n in by_name]
    seen: set[str] = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(deps.get(p, []))
    for p in sorted(seen):
        path = k.moddir / p
        if path.suffix == ".xz" and path.exists():
            subprocess.run(["xz", "-d", "-f", str(path)], check=True)
    _depmod(base, k.version)


def _depmod(base: Path, version: str) -> None:
    proc = subprocess.run(["depmod", "-a", "-b", str(base), version], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ZcrxprofError(f"depmod failed for {version}: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")


def _merge_headers(k: LabKernel) -> None:
    """Join linux-headers-<v>-common and -amd64 (and kbuild via their links) into one tree."""
    src = k.root / "usr" / "src"
    short = k.version.removesuffix("-amd64")
    common, flavour = src / f"linux-headers-{short}-common", src / f"linux-headers-{k.version}"
    merged = src / f"linux-bcc-{k.version}"
    for part in (common, flavour):
        if not part.is_dir():
            raise ZcrxprofError(f"{part.name} missing after unpacking the header packages")
        subprocess.run(["cp", "-a", f"{part}/.", str(merged)], check=True)
    (merged / "vmlinux").unlink(missing_ok=True)
    if not (merged / "include" / "linux" / "kconfig.h").exists():
        raise ZcrxprofError(f"merged header tree {merged} lacks include/linux/kconfig.h")


def headers_dir(version: str | None = None) -> Path:
    """The merged kernel header tree of a prepared lab kernel (for ``BCC_KERNEL_SOURCE``)."""
    return prepared(version).headers


# ---- accelerator ---------------------------------------------------------------------------

def _accel_file() -> Path:
    return debarchive.cache_dir() / "lab-accelerator.json"


def _host_key() -> str:
    qemu = shutil.which("qemu-system-x86_64") or ""
    return f"{os.uname().release} {qemu} {Path(qemu).stat().st_mtime if qemu else 0}"


def known_accelerator() -> str | None:
    """The accelerator that worked here last ("kvm"|"tcg"), if recorded for this host and QEMU."""
    try:
        meta = json.loads(_accel_file().read_text())
    except (OSError, ValueError):
        return None
    return meta.get("accelerator") if meta.get("host") == _host_key() else None


def _record_accelerator(accel: str) -> None:
    _accel_file().parent.mkdir(parents=True, exist_ok=True)
    _accel_file().write_text(json.dumps({"accelerator": accel, "host": _host_key()}))


def _kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


# ---- run -----------------------------------------------------------------------------------

SHARE_HIDDEN_EXIT = 97   # the guest script's status when a writable share is hidden (see _guest_script)
BOOT_ATTEMPTS = 3        # boots before "the command never started" is final


class _NotStarted(ZcrxprofError):
    """The guest ended before the command started (boot failure, or a share hidden by a race)."""


def _guest_script(run_dir: Path, cmd: list[str], cwd: Path, env: dict[str, str], shares: list[Path]) -> str:
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
    lines += [f"cd {shlex.quote(str(cwd))} || {{ echo 127 > \"$R/status.tmp\"; mv \"$R/status.tmp\" \"$R/status\"; exit; }}",
              f"{shlex.join(cmd)} > \"$R/stdout\" 2> \"$R/stderr\" < /dev/null",
              "echo $? > \"$R/status.tmp\"",
              "sync",
              "mv \"$R/status.tmp\" \"$R/status\"",
              "sync", ""]
    return "\n".join(lines)


def _vng_argv(k: LabKernel, accel: str, cpus: int, memory: str, rwdirs: list[Path],
              script: Path) -> list[str]:
    vng = shutil.which("vng") or str(Path(sys.executable).parent / "vng")
    argv = [vng, "--run", str(k.vmlinuz), "--cpus", str(cpus), "--memory", memory,
            "--user", "root", "--cwd", str(PROJECT_DIR)]
    if accel == "tcg":
        argv.append("--disable-kvm")
    for d in rwdirs:
        argv += ["--rwdir", str(d)]
    argv += ["--exec", f"sh {shlex.quote(str(script))}"]
    return argv


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            found.append(int(stat.parent.name))
    return found


TERM_SIGNALS = (signal.SIGTERM, signal.SIGHUP)   # raise in lab.run: the guest is killed on the way out
PR_SET_PDEATHSIG = 1


def _on_term_signals_raise() -> dict[int, object]:
    """In the main thread, make SIGTERM and SIGHUP raise (the guest is killed on the way out);
    returns the previous handlers (empty in other threads, where signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def terminated(signum, frame):
        raise ZcrxprofError(f"lab run: terminated by {signal.Signals(signum).name}; the guest was killed")
    return {sig: signal.signal(sig, terminated) for sig in TERM_SIGNALS}


def _set_pdeathsig(sig: int) -> None:
    """prctl(PR_SET_PDEATHSIG, sig): the kernel sends `sig` to this process when its parent dies."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")


def _guard_main(argv: list[str]) -> int:
    """The process :func:`_boot_once` starts: ``argv`` = [parent pid, vng, its arguments...].

    It leads a new session and process group, and runs vng in it; vng runs virtme-run, which forks
    QEMU, so all of them share this group. When the parent (the zcrxprof process in lab.run) dies,
    however it dies (SIGKILL too), the kernel sends this process SIGTERM (PR_SET_PDEATHSIG) and it
    kills the whole group, itself included, with SIGKILL; so do SIGTERM, SIGHUP and SIGINT sent to
    it. lab.run kills the group the same way on every exit path of its own.
    """
    parent = int(argv[0])

    def kill_group(signum, frame):
        os.killpg(0, signal.SIGKILL)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, kill_group)
    _set_pdeathsig(signal.SIGTERM)
    if os.getppid() != parent:       # the parent died before the death signal was armed
        kill_group(signal.SIGTERM, None)
    return subprocess.Popen(argv[1:]).wait()


def _guarded(argv: list[str]) -> list[str]:
    """``argv`` run under :func:`_guard_main`, for a parent that is this process."""
    entry = "import sys; from zcrxprof.lab import _guard_main; sys.exit(_guard_main(sys.argv[1:]))"
    return [sys.executable, "-c", entry, str(os.getpid()), *argv]


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the guard, vng and every process vng started (QEMU included): they share one group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    deadline = time.monotonic() + 10
    while group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _boot_once(k: LabKernel, accel: str, cmd: list[str], cpus: int, memory: str,
               timeout: float, rwdirs: list[Path], cwd: Path, env: dict[str, str],
               boot_deadline: float | None = None) -> LabResult | None:
    """One boot; None when a trial boot never started the command (the accelerator failed)."""
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=RUNS_DIR))
    try:
        script = run_dir / "cmd.sh"
        dirs = [PROJECT_DIR] + [d for d in rwdirs if d != PROJECT_DIR]
        script.write_text(_guest_script(run_dir, cmd, cwd, env, dirs))
        argv = _vng_argv(k, accel, cpus, memory, dirs, script)
        started_at: list[float] = []
        t0 = time.monotonic()
        host_env = dict(os.environ)
        host_env["PATH"] = f"{Path(argv[0]).parent}:{host_env.get('PATH', '/usr/bin:/bin')}"  # vng calls virtme-run
        proc = subprocess.Popen(_guarded(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=PROJECT_DIR, env=host_env)
        log: list[bytes] = []
        reader = threading.Thread(target=lambda: log.extend(iter(proc.stdout.readline, b"")), daemon=True)
        reader.start()
        timed_out = False
        old_handlers = _on_term_signals_raise()
        try:
            while proc.poll() is None:
                if not started_at and (run_dir / "started").exists():
                    started_at.append(time.monotonic())
                if time.monotonic() - t0 > timeout:
                    timed_out = True
                    break
                if boot_deadline is not None and not started_at and (
                        time.monotonic() - t0 > boot_deadline or any(KVM_FAILED in line for line in log[-20:])):
                    break
                time.sleep(0.02)
        finally:
            _kill_group(proc)
            reader.join(timeout=5)
            for sig, handler in old_handlers.items():
                signal.signal(sig, handler)
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
        return LabResult(rc, read("stdout"), read("stderr"), accel, k.version,
                         boot_s=started_at[0] - t0, command_s=t_end - started_at[0], timed_out=timed_out,
                         pgid=proc.pid)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def run(cmd: list[str], kernel: str | None = None, cpus: int = 2, memory: str = "4G",
        timeout: float = DEFAULT_TIMEOUT_S, rwdirs: list[str | Path] | None = None,
        cwd: str | Path | None = None, env: dict[str, str] | None = None) -> LabResult:
    """Boot the lab kernel, run ``cmd`` as root in the guest and return its status and output.

    The project directory (and ``rwdirs``) are writable in the guest, the rest of the host's root
    filesystem is shared read-only. KVM is tried first and TCG used when KVM fails (one notice on
    stderr); the working accelerator is remembered. After ``timeout`` seconds the guest is killed
    and the result has ``timed_out`` set and returncode 124.
    """
    if not cmd:
        raise UsageError("lab run: no command given")
    if not 1 <= cpus <= MAX_GUEST_CPUS:
        raise UsageError(f"lab run: --cpus must be 1..{MAX_GUEST_CPUS} (got {cpus})")
    if not re.fullmatch(r"\d+[MG]?", memory):
        raise UsageError(f"lab run: --memory must look like 4G or 2048M (got {memory!r})")
    if not math.isfinite(timeout) or timeout <= 0:
        raise UsageError(f"lab run: timeout must be a finite number > 0 (got {timeout})")
    k = prepared(kernel)       # refuses a damaged ready.json or kernel image before booting
    dirs = [Path(d).resolve() for d in (rwdirs or [])]
    for d in dirs:
        if not d.is_dir():
            raise UsageError(f"lab run: rwdir {d} is not a directory")
    where = Path(cwd).resolve() if cwd else Path.cwd()
    guest_env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/root",
                 "LANG": "C.UTF-8", "ZCRXPROF_LAB": k.version, "ZCRXPROF_CACHE": str(debarchive.cache_dir())}
    guest_env.update(env or {})
    accel = known_accelerator() or ("kvm?" if _kvm_usable() else "tcg")
    if accel != "tcg":
        # every KVM boot has the trial deadline, also where KVM worked before: this kernel (or a
        # changed host) may still fail under it, and then TCG runs the command
        res = _boot_once(k, "kvm", cmd, cpus, memory, timeout, dirs, where, guest_env, KVM_BOOT_DEADLINE_S)
        if res is not None:
            _record_accelerator("kvm")
            return res
        print("zcrxprof lab: KVM cannot boot the guest here; falling back to TCG (emulated, slower)",
              file=sys.stderr)
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        try:
            res = _boot_once(k, "tcg", cmd, cpus, memory, timeout, dirs, where, guest_env)
            break
        except _NotStarted as exc:
            if attempt == BOOT_ATTEMPTS:
                raise
            print(f"zcrxprof lab: {exc}; booting again ({attempt + 1} of {BOOT_ATTEMPTS})", file=sys.stderr)
    assert res is not None
    _record_accelerator("tcg")
    return res


def status() -> dict:
    """Cached kernels with their zcrx features, the pinned/default choice and the accelerator."""
    env = _versions_env()
    good, damaged = _scan()
    return {
        "cache": str(lab_dir()),
        "pinned": env.get("LAB_KERNEL") or None,
        "minimum": env.get("LAB_KERNEL_MIN", "7.1"),
        "accelerator": known_accelerator() or ("untested (KVM device present)" if _kvm_usable() else "tcg"),
        "kernels": [{"version": k.version, "root": str(k.root), "features": k.features(),
                     "kprobes": k.config().get("CONFIG_KPROBES") == "y",
                     "btf": k.config().get("CONFIG_DEBUG_INFO_BTF") == "y",
                     "headers": str(k.headers), "packages": k.packages} for k in good],
        "damaged": [{"version": v, "problem": why} for v, why in sorted(damaged.items())],
    }


def result_dict(res: LabResult) -> dict:
    """A LabResult as plain data (for JSON)."""
    return asdict(res)
