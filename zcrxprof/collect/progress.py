"""Progress on stderr: run i of n, topology, current Gbit/s.

On a terminal one line is redrawn in place; otherwise (CI, a pipe) one line per finished run.
"""
from __future__ import annotations

import sys
from typing import TextIO

BAR_WIDTH = 20


class Progress:
    """Progress of a recording of ``total`` runs."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        """Report on ``stream`` (default stderr)."""
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.index = 0
        self.what = ""
        self._drawn = False

    def _line(self, gbit_s: float | None, status: str = "") -> str:
        done = int(BAR_WIDTH * (self.index - (0 if status else 1)) / max(self.total, 1))
        bar = "#" * done + "." * (BAR_WIDTH - done)
        rate = f"{gbit_s:7.2f} Gbit/s" if gbit_s is not None else "   —  Gbit/s"
        tail = f"  {status}" if status else ""
        return f"record [{bar}] run {self.index}/{self.total}  {self.what:<34} {rate}{tail}"

    def start_run(self, index: int, what: str) -> None:
        """Run ``index`` (1-based) of ``what`` (topology and parameters) begins."""
        self.index, self.what = index, what
        if self.tty:
            self._draw(self._line(None))

    def update(self, gbit_s: float) -> None:
        """The current receive rate of the run in progress."""
        if self.tty:
            self._draw(self._line(gbit_s))

    def end_run(self, status: str, gbit_s: float | None) -> None:
        """The run ended (``status`` ok|failed|interrupted) at ``gbit_s`` overall."""
        line = self._line(gbit_s, status)
        if self.tty:
            self._draw(line)
            self.stream.write("\n")
            self._drawn = False
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """One line of information, not overwritten by the bar."""
        if self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False
        self.stream.write(f"record: {text}\n")
        self.stream.flush()

    def _draw(self, line: str) -> None:
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Finish the current line."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
