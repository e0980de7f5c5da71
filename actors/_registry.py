"""The registry actor: starts the tenant actors, replaces the lost, flushes, closes."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import pykka

from actors._cell import Resubmit, SlotFlush, TenantCell
from actors._context import WAKE
from actors._tenant import TenantActor
from actors._writer import Writer

if TYPE_CHECKING:
    from actors._context import Context


class Registry(pykka.ThreadingActor):
    """Keeps one tenant actor per slot alive; not on the path of any change.

    A caller finds a tenant's actor in the slot table and tells it directly.
    It hears from the registry only when the slot has no actor yet (``wake``:
    the registry starts one) or its actor is gone. A tenant actor that stops
    for any reason but the store's close is replaced in its slot by a new one,
    which takes its cells over (``lost``): every cell of the slot with work is
    woken again, and one that was being drained is rebuilt, so a tenant is
    never left with a dead actor and no caller waits on one.
    """

    use_daemon_thread = True

    def __init__(self, context: Context) -> None:
        super().__init__()
        self._context = context
        self._closing = False
        self._log = context.events

    def on_receive(self, message: Any) -> Any:
        # Nothing may stop the registry (pykka stops an actor whose handler
        # raises for a tell): shapes are checked, failures logged.
        kind = message[0] if isinstance(message, tuple) and message else None
        try:
            if kind == "wake":
                self._wake(message[1])
            elif kind == "lost":
                self._replace(message[1], message[2])
            elif kind == "writer_lost":
                self._replace_writer(message[1])
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

    def _wake(self, slot: int) -> None:
        if self._closing:
            ready = self._context.ready[slot]
            while ready:
                ready.popleft().fail_pending()
            return
        host = self._context.hosts[slot]
        if host is None:
            host = self._start(slot, ())
        try:
            host.tell(WAKE)
        except pykka.ActorDeadError:
            self._replace(slot, host)

    def _start(
        self, slot: int, cells: tuple[TenantCell, ...]
    ) -> pykka.ActorRef[TenantActor]:
        host = TenantActor.start(self._context, slot, cells)
        self._context.hosts[slot] = host
        return host

    def _replace(self, slot: int, lost: pykka.ActorRef[TenantActor]) -> None:
        if self._closing or self._context.hosts[slot] is not lost:
            return  # closing, or already replaced
        with contextlib.suppress(pykka.ActorDeadError):
            lost.stop(block=False)
        self._context.replaced += 1
        self._log.error("tenant_actor_lost", slot=slot)
        cells = tuple(
            cell for cell in list(self._context.directory.values()) if cell.slot == slot
        )
        for cell in cells:
            if cell.draining:
                # Died mid-drain: the state is rebuilt before the next one.
                cell.draining = False
                cell.suspect = True
        host = self._start(slot, cells)
        # Wake-ups the lost actor never took are given again, and so are
        # cells it left work in: one it failed in the middle of (its mailbox
        # drained, its changes pending and never sent) waited for another
        # change to wake it, and the rest of a Settlement it failed in would
        # not be taken. A cell drained twice comes to no harm.
        ready = self._context.ready[slot]
        for cell in cells:
            if (
                cell.mailbox
                or cell.scheduled
                or cell.suspect
                or cell.pending
                or cell.settled is not None
            ):
                cell.scheduled = True
                ready.append(cell)
        self._context.woken[slot] = True
        host.tell(WAKE)

    def _replace_writer(self, lost: pykka.ActorRef[Any]) -> None:
        context = self._context
        if self._closing or context.closing or context.writer is not lost:
            return  # closing, or already replaced
        context.writer = Writer.start(context)
        context.replaced += 1
        self._log.error("writer_lost")
        # Commits the lost writer never made are sent again; one it made has
        # its outcome in the mailbox before this, and then nothing is resent.
        for cell in list(context.directory.values()):
            if cell.in_flight is not None:
                cell.post(Resubmit(), context)

    def _flush(self) -> list[SlotFlush]:
        # Every cell with work queued, under way, or being drained, by slot;
        # the copy of the values is made in one step, so callers adding cells
        # meanwhile cannot disturb it. Each slot's actor is handed its cells
        # behind everything already on its ready queue.
        context = self._context
        busy: list[list[TenantCell]] = [[] for _ in range(context.max_active)]
        for cell in list(context.directory.values()):
            if cell.busy:
                busy[cell.slot].append(cell)
        flushes = [SlotFlush(slot, cells) for slot, cells in enumerate(busy) if cells]
        for flush in flushes:
            context.wake(flush)
        return flushes

    def _close(self) -> list[pykka.ActorRef[TenantActor]]:
        self._closing = True
        return [host for host in self._context.hosts if host is not None]
