"""The clock that stamps ``last_updated``, replaceable for tests."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]

_clock: Clock = time.time


def now() -> float:
    """Return the current time from the installed clock (Unix seconds)."""
    return _clock()


def set_clock(clock: Clock) -> Clock:
    """Install ``clock`` as the source of ``last_updated`` and return the previous one.

    Meant for tests and simulations; the default is :func:`time.time`::

        previous = set_clock(lambda: 1_700_000_000.0)
        try:
            ...
        finally:
            set_clock(previous)
    """
    global _clock  # noqa: PLW0603 - one process-wide clock, by design
    previous = _clock
    _clock = clock
    return previous
