"""Hostile values - str subclasses, raising mappings, huge containers - bend no rule.

Every way in (session metrics, ``from_dict``, ``check_profile``, tenant ids)
judges a ``str`` subclass by its plain characters, names the key when a mapping
raises (chaining what it raised), and leaves the profile as it was.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors import InvalidTenantId, check_tenant_id
from dna import (
    SESSION_METRIC_KEYS,
    InvalidDNA,
    InvalidSessionMetrics,
    TenantDNA,
    check_profile,
)
from dna._rules import MAX_NAME_LENGTH, describe
from tests.strategies import (
    AllOfThem,
    Boom,
    HostileMapping,
    ObjectWithRaisingRepr,
    ReprReturnsNonStr,
    StrSaysWorker,
    hostile_mappings,
    hostile_strs,
    huge_tools,
    profiles,
    raising_methods,
    session_metrics,
)

# A clock that always moves makes "the profile did not change" meaningful.
pytestmark = pytest.mark.usefixtures("clock")


def _seeded() -> TenantDNA:
    dna = TenantDNA(last_updated=0.0)
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


def _assert_canonical(dna: TenantDNA) -> None:
    """Every value in range and of its plain type: what from_dict accepts."""
    assert type(dna.avg_task_complexity) is float
    assert type(dna.preferred_model_tier) is str
    assert dna.preferred_model_tier in ("orchestrator", "worker")
    assert type(dna.avg_tokens_per_task) is int
    assert all(
        type(tool) is str and 0 < len(tool) <= 200 and type(f) is float
        for tool, f in dna.tool_usage_frequency.items()
    )
    assert all(type(hour) is int and 0 <= hour <= 23 for hour in dna.peak_hours)
    assert all(
        type(intent) is str and 0 < len(intent) <= 200 for intent in dna.common_intents
    )
    assert TenantDNA.from_dict(dna.to_dict()) == dna


def _error_of(call: Callable[[], object]) -> InvalidDNA | InvalidSessionMetrics | None:
    """The rules' error that ``call`` raised, or ``None`` if it returned."""
    try:
        call()
    except (InvalidDNA, InvalidSessionMetrics) as error:
        return error
    return None


# -- str subclasses are judged by their plain characters -----------------------

text = st.text(max_size=260)


@given(tier=hostile_strs(st.one_of(text, st.sampled_from(["worker", "banana"]))))
def test_a_str_subclass_tier_is_stored_only_if_its_characters_are_a_tier(
    tier: str,
) -> None:
    plain = str.__str__(tier)
    dna = _seeded()
    before = dna.to_dict()
    if plain in ("orchestrator", "worker"):
        dna.update_from_session({"model_tier": tier})
        assert dna.preferred_model_tier == plain
    else:
        with pytest.raises(InvalidSessionMetrics) as caught:
            dna.update_from_session({"model_tier": tier})
        assert caught.value.key == "model_tier"
        assert dna.to_dict() == before
    _assert_canonical(dna)


@given(intent=hostile_strs(text))
def test_a_str_subclass_intent_is_measured_by_its_characters(intent: str) -> None:
    plain = str.__str__(intent)
    dna = _seeded()
    before = dna.to_dict()
    if 0 < len(plain) <= 200:
        dna.update_from_session({"intent": intent})
        assert dna.common_intents[-1] == plain
    else:
        with pytest.raises(InvalidSessionMetrics) as caught:
            dna.update_from_session({"intent": intent})
        assert caught.value.key == "intent"
        assert dna.to_dict() == before
    _assert_canonical(dna)


def test_a_500_character_intent_is_refused_whatever_its_str_says() -> None:
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(InvalidSessionMetrics, match="intent"):
        dna.update_from_session({"intent": AllOfThem("x" * 500)})
    assert dna.to_dict() == before


def test_banana_is_not_a_tier_even_when_it_equals_everything() -> None:
    dna = _seeded()
    with pytest.raises(InvalidSessionMetrics, match="model_tier"):
        dna.update_from_session({"model_tier": AllOfThem("banana")})
    assert dna.preferred_model_tier == "worker"


@given(names=st.lists(hostile_strs(text), min_size=1, max_size=5))
def test_str_subclass_tool_names_are_stored_as_their_plain_characters(
    names: list[str],
) -> None:
    tools = dict.fromkeys(names, 1)  # names equal to everything collapse here
    plains = [str.__str__(name) for name in tools]
    dna = _seeded()
    before = dna.to_dict()
    if all(0 < len(plain) <= 200 for plain in plains):
        dna.update_from_session({"tools_used": tools})
        assert set(plains) <= set(dna.tool_usage_frequency)
    else:
        with pytest.raises(InvalidSessionMetrics) as caught:
            dna.update_from_session({"tools_used": tools})
        assert caught.value.key == "tools_used"
        assert dna.to_dict() == before
    _assert_canonical(dna)


@given(
    data=profiles,
    field=st.sampled_from(["preferred_model_tier", "common_intents"]),
    value=hostile_strs(text),
)
def test_from_dict_judges_str_subclasses_by_their_characters(
    data: dict[str, Any], field: str, value: str
) -> None:
    data = {**data, field: [value] if field == "common_intents" else value}
    plain_data = {**data, field: str.__str__(value)}
    if field == "common_intents":
        plain_data[field] = [str.__str__(value)]
    error = _error_of(lambda: TenantDNA.from_dict(plain_data))
    if error is not None:
        with pytest.raises(InvalidDNA) as caught:
            TenantDNA.from_dict(data)
        assert caught.value.field == field
        assert isinstance(error, InvalidDNA)
        assert error.field == field
    else:
        profile = TenantDNA.from_dict(data)
        assert profile == TenantDNA.from_dict(plain_data)
        _assert_canonical(profile)


# -- check_profile: the rules of from_dict for a profile built by hand ---------

field_values = st.one_of(
    st.floats(allow_nan=True),
    st.integers(min_value=-5, max_value=30),
    hostile_strs(st.sampled_from(["worker", "orchestrator", "banana", "", "x" * 300])),
    st.lists(st.integers(min_value=-1, max_value=30), max_size=14),
    st.lists(hostile_strs(st.text(max_size=3)), max_size=3),
    st.dictionaries(hostile_strs(st.text(max_size=3)), st.floats(), max_size=3),
    st.none(),
)


@given(
    data=profiles,
    changes=st.dictionaries(st.sampled_from(list(TenantDNA().to_dict())), field_values),
)
def test_check_profile_accepts_exactly_what_from_dict_accepts(
    data: dict[str, Any], changes: dict[str, Any]
) -> None:
    fields = {**data, **changes}
    profile = TenantDNA(**fields)
    error = _error_of(lambda: TenantDNA.from_dict(fields))
    if isinstance(error, InvalidDNA):
        with pytest.raises(InvalidDNA) as caught:
            check_profile(profile)
        assert caught.value.field == error.field
    else:
        checked = check_profile(profile)
        assert checked == TenantDNA.from_dict(fields)
        _assert_canonical(checked)


def test_a_profile_field_that_raises_is_named_with_its_error_chained() -> None:
    class Failing(TenantDNA):
        @property  # type: ignore[misc]
        def peak_hours(self) -> list[int]:
            raise Boom("peak_hours")

        @peak_hours.setter
        def peak_hours(self, value: list[int]) -> None:
            pass

    with pytest.raises(InvalidDNA) as caught:
        check_profile(Failing())
    assert caught.value.field == "peak_hours"
    assert isinstance(caught.value.__cause__, Boom)


# -- mappings that raise -------------------------------------------------------


@given(good=session_metrics, raising=raising_methods, data=st.data())
def test_metrics_whose_reading_raises_are_reported_by_key_and_change_nothing(
    good: dict[str, Any], raising: frozenset[str], data: st.DataObject
) -> None:
    poison = data.draw(st.sampled_from(SESSION_METRIC_KEYS))
    metrics = HostileMapping(good, raising, poison=poison)
    dna = _seeded()
    before = dna.to_dict()
    if raising & {"get", "__getitem__"}:
        with pytest.raises(InvalidSessionMetrics) as caught:
            dna.update_from_session(metrics)
        assert caught.value.key == poison
        assert poison in str(caught.value)
        assert isinstance(caught.value.__cause__, Boom)
        assert dna.to_dict() == before
    else:
        # Nothing the rules read raised: the session is what the dict says.
        dna.update_from_session(metrics)
        expected = TenantDNA.from_dict(before)
        expected.update_from_session(good)
        assert {**dna.to_dict(), "last_updated": 0} == {
            **expected.to_dict(),
            "last_updated": 0,
        }


# Valid names only: a name over the limit is refused before anything raises.
@given(
    tools=hostile_mappings(
        st.dictionaries(st.text(min_size=1, max_size=MAX_NAME_LENGTH), st.just(1))
    )
)
def test_tools_used_that_raises_is_reported_as_tools_used_or_read_correctly(
    tools: HostileMapping,
) -> None:
    dna = _seeded()
    before = dna.to_dict()
    error = _error_of(
        lambda: dna.update_from_session({"tools_used": tools, "hour_utc": 3})
    )
    if error is not None:
        assert isinstance(error, InvalidSessionMetrics)
        assert error.key == "tools_used"
        assert isinstance(error.__cause__, Boom)
        assert dna.to_dict() == before
    else:
        assert dna.peak_hours[-1] == 3
        _assert_canonical(dna)


@pytest.mark.parametrize("method", ["items", "__len__"])
def test_tools_used_whose_items_or_len_raises_is_refused_naming_it(
    method: str,
) -> None:
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(InvalidSessionMetrics) as caught:
        dna.update_from_session({"tools_used": HostileMapping({"a": 1}, {method})})
    assert caught.value.key == "tools_used"
    assert str(caught.value).startswith("tools_used: expected a mapping")
    assert isinstance(caught.value.__cause__, Boom)
    assert dna.to_dict() == before


@given(tools=huge_tools)
def test_tools_used_far_above_the_limit_is_refused_without_reading_it_all(
    tools: Any,
) -> None:
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(InvalidSessionMetrics, match="at most 1000") as caught:
        dna.update_from_session({"tools_used": tools})
    assert caught.value.key == "tools_used"
    assert dna.to_dict() == before


@given(
    data=profiles,
    raising=raising_methods,
    field=st.sampled_from(list(TenantDNA().to_dict())),
)
def test_from_dict_names_the_field_whose_reading_raises(
    data: dict[str, Any], raising: frozenset[str], field: str
) -> None:
    mapping = HostileMapping(data, raising, poison=field)
    error = _error_of(lambda: TenantDNA.from_dict(mapping))
    if error is not None:
        assert isinstance(error, InvalidDNA)
        assert error.field == field
        assert isinstance(error.__cause__, Boom)
    else:
        # Only methods that from_dict does not need raised.
        assert "__getitem__" not in raising
        assert TenantDNA.from_dict(mapping) == TenantDNA.from_dict(data)


@given(raising=raising_methods)
def test_from_dict_names_tool_usage_frequency_when_it_raises(
    raising: frozenset[str],
) -> None:
    frequencies = HostileMapping({"search": 0.5}, raising)
    data = {"tool_usage_frequency": frequencies}
    error = _error_of(lambda: TenantDNA.from_dict(data))
    if error is not None:
        assert isinstance(error, InvalidDNA)
        assert error.field == "tool_usage_frequency"
        assert isinstance(error.__cause__, Boom)
    else:
        assert TenantDNA.from_dict(data).tool_usage_frequency == {"search": 0.5}


# -- describe: bounded, never raises ------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        list(range(10**7)),
        {i: i for i in range(10**5)},
        set(range(10**5)),
        "x" * 10**6,
        10**5000,
        ObjectWithRaisingRepr(),
        ReprReturnsNonStr(),
        AllOfThem("banana"),
        HostileMapping({"a": 1}, frozenset(["items", "__len__", "__iter__"])),
        [[[[[[[[["deep"]]]]]]]]],
    ],
    ids=lambda value: type(value).__name__,
)
def test_describe_is_short_and_never_raises(value: Any) -> None:
    text = describe(value)
    assert type(text) is str
    assert 0 < len(text) <= 60


def test_describe_shows_a_str_subclass_by_its_characters() -> None:
    assert describe(StrSaysWorker("banana")) == "StrSaysWorker('banana')"


@given(
    key=st.sampled_from(
        ["task_complexity", "model_tier", "tokens_used", "hour_utc", "intent"]
    ),
    value=st.sampled_from(
        [ObjectWithRaisingRepr(), ReprReturnsNonStr(), list(range(10**6))]
    ),
)
def test_a_bad_value_whose_repr_raises_still_gets_a_clear_error(
    key: str, value: Any
) -> None:
    dna = _seeded()
    before = dna.to_dict()
    with pytest.raises(InvalidSessionMetrics) as caught:
        dna.update_from_session({key: value})
    assert caught.value.key == key
    assert str(caught.value).startswith(f"{key}: expected ")
    assert len(str(caught.value)) < 200
    assert dna.to_dict() == before


# -- tenant ids that cannot be confused ---------------------------------------


def _is_valid_id(plain: str) -> bool:
    # An independent statement of the rules, character by character.
    return (
        0 < len(plain) <= 256
        and not plain[0].isspace()
        and not plain[-1].isspace()
        and all(
            unicodedata.category(c) not in {"Cc", "Cf", "Zl", "Zp", "Cs"} for c in plain
        )
    )


tenant_texts = st.one_of(
    st.text(max_size=260),
    st.text(
        st.sampled_from("ab -\t\u202e\u200b\ufeff\u2028\u2029\u00a0\x00\x85é"),
        max_size=8,
    ),
)


@given(plain=tenant_texts)
def test_a_tenant_id_is_accepted_exactly_when_it_cannot_be_confused(
    plain: str,
) -> None:
    if _is_valid_id(plain):
        assert check_tenant_id(plain) == plain
    else:
        with pytest.raises(InvalidTenantId, match="tenant_id: expected"):
            check_tenant_id(plain)


@given(tenant_id=hostile_strs(tenant_texts))
def test_a_str_subclass_tenant_id_is_judged_and_returned_as_its_plain_str(
    tenant_id: str,
) -> None:
    plain = str.__str__(tenant_id)
    if _is_valid_id(plain):
        checked = check_tenant_id(tenant_id)
        assert type(checked) is str
        assert checked == plain
    else:
        with pytest.raises(InvalidTenantId):
            check_tenant_id(tenant_id)


@pytest.mark.parametrize(
    "tenant_id",
    [
        "",
        " ",
        "\t\n",
        " acme",
        "acme ",
        "acme\u202e",  # right-to-left override
        "ac\u200bme",  # zero-width space
        "\ufeffacme",  # byte order mark
        "acme\u2028",  # line separator
        "ac\u2029me",  # paragraph separator
        "ac\x00me",
        "ac\x85me",  # NEL, a C1 control
        "ac\ud800me",  # a lone surrogate
        "x" * 257,
        AllOfThem("x" * 10_000),  # says it has 1 character
        b"acme",
        42,
        None,
    ],
    ids=describe,
)
def test_tenant_ids_that_could_be_confused_are_refused(tenant_id: Any) -> None:
    with pytest.raises(InvalidTenantId) as caught:
        check_tenant_id(tenant_id)
    assert str(caught.value).startswith("tenant_id: expected a str of 1 to 256")
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize(
    "tenant_id", ["acme", "a", "a b", "café", "東京-42", "x" * 256, "a\u00a0b"]
)
def test_ordinary_tenant_ids_are_accepted_as_they_are(tenant_id: str) -> None:
    assert check_tenant_id(tenant_id) == tenant_id


def test_invalid_tenant_id_says_what_it_refuses() -> None:
    doc = InvalidTenantId.__doc__ or ""
    for words in ("format", "U+202E", "separator", "whitespace", "256"):
        assert words in doc
    with pytest.raises(InvalidTenantId, match=r"U\+202E at index 4"):
        check_tenant_id("acme\u202e")


def test_profiles_built_from_hostile_sessions_stay_in_range() -> None:
    # The bypasses of issue 8, each refused.
    dna = _seeded()
    before = dna.to_dict()
    for metrics in (
        {"model_tier": AllOfThem("banana")},
        {"intent": StrSaysWorker("x" * 500)},
        {"hour_utc": 99},
        {"tokens_used": -5},
        {"task_complexity": 1.4},
    ):
        with pytest.raises(InvalidSessionMetrics):
            dna.update_from_session(metrics)
    assert dna.to_dict() == before
