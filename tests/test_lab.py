"""The kernel lab: prepare (cold when the tree is missing), run a command in the guest and get its
real status and output back, the BCC header tree, host-side errors, the timeout and the signals
(SIGTERM, SIGHUP, SIGKILL to `zcrxprof lab run`) that leave no vng or QEMU behind, and the KVM → TCG
fallback (with a stand-in for vng). The guest boots three times in this file (status, BCC and hang),
under TCG here; the signal tests stop QEMU while it boots."""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zcrxprof import lab
from zcrxprof.errors import UsageError, ZcrxprofError

pytestmark = [pytest.mark.lab, pytest.mark.root]
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def lab_kernel() -> lab.LabKernel:
    """The default lab kernel, prepared once per session (downloads come from the cache)."""
    return lab.prepare(check_archive=False)


def zcrxprof(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zcrxprof", *args], capture_output=True, text=True,
                          cwd=PROJECT, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def guest_run(lab_kernel: lab.LabKernel, tmp_path_factory) -> tuple[lab.LabResult, Path]:
    """One boot: uname, stdout/stderr/exit status, and a BCC program compiled against headers_dir()."""
    out = Path(lab.RUNS_DIR) / f"test-lab-{time.time_ns()}"
    out.mkdir(parents=True)
    bcc = ("from bcc import BPF; b = BPF(text='int probe(void *ctx) { return 0; }'); "
           "print(b.load_func('probe', BPF.KPROBE).fd > 0)")
    script = (f"uname -r; cat /proc/sys/kernel/osrelease > {out}/osrelease; echo to-stderr >&2; "
              f"BCC_KERNEL_SOURCE={shlex.quote(str(lab.headers_dir(lab_kernel.version)))} "
              f"/usr/bin/python3 -c {shlex.quote(bcc)} > {out}/bcc.out 2> {out}/bcc.err; exit 7")
    res = lab.run(["sh", "-c", script], kernel=lab_kernel.version, timeout=400)
    yield res, out
    subprocess.run(["rm", "-rf", str(out)])


def test_prepared_kernel_has_the_zcrx_features_the_backends_need(lab_kernel):
    assert lab.version_tuple(lab_kernel.version) >= (7, 1)
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


def test_guest_command_status_and_output_come_back(guest_run, lab_kernel):
    res, out = guest_run
    assert res.returncode == 7                                      # not vng's 255
    assert res.stdout.strip() == lab_kernel.version
    assert (out / "osrelease").read_text().strip() == lab_kernel.version   # project dir writable
    assert "to-stderr" in res.stderr
    assert res.accelerator in ("kvm", "tcg") and res.kernel == lab_kernel.version
    assert 0 < res.boot_s < 400 and not res.timed_out
    assert lab.group_members(res.pgid) == []


def test_bcc_compiles_in_the_guest_against_the_lab_headers(guest_run):
    _, out = guest_run
    assert (out / "bcc.out").read_text().strip() == "True", (out / "bcc.err").read_text()[-2000:]


def test_hanging_guest_command_is_killed_at_the_timeout_and_no_qemu_survives(lab_kernel):
    t0 = time.monotonic()
    res = lab.run(["sleep", "3600"], kernel=lab_kernel.version, timeout=75)
    assert res.timed_out and res.returncode == 124
    assert time.monotonic() - t0 < 75 + 30
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


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def start_lab_run_cli() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "zcrxprof", "lab", "run", "--timeout", "300", "--", "sleep", "600"],
                            cwd=PROJECT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_qemu(cli_pid: int) -> tuple[int, int]:
    """(process group of the run, QEMU's pid) once QEMU runs: the group is led by cli_pid's child."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == cli_pid:
                pgid = int(stat.parent.name)
                qemu = next((p for p in lab.group_members(pgid) if comm(p).startswith("qemu-system")), None)
                if qemu:
                    return pgid, qemu
        time.sleep(0.1)
    raise AssertionError("QEMU never started")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_leftovers(pgid: int | None, cli: subprocess.Popen) -> None:
    """A failed test leaves nothing behind either."""
    if cli.poll() is None:
        cli.kill()
        cli.wait()
    if pgid and lab.group_members(pgid):
        os.killpg(pgid, signal.SIGKILL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_to_lab_run_kills_the_guest_and_no_qemu_survives(lab_kernel, sig):
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
    """SIGKILL cannot be caught: the guard leading the group sees its parent die and kills it."""
    cli, pgid = start_lab_run_cli(), None
    try:
        pgid, qemu = wait_for_qemu(cli.pid)
        cli.kill()
        cli.wait()
        deadline = time.monotonic() + 5
        while (lab.group_members(pgid) or alive(qemu)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lab.group_members(pgid) == [] and not alive(qemu)
    finally:
        kill_leftovers(pgid, cli)


# ---- the accelerator choice, with a stand-in for vng (no guest boots) ----------------------------

FAKE_VNG = """#!/bin/sh
# stands in for vng: under KVM it fails as this host's kvm_pvm does (QEMU prints the error, then
# hangs); with --disable-kvm (TCG) it runs the guest script right here
case " $* " in *" --disable-kvm "*) ;; *) echo "KVM internal error. Suberror: 1"; exec sleep 600;; esac
while [ $# -gt 1 ]; do [ "$1" = --exec ] && script=$2; shift; done
eval "$script"
exit 255
"""


@pytest.fixture
def fake_vng(tmp_path, monkeypatch) -> Path:
    """vng (and `mountpoint`, which the guest script asks about its shares) stubbed on PATH; the
    accelerator record in tmp_path, never the machine's."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "vng").write_text(FAKE_VNG)
    (bindir / "mountpoint").write_text("#!/bin/sh\nexit 0\n")
    for f in bindir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setattr(lab, "_accel_file", lambda: tmp_path / "lab-accelerator.json")
    monkeypatch.setattr(lab, "_kvm_usable", lambda: True)
    monkeypatch.setattr(lab, "_find_prepared", lambda kernel: lab.LabKernel("7.3.4+deb13-amd64", tmp_path))
    return tmp_path


def test_kvm_failure_falls_back_to_tcg_with_one_notice_and_records_it(fake_vng, capfd):
    res = lab.run(["sh", "-c", "echo from-the-guest; exit 3"], timeout=60)
    assert res.accelerator == "tcg" and res.emulated
    assert res.returncode == 3 and res.stdout == "from-the-guest\n"
    assert capfd.readouterr().err.count("KVM cannot boot the guest here; falling back to TCG") == 1
    assert lab.known_accelerator() == "tcg"
    assert lab.group_members(res.pgid) == []


def test_kvm_recorded_as_working_still_falls_back_when_it_fails(fake_vng, capfd):
    lab._record_accelerator("kvm")
    assert lab.known_accelerator() == "kvm"
    t0 = time.monotonic()
    res = lab.run(["true"], timeout=120)
    assert res.accelerator == "tcg" and res.returncode == 0
    assert time.monotonic() - t0 < 60          # the trial ended at QEMU's KVM error, not at the timeout
    assert "falling back to TCG" in capfd.readouterr().err
    assert lab.known_accelerator() == "tcg"
