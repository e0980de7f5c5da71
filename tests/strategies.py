"""Hypothesis strategies for valid and invalid session metrics and profiles."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
names = st.text(min_size=1, max_size=12)
tiers = st.sampled_from(["orchestrator", "worker"])
hours = st.integers(min_value=0, max_value=23)
tokens = st.integers(min_value=0, max_value=10**12)
alphas = st.one_of(
    st.floats(min_value=-10.0, max_value=10.0, allow_nan=False),
    st.integers(min_value=-5, max_value=5),
)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


session_metrics = st.fixed_dictionaries(
    {},
    optional={
        "task_complexity": _optional(unit),
        "model_tier": _optional(tiers),
        "tokens_used": _optional(tokens),
        "tools_used": _optional(
            st.dictionaries(names, st.integers(min_value=0, max_value=1000), max_size=8)
        ),
        "hour_utc": _optional(hours),
        "risk_score": _optional(unit),
        "intent": _optional(names),
        "unrelated": st.integers(),
    },
)

profiles = st.builds(
    dict,
    avg_task_complexity=unit,
    preferred_model_tier=tiers,
    avg_tokens_per_task=tokens,
    tool_usage_frequency=st.dictionaries(names, unit, max_size=50),
    peak_hours=st.lists(hours, unique=True, max_size=12),
    risk_profile=unit,
    common_intents=st.lists(names, unique=True, max_size=20),
    last_updated=st.floats(allow_nan=False, allow_infinity=False),
)
"""Valid ``to_dict()`` data."""

_not_real = st.one_of(
    st.booleans(),
    st.text(max_size=3),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(float("-inf")),
    st.lists(st.integers(), max_size=2),
    st.just({}),
)
_out_of_unit = st.one_of(
    st.floats(min_value=1.0, exclude_min=True, allow_infinity=False),
    st.floats(max_value=0.0, exclude_max=True, allow_infinity=False),
)
_not_int = st.one_of(
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.none().map(lambda _: "12"),
)
_bad_name = st.one_of(
    st.just(""),
    st.text(min_size=201, max_size=260),
    st.integers(),
    st.booleans(),
    st.binary(min_size=1, max_size=4),
)
_bad_tools = st.one_of(
    st.lists(names, max_size=3),
    st.text(max_size=3),
    st.integers(),
    st.dictionaries(
        _bad_name.filter(lambda v: isinstance(v, str)),
        st.just(1),
        min_size=1,
        max_size=2,
    ),
    st.dictionaries(
        names,
        st.one_of(st.integers(max_value=-1), st.booleans(), st.floats()),
        min_size=1,
        max_size=2,
    ),
    st.just({f"tool{i}": 1 for i in range(1001)}),
)

bad_metric = st.one_of(
    st.tuples(st.just("task_complexity"), st.one_of(_not_real, _out_of_unit)),
    st.tuples(st.just("risk_score"), st.one_of(_not_real, _out_of_unit)),
    st.tuples(
        st.just("model_tier"),
        st.one_of(
            st.text(max_size=12).filter(lambda t: t not in ("orchestrator", "worker")),
            st.integers(),
        ),
    ),
    st.tuples(
        st.just("tokens_used"),
        st.one_of(
            _not_int, st.integers(max_value=-1), st.integers(min_value=10**12 + 1)
        ),
    ),
    st.tuples(
        st.just("hour_utc"),
        st.one_of(_not_int, st.integers(max_value=-1), st.integers(min_value=24)),
    ),
    st.tuples(st.just("intent"), _bad_name),
    st.tuples(st.just("tools_used"), _bad_tools),
)
"""A ``(key, value)`` pair that the rules must reject."""
