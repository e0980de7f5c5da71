"""The five first-turn decisions: exact values, bad arguments and properties."""

from __future__ import annotations

import ast
import doctest
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dna.insights
from dna import InvalidDNA, InvalidSessionMetrics, TenantDNA, parse_session_metrics
from dna.insights import (
    AnomalyReport,
    CostPrediction,
    InvalidInsightArgument,
    TierRecommendation,
    anomaly_report,
    capacity_by_hour,
    predict_cost,
    recommend_tier,
    tools_to_prewarm,
)
from tests.conftest import SEED_SESSION
from tests.strategies import bad_metric, profiles, session_metrics, unit

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "using_the_profile.py"
EXAMPLE_OUTPUT = """\
Tier: orchestrator (complexity 0.624 is between 0.35 and 0.7: \
the preferred tier, orchestrator)
30 sessions: 80400 tokens, $0.80
Pre-warm: search, code_interpreter
Anomaly score: 0.7
  hour 3 is outside the peak hours [14, 15]
  12000 tokens are more than 3 times the average 2680
  tools never seen: 'shell'
Expected tokens at 14:00 UTC: 1940 of 3880
"""

profile_objects = profiles.map(TenantDNA.from_dict)


def _seeded() -> TenantDNA:
    """The seed session on a default profile: peak hours [14], risk 0.32,
    2600 tokens, tools code_interpreter and search, intent code_generation."""
    dna = TenantDNA()
    dna.update_from_session(SEED_SESSION)
    return dna


# --- the module -------------------------------------------------------------


def test_the_five_decisions_import_from_dna_insights() -> None:
    namespace: dict[str, Any] = {}
    exec(
        "from dna.insights import recommend_tier, predict_cost, "
        "tools_to_prewarm, anomaly_report, capacity_by_hour",
        namespace,
    )
    assert namespace["recommend_tier"] is recommend_tier
    assert all(hasattr(dna.insights, name) for name in dna.insights.__all__)


def test_the_module_is_pure() -> None:
    tree = ast.parse(Path(dna.insights.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert imported <= {
        "__future__",
        "collections",
        "dataclasses",
        "dna",
        "fractions",
        "math",
        "numbers",
        "typing",
    }
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"open", "print", "input"}


def test_the_docstring_examples_hold() -> None:
    result = doctest.testmod(dna.insights)
    assert result.attempted >= 4
    assert result.failed == 0


def test_results_are_frozen() -> None:
    recommendation = recommend_tier(TenantDNA())
    with pytest.raises(AttributeError):
        recommendation.tier = "orchestrator"  # type: ignore[misc]
    assert not hasattr(recommendation, "__dict__")


# --- recommend_tier -----------------------------------------------------------


def test_a_default_profile_gets_its_preferred_worker_tier() -> None:
    assert recommend_tier(TenantDNA()) == TierRecommendation(
        "worker", "complexity 0.5 is between 0.35 and 0.7: the preferred tier, worker"
    )


@pytest.mark.parametrize(
    ("complexity", "preferred", "tier", "reason"),
    [
        (0.7, "worker", "orchestrator", "complexity 0.7 is at or above 0.7"),
        (1.0, "worker", "orchestrator", "complexity 1 is at or above 0.7"),
        (0.35, "orchestrator", "worker", "complexity 0.35 is at or below 0.35"),
        (0.0, "orchestrator", "worker", "complexity 0 is at or below 0.35"),
        (0.5, "orchestrator", "orchestrator", "complexity 0.5 is between"),
        (0.69, "worker", "worker", "complexity 0.69 is between"),
        (0.36, "orchestrator", "orchestrator", "complexity 0.36 is between"),
    ],
)
def test_the_tier_follows_complexity_then_preference(
    complexity: float, preferred: str, tier: str, reason: str
) -> None:
    dna = TenantDNA(avg_task_complexity=complexity, preferred_model_tier=preferred)
    recommendation = recommend_tier(dna)
    assert recommendation.tier == tier
    assert recommendation.reason.startswith(reason)
    assert recommendation.reason.endswith(tier)
    assert "\n" not in recommendation.reason


def test_the_thresholds_are_keyword_arguments() -> None:
    dna = TenantDNA(avg_task_complexity=0.6)
    assert recommend_tier(dna, high=0.6).tier == "orchestrator"
    assert recommend_tier(dna, low=0.6, high=0.9).tier == "worker"
    assert recommend_tier(dna, low=0.1, high=0.9).tier == "worker"
    assert recommend_tier(dna, low=1, high=1).tier == "worker"
    with pytest.raises(TypeError):
        recommend_tier(dna, 0.1, 0.9)  # type: ignore[call-arg]


def test_equal_thresholds_send_that_complexity_to_the_orchestrator() -> None:
    dna = TenantDNA(avg_task_complexity=0.5)
    assert recommend_tier(dna, low=0.5, high=0.5) == TierRecommendation(
        "orchestrator", "complexity 0.5 is at or above 0.5: orchestrator"
    )


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"low": -0.1}, "low"),
        ({"low": float("nan")}, "low"),
        ({"low": True}, "low"),
        ({"low": "0.3"}, "low"),
        ({"high": 1.5}, "high"),
        ({"high": float("inf")}, "high"),
        ({"high": None}, "high"),
        ({"low": 0.8, "high": 0.5}, "low"),
        ({"low": 0.71}, "low"),
    ],
)
def test_bad_thresholds_are_rejected_by_name(
    arguments: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidInsightArgument) as caught:
        recommend_tier(TenantDNA(), **arguments)
    assert isinstance(caught.value, ValueError)
    assert caught.value.argument == name
    assert str(caught.value).startswith(f"{name}: expected ")
    assert repr(arguments[name]) in str(caught.value)


# --- predict_cost -------------------------------------------------------------


def test_a_default_profile_costs_two_thousand_tokens_a_session() -> None:
    assert predict_cost(TenantDNA(), price_per_1k_tokens=0.5) == CostPrediction(
        2000, 1.0
    )


@pytest.mark.parametrize(
    ("tokens", "price", "sessions", "expected"),
    [
        (2600, 0.01, 30, CostPrediction(78000, 0.78)),
        (2000, 0.5, 3, CostPrediction(6000, 3.0)),
        (2000, 2, 1, CostPrediction(2000, 4.0)),
        (2000, 0.0, 10, CostPrediction(20000, 0.0)),
        (2000, 0.5, 0, CostPrediction(0, 0.0)),
        (0, 3.0, 10, CostPrediction(0, 0.0)),
        (1, 0.003, 1, CostPrediction(1, 0.000003)),
        (10**12, 1.0, 10**12, CostPrediction(10**24, 1e21)),
    ],
)
def test_the_cost_is_tokens_times_price_per_thousand(
    tokens: int, price: float, sessions: int, expected: CostPrediction
) -> None:
    dna = TenantDNA(avg_tokens_per_task=tokens)
    prediction = predict_cost(dna, price_per_1k_tokens=price, sessions=sessions)
    assert prediction == expected
    assert type(prediction.tokens) is int
    assert type(prediction.cost) is float


def test_the_price_is_required_and_keyword_only() -> None:
    with pytest.raises(TypeError):
        predict_cost(TenantDNA())  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        predict_cost(TenantDNA(), 0.5)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"price_per_1k_tokens": -0.01}, "price_per_1k_tokens"),
        ({"price_per_1k_tokens": float("nan")}, "price_per_1k_tokens"),
        ({"price_per_1k_tokens": float("inf")}, "price_per_1k_tokens"),
        ({"price_per_1k_tokens": True}, "price_per_1k_tokens"),
        ({"price_per_1k_tokens": "0.5"}, "price_per_1k_tokens"),
        ({"price_per_1k_tokens": 0.5, "sessions": -1}, "sessions"),
        ({"price_per_1k_tokens": 0.5, "sessions": 1.0}, "sessions"),
        ({"price_per_1k_tokens": 0.5, "sessions": True}, "sessions"),
        ({"price_per_1k_tokens": 0.5, "sessions": 10**12 + 1}, "sessions"),
        ({"price_per_1k_tokens": 0.5, "sessions": None}, "sessions"),
    ],
)
def test_bad_prices_and_session_counts_are_rejected_by_name(
    arguments: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidInsightArgument) as caught:
        predict_cost(TenantDNA(), **arguments)
    assert caught.value.argument == name
    assert str(caught.value).startswith(f"{name}: expected ")


def test_a_cost_too_large_for_a_float_is_blamed_on_the_price() -> None:
    dna = TenantDNA(avg_tokens_per_task=10**12)
    with pytest.raises(InvalidInsightArgument) as caught:
        predict_cost(dna, price_per_1k_tokens=1e300, sessions=10**12)
    assert caught.value.argument == "price_per_1k_tokens"
    assert "fits a float" in str(caught.value)


# --- tools_to_prewarm ---------------------------------------------------------

FREQUENCIES = {
    "search": 0.3,
    "browse": 0.3,
    "code": 0.5,
    "rare": 0.04,
    "edge": 0.05,
    "never": 0.0,
}


def test_a_default_profile_prewarms_nothing() -> None:
    assert tools_to_prewarm(TenantDNA()) == ()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, ("code", "browse", "search", "edge")),
        ({"limit": 2}, ("code", "browse")),
        ({"limit": 0}, ()),
        ({"limit": 100}, ("code", "browse", "search", "edge")),
        ({"min_frequency": 0.3}, ("code", "browse", "search")),
        ({"min_frequency": 0.31}, ("code",)),
        ({"min_frequency": 1.0}, ()),
        (
            {"min_frequency": 0, "limit": 10},
            ("code", "browse", "search", "edge", "rare", "never"),
        ),
    ],
)
def test_tools_come_most_frequent_first_and_ties_by_name(
    arguments: dict[str, Any], expected: tuple[str, ...]
) -> None:
    dna = TenantDNA(tool_usage_frequency=dict(FREQUENCIES))
    assert tools_to_prewarm(dna, **arguments) == expected


def test_the_seed_session_prewarms_both_of_its_tools() -> None:
    assert tools_to_prewarm(_seeded()) == ("code_interpreter", "search")


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": 2.0}, "limit"),
        ({"limit": True}, "limit"),
        ({"limit": "5"}, "limit"),
        ({"min_frequency": -0.01}, "min_frequency"),
        ({"min_frequency": 1.01}, "min_frequency"),
        ({"min_frequency": float("nan")}, "min_frequency"),
        ({"min_frequency": False}, "min_frequency"),
    ],
)
def test_bad_limits_and_frequencies_are_rejected_by_name(
    arguments: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidInsightArgument) as caught:
        tools_to_prewarm(TenantDNA(), **arguments)
    assert caught.value.argument == name
    assert str(caught.value).startswith(f"{name}: expected ")


# --- anomaly_report -----------------------------------------------------------

NOTHING = AnomalyReport(0.0, ())


@pytest.mark.parametrize(
    "session",
    [
        {},
        SEED_SESSION,
        {
            "hour_utc": 3,
            "risk_score": 1.0,
            "tokens_used": 10**12,
            "tools_used": {"shell": 9},
            "intent": "exfiltrate",
        },
    ],
)
def test_a_first_session_is_never_an_anomaly(session: dict[str, Any]) -> None:
    assert anomaly_report(TenantDNA(), session) == NOTHING


def test_a_session_like_the_profile_is_no_anomaly() -> None:
    session = {
        "hour_utc": 14,
        "risk_score": 0.6,
        "tokens_used": 7800,  # exactly 3 times the average: not above it
        "tools_used": {"search": 1, "brand_new_but_unused": 0},
        "intent": "code_generation",
    }
    assert anomaly_report(_seeded(), session) == NOTHING


@pytest.mark.parametrize(
    ("session", "score", "reason"),
    [
        ({"hour_utc": 3}, 0.2, "hour 3 is outside the peak hours [14]"),
        (
            {"risk_score": 0.9},
            0.3,
            "risk 0.9 is more than 0.3 above the profile's 0.32",
        ),
        (
            {"tokens_used": 7801},
            0.3,
            "7801 tokens are more than 3 times the average 2600",
        ),
        (
            {"tools_used": {"shell": 1, "search": 3}},
            0.2,
            "tools never seen: 'shell'",
        ),
        ({"intent": "exfiltrate"}, 0.2, "intent never seen: 'exfiltrate'"),
    ],
)
def test_each_finding_adds_its_weight_and_reason(
    session: dict[str, Any], score: float, reason: str
) -> None:
    assert anomaly_report(_seeded(), session) == AnomalyReport(score, (reason,))


def test_the_findings_add_up_in_a_fixed_order() -> None:
    report = anomaly_report(
        _seeded(),
        {
            "intent": "exfiltrate",
            "tools_used": {"shell": 1, "curl": 2},
            "tokens_used": 100_000,
            "risk_score": 1.0,
            "hour_utc": 2,
        },
    )
    assert report.score == 1.0  # 0.2 + 0.3 + 0.3 + 0.2 + 0.2, capped at 1
    assert report.reasons == (
        "hour 2 is outside the peak hours [14]",
        "risk 1 is more than 0.3 above the profile's 0.32",
        "100000 tokens are more than 3 times the average 2600",
        "tools never seen: 'curl', 'shell'",
        "intent never seen: 'exfiltrate'",
    )


@pytest.mark.parametrize(
    ("session", "score"),
    [
        ({"hour_utc": 2, "intent": "exfiltrate"}, 0.4),
        ({"risk_score": 1.0, "tokens_used": 10**6}, 0.6),
        ({"hour_utc": 2, "risk_score": 1.0, "tokens_used": 10**6}, 0.8),
        (
            {
                "hour_utc": 2,
                "risk_score": 1.0,
                "tokens_used": 10**6,
                "tools_used": {"x": 1},
            },
            1.0,
        ),
    ],
)
def test_the_score_is_the_capped_sum_of_the_weights(
    session: dict[str, Any], score: float
) -> None:
    assert anomaly_report(_seeded(), session).score == pytest.approx(score, abs=1e-15)


def test_the_thresholds_are_strict_and_adjustable() -> None:
    dna = TenantDNA(risk_profile=0.25, avg_tokens_per_task=1000, peak_hours=[1])
    assert anomaly_report(dna, {"risk_score": 0.75}, risk_margin=0.5) == NOTHING
    assert anomaly_report(dna, {"risk_score": 0.76}, risk_margin=0.5).score == 0.3
    assert anomaly_report(dna, {"risk_score": 0.25}, risk_margin=0).score == 0.0
    assert anomaly_report(dna, {"risk_score": 0.26}, risk_margin=0).score == 0.3
    assert anomaly_report(dna, {"tokens_used": 1500}, token_factor=1.5) == NOTHING
    assert anomaly_report(dna, {"tokens_used": 1501}, token_factor=1.5).reasons == (
        "1501 tokens are more than 1.5 times the average 1000",
    )
    assert anomaly_report(dna, {"tokens_used": 1001}, token_factor=1).score == 0.3


def test_a_risk_margin_above_the_top_of_the_scale_never_flags() -> None:
    dna = TenantDNA(risk_profile=0.8, peak_hours=[1])
    assert anomaly_report(dna, {"risk_score": 1.0}) == NOTHING


def test_hours_tools_and_intents_are_judged_only_once_some_are_known() -> None:
    # Learned risk and tokens, but no hours, tools or intents yet.
    dna = TenantDNA(risk_profile=0.1, avg_tokens_per_task=100)
    session = {"hour_utc": 3, "tools_used": {"shell": 1}, "intent": "chat"}
    assert anomaly_report(dna, session) == NOTHING
    report = anomaly_report(dna, {**session, "risk_score": 0.5, "tokens_used": 301})
    assert report.score == pytest.approx(0.6, abs=1e-15)
    assert len(report.reasons) == 2


def test_a_profile_that_learned_anything_is_no_longer_new() -> None:
    dna = TenantDNA()
    dna.update_from_session({"tokens_used": 5000})  # average now 2600
    assert anomaly_report(dna, {"tokens_used": 7801}).score == 0.3
    assert anomaly_report(dna, {"risk_score": 0.61}).score == 0.3


def test_a_profile_that_learned_nothing_is_still_new() -> None:
    dna = TenantDNA()
    dna.update_from_session({"model_tier": "worker", "task_complexity": 0.5})
    assert anomaly_report(dna, {"risk_score": 1.0, "tokens_used": 10**9}) == NOTHING


def test_many_unseen_tools_are_listed_five_then_counted() -> None:
    tools = {f"tool{i}": 1 for i in range(8)}
    report = anomaly_report(_seeded(), {"tools_used": tools})
    assert report == AnomalyReport(
        0.2,
        ("tools never seen: 'tool0', 'tool1', 'tool2', 'tool3', 'tool4' and 3 more",),
    )


def test_reasons_stay_on_one_line_whatever_the_names() -> None:
    report = anomaly_report(
        _seeded(), {"intent": "line\nbreak", "tools_used": {"a\nb": 1}}
    )
    assert all("\n" not in reason for reason in report.reasons)


def test_already_parsed_metrics_give_the_same_report() -> None:
    session = {"hour_utc": 3, "risk_score": 0.9, "tools_used": {"shell": 1}}
    parsed = parse_session_metrics(session)
    assert anomaly_report(_seeded(), parsed) == anomaly_report(_seeded(), session)


def test_the_report_changes_nothing(clock: object) -> None:
    dna = _seeded()
    before = dna.to_dict()
    anomaly_report(dna, {**SEED_SESSION, "hour_utc": 1, "intent": "new"})
    assert dna.to_dict() == before


def test_bad_metrics_are_rejected_even_for_a_new_profile() -> None:
    with pytest.raises(InvalidSessionMetrics) as caught:
        anomaly_report(TenantDNA(), {"hour_utc": 24})
    assert caught.value.key == "hour_utc"
    with pytest.raises(InvalidSessionMetrics) as caught:
        anomaly_report(TenantDNA(), ["hour_utc"])  # type: ignore[arg-type]
    assert caught.value.key == "session_metrics"


@pytest.mark.parametrize(
    ("arguments", "name"),
    [
        ({"risk_margin": -0.1}, "risk_margin"),
        ({"risk_margin": 1.1}, "risk_margin"),
        ({"risk_margin": float("nan")}, "risk_margin"),
        ({"risk_margin": True}, "risk_margin"),
        ({"token_factor": 0.99}, "token_factor"),
        ({"token_factor": -3}, "token_factor"),
        ({"token_factor": float("inf")}, "token_factor"),
        ({"token_factor": float("nan")}, "token_factor"),
        ({"token_factor": "3"}, "token_factor"),
    ],
)
def test_bad_anomaly_thresholds_are_rejected_by_name(
    arguments: dict[str, Any], name: str
) -> None:
    with pytest.raises(InvalidInsightArgument) as caught:
        anomaly_report(_seeded(), {"hour_utc": 3}, **arguments)
    assert caught.value.argument == name
    assert str(caught.value).startswith(f"{name}: expected ")


# --- capacity_by_hour ---------------------------------------------------------


def test_no_tenants_need_no_capacity() -> None:
    assert capacity_by_hour([]) == (0.0,) * 24


def test_each_tenant_spreads_its_tokens_over_its_peak_hours() -> None:
    expected = [0.0] * 24
    expected[9] = 1000.0 + 900.0
    expected[10] = 1000.0
    expected[14] = 900.0
    expected[20] = 900.0
    load = capacity_by_hour(
        [
            TenantDNA(avg_tokens_per_task=2000, peak_hours=[9, 10]),
            TenantDNA(avg_tokens_per_task=2700, peak_hours=[20, 9, 14]),
            TenantDNA(avg_tokens_per_task=5000),  # no known hours: nothing
        ]
    )
    assert load == tuple(expected)
    assert all(type(figure) is float for figure in load)


def test_uneven_shares_are_exact_before_rounding() -> None:
    # 1/3 + 1/3 + 1/3 summed as floats would not give exactly 1.
    load = capacity_by_hour([TenantDNA(avg_tokens_per_task=1, peak_hours=[0, 1, 2])])
    assert load[:3] == (1 / 3, 1 / 3, 1 / 3)
    three = [TenantDNA(avg_tokens_per_task=1, peak_hours=[h, 5, 6]) for h in (7, 8)]
    assert capacity_by_hour([*three, three[0]])[5] == 1.0


def test_any_iterable_of_profiles_is_read_once() -> None:
    tenants = (TenantDNA(avg_tokens_per_task=12, peak_hours=[h]) for h in range(24))
    assert capacity_by_hour(tenants) == (12.0,) * 24


def test_a_default_profile_adds_no_capacity() -> None:
    assert capacity_by_hour([TenantDNA()] * 3) == (0.0,) * 24


@pytest.mark.parametrize("hours", [[24], [-1], [True], ["3"], [1.0]])
def test_an_impossible_peak_hour_is_rejected_not_misplaced(hours: list[Any]) -> None:
    with pytest.raises(InvalidDNA) as caught:
        capacity_by_hour([TenantDNA(peak_hours=hours)])
    assert caught.value.field == "peak_hours"


# --- properties ---------------------------------------------------------------


@given(data=profiles, session=session_metrics)
def test_the_score_is_always_in_the_unit_interval(
    data: dict[str, Any], session: dict[str, Any]
) -> None:
    report = anomaly_report(TenantDNA.from_dict(data), session)
    assert 0.0 <= report.score <= 1.0
    assert (report.score == 0.0) == (report.reasons == ())
    assert len(report.reasons) <= 5


@given(session=session_metrics)
def test_a_default_profile_never_reports_an_anomaly(session: dict[str, Any]) -> None:
    assert anomaly_report(TenantDNA(), session) == NOTHING


@given(good=session_metrics, bad=bad_metric, data=profiles)
def test_anomaly_report_rejects_exactly_what_an_update_rejects(
    good: dict[str, Any], bad: tuple[str, Any], data: dict[str, Any]
) -> None:
    metrics = {**good, bad[0]: bad[1]}
    dna = TenantDNA.from_dict(data)
    with pytest.raises(InvalidSessionMetrics) as from_update:
        dna.copy().update_from_session(metrics)
    with pytest.raises(InvalidSessionMetrics) as from_report:
        anomaly_report(dna, metrics)
    assert from_report.value.key == from_update.value.key
    assert str(from_report.value) == str(from_update.value)


@given(tenants=st.lists(profile_objects, max_size=30))
def test_capacity_sums_to_the_average_tokens_of_tenants_with_known_hours(
    tenants: list[TenantDNA],
) -> None:
    load = capacity_by_hour(tenants)
    expected = sum(t.avg_tokens_per_task for t in tenants if t.peak_hours)
    assert len(load) == 24
    assert math.fsum(load) == pytest.approx(expected, rel=1e-12, abs=1e-9)
    busy = {hour for t in tenants if t.avg_tokens_per_task for hour in t.peak_hours}
    for hour, figure in enumerate(load):
        assert figure >= 0.0
        assert (figure > 0.0) == (hour in busy)


@given(
    data=profiles,
    limit=st.integers(min_value=0, max_value=60),
    min_frequency=unit,
)
def test_prewarmed_tools_are_the_top_of_the_ranking(
    data: dict[str, Any], limit: int, min_frequency: float
) -> None:
    frequencies = data["tool_usage_frequency"]
    tools = tools_to_prewarm(
        TenantDNA.from_dict(data), limit=limit, min_frequency=min_frequency
    )
    ranking = sorted(frequencies, key=lambda tool: (-frequencies[tool], tool))
    eligible = [tool for tool in ranking if frequencies[tool] >= min_frequency]
    assert list(tools) == eligible[:limit]


@given(
    complexity=unit,
    preferred=st.sampled_from(["orchestrator", "worker"]),
    thresholds=st.tuples(unit, unit).map(sorted),
)
def test_the_tier_is_decided_by_the_thresholds(
    complexity: float, preferred: str, thresholds: list[float]
) -> None:
    low, high = thresholds
    dna = TenantDNA(avg_task_complexity=complexity, preferred_model_tier=preferred)
    tier = recommend_tier(dna, low=low, high=high).tier
    if complexity >= high:
        assert tier == "orchestrator"
    elif complexity <= low:
        assert tier == "worker"
    else:
        assert tier == preferred


@given(
    data=profiles,
    price=st.floats(min_value=0, max_value=1000, allow_nan=False),
    sessions=st.integers(min_value=0, max_value=10**6),
)
def test_the_cost_is_the_average_tokens_multiplied_out(
    data: dict[str, Any], price: float, sessions: int
) -> None:
    dna = TenantDNA.from_dict(data)
    prediction = predict_cost(dna, price_per_1k_tokens=price, sessions=sessions)
    assert prediction.tokens == dna.avg_tokens_per_task * sessions
    assert prediction.cost == pytest.approx(
        prediction.tokens * price / 1000, rel=1e-15, abs=0.0
    )


# --- the example and the README -------------------------------------------------


def _run_python(*arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _readme_block() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(
        r"^## Using the profile\n(?:(?!^## ).)*?^```python\n(.*?)^```$",
        readme,
        flags=re.MULTILINE | re.DOTALL,
    )
    assert match, 'README.md has no "## Using the profile" section with a python block'
    return match.group(1)


def test_the_example_prints_the_five_decisions() -> None:
    assert _run_python(str(EXAMPLE)) == EXAMPLE_OUTPUT


def test_the_readme_shows_the_example_as_it_is() -> None:
    assert _readme_block() == EXAMPLE.read_text()


def test_the_readme_example_runs() -> None:
    assert _run_python("-c", _readme_block()) == EXAMPLE_OUTPUT
