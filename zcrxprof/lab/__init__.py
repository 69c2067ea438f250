"""The kernel lab: a Debian kernel with zcrx NODEV and ifq sharing, booted under virtme-ng/QEMU.

The host kernel may lack ``ZCRX_REG_NODEV`` (7.1), events/stats (7.2) and kprobes; the lab boots a
newer Debian kernel with the host's root filesystem shared read-only and the project read-write.

Modules: ``catalogue`` (prepared kernels: list, check, prepare, header trees, status),
``userkernel`` (a user's kernel build tree or image named by its path), ``boot``
(the guard process and :func:`run`), ``accelerator`` (KVM or TCG, remembered per host),
``debarchive`` (the private Debian archive the kernels come from). The command line is
:mod:`zcrxprof.cli.lab`.

Public API: :func:`prepare`, :func:`run`, :func:`status`, :func:`headers_dir`, :func:`kernels`,
:func:`prepared`, :func:`kernel_for` (a version or a user's kernel path).
"""
from __future__ import annotations

from zcrxprof.lab.accelerator import known_accelerator
from zcrxprof.lab.boot import DEFAULT_TIMEOUT_S, LabResult, group_members, kernel_for, result_dict, run
from zcrxprof.lab.userkernel import UserKernel
from zcrxprof.lab.catalogue import (
    RUNS_DIR, LabKernel, headers_dir, kernels, lab_dir, prepare, prepared, resolve_kernel, status,
)

__all__ = [
    "DEFAULT_TIMEOUT_S", "RUNS_DIR", "LabKernel", "LabResult", "group_members", "headers_dir",
    "kernel_for", "kernels", "known_accelerator", "lab_dir", "prepare", "prepared", "resolve_kernel", "result_dict", "run",
    "status", "UserKernel",
]
