"""The fault suite's counts: faults injected, bad inputs tried, leftovers found (and checks made).

Counts are named ``"<total>: <what>"``; :func:`totals` adds them up per total. Tracebacks are not
counted: a traceback fails the test that met it (:func:`has_traceback`, or an exception raised
in-process).
"""
from __future__ import annotations

from collections import Counter

COUNTS: Counter = Counter()


def count(what: str, n: int = 1) -> None:
    """Add ``n`` to the count named ``what``."""
    COUNTS[what] += n


def has_traceback(text: str) -> bool:
    """True when ``text`` holds a Python traceback."""
    return "Traceback (most recent call last)" in text


TOTALS = ("faults injected", "bad inputs tried", "leftovers found")


def totals(counts: Counter) -> dict[str, int]:
    """Each of TOTALS: the count of that name plus every ``"<name>: …"`` count (0 when none ran)."""
    return {t: sum(n for k, n in counts.items() if k == t or k.startswith(t + ": ")) for t in TOTALS}
