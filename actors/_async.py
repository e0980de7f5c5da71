"""The store for asyncio: the same API as coroutines, none of which blocks the loop."""

from __future__ import annotations

import asyncio
import os
import queue
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from actors._cell import Versioned
from actors._context import StoreStats
from actors._future import Reply
from actors._store import TenantDNAStore
from dna import TenantDNA

T = TypeVar("T")


class AsyncTenantDNAStore:
    """:class:`TenantDNAStore` for asyncio services.

    Every method is a coroutine and none blocks the event loop: reads of a
    tenant in memory are answered at once, changes are submitted without
    waiting and awaited through a future that the tenant's actor resolves on
    the loop, and whatever must wait for storage or for room (``max_queued``)
    runs in a worker thread. Takes the store's arguments::

        async with AsyncTenantDNAStore("sqlite:///profiles.db") as store:
            profile = await store.update_from_session("acme", {"tokens_used": 900})
    """

    def __init__(
        self, url: str | os.PathLike[str] | None = None, **options: Any
    ) -> None:
        self._store = TenantDNAStore(url, **options)

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
        return await asyncio.to_thread(self._store.get_versioned, tenant_id)

    async def update_from_session(
        self, tenant_id: str, session_metrics: Mapping[str, Any], alpha: float = 0.2
    ) -> TenantDNA:
        """Learn from one session; the profile right after it (see the store)."""
        submit = self._store._submit_update
        return await self._submitted(
            lambda block: submit(
                tenant_id, session_metrics, alpha, block=block, raise_invalid=True
            )
        )

    async def save(
        self, tenant_id: str, dna: TenantDNA, *, expected_version: int | None = None
    ) -> None:
        """Store a copy of ``dna``; compare-and-set with ``expected_version``."""
        submit = self._store._submit_save
        await self._submitted(
            lambda block: submit(tenant_id, dna, expected_version, block=block)
        )

    async def delete(self, tenant_id: str) -> None:
        """Erase the tenant (GDPR); see ``TenantDNAStore.delete``."""
        submit = self._store._submit_delete
        await self._submitted(lambda block: submit(tenant_id, block=block))

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

    async def _submitted(self, submit: Callable[[bool], Reply[T]]) -> T:
        try:
            future = submit(False)
        except queue.Empty:
            # No room: wait for it in a worker thread, not on the loop.
            future = await asyncio.to_thread(submit, True)
        return await future
