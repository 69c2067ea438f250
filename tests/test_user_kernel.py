"""`--kernel PATH`: a user's kernel build tree or image, checked and identified on the host before
any guest boots (release, config hash, git describe, zcrx features), and bad paths refused in one
line; the load generator's `--share-uapi` and `--kernel-features`. The boots (and the v4 refusal on
a kernel with the merged sharing) are in test_user_kernel_lab.py."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

from user_kernel import debian_kernel_as_build_tree
from zcrxprof import lab

ZCRXPROF = [sys.executable, "-m", "zcrxprof"]


def _refused(argv: list[str]) -> str:
    """Run a zcrxprof command that must be refused before booting: exit 2, one line; returns it."""
    p = subprocess.run(ZCRXPROF + argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 2, (argv, p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_a_build_tree_and_an_image_are_identified_and_bad_paths_refused(lab_kernel, tmp_path):
    tree = debian_kernel_as_build_tree(lab_kernel, tmp_path / "linux")
    k = lab.kernel_for(str(tree))
    assert isinstance(k, lab.UserKernel) and k.tree == tree and k.boot_target == str(tree)
    ident = k.identity()
    config_sha = hashlib.sha256((lab_kernel.moddir / "config").read_bytes()).hexdigest()
    assert ident["path"] == str(tree) and ident["kind"] == "tree"
    assert ident["release"] == lab_kernel.version
    assert ident["config_sha256"] == config_sha and ident["config_zcrx"] == "y"
    assert ident["git_describe"] is None                      # not a git checkout
    assert ident["features"] == lab_kernel.features() and "NODEV" in ident["features"]
    # a git checkout: git describe --always --dirty, dirty once a tracked file changes
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", ".config", "Makefile"], check=True)
    subprocess.run(git + ["commit", "-qm", "patched"], check=True)
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert lab.kernel_for(str(tree)).git_describe == head
    with open(tree / "Makefile", "a") as f:
        f.write("# a local change\n")
    assert lab.kernel_for(str(tree)).git_describe == f"{head}-dirty"
    # the release comes from the tree's kernel.release, else from the image's setup header
    (tree / "include" / "config" / "kernel.release").unlink()
    assert lab.kernel_for(str(tree)).version == lab_kernel.version
    # the prepared image itself, as a bzImage path: its config lies beside it, modules above it
    image = lab.kernel_for(str(lab_kernel.vmlinuz))
    assert image.tree is None and image.version == lab_kernel.version
    assert image.identity()["config_sha256"] == config_sha and image.identity()["kind"] == "image"
    # a version (no '/', not a path) still names a prepared kernel
    assert lab.kernel_for(lab_kernel.version).root == lab_kernel.root

    # refused before booting, one line each, exit 2
    assert "no such file" in _refused(["lab", "run", "--kernel", str(tmp_path / "nope"), "--", "true"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "not a kernel build tree (no .config or Makefile)" in _refused(
        ["lab", "run", "--kernel", str(empty), "--", "true"])
    unbuilt = tmp_path / "unbuilt"
    shutil.copytree(tree, unbuilt, symlinks=True, ignore=shutil.ignore_patterns("bzImage"))
    assert "has no built kernel (arch/x86/boot/bzImage)" in _refused(
        ["record", "--kernel", str(unbuilt), "--duration", "1"])
    assert "neither a kernel build tree nor an x86 kernel image" in _refused(
        ["lab", "run", "--kernel", str(tree / "Makefile"), "--", "true"])
    lone = tmp_path / "boot"                                   # an image with 9p as modules, none beside it
    lone.mkdir()
    shutil.copyfile(lab_kernel.vmlinuz, lone / "vmlinuz")
    shutil.copyfile(lab_kernel.moddir / "config", lone / f"config-{lab_kernel.version}")
    line = _refused(["lab", "run", "--kernel", str(lone / "vmlinuz"), "--", "true"])
    assert "CONFIG_9P_FS" in line and f"lib/modules/{lab_kernel.version}" in line
    old = debian_kernel_as_build_tree(lab_kernel, tmp_path / "old", release="6.18.0")
    line = _refused(["record", "--kernel", str(old), "--backend", "zcrx-nodev", "--duration", "1"])
    assert "6.18.0" in line and "needs a kernel >= 7.1" in line and "is older" in line


def test_share_uapi_v4_goes_with_zcrx_shared_ifq_export_runs_and_kernel_features_answers(loadgen_bin):
    def refused(*flags: str) -> str:
        p = subprocess.run([str(loadgen_bin), *flags], capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, (flags, p.returncode, p.stderr)
        return p.stderr
    assert "goes with --topology shared-ifq" in refused("--share-uapi", "v4")
    line = refused("--topology", "shared-ifq", "--backend", "zcrx-nodev", "--share-uapi", "v4")
    assert "v4 ifq-sharing series (never merged; 6.15-6.18)" in line and "--share-uapi export" in line
    assert "copy emulates the sharing" in refused("--topology", "shared-ifq", "--share-uapi", "v4")
    assert "unknown 'v5'" in refused("--share-uapi", "v5")
    # export is the default: naming it changes nothing
    p = subprocess.run([str(loadgen_bin), "--topology", "shared-ifq", "--rings", "2", "--backend", "copy",
                        "--duration", "1", "--share-uapi", "export", "--json"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["type"] == "summary" and summary["status"] == "ok" and summary["rings"] == 2
    assert summary["bytes_received"] == summary["bytes_sent"] > 0
    p = subprocess.run([str(loadgen_bin), "--kernel-features"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    kernel = json.loads(p.stdout)
    assert kernel["type"] == "kernel" and kernel["release"] == os.uname().release
    assert isinstance(kernel["query"], bool) and isinstance(kernel["register_flags"], int)
