"""Five decisions a profile drives from the first turn of a new session.

Pure functions of a :class:`~dna.TenantDNA` (and, for the anomaly report, one
session's metrics): no threads, no I/O, no logging. Every threshold is a
keyword argument with a documented default, and a bad one raises
:class:`InvalidInsightArgument` (a ``ValueError``) naming the argument.

* :func:`recommend_tier` routes the session to a model tier by the profile's
  average task complexity.
* :func:`predict_cost` multiplies the average tokens per task out to a number
  of sessions and a price.
* :func:`tools_to_prewarm` names the tools worth warming up, most frequent first.
* :func:`anomaly_report` scores how unlike the profile a session is.
* :func:`capacity_by_hour` spreads many tenants' expected tokens over the 24
  UTC hours.

The profiles are read as :meth:`~dna.TenantDNA.update_from_session` and
:meth:`~dna.TenantDNA.from_dict` keep them (every field in range); they are
never changed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from dna import _rules
from dna._errors import InvalidDNA
from dna._metrics import SessionMetrics, parse_session_metrics
from dna._profile import TenantDNA

__all__ = [
    "AnomalyReport",
    "CostPrediction",
    "InvalidInsightArgument",
    "TierRecommendation",
    "anomaly_report",
    "capacity_by_hour",
    "predict_cost",
    "recommend_tier",
    "tools_to_prewarm",
]

MAX_SESSIONS: Final = 10**12
"""The most sessions :func:`predict_cost` will multiply out."""

HOUR_WEIGHT: Final = 0.2
"""Score added by a session at an hour outside the known peak hours."""
RISK_WEIGHT: Final = 0.3
"""Score added by a risk far above the profile's."""
TOKENS_WEIGHT: Final = 0.3
"""Score added by tokens far above the profile's average."""
TOOLS_WEIGHT: Final = 0.2
"""Score added by one or more tools the profile has never seen."""
INTENT_WEIGHT: Final = 0.2
"""Score added by an intent the profile has never seen."""

_LISTED_TOOLS: Final = 5
# Every tenant's number of distinct peak hours (1 to 24) divides this, so each
# hour's share of a tenant's tokens is an exact integer multiple of 1 / _SHARES.
_SHARES: Final = math.lcm(*range(1, 25))
_FRESH: Final = TenantDNA(last_updated=0.0).to_dict()


class InvalidInsightArgument(ValueError):
    """A threshold, price, count or limit outside what an insight accepts.

    ``argument`` names the offending keyword argument; the message names it,
    the value and what was expected.
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


@dataclass(frozen=True, slots=True)
class TierRecommendation:
    """The tier to route a session to, and a one-line reason for it."""

    tier: str
    reason: str


@dataclass(frozen=True, slots=True)
class CostPrediction:
    """Expected tokens (an exact ``int``) and their cost (a ``float``)."""

    tokens: int
    cost: float


@dataclass(frozen=True, slots=True)
class AnomalyReport:
    """A score in ``[0, 1]`` (0 = as expected) and one line per reason found.

    ``reasons`` is empty exactly when ``score`` is 0.
    """

    score: float
    reasons: tuple[str, ...]


def recommend_tier(
    dna: TenantDNA, *, low: float = 0.35, high: float = 0.7
) -> TierRecommendation:
    """Route by ``avg_task_complexity``; between the thresholds, the tenant's choice.

    * complexity ``>= high``: ``"orchestrator"`` (this wins when ``low == high``);
    * complexity ``<= low``: ``"worker"``;
    * otherwise the profile's ``preferred_model_tier``.

    A default profile (complexity 0.5, tier ``"worker"``) gets ``"worker"``.
    ``low`` and ``high`` must be real numbers in ``[0, 1]`` with
    ``low <= high``; otherwise raises :class:`InvalidInsightArgument`::

        >>> recommend_tier(TenantDNA(avg_task_complexity=0.8)).tier
        'orchestrator'
    """
    low = _unit("low", low)
    high = _unit("high", high)
    if low > high:
        raise InvalidInsightArgument(
            "low", f"expected low <= high, got low={low!r}, high={high!r}"
        )
    complexity = dna.avg_task_complexity
    if complexity >= high:
        return TierRecommendation(
            "orchestrator",
            f"complexity {complexity:g} is at or above {high:g}: orchestrator",
        )
    if complexity <= low:
        return TierRecommendation(
            "worker", f"complexity {complexity:g} is at or below {low:g}: worker"
        )
    tier = dna.preferred_model_tier
    return TierRecommendation(
        tier,
        f"complexity {complexity:g} is between {low:g} and {high:g}: "
        f"the preferred tier, {tier}",
    )


def predict_cost(
    dna: TenantDNA, *, price_per_1k_tokens: float, sessions: int = 1
) -> CostPrediction:
    """Expected tokens and cost of ``sessions`` sessions at the average tokens.

    ``tokens = avg_tokens_per_task * sessions`` exactly, and
    ``cost = tokens * price_per_1k_tokens / 1000``, rounded once. A default
    profile expects 2000 tokens per session.

    ``price_per_1k_tokens`` must be a finite real number ``>= 0`` and
    ``sessions`` an ``int`` (not ``bool``) in ``[0, 10**12]``; otherwise, or if
    the cost is too large for a float, raises :class:`InvalidInsightArgument`::

        >>> predict_cost(TenantDNA(), price_per_1k_tokens=0.5, sessions=3)
        CostPrediction(tokens=6000, cost=3.0)
    """
    price = _real("price_per_1k_tokens", price_per_1k_tokens, "a finite real >= 0")
    if price < 0:
        raise _reject("price_per_1k_tokens", price_per_1k_tokens, "a finite real >= 0")
    try:
        count = _rules.bounded_int(sessions, 0, MAX_SESSIONS)
    except _rules.Rejected as error:
        raise _reject("sessions", sessions, str(error)) from None
    tokens = dna.avg_tokens_per_task * count
    try:
        # Exact rational arithmetic, so the cost is rounded once, not thrice.
        cost = float(Fraction(tokens) * Fraction(price) / 1000)
    except OverflowError:
        raise _reject(
            "price_per_1k_tokens",
            price_per_1k_tokens,
            f"a price whose cost for {tokens} tokens fits a float",
        ) from None
    return CostPrediction(tokens, cost)


def tools_to_prewarm(
    dna: TenantDNA, *, limit: int = 5, min_frequency: float = 0.05
) -> tuple[str, ...]:
    """At most ``limit`` tool names whose frequency is at least ``min_frequency``.

    Most frequent first; on equal frequency the name that sorts first comes
    first. A default profile knows no tools and gets ``()``. ``limit`` must be
    an ``int`` (not ``bool``) ``>= 0`` and ``min_frequency`` a real number in
    ``[0, 1]``; otherwise raises :class:`InvalidInsightArgument`::

        >>> tools_to_prewarm(TenantDNA(tool_usage_frequency={"a": 0.1, "b": 0.3}))
        ('b', 'a')
    """
    count = _count("limit", limit)
    floor = _unit("min_frequency", min_frequency)
    ranked = sorted(
        (-frequency, tool)
        for tool, frequency in dna.tool_usage_frequency.items()
        if frequency >= floor
    )
    return tuple(tool for _, tool in ranked[:count])


def anomaly_report(
    dna: TenantDNA,
    session_metrics: Mapping[str, Any] | SessionMetrics,
    *,
    risk_margin: float = 0.3,
    token_factor: float = 3.0,
) -> AnomalyReport:
    """Score how unlike the profile a session is, and say why.

    Each finding adds its weight; ``score = min(1, sum of the weights)``. In
    this order:

    * ``hour_utc`` not in ``peak_hours`` (judged once some hours are known): 0.2;
    * ``risk_score > risk_profile + risk_margin``: 0.3;
    * ``tokens_used > token_factor * avg_tokens_per_task``: 0.3;
    * a tool with a call count above 0 that is not in ``tool_usage_frequency``
      (judged once some tools are known; one finding for all such tools): 0.2;
    * ``intent`` not in ``common_intents`` (judged once some are known): 0.2.

    A brand-new profile, one whose learned fields all hold their defaults, has
    seen nothing to compare with, so risk and tokens are not judged and every
    session scores 0. The profile remembers only its last 12 hours, last 20
    intents and 50 most frequent tools, so "never seen" means "not among those".

    ``session_metrics`` is checked by :func:`~dna.parse_session_metrics`, the
    rules of :meth:`~dna.TenantDNA.update_from_session`, and a bad one raises
    :class:`~dna.InvalidSessionMetrics` the same way; metrics that were already
    parsed are used as they are. ``risk_margin`` must be a real number in
    ``[0, 1]`` and ``token_factor`` a finite real ``>= 1``; otherwise raises
    :class:`InvalidInsightArgument`.
    """
    margin = _unit("risk_margin", risk_margin)
    factor = _real("token_factor", token_factor, "a finite real >= 1")
    if factor < 1:
        raise _reject("token_factor", token_factor, "a finite real >= 1")
    session = (
        session_metrics
        if isinstance(session_metrics, SessionMetrics)
        else parse_session_metrics(session_metrics)
    )
    if _is_new(dna):
        return AnomalyReport(0.0, ())

    findings: list[tuple[float, str]] = []
    hour = session.hour_utc
    if hour is not None and dna.peak_hours and hour not in dna.peak_hours:
        findings.append(
            (
                HOUR_WEIGHT,
                f"hour {hour} is outside the peak hours {sorted(dna.peak_hours)}",
            )
        )
    risk = session.risk_score
    if risk is not None and risk > dna.risk_profile + margin:
        findings.append(
            (
                RISK_WEIGHT,
                f"risk {risk:g} is more than {margin:g} above "
                f"the profile's {dna.risk_profile:g}",
            )
        )
    tokens = session.tokens_used
    if tokens is not None and tokens > factor * dna.avg_tokens_per_task:
        findings.append(
            (
                TOKENS_WEIGHT,
                f"{tokens} tokens are more than {factor:g} times "
                f"the average {dna.avg_tokens_per_task}",
            )
        )
    known_tools = dna.tool_usage_frequency
    if session.tools_used and known_tools:
        unseen = sorted(
            tool
            for tool, count in session.tools_used.items()
            if count > 0 and tool not in known_tools
        )
        if unseen:
            findings.append((TOOLS_WEIGHT, _unseen_tools(unseen)))
    intent = session.intent
    if intent is not None and dna.common_intents and intent not in dna.common_intents:
        findings.append((INTENT_WEIGHT, f"intent never seen: {intent!r}"))

    score = min(1.0, math.fsum(weight for weight, _ in findings))
    return AnomalyReport(score, tuple(reason for _, reason in findings))


def capacity_by_hour(profiles: Iterable[TenantDNA]) -> tuple[float, ...]:
    """Expected tokens in each UTC hour (index 0 to 23) over many tenants.

    Each tenant is taken to run one session of ``avg_tokens_per_task`` tokens,
    equally likely at any of its ``peak_hours``: each of those hours gets
    ``avg_tokens_per_task / len(peak_hours)``. A tenant with no known peak
    hours adds nothing, so the 24 figures sum to the tenants' average tokens
    over those with known hours. Each figure is the exact sum, rounded once.

    ``profiles`` is any iterable (it is read once). Raises
    :class:`~dna.InvalidDNA` for a peak hour that is not an ``int`` in
    ``[0, 23]``, rather than count it in the wrong hour::

        >>> capacity_by_hour([TenantDNA(peak_hours=[9, 10])])[9]
        1000.0
    """
    # Integer numerators over a common denominator keep every share exact.
    totals = [0] * 24
    for dna in profiles:
        hours = _hours(dna.peak_hours)
        if hours:
            share = dna.avg_tokens_per_task * (_SHARES // len(hours))
            for hour in hours:
                totals[hour] += share
    return tuple(total / _SHARES for total in totals)


def _is_new(dna: TenantDNA) -> bool:
    return dna.to_dict() | {"last_updated": 0.0} == _FRESH


def _unseen_tools(unseen: list[str]) -> str:
    listed = ", ".join(repr(tool) for tool in unseen[:_LISTED_TOOLS])
    more = len(unseen) - _LISTED_TOOLS
    return f"tools never seen: {listed}" + (f" and {more} more" if more > 0 else "")


def _hours(peak_hours: Iterable[Any]) -> list[int]:
    try:
        hours = [_rules.bounded_int(hour, 0, 23) for hour in peak_hours]
    except _rules.Rejected as error:
        raise InvalidDNA(
            "peak_hours",
            f"expected a list of {error}, got {_rules.describe(peak_hours)}",
        ) from None
    return list(dict.fromkeys(hours))


def _reject(argument: str, value: Any, expected: str) -> InvalidInsightArgument:
    return InvalidInsightArgument(
        argument, f"expected {expected}, got {_rules.describe(value)}"
    )


def _unit(argument: str, value: Any) -> float:
    try:
        return _rules.unit_real(value)
    except _rules.Rejected as error:
        raise _reject(argument, value, str(error)) from None


def _real(argument: str, value: Any, expected: str) -> float:
    try:
        return _rules.finite_real(value)
    except _rules.Rejected:
        raise _reject(argument, value, expected) from None


def _count(argument: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _reject(argument, value, "an int >= 0")
    if value < 0:
        raise _reject(argument, value, "an int >= 0")
    return int(value)
