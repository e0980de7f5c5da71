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

if TYPE_CHECKING:
    from dna import SessionMetrics, TenantDNA


class Operation:
    """A change or a request, applied by the tenant's actor in mailbox order."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()


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
    """One activation of one tenant.

    * ``mailbox``: appended by any thread, popped by the serving actor until it
      applies a ``Handover``, and by the registry after that.
    * ``snapshot``: written by the serving actor only; ``None`` means the tenant
      has no stored DNA. Never mutated once published.
    * ``scheduled``: a wake-up for this cell is pending. Callers set it after
      appending; the actor clears it *before* draining, so an operation
      appended while it was set is always seen by that drain.
    * ``closed``: set by the actor when it applies a ``Handover``. A caller that
      finds it set after appending asks the registry to reroute the mailbox.
    * ``recent``: touched by every use, cleared by the registry's eviction clock.
    """

    __slots__ = (
        "closed",
        "host",
        "mailbox",
        "recent",
        "retired",
        "scheduled",
        "snapshot",
        "tenant_id",
    )

    host: pykka.ActorRef[Any]
    """The actor serving (or about to serve) this cell; set before any use."""

    def __init__(self, tenant_id: str, snapshot: TenantDNA | None) -> None:
        self.tenant_id = tenant_id
        self.snapshot = snapshot
        self.mailbox: deque[Operation] = deque()
        # Set until the host adopts the cell: callers need not wake it, the
        # adoption drains whatever arrived before.
        self.scheduled = True
        self.closed = False
        self.recent = True
        self.retired = False  # registry-owned: the host has let go of it

    def post(self, operation: Operation) -> bool:
        """Append ``operation`` and wake the host if needed.

        Returns ``False`` when the cell turned out to be closed: the operation
        may be stranded, and the caller must ask the registry to reroute.
        """
        self.mailbox.append(operation)
        if self.closed:
            return False
        if not self.scheduled:
            self.scheduled = True
            try:
                self.host.tell(self)
            except pykka.ActorDeadError:
                # The host stopped after closing the cell; the registry drains it.
                return False
        return True
