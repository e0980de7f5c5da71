"""Behaviour no other test pinned down, found by a mutation review of actors/.

Each test states what a caller relies on; its comment says what the code got
wrong (the mutant of actors/ the rest of the suite let through). Races are
forced with hooks and events, on real SQLite files where storage matters.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import pykka
import pytest

import actors._store
from actors import StorageError, StoreClosed, TenantDNAStore
from actors._cell import FRESH, TenantCell
from actors._future import Reply
from actors._tenant import TenantActor
from actors._writer import MAX_BATCH, Writer, announce
from dna import SessionMetrics, TenantDNA
from storage import Change, SQLiteStorage
from storage.memory import MemoryStorage
from tests.conftest import PROBE, sessions_applied, wait_for, writer_request

WAIT = 5.0  # seconds any one answer may take before the test calls it a hang
QUIET = 60.0
"""``staleness`` and ``flush_interval``: no tick for a minute, so a buffered
change is committed only when something asks for it."""


def done(future: pykka.Future[Any]) -> bool:
    """Whether the store's future is answered (without waiting)."""
    assert isinstance(future, Reply)
    return future.done


def sent_to_writer(store: TenantDNAStore, tenant_id: str) -> bool:
    """Whether the tenant's commit in flight was handed to the writer."""
    cell = store._directory.get(tenant_id)
    return cell is not None and cell.sent_to is not None


# -- close ---------------------------------------------------------------------


class Places(queue.SimpleQueue[None]):
    """The store's places under ``max_queued``, naming the callers that wait."""

    def __init__(self, free: int) -> None:
        super().__init__()
        self.waiting: list[str] = []
        for _ in range(free):
            self.put(None)

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        if block:
            self.waiting.append(threading.current_thread().name)
        super().get(block, timeout)


def test_every_caller_waiting_for_room_when_the_store_closes_is_told_it_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A caller woken by close() takes the place given back, and must give it
    # back as it raises: it kept it, and the callers behind it waited for
    # room forever.
    holding, release = threading.Event(), threading.Event()
    apply_session = TenantDNA.apply_session

    def held(dna: TenantDNA, session: SessionMetrics, alpha: float = 0.2) -> None:
        if not holding.is_set():
            holding.set()
            release.wait(WAIT)
        apply_session(dna, session, alpha)

    monkeypatch.setattr(TenantDNA, "apply_session", held)
    store = TenantDNAStore(max_queued=1, exit_timeout=WAIT)
    places = store._context.places = Places(1)
    first = store.update_from_session_async("first", PROBE, alpha=0.01)
    assert holding.wait(WAIT)
    outcomes: dict[str, str] = {}

    def call(name: str) -> None:
        try:
            store.update_from_session(name, PROBE, alpha=0.01)
        except StoreClosed:
            outcomes[name] = "closed"
        else:
            outcomes[name] = "updated"

    callers = [
        threading.Thread(target=call, args=(f"t{i}",), name=f"t{i}", daemon=True)
        for i in range(3)
    ]
    for caller in callers:
        caller.start()
    assert wait_for(lambda: len(places.waiting) == 3, WAIT)
    closer = threading.Thread(target=store.close, daemon=True)
    closer.start()
    assert wait_for(lambda: store._closed, WAIT)
    release.set()
    for caller in callers:
        caller.join(timeout=10)
    closer.join(timeout=10)
    assert outcomes == {"t0": "closed", "t1": "closed", "t2": "closed"}
    assert not closer.is_alive()
    assert sessions_applied(first.get(timeout=WAIT)) == 1


def test_close_commits_a_buffered_change_storage_refused_for_a_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # close() gave up at the first flush that failed: the acknowledged change
    # was lost, though storage took it a moment later, well within
    # exit_timeout. (Refused three times: the flush's commit is tried again
    # by the tenant once, and the writer commits what it holds as it stops;
    # only close() flushing again gets the change written.)
    path = tmp_path / "profiles.db"
    commit = SQLiteStorage.commit
    refused: list[int] = []

    def refuse_thrice(storage: SQLiteStorage, changes: Any) -> Any:
        if len(refused) < 3:
            refused.append(len(changes))
            raise StorageError("database is locked")
        return commit(storage, changes)

    store = TenantDNAStore(
        path,
        durability="buffered",
        exit_timeout=5,
        staleness=QUIET,
        flush_interval=QUIET,
    )
    try:
        monkeypatch.setattr(SQLiteStorage, "commit", refuse_thrice)
        store.update_from_session("t", PROBE, alpha=0.01)
    finally:
        store.close()
    monkeypatch.undo()
    assert refused == [1, 1, 1]
    with TenantDNAStore(path) as reopened:
        assert sessions_applied(reopened.get("t")) == 1


def hold_commits_until_stopped(
    monkeypatch: pytest.MonkeyPatch, actor: pykka.ActorRef[Any]
) -> None:
    """Every commit waits until ``actor`` has stopped, then goes on."""
    commit = SQLiteStorage.commit

    def held(storage: SQLiteStorage, changes: Any) -> Any:
        actor.actor_stopped.wait(WAIT)
        return commit(storage, changes)

    monkeypatch.setattr(SQLiteStorage, "commit", held)


def test_a_change_whose_commit_settles_after_close_stopped_its_actor_is_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past exit_timeout, close() stops the tenant actors; the commit settling
    # afterwards reaches no actor, and its caller waited forever.
    store = TenantDNAStore(tmp_path / "profiles.db", exit_timeout=0.3)
    try:
        store.update_from_session("t", PROBE, alpha=0.01)
        host = store._context.hosts[store._directory["t"].slot]
        assert host is not None
        hold_commits_until_stopped(monkeypatch, host)
        future = store.update_from_session_async("t", PROBE, alpha=0.01)
        assert wait_for(lambda: sent_to_writer(store, "t"), WAIT)
    finally:
        store.close()
    # Stored or not (here it was): no one is left to say which.
    with pytest.raises(StoreClosed, match="closed before this change's commit"):
        future.get(timeout=WAIT)


def test_a_change_posted_while_close_stops_the_actors_is_answered_store_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller past the closed check posts once every actor has stopped, to a
    # cell whose wake-up the closing registry swept (so the caller wakes no
    # one, and gets its future back): only close()'s sweep of the cells'
    # mailboxes answers it. Without it the caller waited forever.
    store = TenantDNAStore(tmp_path / "profiles.db", exit_timeout=0.3)
    store.update_from_session("t", PROBE, alpha=0.01)
    cell = store._directory["t"]
    host = store._context.hosts[cell.slot]
    assert host is not None
    # A commit that settles after its actor stopped: its wake-up is swept.
    hold_commits_until_stopped(monkeypatch, host)
    in_flight = store.update_from_session_async("t", PROBE, alpha=0.01)
    assert wait_for(lambda: sent_to_writer(store, "t"), WAIT)

    arrived, go, posted = threading.Event(), threading.Event(), threading.Event()
    post = TenantCell.post

    def held_post(cell: TenantCell, operation: Any, context: Any) -> None:
        if threading.current_thread().name != "late-caller":
            post(cell, operation, context)
            return
        arrived.set()
        go.wait(WAIT)
        try:
            post(cell, operation, context)
        finally:
            posted.set()

    shut_down = actors._store._shut_down

    def then_the_late_post(*args: Any) -> None:
        shut_down(*args)
        go.set()
        posted.wait(WAIT)

    monkeypatch.setattr(TenantCell, "post", held_post)
    monkeypatch.setattr(actors._store, "_shut_down", then_the_late_post)
    late: list[Any] = []

    def call() -> None:
        try:
            late.append(store.update_from_session_async("t", PROBE, alpha=0.01))
        except StoreClosed as error:
            late.append(error)

    caller = threading.Thread(target=call, name="late-caller", daemon=True)
    caller.start()
    assert arrived.wait(WAIT)
    store.close()
    caller.join(timeout=WAIT)
    assert posted.is_set()
    assert cell.scheduled  # the wake-up the registry swept: none was sent
    assert len(late) == 1
    assert isinstance(late[0], pykka.Future)
    for future in (in_flight, late[0]):
        with pytest.raises(StoreClosed):
            future.get(timeout=WAIT)


# -- the writer ----------------------------------------------------------------


class NeverEmpty(queue.SimpleQueue[Any]):
    """A writer's inbox that says more is waiting, until disarmed."""

    armed = True

    def empty(self) -> bool:
        return not self.armed and super().empty()


def test_a_writer_whose_inbox_is_never_empty_still_commits_each_thousand_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A steady stream keeps the writer's inbox from ever being empty: without
    # the bound on a batch it held every change and committed none.
    inboxes: list[NeverEmpty] = []

    def never_empty() -> NeverEmpty:
        inbox = NeverEmpty()
        inboxes.append(inbox)
        return inbox

    monkeypatch.setattr(Writer, "_create_actor_inbox", staticmethod(never_empty))
    with TenantDNAStore(tmp_path / "profiles.db", exit_timeout=WAIT) as store:
        try:
            futures = [
                store.update_from_session_async(f"t{n}", PROBE, alpha=0.01)
                for n in range(MAX_BATCH + 1)
            ]
            assert wait_for(lambda: sum(map(done, futures)) == MAX_BATCH, 30)
            stats = store.stats()
            assert (stats.commits, stats.changes_committed) == (1, MAX_BATCH)
        finally:
            # The last one waits for the inbox to be found empty (and pykka
            # empties the inbox on stop): let it be.
            for inbox in inboxes:
                inbox.armed = False
        store.flush(timeout=WAIT)
        assert [sessions_applied(f.get(timeout=WAIT)) for f in futures] == [1] * (
            MAX_BATCH + 1
        )


def test_an_erasure_queued_before_another_commit_is_committed_without_a_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer took each commit message's urgency for its own: the
    # erasure's (urgent: its caller waits for it) was replaced by the next
    # buffered change's, and the erasure waited for the next tick.
    receive = Writer.on_receive
    holding, release = threading.Event(), threading.Event()

    def held_first_commit(writer: Writer, message: Any) -> None:
        if writer_request(message) == "commit" and not holding.is_set():
            holding.set()
            release.wait(WAIT)
        receive(writer, message)

    monkeypatch.setattr(Writer, "on_receive", held_first_commit)
    path = tmp_path / "profiles.db"
    with TenantDNAStore(
        path, durability="buffered", staleness=QUIET, flush_interval=QUIET
    ) as store:
        store.update_from_session("t0", PROBE, alpha=0.01)
        assert holding.wait(WAIT)
        erased = threading.Event()

        def erase() -> None:
            store.delete("t1")
            erased.set()

        threading.Thread(target=erase, daemon=True).start()
        assert wait_for(lambda: sent_to_writer(store, "t1"), WAIT)
        store.update_from_session_async("t2", PROBE, alpha=0.01).get(timeout=WAIT)
        assert wait_for(lambda: sent_to_writer(store, "t2"), WAIT)
        release.set()
        assert erased.wait(WAIT), "the erasure waited for a tick"


def test_the_writers_poll_asks_only_for_commits_after_those_it_has_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer kept the cursor it opened with: every poll read (and
    # announced again) every commit another store had made since then.
    path = tmp_path / "profiles.db"
    cursors: list[int] = []
    changes_since = SQLiteStorage.changes_since

    def spied(storage: SQLiteStorage, cursor: int) -> Any:
        cursors.append(cursor)
        return changes_since(storage, cursor)

    monkeypatch.setattr(SQLiteStorage, "changes_since", spied)
    with TenantDNAStore(path, staleness=0.2) as store:
        assert wait_for(lambda: bool(cursors), WAIT)
        opened_with = cursors[-1]
        other = SQLiteStorage(path)
        try:
            other.commit([Change("theirs", TenantDNA(), 0, 0, force=True)])
        finally:
            other.close()
        assert wait_for(lambda: cursors[-1] > opened_with, WAIT)
        assert store.get_versioned("theirs").version == 1


# -- the registry --------------------------------------------------------------


def test_a_lost_actor_reported_twice_is_replaced_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A loss can be reported more than once (an actor that fails tells it
    # from on_failure and on_stop; a wake-up finding it dead tells it too).
    # Each report started a new actor in the slot, and the one started
    # before ran on, serving no one, until the process ended.
    before = set(pykka.ActorRegistry.get_by_class(TenantActor))

    def ours() -> set[pykka.ActorRef[TenantActor]]:
        return set(pykka.ActorRegistry.get_by_class(TenantActor)) - before

    with TenantDNAStore(max_active=2, exit_timeout=WAIT) as store:
        store.update_from_session("acme", PROBE, alpha=0.01)
        slot = store._directory["acme"].slot
        lost = store._context.hosts[slot]
        assert lost is not None
        lost.stop(timeout=WAIT)
        assert wait_for(lambda: store.stats().actors_replaced == 1, WAIT)
        store._registry.tell(("lost", slot, lost))  # reported again, late
        store.flush(timeout=WAIT)  # the registry has handled it
        assert store.stats().actors_replaced == 1
        assert sessions_applied(store.update_from_session("acme", PROBE, 0.01)) == 2
        running = [host for host in store._context.hosts if host is not None]
        assert ours() == set(running)
        assert len(running) == store._context.active <= 2


# -- reads -----------------------------------------------------------------------


def test_a_tenant_read_lately_stays_in_memory_over_one_that_was_not() -> None:
    # A read through the hot path of get() did not mark the tenant as read:
    # the eviction clock dropped the tenant being read, not the idle one.
    with TenantDNAStore(max_resident=2, max_active=1) as store:
        store.update_from_session("a", PROBE, alpha=0.01)
        store.update_from_session("b", PROBE, alpha=0.01)
        assert sessions_applied(store.get("a")) == 1
        store.update_from_session("c", PROBE, alpha=0.01)
        assert wait_for(lambda: len(store._directory) == 2, WAIT)
        assert sorted(store._directory) == ["a", "c"]


def test_count_includes_a_buffered_change_not_committed_yet(tmp_path: Path) -> None:
    # count read storage without flushing: a tenant just acknowledged was
    # not counted until the next tick.
    path = tmp_path / "profiles.db"
    with TenantDNAStore(
        path, durability="buffered", staleness=QUIET, flush_interval=QUIET
    ) as store:
        store.update_from_session("a", PROBE, alpha=0.01)
        assert store.count == 1


def test_our_own_commit_announced_back_leaves_the_tenant_fresh_and_published(
    tmp_path: Path,
) -> None:
    # A poll names our own commits too; taken for another process's, the
    # tenant was marked stale and every read of it went to storage.
    with TenantDNAStore(
        tmp_path / "profiles.db", staleness=QUIET, flush_interval=QUIET
    ) as store:
        store.update_from_session("t", PROBE, alpha=0.01)
        cell = store._directory["t"]
        assert cell.base is not None
        assert cell.base.version == 1
        announce(store._context, [("t", 1, cell.base.incarnation)], [], True)
        store.flush(timeout=WAIT)  # behind the announcement, in the actor
        assert cell.stale == FRESH
        assert cell.published is not None
        assert cell.published.version == 1
        assert sessions_applied(store.get("t")) == 1


# -- stats -----------------------------------------------------------------------


def test_stats_count_a_memory_update_as_one_commit_of_one_change() -> None:
    # The in-memory backend's commits (made by the tenant actors, not a
    # writer) were not counted.
    with TenantDNAStore() as store:
        store.update_from_session("a", PROBE, alpha=0.01)
        stats = store.stats()
        assert (stats.commits, stats.changes_committed) == (1, 1)


def test_stats_count_a_new_tenant_as_one_activation() -> None:
    # Loading a tenant into its actor was not counted.
    with TenantDNAStore() as store:
        store.update_from_session("a", PROBE, alpha=0.01)
        store.update_from_session("a", PROBE, alpha=0.01)
        assert store.stats().activations == 1


def test_stats_count_a_commit_refused_because_another_store_erased_the_tenant(
    tmp_path: Path,
) -> None:
    # A commit that found the tenant erased by another store (a version
    # conflict, refused to its caller) was not counted as a conflict.
    path = tmp_path / "profiles.db"
    with (
        TenantDNAStore(path, staleness=QUIET, flush_interval=QUIET) as ours,
        TenantDNAStore(path, staleness=QUIET, flush_interval=QUIET) as theirs,
    ):
        ours.update_from_session("t", {"intent": "ours"})
        theirs.delete("t")
        before = ours.stats().version_conflicts
        with pytest.raises(StorageError, match="erased by another process"):
            ours.update_from_session("t", {"intent": "after"})
        assert ours.stats().version_conflicts == before + 1


def test_stats_count_a_refused_memory_commit_as_one_storage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tenant actor's own commit (in memory) failing was not counted.
    commit = MemoryStorage.commit
    refused: list[bool] = []

    def refuse_once(storage: MemoryStorage, changes: Any) -> Any:
        if not refused:
            refused.append(True)
            raise StorageError("refused once")
        return commit(storage, changes)

    monkeypatch.setattr(MemoryStorage, "commit", refuse_once)
    with TenantDNAStore() as store:
        with pytest.raises(StorageError, match="refused once"):
            store.update_from_session("a", PROBE, alpha=0.01)
        assert store.stats().storage_errors == 1
        assert sessions_applied(store.update_from_session("a", PROBE, 0.01)) == 1
