"""The registry actor: the directory of tenants and their activations."""

from __future__ import annotations

from typing import Any

import pykka
import structlog

from actors._cell import Delete, Flush, Handover, Operation, TenantCell
from actors._errors import StoreClosed
from actors._tenant import TenantActor
from dna import TenantDNA


class Registry(pykka.ThreadingActor):
    """Decides which actor serves which tenant; callers that know need not ask.

    It owns three things, each written only from its own thread:

    * ``directory``: tenant id to its live cell. Callers read it without a
      message to find the cell of a resident tenant.
    * ``passive``: the published profile of every passivated tenant, read the
      same way for tenants that are not resident.
    * the set of tenants with stored DNA, kept from the ``stored`` and
      ``erased`` notes of the tenant actors, which answers ``count`` and
      ``list_tenants``.

    At most ``max_active`` tenant actors run. When a tenant with no cell is
    used and all are busy, the least recently used cell (a clock sweep) is
    handed over: its actor passivates it and takes on the new tenant.
    """

    use_daemon_thread = True

    def __init__(self, max_active: int) -> None:
        super().__init__()
        self.max_active = max_active
        self.directory: dict[str, TenantCell] = {}
        self.passive: dict[str, TenantDNA] = {}
        self._stored: set[str] = set()
        self._ring: list[TenantCell] = []  # ring[i]: the last cell given to host i
        self._hand = 0
        self._closing = False
        self._log = structlog.get_logger("actors").bind()

    def on_receive(self, message: Any) -> Any:
        kind = message[0]
        if kind == "route":
            self._route(message[1], message[2])
        elif kind == "stored":
            self._stored.add(message[1])
        elif kind == "erased":
            self._stored.discard(message[1])
            self.passive.pop(message[1], None)
        elif kind == "passivated":
            self._passivated(message[1])
        elif kind == "reroute":
            if message[1].retired:
                self._reroute(message[1])
        elif kind == "count":
            return len(self._stored)
        elif kind == "list":
            return sorted(self._stored)
        elif kind == "flush":
            return self._post_everywhere(Flush)
        elif kind == "close":
            self._closing = True
            return [
                (self._post(cell, Handover(None)), cell.host) for cell in self._ring
            ]
        elif kind == "finish":
            for cell in list(self.directory.values()):
                self._reroute(cell)
            self.directory.clear()
            self.passive.clear()
            self._stored.clear()
        else:
            self._log.warning("unexpected_message", type=type(message).__name__)
        return None

    def _route(self, tenant_id: str, operation: Operation) -> None:
        cell = self.directory.get(tenant_id)
        if cell is None:
            if self._closing:
                operation.future.set_exception(_closed())
                return
            if type(operation) in (Delete, Flush) and tenant_id not in self.passive:
                # Nothing stored and nothing pending: no actor needed to say so.
                operation.future.set(None)
                return
            cell = self._activate(tenant_id)
        # A closed cell keeps the operation; its passivation reroutes it.
        cell.post(operation)

    def _activate(self, tenant_id: str) -> TenantCell:
        cell = TenantCell(tenant_id, self.passive.get(tenant_id))
        if len(self._ring) < self.max_active:
            TenantActor.start(self.actor_ref, cell)
            self._ring.append(cell)
        else:
            slot = self._victim()
            victim = self._ring[slot]
            cell.host = victim.host
            self._ring[slot] = cell
            victim.post(Handover(cell))
        self.directory[tenant_id] = cell
        return cell

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

    def _passivated(self, cell: TenantCell) -> None:
        cell.retired = True
        tenant_id = cell.tenant_id
        if self.directory.get(tenant_id) is cell:
            # The profile is in ``passive`` before the cell leaves the directory,
            # so a reader always finds it in one or the other.
            if cell.snapshot is None:
                self.passive.pop(tenant_id, None)
            else:
                self.passive[tenant_id] = cell.snapshot
            del self.directory[tenant_id]
        self._reroute(cell)

    def _reroute(self, cell: TenantCell) -> None:
        # Operations that reached the cell after its handover, in their order.
        mailbox = cell.mailbox
        while mailbox:
            operation = mailbox.popleft()
            if type(operation) is Handover:
                operation.future.set(None)
            elif self._closing:
                operation.future.set_exception(_closed())
            else:
                self._route(cell.tenant_id, operation)

    def _post(self, cell: TenantCell, operation: Operation) -> pykka.Future[Any]:
        cell.post(operation)
        return operation.future

    def _post_everywhere(self, kind: type[Operation]) -> list[pykka.Future[Any]]:
        return [self._post(cell, kind()) for cell in list(self.directory.values())]


def _closed() -> tuple[type[StoreClosed], StoreClosed, None]:
    return (StoreClosed, StoreClosed("the store is closed"), None)
