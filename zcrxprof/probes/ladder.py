"""The attach ladder: tracepoint → fentry/fexit → kprobe/kretprobe → "unavailable: <reason>".

Every step is decided by trying (load and attach), never by asking BCC: on the 6.18 host
``BPF.support_kfunc()`` says yes but the kernel refuses fentry with EPERM, and there are no kprobes.
kprobes match whole-function compiler clones (``name.isra.0``, ``name.constprop.0``) by regex over
``/proc/kallsyms`` — never ``.cold``/``.part`` fragments; an inlined function has no symbol and is
reported so. A clone's argument list may differ from the source (isra drops or splits arguments):
the report says when a clone was used.

libbcc prints its own diagnostics on file descriptor 2; :func:`captured_stderr` keeps them out of the
terminal and turns their last line into the reason of the attach report.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

TRACEFS = Path("/sys/kernel/tracing")
# Whole-function clones only: `.part.N` (an outlined tail) and `.cold` (a split-off cold block) are
# not function entries, and probing them would count the wrong thing.
CLONE_SUFFIX = r"(\.(isra|constprop|llvm)\.\d+)*"


@dataclass
class AttachResult:
    """What happened at one probe point: the collector stores these as the attach report."""

    tool: str
    target: str          # probe point: a tracepoint (``sched:sched_switch``) or a kernel function
    method: str          # tracepoint | fentry | fexit | kprobe | kretprobe | none
    status: str          # attached | unavailable
    reason: str = ""     # why the higher rungs did not attach (empty when the first rung did)
    symbol: str = ""     # the symbol(s) attached, e.g. ``io_zcrx_scrub.isra.0``

    def as_dict(self) -> dict:
        """Plain data for JSON and the dataset metadata."""
        return asdict(self)

    def line(self) -> str:
        """One human line, e.g. ``io_zcrx_recv: kprobe (fentry: EPERM)``."""
        if self.status == "attached":
            how = self.method + (f" {self.symbol}" if self.symbol and self.symbol != self.target else "")
            return f"{self.target}: {how}" + (f" ({self.reason})" if self.reason else "")
        return f"{self.target}: unavailable: {self.reason}"


def ensure_tracefs() -> None:
    """Mount tracefs at /sys/kernel/tracing when it is not mounted (BCC needs it)."""
    if (TRACEFS / "events").is_dir():
        return
    proc = subprocess.run(["mount", "-t", "tracefs", "nodev", str(TRACEFS)], capture_output=True, text=True)
    if proc.returncode != 0 and not (TRACEFS / "events").is_dir():
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        from zcrxprof.errors import ZcrxprofError
        raise ZcrxprofError(f"tracefs is not mounted and mounting it failed: {last}")


def tracepoint_fields(category: str, event: str) -> set[str] | None:
    """Field names of a tracepoint from its tracefs format, or None if the kernel lacks it."""
    fmt = TRACEFS / "events" / category / event / "format"
    try:
        text = fmt.read_text()
    except OSError:
        return None
    return set(re.findall(r"field:[^;]*?(\w+)(?:\[\d*\])?;", text))


@contextlib.contextmanager
def captured_stderr(fds: tuple[int, ...] = (2,)) -> Iterator[list[str]]:
    """Redirect fd 2 (where libbcc writes; add 1 for its compile messages) into a buffer.

    Yields a list that holds the captured lines once the block ends.
    """
    lines: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = [os.dup(fd) for fd in fds]
        for fd in fds:
            os.dup2(tmp.fileno(), fd)
        try:
            yield lines
        finally:
            for fd, old in zip(fds, saved):
                os.dup2(old, fd)
                os.close(old)
            tmp.seek(0)
            lines.extend(l for l in tmp.read().decode(errors="replace").splitlines() if l.strip())


def _errno_name() -> str:
    err = ctypes.get_errno()
    return errno.errorcode.get(err, f"errno {err}") if err else "error"


_kallsyms: list[str] | None = None


def kallsyms_matching(function: str) -> list[str]:
    """Text symbols named ``function`` or one of its compiler clones (read /proc/kallsyms once)."""
    global _kallsyms
    if _kallsyms is None:
        with open("/proc/kallsyms") as f:
            _kallsyms = [parts[2] for parts in (line.split() for line in f)
                         if len(parts) >= 3 and parts[1] in "tTW"]
    pattern = re.compile(re.escape(function) + CLONE_SUFFIX + "$")
    return sorted({s for s in _kallsyms if pattern.match(s)})


BTF_KIND_INT, BTF_KIND_PTR, BTF_KIND_STRUCT, BTF_KIND_TYPEDEF = 1, 2, 4, 8
BTF_KIND_FUNC, BTF_KIND_FUNC_PROTO = 12, 13
_btf = None
_lib = None


class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32), ("type", ctypes.c_uint32)]


class _BtfParam(ctypes.Structure):      # follows a FUNC_PROTO, vlen times
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32)]


class _BtfMember(ctypes.Structure):     # follows a STRUCT, vlen times
    _fields_ = [("name_off", ctypes.c_uint32), ("type", ctypes.c_uint32), ("offset", ctypes.c_uint32)]


def _vmlinux_btf():
    """(libbpf, the running kernel's BTF) loaded once, or (None, 0) without libbpf or BTF.

    Read with libbpf (Debian's libbpf1, a BCC dependency) — parsing the BTF in Python or through
    bpftool's text dump takes tens of seconds in an emulated guest.
    """
    global _btf, _lib
    if _lib is None:
        try:
            lib = ctypes.CDLL("libbpf.so.1")
        except OSError:
            return None, 0
        lib.btf__load_vmlinux_btf.restype = ctypes.c_void_p
        lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
        lib.btf__type_by_id.restype = ctypes.POINTER(_BtfType)
        lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.btf__name_by_offset.restype = ctypes.c_char_p
        lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        _lib = lib
    if _btf is None:
        _btf = _lib.btf__load_vmlinux_btf() or 0
    return _lib, _btf


def _kind(t) -> int:
    return (t.info >> 24) & 0x1F


def _items(t, cls):
    """The vlen records (params or members) that follow a BTF type."""
    addr = ctypes.addressof(t) + ctypes.sizeof(_BtfType)
    return (cls * (t.info & 0xFFFF)).from_address(addr)


def btf_arity(function: str) -> int | None:
    """Number of arguments of a kernel function per vmlinux BTF, or None if it has no BTF entry.

    fexit programs find the return value after the arguments, so they need this count.
    """
    lib, btf = _vmlinux_btf()
    if not btf:
        return None
    func_id = lib.btf__find_by_name_kind(btf, function.encode(), BTF_KIND_FUNC)
    if func_id <= 0:
        return None
    proto = lib.btf__type_by_id(btf, lib.btf__type_by_id(btf, func_id).contents.type)
    return proto.contents.info & 0xFFFF if proto else None


def _type_name(lib, btf, type_id: int) -> str:
    """C spelling of a parameter type: ``int``, ``bool`` (a typedef), ``struct task_struct *``."""
    t = lib.btf__type_by_id(btf, type_id).contents
    name = (lib.btf__name_by_offset(btf, t.name_off) or b"").decode()
    kind = _kind(t)
    if kind == BTF_KIND_PTR:
        return _type_name(lib, btf, t.type) + " *" if t.type else "void *"
    if kind == BTF_KIND_STRUCT:
        return f"struct {name}"
    if kind in (BTF_KIND_INT, BTF_KIND_TYPEDEF):
        return name
    return f"<kind {kind}> {name}"


def raw_tracepoint_params(event: str) -> tuple[str, ...] | None:
    """The arguments a raw tracepoint program gets for ``event`` (its ``btf_trace_<event>`` type in
    vmlinux BTF, without the leading ``void *``), or None when the kernel has no BTF for it."""
    lib, btf = _vmlinux_btf()
    if not btf:
        return None
    tid = lib.btf__find_by_name_kind(btf, f"btf_trace_{event}".encode(), BTF_KIND_TYPEDEF)
    if tid <= 0:
        return None
    ptr = lib.btf__type_by_id(btf, lib.btf__type_by_id(btf, tid).contents.type).contents
    proto = lib.btf__type_by_id(btf, ptr.type).contents if _kind(ptr) == BTF_KIND_PTR else None
    if proto is None or _kind(proto) != BTF_KIND_FUNC_PROTO:
        return None
    params = [_type_name(lib, btf, p.type) for p in _items(proto, _BtfParam)]
    return tuple(params[1:]) if params and params[0] == "void *" else None


def struct_member_offset(struct: str, member: str) -> int | None:
    """Byte offset of a (non-bitfield, top-level) member of a kernel struct per vmlinux BTF."""
    lib, btf = _vmlinux_btf()
    if not btf:
        return None
    sid = lib.btf__find_by_name_kind(btf, struct.encode(), BTF_KIND_STRUCT)
    if sid <= 0:
        return None
    t = lib.btf__type_by_id(btf, sid).contents
    bitfields = bool(t.info >> 31)
    for m in _items(t, _BtfMember):
        if (lib.btf__name_by_offset(btf, m.name_off) or b"").decode() == member:
            bits = m.offset & 0xFFFFFF if bitfields else m.offset
            return bits // 8 if bits % 8 == 0 else None
    return None


def _last(lines: list[str], fallback: str) -> str:
    useful = [l.strip() for l in lines if "Failed to load program" not in l]
    return useful[-1] if useful else fallback


def _kprobes_missing() -> bool:
    return not (TRACEFS / "kprobe_events").exists()


def _attach_tp(tool: str, tp: str, method: str, what: str, attach) -> AttachResult:
    """Run ``attach()`` (a BCC attach call) with libbcc's diagnostics captured into the reason."""
    with captured_stderr() as err:
        try:
            attach()
        except Exception as exc:   # BCC raises bare Exception
            return AttachResult(tool, tp, "none", "unavailable", f"{what}: {_errno_name()}: {_last(err, str(exc))}")
    return AttachResult(tool, tp, method, "attached")


def attach_tracepoint(bpf, tool: str, tp: str, fn_name: str) -> AttachResult:
    """Attach a tracepoint program; the program exists only if the tracepoint did at compile time."""
    cat, _, ev = tp.partition(":")
    if tracepoint_fields(cat, ev) is None:
        return AttachResult(tool, tp, "none", "unavailable", f"no tracepoint {tp} in this kernel")
    return _attach_tp(tool, tp, "tracepoint", f"tracepoint {tp}",
                      lambda: bpf.attach_tracepoint(tp=tp.encode(), fn_name=fn_name.encode()))


def attach_raw_tracepoint(bpf, tool: str, tp: str, fn_name: str) -> AttachResult:
    """Attach a raw tracepoint program (compiled only when the kernel's BTF has the arguments it
    expects, see ProbeTool.raw_tracepoint)."""
    ev = tp.partition(":")[2]
    return _attach_tp(tool, tp, "raw_tracepoint", f"raw tracepoint {ev}",
                      lambda: bpf.attach_raw_tracepoint(tp=ev.encode(), fn_name=fn_name.encode()))


def attach_function(bpf, tool: str, function: str, fentry_fn: str, kprobe_fn: str,
                    ret: bool = False) -> AttachResult:
    """Try fentry (fexit if ``ret``), then kprobe (kretprobe) on ``function`` and its clones."""
    reasons = []
    kind_f, kind_k = ("fexit", "kretprobe") if ret else ("fentry", "kprobe")
    if btf_arity(function) is None:
        reasons.append(f"{kind_f}: {function} not in vmlinux BTF (inlined, renamed clone or no BTF)")
    else:
        with captured_stderr() as err:
            try:
                (bpf.attach_kretfunc if ret else bpf.attach_kfunc)(fn_name=fentry_fn.encode())
                return AttachResult(tool, function, kind_f, "attached", symbol=function)
            except Exception as exc:
                name = _errno_name()
                if name == "EPERM":
                    reasons.append(f"{kind_f} refused (EPERM)")
                else:
                    reasons.append(f"{kind_f}: {name}: {_last(err, str(exc))}")
    symbols = kallsyms_matching(function)
    if _kprobes_missing():
        reasons.append("kernel built without CONFIG_KPROBES (no kprobe_events in tracefs)")
    elif not symbols:
        reasons.append(f"{kind_k}: no symbol matching {function}{CLONE_SUFFIX} in /proc/kallsyms (inlined?)")
    else:
        attached, failed = [], []
        for sym in symbols:
            with captured_stderr() as err:
                try:
                    if ret:
                        bpf.attach_kretprobe(event=sym.encode(), fn_name=kprobe_fn.encode())
                    else:
                        bpf.attach_kprobe(event=sym.encode(), fn_name=kprobe_fn.encode())
                    attached.append(sym)
                except Exception as exc:
                    failed.append(f"{sym}: {_errno_name()}: {_last(err, str(exc))}")
        if attached:
            clones = [s for s in attached if s != function]
            if clones:
                failed.append(f"clone {','.join(clones)}: its arguments may differ from the source")
            return AttachResult(tool, function, kind_k, "attached", "; ".join(reasons + failed),
                                symbol=",".join(attached))
        reasons.append(f"{kind_k}: " + "; ".join(failed))
    return AttachResult(tool, function, "none", "unavailable", "; ".join(reasons))
