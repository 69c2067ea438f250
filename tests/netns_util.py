"""Helpers for tests that check network namespaces (importable from any test file)."""
from __future__ import annotations

import subprocess


def netns_names() -> set[str]:
    """Names of the network namespaces that exist now."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.split()}
