"""What an update's future resolves to, and what waiting answers cost.

Every update resolves to the profile right after its own session. The
answers of changes still waiting for their commit are kept until it settles,
mostly never asked for (fire-and-forget): they must not cost a profile each.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given

from actors import TenantDNAStore
from actors._cell import freeze, thaw
from dna import TenantDNA
from tests.conftest import SEED_SESSION, sessions_applied, wait_for
from tests.strategies import profiles

WAIT = 10.0

SESSIONS = [
    {"task_complexity": 1.0, "tools_used": {"search": 1}, "hour_utc": hour}
    for hour in range(5)
]


def _store(kind: str, folder: Path) -> TenantDNAStore:
    if kind == "memory":
        return TenantDNAStore()
    durability = "buffered" if kind == "sqlite-buffered" else "commit"
    return TenantDNAStore(
        folder / "p.db", durability=durability, flush_interval=60, exit_timeout=WAIT
    )


def _one_drain(
    store: TenantDNAStore,
    monkeypatch: pytest.MonkeyPatch,
    before_release: Callable[[], object] = lambda: None,
) -> list[Any]:
    """SESSIONS to "acme", fire-and-forget, all but the first in one drain.

    The first update is held in its actor while the others are submitted;
    ``before_release`` runs, then the first goes on and the rest follow it.
    """
    held = threading.Event()
    go = threading.Event()
    apply_session = TenantDNA.apply_session

    def gated(profile: TenantDNA, session: Any, alpha: float = 0.2) -> None:
        if not held.is_set():
            held.set()
            go.wait(timeout=WAIT)
        apply_session(profile, session, alpha)

    monkeypatch.setattr(TenantDNA, "apply_session", gated)
    futures = [store.update_from_session_async("acme", SESSIONS[0], 0.01)]
    assert held.wait(timeout=WAIT)
    futures += [
        store.update_from_session_async("acme", session, 0.01)
        for session in SESSIONS[1:]
    ]
    before_release()
    go.set()
    return futures


@pytest.mark.parametrize("kind", ["memory", "sqlite-commit", "sqlite-buffered"])
def test_every_get_of_an_answer_is_a_profile_of_its_own(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four updates applied in one drain: each but the last is answered with
    # a profile kept for it alone, the last with the latest one.
    with _store(kind, tmp_path) as store:
        futures = _one_drain(store, monkeypatch)
        answers = [future.get(timeout=WAIT) for future in futures]
        assert [sessions_applied(a) for a in answers] == [1, 2, 3, 4, 5]
        assert [a.peak_hours for a in answers] == [
            [0],
            [0, 1],
            [0, 1, 2],
            [0, 1, 2, 3],
            [0, 1, 2, 3, 4],
        ]
        for future, answer in zip(futures, answers, strict=True):
            answer.peak_hours.append(23)
            answer.tool_usage_frequency["mutated"] = 1.0
            again = future.get(timeout=WAIT)
            assert again is not answer
            assert 23 not in again.peak_hours
            assert "mutated" not in again.tool_usage_frequency
        assert store.get("acme").peak_hours == [0, 1, 2, 3, 4]


def _profiles_alive() -> int:
    gc.collect()
    return sum(type(o) is TenantDNA for o in gc.get_objects())


def test_changes_waiting_for_their_commit_keep_no_profile_each(
    tmp_path: Path,
) -> None:
    # Buffered, with the commit held until a tick that does not come: every
    # change is answered and waits, its answer kept. Kept as profiles, they
    # were one each (a profile and two lists for the collector to visit).
    changes = 300
    with _store("sqlite-buffered", tmp_path) as store:
        store.update_from_session("acme", SEED_SESSION)
        store.flush(timeout=WAIT)
        before = _profiles_alive()
        futures = [
            store.update_from_session_async("acme", SESSIONS[n % 5], 0.01)
            for n in range(changes)
        ]
        assert wait_for(lambda: all(f.done for f in futures), WAIT)
        assert store.stats().changes_queued == changes  # none committed yet
        futures.clear()
        kept = _profiles_alive() - before
        assert kept <= 5
        store.flush(timeout=WAIT)
        # Their places are given back as the tenant's actor settles the
        # commit, which a buffered flush does not wait for.
        assert wait_for(lambda: store.stats().changes_queued == 0, WAIT)


def test_changes_a_failed_drain_left_unanswered_are_answered_by_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Buffered: a drain answers the changes it applied, in order. One that
    # fails half-way through (its actor is lost) leaves the rest unanswered
    # behind answered ones; the actor that takes the tenant over answers
    # every one of them, and nothing is applied twice.
    import actors._tenant

    give = actors._tenant._give
    calls = iter(range(1_000))

    def failing(future: Any, answer: Any) -> None:
        if next(calls) == 2:
            raise RuntimeError("lost while answering")
        give(future, answer)

    with _store("sqlite-buffered", tmp_path) as store:
        futures = _one_drain(
            store,
            monkeypatch,
            lambda: monkeypatch.setattr(actors._tenant, "_give", failing),
        )
        answers = [future.get(timeout=WAIT) for future in futures]
        assert [sessions_applied(a) for a in answers] == [1, 2, 3, 4, 5]
        assert store.stats().actors_replaced == 1
        store.flush(timeout=WAIT)
        assert sessions_applied(store.get("acme")) == 5


@given(profiles)
def test_a_frozen_answer_thaws_to_an_equal_profile_sharing_nothing(
    data: dict[str, Any],
) -> None:
    dna = TenantDNA.from_dict(data)
    frozen = freeze(dna)
    first, second = thaw(frozen), thaw(frozen)
    assert first == dna
    assert second == dna
    assert first.tool_usage_frequency is not second.tool_usage_frequency
    assert first.peak_hours is not second.peak_hours
    assert first.common_intents is not second.common_intents
    assert list(first.tool_usage_frequency) == list(dna.tool_usage_frequency)


def _flush_and_settle(store: TenantDNAStore) -> None:
    """Flush, then wait for the tenants' actors to settle what it committed
    (a buffered flush returns once it is written)."""
    store.flush(timeout=WAIT)
    assert wait_for(lambda: store.stats().changes_queued == 0, WAIT)


@pytest.mark.parametrize("kind", ["memory", "sqlite-commit", "sqlite-buffered"])
def test_a_resident_tenant_is_three_objects_for_the_collector(
    tmp_path: Path, kind: str
) -> None:
    # Every full collection visits every resident tenant: its cell, its
    # record and its profile, and no more (the committed profile's hours and
    # intents are kept as tuples, which the collector lets go of).
    # Counted between two populations: what a store holds once whatever the
    # number of tenants (a connection's statements, up to 200 references to
    # its cursors) is not theirs.
    tenants = 4_000
    with _store(kind, tmp_path) as store:
        for n in range(1_000):
            store.update_from_session_async(f"warm{n}", SEED_SESSION)
        _flush_and_settle(store)
        gc.collect()
        before = len(gc.get_objects())
        for n in range(tenants):
            store.update_from_session_async(f"t{n}", SEED_SESSION)
        _flush_and_settle(store)
        gc.collect()
        per_tenant = (len(gc.get_objects()) - before) / tenants
        assert store.stats().resident == tenants + 1_000
        assert per_tenant <= 3.1


@pytest.mark.parametrize("kind", ["memory", "sqlite-commit", "sqlite-buffered"])
def test_every_profile_a_reader_gets_has_lists_of_its_own(
    tmp_path: Path, kind: str
) -> None:
    with _store(kind, tmp_path) as store:
        answers = [
            store.update_from_session("acme", SEED_SESSION),
            store.update_from_session_async("acme", SESSIONS[1]).get(timeout=WAIT),
        ]
        store.flush(timeout=WAIT)
        answers += [store.get("acme"), store.get_versioned("acme").dna]
        for answer in answers:
            assert type(answer.peak_hours) is list
            assert type(answer.common_intents) is list
            answer.peak_hours.append(3)
            answer.common_intents.append("mutated")
        again = store.get("acme")
        assert 3 not in again.peak_hours
        assert "mutated" not in again.common_intents
        assert again.peak_hours == [14, 1]
