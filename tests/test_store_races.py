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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pykka
import pytest

from actors import TenantDNAStore
from actors._cell import TenantCell
from actors._context import Context
from actors._future import Reply
from actors._tenant import TenantActor
from dna import TenantDNA
from tests.conftest import PROBE, run_threads, sessions_applied, wait_for

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


class HeldPoster:
    """A thread posting an update of tenant "late", held after it took the
    cell's wake-up token and before it puts the cell on the ready queue."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.held = threading.Event()
        self.release = threading.Event()
        wake = Context.wake

        def held_wake(context: Context, cell: Any) -> None:
            if threading.current_thread().name == "poster":
                self.held.set()
                assert self.release.wait(timeout=WAIT)
            wake(context, cell)

        monkeypatch.setattr(Context, "wake", held_wake)

    def start(self, store: TenantDNAStore) -> threading.Thread:
        """Post; return once the poster is held."""
        poster = threading.Thread(
            target=store.update_from_session_async,
            args=("late", PROBE, 0.01),
            name="poster",
        )
        poster.start()
        assert self.held.wait(timeout=WAIT)
        return poster


def test_flush_waits_for_a_change_whose_wake_up_is_on_its_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A caller has appended its change and taken the cell's token, and is
    # held before it puts the cell on its slot's ready queue. A flush asked
    # meanwhile reaches the slot's actor before the cell does; it must still
    # wait for that change, and returns once it is applied.
    held_poster = HeldPoster(monkeypatch)
    release = held_poster.release
    with TenantDNAStore(exit_timeout=WAIT) as store:
        store.update_from_session("busy", PROBE, alpha=0.01)  # an actor runs
        poster = held_poster.start(store)
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
    set_made = Reply.set_made  # set_copied's too
    set_value = Reply.set

    def set_made_then_linger(
        reply: Reply[Any], value: Any, make: Callable[[Any], Any]
    ) -> None:
        set_made(reply, value, make)
        time.sleep(LINGER)

    def set_then_linger(reply: Reply[Any], value: Any = None) -> None:
        set_value(reply, value)
        time.sleep(LINGER)

    monkeypatch.setattr(Reply, "set_made", set_made_then_linger)
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


# -- found by mutating actors/ -------------------------------------------------


@pytest.fixture
def held_actor(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Hold the actor that drains tenant "blocker" until ``release`` is set
    (``held`` says it is held): what is posted meanwhile is drained together."""
    drain_cell = TenantActor._drain_cell
    held, release = threading.Event(), threading.Event()

    def holding(actor: TenantActor, cell: TenantCell) -> None:
        if cell.tenant_id == "blocker" and not release.is_set():
            held.set()
            assert release.wait(timeout=WAIT)
        drain_cell(actor, cell)

    monkeypatch.setattr(TenantActor, "_drain_cell", holding)
    yield held, release
    release.set()


def test_an_update_drained_with_the_erasure_before_it_is_written_after_it(
    held_actor: tuple[threading.Event, threading.Event],
) -> None:
    # An erasure ends a commit's batch: a change after it in the same drain
    # starts a new life. Committed in the erasure's batch it was lost, and
    # its caller got an AttributeError.
    held, release = held_actor
    with TenantDNAStore(max_active=1, exit_timeout=WAIT) as store:
        store.update_from_session("t", {"intent": "old"})
        store.update_from_session_async("blocker", PROBE)
        assert held.wait(timeout=WAIT)
        erased = store._submit_delete("t")
        updated = store.update_from_session_async("t", {"intent": "new"})
        release.set()
        assert erased.get(timeout=WAIT) is None
        assert updated.get(timeout=WAIT).common_intents == ["new"]
        assert store.get("t").common_intents == ["new"]
        assert store.get_versioned("t").version == 1  # a new life
        assert store.count == 2


def test_an_update_half_applied_by_an_actor_that_died_is_not_committed(
    held_actor: tuple[threading.Event, threading.Event],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The actor failed in the middle of the second update, its working
    # profile already changed by it. The actor that takes the tenant over
    # must build the profile again from what is committed and what is
    # pending (the first update only), not commit the half-done one; and
    # apply the third, taken from the mailbox with them.
    import actors._tenant

    held, release = held_actor
    pend = actors._tenant._pend
    failed: list[bool] = []

    def failing(cell: TenantCell, operation: Any) -> None:
        working = cell.working
        if (
            not failed
            and isinstance(working, TenantDNA)
            and "two" in working.common_intents
        ):
            failed.append(True)
            raise RuntimeError("the actor fails half-way")
        pend(cell, operation)

    monkeypatch.setattr(actors._tenant, "_pend", failing)
    with TenantDNAStore(max_active=1, exit_timeout=WAIT) as store:
        store.update_from_session_async("blocker", PROBE)
        assert held.wait(timeout=WAIT)
        first = store.update_from_session_async("t", {"intent": "one"})
        second = store.update_from_session_async("t", {"intent": "two"})
        third = store.update_from_session_async("t", {"intent": "three"})
        release.set()
        with pytest.raises(RuntimeError, match="half-way"):
            second.get(timeout=WAIT)
        assert first.get(timeout=WAIT).common_intents == ["one"]
        # Drained with them, after the failure: applied by the next actor.
        assert third.get(timeout=WAIT).common_intents == ["one", "three"]
        store.flush(timeout=WAIT)
        assert failed == [True]
        assert store.get("t").common_intents == ["one", "three"]
        assert store.stats().actors_replaced == 1


def test_a_failed_load_gives_its_change_place_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A change whose tenant could not be read was answered with the error but
    # kept its place of max_queued: with max_queued=1 the next change waited
    # for room forever.
    from storage import SQLiteStorage, StorageError

    load = SQLiteStorage.load
    failures: list[str] = []

    def failing_once(storage: SQLiteStorage, tenant_id: str) -> Any:
        if not failures:
            failures.append(tenant_id)
            raise StorageError("disk I/O error")
        return load(storage, tenant_id)

    monkeypatch.setattr(SQLiteStorage, "load", failing_once)
    with TenantDNAStore(tmp_path / "p.db", max_queued=1, exit_timeout=WAIT) as store:
        with pytest.raises(StorageError):
            store.update_from_session("t", PROBE, alpha=0.01)
        answered: list[TenantDNA] = []
        second = threading.Thread(
            target=lambda: answered.append(
                store.update_from_session("t", PROBE, alpha=0.01)
            ),
            daemon=True,
        )
        second.start()
        second.join(timeout=WAIT)
        assert [sessions_applied(dna) for dna in answered] == [1]
        assert store.stats().changes_queued == 0


def test_flush_waits_for_the_commit_of_a_change_drained_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The flush reached the tenant's mailbox behind the change (its wake-up
    # was on its way), and both were drained together: the flush, met while
    # the change was applied but not yet sent to storage, must wait for its
    # commit, not answer at once because nothing was in flight.
    from storage import SQLiteStorage

    path = tmp_path / "p.db"
    commit = SQLiteStorage.commit
    held_poster = HeldPoster(monkeypatch)
    release = held_poster.release

    def slow_commit(storage: SQLiteStorage, changes: Any) -> Any:
        time.sleep(0.3)  # a flush that does not wait returns meanwhile
        return commit(storage, changes)

    with TenantDNAStore(path, exit_timeout=WAIT) as store:
        store.update_from_session("busy", PROBE, alpha=0.01)
        monkeypatch.setattr(SQLiteStorage, "commit", slow_commit)
        poster = held_poster.start(store)
        stored: list[bool] = []

        def flush() -> None:
            store.flush(timeout=WAIT)
            reader = SQLiteStorage(path)
            try:
                stored.append(reader.load("late") is not None)
            finally:
                reader.close()

        flusher = threading.Thread(target=flush, name="flusher")
        flusher.start()
        # The flush reaches the slot's actor first, and goes into the
        # tenant's mailbox behind the change.
        late = store._directory["late"]
        assert wait_for(lambda: len(late) == 2, WAIT)
        release.set()
        poster.join(timeout=WAIT)
        flusher.join(timeout=WAIT)
        assert stored == [True]
