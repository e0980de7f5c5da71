"""Bad session metrics and bad serialised profiles are rejected, changing nothing."""

from __future__ import annotations

import math
from fractions import Fraction
from types import MappingProxyType
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dna import (
    InvalidDNA,
    InvalidSessionMetrics,
    SessionMetrics,
    TenantDNA,
    check_profile,
    parse_session_metrics,
    set_clock,
)
from tests.conftest import learned
from tests.strategies import (
    alphas,
    bad_metric,
    hours,
    profiles,
    session_metrics,
    unit,
)

# A clock that always moves makes "the profile did not change" meaningful.
pytestmark = pytest.mark.usefixtures("clock")


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


# -- one set of rules for every way in ----------------------------------------


def test_check_profile_refuses_the_bypass_of_a_hand_built_profile() -> None:
    with pytest.raises(InvalidDNA) as caught:
        check_profile(TenantDNA(avg_task_complexity=7.0, peak_hours=[99, 99]))
    assert caught.value.field == "avg_task_complexity"
    with pytest.raises(InvalidDNA) as caught:
        check_profile(TenantDNA(peak_hours=[99, 99]))
    assert caught.value.field == "peak_hours"


@given(data=profiles)
def test_check_profile_returns_an_equal_copy_sharing_nothing(
    data: dict[str, Any],
) -> None:
    profile = TenantDNA.from_dict(data)
    checked = check_profile(profile)
    assert checked == profile
    assert checked is not profile
    assert checked.tool_usage_frequency is not profile.tool_usage_frequency
    assert checked.peak_hours is not profile.peak_hours
    assert checked.common_intents is not profile.common_intents


def test_check_profile_stores_canonical_types() -> None:
    profile = TenantDNA(
        avg_task_complexity=1,
        avg_tokens_per_task=Fraction(10, 1).numerator,
        peak_hours=(9, 10),  # type: ignore[arg-type]
        common_intents=("chat",),  # type: ignore[arg-type]
        last_updated=5,
    )
    checked = check_profile(profile)
    assert type(checked.avg_task_complexity) is float
    assert checked.peak_hours == [9, 10]
    assert checked.common_intents == ["chat"]
    assert type(checked.last_updated) is float


@pytest.mark.parametrize("profile", [None, {}, TenantDNA().to_dict(), "dna"])
def test_check_profile_refuses_what_is_not_a_profile_with_type_error(
    profile: Any,
) -> None:
    with pytest.raises(TypeError, match="dna: expected a TenantDNA"):
        check_profile(profile)


@pytest.mark.parametrize(
    "build",
    [
        lambda: SessionMetrics(task_complexity=1.4, hour_utc=99, tokens_used=-5),  # type: ignore[call-arg]
        SessionMetrics,
        lambda: SessionMetrics(None, 1.4, None, -5, None, 0, 99, None, None),
        lambda: SessionMetrics._make([1.4, None, -5, None, 0, 99, None, None]),
        lambda: parse_session_metrics({})._replace(hour_utc=99),
    ],
)
def test_session_metrics_cannot_be_built_by_hand(build: Any) -> None:
    with pytest.raises(TypeError, match="parse_session_metrics"):
        build()


def test_session_metrics_cannot_be_subclassed() -> None:
    with pytest.raises(TypeError):
        type("Fake", (SessionMetrics,), {"hour_utc": 99})


def test_checked_tool_counts_cannot_be_changed_after_the_check() -> None:
    session = parse_session_metrics({"tools_used": {"search": 1}})
    assert session.tools_used is not None
    with pytest.raises(TypeError):
        session.tools_used["search"] = -5  # type: ignore[index]
    with pytest.raises(AttributeError):
        session.hour_utc = 99  # type: ignore[misc]


class _LookAlike(NamedTuple):
    task_complexity: float | None = 1.4
    model_tier: str | None = "banana"
    tokens_used: int | None = -5
    tools_used: Any = None
    tools_total: int = 0
    hour_utc: int | None = 99
    risk_score: float | None = None
    intent: str | None = None


def test_apply_session_refuses_anything_but_parsed_metrics() -> None:
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(TypeError, match="parse_session_metrics"):
        dna.apply_session(_LookAlike())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parse_session_metrics"):
        dna.apply_session({"hour_utc": 3})  # type: ignore[arg-type]
    assert dna.to_dict() == before


@given(session=session_metrics, alpha=alphas)
def test_parse_then_apply_is_update_from_session(
    session: dict[str, Any], alpha: float
) -> None:
    applied, updated = _seeded(), _seeded()
    applied.apply_session(parse_session_metrics(session), alpha)
    updated.update_from_session(session, alpha)
    assert learned(applied) == learned(updated)


# -- numbers: one test everywhere ----------------------------------------------
# numpy is a test-only dependency: each test that needs it skips without it.

REAL_TYPES = ["float", "Fraction", "float16", "float32", "float64", "longdouble"]
INTEGRAL_TYPES = ["int", "int8", "int16", "int32", "int64", "uint8"]


def _number_type(name: str) -> Any:
    if name in ("float", "int"):
        return {"float": float, "int": int}[name]
    if name == "Fraction":
        return Fraction
    return getattr(pytest.importorskip("numpy"), name)


@given(
    kind=st.sampled_from(REAL_TYPES),
    value=unit,
    alpha=st.floats(min_value=-1.0, max_value=2.0),
)
def test_any_real_number_is_accepted_for_metrics_and_alpha_alike(
    kind: str, value: float, alpha: float
) -> None:
    number = _number_type(kind)
    complexity, rate = number(value), number(alpha)
    expected = _seeded()
    expected.update_from_session(
        {"task_complexity": float(complexity), "risk_score": float(complexity)},
        float(rate),
    )
    dna = _seeded()
    dna.update_from_session(
        {"task_complexity": complexity, "risk_score": complexity}, rate
    )
    assert learned(dna) == learned(expected)
    assert type(dna.avg_task_complexity) is float


def test_a_numpy_alpha_is_accepted_like_a_numpy_metric() -> None:
    np = pytest.importorskip("numpy")
    dna = TenantDNA()
    dna.update_from_session({"task_complexity": np.float32(1.0)}, np.float32(0.5))
    assert dna.avg_task_complexity == 0.75


@given(kind=st.sampled_from(INTEGRAL_TYPES), hour=hours)
def test_any_integral_number_is_accepted_for_counts_and_alpha(
    kind: str, hour: int
) -> None:
    number = _number_type(kind)
    dna = _seeded()
    dna.update_from_session(
        {
            "hour_utc": number(hour),
            "tokens_used": number(hour),
            "tools_used": {"a": number(1)},
        },
        number(1),
    )
    assert dna.peak_hours[-1] == hour
    assert type(dna.peak_hours[-1]) is int
    assert type(dna.avg_tokens_per_task) is int
    assert dna.avg_tokens_per_task == hour  # alpha 1: the last value


@pytest.mark.parametrize(
    "value",
    [
        lambda np: True,
        lambda np: False,
        lambda np: np.bool_(True),
        lambda np: np.float64("nan"),
        lambda np: np.float32("inf"),
    ],
)
def test_bools_and_non_finite_numbers_are_refused_for_alpha_and_metrics_alike(
    value: Any,
) -> None:
    refused = value(pytest.importorskip("numpy"))
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(InvalidSessionMetrics, match="alpha"):
        dna.update_from_session({"task_complexity": 0.5}, refused)
    with pytest.raises(InvalidSessionMetrics, match="task_complexity"):
        dna.update_from_session({"task_complexity": refused})
    assert dna.to_dict() == before


class _BrokenReal(float):
    def __float__(self) -> float:
        raise ArithmeticError("no float")


def test_a_number_whose_conversion_raises_is_refused_with_the_error_chained() -> None:
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(InvalidSessionMetrics) as caught:
        dna.update_from_session({"risk_score": _BrokenReal(0.5)})
    assert caught.value.key == "risk_score"
    assert isinstance(caught.value.__cause__, ArithmeticError)
    with pytest.raises(InvalidSessionMetrics, match="alpha") as caught:
        dna.update_from_session({"risk_score": 0.5}, _BrokenReal(0.5))
    assert isinstance(caught.value.__cause__, ArithmeticError)
    assert dna.to_dict() == before


# -- what the rules allow, and a failure that is not the session's --------------


def test_a_tool_count_has_no_upper_bound() -> None:
    # SPEC 1.1: counts are ints >= 0 (only tokens_used is capped at 10**12).
    dna = TenantDNA()
    dna.update_from_session({"tools_used": {"a": 3 * 10**30, "b": 10**30}}, 1.0)
    assert dna.tool_usage_frequency == {"a": 0.75, "b": 0.25}


@pytest.mark.parametrize(
    ("alpha", "rate"), [(10**400, 1.0), (-(10**400), 0.01)], ids=["huge", "-huge"]
)
def test_an_int_alpha_however_large_is_clamped(alpha: int, rate: float) -> None:
    dna = TenantDNA()
    dna.update_from_session({"task_complexity": 1.0}, alpha)
    assert dna.avg_task_complexity == pytest.approx(0.5 + 0.5 * rate)


def test_a_clock_that_fails_changes_nothing() -> None:
    dna = _seeded()
    before = dna.to_dict()
    session = {"task_complexity": 1.0, "hour_utc": 3, "intent": "new"}
    for clock, error in (
        (lambda: 1 / 0, ZeroDivisionError),
        (lambda: math.nan, ValueError),
    ):
        previous = set_clock(clock)
        try:
            with pytest.raises(error):
                dna.update_from_session(session)
        finally:
            set_clock(previous)
        assert dna.to_dict() == before


def test_a_profile_built_with_tuples_learns_into_lists() -> None:
    dna = TenantDNA(peak_hours=(9, 10), common_intents=("a", "b"))  # type: ignore[arg-type]
    dna.update_from_session({"hour_utc": 9, "intent": "c"})
    assert (dna.peak_hours, dna.common_intents) == ([10, 9], ["a", "b", "c"])
    assert TenantDNA.from_dict(dna.to_dict()) == dna
