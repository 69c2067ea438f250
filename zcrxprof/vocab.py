"""The words every part of zcrxprof shares: topologies, backends, zcrx features by kernel, kernel
versions and where a run happened. Pure standard library; every other module (and, through
``python -m zcrxprof.vocab c-header``, the load generator's ``loadgen/vocab.h``) takes them from here.

Glossary
  topology         how receive rings share the work: ``single``, ``workers``, ``ifq-per-ring``,
                   ``shared-ifq`` (:data:`TOPOLOGIES`, in this order everywhere).
  backend          how a ring receives: ``copy``, ``zcrx-nodev``, ``zcrx`` (:data:`BACKENDS`); only
                   ``zcrx`` is zero copy (:func:`is_zero_copy`).
  place            where a run happened: ``host`` or ``lab`` (the kernel lab guest) (:func:`place`).
  accelerator      the lab guest's CPU: ``kvm`` or ``tcg``; empty on the host (:func:`accelerator`).
  emulated         the list of what a run emulates, as tokens: a topology the backend only imitates
                   (the copy backend's ``shared-ifq``), ``nic`` (zcrx-nodev has no device), and
                   :data:`EMULATED_TIMING_TOKEN` (a TCG guest). In the ``runs`` table it is stored
                   joined by ``"; "`` (:func:`join_emulated` / :func:`split_emulated`).
  emulated_timing  a bool: the timings come from an emulated CPU (accelerator ``tcg``); counts and
                   shapes stay meaningful, durations do not (:func:`is_emulated_timing`).
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from zcrxprof.errors import UsageError


@dataclass(frozen=True)
class Topology:
    """One receive topology: its name, a short label, and how it uses rings."""

    name: str
    label: str
    several_rings: bool     # takes --rings N (else exactly one ring)
    hands_off: bool         # the receiving thread hands payloads to other threads


TOPOLOGY_INFO = (
    Topology("single", "1 ring receives and works", several_rings=False, hands_off=False),
    Topology("workers", "1 ring hands buffers to worker threads", several_rings=False, hands_off=True),
    Topology("ifq-per-ring", "N rings, each with its own buffer pool", several_rings=True, hands_off=False),
    Topology("shared-ifq", "N rings sharing one buffer pool and refill queue", several_rings=True,
             hands_off=False),
)
TOPOLOGIES = tuple(t.name for t in TOPOLOGY_INFO)
TOPOLOGY_LABELS = {t.name: t.label for t in TOPOLOGY_INFO}
MULTI_RING_TOPOLOGIES = tuple(t.name for t in TOPOLOGY_INFO if t.several_rings)
# topologies where the thread that receives a payload is the one that works on it (cache-hot)
HOT_TOPOLOGIES = tuple(t.name for t in TOPOLOGY_INFO if not t.hands_off)

BACKENDS = ("copy", "zcrx-nodev", "zcrx")
ZERO_COPY_BACKENDS = frozenset({"zcrx"})
DEFAULT_BACKEND = "copy"    # the load generator's default

# What a backend may name in `emulated` besides a topology it imitates.
EMULATED_NIC_TOKEN = "nic"                              # zcrx-nodev: no device, the kernel copies
EMULATED_TIMING_TOKEN = "tcg guest (timing emulated)"   # the run's CPU was emulated
EMULATED_SEPARATOR = "; "


@dataclass(frozen=True)
class ZcrxFeature:
    """A zcrx feature, the kernel (major, minor) that brought it, and its name in loadgen/vocab.h."""

    name: str
    since: tuple[int, int]
    c_id: str


ZCRX_FEATURE_INFO = (
    ZcrxFeature("zcrx", (6, 15), "ZCRX"),
    ZcrxFeature("query", (6, 18), "QUERY"),
    ZcrxFeature("export/import sharing + ctrl/flush", (6, 19), "SHARING"),
    ZcrxFeature("large rx buffers", (7, 0), "RX_BUF_LEN"),
    ZcrxFeature("NODEV", (7, 1), "NODEV"),
    ZcrxFeature("events/stats", (7, 2), "EVENTS"),
)
ZCRX_FEATURES = {f.name: f.since for f in ZCRX_FEATURE_INFO}   # feature -> kernel, oldest first
# The zcrx feature a backend cannot run without (copy needs none).
BACKEND_NEEDS = {"copy": None, "zcrx-nodev": "NODEV", "zcrx": "zcrx"}

PLACES = ("host", "lab")
ACCELERATORS = ("kvm", "tcg")
LAB_ENV = "ZCRXPROF_LAB"    # set by the kernel lab inside its guest
CLOCKSOURCES = Path("/sys/devices/system/clocksource/clocksource0/available_clocksource")


def is_zero_copy(backend: str) -> bool:
    """Whether ``backend`` receives without a copy (only ``zcrx``, on a real NIC)."""
    return backend in ZERO_COPY_BACKENDS


def topology_order(names: Iterable[str]) -> list[str]:
    """``names`` without repeats, known topologies first in :data:`TOPOLOGIES` order, others after."""
    present = list(dict.fromkeys(names))
    return [t for t in TOPOLOGIES if t in present] + [t for t in present if t not in TOPOLOGIES]


def parse_kernel_version(release: str) -> tuple[int, int]:
    """``7.3.4+deb13-amd64`` → ``(7, 3)``; ``7.1.0-rc3`` → ``(7, 1)``; UsageError for anything else."""
    m = re.match(r"\s*(\d+)\.(\d+)(?![\d])", str(release))
    if not m:
        raise UsageError(f"not a kernel version: {release!r}")
    return int(m.group(1)), int(m.group(2))


def version_text(version: tuple[int, int]) -> str:
    """``(7, 1)`` → ``"7.1"``."""
    return f"{version[0]}.{version[1]}"


def kernel_features(release: str) -> list[str]:
    """zcrx features a kernel of this release has by its version (its config may still lack zcrx)."""
    have = parse_kernel_version(release)
    return [name for name, since in ZCRX_FEATURES.items() if have >= since]


def missing_features(release: str) -> list[str]:
    """zcrx features a kernel of this release is too old for."""
    have = parse_kernel_version(release)
    return [name for name, since in ZCRX_FEATURES.items() if have < since]


def kernel_has(release: str, feature: str) -> bool:
    """Whether a kernel of this release is new enough for the zcrx ``feature``."""
    return parse_kernel_version(release) >= ZCRX_FEATURES[feature]


def in_lab() -> bool:
    """Whether this process runs inside the kernel lab guest."""
    return bool(os.environ.get(LAB_ENV))


def place() -> str:
    """``lab`` inside the kernel lab guest, else ``host``."""
    return "lab" if in_lab() else "host"


def accelerator() -> str:
    """Inside the lab guest: ``kvm`` when the kvm clock is offered, else ``tcg``; empty on the host.

    The one test for a TCG guest: a KVM guest always offers ``kvm-clock``, an emulated CPU never does.
    """
    if not in_lab():
        return ""
    try:
        clocks = CLOCKSOURCES.read_text()
    except OSError:
        clocks = ""
    return "kvm" if "kvm-clock" in clocks else "tcg"


def is_emulated_timing(accelerator_name: str | None) -> bool:
    """Whether timings taken under this accelerator are emulated (TCG)."""
    return accelerator_name == "tcg"


def place_emulated(accelerator_name: str | None) -> list[str]:
    """The ``emulated`` tokens the place itself adds (a TCG guest's timing), none on the host or KVM."""
    return [EMULATED_TIMING_TOKEN] if is_emulated_timing(accelerator_name) else []


def join_emulated(tokens: Iterable[str]) -> str:
    """``emulated`` as the runs table stores it: tokens joined by ``"; "``, empty when nothing."""
    return EMULATED_SEPARATOR.join(dict.fromkeys(t for t in tokens if t))


def split_emulated(text: str | None) -> list[str]:
    """The tokens of a runs-table ``emulated`` string."""
    return [t.strip() for t in (text or "").split(EMULATED_SEPARATOR.strip()) if t.strip()]


def shares_cores(rings: int, workers: int, cpus: int | None) -> bool:
    """Whether a receiver's threads (its rings plus its workers) outnumber the CPUs they may run
    on: the load generator's ``rings_share_cores`` (False when ``cpus`` is unknown)."""
    return cpus is not None and cpus > 0 and rings + workers > cpus


def shared_cores_note(rings: int, workers: int, cpus: int | None) -> str:
    """``4 rings on 2 CPUs: rings share cores`` (``1 ring and 2 workers on 2 CPUs: rings and workers
    share cores``) when :func:`shares_cores`, else ``""`` — the words of the load generator's table
    mode, the report and ``zcrxprof summary``."""
    if not shares_cores(rings, workers, cpus):
        return ""
    plural = lambda n, word: f"{n} {word}{'' if n == 1 else 's'}"
    if workers:
        return (f"{plural(rings, 'ring')} and {plural(workers, 'worker')} on {plural(cpus, 'CPU')}: "
                "rings and workers share cores")
    return f"{plural(rings, 'ring')} on {plural(cpus, 'CPU')}: rings share cores"


def _c_name(word: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", word).upper()


def c_header() -> str:
    """``loadgen/vocab.h``: topology and backend names, emulated tokens and feature kernels for C."""
    q = lambda s: '"' + s + '"'
    lines = [
        "/* vocab.h - generated by `python3 -m zcrxprof.vocab c-header` from zcrxprof/vocab.py; do not edit.",
        " * tests/test_vocab.py checks that this file equals the generated text. */",
        "#ifndef LOADGEN_VOCAB_H",
        "#define LOADGEN_VOCAB_H",
        "",
        "/* Topologies, in order: X(ENUM, name, several rings) */",
        "#define LG_TOPOLOGIES(X) \\",
        " \\\n".join(f"\tX(TOPO_{_c_name(t.name)}, {q(t.name)}, {int(t.several_rings)})" for t in TOPOLOGY_INFO),
        "",
        *[f"#define LG_TOPOLOGY_{_c_name(t)} {q(t)}" for t in TOPOLOGIES],
        f"#define LG_NTOPOLOGIES {len(TOPOLOGIES)}",
        f"#define LG_TOPOLOGY_LIST {q(', '.join(TOPOLOGIES))}",
        f"#define LG_TOPOLOGY_CHOICES {q(' | '.join(TOPOLOGIES))}",
        f"#define LG_MULTI_RING_TOPOLOGIES {q(', '.join(MULTI_RING_TOPOLOGIES))}",
        "",
        "/* Backends */",
        *[f"#define LG_BACKEND_{_c_name(b)} {q(b)}" for b in BACKENDS],
        f"#define LG_NBACKENDS {len(BACKENDS)}",
        f"#define LG_BACKEND_LIST {q(', '.join(BACKENDS))}",
        f"#define LG_BACKEND_CHOICES {q(' | '.join(BACKENDS))}",
        f"#define LG_DEFAULT_BACKEND LG_BACKEND_{_c_name(DEFAULT_BACKEND)}",
        "",
        "/* What a backend may name in `emulated` besides a topology it imitates */",
        f"#define LG_EMULATED_NIC {q(EMULATED_NIC_TOKEN)}",
        "",
        "/* zcrx feature -> kernel that brought it: LG_SINCE_X expands to `major, minor`, LG_SINCE_X_TEXT",
        " * to \"major.minor\" */",
    ]
    for f in ZCRX_FEATURE_INFO:
        lines += [f"#define LG_SINCE_{f.c_id} {f.since[0]}, {f.since[1]}   /* {f.name} */",
                  f"#define LG_SINCE_{f.c_id}_TEXT {q(version_text(f.since))}"]
    lines += ["", "#endif", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m zcrxprof.vocab c-header``: print loadgen/vocab.h."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["c-header"]:
        print("usage: python -m zcrxprof.vocab c-header", file=sys.stderr)
        return 2
    sys.stdout.write(c_header())
    return 0


if __name__ == "__main__":
    sys.exit(main())
