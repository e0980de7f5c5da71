"""The registry actor: which actor serves which tenant, and who replaces the lost."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pykka

from actors._cell import Flush, Handover, Operation, TenantCell
from actors._tenant import TenantActor

if TYPE_CHECKING:
    from actors._context import Context


class Registry(pykka.ThreadingActor):
    """The directory of tenants: activation, passivation, supervision.

    Callers find a tenant's cell in the directory without a message; the
    registry hears from them only when a cell with work in its mailbox has no
    actor (an ``activate`` message). At most ``max_active`` tenant actors run;
    when all are busy, the least recently used cell (a clock sweep) is handed
    over: its actor passivates that tenant and takes on the new one. A tenant
    actor that stops for any reason but the store's close is replaced in its
    slot by a new one, which takes its cell over (``lost``), so a tenant is
    never left with a dead host and no caller waits on one.
    """

    use_daemon_thread = True

    def __init__(self, context: Context, max_active: int) -> None:
        super().__init__()
        self._context = context
        self._max_active = max_active
        self._ring: list[TenantCell] = []  # ring[i]: the cell given to host i
        self._hosts: list[pykka.ActorRef[TenantActor]] = []
        # slot -> the cell its actor was last asked to hand over, and how.
        self._handing: dict[int, tuple[TenantCell, Handover]] = {}
        self._hand = 0
        self._closing = False
        self._log = context.events

    def on_receive(self, message: Any) -> Any:
        # Nothing may stop the registry (pykka stops an actor whose handler
        # raises for a tell): shapes are checked, failures logged.
        kind = message[0] if isinstance(message, tuple) and message else None
        try:
            if kind == "activate":
                self._activate(message[1])
            elif kind == "lost":
                self._replace(message[1], message[2])
            elif kind == "flush":
                return self._flush()
            elif kind == "close":
                return self._close()
            else:
                self._log.warning("unexpected_message", type=type(message).__name__)
        except Exception as error:
            if kind in ("flush", "close"):
                raise  # an ask: the caller gets the error
            self._log.error("registry_failed", message=str(kind), error=repr(error))
        return None

    def _activate(self, cell: TenantCell) -> None:
        if cell.assigned:
            # Hosted: pass the wake-up on. Awaiting adoption: that drains it.
            host = cell.host
            if host is not None:
                try:
                    host.tell(cell)
                except pykka.ActorDeadError:
                    self._replace_host_of(cell)
            return
        if cell.releasing:
            # Its actor is letting go of it and checks the mailbox when it has,
            # unless that actor is gone.
            self._replace_host_of(cell)
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
        self._context.activations += 1
        if len(self._ring) < self._max_active:
            self._ring.append(cell)
            self._hosts.append(self._start(cell, len(self._hosts)))
            self._context.active = len(self._hosts)
            return
        slot = self._victim()
        victim = self._ring[slot]
        victim.assigned = False
        victim.releasing = True
        self._ring[slot] = cell
        self._context.passivations += 1
        handover = Handover(cell)
        self._handing[slot] = (victim, handover)
        assert self._context.registry is not None
        victim.post(handover, self._context.registry)

    def _start(self, cell: TenantCell, slot: int) -> pykka.ActorRef[TenantActor]:
        return TenantActor.start(self._context, cell, slot)

    def _victim(self) -> int:
        # Second chance: a cell used since the hand last passed is spared once.
        # A slot whose actor is gone is mended first: its cell has a handover
        # nobody would ever take.
        ring = self._ring
        while True:
            slot = self._hand
            self._hand = (slot + 1) % len(ring)
            if not self._hosts[slot].is_alive():
                self._replace(slot, self._hosts[slot])
            if ring[slot].recent:
                ring[slot].recent = False
            else:
                return slot

    def _replace_host_of(self, cell: TenantCell) -> None:
        host = cell.host
        if host is None or host.is_alive():
            return
        for slot, candidate in enumerate(self._hosts):
            if candidate is host:
                self._replace(slot, host)

    def _replace(self, slot: int, lost: pykka.ActorRef[TenantActor]) -> None:
        if self._closing or slot >= len(self._hosts) or self._hosts[slot] is not lost:
            return  # closing, or already replaced
        with contextlib.suppress(pykka.ActorDeadError):
            lost.stop(block=False)
        self._context.replaced += 1
        self._log.error("tenant_actor_lost", slot=slot)
        # A lost actor held at most two cells: the one in its slot, and the
        # one it was handing over. The first goes to the new actor; the
        # second keeps its state and finds a host as any idle cell does.
        handing = self._handing.pop(slot, None)
        if handing is not None and not handing[1].future.done:
            victim, handover = handing
            handover.cancelled = True
            if victim.host is lost or victim.host is None:
                victim.host = None
                victim.suspect = True
                victim.releasing = False
                victim.assigned = False
                if victim.mailbox and not victim.scheduled:
                    victim.scheduled = True
                    assert self._context.registry is not None
                    self._context.registry.tell(("activate", victim))
        cell = self._ring[slot]
        cell.host = None
        cell.suspect = True
        cell.releasing = False
        cell.assigned = True
        self._hosts[slot] = self._start(cell, slot)

    def _post(self, cell: TenantCell, operation: Operation) -> pykka.Future[Any]:
        assert self._context.registry is not None
        cell.post(operation, self._context.registry)
        return operation.future

    def _flush(self) -> list[pykka.Future[Any]]:
        # Every cell with work queued, under way, or a host; the copy of the
        # values is made in one step, so callers adding cells meanwhile cannot
        # disturb it.
        return [
            self._post(cell, Flush())
            for cell in list(self._context.directory.values())
            if cell.busy or cell.assigned
        ]

    def _close(self) -> list[tuple[pykka.Future[Any], pykka.ActorRef[TenantActor]]]:
        self._closing = True
        return [
            (self._post(cell, Handover(None)), host)
            for cell, host in zip(self._ring, self._hosts, strict=True)
            if host.is_alive()
        ]
