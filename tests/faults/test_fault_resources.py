"""The dataset disk filling up (a small tmpfs, always unmounted) and two recordings at once."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import leftovers as lo
from zcrxprof import dataset
from paced import PACED
from tally import count, has_traceback
from test_fault_signals import loaded_runs, start, wait_reached

pytestmark = pytest.mark.root
PLAN = ["--topology", "single,workers", "--repeat", "1", "--duration", "1", "--probes", "none", *PACED]


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted at tmp_path/disk; unmounted on every path."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "zcrxprof-faults", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(mnt: Path) -> Path:
    """Write zeros into ``mnt`` until the file system is full."""
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert lines and not has_traceback(err), err
    return lines[-1]


def test_disk_full_between_runs_keeps_the_first_run(tmp_path, small_disk, clean):
    clean.datasets = small_disk
    p, markers, _ = start("between", tmp_path, clean, *PLAN, out=small_disk)
    wait_reached(p, markers)
    filler = fill(small_disk)
    count("faults injected: dataset disk full between runs")
    (markers / "release").touch()
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    line = one_error_line(err)
    assert line.startswith("zcrxprof: error: cannot write ") and "No space left on device" in line, err
    filler.unlink()
    ds = loaded_runs(small_disk / "ds")
    assert ds["runs"]["status"].tolist() == ["ok"]            # run 1 whole, run 2 absent
    assert ds.metadata["complete"] is False and ds.metadata["runs_done"] == 1


def test_disk_full_before_the_first_write_is_one_line(tmp_path, small_disk, clean):
    clean.datasets = small_disk
    filler = fill(small_disk)
    count("faults injected: dataset disk full at start")
    p = clean.run([sys.executable, "-m", "zcrxprof", "record", "--out", str(small_disk), "--name", "ds", *PLAN])
    assert p.returncode == 1, p.stderr
    line = one_error_line(p.stderr)
    assert line.startswith("zcrxprof: error: cannot ") and "No space left on device" in line, p.stderr
    assert not (small_disk / "ds").exists(), "a half-made dataset was left"
    filler.unlink()


def test_two_recordings_at_once_do_not_collide(tmp_path, clean):
    """Same datasets directory, both with namespaces and probes: different names, namespaces,
    addresses; both datasets complete and valid."""
    out = tmp_path / "datasets"
    argv = [sys.executable, "-m", "zcrxprof", "record", "--out", str(out), "--topology", "single,workers",
            "--repeat", "1", "--duration", "1", "--probes", "ringsched", *PACED]
    procs = [clean.popen(argv + ["--name", f"ds{i}"]) for i in range(2)]
    count("faults injected: two concurrent recordings")
    # while both run: two namespaces, each with its own veth pair and /30
    seen_ns, seen_addrs = set(), set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        ours = {n for n in lo.netns_names() if any(n.startswith(f"zcxp-{p.pid}-") for p in procs)}
        seen_ns |= ours
        for n in ours:
            seen_addrs |= set(_addrs(n))
        if len(seen_ns) == 2 and len(seen_addrs) == 2:
            break
        time.sleep(0.05)
    results = [p.communicate(timeout=180) for p in procs]
    for p, (o, e) in zip(procs, results):
        assert p.returncode == 0, e
    assert len(seen_ns) == 2 and len(seen_addrs) == 2, (seen_ns, seen_addrs)
    paths = [Path(o.strip()) for o, _ in results]
    assert sorted(x.name for x in paths) == ["ds0", "ds1"]
    for path in paths:
        ds = loaded_runs(path)
        assert ds.metadata["complete"] is True
        assert ds["runs"]["status"].tolist() == ["ok", "ok"], ds["runs"]["error"].tolist()
        # each dataset's probe rows count only its own load generators' threads
        assert len(ds["probes"]) > 0
    tids = [set(dataset.load(p)["threads"]["tid"]) for p in paths]
    assert not tids[0] & tids[1]
    probe_tids = [set(dataset.load(p)["probes"]["tid"]) for p in paths]
    assert not probe_tids[0] & tids[1] and not probe_tids[1] & tids[0]


def test_same_name_twice_at_once_one_wins_the_other_says_so(tmp_path, clean):
    out = tmp_path / "datasets"
    argv = [sys.executable, "-m", "zcrxprof", "record", "--out", str(out), "--name", "same", *PLAN]
    procs = [clean.popen(argv) for _ in range(2)]
    results = [p.communicate(timeout=180) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], results
    loser = next(e for p, (_, e) in zip(procs, results) if p.returncode == 2)
    assert "already holds a dataset" in one_error_line(loser)
    assert loaded_runs(out / "same")["runs"]["status"].tolist() == ["ok", "ok"]


def _addrs(ns: str) -> list[str]:
    out = subprocess.run(["ip", "-n", ns, "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    return [l.split()[3] for l in out.splitlines() if " lo " not in l]


def test_lab_spool_on_a_full_disk_is_one_error_and_keeps_earlier_runs(small_disk):
    # the writer the recording uses inside the lab guest (JSON spool, no pandas)
    from zcrxprof.collect.spool import SpoolWriter
    from zcrxprof.errors import ZcrxprofError

    spool = SpoolWriter(small_disk / "spool", {"schema_version": 1})
    spool.add_run({"runs": [{"run_id": 0, "status": "ok"}]})
    fill(small_disk)
    count("faults injected: lab spool disk full")
    with pytest.raises(ZcrxprofError) as exc:
        spool.add_run({"runs": [{"run_id": 1, "status": "ok", "pad": "x" * 100000}]})
    assert "No space left on device" in str(exc.value) and "\n" not in str(exc.value)
    assert [f.name for f in sorted((small_disk / "spool").iterdir())] == ["metadata.json", "run-0000.json"]
    assert spool.metadata["runs_done"] == 1
