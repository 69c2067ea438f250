"""Stopping the perf child processes: SIGINT (perf then writes its last output), SIGKILL if it hangs."""
from __future__ import annotations

import os
import signal
import subprocess


def stop_perf(proc: subprocess.Popen | None, what: str, timeout: float = 10.0) -> str:
    """SIGINT ``proc`` (a perf child), wait, kill if it hangs; return its first error line."""
    if proc is None:
        return ""
    try:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_perf(proc)
        return f"{what} did not stop on SIGINT within {timeout:.0f} s; killed"
    except BaseException:  # e.g. a second Ctrl-C: never leave perf behind
        kill_perf(proc)
        raise
    lines = [ln.strip() for ln in (err or "").splitlines() if ln.strip()]
    if "Error:" in lines:  # perf's reason follows its "Error:" line
        lines = lines[lines.index("Error:") + 1:]
    lines = [ln for ln in lines if not ln.startswith(("[ perf", "/bin/dmesg"))]
    return lines[0] if lines else ""


def kill_perf(proc: subprocess.Popen) -> None:
    """SIGKILL perf's process group and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    if proc.stderr:
        proc.stderr.close()
