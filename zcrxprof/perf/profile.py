"""`perf record -g` on chosen threads, converted with `perf data convert --to-json` into a tidy frame.

One row per (thread, distinct call stack): ``thread``, ``tid``, ``stack`` (folded, root→leaf,
`;`-separated, kernel frames suffixed `_[k]`, consecutive unresolvable frames merged into one
`[unknown]`), the leaf frame's ``symbol``, ``dso`` and ``space``
(`kernel` | `user`), ``samples`` and ``share`` (of all samples in the file).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from zcrxprof.errors import ZcrxprofError
from zcrxprof.perf.process import start_perf, stop_perf
from zcrxprof.perf.tool import Perf, hardware_pmu

COLUMNS = ["thread", "tid", "stack", "symbol", "dso", "space", "samples", "share"]
STOP_TIMEOUT_S = 120.0  # perf record drains its buffers and writes its header after SIGINT; in the
                        # TCG lab guest `perf record -- sleep 1` took 58 s (measured)
UNKNOWN = "[unknown]"
# x86_64 and arm64 map the kernel into the top of the canonical address space.
KERNEL_START = 0xFFFF_8000_0000_0000


def _frame(entry: dict) -> tuple[str, str, str]:
    """(symbol, dso file name, space) of one callchain entry of perf's JSON."""
    ip = int(entry.get("ip", "0"), 16)
    space = "kernel" if ip >= KERNEL_START else "user"
    dso = entry.get("dso", "")
    return entry.get("symbol") or UNKNOWN, dso.rsplit("/", 1)[-1] if dso else "", space


def profile_from_json(doc: dict) -> pd.DataFrame:
    """Tidy profile frame from a parsed `perf data convert --to-json` document."""
    counts: dict[tuple, int] = {}
    for sample in doc.get("samples", []):
        chain = [_frame(e) for e in sample.get("callchain", [])] or [(UNKNOWN, "", "user")]
        names = [sym + "_[k]" if space == "kernel" else sym for sym, _, space in reversed(chain)]
        # a frame-pointer walk through code without frame pointers yields runs of unresolvable
        # addresses: keep one `[unknown]` per run
        names = [n for i, n in enumerate(names) if not (n == UNKNOWN and i and names[i - 1] == UNKNOWN)]
        stack = ";".join(names)
        key = (sample.get("comm", ""), int(sample.get("tid", -1)), stack, *chain[0])
        counts[key] = counts.get(key, 0) + 1
    rows = [(*key, n) for key, n in counts.items()]
    frame = pd.DataFrame(rows, columns=COLUMNS[:-1])
    total = frame["samples"].sum()
    frame["share"] = frame["samples"] / total if total else 0.0
    return frame.sort_values(["samples", "stack"], ascending=[False, True], kind="stable").reset_index(drop=True)


def parse_profile_json(path: Path) -> pd.DataFrame:
    """Tidy profile frame from a `perf data convert --to-json` file."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ZcrxprofError(f"cannot read perf JSON {path}: {exc}") from None
    if not isinstance(doc, dict) or "samples" not in doc:
        raise ZcrxprofError(f"{path} is not `perf data convert --to-json` output (no samples)")
    return profile_from_json(doc)


def top_symbols(profile: pd.DataFrame, space: str | None = None, n: int = 10, inclusive: bool = False) -> pd.DataFrame:
    """The ``n`` symbols with most samples (optionally only `kernel` or `user` ones).

    By default a sample counts for its leaf symbol only (self time, with dso). With ``inclusive``
    it counts once for every distinct function on its stack (total time; no dso column)."""
    if not inclusive:
        frame = profile if space is None else profile[profile["space"] == space]
        out = frame.groupby(["symbol", "dso", "space"], as_index=False)[["samples", "share"]].sum()
        return out.sort_values("samples", ascending=False, kind="stable").head(n).reset_index(drop=True)
    totals: dict[tuple[str, str], list[float]] = {}
    for stack, samples, share in zip(profile["stack"], profile["samples"], profile["share"]):
        seen = set()
        for frame in stack.split(";"):
            key = (frame[:-4], "kernel") if frame.endswith("_[k]") else (frame, "user")
            if key in seen or (space is not None and key[1] != space):
                continue
            seen.add(key)
            acc = totals.setdefault(key, [0, 0.0])
            acc[0] += samples
            acc[1] += share
    out = pd.DataFrame([(sym, sp, int(v[0]), v[1]) for (sym, sp), v in totals.items()],
                       columns=["symbol", "space", "samples", "share"])
    return out.sort_values(["samples", "symbol"], ascending=[False, True], kind="stable").head(n).reset_index(drop=True)


def sampling_event(perf: Perf) -> str:
    """`cycles` where a hardware PMU exists, else `cpu-clock` (a software timer)."""
    return "cycles" if hardware_pmu(perf.path) else "cpu-clock"


class ProfileSession:
    """`perf record -g` on given threads from start() until stop(), then converted to a frame."""

    def __init__(self, perf: Perf, tids: list[int], out_dir: Path, freq_hz: int = 499, event: str | None = None) -> None:
        """Prepare (not start) sampling ``tids`` at ``freq_hz``; perf.data and its JSON go to a scratch
        directory in tmpfs (/dev/shm) when there is one, else under ``out_dir``, removed by stop()."""
        if not tids:
            raise ZcrxprofError("perf record: no threads to attach to")
        if not perf.convert_json:
            raise ZcrxprofError(f"perf {perf.version_text} has no `perf data convert --to-json` (needs perf >= 5.17)")
        self.perf, self.out_dir = perf, Path(out_dir)
        self.event = event or sampling_event(perf)
        self.dir: Path | None = None
        self.freq_hz, self.tids = freq_hz, tids
        self.proc: subprocess.Popen | None = None
        self.started = float("nan")

    def start(self) -> None:
        """Start sampling."""
        # perf writes straight from its mmap'd ring buffers; on the lab guest's 9p-backed /tmp that
        # fails with EFAULT ("failed to write perf data, error: Bad address", measured), tmpfs works
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else self.out_dir
        base.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="zcrxprof-perf-", dir=base))
        self.data, self.json = self.dir / "perf.data", self.dir / "perf.json"
        # --no-buildid: no build-id pass over the samples when stopping (slow in an emulated guest);
        # the profile is symbolised right away on the same machine
        self.argv = [self.perf.path, "record", "-g", "-e", self.event, "-F", str(self.freq_hz), "--no-buildid",
                     "-t", ",".join(str(t) for t in self.tids), "-o", str(self.data), "-q"]
        self.proc = start_perf(self.argv)
        self.started = time.monotonic()

    def stop(self) -> pd.DataFrame:
        """Stop sampling, convert perf.data to JSON with perf itself, parse it, remove both files."""
        try:
            err = stop_perf(self.proc, "perf record", timeout=STOP_TIMEOUT_S)
            self.proc = None
            if self.dir is None or not self.data.exists() or err.endswith("killed"):
                raise ZcrxprofError(f"perf record wrote no data{': ' + err if err else ''}")
            conv = subprocess.run([self.perf.path, "data", "convert", "-i", str(self.data), "--to-json", str(self.json)],
                                  stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300)
            if conv.returncode != 0 or not self.json.exists() or not self.json.stat().st_size:
                why = [ln.strip() for ln in conv.stderr.splitlines() if ln.strip() and not ln.startswith("[ perf")]
                raise ZcrxprofError(f"perf data convert --to-json failed: {'; '.join(why[:2]) or 'no output'}")
            return parse_profile_json(self.json)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def abort(self) -> None:
        """Stop perf record without converting its data (interrupted recording)."""
        try:
            stop_perf(self.proc, "perf record")
        finally:
            self.proc = None
            self._cleanup()
