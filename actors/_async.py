"""The store for asyncio: the same API as coroutines, none of which blocks the loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from actors._cell import Versioned
from actors._context import StoreStats
from actors._future import TURN, Reply
from actors._store import TenantDNAStore
from dna import TenantDNA

T = TypeVar("T")

ROOM_POLL = 0.05
"""Seconds a thread waiting for room waits before looking whether its
coroutine was cancelled."""


class _Admission:
    """When the coroutines of one event loop submit their changes to one store.

    At most ``TURN`` changes are submitted per turn of the loop. A thousand
    coroutines woken together (by one ``Event``, or by one batch of answers)
    would otherwise submit a thousand changes in one turn: milliseconds of
    work during which the loop runs nothing else, and after which the loop,
    having held the GIL past the switch interval while the actors wanted it,
    waits for it behind them. The others wait in line, first come first
    submitted, each on a future that a later turn resolves.

    While the store has no room (``max_queued``), one coroutine waits for it
    in a worker thread and the line waits behind it: one thread per loop,
    however many coroutines wait. Used only from its loop, which it holds
    weakly (see ``_LoopInbox``).
    """

    __slots__ = ("_line", "_loop", "_scheduled", "_used", "waiting_for_room")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self._line: deque[asyncio.Future[None]] = deque()
        self._used = 0  # changes submitted since the last turn began
        self._scheduled = False
        self.waiting_for_room = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop, or ``None`` once it is gone."""
        return self._loop()

    def enter(self) -> asyncio.Future[None] | None:
        """``None``: submit now. Else a future to await first (in line)."""
        if self._used < TURN and not self._line and not self.waiting_for_room:
            self._used += 1
            self._schedule()
            return None
        return self._queue(self._line.append)

    def back_in_line(self) -> asyncio.Future[None]:
        """A future to await before trying again, at the head of the line."""
        return self._queue(self._line.appendleft)

    def room_found(self) -> None:
        """The coroutine that waited for room has submitted: let the line go."""
        self.waiting_for_room = False
        self._schedule()

    def _queue(
        self, join: Callable[[asyncio.Future[None]], None]
    ) -> asyncio.Future[None]:
        loop = self._loop()
        assert loop is not None  # called from a coroutine running in it
        waiter = loop.create_future()
        join(waiter)
        self._schedule()
        return waiter

    def _schedule(self) -> None:
        loop = self._loop()
        if not self._scheduled and not self.waiting_for_room and loop is not None:
            self._scheduled = True
            loop.call_soon(self._turn)

    def _turn(self) -> None:
        # Runs once per turn while there is anything to count or let go.
        self._scheduled = False
        self._used = 0
        line = self._line
        while line and self._used < TURN and not self.waiting_for_room:
            waiter = line.popleft()
            if not waiter.done():  # a cancelled coroutine left the line
                waiter.set_result(None)
                self._used += 1
        if self._used:
            self._schedule()


class AsyncTenantDNAStore:
    """:class:`TenantDNAStore` for asyncio services.

    Every method is a coroutine and none blocks the event loop: reads of a
    tenant in memory are answered at once, changes are submitted without
    waiting and awaited through a future that the tenant's actor resolves on
    the loop, and whatever must wait for storage or for room (``max_queued``)
    runs in a worker thread. The loop's coroutines take turns: at most 64
    changes are submitted per turn of the loop, the others wait in line in
    the order they came, so a thousand coroutines woken at once never hold
    the loop for a thousand submissions. Takes the store's arguments::

        async with AsyncTenantDNAStore("sqlite:///profiles.db") as store:
            profile = await store.update_from_session("acme", {"tokens_used": 900})
    """

    def __init__(
        self, url: str | os.PathLike[str] | None = None, **options: Any
    ) -> None:
        self._store = TenantDNAStore(url, **options)
        self._admissions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, _Admission
        ] = weakref.WeakKeyDictionary()
        self._admission: _Admission | None = None  # the last loop's

    @property
    def store(self) -> TenantDNAStore:
        """The thread-safe store underneath, for code outside the loop."""
        return self._store

    async def get(self, tenant_id: str) -> TenantDNA:
        """A copy of the tenant's profile, or a default one (see the store)."""
        return (await self.get_versioned(tenant_id)).dna

    async def get_versioned(self, tenant_id: str) -> Versioned:
        """The profile and its version; reads storage off the loop if it must."""
        resident = self._store._peek(tenant_id)
        if resident is not None:
            return resident
        return await asyncio.to_thread(self._store._read_stored, tenant_id)

    async def update_from_session(
        self, tenant_id: str, session_metrics: Mapping[str, Any], alpha: float = 0.2
    ) -> TenantDNA:
        """Learn from one session; the profile right after it (see the store)."""
        # Written out rather than through _submitted: no closure or bound
        # method lives on while the answer is awaited (fewer objects for the
        # garbage collector, a thousand coroutines at a time).
        waiter = self._admission_here().enter()
        if waiter is not None:
            await waiter
        try:
            future = self._store._submit_update(
                tenant_id, session_metrics, alpha, block=False, raise_invalid=True
            )
        except queue.Empty:
            future = await _when_room(
                self._admission_here(),
                functools.partial(
                    self._store._submit_update,
                    tenant_id,
                    session_metrics,
                    alpha,
                    raise_invalid=True,
                ),
            )
        return await future

    async def save(
        self, tenant_id: str, dna: TenantDNA, *, expected_version: int | None = None
    ) -> None:
        """Store a copy of ``dna``; compare-and-set with ``expected_version``."""
        await self._submitted(
            functools.partial(
                self._store._submit_save, tenant_id, dna, expected_version
            )
        )

    async def delete(self, tenant_id: str) -> None:
        """Erase the tenant (GDPR); see ``TenantDNAStore.delete``."""
        await self._submitted(functools.partial(self._store._submit_delete, tenant_id))

    async def list_tenants(self) -> list[str]:
        """The ids of the tenants with stored DNA, sorted."""
        return await asyncio.to_thread(self._store.list_tenants)

    async def count(self) -> int:
        """How many tenants have stored DNA."""
        return await asyncio.to_thread(lambda: self._store.count)

    async def stats(self) -> StoreStats:
        """The store's figures now."""
        return await asyncio.to_thread(self._store.stats)

    async def flush(self) -> None:
        """Return once every change submitted before is applied and committed."""
        await asyncio.to_thread(self._store.flush)

    async def close(self) -> None:
        """Commit what was submitted and stop the store; idempotent."""
        await asyncio.to_thread(self._store.close)

    async def __aenter__(self) -> AsyncTenantDNAStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _admission_here(self) -> _Admission:
        loop = asyncio.get_running_loop()
        admission = self._admission
        if admission is None or admission.loop is not loop:
            admission = self._admissions.get(loop)
            if admission is None:
                admission = self._admissions[loop] = _Admission(loop)
            self._admission = admission
        return admission

    async def _submitted(self, submit: Callable[..., Reply[T]]) -> T:
        """Submit a change in its turn (``submit(block=...)``), await its answer."""
        admission = self._admission_here()
        waiter = admission.enter()
        if waiter is not None:
            await waiter
        try:
            future = submit(block=False)
        except queue.Empty:
            future = await _when_room(admission, submit)
        return await future


async def _when_room(
    admission: _Admission, submit: Callable[..., Reply[T]]
) -> Reply[T]:
    """Submit once the store has room, waiting for it off the loop.

    One coroutine of the loop waits for room in a worker thread; the others
    go back to the head of the line and try again once it has submitted. If
    that coroutine is cancelled, its thread gives up within ``ROOM_POLL`` s
    (a thread blocked for good would hold one of the loop's few executor
    workers, and submit a change nobody awaits once room comes); only room
    found within that moment still takes the change, as a request already
    sent would be.
    """
    while admission.waiting_for_room:
        await admission.back_in_line()
        try:
            return submit(block=False)
        except queue.Empty:
            pass
    admission.waiting_for_room = True
    cancelled: list[bool] = []

    def when_room() -> Reply[T] | None:
        while not cancelled:
            with contextlib.suppress(queue.Empty):
                return submit(block=True, timeout=ROOM_POLL)
        return None

    try:
        submitted = await asyncio.to_thread(when_room)
    except asyncio.CancelledError:
        cancelled.append(True)
        raise
    finally:
        admission.room_found()
    assert submitted is not None  # only a cancelled wait gives up
    return submitted
