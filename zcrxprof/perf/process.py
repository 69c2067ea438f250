"""Starting and stopping the perf child processes (``zcrxprof.children``'s policy): perf runs in
its own process group and dies with zcrxprof; it is stopped with SIGINT (it then writes its last
output), and its group killed if it hangs."""
from __future__ import annotations

import signal
import subprocess

from zcrxprof import children


def start_perf(argv: list[str]) -> subprocess.Popen:
    """Start perf (stderr piped, text) in its own process group; the kernel kills it if we die."""
    return children.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, die_with_parent=True)


def stop_perf(proc: subprocess.Popen | None, what: str, timeout: float = 10.0) -> str:
    """SIGINT ``proc`` (a perf child), wait, kill its group if it hangs; return its first error line."""
    if proc is None:
        return ""
    try:
        _, err, killed = children.stop(proc, timeout, signal.SIGINT)
    finally:
        if proc.stderr:
            proc.stderr.close()
    if killed:
        return f"{what} did not stop on SIGINT within {timeout:.0f} s; killed"
    lines = [ln.strip() for ln in (err or "").splitlines() if ln.strip()]
    if "Error:" in lines:  # perf's reason follows its "Error:" line
        lines = lines[lines.index("Error:") + 1:]
    lines = [ln for ln in lines if not ln.startswith(("[ perf", "/bin/dmesg"))]
    return lines[0] if lines else ""
