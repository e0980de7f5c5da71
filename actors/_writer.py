"""The writer actor: owns the storage connection that commits, groups commits."""

from __future__ import annotations

import contextlib
import queue
import threading
from typing import TYPE_CHECKING, Any

import pykka

from actors._cell import (
    Flush,
    Refresh,
    Settled,
    Settlement,
    TenantCell,
    pop_all,
)
from actors._tenant import as_storage_error
from storage import Change, Committed, ScrubIncomplete, StorageError

if TYPE_CHECKING:
    from actors._context import Context
    from storage import Storage

MAX_BATCH = 1000
"""Changes one transaction takes at most, so a steady stream still commits."""


class Writer(pykka.ThreadingActor):
    """Commits tenants' changes in shared transactions (group commit).

    Tenant actors send it the cells whose change is to be committed (the
    cell alone, or ``("urgent", cell)`` to have it committed now) and carry
    on; it takes every change waiting in its inbox into one transaction, then
    leaves each outcome in its tenant's cell for the tenant's actor (a
    :class:`Settlement` a slot). With
    ``durability="commit"`` it commits as soon as its inbox is empty; with
    ``"buffered"`` it holds changes until a tick (every ``flush_interval``), a
    flush, an erasure or callers waiting for room ask for them, then commits
    them all, :data:`MAX_BATCH` a transaction, and answers the flushes that
    waited for nothing else (see ``TenantCell.waiters``). On ticks it also
    asks storage what other processes committed and tells the tenants
    concerned to reload.
    """

    use_daemon_thread = True

    def __init__(self, context: Context) -> None:
        super().__init__()
        self._context = context
        self._storage: Storage | None = None
        self._batch: list[TenantCell] = []
        self._urgent = False
        self._cursor: int | None = None
        self._ours: dict[str, int] = {}  # committed here since the last poll
        # Written, and held back from their actors until the next commit or
        # until the inbox is empty (see _commit).
        self._settled: dict[int, list[TenantCell]] = {}
        self._answered: list[list[Flush]] = []
        self._log = context.events

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        # Every tenant actor tells the writer each batch, and the writer asks
        # whether more are waiting after each message: pykka's default inbox,
        # a queue.Queue, does both under one mutex, which tenant actors were
        # measured waiting on (the writer holding it when the GIL switched).
        # A SimpleQueue takes, gives and answers empty() in C.
        return queue.SimpleQueue()

    def on_start(self) -> None:
        # A failure here is reported with every commit (no connection).
        try:
            self._storage = self._context.storage_here()
            self._cursor = self._storage.cursor()
        except Exception as error:
            self._context.storage_errors.add()
            self._log.error("storage_connect_failed", error=str(error))

    def on_receive(self, message: Any) -> None:
        try:
            # A cell, not a tuple: one object less for every change.
            kind = "commit" if type(message) is TenantCell else message[0]
            if kind == "commit":
                self._batch.append(message)
            elif kind == "urgent":
                self._batch.append(message[1])
                self._urgent = True
            elif kind == "flush":
                self._urgent = True
            elif kind == "tick":
                self._urgent = True
                self._poll()
            elif kind == "poll":
                self._poll()
            context = self._context
            if context.buffered:
                # Held until someone asks (a tick, a flush, an urgent change,
                # or callers waiting for room): a backlog applied meanwhile
                # is committed at once, after the tenants' actors are through
                # it, not transaction by transaction beside them, each of its
                # rows waiting for the GIL their work holds.
                asked = self._urgent or context.places.empty()
                more = not self.actor_inbox.empty()
                if asked and (not more or len(self._batch) >= MAX_BATCH):
                    self._commit()
            elif self.actor_inbox.empty() or len(self._batch) >= MAX_BATCH:
                self._commit()
            if (self._settled or self._answered) and self.actor_inbox.empty():
                settled, self._settled = self._settled, {}
                answered, self._answered = self._answered, []
                self._wake(settled, answered)
        except Exception as error:  # the writer must outlive any message
            self._log.error("writer_failed", error=repr(error))

    def on_stop(self) -> None:
        # The outcomes of what it holds are left in their cells before the
        # registry hears of the loss: a cell's drain settles first, so a
        # resubmission never overtakes them.
        self._commit()
        self._wake(self._settled, self._answered)
        if not self._context.closing:
            self._lost()

    def on_failure(self, *exc_info: Any) -> None:
        self._lost()

    def _lost(self) -> None:
        registry = self._context.registry
        if registry is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                registry.tell(("writer_lost", self.actor_ref))

    def _commit(self) -> None:
        """Commit the batch, :data:`MAX_BATCH` changes a transaction.

        Buffered, the tenants with changes waiting behind their commit go
        first, in transactions of their own, and are settled at once: their
        next commit is on its way while the rest are written. The others are
        settled once the last is written, or, if more came meanwhile, after
        the next commit: settling thousands of tenants beside a transaction
        made each of its rows wait for the GIL.
        """
        self._urgent = False
        batch, self._batch = self._batch, []
        # What was held back from the commit before is woken after this one.
        settled, self._settled = self._settled, {}
        answered, self._answered = self._answered, []
        parts: list[tuple[list[TenantCell], bool]] = []  # (cells, woken at once)
        if self._context.buffered and batch:
            # (A hint read across threads: it only orders the batch.)
            first = [cell for cell in batch if cell.pending]
            if first and len(first) < len(batch):
                firsts = set(first)
                parts = _chunks(first, True)
                batch = [cell for cell in batch if cell not in firsts]
        parts += _chunks(batch, False)
        done = 0
        try:
            for cells, at_once in parts:
                if at_once:
                    early: dict[int, list[TenantCell]] = {}
                    self._transaction(cells, early, answered)
                    self._wake(early, [])
                else:
                    self._transaction(cells, settled, answered)
                done += 1
        finally:
            # Not expected: the transactions an error kept from being tried
            # are held for the next commit (not the one it hit: it may have
            # been written).
            self._batch[0:0] = [
                cell for cells, _ in parts[done + 1 :] for cell in cells
            ]
            if self._context.buffered and not self.actor_inbox.empty():
                self._settled, self._answered = settled, answered
            else:
                self._wake(settled, answered)

    def _wake(
        self, settled: dict[int, list[TenantCell]], answered: list[list[Flush]]
    ) -> None:
        """Have the cells settled by their actors, then answer the flushes."""
        try:
            for slot, cells in settled.items():
                self._context.wake(Settlement(slot, cells))
        finally:
            # After the wake-ups: a store closed by a caller this answers
            # stops its actors behind them (and they settle what is queued).
            for waiters in answered:
                _answer_waiters(waiters)

    def _transaction(
        self,
        batch: list[TenantCell],
        settled: dict[int, list[TenantCell]],
        answered: list[list[Flush]],
    ) -> None:
        """Commit ``batch`` in one transaction: its cells added to ``settled``,
        the flushes it lets the writer answer to ``answered``."""
        storage = self._storage
        scrub: StorageError | None = None
        try:
            if storage is None:
                raise StorageError("the writer has no connection to storage")
            changes: list[Change] = []
            for cell in batch:
                # In flight, so not changed until this settles it.
                assert cell.change is not None
                changes.append(cell.change)
            outcomes: list[Any] = storage.commit(changes)
        except ScrubIncomplete as error:
            # Written: every change is settled as committed; only the
            # erasures' callers hear that bytes may remain for now.
            self._context.storage_errors.add()
            self._log.error("erasure_scrub_incomplete", error=str(error))
            outcomes, scrub = error.outcomes, error
        except Exception as error:
            failure = as_storage_error(error)
            self._context.storage_errors.add()
            self._log.error("commit_failed", changes=len(batch), error=str(failure))
            outcomes = [failure] * len(batch)
        if not isinstance(outcomes[0], StorageError):
            self._context.commits += 1
            self._context.changes_committed += len(batch)
            for cell, outcome in zip(batch, outcomes, strict=True):
                version = getattr(outcome, "version", None)
                if version:
                    self._ours[cell.tenant_id] = version
                elif version == 0:  # erased: polls name incarnations, not ids
                    self._ours.pop(cell.tenant_id, None)
        # Each cell's outcome is left in the cell, and its slot's actor is
        # given the cells of its slot at once (see Settlement).
        for cell, outcome in zip(batch, outcomes, strict=True):
            change = cell.change  # (not changed until the outcome is taken)
            cell.settled = outcome if scrub is None else Settled(outcome, scrub)
            waiters = cell.waiters
            if (
                waiters is not None
                and waiters[0] is change
                and type(outcome) is Committed
                and outcome.rebased is None
            ):
                # Buffered flushes that wait for nothing but this commit: it
                # is written as it was applied (and published), so they are
                # answered here, not once the tenant's actor settles it. Read
                # after the outcome is left (see TenantCell.waiters).
                answered.append(waiters[1])
            cells = settled.get(cell.slot)
            if cells is None:
                settled[cell.slot] = [cell]
            else:
                cells.append(cell)

    def _poll(self) -> None:
        """Tell the tenants other processes changed since the last poll."""
        storage = self._storage
        if storage is None:
            return
        try:
            if self._cursor is None:
                self._cursor = storage.cursor()
                return
            changes = storage.changes_since(self._cursor)
        except StorageError as error:
            self._context.storage_errors.add()
            self._log.error("storage_poll_failed", error=str(error))
            return
        self._cursor = changes.cursor
        ours, self._ours = self._ours, {}
        updated = [
            change for change in changes.updated if ours.get(change[0]) != change[1]
        ]
        announce(self._context, updated, changes.erased, changes.complete)


def _chunks(
    cells: list[TenantCell], at_once: bool
) -> list[tuple[list[TenantCell], bool]]:
    """``cells`` cut into transactions of :data:`MAX_BATCH` at most."""
    return [
        (cells[start : start + MAX_BATCH], at_once)
        for start in range(0, len(cells), MAX_BATCH)
    ]


def _answer_waiters(waiters: list[Flush]) -> None:
    """Answer the flushes of a commit written as it was (see TenantCell.waiters)."""
    for flush in pop_all(waiters):
        with contextlib.suppress(queue.Full):  # (answered already: closed)
            flush.set(None)


def announce(
    context: Context,
    updated: list[tuple[str, int, int]],
    erased: list[int],
    complete: bool,
) -> None:
    """Tell the resident tenants other processes changed that they are stale.

    ``updated``: ``(tenant_id, version, incarnation)`` written, ``erased``:
    incarnations erased; ``complete`` false: anything may have changed, every
    resident tenant is told so. Each tenant's actor compares with what it
    holds (our own commits come back too).
    """
    directory = context.directory
    for tenant_id, version, incarnation in updated:
        cell = directory.get(tenant_id)
        if cell is not None and cell.loaded:
            cell.post(Refresh(version, incarnation), context)
    if erased or not complete:
        gone = set(erased)
        for cell in list(directory.values()):
            if not cell.loaded:
                continue
            base = cell.base
            if not complete:
                cell.post(Refresh(), context)
            elif base is not None and base.incarnation in gone:
                cell.post(Refresh(0, base.incarnation, erased=True), context)


def tell_writer(context: Context, message: tuple[str]) -> None:
    # The writer of now: a lost one is replaced by the registry.
    writer = context.writer
    if writer is not None:
        with contextlib.suppress(pykka.ActorDeadError):
            writer.tell(message)


def start_watcher(
    context: Context, storage: Storage, timeout: float
) -> queue.SimpleQueue[None]:
    """Tell tenants as soon as ``storage`` hears another's commit of them.

    For backends told of commits (PostgreSQL's ``LISTEN``): the thread waits
    on its own connection, ``timeout`` s at most at a time, and stops once the
    queue returned gets an item. Announcements that name the changes are
    passed on to the tenants' cells (no query); others have the writer poll
    ``changes_since``. A failure to listen (the server is down) is waited out
    and retried; the writer's ticks keep polling meanwhile.
    """
    stop: queue.SimpleQueue[None] = queue.SimpleQueue()

    def run() -> None:
        try:
            while stop.empty():
                try:
                    heard = storage.wait_for_changes(timeout)
                except Exception:
                    heard = None
                    with contextlib.suppress(queue.Empty):
                        stop.get(timeout=timeout)
                        return
                if heard is None:
                    continue
                if heard.complete:
                    with contextlib.suppress(pykka.ActorDeadError):
                        announce(context, heard.updated, heard.erased, True)
                else:
                    tell_writer(context, ("poll",))
        finally:
            with contextlib.suppress(Exception):
                storage.close()

    threading.Thread(target=run, name="tenant-dna-watcher", daemon=True).start()
    return stop


def start_ticker(context: Context, interval: float) -> queue.SimpleQueue[None]:
    """Tell the writer a ``tick`` every ``interval`` s, until the queue gets an item."""
    stop: queue.SimpleQueue[None] = queue.SimpleQueue()

    def run() -> None:
        while True:
            try:
                stop.get(timeout=interval)
            except queue.Empty:
                tell_writer(context, ("tick",))
            else:
                return

    threading.Thread(target=run, name="tenant-dna-ticker", daemon=True).start()
    return stop
