"""The tenant actor: the single writer of one tenant's profile at a time."""

from __future__ import annotations

import contextlib
import logging
import queue
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pykka

from actors._cell import (
    CHANGES,
    FRESH,
    LATEST,
    NEWER,
    NO_OPERATIONS,
    PENDING,
    STALE,
    UNKNOWN,
    Delete,
    Flush,
    FlushBarrier,
    Frozen,
    Operation,
    Pending,
    Refresh,
    Resubmit,
    Save,
    Settled,
    Settlement,
    SlotFlush,
    TenantCell,
    Update,
    Versioned,
    freeze,
    pop_all,
    settle_profile,
    thaw,
)
from actors._context import WAKE
from actors._future import Reply
from dna import TenantDNA
from storage import (
    Change,
    CommitOutcomeUnknown,
    Committed,
    Conflict,
    Record,
    StorageError,
    VersionConflict,
)

if TYPE_CHECKING:
    from actors._context import Context


EVICTION_LOOKS = 8
"""Cells an actor may pass over (busy, or read lately) per drain, at most."""


class TenantActor(pykka.ThreadingActor):
    """Applies every change to the tenants of its slot, each in mailbox order.

    One actor is one thread, so a store runs a fixed number of them
    (``max_active``) and each serves the cells whose tenant ids hash to its
    slot: a tenant's actor is found without asking anyone. A batch of changes
    is applied to the working profile, then committed as one change of the
    tenant's record (by the writer, grouped with other tenants', or here for
    the in-memory backend); the callers are answered once it is committed and
    the new profile is published. On a version conflict the batch is
    re-applied to the stored record; on a storage error its callers get the
    error and the profile goes back to what is committed. The actor keeps at
    most its share of ``max_resident`` cells: the least recently used idle
    ones are retired (their profiles live in storage), and an erased tenant's
    cell goes at once. The actor answers every operation, success or error,
    through its future; nothing a caller sends can stop it or lose a profile.
    """

    # A store that is never closed must not keep the process alive.
    use_daemon_thread = True

    def __init__(
        self, context: Context, slot: int, cells: Iterable[TenantCell] = ()
    ) -> None:
        super().__init__()
        self._context = context
        self._slot = slot
        self._retiring = False
        self._log = context.events
        # The log's levels, asked once a batch: the routine events of a
        # change (activated, committed, passivated) each cost a level check.
        self._debug = self._info = False
        # The cells of this slot, least recently used first; and those the
        # eviction clock found busy, out of the order until their next drain
        # (which their work is sure to bring) puts them back at its end.
        self._cells: OrderedDict[TenantCell, None] = OrderedDict.fromkeys(cells)
        self._busy: set[TenantCell] = set()
        # The slots' quotas add up to max_resident (some may hold none).
        share, extra = divmod(context.max_resident, context.max_active)
        self._quota = share + (slot < extra)

    @staticmethod
    def _create_actor_inbox() -> queue.SimpleQueue[Any]:
        # pykka's default, a queue.Queue, takes and signals through a
        # Condition; a wake-up per batch of changes is cheaper through a
        # SimpleQueue, taken and signalled in C.
        return queue.SimpleQueue()

    def on_start(self) -> None:
        self._log.debug("tenant_actor_started", slot=self._slot)

    def on_stop(self) -> None:
        if not self._retiring:
            self._lost()

    def on_failure(self, *exc_info: Any) -> None:
        self._lost()

    def retire(self) -> None:
        """Stop for the store's close: not a loss to report."""
        self._retiring = True
        # Said before stopping: pykka lets the store see the actor stopped
        # before on_stop runs.
        self._log.debug("tenant_actor_stopped", slot=self._slot)
        self.stop()

    def _lost(self) -> None:
        # Stopped by anything but the store's close: the registry puts a new
        # actor in this slot, which takes its cells over.
        registry = self._context.registry
        if registry is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                registry.tell(("lost", self._slot, self.actor_ref))

    def on_receive(self, message: Any) -> None:
        # WAKE: the slot's token holder says cells are ready; "retire" comes
        # from the store's close, after every wake-up sent before it.
        if message == WAKE:
            self._debug = self._log.enabled(logging.DEBUG)
            self._info = self._debug or self._log.enabled(logging.INFO)
            context = self._context
            ready = context.ready[self._slot]
            context.woken[self._slot] = False  # before draining, as a cell's
            while ready:
                item = ready.popleft()
                kind = type(item)
                if kind is TenantCell:
                    assert isinstance(item, TenantCell)
                    self._drain(item)
                elif kind is Settlement:
                    assert isinstance(item, Settlement)
                    # A cell drained since its outcome came has taken it.
                    for cell in item.cells:
                        if cell.settled is not None:
                            self._drain(cell)
                else:
                    assert isinstance(item, SlotFlush)
                    self._flush_slot(item)
        elif message == "retire":
            # What the ready queue holds is settled first: the writer answers
            # a flush after queuing its Settlement, and the wake-up for it
            # may still be on its way (another thread set ``woken`` first),
            # behind this.
            self.on_receive(WAKE)
            self.retire()
        else:
            self._log.warning("unexpected_message", type=type(message).__name__)

    # -- draining --------------------------------------------------------------

    def _drain(self, cell: TenantCell) -> None:
        if cell.retired:
            # Queued twice (a lost actor's cells are queued again), retired by
            # the first drain: what a caller appends now, the caller itself
            # takes to the tenant's live cell (see TenantCell.post).
            return
        # Draining is announced before the token is cleared, so a retirement
        # or a flush that looks in between still sees the cell busy.
        cell.draining = True
        cell.scheduled = False
        try:
            if cell.suspect:
                # An actor died holding the cell: its working profile may be
                # half changed. Everything pending is applied again.
                cell.suspect = False
                self._reapply(cell, [])
            self._drain_cell(cell)
        finally:
            cell.draining = False
        base, published = cell.base, cell.published
        if (
            published is not None
            and base is not None
            and published.dna is base.dna
            and published.version == base.version
        ):
            # The committed record itself, rather than a copy of its fields:
            # one object less for every tenant held in memory.
            cell.published = base
        cells, busy = self._cells, self._busy
        if cell in cells:
            cells.move_to_end(cell)
        elif cell in busy:
            busy.remove(cell)
            cells[cell] = None
        elif not cell.retired:  # (retired by its erasure's settle)
            cells[cell] = None
            if self._debug:
                self._log.debug("tenant_activated", tenant_id=cell.tenant_id)
        if cell.loaded and cell.base is None and not cell.pending and not cell.retired:
            # Erased (or never stored): nothing of it stays in memory.
            self._retire(cell)
        if len(cells) + len(busy) > self._quota:
            self._evict()

    def _evict(self) -> None:
        """Retire the least recently used idle cells down to the quota."""
        cells, busy = self._cells, self._busy
        quota = self._quota
        # Like a clock hand: a cell that can go is retired; one read since the
        # last look goes to the back, its flag cleared; a busy one (a commit in
        # flight, a change waiting) leaves the order, still counted, until its
        # next drain. Busy cells are looked at a few per drain (a slot full of
        # them costs little, each looked at once while it is busy), the others
        # two turns of the hand at most (the first clears every read flag), so
        # idle cells past the quota go however often they are read.
        skipped = 0  # busy cells looked at
        looks = 2 * len(cells)
        while (
            cells
            and len(cells) + len(busy) > quota
            and skipped < EVICTION_LOOKS
            and looks > 0
        ):
            looks -= 1
            cell, _ = cells.popitem(last=False)
            if cell.recent:
                cell.recent = False
                cells[cell] = None
            elif not self._retire(cell):
                busy.add(cell)
                skipped += 1

    def _retire(self, cell: TenantCell) -> bool:
        """Drop an idle cell from memory; ``False`` if anything reached it."""
        if cell.pending or cell.in_flight is not None:
            return False
        cell.retired = True
        if cell.mailbox or cell.scheduled:
            # A caller appended before it could see the flag: keep the cell.
            cell.retired = False
            return False
        directory = self._context.directory
        if directory.get(cell.tenant_id) is cell:
            del directory[cell.tenant_id]
        cells = self._cells
        if cell in cells:  # not when the clock took it out already
            del cells[cell]
        self._busy.discard(cell)
        self._context.passivations.add()
        if self._debug:
            self._log.debug("tenant_passivated", tenant_id=cell.tenant_id)
        return True

    def _take_settled(self, cell: TenantCell) -> None:
        """Settle the commit in flight if the writer left its outcome.

        Taken before the mailbox, and again before each part of it taken
        later: what the mailbox holds came after the outcome (a Resubmit
        then finds nothing to send again), or as it came (a caller's change,
        which may as well have come after).
        """
        settled = cell.settled
        if settled is None:
            return
        cell.settled = None
        waiters = cell.waiters
        if waiters is not None:
            # Flushes waiting for this commit that the writer did not answer
            # (it answers those of a commit written as it was), taken after
            # the outcome as the writer takes them after leaving it: settled
            # with the commit, as part of it (a failure is theirs too).
            flushes: list[Operation] = [*pop_all(waiters[1])]
            cell.waiters = None
            if cell.in_flight is not None:
                cell.in_flight.extend(flushes)
            else:  # (not expected: nothing left to wait for)
                self._answer(flushes, None)
        if type(settled) is Settled:
            self._settle(cell, settled.outcome, settled.scrub)
        else:
            self._settle(cell, settled)

    def _drain_cell(self, cell: TenantCell) -> None:
        """Apply the cell's mailbox up to its end."""
        mailbox = cell.mailbox
        operation: Operation | None = None
        taken: list[Operation] = []
        try:
            self._take_settled(cell)
            while mailbox:
                # The head of the mailbox, taken in two steps each atomic
                # under the GIL: what callers append meanwhile stays.
                taken = mailbox[:]
                del mailbox[: len(taken)]
                # An outcome left while this drain went on is taken before
                # what came after it (a Resubmit the writer's loss brought).
                self._take_settled(cell)
                for operation in taken:
                    kind = type(operation)
                    if kind is Update:
                        self._apply(cell, operation)
                    elif kind is Flush:
                        self._flush(cell, operation)
                    elif kind is Refresh:
                        assert isinstance(operation, Refresh)
                        self._refresh(cell, operation)
                    elif kind is Resubmit:
                        # Sent again only if the writer of now never had it: a
                        # change committed twice would be rebased on itself.
                        if (
                            cell.in_flight is not None
                            and cell.change is not None
                            and cell.sent_to is not self._context.writer
                        ):
                            self._send(cell, urgent=True)
                    else:
                        self._apply(cell, operation)
                taken = []
            operation = None
            self._submit(cell)
            if self._context.buffered:
                self._answer_applied(cell)
        except BaseException as error:
            # Not expected; the operation in hand is answered, the cell's
            # state is rebuilt by whichever actor drains it next, and the
            # operations taken with it and not reached go back to the head.
            cell.suspect = True
            if taken and operation is not None:
                mailbox[0:0] = taken[taken.index(operation) + 1 :]
            if (
                operation is not None
                and not operation.future.done
                and operation not in cell.pending
            ):
                operation.future.set_exception(
                    (type(error), error, error.__traceback__)
                )
                self._settled(operation)
            raise

    # -- applying --------------------------------------------------------------

    def _load(self, cell: TenantCell) -> None:
        record = self._context.storage_here().load(cell.tenant_id)
        if record is not None:
            settle_profile(record.dna)
        cell.loaded = True
        cell.base = record
        cell.working = STALE
        cell.stale = FRESH
        self._context.activations.add()
        cell.published = (
            None if record is None else Versioned(record.dna, record.version)
        )

    def _apply(self, cell: TenantCell, operation: Operation) -> None:
        """Apply one change to the working profile and hold it until committed."""
        if not cell.loaded and type(operation) is Delete:
            # An erasure overwrites whatever is stored: nothing to read first.
            cell.loaded = True
            cell.base = None
            cell.working = STALE
            cell.published = None
        if not cell.loaded or _must_load(cell, operation, self._context.buffered):
            try:
                self._load(cell)
            except StorageError as error:
                self._context.storage_errors.add()
                self._log.error(
                    "profile_load_failed", tenant_id=cell.tenant_id, error=str(error)
                )
                operation.future.set_exception((StorageError, error, None))
                self._settled(operation)
                return
        self._decide(cell, operation)
        _pend(cell, operation)

    def _decide(self, cell: TenantCell, operation: Operation) -> None:
        # The last update so far is answered with the working profile itself;
        # before the profile changes again it gets a copy of its own.
        if cell.working is STALE:
            start = _current(cell)
            cell.working = None if start is None else start.copy()
        latest = cell.latest
        if latest is not None:
            latest.answer = None if cell.working is None else freeze(cell.working)
            cell.latest = None
        operation.failure = None
        kind = type(operation)
        if kind is Update:
            assert isinstance(operation, Update)
            working = cell.working
            if working is None:
                working = cell.working = TenantDNA()
            try:
                working.apply_session(operation.session, operation.alpha)
            except Exception as error:  # checked before; kept from the caller
                operation.failure = error
                return
            operation.answer = LATEST
            cell.latest = operation
        elif kind is Save:
            assert isinstance(operation, Save)
            expected = operation.expected
            if expected is not None:
                actual = _logical_version(cell)
                if expected != actual:
                    operation.failure = VersionConflict(
                        cell.tenant_id, expected, actual
                    )
                    self._context.conflicts.add()
                    return
            cell.working = operation.dna.copy()
            operation.answer = None
        else:
            cell.working = None
            operation.answer = None

    def _flush_slot(self, flush: SlotFlush) -> None:
        """Every cell queued before ``flush`` is drained: flush those still busy."""
        flushes: list[Reply[Any]] = []
        # Let go of the cells: whoever still holds the flush (a caller, or the
        # registry's last message, until its next one) must not keep them.
        cells, flush.cells = flush.cells, []
        in_flight: list[TenantCell] = []
        for cell in cells:
            if not cell.busy:
                continue
            if (
                cell.in_flight is None
                or cell.retired
                or cell.suspect
                or cell.scheduled
                or cell.draining
                or len(cell)
            ):
                # Operations of its own to drain first (or the tenant's live
                # cell to find): through the mailbox, behind them.
                cell_flush = Flush()
                flushes.append(cell_flush)
                cell.post(cell_flush, self._context)
            else:
                in_flight.append(cell)
        if in_flight:
            # A commit in flight and nothing else to do (a buffered one held
            # back, or one being written): this actor is the cell's, so it
            # hands the cell the flush itself instead of waking it for it;
            # one barrier for all of them, and the writer is told once.
            barrier = FlushBarrier()
            barrier.waiting = len(in_flight)  # before any cell can answer
            flushes.append(barrier)
            buffered = self._context.buffered
            for cell in in_flight:
                if not buffered or cell.pending or cell.settled is not None:
                    # Answered once the commit is settled here and whatever
                    # came after it committed (with ``commit``, what it wrote
                    # is published then; a commit already done, if it failed,
                    # is tried again before this is answered).
                    _pend(cell, barrier)
                    continue
                # Buffered, what the commit writes is published already: the
                # writer answers the barrier as soon as it is written (see
                # ``TenantCell.waiters``), not once this actor gets to settle
                # it, which a flush of a backlog would wait for, tenant by
                # tenant, behind the next transaction.
                waiters = cell.waiters
                if waiters is None:  # (reset as each commit is settled)
                    assert cell.change is not None
                    waiters = cell.waiters = (cell.change, [])
                # If the writer has left the outcome already, it may have
                # looked before this: the settling of the commit, which comes
                # after, answers it then (see _take_settled).
                waiters[1].append(barrier)
            writer = self._context.writer
            if writer is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    writer.tell(("flush",))
        flush.set(flushes)

    def _flush(self, cell: TenantCell, flush: Operation) -> None:
        if cell.in_flight is None and not cell.pending:
            flush.future.set(None)
            return
        _pend(cell, flush)
        writer = self._context.writer
        if writer is not None and cell.in_flight is not None:
            # A buffered commit waits for the next tick; a flush wants it now.
            writer.tell(("flush",))

    def _refresh(self, cell: TenantCell, refresh: Refresh) -> None:
        # Another process committed a change. While ours are under way it is
        # not needed: their commit is computed again on it, or conflicts;
        # unless it came after ours, which is found out when ours settles
        # (ours, not computed again, writes the base's version + 1).
        if not cell.loaded:
            return
        if cell.pending or cell.in_flight is not None:
            base = cell.base
            if (
                cell.in_flight is not None
                and not (refresh.load or refresh.erased)
                and base is not None
                and refresh.incarnation == base.incarnation
                and refresh.version > base.version + 1
            ):
                cell.stale = NEWER
            return
        if refresh.load:
            if cell.stale != FRESH:
                self._reload(cell)
            return
        base = cell.base
        if refresh.erased:
            if base is not None and base.incarnation == refresh.incarnation:
                # Absent, as far as anyone here knows: a change now starts a
                # new life (one created meanwhile elsewhere is rebased on).
                cell.base = None
                cell.working = STALE
                cell.published = None
                cell.stale = FRESH
            return
        if refresh.version == 0:
            cell.stale = UNKNOWN
        elif (
            base is not None
            and base.incarnation == refresh.incarnation
            and base.version >= refresh.version
        ):
            return  # ours, or older than what we hold
        elif cell.stale == FRESH:
            cell.stale = NEWER
        # Dropped, not read back: an update is computed again on the stored
        # record by its commit, and a reader reads storage (see ``stale``).
        cell.published = None

    def _reload(self, cell: TenantCell) -> None:
        try:
            self._load(cell)
        except StorageError as error:
            self._context.storage_errors.add()
            self._log.error(
                "profile_load_failed", tenant_id=cell.tenant_id, error=str(error)
            )

    # -- committing ------------------------------------------------------------

    def _submit(self, cell: TenantCell) -> None:
        """Send the next batch of pending changes to storage, if none is under way."""
        while cell.in_flight is None and cell.pending:
            pending = cell.pending
            if len(pending) == 1 and type(pending[0]) in (Flush, FlushBarrier):
                # What a flush leaves behind a commit: nothing to write.
                assert isinstance(pending, list)
                cell.pending = NO_OPERATIONS
                self._answer(pending, None)
                continue
            batch, rest = _next_batch(pending)
            if not any(isinstance(op, CHANGES) and op.failure is None for op in batch):
                # Nothing to write (flushes, refused saves): settled as they are.
                cell.pending = rest
                self._answer(batch, None)
                continue
            erase = any(type(op) is Delete and op.failure is None for op in batch)
            if erase:
                dna = None
            else:
                # The working profile itself becomes the change's (never
                # mutated again): changes after it start from a copy.
                dna = cell.working
                assert dna is not None
                assert dna is not STALE
                cell.working = STALE
            if cell.latest is not None and cell.latest in batch:
                cell.latest = None  # its answer is the committed profile
            # Urgent (buffered: not held for the tick) when someone waits
            # for the commit: an erasure, a flush, a compare-and-set.
            urgent = erase or any(map(_awaits_commit, batch))
            flushes: list[Flush] = []
            if self._context.buffered and urgent:
                # Buffered, a flush waits for the commit alone (what it
                # writes is published): the writer answers it once written.
                flushes = [op for op in batch if isinstance(op, Flush)]
                if flushes:
                    batch = [op for op in batch if not isinstance(op, Flush)]
            base = cell.base
            force = any(_overwrites(op) for op in batch)
            change = Change(
                cell.tenant_id,
                dna,
                0 if base is None else base.version,
                0 if base is None else base.incarnation,
                force,
                None if erase or force or self._context.inline else _rebase(batch),
            )
            cell.pending = rest
            cell.in_flight = batch
            cell.change = change
            if flushes:
                cell.waiters = (change, flushes)  # (none: nothing was in flight)
            if self._context.inline:
                try:
                    outcome = self._context.storage_here().commit([change])[0]
                except Exception as error:
                    self._settle(cell, as_storage_error(error))
                else:
                    self._context.inline_commits.add()
                    self._context.inline_changes.add()
                    self._settle(cell, outcome)
            else:
                self._send(cell, urgent)

    def _send(self, cell: TenantCell, urgent: bool) -> None:
        """Hand the commit in flight to the writer (set before: a lost writer's
        replacement finds it there and has it sent again)."""
        context = self._context
        writer = context.writer
        assert writer is not None
        cell.sent_to = None
        # The cell itself is the message: the writer takes the change from
        # it (``cell.change`` stays as it is until the commit is settled).
        message: Any = ("urgent", cell) if urgent else cell
        try:
            writer.tell(message)
            cell.sent_to = writer
        except pykka.ActorDeadError:
            replacement = context.writer
            if replacement is not None and replacement is not writer:
                with contextlib.suppress(pykka.ActorDeadError):
                    replacement.tell(message)
                    cell.sent_to = replacement
                    return
            # Not replaced yet: the registry will, and will resubmit this.
            assert context.registry is not None
            with contextlib.suppress(pykka.ActorDeadError):
                context.registry.tell(("writer_lost", writer))

    def _settle(
        self, cell: TenantCell, outcome: Any, scrub: StorageError | None = None
    ) -> None:
        """The commit in flight is done: answer, re-apply, or go back."""
        batch = cell.in_flight
        change = cell.change
        if batch is None or change is None:
            return
        cell.in_flight = None
        cell.change = None
        cell.sent_to = None
        if isinstance(outcome, Committed):
            dna = change.dna
            rebased = outcome.rebased
            if rebased is not None:
                # Another process moved the record on: storage computed the
                # batch again on it, under its lock (see Rebase).
                dna = rebased
                self._context.conflicts.add()
                if self._debug:
                    self._log.debug("profile_rebased", tenant_id=cell.tenant_id)
                assert isinstance(change.rebase, Rebase)
                change.rebase.settle()
            # Told of a newer commit meanwhile: one after ours, unless storage
            # computed ours again on it.
            newer = rebased is None and cell.stale == NEWER
            cell.stale = NEWER if newer else FRESH
            if dna is None:
                cell.base = None
                cell.published = None
                if not cell.pending:
                    # Gone from memory before its eraser hears it is done.
                    self._retire(cell)
            else:
                cell.base = Record(
                    settle_profile(dna), outcome.version, outcome.incarnation
                )
                if newer:
                    cell.published = None  # readers read storage
                elif not self._context.buffered:
                    cell.published = Versioned(dna, outcome.version)
            self._answer(batch, dna, scrub)
            self._events(cell, batch, outcome.version)
            if rebased is not None:
                self._reapply(cell, [])
                self._submit(cell)
                base = cell.base
                if cell.in_flight is None and not cell.pending and base is not None:
                    # Buffered: what it published was computed on the old base.
                    cell.published = Versioned(base.dna, base.version)
                return
        elif isinstance(outcome, Conflict):
            self._context.conflicts.add()
            current = outcome.current
            # Erased elsewhere (and not created again): what this batch and
            # those after it computed from the erased life is never written,
            # up to the first change that overwrites whatever is stored, and
            # its callers are told so. A tenant created again is a new life:
            # the changes apply to it.
            erased = change.base_incarnation != 0 and current is None
            self._log.debug(
                "version_conflict", tenant_id=cell.tenant_id, erased_elsewhere=erased
            )
            cell.base = current
            cell.stale = FRESH
            if erased:
                following = list(cell.pending)
                cut = next(
                    (i for i, op in enumerate(following) if _overwrites(op)),
                    len(following),
                )
                cell.pending = (
                    following[cut:] if cut < len(following) else NO_OPERATIONS
                )
                # Not written, so not acknowledged (buffered: they were).
                refused = StorageError(
                    f"tenant {cell.tenant_id!r} was erased by another process "
                    "before this change was committed: it was not written"
                )
                for operations in (batch, following[:cut]):
                    self._answer(
                        [op for op in operations if isinstance(op, CHANGES)], refused
                    )
                    self._answer(
                        [op for op in operations if not isinstance(op, CHANGES)], None
                    )
                self._reapply(cell, [])
            else:
                self._reapply(cell, batch)
            if not self._context.buffered:
                cell.published = (
                    None if current is None else Versioned(current.dna, current.version)
                )
        else:
            assert isinstance(outcome, StorageError)
            if self._context.inline:  # the writer counts and logs its own
                self._context.storage_errors.add()
                self._log.error(
                    "commit_failed", tenant_id=cell.tenant_id, error=str(outcome)
                )
            elif self._debug:
                # The writer logged the failed transaction once, with its
                # size: an error per tenant in it was thousands of lines.
                self._log.debug(
                    "change_not_committed",
                    tenant_id=cell.tenant_id,
                    error=str(outcome),
                )
            # Announcements that came while the commit was under way were let
            # go (its commit would have checked): storage is read before the
            # tenant is trusted again.
            cell.stale = UNKNOWN
            if self._context.buffered and isinstance(outcome, CommitOutcomeUnknown):
                # Acknowledged already, and perhaps written: committed again
                # on top of what is stored they might count twice. Let go, as
                # a crash would; storage is read before the next change.
                self._answer([op for op in batch if not op.future.done], outcome)
                cell.published = None
                self._reapply(cell, [])
            elif self._context.buffered:
                # Acknowledged already: kept, and committed with the next batch.
                waiting = [op for op in batch if op.future.done]
                self._answer([op for op in batch if not op.future.done], outcome)
                self._reapply(cell, waiting)
            else:
                cell.published = None
                self._answer(batch, outcome)
                self._reapply(cell, [])
        self._submit(cell)

    def _reapply(self, cell: TenantCell, first: list[Operation]) -> None:
        """Rebuild the working profile: ``first``, then what is pending, on the base.

        The base is the committed record, or what the commit in flight writes.
        """
        cell.working = STALE
        cell.latest = None
        operations = [*first, *cell.pending]
        cell.pending = NO_OPERATIONS
        for operation in operations:
            if isinstance(operation, CHANGES):
                self._decide(cell, operation)
            _pend(cell, operation)

    # -- answering -------------------------------------------------------------

    def _answer(
        self,
        batch: list[Operation],
        committed: Any,
        scrub: StorageError | None = None,
    ) -> None:
        """Answer a settled batch: ``committed`` is what it wrote, or the error.

        ``scrub``: the batch was written but an erasure's bytes may remain;
        the erasure is answered with it.
        """
        failed = isinstance(committed, StorageError)
        release = self._context.release
        for operation in batch:
            future = operation  # (its own future)
            if not future.done:
                if failed:
                    future.set_exception((type(committed), committed, None))
                elif scrub is not None and type(operation) is Delete:
                    future.set_exception((type(scrub), scrub, None))
                elif operation.failure is not None:
                    error = operation.failure
                    future.set_exception((type(error), error, None))
                elif operation.answer is LATEST:
                    future.set_copied(committed)
                elif operation.answer is PENDING:
                    future.set(None)
                else:
                    _give(future, operation.answer)
            if operation.counted:
                operation.counted = False
                release()

    def _answer_applied(self, cell: TenantCell) -> None:
        """Buffered: publish the working profile, answer what is applied.

        Updates and saves are answered once applied; a compare-and-set is
        decided on the version stored, so it is answered when its commit
        settles (another process may write first), as in ``commit`` mode.
        """
        working = cell.working
        if working is STALE:
            snapshot = _current(cell)  # committed or in flight: never mutated
        else:
            snapshot = None if working is None else working.copy()
        change = cell.change
        if not cell.pending and change is not None and change.dna is not None:
            # The usual: everything applied is in the commit under way, which
            # writes a profile: the version after its base.
            cell.published = Versioned(change.dna, change.base_version + 1)
        elif cell.pending or cell.in_flight is not None:
            version = _logical_version(cell)
            cell.published = None if snapshot is None else Versioned(snapshot, version)
        else:
            # Nothing applied waits for storage: what is stored is what it
            # published (a change refused at its commit, a compare-and-set
            # another process beat, is not), unless storage must be read.
            cell.published = cell.base if cell.stale == FRESH else None
        # The answers keep the snapshot frozen, not the published profile,
        # which the next drain replaces (see freeze); made only if asked for.
        frozen: Frozen | None = None
        in_flight = None if change is None else change.dna
        # (An operation is its own future: ``operation.future`` is itself.)
        for operations, pending in (
            (cell.in_flight or NO_OPERATIONS, False),
            (cell.pending, True),
        ):
            # Each drain answers what it applied, in order: the answered
            # changes are the head of each list, the others its tail (a drain
            # that failed before answering left its own there too). Only the
            # tail is read: a tenant with thousands of changes waiting for a
            # tick is not read through again on every drain.
            start = len(operations)
            while start and not (
                type(operations[start - 1]) in (Update, Save)
                and operations[start - 1].done
            ):
                start -= 1
            for operation in operations[start:]:
                if type(operation) not in (Update, Save) or operation.done:
                    continue
                if _awaits_commit(operation) and operation.failure is None:
                    continue  # a compare-and-set: answered by its commit
                if operation.failure is not None:
                    error = operation.failure
                    operation.set_exception((type(error), error, None))
                elif operation.answer is LATEST and not pending:
                    _give(operation, in_flight)
                elif operation.answer is LATEST:
                    if frozen is None and snapshot is not None:
                        frozen = freeze(snapshot)
                    _give(operation, frozen)
                else:
                    _give(operation, operation.answer)
        if cell.latest is not None:
            # Its answer went out with the snapshot; later changes copy anew.
            if frozen is None and snapshot is not None:
                frozen = freeze(snapshot)
            cell.latest.answer = frozen
            cell.latest = None

    def _events(self, cell: TenantCell, batch: list[Operation], version: int) -> None:
        """Tell what a committed batch did, after its callers were answered."""
        if not self._info:
            return  # the usual case: none of these events would be shown
        log = self._log
        tenant_id = cell.tenant_id
        if self._debug:
            for operation in batch:
                if operation.failure is not None:
                    continue
                if type(operation) is Update:
                    assert isinstance(operation, Update)
                    log.debug(
                        "profile_updated",
                        tenant_id=tenant_id,
                        keys=operation.session.present,
                    )
                elif type(operation) is Save:
                    log.debug("profile_saved", tenant_id=tenant_id)
        if any(type(op) is Delete and op.failure is None for op in batch):
            log.info("tenant_erased", tenant_id=tenant_id)
        else:
            log.debug("profile_committed", tenant_id=tenant_id, version=version)

    def _settled(self, operation: Operation) -> None:
        if operation.counted:
            operation.counted = False
            self._context.release()


class Rebase:
    """A batch of updates computed again on a newer stored profile (``Change.rebase``).

    Called by storage in the writer's thread, inside the commit's transaction,
    with its own copy of the stored profile: it reads only the batch (which
    operations it holds, and the updates' sessions) and writes only its own
    fields. :meth:`settle`, in the tenant's actor once the commit is settled,
    gives the updates not yet answered the answers computed last: each but
    the last a copy of the profile right after it, the last the committed
    profile itself.
    """

    __slots__ = ("_answers", "_batch")

    def __init__(self, batch: list[Operation]) -> None:
        # The commit's own list, never changed while it is in flight: the
        # updates are picked from it only when storage calls this, which is
        # rare, so a commit costs one object here, not three.
        self._batch = batch
        self._answers: list[tuple[Update, Frozen | None]] | tuple[()] = ()

    def __call__(self, dna: TenantDNA) -> TenantDNA:
        updates = [
            operation
            for operation in self._batch
            if isinstance(operation, Update) and operation.failure is None
        ]
        answers: list[tuple[Update, Frozen | None]] = []
        last = updates[-1]
        for update in updates:
            dna.apply_session(update.session, update.alpha)
            # Buffered: answered when applied, so no copy is needed.
            wanted = update is not last and not update.done
            answers.append((update, freeze(dna) if wanted else None))
        self._answers = answers
        return dna

    def settle(self) -> None:
        for update, answer in self._answers:
            if not update.done:
                update.answer = LATEST if answer is None else answer


def _give(future: Reply[Any], answer: Any) -> None:
    """Resolve ``future`` to ``answer``: a profile of its own, or frozen, thawed
    by each ``get()``; a profile shared with others is copied by each."""
    if type(answer) is tuple:
        future.set_made(answer, thaw)
    elif type(answer) is TenantDNA:
        future.set_copied(answer)
    else:
        future.set(answer)


def _rebase(batch: list[Operation]) -> Rebase | None:
    """How storage computes ``batch`` again: only a batch of updates can be."""
    updates = False
    for operation in batch:
        if operation.failure is not None or isinstance(operation, Flush):
            continue
        if type(operation) is not Update:
            return None
        updates = True
    return Rebase(batch) if updates else None


def as_storage_error(error: Exception) -> StorageError:
    """``error`` as a ``StorageError``: a commit's callers get one kind of error."""
    if isinstance(error, StorageError):
        return error
    failure = StorageError(f"the commit failed: {error!r}")
    failure.__cause__ = error
    return failure


def _pend(cell: TenantCell, operation: Operation) -> None:
    """Append ``operation`` to what the cell has pending (a list from the first)."""
    pending = cell.pending
    if isinstance(pending, list):
        pending.append(operation)
    else:
        cell.pending = [operation]


def _next_batch(pending: Pending) -> tuple[list[Operation], Pending]:
    """Split off what one commit writes: up to and including the first erasure."""
    if not isinstance(pending, list):
        return [], NO_OPERATIONS
    for index, operation in enumerate(pending):
        if type(operation) is Delete and operation.failure is None:
            if index + 1 == len(pending):
                break
            return pending[: index + 1], pending[index + 1 :]
    return pending, NO_OPERATIONS


def _current(cell: TenantCell) -> TenantDNA | None:
    """The profile the working one derives from: in flight, else committed."""
    if cell.in_flight is not None and cell.change is not None:
        return cell.change.dna
    return None if cell.base is None else cell.base.dna


def _logical_version(cell: TenantCell) -> int:
    """The version the record will have once everything before is committed."""
    version = 0 if cell.base is None else cell.base.version
    for operations in (cell.in_flight or [], cell.pending):
        changed = False
        for operation in operations:
            if operation.failure is not None or not isinstance(operation, CHANGES):
                continue
            if type(operation) is Delete:
                version, changed = 0, False
            else:
                changed = True
        if changed:
            version += 1
    return version


def _must_load(cell: TenantCell, operation: Operation, buffered: bool) -> bool:
    """Whether ``operation`` needs the stored record first: the cell is stale,
    idle (so loading loses nothing), and a rebase by the commit would not do
    (``buffered``: the change is answered and published before its commit).
    """
    stale = cell.stale
    if stale == FRESH or cell.pending or cell.in_flight is not None:
        return False
    if type(operation) is Delete:
        return False
    if stale == UNKNOWN or buffered:
        return True
    # A compare-and-set is decided here, on the version stored.
    return isinstance(operation, Save) and operation.expected is not None


def _awaits_commit(operation: Operation) -> bool:
    """Whether ``operation``'s caller waits for its commit, also when buffered:
    a flush, or a compare-and-set (decided on the version stored)."""
    return isinstance(operation, Flush) or (
        isinstance(operation, Save) and operation.expected is not None
    )


def _overwrites(operation: Operation) -> bool:
    """An erasure, or a save without an expected version: written whatever is stored."""
    if operation.failure is not None:
        return False
    if type(operation) is Delete:
        return True
    return isinstance(operation, Save) and operation.expected is None
