"""Lab kernels: the catalogue of prepared kernels, their preparation, and their header trees.

``prepare`` finds a Debian kernel newer than the host's through a private apt configuration
(:mod:`zcrxprof.lab.debarchive`), caches the .debs in ``$ZCRXPROF_CACHE``, unpacks them under
``.build/lab/kernels/<version>/`` (never into the host's /usr/lib/modules), decompresses the modules
virtme-ng's initramfs must load and joins the kernel's header packages into one tree for BCC.
``kernels``/``prepared`` list and check what is prepared: a damaged kernel (unreadable or wrong
``ready.json``, missing or foreign kernel image) is refused in one line naming the fix.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from zcrxprof import paths, vocab
from zcrxprof.errors import ZcrxprofError
from zcrxprof.lab import accelerator, debarchive

RUNS_DIR = paths.build_dir() / "lab"    # prepared kernels under kernels/, guest run directories

# Modules virtme-ng's initramfs loads (it cannot read .ko.xz), plus what workloads need early.
INITRAMFS_MODULES = ("9p", "9pnet", "9pnet_virtio", "netfs", "virtio_mmio", "overlay", "veth")
KERNEL_NAME_RE = re.compile(r"^linux-binary-(\d+\.\d+\.\d+\+deb\d+-amd64)$")


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
    def boot_target(self) -> str:
        """What ``vng --run`` gets: the kernel image."""
        return str(self.vmlinuz)

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
        return vocab.kernel_features(self.version)


def _versions_env() -> dict[str, str]:
    out: dict[str, str] = {}
    pins = paths.versions_env()
    if pins is not None and pins.exists():
        for line in pins.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, _, v = line.partition("=")
                out[k.strip()] = v.strip().strip("'\"")
    return out


def lab_dir() -> Path:
    """Where prepared kernels live: ``lab/kernels`` under the build directory (:mod:`zcrxprof.paths`).

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


def status() -> dict:
    """Cached kernels with their zcrx features, the pinned/default choice and the accelerator."""
    env = _versions_env()
    good, damaged = _scan()
    return {
        "cache": str(lab_dir()),
        "pinned": env.get("LAB_KERNEL") or None,
        "minimum": env.get("LAB_KERNEL_MIN", "7.1"),
        "accelerator": accelerator.known_accelerator() or ("untested (KVM device present)" if accelerator.kvm_usable() else "tcg"),
        "kernels": [{"version": k.version, "root": str(k.root), "features": k.features(),
                     "kprobes": k.config().get("CONFIG_KPROBES") == "y",
                     "btf": k.config().get("CONFIG_DEBUG_INFO_BTF") == "y",
                     "headers": str(k.headers), "packages": k.packages} for k in good],
        "damaged": [{"version": v, "problem": why} for v, why in sorted(damaged.items())],
    }
