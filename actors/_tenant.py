"""The tenant actor: the single writer of one tenant's profile at a time."""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import pykka

from actors._cell import (
    CHANGES,
    LATEST,
    PENDING,
    Delete,
    Flush,
    Handover,
    Operation,
    Refresh,
    Save,
    Settle,
    TenantCell,
    Update,
    Versioned,
)
from dna import TenantDNA
from storage import Change, Committed, Conflict, Record, StorageError, VersionConflict

if TYPE_CHECKING:
    from actors._context import Context


class TenantActor(pykka.ThreadingActor):
    """Applies every change to the tenant of the cell it serves, in mailbox order.

    One actor is one thread, so the registry keeps a bounded number of them and
    moves one to the next tenant (a ``Handover``) instead of starting another.
    A batch of changes is applied to the working profile, then committed as
    one change of the tenant's record (by the writer, grouped with other
    tenants', or here for the in-memory backend); the callers are answered
    once it is committed and the new profile is published. On a version
    conflict the batch is re-applied to the stored record; on a storage error
    its callers get the error and the profile goes back to what is committed.
    The actor answers every operation, success or error, through its future;
    nothing a caller sends can stop it or lose the profile.
    """

    # A store that is never closed must not keep the process alive.
    use_daemon_thread = True

    def __init__(self, context: Context, cell: TenantCell, slot: int) -> None:
        super().__init__()
        self._context = context
        self._cell = cell
        self._slot = slot
        self._retiring = False
        self._log = context.events

    def on_start(self) -> None:
        self._log.debug("tenant_actor_started", slot=self._slot)
        self._adopt(self._cell)
        self._drain()

    def on_stop(self) -> None:
        self._log.debug("tenant_actor_stopped", slot=self._slot)
        if not self._retiring:
            self._lost()

    def on_failure(self, *exc_info: Any) -> None:
        self._lost()

    def _lost(self) -> None:
        # Stopped by anything but the store's own close: the registry puts a
        # new actor in this slot, which takes the cell over.
        registry = self._context.registry
        if registry is not None:
            with contextlib.suppress(pykka.ActorDeadError):
                registry.tell(("lost", self._slot, self.actor_ref))

    def on_receive(self, message: Any) -> None:
        # The only message is a wake-up naming a cell, sent by the holder of
        # its token. For a cell this actor has let go of, the token passes to
        # the registry, which finds the cell a host.
        if message is self._cell:
            self._drain()
        elif isinstance(message, TenantCell):
            registry = self._context.registry
            if registry is not None:
                registry.tell(("activate", message))
        else:
            self._log.warning("unexpected_message", type=type(message).__name__)

    # -- hosting ---------------------------------------------------------------

    def _adopt(self, cell: TenantCell) -> None:
        self._cell = cell
        cell.host = self.actor_ref
        if cell.suspect:
            # An actor died holding the cell: its working profile may be half
            # changed. Everything still pending is applied again to the base.
            cell.suspect = False
            self._reapply(cell, [])
        self._log.debug("tenant_activated", tenant_id=cell.tenant_id)

    def _drain(self) -> None:
        while True:
            cell = self._cell
            cell.scheduled = False
            handover = self._drain_cell(cell)
            if handover is None:
                return
            self._let_go(cell)
            handover.future.set(None)
            if handover.next_cell is None:
                self._retiring = True
                self.stop()
                return
            self._adopt(handover.next_cell)

    def _let_go(self, cell: TenantCell) -> None:
        """Passivate: the profile stays published, the state stays in the cell."""
        cell.host = None
        cell.releasing = False
        cell.scheduled = False
        self._log.debug("tenant_passivated", tenant_id=cell.tenant_id)
        # Operations that arrived after the handover need another host.
        if cell.mailbox and not cell.scheduled:
            cell.scheduled = True
            registry = self._context.registry
            if registry is not None:
                registry.tell(("activate", cell))

    def _drain_cell(self, cell: TenantCell) -> Handover | None:
        """Apply the cell's mailbox up to its end or a ``Handover`` (returned)."""
        mailbox = cell.mailbox
        operation: Operation | None = None
        handover: Handover | None = None
        try:
            while mailbox:
                operation = mailbox.popleft()
                kind = type(operation)
                if kind is Handover:
                    assert isinstance(operation, Handover)
                    if not operation.cancelled:
                        handover = operation
                        break
                    operation.future.set(None)
                elif kind is Settle:
                    assert isinstance(operation, Settle)
                    self._settle(cell, operation.outcome, operation.scrub)
                elif kind is Flush:
                    self._flush(cell, operation)
                elif kind is Refresh:
                    self._refresh(cell)
                else:
                    self._apply(cell, operation)
            operation = None
            # What was applied goes to storage before the cell is let go; its
            # outcome comes back through the mailbox, to whichever host.
            self._submit(cell)
            if self._context.buffered:
                self._answer_applied(cell)
            return handover
        except BaseException as error:
            # Not expected; the operation in hand is answered, the cell's
            # state is rebuilt by whichever actor takes it next.
            cell.suspect = True
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
        cell.loaded = True
        cell.base = record
        cell.working = None if record is None else record.dna.copy()
        cell.published = (
            None if record is None else Versioned(record.dna, record.version)
        )

    def _apply(self, cell: TenantCell, operation: Operation) -> None:
        """Apply one change to the working profile and hold it until committed."""
        if not cell.loaded:
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
        cell.pending.append(operation)

    def _decide(self, cell: TenantCell, operation: Operation) -> None:
        # The last update so far is answered with the working profile itself;
        # before the profile changes again it gets a copy of its own.
        latest = cell.latest
        if latest is not None:
            latest.answer = None if cell.working is None else cell.working.copy()
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

    def _flush(self, cell: TenantCell, flush: Operation) -> None:
        if cell.in_flight is None and not cell.pending:
            flush.future.set(None)
            return
        cell.pending.append(flush)
        writer = self._context.writer
        if writer is not None and cell.in_flight is not None:
            # A buffered commit waits for the next tick; a flush wants it now.
            writer.tell(("flush",))

    def _refresh(self, cell: TenantCell) -> None:
        # Another process committed a change: take it unless ours are under
        # way (then their commit conflicts and re-applies them anyway).
        if not cell.loaded or cell.busy:
            return
        try:
            self._load(cell)
        except StorageError as error:
            self._context.storage_errors.add()
            cell.loaded = False
            cell.published = None
            self._log.error(
                "profile_load_failed", tenant_id=cell.tenant_id, error=str(error)
            )

    # -- committing ------------------------------------------------------------

    def _submit(self, cell: TenantCell) -> None:
        """Send the next batch of pending changes to storage, if none is under way."""
        while cell.in_flight is None and cell.pending:
            batch, rest = _next_batch(cell.pending)
            if not any(isinstance(op, CHANGES) and op.failure is None for op in batch):
                # Nothing to write (flushes, refused saves): settled as they are.
                cell.pending = rest
                self._answer(batch, None)
                continue
            erase = any(type(op) is Delete and op.failure is None for op in batch)
            if erase:
                dna = None
            else:
                assert cell.working is not None
                dna = cell.working.copy()
            if cell.latest is not None and cell.latest in batch:
                cell.latest = None  # its answer is the committed profile
            base = cell.base
            change = Change(
                cell.tenant_id,
                dna,
                0 if base is None else base.version,
                0 if base is None else base.incarnation,
                force=any(_overwrites(op) for op in batch),
            )
            cell.pending = rest
            cell.in_flight = batch
            cell.change = change
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
                urgent = erase or any(type(op) is Flush for op in batch)
                try:
                    assert self._context.writer is not None
                    self._context.writer.tell(("commit", cell, change, urgent))
                except pykka.ActorDeadError:
                    self._settle(cell, StorageError("the store's writer has stopped"))

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
        if isinstance(outcome, Committed):
            if change.dna is None:
                cell.base = None
                cell.published = None
            else:
                cell.base = Record(change.dna, outcome.version, outcome.incarnation)
                if not self._context.buffered:
                    cell.published = Versioned(change.dna, outcome.version)
            self._answer(batch, change.dna, scrub)
            self._events(cell, batch, outcome.version)
        elif isinstance(outcome, Conflict):
            self._context.conflicts.add()
            current = outcome.current
            erased = (
                change.base_incarnation != 0
                and not change.force
                and (current is None or current.incarnation != change.base_incarnation)
            )
            self._log.debug(
                "version_conflict", tenant_id=cell.tenant_id, erased_elsewhere=erased
            )
            cell.base = current
            if erased:
                # Computed from a life of the tenant that was erased meanwhile:
                # an erasure is never undone, so these are not written.
                self._reapply(cell, [])
                self._answer(batch, change.dna)
            else:
                self._reapply(cell, batch)
            if not self._context.buffered:
                cell.published = (
                    None if current is None else Versioned(current.dna, current.version)
                )
        else:
            assert isinstance(outcome, StorageError)
            self._context.storage_errors.add()
            self._log.error(
                "commit_failed", tenant_id=cell.tenant_id, error=str(outcome)
            )
            if self._context.buffered:
                # Acknowledged already: kept, and committed with the next batch.
                waiting = [op for op in batch if op.future.done]
                self._answer([op for op in batch if not op.future.done], outcome)
                cell.pending = waiting + cell.pending
            else:
                self._answer(batch, outcome)
                self._reapply(cell, [])
        self._submit(cell)

    def _reapply(self, cell: TenantCell, first: list[Operation]) -> None:
        """Rebuild the working profile: ``first``, then what is pending, on the base.

        The base is the committed record, or what the commit in flight writes.
        """
        if cell.in_flight is not None and cell.change is not None:
            start = cell.change.dna
        else:
            start = None if cell.base is None else cell.base.dna
        cell.working = None if start is None else start.copy()
        cell.latest = None
        operations = first + cell.pending
        cell.pending = []
        for operation in operations:
            if isinstance(operation, CHANGES):
                self._decide(cell, operation)
            cell.pending.append(operation)

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
        for operation in batch:
            future = operation.future
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
                    future.set(operation.answer)
            self._settled(operation)

    def _answer_applied(self, cell: TenantCell) -> None:
        """Buffered: publish the working profile, answer what is applied."""
        working = cell.working
        snapshot = None if working is None else working.copy()
        if cell.pending or cell.in_flight is not None:
            version = _logical_version(cell)
            cell.published = None if snapshot is None else Versioned(snapshot, version)
        for operations in (cell.in_flight or [], cell.pending):
            for operation in operations:
                if type(operation) in (Update, Save) and not operation.future.done:
                    if operation.failure is not None:
                        error = operation.failure
                        operation.future.set_exception((type(error), error, None))
                    elif operation.answer is LATEST:
                        operation.future.set_copied(snapshot)
                    else:
                        operation.future.set(operation.answer)
        if cell.latest is not None:
            # Its answer went out with the snapshot; later changes copy anew.
            cell.latest.answer = snapshot
            cell.latest = None

    def _events(self, cell: TenantCell, batch: list[Operation], version: int) -> None:
        """Tell what a committed batch did, after its callers were answered."""
        log = self._log
        tenant_id = cell.tenant_id
        if log.enabled(logging.DEBUG):
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


def as_storage_error(error: Exception) -> StorageError:
    """``error`` as a ``StorageError``: a commit's callers get one kind of error."""
    if isinstance(error, StorageError):
        return error
    failure = StorageError(f"the commit failed: {error!r}")
    failure.__cause__ = error
    return failure


def _next_batch(pending: list[Operation]) -> tuple[list[Operation], list[Operation]]:
    """Split off what one commit writes: up to and including the first erasure."""
    for index, operation in enumerate(pending):
        if type(operation) is Delete and operation.failure is None:
            return pending[: index + 1], pending[index + 1 :]
    return pending, []


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


def _overwrites(operation: Operation) -> bool:
    """An erasure, or a save without an expected version: written whatever is stored."""
    if operation.failure is not None:
        return False
    if type(operation) is Delete:
        return True
    return isinstance(operation, Save) and operation.expected is None
