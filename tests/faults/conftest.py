"""Fixtures of the fault suite: a leftover check around every test, and the suite's counts.

``clean`` snapshots the machine before the test (NIC settings too) and asserts afterwards that
nothing of the tagged command is left (tests/leftovers.py, the check every test gets, here with the
test's own tag and the dataset directory); whatever is found is reported, then removed so the next
test starts clean. The counts (tally.py) are printed at the end of the session — first the totals
(faults injected, bad inputs tried, leftovers found), then each count — and written to
``.build/faults-counts.json`` (the same keys, totals included). Tracebacks are not counted: one
fails its test.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import leftovers as lo  # noqa: E402  (tests/leftovers.py)
from paced import PACED  # noqa: E402  (tests/paced.py)
from tally import COUNTS, totals  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


class Clean:
    """A test's tag (give its commands ``env``) and the snapshot taken before it."""

    def __init__(self) -> None:
        self.tag = lo.new_tag()
        self.env = lo.tagged_env(self.tag)
        self.before = lo.Snapshot.take(nic=True)
        self.datasets: Path | None = None
        self.pids: set[int] = set()

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        """Start a command under test (tagged, its pid remembered for the check)."""
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=self.env, **kw)
        self.pids.add(p.pid)
        return p

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a command under test to its end."""
        p = self.popen(argv)
        out, err = p.communicate(timeout=timeout)
        return subprocess.CompletedProcess(argv, p.returncode, out, err)

    def check(self) -> list[lo.Leftover]:
        """Leftovers now (also counted for the session summary)."""
        found = lo.leftovers(self.before, self.tag, self.datasets, self.pids)
        COUNTS["leftover checks"] += 1
        COUNTS["leftovers found"] += len(found)
        return found


@pytest.fixture
def clean():
    """Yields a Clean; after the test, asserts that nothing the test's commands made is left."""
    c = Clean()
    yield c
    found = c.check()
    if found:
        lo.remove(found, c.tag)
    assert not found, "left behind: " + "; ".join(map(str, found))


def pytest_terminal_summary(terminalreporter) -> None:
    """The suite's counts: totals, then each count; also written to .build/faults-counts.json."""
    if not COUNTS:
        return
    total = totals(COUNTS)
    terminalreporter.write_sep("-", "fault suite counts")
    terminalreporter.write_line(", ".join(f"{k}: {n}" for k, n in total.items())
                                + f" (in {COUNTS.get('leftover checks', 0)} leftover checks)")
    for k in sorted(COUNTS):
        if k not in total:
            terminalreporter.write_line(f"  {k}: {COUNTS[k]}")
    out = ROOT / ".build" / "faults-counts.json"
    try:
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({**total, **dict(sorted(COUNTS.items()))}, indent=1) + "\n")
    except OSError as exc:
        terminalreporter.write_line(f"cannot write {out}: {exc.strerror}")


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A real one-run dataset recorded for this session (copy backend, loopback, no probes)."""
    out = tmp_path_factory.mktemp("small")
    with lo.record_starts_held():
        p = subprocess.run([sys.executable, "-m", "zcrxprof", "record", "--out", str(out), "--name", "small",
                            "--topology", "single", "--repeat", "1", "--duration", "1", "--probes", "none",
                            "--sender", "local", "--quiet", *PACED], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return out / "small"
