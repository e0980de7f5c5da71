"""The tenant's DNA: a compact profile learned by exponential moving averages."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dna import _rules
from dna._clock import now
from dna._errors import InvalidDNA, InvalidSessionMetrics
from dna._metrics import SessionMetrics, parse_session_metrics


def check_alpha(alpha: Any) -> float:
    """Return ``alpha`` clamped to ``[0.01, 1.0]``; raise for anything not finite.

    Any real number is accepted by the test the metrics use (``numbers.Real``,
    ``numpy`` scalars included). Raises :class:`InvalidSessionMetrics` with key
    ``"alpha"`` for ``bool``, NaN, infinities and non-numbers.
    """
    try:
        return _rules.alpha(alpha)
    except _rules.Rejected as error:
        raise InvalidSessionMetrics(
            "alpha", f"expected {error}, got {_rules.describe(alpha)}"
        ) from error.__cause__


def check_profile(profile: Any) -> TenantDNA:
    """Return a checked copy of ``profile``: the rules of :meth:`TenantDNA.from_dict`.

    A ``TenantDNA`` can be built with any values (it is a plain dataclass);
    this is how a profile from outside is let in. The copy holds every value
    in its canonical type (``float``, ``int``, plain ``str``, new containers)
    and shares nothing with ``profile``. Raises :class:`InvalidDNA` naming the
    first invalid field (the profile's own error chained, if reading it
    raised), and ``TypeError`` if ``profile`` is not a ``TenantDNA`` at all::

        >>> check_profile(TenantDNA(peak_hours=(9, 10), last_updated=0)).peak_hours
        [9, 10]
    """
    if not isinstance(profile, TenantDNA):
        msg = f"dna: expected a TenantDNA, got {_rules.describe_type(profile)}"
        raise TypeError(msg)
    values: dict[str, Any] = {}
    for key, check in _FIELD_CHECKS.items():
        try:
            value = getattr(profile, key)
        except Exception as error:
            raise _unreadable(key, error) from error
        values[key] = _check_field(key, check, value)
    return TenantDNA(**values)


@dataclass
class TenantDNA:
    """Compact learned profile of one tenant.

    A plain dataclass: equality compares all eight fields. Change it with
    :meth:`update_from_session`, which validates everything before it touches
    anything, so a rejected session leaves the profile exactly as it was.
    """

    avg_task_complexity: float = 0.5
    preferred_model_tier: str = "worker"
    avg_tokens_per_task: int = 2000
    tool_usage_frequency: dict[str, float] = field(default_factory=dict)
    peak_hours: list[int] = field(default_factory=list)
    risk_profile: float = 0.3
    common_intents: list[str] = field(default_factory=list)
    last_updated: float = field(default_factory=now)

    def update_from_session(
        self, session_metrics: Mapping[str, Any], alpha: float = 0.2
    ) -> None:
        """Learn from one session's metrics by EMA with smoothing ``alpha``.

        ``alpha`` is clamped to ``[0.01, 1.0]``. Raises
        :class:`InvalidSessionMetrics` naming the offending key, and then
        nothing (``last_updated`` included) has changed.
        """
        rate = check_alpha(alpha)
        self._apply(parse_session_metrics(session_metrics), rate)

    def apply_session(self, session: SessionMetrics, alpha: float = 0.2) -> None:
        """Learn from metrics already checked by ``parse_session_metrics``.

        The second half of :meth:`update_from_session`, for callers that
        validate in one place (a caller's thread) and apply in another (the
        tenant's actor). Only ``parse_session_metrics`` builds a
        :class:`SessionMetrics`, so ``session`` holds checked values; anything
        else raises ``TypeError``. Raises :class:`InvalidSessionMetrics` only
        for ``alpha``.
        """
        if type(session) is not SessionMetrics:
            msg = (
                "session: expected SessionMetrics from parse_session_metrics(), "
                f"got {_rules.describe_type(session)}"
            )
            raise TypeError(msg)
        self._apply(session, check_alpha(alpha))

    def _apply(self, session: SessionMetrics, rate: float) -> None:
        # Everything that can fail comes first (the clock included): a
        # failure leaves the profile as it was.
        stamp = _checked_time(now())
        keep = 1.0 - rate
        if session.task_complexity is not None:
            self.avg_task_complexity = ema(
                self.avg_task_complexity, session.task_complexity, keep, rate
            )
        if session.model_tier is not None:
            self.preferred_model_tier = session.model_tier
        if session.tokens_used is not None:
            self.avg_tokens_per_task = round(
                self.avg_tokens_per_task * keep + session.tokens_used * rate
            )
        if session.tools_used is not None and session.tools_total > 0:
            self.tool_usage_frequency = _learn_tools(
                self.tool_usage_frequency,
                session.tools_used,
                session.tools_total,
                keep,
                rate,
            )
        if session.hour_utc is not None:
            self.peak_hours = _move_to_end(
                self.peak_hours, session.hour_utc, _rules.MAX_PEAK_HOURS
            )
        if session.risk_score is not None:
            self.risk_profile = ema(self.risk_profile, session.risk_score, keep, rate)
        if session.intent is not None:
            self.common_intents = _move_to_end(
                self.common_intents, session.intent, _rules.MAX_INTENTS
            )
        self.last_updated = stamp

    def copy(self) -> TenantDNA:
        """Return an equal profile that shares no container with this one."""
        return TenantDNA(
            self.avg_task_complexity,
            self.preferred_model_tier,
            self.avg_tokens_per_task,
            dict(self.tool_usage_frequency),
            list(self.peak_hours),
            self.risk_profile,
            list(self.common_intents),
            self.last_updated,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the eight fields as a new JSON-serialisable dict of copies."""
        return {
            "avg_task_complexity": self.avg_task_complexity,
            "preferred_model_tier": self.preferred_model_tier,
            "avg_tokens_per_task": self.avg_tokens_per_task,
            "tool_usage_frequency": dict(self.tool_usage_frequency),
            "peak_hours": list(self.peak_hours),
            "risk_profile": self.risk_profile,
            "common_intents": list(self.common_intents),
            "last_updated": self.last_updated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TenantDNA:
        """Build a profile from ``to_dict()`` output, checking every value.

        Missing keys take their defaults, unknown keys are ignored and
        containers are copied. Raises :class:`InvalidDNA` naming the field,
        also when reading it from ``data`` raises (that error chained).
        ``TenantDNA.from_dict(dna.to_dict()) == dna`` for every valid profile.
        """
        if not isinstance(data, Mapping):
            raise InvalidDNA("data", f"expected a mapping, got {_rules.describe(data)}")
        values: dict[str, Any] = {}
        for key, check in _FIELD_CHECKS.items():
            try:
                present = key in data
                value = data[key] if present else None
            except Exception as error:
                raise _unreadable(key, error) from error
            if present:
                values[key] = _check_field(key, check, value)
        return cls(**values)


def ema(old: float, observed: float, keep: float, rate: float) -> float:
    """``old * keep + observed * rate``, where ``keep == 1 - rate``.

    Two roundings can carry the sum one ulp outside ``[old, observed]`` (0.75
    with alpha 0.01 gives 0.7499999999999999); the result is held inside, so a
    value in ``[0, 1]`` stays there and an EMA never overshoots what it saw.
    """
    value = old * keep + observed * rate
    if old <= observed:
        return old if value < old else observed if value > observed else value
    return observed if value < observed else old if value > old else value


def _learn_tools(
    frequencies: dict[str, float],
    counts: Mapping[str, int],
    total: int,
    keep: float,
    rate: float,
) -> dict[str, float]:
    # Every known tool moves towards its share of this session, so a tool the
    # session did not use decays towards 0 instead of keeping a stale weight.
    learned = {
        tool: ema(frequency, counts.get(tool, 0) / total, keep, rate)
        for tool, frequency in frequencies.items()
    }
    for tool, count in counts.items():
        if tool not in learned:
            learned[tool] = ema(0.0, count / total, keep, rate)
    if len(learned) > _rules.MAX_TOOLS:
        ranked = sorted(learned.items(), key=lambda item: (-item[1], item[0]))
        learned = dict(ranked[: _rules.MAX_TOOLS])
    return learned


def _move_to_end(items: list[Any], item: Any, limit: int) -> list[Any]:
    """``items`` with ``item`` last and the last ``limit`` kept, in place.

    In place, as a profile owns its lists (``copy`` and ``from_dict`` make
    new ones); a tuple given to the constructor is made a list first.
    """
    if type(items) is not list:
        items = list(items)
    if item in items:
        items.remove(item)
    items.append(item)
    if len(items) > limit:
        del items[:-limit]
    return items


def _checked_time(value: Any) -> float:
    """The clock's reading; ``ValueError`` if it is not a finite real number."""
    if type(value) is float and math.isfinite(value):
        return value  # time.time(): the usual clock, checked in two steps
    try:
        return _rules.finite_real(value)
    except _rules.Rejected:
        msg = f"clock: expected a finite real number, got {_rules.describe(value)}"
        raise ValueError(msg) from None


def _unreadable(key: str, error: Exception) -> InvalidDNA:
    return InvalidDNA(
        key, f"could not be read: it raised {_rules.describe_error(error)}"
    )


def _check_field(key: str, check: Any, value: Any) -> Any:
    try:
        return check(value)
    except _rules.Rejected as error:
        raise InvalidDNA(
            key, f"expected {error}, got {_rules.describe(value)}"
        ) from error.__cause__
    except Exception as error:  # a container that breaks its own protocol
        raise InvalidDNA(
            key, f"could not be checked: it raised {_rules.describe_error(error)}"
        ) from error


_FREQUENCIES: Final = (
    f"a mapping of at most {_rules.MAX_TOOLS} tool names to reals in [0, 1]"
)
_PEAK_HOURS: Final = f"a list of at most {_rules.MAX_PEAK_HOURS} unique ints 0-23"
_INTENTS: Final = f"a list of at most {_rules.MAX_INTENTS} unique non-empty names"


def _frequencies(value: Any) -> dict[str, float]:
    expected = _FREQUENCIES
    if type(value) is not dict and not isinstance(value, Mapping):
        raise _rules.Rejected(expected)
    pairs = _rules.bounded_items(value, _rules.MAX_TOOLS, expected)
    try:
        return {_rules.name(tool): _rules.unit_real(f) for tool, f in pairs}
    except _rules.Rejected as error:
        raise _rules.Rejected(expected) from error.__cause__


def _unique_list(value: Any, check: Any, limit: int, expected: str) -> list[Any]:
    # Sliced with the base class's own method: a subclass cannot lie about
    # its items or its length, and a huge list is never read past the limit.
    window = slice(0, limit + 1)
    kind = type(value)
    if issubclass(kind, list):
        items = list.__getitem__(value, window)
    elif issubclass(kind, tuple):
        items = list(tuple.__getitem__(value, window))
    else:
        raise _rules.Rejected(expected)
    try:
        checked = [check(item) for item in items]
    except _rules.Rejected as error:
        raise _rules.Rejected(expected) from error.__cause__
    if len(checked) > limit or len(set(checked)) != len(checked):
        raise _rules.Rejected(expected)
    return checked


_FIELD_CHECKS: dict[str, Any] = {
    "avg_task_complexity": _rules.unit_real,
    "preferred_model_tier": _rules.tier,
    "avg_tokens_per_task": lambda v: _rules.bounded_int(v, 0, _rules.MAX_TOKENS),
    "tool_usage_frequency": _frequencies,
    "peak_hours": lambda v: _unique_list(
        v, lambda h: _rules.bounded_int(h, 0, 23), _rules.MAX_PEAK_HOURS, _PEAK_HOURS
    ),
    "risk_profile": _rules.unit_real,
    "common_intents": lambda v: _unique_list(
        v, _rules.name, _rules.MAX_INTENTS, _INTENTS
    ),
    "last_updated": _rules.finite_real,
}
