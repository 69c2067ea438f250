"""What this machine can measure, one capability at a time, decided by trying (`zcrxprof doctor`).

Each check does the real thing where that is cheap and leaves nothing behind: it sets up an
io_uring, loads (and for fentry attaches, then closes) a two-instruction BPF program, opens a
hardware perf counter, creates a veth pair inside a throw-away network namespace. Kernel features
that cannot be tried without a capable NIC are derived from the kernel version and its config.
"""
from __future__ import annotations

import ctypes
import gzip
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zcrxprof import paths, vocab
from zcrxprof.errors import UsageError

ZCRX_DRIVERS = ("bnxt_en", "mlx5_core", "fbnic", "gve", "ice")   # queue-mgmt ops + header split

# x86_64 syscall numbers.
SYS_BPF = 321
SYS_PERF_EVENT_OPEN = 298
SYS_IO_URING_SETUP = 425

BPF_PROG_LOAD = 5
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_TRACEPOINT = 5
BPF_PROG_TYPE_TRACING = 26
BPF_TRACE_FENTRY = 24
BTF_KIND_FUNC = 12
FENTRY_TARGET = "tcp_recvmsg"
# "r0 = 0; exit": mov64 r0, 0 ; exit
RETURN_ZERO = struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


@dataclass
class Capability:
    """One capability: available or not, what was found, what its absence disables."""

    name: str
    ok: bool
    detail: str
    disables: str = ""


def _syscall(nr: int, *args) -> tuple[int, int]:
    """(result, errno) of a raw syscall."""
    ret = _libc.syscall(ctypes.c_long(nr), *args)
    return ret, (ctypes.get_errno() if ret < 0 else 0)


def _errname(err: int) -> str:
    import errno as errno_mod
    return errno_mod.errorcode.get(err, str(err))


def kernel_config() -> dict[str, str]:
    """The running kernel's config (/proc/config.gz or /boot/config-*), empty if neither exists."""
    text = ""
    try:
        text = gzip.decompress(Path("/proc/config.gz").read_bytes()).decode()
    except OSError:
        try:
            text = Path(f"/boot/config-{os.uname().release}").read_text()
        except OSError:
            return {}
    return dict(line.split("=", 1) for line in text.splitlines() if line.startswith("CONFIG_") and "=" in line)


def check_kernel(config: dict[str, str]) -> Capability:
    """Kernel release and which zcrx features its version has."""
    release = os.uname().release
    try:
        feats, absent = vocab.kernel_features(release), vocab.missing_features(release)
    except UsageError:          # a release that names no version: assume nothing
        feats, absent = [], list(vocab.ZCRX_FEATURES)
    missing = [f"{name} (≥ {vocab.version_text(vocab.ZCRX_FEATURES[name])})" for name in absent]
    built = config.get("CONFIG_IO_URING_ZCRX")
    cfg = "" if not config else (" CONFIG_IO_URING_ZCRX=y;" if built == "y" else " CONFIG_IO_URING_ZCRX not set;")
    ok = bool(feats) and built != "n" and (built == "y" or not config)
    return Capability("kernel", ok, f"{release};{cfg} zcrx features: {', '.join(feats) or 'none'}",
                      f"missing {', '.join(missing)} — use the kernel lab (`record --kernel`)" if missing else "")


def check_io_uring() -> Capability:
    """An io_uring can be set up (io_uring_setup with 8 entries)."""
    params = ctypes.create_string_buffer(120)
    fd, err = _syscall(SYS_IO_URING_SETUP, ctypes.c_uint(8), params)
    if fd < 0:
        return Capability("io_uring", False, f"io_uring_setup failed: {_errname(err)}",
                          "every backend (the load generator cannot run)")
    os.close(fd)
    disabled = Path("/proc/sys/kernel/io_uring_disabled")
    extra = f"; kernel.io_uring_disabled={disabled.read_text().strip()}" if disabled.exists() else ""
    return Capability("io_uring", True, f"io_uring_setup works{extra}")


def check_zcrx_nic() -> Capability:
    """A network interface whose driver supports zcrx (queue-mgmt ops + header split)."""
    found, others = [], []
    for dev in sorted(Path("/sys/class/net").iterdir()):
        drv = dev / "device" / "driver"
        if drv.exists():
            name = os.path.basename(os.readlink(drv))
            (found if name in ZCRX_DRIVERS else others).append(f"{dev.name} ({name})")
    if found:
        return Capability("zcrx NIC", True, f"candidates: {', '.join(found)}")
    return Capability("zcrx NIC", False, f"none (have {', '.join(others) or 'no physical NIC'}; zcrx needs "
                      f"{', '.join(ZCRX_DRIVERS)})", "backend zcrx (true zero copy); copy and zcrx-nodev remain")


def _bpf_load(prog_type: int, attach_type: int = 0, btf_id: int = 0) -> tuple[int, int]:
    insns = ctypes.create_string_buffer(RETURN_ZERO, len(RETURN_ZERO))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQQ", attr, 0, prog_type, 2, ctypes.addressof(insns), ctypes.addressof(lic))
    struct.pack_into("<I", attr, 68, attach_type)
    struct.pack_into("<I", attr, 108, btf_id)
    return _syscall(SYS_BPF, ctypes.c_int(BPF_PROG_LOAD), attr, ctypes.c_uint(128))


def check_bpf() -> Capability:
    """A BPF program loads (socket filter, then a tracepoint program) and tracefs is mounted."""
    fd, err = _bpf_load(BPF_PROG_TYPE_SOCKET_FILTER)
    if fd < 0:
        return Capability("bpf", False, f"BPF_PROG_LOAD failed: {_errname(err)}", "every kernel probe")
    os.close(fd)
    fd, err = _bpf_load(BPF_PROG_TYPE_TRACEPOINT)
    if fd < 0:
        return Capability("bpf", False, f"tracepoint program refused: {_errname(err)}", "every kernel probe")
    os.close(fd)
    tracefs = Path("/sys/kernel/tracing/events").is_dir()
    return Capability("bpf", True, "socket filter and tracepoint programs load; tracefs "
                      + ("mounted" if tracefs else "not mounted (the probes mount it)"))


def btf_func_id(name: str, path: str = "/sys/kernel/btf/vmlinux") -> int | None:
    """BTF type id of kernel function ``name`` in vmlinux BTF (None if absent)."""
    data = Path(path).read_bytes()
    _magic, _ver, _flags, hdr_len, type_off, type_len, str_off, _str_len = struct.unpack_from("<HBBIIIII", data)
    types = hdr_len + type_off
    strings = hdr_len + str_off
    want = name.encode()
    extra = {1: lambda v: 4, 3: lambda v: 12, 4: lambda v: 12 * v, 5: lambda v: 12 * v, 6: lambda v: 8 * v,
             13: lambda v: 8 * v, 14: lambda v: 4, 15: lambda v: 12 * v, 17: lambda v: 4, 19: lambda v: 12 * v}
    off, tid = types, 1
    while off < types + type_len:
        name_off, info, _ = struct.unpack_from("<III", data, off)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        if kind == BTF_KIND_FUNC and data.startswith(want + b"\0", strings + name_off):
            return tid
        off += 12 + extra.get(kind, lambda v: 0)(vlen)
        tid += 1
    return None


def check_fentry() -> Capability:
    """fentry: load and attach a tracing program to a kernel function, then detach."""
    what = "kernel-function probes via fentry (the ladder falls back to kprobes)"
    try:
        btf_id = btf_func_id(FENTRY_TARGET)
    except OSError:
        return Capability("fentry", False, "no /sys/kernel/btf/vmlinux (kernel without BTF)", what)
    if btf_id is None:
        return Capability("fentry", False, f"{FENTRY_TARGET} not in vmlinux BTF", what)
    fd, err = _bpf_load(BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY, btf_id)
    if fd < 0:
        return Capability("fentry", False, f"fentry program on {FENTRY_TARGET} refused at load: {_errname(err)}", what)
    attr = ctypes.create_string_buffer(struct.pack("<QI", 0, fd), 16)
    link, err = _syscall(SYS_BPF, ctypes.c_int(BPF_RAW_TRACEPOINT_OPEN), attr, ctypes.c_uint(16))
    os.close(fd)
    if link < 0:
        return Capability("fentry", False, f"fentry on {FENTRY_TARGET} loads but attach fails: {_errname(err)}", what)
    os.close(link)
    return Capability("fentry", True, f"attached to {FENTRY_TARGET} and detached")


def check_kprobes(config: dict[str, str]) -> Capability:
    """kprobes: the kprobe PMU or tracefs kprobe_events exists."""
    pmu = Path("/sys/bus/event_source/devices/kprobe").exists()
    events = Path("/sys/kernel/tracing/kprobe_events").exists()
    if pmu or events:
        return Capability("kprobes", True, "kprobe PMU" + (" and kprobe_events" if events else ""))
    why = "kernel built without CONFIG_KPROBES" if config.get("CONFIG_KPROBES") in (None, "n") and config else \
        "no kprobe PMU and no kprobe_events"
    return Capability("kprobes", False, why,
                      "probes of static/inlined zcrx functions (io_zcrx_copy_chunk, …) — use the kernel lab")


def check_pmu() -> Capability:
    """A hardware PMU: open a CPU-cycles counter on this thread."""
    attr = ctypes.create_string_buffer(128)
    struct.pack_into("<IIQ", attr, 0, 0, 128, 0)          # PERF_TYPE_HARDWARE, size, CPU_CYCLES
    struct.pack_into("<Q", attr, 40, 1 | (1 << 5) | (1 << 6))   # disabled, exclude_kernel, exclude_hv
    fd, err = _syscall(SYS_PERF_EVENT_OPEN, attr, ctypes.c_int(0), ctypes.c_int(-1), ctypes.c_int(-1),
                       ctypes.c_ulong(0))
    if fd < 0:
        return Capability("pmu", False, f"hardware cycles counter cannot be opened: {_errname(err)}",
                          "cache-miss and cycle counters (perf stat shows `not supported`); "
                          "cache effects come from hot-vs-cold work timing instead")
    os.close(fd)
    return Capability("pmu", True, "hardware cycles counter opens")


def check_netns() -> Capability:
    """Network namespaces and veth: create a veth pair in a throw-away namespace."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return Capability("netns", False, "unshare or ip missing", "sender in its own namespace (veth)")
    p = subprocess.run(["unshare", "--net", "--", "ip", "link", "add", "zdoc0", "type", "veth", "peer", "name", "zdoc1"],
                       capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        return Capability("netns", False, f"veth in a new namespace failed: {p.stderr.strip()[:120]}",
                          "sender in its own namespace (veth)")
    return Capability("netns", True, "namespace + veth pair created (and gone with the namespace)")


def check_lab() -> list[Capability]:
    """Kernel lab: a cached guest kernel, and the accelerator QEMU will use."""
    caps = []
    try:
        from zcrxprof import lab
    except ImportError as exc:
        return [Capability("lab kernel", False, f"zcrxprof.lab unavailable: {exc}", "record --kernel")]
    ks = lab.kernels()
    if ks:
        caps.append(Capability("lab kernel", True, "cached: " + ", ".join(
            f"{k.version} ({', '.join(k.features()) or 'no zcrx'})" for k in ks)))
    else:
        caps.append(Capability("lab kernel", False, "none cached (`zcrxprof lab prepare` or `make setup-lab`)",
                               "record --kernel (zcrx-nodev, sharing, kernel-function probes)"))
    qemu = shutil.which("qemu-system-x86_64")
    known = lab.known_accelerator()
    kvm = Path("/dev/kvm").exists()
    flags = Path("/proc/cpuinfo").read_text()
    vt = bool(re.search(r"\b(vmx|svm)\b", flags))
    if not qemu:
        caps.append(Capability("accelerator", False, "qemu-system-x86_64 not installed", "the kernel lab"))
    elif known == "kvm":
        caps.append(Capability("accelerator", True, "KVM (lab timings are real, not emulated)"))
    else:
        why = ("KVM failed to boot the guest here before" if known == "tcg" else
               "/dev/kvm present but no vmx/svm (paravirtual KVM); untested" if kvm and not vt else
               "/dev/kvm present; untested" if kvm else "no /dev/kvm")
        caps.append(Capability("accelerator", known == "tcg" or not kvm, f"TCG ({why})",
                               "real lab timings: guest figures are emulated (TCG)"))
    return caps


def check_tools() -> list[Capability]:
    """The project's own pieces and helper tools: load generator, BCC, perf."""
    loadgen = paths.loadgen_binary()
    built = os.access(loadgen, os.X_OK)
    how = "`make loadgen`" if paths.checkout() else "`make loadgen` in a zcrxprof checkout, then put it on PATH"
    caps = [Capability("loadgen", built, str(loadgen) + (" built" if built else f" not built ({how})"),
                       "" if built else "record (no workload)")]
    try:
        import bcc  # noqa: F401  (Debian's python3-bpfcc, linked into the venv)
        caps.append(Capability("bcc", True, "python3-bpfcc importable"))
    except Exception as exc:  # bcc raises various errors when libbcc is missing
        caps.append(Capability("bcc", False, f"cannot import bcc: {exc}", "every kernel probe"))
    perf = shutil.which("perf")
    if perf:
        p = subprocess.run([perf, "--version"], capture_output=True, text=True, timeout=10)
        ok = p.returncode == 0
        caps.append(Capability("perf", ok, p.stdout.strip() or p.stderr.strip()[:100], "" if ok else "record --perf/--profile"))
    else:
        caps.append(Capability("perf", False, "perf not installed (linux-perf)", "record --perf/--profile"))
    return caps


def capabilities() -> list[Capability]:
    """Every capability check, in display order."""
    config = kernel_config()
    caps = [check_kernel(config), check_io_uring(), check_zcrx_nic(), check_bpf(), check_kprobes(config),
            check_fentry(), check_pmu(), check_netns()]
    caps += check_lab() + check_tools()
    return caps
