"""Plain-text helpers shared by the commands that print tables: aligned columns, numbers with three
significant figures, lines wrapped at 80 columns."""
from __future__ import annotations

import math
import textwrap

WIDTH = 80


def number(x: float, unit: str = "") -> str:
    """Three significant figures without an exponent (``25.5``, ``1.83``, ``0.0715``, ``1308``);
    ``-`` for a missing value."""
    if x is None or not math.isfinite(float(x)):
        return "-"
    x = float(x)
    text = f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"
    return f"{text}{unit}"


def decimals(x: float) -> int:
    """Decimals that show ``x`` with three significant figures (none from 100 up)."""
    x = abs(float(x)) if x is not None and math.isfinite(float(x)) else 0.0
    return 2 if x == 0 else max(0, 2 - math.floor(math.log10(x)))


def estimate(value: float, lo: float, hi: float) -> tuple[str, str]:
    """A median and its 95 % interval (``lo-hi``, ``lo..hi`` when ``lo`` is negative) with the
    decimals the median needs; ``-`` for what is missing. ASCII only: mailing lists take plain text."""
    finite = [v is not None and math.isfinite(float(v)) for v in (value, lo, hi)]
    places = decimals(value if finite[0] else (lo if finite[1] else 0.0))
    text = f"{float(value):.{places}f}" if finite[0] else "-"
    if not (finite[1] and finite[2]):
        return text, "-"
    return text, f"{float(lo):.{places}f}{'..' if float(lo) < 0 else '-'}{float(hi):.{places}f}"


def table(header: list[str], rows: list[list[str]], indent: str = "") -> list[str]:
    """Left-aligned columns separated by two spaces, header first."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [(indent + fmt.format(*map(str, r))).rstrip() for r in [header, *rows]]


def wrap(text: str, indent: str = "", width: int = WIDTH, first: str = "") -> list[str]:
    """``text`` wrapped at ``width`` columns: the first line indented by ``first``, the others by
    ``indent``."""
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=indent,
                         break_on_hyphens=False, break_long_words=True) or [""]


def wrap_command(command: str, indent: str = "  ", width: int = WIDTH) -> list[str]:
    """A shell command broken between arguments with `` \\`` continuations (an option stays with
    its value; continuation lines indented two more), every line within ``width`` unless one
    argument is longer."""
    words = command.split()
    units: list[str] = []
    for word in words:
        if units and units[-1].startswith("-") and " " not in units[-1] and not word.startswith("-"):
            units[-1] += " " + word
        else:
            units.append(word)
    lines: list[str] = []
    for unit in units:
        lead = indent if not lines else indent + "  "
        if lines and len(lines[-1]) + 1 + len(unit) + 2 <= width:
            lines[-1] += " " + unit
        else:
            lines.append(lead + unit)
    return [line + (" \\" if i < len(lines) - 1 else "") for i, line in enumerate(lines)] or [indent]
