"""Real threads against one store: nothing lost, nothing resurrected, no stalls."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pykka
import pytest

from actors import StoreClosed, TenantDNAStore
from actors._cell import TenantCell
from actors._registry import Registry
from actors._tenant import TenantActor
from dna import TenantDNA
from tests.conftest import PROBE, learned, run_threads, sessions_applied

THREADS = 16
CALLS = 125


def test_no_lost_updates_on_one_tenant(store: TenantDNAStore) -> None:
    def work(_: int) -> None:
        for _ in range(CALLS):
            store.update_from_session("acme", PROBE, alpha=0.01)

    run_threads(THREADS, work)
    assert sessions_applied(store.get("acme")) == THREADS * CALLS


def test_no_lost_async_updates_on_one_tenant(store: TenantDNAStore) -> None:
    def work(_: int) -> None:
        futures = [
            store.update_from_session_async("acme", PROBE, alpha=0.01)
            for _ in range(CALLS)
        ]
        for future in futures:
            future.get(timeout=60)

    run_threads(THREADS, work)
    assert sessions_applied(store.get("acme")) == THREADS * CALLS


@pytest.mark.parametrize("max_active", [1024, 3])
def test_no_lost_updates_across_eight_tenants(max_active: int) -> None:
    tenants = [f"tenant-{i}" for i in range(8)]
    with TenantDNAStore(max_active=max_active) as store:

        def work(index: int) -> None:
            for call in range(CALLS):
                tenant = tenants[(index + call) % len(tenants)]
                if call % 2:
                    store.update_from_session(tenant, PROBE, alpha=0.01)
                else:
                    store.update_from_session_async(tenant, PROBE, alpha=0.01)

        run_threads(THREADS, work)
        store.flush(timeout=60)
        applied = [sessions_applied(store.get(tenant)) for tenant in tenants]
        assert sum(applied) == THREADS * CALLS
        assert applied == [THREADS * CALLS // len(tenants)] * len(tenants)
        assert store.list_tenants() == sorted(tenants)


def test_passivation_under_load_loses_nothing() -> None:
    # Two actors for forty tenants: nearly every call activates or passivates.
    tenants = [f"tenant-{i}" for i in range(40)]
    with TenantDNAStore(max_active=2) as store:

        def work(index: int) -> None:
            for call in range(40):
                tenant = tenants[(index * 7 + call) % len(tenants)]
                store.update_from_session_async(tenant, PROBE, alpha=0.01)
                store.get(tenant)

        run_threads(8, work)
        store.flush(timeout=60)
        assert sum(sessions_applied(store.get(t)) for t in tenants) == 8 * 40
        assert store.count == len(tenants)


def test_erasure_wins_over_updates_submitted_before_it(store: TenantDNAStore) -> None:
    futures = [
        store.update_from_session_async("acme", PROBE, alpha=0.01) for _ in range(500)
    ]
    store.delete("acme")
    for future in futures:
        future.get(timeout=60)
    assert learned(store.get("acme")) == learned(TenantDNA())
    assert "acme" not in store.list_tenants()
    assert store.count == 0


def test_erasure_from_another_thread_is_final(store: TenantDNAStore) -> None:
    submitted = threading.Event()
    futures: list[pykka.Future[TenantDNA]] = []

    def updater() -> None:
        futures.extend(
            store.update_from_session_async("acme", PROBE, alpha=0.01)
            for _ in range(500)
        )
        submitted.set()

    thread = threading.Thread(target=updater)
    thread.start()
    submitted.wait(timeout=60)
    store.delete("acme")
    thread.join()
    for future in futures:
        future.get(timeout=60)
    assert store.count == 0
    assert learned(store.get("acme")) == learned(TenantDNA())


def test_read_your_writes_from_the_updating_thread(store: TenantDNAStore) -> None:
    def work(index: int) -> None:
        own = f"own-{index}"
        for call in range(1, 51):
            result = store.update_from_session("shared", PROBE, alpha=0.01)
            assert sessions_applied(store.get("shared")) >= sessions_applied(result)
            store.update_from_session(own, PROBE, alpha=0.01)
            assert sessions_applied(store.get(own)) == call

    run_threads(8, work)
    assert sessions_applied(store.get("shared")) == 8 * 50


def test_delete_and_get_race_never_shows_a_half_state(store: TenantDNAStore) -> None:
    profile = TenantDNA(avg_tokens_per_task=7777, peak_hours=[1, 2])
    seen: list[dict[str, Any]] = []

    def work(index: int) -> None:
        for _ in range(100):
            if index == 0:
                store.save("acme", profile)
                store.delete("acme")
            else:
                seen.append(learned(store.get("acme")))

    run_threads(4, work)
    assert {str(view) for view in seen} <= {
        str(learned(profile)),
        str(learned(TenantDNA())),
    }


def test_a_stray_message_does_not_stop_a_tenant_actor(store: TenantDNAStore) -> None:
    store.update_from_session("acme", PROBE, alpha=0.01)
    for actor in pykka.ActorRegistry.get_by_class(TenantActor):
        actor.tell({"not": "a cell"})
        actor.tell(None)
    for registry in pykka.ActorRegistry.get_by_class(Registry):
        registry.tell(None)
        registry.tell(("no such request",))
        registry.tell(())
    assert sessions_applied(store.update_from_session("acme", PROBE, alpha=0.01)) == 2
    assert store.count == 1


def test_a_change_racing_close_is_answered_never_left_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Force the worst schedule: the caller passes the closed check, then is
    # held before it appends until the tenant's actor has stopped for close().
    store = TenantDNAStore(max_active=3)
    for tenant in ("x", "y", "z"):
        store.update_from_session(tenant, PROBE, alpha=0.01)
    cell_x = store._directory["x"]
    host = store._context.hosts[cell_x.slot]
    assert host is not None
    post = TenantCell.post

    def held_post(cell: TenantCell, operation: Any, context: Any) -> None:
        if threading.current_thread().name == "late-caller":
            host.actor_stopped.wait(10)
        post(cell, operation, context)

    monkeypatch.setattr(TenantCell, "post", held_post)
    outcome: list[str] = []

    def late_caller() -> None:
        try:
            store.update_from_session_async("x", PROBE, alpha=0.01).get(timeout=10)
        except StoreClosed:
            outcome.append("closed")
        except pykka.Timeout:
            outcome.append("left waiting")
        else:
            outcome.append("applied")

    caller = threading.Thread(target=late_caller, name="late-caller")
    caller.start()
    time.sleep(0.05)
    store.close()
    caller.join(timeout=30)
    assert outcome == ["closed"]


def test_closing_from_several_threads_returns_once_closed() -> None:
    store = TenantDNAStore(max_active=2)
    futures = [
        store.update_from_session_async(f"t{i % 6}", PROBE, alpha=0.01)
        for i in range(600)
    ]

    def close_then_look(_: int) -> None:
        store.close()
        # Whichever call did the closing, every one returns after the work
        # submitted before it was applied.
        for future in futures:
            future.get(timeout=0.001)

    run_threads(4, close_then_look)
    assert sum(sessions_applied(future.get()) > 0 for future in futures) == 600


@pytest.mark.parametrize("url", [None, "sqlite"])
def test_a_caller_holding_an_evicted_cell_still_gets_its_change_applied(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, url: str | None
) -> None:
    # Force the worst schedule: the caller has found the tenant's cell, then
    # is held until that cell was retired (evicted) and the tenant has a new
    # live cell, and only then appends to the old one.
    path = None if url is None else f"sqlite:///{tmp_path}/dna.db"
    store = TenantDNAStore(path, max_active=1, max_resident=1)
    store.update_from_session("held", PROBE, alpha=0.01)
    held = store._directory["held"]
    release: queue.SimpleQueue[None] = queue.SimpleQueue()
    post = TenantCell.post

    def late_post(cell: TenantCell, operation: Any, context: Any) -> None:
        if threading.current_thread().name == "late-caller" and cell is held:
            release.get(timeout=10)
        post(cell, operation, context)

    monkeypatch.setattr(TenantCell, "post", late_post)
    seen: list[int] = []

    def late_caller() -> None:
        answer = store.update_from_session("held", PROBE, alpha=0.01)
        seen.extend([sessions_applied(answer), sessions_applied(store.get("held"))])

    caller = threading.Thread(target=late_caller, name="late-caller")
    caller.start()
    # Other tenants' changes push the held cell out of the actor's share.
    for index in range(20):
        store.update_from_session(f"other-{index}", PROBE, alpha=0.01)
        if held.retired:
            break
    assert held.retired
    store.update_from_session("held", PROBE, alpha=0.01)  # a new live cell
    assert store._directory["held"] is not held
    release.put(None)
    caller.join(timeout=30)
    assert not caller.is_alive(), "the held caller never got an answer"
    # Applied once, by the live cell, and read back in the caller's thread.
    assert seen == [3, 3]
    assert sessions_applied(store.get("held")) == 3
    store.close()
