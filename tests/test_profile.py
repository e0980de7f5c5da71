"""Every update rule of the profile, with exact expected numbers."""

from __future__ import annotations

import json
import math

import pytest

from dna import TenantDNA
from tests.conftest import SEED_SESSION


def test_defaults_match_the_seed(clock: object) -> None:
    dna = TenantDNA()
    assert dna.avg_task_complexity == 0.5
    assert dna.preferred_model_tier == "worker"
    assert dna.avg_tokens_per_task == 2000
    assert dna.tool_usage_frequency == {}
    assert dna.peak_hours == []
    assert dna.risk_profile == 0.3
    assert dna.common_intents == []
    assert dna.last_updated == 1_700_000_001.0


def test_fields_are_in_the_seed_order() -> None:
    assert list(TenantDNA.__dataclass_fields__) == [
        "avg_task_complexity",
        "preferred_model_tier",
        "avg_tokens_per_task",
        "tool_usage_frequency",
        "peak_hours",
        "risk_profile",
        "common_intents",
        "last_updated",
    ]


def test_containers_are_not_shared_between_profiles() -> None:
    first, second = TenantDNA(), TenantDNA()
    first.tool_usage_frequency["search"] = 1.0
    first.peak_hours.append(3)
    first.common_intents.append("chat")
    assert second.tool_usage_frequency == {}
    assert second.peak_hours == []
    assert second.common_intents == []


def test_seed_session_from_the_default_profile(clock: object) -> None:
    dna = TenantDNA()
    dna.update_from_session(SEED_SESSION)
    assert dna.avg_task_complexity == pytest.approx(0.56, abs=1e-15)
    assert dna.preferred_model_tier == "orchestrator"
    assert dna.avg_tokens_per_task == 2600
    assert type(dna.avg_tokens_per_task) is int
    assert dna.tool_usage_frequency == {
        "code_interpreter": pytest.approx(0.2 * 5 / 7, abs=1e-15),
        "search": pytest.approx(0.2 * 2 / 7, abs=1e-15),
    }
    assert dna.peak_hours == [14]
    assert dna.risk_profile == pytest.approx(0.32, abs=1e-15)
    assert dna.common_intents == ["code_generation"]
    assert dna.last_updated == 1_700_000_002.0


def test_two_seed_sessions_compound_the_ema() -> None:
    dna = TenantDNA()
    dna.update_from_session(SEED_SESSION)
    dna.update_from_session(SEED_SESSION)
    assert dna.avg_task_complexity == pytest.approx(0.56 * 0.8 + 0.16, abs=1e-15)
    assert dna.avg_tokens_per_task == 3080
    assert dna.tool_usage_frequency["code_interpreter"] == pytest.approx(
        (0.2 * 5 / 7) * 0.8 + (5 / 7) * 0.2, abs=1e-15
    )
    assert dna.peak_hours == [14]
    assert dna.common_intents == ["code_generation"]


def test_alpha_is_clamped_below_to_one_hundredth() -> None:
    dna = TenantDNA()
    dna.update_from_session({"task_complexity": 1.0}, alpha=0.0)
    assert dna.avg_task_complexity == pytest.approx(0.5 * 0.99 + 0.01, abs=1e-15)


def test_alpha_is_clamped_above_to_one() -> None:
    dna = TenantDNA()
    dna.update_from_session({"task_complexity": 0.9, "risk_score": 0.1}, alpha=7)
    assert dna.avg_task_complexity == 0.9
    assert dna.risk_profile == 0.1


def test_integer_alpha_is_accepted() -> None:
    dna = TenantDNA()
    dna.update_from_session({"tokens_used": 10}, alpha=1)
    assert dna.avg_tokens_per_task == 10


@pytest.mark.parametrize(
    ("old", "observed", "expected"),
    [
        (2000, 2002, 2000),  # 2000.4 rounds down
        (2000, 2003, 2001),  # 2000.6 rounds up
        (0, 5, 2),  # 2.5 rounds half to even: 2
        (1, 6, 4),  # 3.5 rounds half to even: 4
    ],
)
def test_tokens_round_with_python_round(old: int, observed: int, expected: int) -> None:
    alpha = 0.2 if old == 2000 else 0.5
    dna = TenantDNA(avg_tokens_per_task=old)
    dna.update_from_session({"tokens_used": observed}, alpha=alpha)
    assert dna.avg_tokens_per_task == expected
    assert type(dna.avg_tokens_per_task) is int


def test_model_tier_last_value_wins() -> None:
    dna = TenantDNA()
    for tier in ("orchestrator", "worker", "orchestrator"):
        dna.update_from_session({"model_tier": tier})
    assert dna.preferred_model_tier == "orchestrator"


def test_unused_tools_decay_towards_zero() -> None:
    dna = TenantDNA(tool_usage_frequency={"search": 0.5})
    dna.update_from_session({"tools_used": {"browse": 3}})
    assert dna.tool_usage_frequency == {
        "search": pytest.approx(0.4, abs=1e-15),
        "browse": pytest.approx(0.2, abs=1e-15),
    }


def test_zero_total_tool_calls_change_nothing() -> None:
    dna = TenantDNA(tool_usage_frequency={"search": 0.5})
    dna.update_from_session({"tools_used": {"search": 0, "browse": 0}})
    dna.update_from_session({"tools_used": {}})
    assert dna.tool_usage_frequency == {"search": 0.5}


def test_tools_are_pruned_to_the_fifty_most_frequent() -> None:
    known = {f"tool{i:02d}": 0.01 * (i + 1) for i in range(50)}
    dna = TenantDNA(tool_usage_frequency=dict(known))
    # One new tool with all the calls: it enters, the least frequent one leaves.
    dna.update_from_session({"tools_used": {"new": 1}}, alpha=0.5)
    assert len(dna.tool_usage_frequency) == 50
    assert "new" in dna.tool_usage_frequency
    assert "tool00" not in dna.tool_usage_frequency
    assert dna.tool_usage_frequency["tool49"] == pytest.approx(0.25, abs=1e-15)


def test_pruning_ties_keep_the_name_that_sorts_first() -> None:
    dna = TenantDNA()
    tools = {f"t{i:02d}": 1 for i in range(60)}
    dna.update_from_session({"tools_used": tools})
    assert sorted(dna.tool_usage_frequency) == [f"t{i:02d}" for i in range(50)]


def test_a_repeated_hour_moves_to_the_end() -> None:
    dna = TenantDNA(peak_hours=[9, 10, 11])
    dna.update_from_session({"hour_utc": 9})
    assert dna.peak_hours == [10, 11, 9]


def test_only_the_last_twelve_hours_are_kept() -> None:
    dna = TenantDNA()
    for hour in range(15):
        dna.update_from_session({"hour_utc": hour})
    assert dna.peak_hours == list(range(3, 15))


def test_a_repeated_intent_moves_to_the_end() -> None:
    dna = TenantDNA(common_intents=["chat", "search", "code"])
    dna.update_from_session({"intent": "chat"})
    assert dna.common_intents == ["search", "code", "chat"]


def test_only_the_last_twenty_intents_are_kept() -> None:
    dna = TenantDNA()
    for i in range(25):
        dna.update_from_session({"intent": f"intent-{i}"})
    assert dna.common_intents == [f"intent-{i}" for i in range(5, 25)]


def test_unknown_keys_and_none_values_are_ignored(clock: object) -> None:
    dna = TenantDNA()
    before = dna.to_dict()
    dna.update_from_session(
        {"task_complexity": None, "intent": None, "colour": "blue", "tools_used": None}
    )
    after = dna.to_dict()
    assert after.pop("last_updated") == 1_700_000_002.0
    before.pop("last_updated")
    assert after == before


def test_last_updated_moves_on_every_successful_call(clock: object) -> None:
    dna = TenantDNA()
    dna.update_from_session({})
    assert dna.last_updated == 1_700_000_002.0
    dna.update_from_session({"hour_utc": 3})
    assert dna.last_updated == 1_700_000_003.0


def test_to_dict_is_json_and_holds_copies() -> None:
    dna = TenantDNA()
    dna.update_from_session(SEED_SESSION)
    data = dna.to_dict()
    assert json.loads(json.dumps(data)) == data
    data["tool_usage_frequency"]["x"] = 1.0
    data["peak_hours"].append(1)
    data["common_intents"].append("x")
    assert "x" not in dna.tool_usage_frequency
    assert dna.peak_hours == [14]
    assert dna.common_intents == ["code_generation"]


def test_copy_is_equal_and_independent() -> None:
    dna = TenantDNA()
    dna.update_from_session(SEED_SESSION)
    twin = dna.copy()
    assert twin == dna
    twin.update_from_session({"hour_utc": 1, "tools_used": {"x": 1}})
    assert dna.peak_hours == [14]
    assert "x" not in dna.tool_usage_frequency


def test_the_ema_converges_on_a_constant_signal() -> None:
    dna = TenantDNA()
    for _ in range(200):
        dna.update_from_session({"task_complexity": 0.9})
    assert math.isclose(dna.avg_task_complexity, 0.9, abs_tol=1e-12)
