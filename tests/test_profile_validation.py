"""Bad session metrics and bad serialised profiles are rejected, changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import dna as dna_module
from dna import InvalidDNA, InvalidSessionMetrics, TenantDNA
from tests.strategies import bad_metric, profiles, session_metrics


@pytest.fixture(autouse=True)
def _ticking_clock() -> Iterator[None]:
    # A clock that always moves makes "last_updated did not change" meaningful.
    ticks = iter(range(10**9))
    previous = dna_module.set_clock(lambda: float(next(ticks)))
    try:
        yield
    finally:
        dna_module.set_clock(previous)


def _seeded() -> TenantDNA:
    dna = TenantDNA()
    dna.update_from_session(
        {
            "task_complexity": 0.8,
            "tokens_used": 5000,
            "tools_used": {"code_interpreter": 5, "search": 2},
            "hour_utc": 14,
            "intent": "code_generation",
        }
    )
    return dna


@given(good=session_metrics, bad=bad_metric)
def test_a_bad_metric_is_rejected_by_name_and_changes_nothing(
    good: dict[str, Any], bad: tuple[str, Any]
) -> None:
    key, value = bad
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(InvalidSessionMetrics) as caught:
        dna.update_from_session({**good, key: value})
    assert caught.value.key == key
    assert key in str(caught.value)
    assert "expected" in str(caught.value)
    assert dna.to_dict() == before


@given(
    alpha=st.one_of(
        st.booleans(),
        st.just(float("nan")),
        st.just(float("inf")),
        st.just(float("-inf")),
        st.text(max_size=3),
        st.none(),
    )
)
def test_a_bad_alpha_is_rejected_and_changes_nothing(alpha: Any) -> None:
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(InvalidSessionMetrics, match="alpha") as caught:
        dna.update_from_session({"task_complexity": 1.0}, alpha)
    assert caught.value.key == "alpha"
    assert dna.to_dict() == before


@pytest.mark.parametrize("metrics", [None, [("hour_utc", 3)], "hour_utc", 42])
def test_session_metrics_must_be_a_mapping(metrics: Any) -> None:
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(InvalidSessionMetrics, match="session_metrics"):
        dna.update_from_session(metrics)
    assert dna.to_dict() == before


def test_any_mapping_is_accepted_as_metrics() -> None:
    dna = TenantDNA()
    dna.update_from_session(MappingProxyType({"hour_utc": 5}))
    assert dna.peak_hours == [5]


def test_the_first_bad_key_is_named_even_after_good_ones() -> None:
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(
        InvalidSessionMetrics, match=r"hour_utc: expected an int in \[0, 23\], got 24"
    ):
        dna.update_from_session({"task_complexity": 0.1, "hour_utc": 24})
    assert dna.to_dict() == before


def test_invalid_errors_are_value_errors() -> None:
    assert issubclass(InvalidSessionMetrics, ValueError)
    assert issubclass(InvalidDNA, ValueError)


def test_from_dict_fills_missing_fields_with_defaults() -> None:
    dna = TenantDNA.from_dict({"risk_profile": 0.9})
    assert dna.risk_profile == 0.9
    assert dna.avg_task_complexity == 0.5
    assert dna.avg_tokens_per_task == 2000
    assert dna.common_intents == []


def test_from_dict_ignores_unknown_fields() -> None:
    assert TenantDNA.from_dict({"colour": "blue", "last_updated": 5.0}) == TenantDNA(
        last_updated=5.0
    )


def test_from_dict_copies_containers() -> None:
    data: dict[str, Any] = {"peak_hours": [1, 2], "tool_usage_frequency": {"a": 0.5}}
    dna = TenantDNA.from_dict(data)
    data["peak_hours"].append(3)
    data["tool_usage_frequency"]["b"] = 0.1
    assert dna.peak_hours == [1, 2]
    assert dna.tool_usage_frequency == {"a": 0.5}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("avg_task_complexity", 1.5),
        ("avg_task_complexity", float("nan")),
        ("avg_task_complexity", "0.5"),
        ("preferred_model_tier", "manager"),
        ("avg_tokens_per_task", 2000.5),
        ("avg_tokens_per_task", -1),
        ("avg_tokens_per_task", True),
        ("tool_usage_frequency", {"search": 1.2}),
        ("tool_usage_frequency", {"": 0.2}),
        ("tool_usage_frequency", {f"t{i}": 0.1 for i in range(51)}),
        ("tool_usage_frequency", ["search"]),
        ("peak_hours", [1, 1]),
        ("peak_hours", [24]),
        ("peak_hours", list(range(13))),
        ("peak_hours", "12"),
        ("risk_profile", -0.1),
        ("common_intents", ["chat", "chat"]),
        ("common_intents", [""]),
        ("common_intents", [f"i{i}" for i in range(21)]),
        ("last_updated", float("inf")),
        ("last_updated", None),
    ],
)
def test_from_dict_rejects_invalid_fields_by_name(field: str, value: Any) -> None:
    with pytest.raises(InvalidDNA) as caught:
        TenantDNA.from_dict({field: value})
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: expected")


@given(data=profiles, bad=bad_metric)
def test_from_dict_never_accepts_what_a_session_could_not_hold(
    data: dict[str, Any], bad: tuple[str, Any]
) -> None:
    # The serialised form is at least as strict as the session rules it came from.
    field = {
        "task_complexity": "avg_task_complexity",
        "risk_score": "risk_profile",
        "model_tier": "preferred_model_tier",
    }.get(bad[0])
    if field is None:
        return
    with pytest.raises(InvalidDNA):
        TenantDNA.from_dict({**data, field: bad[1]})


@pytest.mark.parametrize("data", [None, [], "{}", 3])
def test_from_dict_needs_a_mapping(data: Any) -> None:
    with pytest.raises(InvalidDNA, match="data"):
        TenantDNA.from_dict(data)
