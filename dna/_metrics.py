"""Session metrics, validated once into an immutable value."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, NamedTuple, NoReturn, final

from dna import _rules
from dna._errors import InvalidSessionMetrics

KEYS = (
    "task_complexity",
    "model_tier",
    "tokens_used",
    "tools_used",
    "hour_utc",
    "risk_score",
    "intent",
)
"""The metrics the profile learns from; any other key is ignored."""

# Only parse_session_metrics holds it, so a SessionMetrics is always a checked one.
_CHECKED: Final = object()
_TOOLS_EXPECTED: Final = (
    f"a mapping of at most {_rules.MAX_SESSION_TOOLS} tool names to call counts"
)


class _Fields(NamedTuple):
    task_complexity: float | None
    model_tier: str | None
    tokens_used: int | None
    tools_used: Mapping[str, int] | None
    tools_total: int
    hour_utc: int | None
    risk_score: float | None
    intent: str | None


@final
class SessionMetrics(_Fields):
    """One session's metrics, every present value already checked.

    Only :func:`parse_session_metrics` builds one (calling the class raises
    ``TypeError``), so :meth:`~dna.TenantDNA.apply_session` can trust it
    without checking again. ``None`` means the metric was absent.
    ``tools_used`` is read-only, keeps the caller's order and sums to
    ``tools_total``. Immutable, and a tuple: the cheapest record Python builds.
    """

    __slots__ = ()

    def __new__(
        cls, checked: object = None, *values: Any, **fields: Any
    ) -> SessionMetrics:
        if checked is not _CHECKED or fields:
            msg = "SessionMetrics are built by dna.parse_session_metrics()"
            raise TypeError(msg)
        return tuple.__new__(cls, values)

    def __init_subclass__(cls, **kwargs: Any) -> NoReturn:
        msg = "SessionMetrics cannot be subclassed"
        raise TypeError(msg)

    @classmethod
    def _make(cls, iterable: Any) -> NoReturn:  # type: ignore[override]
        msg = "SessionMetrics are built by dna.parse_session_metrics()"
        raise TypeError(msg)

    def _replace(self, **kwargs: Any) -> NoReturn:
        msg = "SessionMetrics are built by dna.parse_session_metrics()"
        raise TypeError(msg)

    @property
    def present(self) -> tuple[str, ...]:
        """The names of the metrics this session carries, in the seed's order."""
        return tuple(key for key in KEYS if getattr(self, key) is not None)


def _reject(key: str, value: Any, expected: str) -> InvalidSessionMetrics:
    return InvalidSessionMetrics(
        key, f"expected {expected}, got {_rules.describe(value)}"
    )


def _unreadable(key: str, error: Exception) -> InvalidSessionMetrics:
    return InvalidSessionMetrics(
        key, f"could not be read or checked: it raised {_rules.describe_error(error)}"
    )


def _tools(value: Any) -> tuple[Mapping[str, int], int]:
    if not isinstance(value, Mapping):
        raise _reject("tools_used", value, _TOOLS_EXPECTED)
    try:
        pairs = _rules.bounded_items(value, _rules.MAX_SESSION_TOOLS, _TOOLS_EXPECTED)
    except _rules.Rejected as error:
        raise _reject("tools_used", value, str(error)) from error.__cause__
    counts: dict[str, int] = {}
    for tool, count in pairs:
        try:
            tool_name = _rules.name(tool)
        except _rules.Rejected as error:
            raise _reject("tools_used", tool, f"tool names to be {error}") from None
        try:
            counts[tool_name] = _rules.count(count)
        except _rules.Rejected as error:
            raise _reject(
                "tools_used", count, f"the count of {tool_name!r} to be {error}"
            ) from error.__cause__
    # Read-only: the checked counts cannot be changed after the check.
    return MappingProxyType(counts), sum(counts.values())


def parse_session_metrics(metrics: Mapping[str, Any]) -> SessionMetrics:
    """Check every listed metric and return them as a :class:`SessionMetrics`.

    Unknown keys are ignored and a ``None`` value counts as absent. Raises
    :class:`InvalidSessionMetrics` naming the first offending key, also when
    reading that key from the mapping raises (the error is chained)::

        >>> parse_session_metrics({"hour_utc": 14}).hour_utc
        14
    """
    if not isinstance(metrics, Mapping):
        raise _reject("session_metrics", metrics, "a mapping of metric name to value")
    key = "session_metrics"
    value: Any = None
    try:
        get = metrics.get
        key = "task_complexity"
        value = get(key)
        complexity = None if value is None else _rules.unit_real(value)
        key = "model_tier"
        value = get(key)
        tier = None if value is None else _rules.tier(value)
        key = "tokens_used"
        value = get(key)
        tokens = (
            None if value is None else _rules.bounded_int(value, 0, _rules.MAX_TOKENS)
        )
        key = "hour_utc"
        value = get(key)
        hour = None if value is None else _rules.bounded_int(value, 0, 23)
        key = "risk_score"
        value = get(key)
        risk = None if value is None else _rules.unit_real(value)
        key = "intent"
        value = get(key)
        intent = None if value is None else _rules.name(value)
        key = "tools_used"
        value = get(key)
        tools, total = (None, 0) if value is None else _tools(value)
    except _rules.Rejected as error:
        raise _reject(key, value, str(error)) from error.__cause__
    except InvalidSessionMetrics:
        raise
    except Exception as error:
        raise _unreadable(key, error) from error
    return SessionMetrics(
        _CHECKED, complexity, tier, tokens, tools, total, hour, risk, intent
    )
