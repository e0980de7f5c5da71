"""Value checks shared by session metrics and serialised profiles.

Each check returns the value in its canonical type or raises :class:`Rejected`
with what was expected; callers turn that into the public exception that names
the key. Keeping one set of checks is what makes ``update_from_session``,
``from_dict``, ``check_profile`` and the insights agree on every edge.

Types are checked before values, and values are compared only once they are
plain ``str``, ``int`` or ``float``: a subclass that overrides ``__eq__``,
``__len__`` or ``__str__`` is judged (and stored) by the data it holds, never by
what its methods claim.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from itertools import islice
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

_DESCRIBED_LENGTH: Final = 60


class Rejected(Exception):
    """Internal: a value failed a check; ``args[0]`` says what was expected.

    When the value itself raised (a ``__float__``, an ``items()``), that
    exception is the ``__cause__``, for the caller to chain.
    """


class _ShortRepr(reprlib.Repr):
    # reprlib sorts dicts and sets before cutting them, which costs O(n log n)
    # on a huge one; the first few entries in their own order say as much.
    def repr_dict(self, x: Any, level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pairs = [
            f"{self.repr1(key, level - 1)}: {self.repr1(x[key], level - 1)}"
            for key in islice(x, self.maxdict)
        ]
        more = ", ..." if len(x) > self.maxdict else ""
        return "{" + ", ".join(pairs) + more + "}"

    def repr_set(self, x: Any, level: int) -> str:
        return self._cut(x, level, "{", "}", self.maxset) if x else "set()"

    def repr_frozenset(self, x: Any, level: int) -> str:
        if not x:
            return "frozenset()"
        return self._cut(x, level, "frozenset({", "})", self.maxfrozenset)

    def _cut(self, x: Any, level: int, left: str, right: str, limit: int) -> str:
        if level <= 0:
            return f"{left}...{right}"
        shown = [self.repr1(item, level - 1) for item in islice(x, limit)]
        if len(x) > limit:
            shown.append("...")
        return left + ", ".join(shown) + right


_repr = _ShortRepr()
_repr.maxstring = _DESCRIBED_LENGTH
_repr.maxother = _DESCRIBED_LENGTH
_repr.maxlong = _DESCRIBED_LENGTH


def describe(value: Any) -> str:
    """A short repr for error messages: enough to recognise, never a wall of text.

    Bounded whatever the value: containers are cut after a few items before
    anything is formatted, a ``str`` subclass shows its plain data (not what
    its ``__repr__`` says), and a ``repr`` that raises gives a placeholder.
    Never raises an ``Exception``.
    """
    try:
        plain = plain_str(value)
        if plain is not None:
            text = repr(plain[:_DESCRIBED_LENGTH])
            if type(value) is not str:
                text = f"{describe_type(value)}({text})"
        else:
            text = str.__str__(_repr.repr(value))
    except Exception:
        text = f"<{describe_type(value)} that cannot be shown>"
    return text if len(text) <= _DESCRIBED_LENGTH else text[:57] + "..."


def describe_error(error: BaseException) -> str:
    """``TypeName: message`` of an exception, bounded like :func:`describe`."""
    try:
        message = plain_str(str(error)) or ""
    except Exception:
        message = ""
    kind = describe_type(error)
    if not message:
        return kind
    text = f"{kind}: {message[:_DESCRIBED_LENGTH]}"
    return text if len(text) <= _DESCRIBED_LENGTH else text[:57] + "..."


def describe_type(value: Any) -> str:
    """The name of ``value``'s type, or a placeholder if even that fails."""
    try:
        return str.__str__(type(value).__name__)
    except Exception:
        return "<unnamed type>"


def plain_str(value: Any) -> str | None:
    """The plain ``str`` data of a ``str`` (or subclass), else ``None``.

    ``str.__str__`` copies a subclass's characters into a plain ``str``
    without calling any method the subclass overrides.
    """
    kind = type(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    if issubclass(kind, str):
        return str.__str__(value)
    return None


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number, not ``bool``: ``numbers.Real``,
    which includes ``numpy`` floating and integer scalars.

    The one numeric test for metrics, alpha, profiles and insights.
    """
    kind = type(value)
    # The exact-type test first: it is the common case and far cheaper than
    # an ABC isinstance check.
    return (
        kind is float
        or kind is int
        or (isinstance(value, numbers.Real) and not isinstance(value, bool))
    )


def _float(value: Any, expected: str) -> float:
    if not is_real(value):
        raise Rejected(expected)
    try:
        return float(value)
    except Exception as error:  # a hostile __float__
        raise Rejected(expected) from error


def unit_real(value: Any) -> float:
    """A real number (not ``bool``), finite, in ``[0, 1]``, as a ``float``."""
    number = _float(value, "a real number in [0, 1]")
    # NaN fails both comparisons, so it is rejected here too.
    if not 0.0 <= number <= 1.0:
        raise Rejected("a real number in [0, 1]")
    return number


def finite_real(value: Any) -> float:
    """A finite real number (not ``bool``), as a ``float``."""
    number = _float(value, "a finite real number")
    if not math.isfinite(number):
        raise Rejected("a finite real number")
    return number


def _integral(value: Any, expected: str) -> int:
    if type(value) is int:
        number: int = value
        return number
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        try:
            return int(value)
        except Exception as error:  # a hostile __int__
            raise Rejected(expected) from error
    raise Rejected(expected)


def bounded_int(value: Any, low: int, high: int) -> int:
    """An integer (``numbers.Integral``, not ``bool``) in ``[low, high]``."""
    expected = f"an int in [{low}, {high}]"
    number = _integral(value, expected)
    if not low <= number <= high:
        raise Rejected(expected)
    return number


def count(value: Any) -> int:
    """An integer (``numbers.Integral``, not ``bool``) ``>= 0``, however large."""
    number = _integral(value, "an int >= 0")
    if number < 0:
        raise Rejected("an int >= 0")
    return number


def name(value: Any) -> str:
    """A non-empty ``str`` of at most 200 characters (tool names, intents).

    Returns the plain ``str``; a subclass is measured by its data.
    """
    plain = value if type(value) is str else plain_str(value)
    if plain is None or not 0 < len(plain) <= MAX_NAME_LENGTH:
        raise Rejected(f"a non-empty str of at most {MAX_NAME_LENGTH} characters")
    return plain


def tier(value: Any) -> str:
    """A model tier, ``"orchestrator"`` or ``"worker"``, as a plain ``str``."""
    plain = value if type(value) is str else plain_str(value)
    if plain is None or plain not in TIERS:
        raise Rejected('"orchestrator" or "worker"')
    return plain


def alpha(value: Any) -> float:
    """A real number (not ``bool``), finite, clamped to ``[0.01, 1.0]``."""
    expected = "a real number, finite (clamped to [0.01, 1.0])"
    if type(value) is int:  # finite however large: clamped before a float
        value = min(1, max(0, value))
    number = _float(value, expected)
    if not math.isfinite(number):
        raise Rejected(expected)
    return min(MAX_ALPHA, max(MIN_ALPHA, number))


def bounded_items(value: Any, limit: int, expected: str) -> list[Any]:
    """The items of a mapping of at most ``limit`` entries, as a list.

    Reads at most ``limit + 1`` items, whatever ``len`` claims, so a mapping
    that lies about its size cannot make a check run forever. Anything the
    mapping raises becomes :class:`Rejected`, chained. The caller unpacks the
    pairs (a mapping whose ``items()`` yields something else raises there).
    """
    if type(value) is dict:
        # A plain dict cannot lie about its size: the common case, copied at once.
        if len(value) > limit:
            raise Rejected(expected)
        return list(value.items())
    try:
        if len(value) > limit:
            raise Rejected(expected)
        items = list(islice(value.items(), limit + 1))
    except Rejected:
        raise
    except Exception as error:
        raise Rejected(expected) from error
    if len(items) > limit:
        raise Rejected(expected)
    return items
