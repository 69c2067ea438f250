"""The fault suite's counts (faults injected, bad inputs tried, tracebacks, leftovers found)."""
from __future__ import annotations

from collections import Counter

COUNTS: Counter = Counter()


def count(what: str, n: int = 1) -> None:
    """Add ``n`` to the count named ``what``."""
    COUNTS[what] += n


def has_traceback(text: str) -> bool:
    """True when ``text`` holds a Python traceback."""
    return "Traceback (most recent call last)" in text
