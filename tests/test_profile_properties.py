"""Properties of the update rules, over generated sessions and profiles."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dna import TenantDNA
from tests.strategies import alphas, profiles, session_metrics, unit


@given(old=unit, observed=unit, alpha=alphas)
def test_an_ema_lies_between_old_and_observed(
    old: float, observed: float, alpha: float
) -> None:
    dna = TenantDNA(avg_task_complexity=old, risk_profile=old)
    dna.update_from_session(
        {"task_complexity": observed, "risk_score": observed}, alpha
    )
    low, high = min(old, observed), max(old, observed)
    assert low <= dna.avg_task_complexity <= high
    assert low <= dna.risk_profile <= high


@given(sessions=st.lists(session_metrics, max_size=30), alpha=alphas)
def test_every_session_keeps_the_profile_within_its_bounds(
    sessions: list[dict[str, Any]], alpha: float
) -> None:
    dna = TenantDNA()
    for session in sessions:
        dna.update_from_session(session, alpha)
        assert 0.0 <= dna.avg_task_complexity <= 1.0
        assert 0.0 <= dna.risk_profile <= 1.0
        assert type(dna.avg_tokens_per_task) is int
        assert 0 <= dna.avg_tokens_per_task <= 10**12
        assert len(dna.tool_usage_frequency) <= 50
        assert all(0.0 <= f <= 1.0 for f in dna.tool_usage_frequency.values())
        assert len(dna.peak_hours) <= 12
        assert len(set(dna.peak_hours)) == len(dna.peak_hours)
        assert all(0 <= h <= 23 for h in dna.peak_hours)
        assert len(dna.common_intents) <= 20
        assert len(set(dna.common_intents)) == len(dna.common_intents)
        assert TenantDNA.from_dict(dna.to_dict()) == dna


@given(session=session_metrics)
def test_the_latest_hour_and_intent_are_last(session: dict[str, Any]) -> None:
    dna = TenantDNA(peak_hours=[1, 2, 3], common_intents=["a", "b"])
    dna.update_from_session(session)
    if session.get("hour_utc") is not None:
        assert dna.peak_hours[-1] == session["hour_utc"]
    if session.get("intent") is not None:
        assert dna.common_intents[-1] == session["intent"]


@given(data=profiles)
def test_from_dict_of_to_dict_is_the_same_profile(data: dict[str, Any]) -> None:
    dna = TenantDNA.from_dict(data)
    assert dna.to_dict() == data
    assert TenantDNA.from_dict(dna.to_dict()) == dna
