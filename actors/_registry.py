"""The registry actor: which actor serves which tenant, and who is stored."""

from __future__ import annotations

import contextlib
from typing import Any

import pykka
import structlog

from actors._cell import Flush, Handover, Operation, TenantCell
from actors._tenant import TenantActor


class Registry(pykka.ThreadingActor):
    """The directory of tenants: activation, passivation, erasure, listing.

    Callers find a tenant's cell in ``directory`` without a message; the
    registry hears from them only when a cell with work in its mailbox has no
    actor (an ``activate`` message). At most ``max_active`` tenant actors run;
    when all are busy, the least recently used cell (a clock sweep) is handed
    over: its actor passivates that tenant and takes on the new one. The set
    of tenants with stored DNA is kept from the actors' ``stored`` and
    ``erased`` notes and answers ``count`` and ``list_tenants``.
    """

    use_daemon_thread = True

    def __init__(self, directory: dict[str, TenantCell], max_active: int) -> None:
        super().__init__()
        self._directory = directory
        self._max_active = max_active
        self._stored: set[str] = set()
        self._ring: list[TenantCell] = []  # ring[i]: the cell given to host i
        self._hosts: list[pykka.ActorRef[TenantActor]] = []
        self._hand = 0
        self._closing = False
        self._log = structlog.get_logger("actors").bind()

    def on_receive(self, message: Any) -> Any:
        # A stray message must not stop the registry (pykka stops an actor
        # whose handler raises for a tell), so its shape is checked first.
        kind = message[0] if isinstance(message, tuple) and message else None
        if kind == "activate":
            self._activate(message[1])
        elif kind == "stored":
            self._stored.add(message[1])
        elif kind == "erased":
            self._stored.discard(message[1])
        elif kind == "count":
            return len(self._stored)
        elif kind == "list":
            return sorted(self._stored)
        elif kind == "flush":
            return self._flush()
        elif kind == "close":
            return self._close()
        else:
            self._log.warning("unexpected_message", type=type(message).__name__)
        return None

    def _activate(self, cell: TenantCell) -> None:
        if cell.assigned:
            # Hosted: pass the wake-up on. Awaiting adoption: that drains it.
            host = cell.host
            if host is not None:
                # A host stopped by close() has drained its cell already.
                with contextlib.suppress(pykka.ActorDeadError):
                    host.tell(cell)
            return
        if cell.releasing:
            # Its actor is letting go of it and checks the mailbox when it has.
            return
        # A stale token for an idle cell is simply returned.
        cell.scheduled = False
        if not cell.mailbox or cell.scheduled:
            return
        cell.scheduled = True
        if self._closing:
            cell.fail_pending()
            cell.scheduled = False
            return
        cell.assigned = True
        cell.recent = True
        if len(self._ring) < self._max_active:
            self._ring.append(cell)
            self._hosts.append(TenantActor.start(self.actor_ref, cell))
            return
        slot = self._victim()
        victim = self._ring[slot]
        victim.assigned = False
        victim.releasing = True
        self._ring[slot] = cell
        victim.post(Handover(cell), self.actor_ref)

    def _victim(self) -> int:
        # Second chance: a cell used since the hand last passed is spared once.
        ring = self._ring
        while True:
            slot = self._hand
            self._hand = (slot + 1) % len(ring)
            if ring[slot].recent:
                ring[slot].recent = False
            else:
                return slot

    def _post(self, cell: TenantCell, operation: Operation) -> pykka.Future[Any]:
        cell.post(operation, self.actor_ref)
        return operation.future

    def _flush(self) -> list[pykka.Future[Any]]:
        # Every cell with work queued or a host; the copy of the values is made
        # in one step, so callers adding cells meanwhile cannot disturb it.
        return [
            self._post(cell, Flush())
            for cell in list(self._directory.values())
            if cell.mailbox or cell.assigned
        ]

    def _close(self) -> list[tuple[pykka.Future[Any], pykka.ActorRef[TenantActor]]]:
        self._closing = True
        self._stored.clear()
        return [
            (self._post(cell, Handover(None)), host)
            for cell, host in zip(self._ring, self._hosts, strict=True)
        ]
