"""Session metrics, validated once into an immutable value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

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


class SessionMetrics(NamedTuple):
    """One session's metrics, every present value already checked.

    Build it with :func:`parse_session_metrics`; ``None`` means the metric was
    absent. ``tools_used`` keeps the caller's order and sums to ``tools_total``.
    (A named tuple: immutable, and the cheapest record Python builds.)
    """

    task_complexity: float | None = None
    model_tier: str | None = None
    tokens_used: int | None = None
    tools_used: Mapping[str, int] | None = None
    tools_total: int = 0
    hour_utc: int | None = None
    risk_score: float | None = None
    intent: str | None = None

    @property
    def present(self) -> tuple[str, ...]:
        """The names of the metrics this session carries, in the seed's order."""
        return tuple(key for key in KEYS if getattr(self, key) is not None)


def _reject(key: str, value: Any, expected: str) -> InvalidSessionMetrics:
    return InvalidSessionMetrics(
        key, f"expected {expected}, got {_rules.describe(value)}"
    )


def _tools(value: Any) -> tuple[dict[str, int], int]:
    if not isinstance(value, Mapping):
        raise _reject("tools_used", value, "a mapping of tool name to call count")
    if len(value) > _rules.MAX_SESSION_TOOLS:
        raise InvalidSessionMetrics(
            "tools_used",
            f"expected at most {_rules.MAX_SESSION_TOOLS} tools, got {len(value)}",
        )
    counts: dict[str, int] = {}
    for tool, count in value.items():
        try:
            tool_name = _rules.name(tool)
        except _rules.Rejected as error:
            raise _reject("tools_used", tool, f"tool names to be {error}") from None
        try:
            counts[tool_name] = _rules.bounded_int(count, 0, _rules.MAX_TOKENS)
        except _rules.Rejected as error:
            raise _reject(
                "tools_used", count, f"the count of {tool_name!r} to be {error}"
            ) from None
    return counts, sum(counts.values())


def parse_session_metrics(metrics: Mapping[str, Any]) -> SessionMetrics:
    """Check every listed metric and return them as a :class:`SessionMetrics`.

    Unknown keys are ignored and a ``None`` value counts as absent. Raises
    :class:`InvalidSessionMetrics` naming the first offending key::

        >>> parse_session_metrics({"hour_utc": 14}).hour_utc
        14
    """
    if not isinstance(metrics, Mapping):
        raise _reject("session_metrics", metrics, "a mapping of metric name to value")
    get = metrics.get
    key = ""
    value: Any = None
    try:
        key, value = "task_complexity", get("task_complexity")
        complexity = None if value is None else _rules.unit_real(value)
        key, value = "model_tier", get("model_tier")
        tier = None if value is None else _rules.tier(value)
        key, value = "tokens_used", get("tokens_used")
        tokens = (
            None if value is None else _rules.bounded_int(value, 0, _rules.MAX_TOKENS)
        )
        key, value = "hour_utc", get("hour_utc")
        hour = None if value is None else _rules.bounded_int(value, 0, 23)
        key, value = "risk_score", get("risk_score")
        risk = None if value is None else _rules.unit_real(value)
        key, value = "intent", get("intent")
        intent = None if value is None else _rules.name(value)
    except _rules.Rejected as error:
        raise _reject(key, value, str(error)) from None
    tools_value = get("tools_used")
    tools, total = (None, 0) if tools_value is None else _tools(tools_value)
    return SessionMetrics(
        task_complexity=complexity,
        model_tier=tier,
        tokens_used=tokens,
        tools_used=tools,
        tools_total=total,
        hour_utc=hour,
        risk_score=risk,
        intent=intent,
    )
