"""Run `zcrxprof ARGS…` with a hook that stops at one phase of `record` until the test acts.

    python tests/faults/inject.py PHASE MARKER_DIR -- record --out … …

At PHASE the hook writes ``MARKER_DIR/reached`` (this pid and the phase) and waits until a
SIGINT/SIGTERM has been delivered (the test sent one; it raises from the wait) or
``MARKER_DIR/release`` exists (the test sent a signal where `record` holds signals, or did something
else, e.g. killed the load generator or filled the disk), at most 60 s. So the test's fault lands
exactly in the phase, not after a guessed sleep. Phases:

- ``setup``: the veth pair exists and its host end is up, the sender namespace is half configured
- ``attach``: the first probe point of the first tool is attached, the rest are not
- ``midrun``: the second run's first interval sample was taken (its load generators are running)
- ``between``: the first run is on disk, the second has not started
- ``writing``: inside the second run's table writes, one table staged (SIGINT/SIGTERM are held there)
- ``probefail``: no waiting; the second BPF tracepoint attach (classic or raw) fails as BCC fails (an Exception)
- ``preflight`` (``record --peer``): the first peer's preflight is done (every control connection is
  up), the next peer's is not
- ``deploy`` (``record --peer``): the load generator is copied to the first peer (every peer's
  temporary directory exists), not yet to the next

Everything else is the real `zcrxprof` (``zcrxprof.cli.main``).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

WAIT_S = 60.0


def reach(marker_dir: Path, phase: str) -> None:
    """Tell the test the phase is reached, then wait for its action (see the module docstring)."""
    tmp = marker_dir / ".reached.tmp"
    tmp.write_text(f"{os.getpid()} {phase}\n")
    os.replace(tmp, marker_dir / "reached")
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if (marker_dir / "release").exists():
            return
        time.sleep(0.01)    # an unblocked signal raises from here


def install(phase: str, marker_dir: Path) -> None:
    """Wrap the function where ``phase`` happens."""
    if phase == "setup":
        from zcrxprof import netns
        real_ip = netns._ip

        def _ip(*args, **kw):
            res = real_ip(*args, **kw)
            if args[:2] == ("link", "set") and args[-1] == "up":
                reach(marker_dir, phase)
            return res
        netns._ip = _ip
    elif phase == "attach":
        from zcrxprof.probes import ladder
        real_tp = ladder.attach_tracepoint
        calls = []

        def attach_tracepoint(*args, **kw):
            res = real_tp(*args, **kw)
            calls.append(res)
            if len(calls) == 1:
                reach(marker_dir, phase)
            return res
        ladder.attach_tracepoint = attach_tracepoint
    elif phase == "midrun":
        from zcrxprof.collect import runner
        real_sample = runner.RunRecorder._sample

        def _sample(self, t, pids):
            real_sample(self, t, pids)
            if self.spec.run_id == 1 and t > 0 and pids:
                reach(marker_dir, phase)
        runner.RunRecorder._sample = _sample
    elif phase == "between":
        from zcrxprof.collect import progress
        real_end = progress.Progress.end_run

        def end_run(self, status, gbit_s):
            real_end(self, status, gbit_s)
            if self.index == 1:
                reach(marker_dir, phase)
        progress.Progress.end_run = end_run
    elif phase == "writing":
        from zcrxprof import dataset
        real_add, real_stage = dataset.DatasetWriter.add_run, dataset._staged_write
        state = {"adds": 0, "reached": False}

        def add_run(self, tables):
            state["adds"] += 1
            return real_add(self, tables)

        def staged_write(path, write):
            tmp = real_stage(path, write)
            if state["adds"] == 2 and not state["reached"]:
                state["reached"] = True     # one table of run 2 written, the others not yet
                reach(marker_dir, phase)
            return tmp
        dataset.DatasetWriter.add_run = add_run
        dataset._staged_write = staged_write
    elif phase == "probefail":
        from zcrxprof.probes import tool
        real_attach = tool.ProbeTool.attach
        count = [0]

        def attach(self):
            from bcc import BPF
            real = {name: getattr(BPF, name) for name in ("attach_tracepoint", "attach_raw_tracepoint")}

            def failing(name):
                def attach_one(bpf, *a, **kw):
                    count[0] += 1
                    if count[0] == 2:
                        raise Exception("Failed to attach BPF program to tracepoint (injected fault)")
                    return real[name](bpf, *a, **kw)
                return attach_one
            for name in real:
                setattr(BPF, name, failing(name))
            try:
                return real_attach(self)
            finally:
                for name, fn in real.items():
                    setattr(BPF, name, fn)
        tool.ProbeTool.attach = attach
    elif phase in ("preflight", "deploy"):
        from zcrxprof.collect import peers
        real_step = getattr(peers.Peer, phase)

        def step(self, *args, **kw):
            res = real_step(self, *args, **kw)
            if not (marker_dir / "reached").exists():
                reach(marker_dir, phase)
            return res
        setattr(peers.Peer, phase, step)
    else:
        raise SystemExit(f"inject.py: unknown phase {phase}")


def main(argv: list[str]) -> int:
    """``PHASE MARKER_DIR -- ARGS…``: install the hook, run zcrxprof."""
    if len(argv) < 3 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    phase, marker_dir = argv[0], Path(argv[1])
    install(phase, marker_dir)
    from zcrxprof.cli import main as zcrxprof_main
    return zcrxprof_main(argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
