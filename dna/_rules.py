"""Value checks shared by session metrics and serialised profiles.

Each check returns the value in its canonical type or raises :class:`Rejected`
with what was expected; callers turn that into the public exception that names
the key. Keeping one set of checks is what makes ``update_from_session``,
``from_dict`` and the insights agree on every edge.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Final

TIERS: Final = ("orchestrator", "worker")
MAX_TOKENS: Final = 10**12
MAX_NAME_LENGTH: Final = 200
MAX_SESSION_TOOLS: Final = 1000
MAX_TOOLS: Final = 50
MAX_PEAK_HOURS: Final = 12
MAX_INTENTS: Final = 20
MIN_ALPHA: Final = 0.01
MAX_ALPHA: Final = 1.0


class Rejected(Exception):
    """Internal: a value failed a check; ``args[0]`` says what was expected."""


def describe(value: Any) -> str:
    """A short repr for error messages: enough to recognise, never a wall of text."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def unit_real(value: Any) -> float:
    """A real number (not ``bool``), finite, in ``[0, 1]``."""
    kind = type(value)
    # The exact-type test first: it is the common case and far cheaper than
    # an ABC isinstance check.
    if not (
        kind is float
        or kind is int
        or (isinstance(value, numbers.Real) and not isinstance(value, bool))
    ):
        raise Rejected("a real number in [0, 1]")
    number = float(value)
    # NaN fails both comparisons, so it is rejected here too.
    if not 0.0 <= number <= 1.0:
        raise Rejected("a real number in [0, 1]")
    return number


def finite_real(value: Any) -> float:
    """A finite real number (not ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise Rejected("a finite real number")
    number = float(value)
    if not math.isfinite(number):
        raise Rejected("a finite real number")
    return number


def bounded_int(value: Any, low: int, high: int) -> int:
    """An integer (not ``bool``) in ``[low, high]``."""
    kind = type(value)
    if kind is int:
        number: int = value
    elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
        number = int(value)
    else:
        raise Rejected(f"an int in [{low}, {high}]")
    if not low <= number <= high:
        raise Rejected(f"an int in [{low}, {high}]")
    return number


def name(value: Any) -> str:
    """A non-empty ``str`` of at most 200 characters (tool names, intents)."""
    if not isinstance(value, str):
        raise Rejected(f"a non-empty str of at most {MAX_NAME_LENGTH} characters")
    if not 0 < len(value) <= MAX_NAME_LENGTH:
        raise Rejected(f"a non-empty str of at most {MAX_NAME_LENGTH} characters")
    return str(value)


def tier(value: Any) -> str:
    """One of the model tiers, ``"orchestrator"`` or ``"worker"``."""
    if value not in TIERS or not isinstance(value, str):
        raise Rejected('"orchestrator" or "worker"')
    return str(value)


def alpha(value: Any) -> float:
    """An ``int`` or ``float`` (not ``bool``), finite, clamped to ``[0.01, 1.0]``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected("an int or float, finite (clamped to [0.01, 1.0])")
    number = float(value)
    if not math.isfinite(number):
        raise Rejected("an int or float, finite (clamped to [0.01, 1.0])")
    return min(MAX_ALPHA, max(MIN_ALPHA, number))
