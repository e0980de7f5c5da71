"""What the command writes: data on stdout, messages and progress on stderr."""

from __future__ import annotations

import datetime
import json
import sys
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, TextIO

PROG = "tenant-dna"


def say(message: str) -> None:
    """A message for the person at the terminal: stderr, never stdout."""
    print(f"{PROG}: {message}", file=sys.stderr)


def emit_json(data: Any) -> None:
    """One JSON document on stdout (ASCII, so any terminal encoding can hold it)."""
    sys.stdout.write(json.dumps(data, indent=2, allow_nan=False) + "\n")


def emit_table(
    headers: Sequence[str] | None,
    rows: Iterable[Sequence[str]],
    *,
    right: Sequence[int] = (),
) -> None:
    """Rows as aligned columns on stdout, under ``headers`` unless ``None``.

    Columns whose index is in ``right`` are right-aligned (numbers).
    """
    table = [] if headers is None else [list(headers)]
    table += [list(row) for row in rows]
    if not table:
        return
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    for row in table:
        cells = [
            cell.rjust(width) if column in right else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        sys.stdout.write("  ".join(cells).rstrip() + "\n")


def when(timestamp: float) -> str:
    """A ``last_updated`` as UTC, to the second: ``2024-05-01 09:30:00Z``."""
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return repr(timestamp)  # valid (finite) but beyond what datetime holds
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


class Progress:
    """A progress line on stderr, only when stderr is a terminal.

    Redrawn at most ten times a second; :meth:`close` (or leaving the ``with``
    block) wipes it, so the messages that follow start on a clean line. With
    ``total=None`` it counts without a bar.
    """

    _INTERVAL = 0.1
    _BAR = 30

    def __init__(
        self, label: str, total: int | None, stream: TextIO | None = None
    ) -> None:
        stream = sys.stderr if stream is None else stream
        self._stream = stream if stream.isatty() else None
        self._label = label
        self._total = total
        self._done = 0
        self._drawn_at = 0.0
        self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def advance(self, steps: int = 1) -> None:
        """Count ``steps`` more done; redraw if the last drawing is old enough."""
        self._done += steps
        if self._stream is None:
            return
        moment = time.monotonic()
        if moment - self._drawn_at >= self._INTERVAL:
            self._drawn_at = moment
            self._draw()

    def _draw(self) -> None:
        assert self._stream is not None
        if self._total:
            share = min(self._done / self._total, 1.0)
            filled = round(share * self._BAR)
            bar = "#" * filled + "-" * (self._BAR - filled)
            line = f"{self._label} [{bar}] {self._done:,}/{self._total:,} {share:4.0%}"
        else:
            line = f"{self._label} {self._done:,}"
        self._width = max(self._width, len(line))
        self._stream.write("\r" + line.ljust(self._width))
        self._stream.flush()

    def close(self) -> None:
        """Wipe the progress line (if one was drawn)."""
        if self._stream is not None and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0
