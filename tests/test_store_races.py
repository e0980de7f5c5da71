"""Races made likely: each test widens one window where a mistake would show.

A microsecond switch interval, many threads on few tenants, repeated rounds,
and a hook that makes the critical moment last (a drain that lingers after it
returns, a slow cell constructor, a slow apply, an actor that lingers after
answering). The hooks only slow the store down: the correct code passes
whatever the timing, while each of these mistakes fails (see CHANGELOG/issue 8):

* the wake-up token cleared after a drain instead of before (a lost wake-up);
* a tenant's cell created by assignment instead of ``setdefault`` (two
  mailboxes for one tenant);
* ``flush`` asking only cells with something in their mailbox (an actor in the
  middle of a drain is missed), or, handed to the slot's actor, passing over
  a cell whose wake-up is still on its way;
* the snapshot published after the callers are answered (read-your-writes).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors import TenantDNAStore
from actors._cell import TenantCell
from actors._context import Context
from actors._future import Reply
from actors._tenant import TenantActor
from dna import TenantDNA
from tests.conftest import PROBE, run_threads, sessions_applied

WAIT = 5.0  # seconds an answer may take before the caller counts as left waiting
LINGER = 0.002  # seconds a hook holds a window open


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    """Switch threads every microsecond, so interleavings vary call by call."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def update(store: TenantDNAStore, tenant_id: str) -> TenantDNA:
    """One acknowledged probe session; a caller left waiting fails the test."""
    future = store.update_from_session_async(tenant_id, PROBE, alpha=0.01)
    try:
        return future.get(timeout=WAIT)
    except pykka.Timeout:
        pytest.fail(f"a change of {tenant_id!r} was never answered")


def test_a_change_posted_as_a_drain_ends_is_never_left_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The actor lingers after each drain: a caller answered by it posts its
    # next change while the drain is over but the actor has not returned. That
    # change's wake-up must not be lost: the actor gave its token back before
    # draining, so the caller takes it and wakes the actor again.
    drain_cell = TenantActor._drain_cell

    def drain_then_linger(actor: TenantActor, cell: TenantCell) -> Any:
        handover = drain_cell(actor, cell)
        time.sleep(LINGER)
        return handover

    monkeypatch.setattr(TenantActor, "_drain_cell", drain_then_linger)
    calls = 15
    with TenantDNAStore(max_active=3, exit_timeout=WAIT) as store:

        def work(index: int) -> None:
            own = f"own-{index}"
            for call in range(1, calls + 1):
                assert sessions_applied(update(store, own)) == call
                update(store, f"shared-{call % 2}")

        run_threads(4, work)
        assert [sessions_applied(store.get(f"own-{i}")) for i in range(4)] == [
            calls
        ] * 4
        shared = [sessions_applied(store.get(f"shared-{i}")) for i in range(2)]
        assert sum(shared) == 4 * calls


def test_first_changes_of_a_new_tenant_from_many_threads_meet_in_one_mailbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A slow cell constructor: every thread's first change finds no cell and
    # builds one at the same time; only one of those cells may be the tenant's.
    # Callers then post in the order of their index, whatever the order in
    # which they built their cells, so a cell built last is not also the last
    # one drained.
    init = TenantCell.__init__
    post = TenantCell.post

    def slow_init(cell: TenantCell, *args: Any) -> None:
        init(cell, *args)
        time.sleep(LINGER)

    def staggered_post(cell: TenantCell, *args: Any) -> None:
        name = threading.current_thread().name
        if name.startswith("caller-"):
            time.sleep(int(name.removeprefix("caller-")) * LINGER / 4)
        post(cell, *args)

    monkeypatch.setattr(TenantCell, "__init__", slow_init)
    monkeypatch.setattr(TenantCell, "post", staggered_post)
    threads = 8
    with TenantDNAStore(exit_timeout=WAIT) as store:
        for round_ in range(12):
            tenant = f"new-{round_}"

            def work(_: int, tenant: str = tenant) -> None:
                result = update(store, tenant)
                assert sessions_applied(store.get(tenant)) >= sessions_applied(result)

            run_threads(threads, work)
            assert sessions_applied(store.get(tenant)) == threads, f"round {round_}"
            assert sessions_applied(update(store, tenant)) == threads + 1
        assert store.count == 12


def test_flush_waits_for_a_change_its_actor_is_applying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A slow apply: the actor has taken the change out of the mailbox (now
    # empty) and holds it. flush() must still wait for it.
    applying = threading.Event()
    apply_session = TenantDNA.apply_session

    def slow_apply(profile: TenantDNA, session: Any, alpha: float = 0.2) -> None:
        applying.set()
        time.sleep(0.05)
        apply_session(profile, session, alpha)

    monkeypatch.setattr(TenantDNA, "apply_session", slow_apply)
    with TenantDNAStore(exit_timeout=WAIT) as store:
        for round_ in range(1, 4):
            tenant = f"t{round_ % 2}"
            before = sessions_applied(store.get(tenant))
            applying.clear()
            store.update_from_session_async(tenant, PROBE, alpha=0.01)
            assert applying.wait(timeout=WAIT)
            store.flush(timeout=WAIT)
            assert sessions_applied(store.get(tenant)) == before + 1, f"round {round_}"


def test_flush_waits_for_a_change_whose_wake_up_is_on_its_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A caller has appended its change and taken the cell's token, and is
    # held before it puts the cell on its slot's ready queue. A flush asked
    # meanwhile reaches the slot's actor before the cell does; it must still
    # wait for that change, and returns once it is applied.
    wake = Context.wake
    held = threading.Event()
    release = threading.Event()

    def held_wake(context: Context, cell: Any) -> None:
        if threading.current_thread().name == "poster":
            held.set()
            assert release.wait(timeout=WAIT)
        wake(context, cell)

    monkeypatch.setattr(Context, "wake", held_wake)
    with TenantDNAStore(exit_timeout=WAIT) as store:
        store.update_from_session("busy", PROBE, alpha=0.01)  # an actor runs
        poster = threading.Thread(
            target=store.update_from_session_async,
            args=("late", PROBE, 0.01),
            name="poster",
        )
        poster.start()
        assert held.wait(timeout=WAIT)
        seen: list[int] = []
        flushed = threading.Event()

        def flush() -> None:
            store.flush(timeout=WAIT)
            seen.append(sessions_applied(store.get("late")))
            flushed.set()

        flusher = threading.Thread(target=flush, name="flusher")
        flusher.start()
        flushed.wait(timeout=0.2)  # a flush that does not wait returns now
        release.set()
        poster.join(timeout=WAIT)
        flusher.join(timeout=WAIT)
        assert seen == [1]


def test_a_flush_reaches_every_change_of_a_fire_and_forget_backlog() -> None:
    # Far more changes in flight than the actors have drained: one flush a
    # slot, handed over behind them, still covers every one.
    with TenantDNAStore(max_active=2, exit_timeout=WAIT) as store:
        futures = [
            store.update_from_session_async(f"t{i}", PROBE, alpha=0.01)
            for i in range(2_000)
        ]
        store.flush(timeout=WAIT)
        assert all(isinstance(f, Reply) and f.done for f in futures)
        assert store.count == 2_000


def test_an_acknowledged_change_is_read_back_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The actor lingers after answering each caller: a caller that reads back
    # at once must find the snapshot published already.
    set_copied = Reply.set_copied
    set_value = Reply.set

    def set_copied_then_linger(reply: Reply[Any], value: Any) -> None:
        set_copied(reply, value)
        time.sleep(LINGER)

    def set_then_linger(reply: Reply[Any], value: Any = None) -> None:
        set_value(reply, value)
        time.sleep(LINGER)

    monkeypatch.setattr(Reply, "set_copied", set_copied_then_linger)
    monkeypatch.setattr(Reply, "set", set_then_linger)
    calls = 12
    with TenantDNAStore(exit_timeout=WAIT) as store:

        def work(index: int) -> None:
            own, saved = f"own-{index}", f"saved-{index}"
            for call in range(1, calls + 1):
                assert sessions_applied(update(store, own)) == call
                assert sessions_applied(store.get(own)) == call
                result = update(store, "shared")
                assert sessions_applied(store.get("shared")) >= sessions_applied(result)
                store.save(saved, TenantDNA(avg_tokens_per_task=call))
                assert store.get(saved).avg_tokens_per_task == call

        run_threads(4, work)
        assert sessions_applied(store.get("shared")) == 4 * calls
