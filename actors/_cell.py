"""A tenant's cell: its mailbox, its published snapshot, and the messages in it.

A cell is the meeting point of the threads that submit changes and the one
tenant actor that applies them. Callers append operations to ``mailbox`` (a
``deque``, whose ``append`` and ``popleft`` are atomic) and wake the actor only
when no wake-up is pending; the actor drains the mailbox in batches and
publishes ``snapshot`` for readers. Every field has one writer, so no lock is
needed; the invariants are spelled out where each field is written.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import pykka

from actors._errors import StoreClosed
from actors._future import Reply

if TYPE_CHECKING:
    from dna import SessionMetrics, TenantDNA


class Operation:
    """A change or a request, applied by the tenant's actor in mailbox order."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: Reply[Any] = Reply()


class Update(Operation):
    """Learn from one session; resolves to a copy of the profile right after it."""

    __slots__ = ("alpha", "session")

    def __init__(self, session: SessionMetrics, alpha: float) -> None:
        super().__init__()
        self.session = session
        self.alpha = alpha


class Save(Operation):
    """Replace the profile with ``dna`` (a copy the caller no longer holds)."""

    __slots__ = ("dna",)

    def __init__(self, dna: TenantDNA) -> None:
        super().__init__()
        self.dna = dna


class Delete(Operation):
    """Erase the tenant (GDPR); resolves to ``None``."""

    __slots__ = ()


class Flush(Operation):
    """Resolves to ``None`` once every operation before it has been applied."""

    __slots__ = ()


class Handover(Operation):
    """Passivate this cell's tenant; the actor then serves ``next_cell``.

    With ``next_cell=None`` the actor stops instead (the store is closing).
    """

    __slots__ = ("next_cell",)

    def __init__(self, next_cell: TenantCell | None) -> None:
        super().__init__()
        self.next_cell = next_cell


class TenantCell:
    """A tenant's identity in the store: its mailbox and its published profile.

    A cell lives as long as the store; the actor serving it comes and goes
    (activation and passivation). Every field has one writer at a time:

    * ``mailbox``: appended by any thread; popped only by the actor hosting
      the cell, so operations are applied one at a time in mailbox order.
    * ``snapshot``: the profile as of the last applied operation, written only
      by the hosting actor and never mutated once published; ``None`` when the
      tenant has no stored DNA. Readers copy it without a message.
    * ``scheduled``: the wake-up token. Whoever sets it after appending is
      responsible for getting the mailbox drained: it tells the host, or the
      registry when there is none. The host clears it *before* draining, so an
      operation appended while it was set is always seen by that drain.
    * ``host``: the actor serving the cell; set by that actor when it adopts
      the cell and cleared by it when it lets go (passivation).
    * ``assigned``: the cell holds (or awaits) a host's slot. Registry-owned.
    * ``releasing``: a ``Handover`` for it is queued; set by the registry,
      cleared by the actor when it lets go. While set, no other actor may be
      given the cell.
    * ``recent``: touched by every use, cleared by the registry's eviction clock.
    * ``closed``: set once by ``close()`` after every actor has stopped; from
      then on whatever reaches the mailbox is answered with ``StoreClosed``.
    """

    __slots__ = (
        "assigned",
        "closed",
        "host",
        "mailbox",
        "recent",
        "releasing",
        "scheduled",
        "snapshot",
        "tenant_id",
    )

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.mailbox: deque[Operation] = deque()
        self.snapshot: TenantDNA | None = None
        self.scheduled = False
        self.host: pykka.ActorRef[Any] | None = None
        self.assigned = False
        self.releasing = False
        self.recent = True
        self.closed = False

    def post(self, operation: Operation, registry: pykka.ActorRef[Any]) -> None:
        """Append ``operation`` and, if no wake-up is pending, arrange one.

        Raises ``pykka.ActorDeadError`` if the registry has stopped (the store
        is closed).
        """
        self.mailbox.append(operation)
        if self.closed:
            # Appended after (or while) close() swept the mailbox: no actor
            # will ever drain it. Each operation is popped, and answered, once.
            self.fail_pending()
            return
        if self.scheduled:
            return
        self.scheduled = True
        host = self.host
        if host is not None:
            try:
                host.tell(self)
            except pykka.ActorDeadError:
                pass  # stopped with the store: the registry answers the token
            else:
                return
        registry.tell(("activate", self))

    def fail_pending(self) -> None:
        """Answer every operation left in the mailbox with ``StoreClosed``."""
        mailbox = self.mailbox
        while True:
            try:
                operation = mailbox.popleft()
            except IndexError:
                return
            operation.future.set_exception(
                (StoreClosed, StoreClosed("the store is closed"), None)
            )
