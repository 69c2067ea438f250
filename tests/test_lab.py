"""The kernel lab: prepare (cold when the tree is missing), run a command in the guest and get its
real status and output back, the BCC header tree, host-side errors, the timeout and the signals
(SIGTERM, SIGHUP, SIGKILL to `zcrxprof lab run`) that leave no vng or QEMU behind, and the KVM → TCG
fallback (with a stand-in for vng). The status checks run in the lab guest boot the lab tests share
(tests/lab_guest.py, under TCG here; BCC compiling there against the header tree is
test_probes_lab.py's); SIGKILL stops a real QEMU while it boots; the timeout,
SIGTERM and SIGHUP go through the same guard and group kill with the stand-in vng, in seconds."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab_guest import EXIT_STATUS
from leftovers import alive, children, comm
from zcrxprof import lab, vocab
from zcrxprof.lab import accelerator, boot, catalogue
from zcrxprof.errors import UsageError, ZcrxprofError

pytestmark = [pytest.mark.lab, pytest.mark.root]
PROJECT = Path(__file__).resolve().parent.parent


def zcrxprof(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zcrxprof", *args], capture_output=True, text=True,
                          cwd=PROJECT, timeout=timeout, stdin=subprocess.DEVNULL)


def test_prepared_kernel_has_the_zcrx_features_the_backends_need(lab_kernel):
    assert vocab.kernel_has(lab_kernel.version, "NODEV")
    assert lab_kernel.vmlinuz.is_file()
    assert {"NODEV", "export/import sharing + ctrl/flush"} <= set(lab_kernel.features())
    assert lab_kernel.config()["CONFIG_IO_URING_ZCRX"] == "y"
    # the modules virtme-ng's initramfs loads are decompressed, and depmod indexed them
    dep = (lab_kernel.moddir / "modules.dep").read_text()
    assert "9pnet_virtio.ko:" in dep and "9pnet_virtio.ko.xz" not in dep


def test_headers_dir_is_one_merged_tree(lab_kernel):
    h = lab.headers_dir(lab_kernel.version)
    assert (h / "include" / "linux" / "kconfig.h").is_file()        # from -common
    assert (h / "include" / "generated" / "autoconf.h").is_file()   # from -amd64
    assert (h / "scripts").exists()                                 # kbuild via its link
    with pytest.raises(ZcrxprofError, match="not prepared"):
        lab.headers_dir("0.0.1+deb99-amd64")


def test_guest_command_status_and_output_come_back(lab_guest, lab_kernel):
    res, out = lab_guest.result, lab_guest.part("basics")
    assert res.returncode == EXIT_STATUS                            # the script's own, not vng's 255
    assert res.stdout.strip() == lab_kernel.version
    assert (out / "osrelease").read_text().strip() == lab_kernel.version   # project dir writable
    assert "to-stderr" in res.stderr
    assert res.accelerator in ("kvm", "tcg") and res.kernel == lab_kernel.version
    assert 0 < res.boot_s < 400 and not res.timed_out
    assert lab.group_members(res.pgid) == []


def test_run_rejects_bad_arguments_before_booting(lab_kernel):
    with pytest.raises(UsageError):
        lab.run([])
    with pytest.raises(UsageError, match="--memory"):
        lab.run(["true"], memory="lots")
    with pytest.raises(UsageError, match="--cpus"):
        lab.run(["true"], cpus=0)
    with pytest.raises(ZcrxprofError, match="not prepared"):
        lab.run(["true"], kernel="0.0.1+deb99-amd64")


def test_cli_errors_are_one_line_with_the_right_exit_status(lab_kernel):
    p = zcrxprof("lab", "run")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    p = zcrxprof("lab", "run", "--kernel", "0.0.1+deb99-amd64", "--", "true")
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "not prepared" in p.stderr
    p = zcrxprof("lab", "run", "--cpus", "x", "--", "true")
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_cli_prepare_quiet_if_ready_is_silent_and_fast(lab_kernel):
    t0 = time.monotonic()
    p = zcrxprof("lab", "prepare", "--quiet-if-ready")
    assert p.returncode == 0 and p.stdout == "" and p.stderr == ""
    assert time.monotonic() - t0 < 20      # no download, no archive query (generous: shared CPU)


def test_cli_status_lists_the_kernel_and_its_features(lab_kernel):
    p = zcrxprof("lab", "status", "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    mine = [k for k in st["kernels"] if k["version"] == lab_kernel.version]
    assert mine and "NODEV" in mine[0]["features"] and mine[0]["kprobes"] is True
    assert mine[0]["headers"] == str(lab.headers_dir(lab_kernel.version))
    text = zcrxprof("lab", "status").stdout
    assert lab_kernel.version in text and "accelerator:" in text


def start_lab_run_cli() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zcrxprof", "lab", "run", "--timeout", "300", "--", "sleep", "600"],
                            cwd=PROJECT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_qemu(cli_pid: int) -> tuple[int, int]:
    """(process group of the run, QEMU's pid) once QEMU runs: the group is led by cli_pid's child."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for pgid in children(cli_pid):
            qemu = next((p for p in lab.group_members(pgid) if comm(p).startswith("qemu-system")), None)
            if qemu:
                return pgid, qemu
        time.sleep(0.1)
    raise AssertionError("QEMU never started")


def kill_leftovers(pgid: int | None, cli: subprocess.Popen) -> None:
    """A failed test leaves nothing behind either."""
    if cli.poll() is None:
        cli.kill()
        cli.wait()
    if pgid and lab.group_members(pgid):
        os.killpg(pgid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_to_lab_run_kills_the_guest_and_no_qemu_survives(lab_kernel, fake_vng, sig):
    """With the stand-in vng (its QEMU a sleeper): the handler in lab.run and the group kill."""
    accelerator.record_accelerator("tcg")
    cli, pgid = start_lab_run_cli(), None
    try:
        pgid, qemu = wait_for_qemu(cli.pid)
        cli.send_signal(sig)
        _, err = cli.communicate(timeout=30)
        assert cli.returncode == 1 and f"terminated by {sig.name}" in err and len(err.strip().splitlines()) == 1
        assert lab.group_members(pgid) == [] and not alive(qemu)
    finally:
        kill_leftovers(pgid, cli)


def test_sigkill_to_lab_run_leaves_no_vng_or_qemu_behind(lab_kernel):
    """SIGKILL cannot be caught: the guard leading the group sees its parent die and kills it
    (real vng: the QEMU it starts dies too)."""
    cli, pgid = start_lab_run_cli(), None
    try:
        pgid, qemu = wait_for_qemu(cli.pid)
        cli.kill()
        cli.wait()
        deadline = time.monotonic() + 5
        while (lab.group_members(pgid) or alive(qemu)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lab.group_members(pgid) == [] and not alive(qemu)
        # the killed run could not remove its scratch directory; the next run does
        left = list(catalogue.RUNS_DIR.glob(f"run-{cli.pid}-*"))
        assert left, "a SIGKILLed lab run leaves its run directory (nothing to reap: test is void)"
        boot._remove_stale_runs(catalogue.RUNS_DIR)
        assert not any(d.exists() for d in left)
    finally:
        kill_leftovers(pgid, cli)


def test_only_run_directories_of_dead_processes_are_reaped(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine, stale = tmp_path / f"run-{os.getpid()}-a1", tmp_path / f"run-{dead.pid}-b2"
    for d in (mine, stale):
        d.mkdir()
    boot._remove_stale_runs(tmp_path)
    assert mine.exists() and not stale.exists()


# ---- a stand-in for vng (no guest boots): the accelerator choice, the timeout, the signals ------

FAKE_VNG = """#!/bin/sh
# stands in for vng: like virtme-run it starts a QEMU (here a sleeper of that name) in its group;
# under KVM it fails as this host's kvm_pvm does (QEMU prints the error, then hangs); with
# --disable-kvm (TCG) it runs the guest script right here
"$(dirname "$0")/qemu/qemu-system-x86_64" 600 &
case " $* " in *" --disable-kvm "*) ;; *) echo "KVM internal error. Suberror: 1"; exec sleep 600;; esac
while [ $# -gt 1 ]; do [ "$1" = --exec ] && script=$2; shift; done
eval "$script"
exit 255
"""


@pytest.fixture
def fake_vng(tmp_path, monkeypatch) -> Path:
    """vng (and `mountpoint`, which the guest script asks about its shares) stubbed on PATH with its
    QEMU (off PATH: the accelerator record is keyed by the real one); the accelerator record in
    tmp_path, never the machine's (a `zcrxprof` command the test starts uses them too, and the
    machine's kernels)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vng").write_text(FAKE_VNG)
    (bindir / "mountpoint").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "qemu").mkdir()
    shutil.copy("/bin/sleep", bindir / "qemu" / "qemu-system-x86_64")
    for f in bindir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("ZCRXPROF_CACHE", str(tmp_path))       # holds lab-accelerator.json
    monkeypatch.setattr(accelerator, "kvm_usable", lambda: True)
    monkeypatch.setattr(catalogue, "_find_prepared", lambda kernel: lab.LabKernel("7.3.4+deb13-amd64", tmp_path))
    return tmp_path


def test_kvm_failure_falls_back_to_tcg_with_one_notice_and_records_it(fake_vng, capfd):
    res = lab.run(["sh", "-c", "echo from-the-guest; exit 3"], timeout=60)
    assert res.accelerator == "tcg" and res.emulated_timing
    assert res.returncode == 3 and res.stdout == "from-the-guest\n"
    assert capfd.readouterr().err.count("KVM cannot boot the guest here; falling back to TCG") == 1
    assert lab.known_accelerator() == "tcg"
    assert lab.group_members(res.pgid) == []


def test_kvm_recorded_as_working_still_falls_back_when_it_fails(fake_vng, capfd):
    accelerator.record_accelerator("kvm")
    assert lab.known_accelerator() == "kvm"
    t0 = time.monotonic()
    res = lab.run(["true"], timeout=120)
    assert res.accelerator == "tcg" and res.returncode == 0
    assert time.monotonic() - t0 < 60          # the trial ended at QEMU's KVM error, not at the timeout
    assert "falling back to TCG" in capfd.readouterr().err
    assert lab.known_accelerator() == "tcg"


def test_hanging_guest_command_is_killed_at_the_timeout_and_no_qemu_survives(fake_vng):
    accelerator.record_accelerator("tcg")
    t0 = time.monotonic()
    res = lab.run(["sleep", "3600"], timeout=5)
    assert res.timed_out and res.returncode == 124
    assert time.monotonic() - t0 < 5 + 30
    assert res.command_s > 0                     # the command ran: it was killed, not its boot
    assert lab.group_members(res.pgid) == []
