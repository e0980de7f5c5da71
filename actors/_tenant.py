"""The tenant actor: the single writer of one tenant's profile at a time."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pykka
import structlog

from actors._cell import Delete, Flush, Handover, Operation, Save, TenantCell, Update
from actors._future import Reply
from dna import TenantDNA

if TYPE_CHECKING:
    from actors._registry import Registry

_LATEST: Any = object()
"""Answer of an update: the profile as it stands after it."""

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class TenantActor(pykka.ThreadingActor):
    """Applies every change to the tenant of the cell it serves, in mailbox order.

    One actor is one thread, so the registry keeps a bounded number of them and
    moves one to the next tenant (a ``Handover``) instead of starting another.
    Passivation leaves the profile published in the cell's snapshot, and
    activation starts from a copy of it. The actor answers every operation,
    success or error, through the operation's future; nothing a caller sends
    can stop it or lose the profile.
    """

    # A store that is never closed must not keep the process alive.
    use_daemon_thread = True

    def __init__(self, registry: pykka.ActorRef[Registry], cell: TenantCell) -> None:
        super().__init__()
        self._registry = registry
        self._cell = cell
        self._dna: TenantDNA | None = None
        # Bound once: a lazy proxy would rebuild the logger on every event.
        self._log = structlog.get_logger("actors").bind()
        # Naming the keys of every session costs more than the event when the
        # application filters debug events out; ask once.
        enabled = getattr(self._log, "is_enabled_for", None)
        self._log_updates = enabled is None or bool(enabled(logging.DEBUG))

    def on_start(self) -> None:
        self._log.debug("tenant_actor_started", actor=self.actor_urn)
        self._adopt(self._cell)
        self._drain()

    def on_stop(self) -> None:
        self._log.debug("tenant_actor_stopped", actor=self.actor_urn)

    def on_receive(self, message: Any) -> None:
        # The only message is a wake-up naming a cell, sent by the holder of
        # its token. For a cell this actor has let go of, the token passes to
        # the registry, which finds the cell a host.
        if message is self._cell:
            self._drain()
        elif isinstance(message, TenantCell):
            self._registry.tell(("activate", message))
        else:
            self._log.warning("unexpected_message", type=type(message).__name__)

    def _adopt(self, cell: TenantCell) -> None:
        self._cell = cell
        self._dna = None if cell.snapshot is None else cell.snapshot.copy()
        cell.host = self.actor_ref
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
                self.stop()
                return
            self._adopt(handover.next_cell)

    def _let_go(self, cell: TenantCell) -> None:
        """Passivate: the profile stays published in ``cell.snapshot``."""
        cell.host = None
        cell.releasing = False
        cell.scheduled = False
        self._log.debug("tenant_passivated", tenant_id=cell.tenant_id)
        # Operations that arrived after the handover need another host.
        if cell.mailbox and not cell.scheduled:
            cell.scheduled = True
            self._registry.tell(("activate", cell))

    def _drain_cell(self, cell: TenantCell) -> Handover | None:
        """Apply the cell's mailbox up to its end or a ``Handover`` (returned)."""
        mailbox = cell.mailbox
        answers: list[tuple[Reply[Any], Any, ExcInfo | None]] = []
        # The last update of a batch is answered with the snapshot itself, which
        # its reply copies only if someone asks: fire-and-forget callers never
        # pay for the copy. An update followed by another change needs its own.
        latest: Reply[Any] | None = None
        changed = False
        handover = None
        while mailbox:
            operation = mailbox.popleft()
            if type(operation) is Handover:
                handover = operation
                break
            kind = type(operation)
            if kind is not Flush:
                changed = True
                if latest is not None:
                    answers.append((latest, self._copy(), None))
                    latest = None
            try:
                answer = self._apply(operation)
            except Exception as error:  # every error goes back to its caller
                self._log.exception(
                    "operation_failed",
                    tenant_id=cell.tenant_id,
                    operation=kind.__name__,
                )
                exc_info = (type(error), error, error.__traceback__)
                answers.append((operation.future, None, exc_info))
            else:
                if answer is _LATEST:
                    latest = operation.future
                else:
                    answers.append((operation.future, answer, None))
        # The snapshot goes out before any answer, so a caller whose change was
        # acknowledged reads it back (read-your-writes).
        if changed:
            cell.snapshot = self._copy()
            cell.recent = True
        if latest is not None:
            latest.set_copied(cell.snapshot)
        for future, answer, failure in answers:
            if failure is None:
                future.set(answer)
            else:
                future.set_exception(failure)
        return handover

    def _copy(self) -> TenantDNA | None:
        return None if self._dna is None else self._dna.copy()

    def _apply(self, operation: Operation) -> Any:
        kind = type(operation)
        tenant_id = self._cell.tenant_id
        if kind is Update:
            assert isinstance(operation, Update)
            dna = self._dna
            if dna is None:
                dna = self._dna = TenantDNA()
                self._stored(tenant_id)
            dna.apply_session(operation.session, operation.alpha)
            if self._log_updates:
                self._log.debug(
                    "profile_updated",
                    tenant_id=tenant_id,
                    keys=operation.session.present,
                )
            return _LATEST
        if kind is Save:
            assert isinstance(operation, Save)
            if self._dna is None:
                self._stored(tenant_id)
            self._dna = operation.dna
            self._log.debug("profile_saved", tenant_id=tenant_id)
            return None
        if kind is Delete:
            if self._dna is not None:
                self._dna = None
                # Told before the caller is answered, so a count asked after
                # delete() returns already leaves the tenant out.
                self._registry.tell(("erased", tenant_id))
                self._log.info("tenant_erased", tenant_id=tenant_id)
            return None
        return None  # a Flush: everything before it has been applied

    def _stored(self, tenant_id: str) -> None:
        self._registry.tell(("stored", tenant_id))
