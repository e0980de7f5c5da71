"""The store facade that callers hold: the seed's API on top of the actors."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

import pykka
import structlog

from actors._cell import Delete, Operation, Save, TenantCell, Update
from actors._errors import StoreClosed, check_tenant_id
from actors._future import Reply
from actors._registry import Registry
from dna import (
    InvalidSessionMetrics,
    TenantDNA,
    check_alpha,
    parse_session_metrics,
)

DEFAULT_MAX_ACTIVE: Final = 32
"""Tenant actors (threads) a store runs at most; idle tenants are passivated.

Measured (bench/, 16 submitting threads, 2 cores): throughput falls as actor
threads are added past about twice the submitting threads, because every
sleeping thread an operation has to wake costs more than the update itself;
32 busy actors beat 1,024 mostly idle ones by 2-5x.
"""

_CLOSE_TIMEOUT: Final = 30.0

_log = structlog.get_logger("actors")


class TenantDNAStore:
    """Tenant profiles, each one changed only inside its own tenant actor.

    Safe to share between any number of threads: every change to a tenant
    (update, save, delete) is applied by that tenant's actor one at a time, in
    the order it was submitted, so concurrent sessions never lose each other's
    learning. Reads are answered from the snapshot the actor published after
    its last change, without a message round trip.

    ``TenantDNAStore()`` is an in-memory store. ``max_active`` bounds how many
    tenant actors (one thread each) run at once; the least recently used
    tenant is passivated to make room and reactivated on its next use.

    Use it as a context manager, or call :meth:`close`::

        with TenantDNAStore() as store:
            profile = store.update_from_session("acme", {"tokens_used": 5000})
    """

    def __init__(self, *, max_active: int = DEFAULT_MAX_ACTIVE) -> None:
        if isinstance(max_active, bool) or not isinstance(max_active, int):
            msg = f"max_active: expected an int >= 1, got {max_active!r}"
            raise TypeError(msg)
        if max_active < 1:
            msg = f"max_active: expected an int >= 1, got {max_active!r}"
            raise ValueError(msg)
        # Tenant id -> cell. Callers add cells with setdefault (atomic), so
        # every operation for a tenant meets in one mailbox; nothing removes
        # them while the store is open.
        self._directory: dict[str, TenantCell] = {}
        self._registry = Registry.start(self._directory, max_active)
        self._closed = False
        self._close_calls = itertools.count()
        self._closed_signal: Reply[None] = Reply()
        # Drains and stops the actors if the store is dropped or the program
        # exits without close().
        self._finalizer = weakref.finalize(self, _shut_down, self._registry)

    # -- reads ---------------------------------------------------------------

    def get(self, tenant_id: str) -> TenantDNA:
        """Return a copy of the tenant's profile, or a fresh default one.

        A tenant with no stored DNA gets ``TenantDNA()``, and nothing is stored.
        Raises ``InvalidTenantId`` or ``StoreClosed``.
        """
        cell = self._cell(tenant_id)
        if cell is None:
            return TenantDNA()
        cell.recent = True
        snapshot = cell.snapshot
        return TenantDNA() if snapshot is None else snapshot.copy()

    @property
    def count(self) -> int:
        """How many tenants have stored DNA."""
        count: int = self._ask(("count",))
        return count

    def list_tenants(self) -> list[str]:
        """The ids of the tenants with stored DNA, sorted."""
        tenants: list[str] = self._ask(("list",))
        return tenants

    # -- changes ---------------------------------------------------------------

    def save(self, tenant_id: str, dna: TenantDNA) -> None:
        """Store a copy of ``dna`` as the tenant's profile, replacing what was there.

        Applied in order with the tenant's other changes; returns once applied.
        """
        cell = self._cell(tenant_id)
        if not isinstance(dna, TenantDNA):
            msg = f"dna: expected a TenantDNA, got {type(dna).__name__}"
            raise TypeError(msg)
        self._post(tenant_id, cell, Save(dna.copy())).get()

    def delete(self, tenant_id: str) -> None:
        """Erase the tenant (GDPR). Idempotent.

        When it returns, ``get`` gives a default profile, the tenant is in
        neither ``list_tenants()`` nor ``count``, and no change submitted
        before the delete can bring it back: they are all applied before it.
        """
        cell = self._cell(tenant_id)
        if cell is not None:
            self._post(tenant_id, cell, Delete()).get()
        # Otherwise no change was ever submitted for it: nothing to erase.

    def update_from_session(
        self, tenant_id: str, session_metrics: Mapping[str, Any], alpha: float = 0.2
    ) -> TenantDNA:
        """Learn from one session inside the tenant's actor; return the new profile.

        Atomic with respect to every other change of the tenant; a new tenant
        starts from the default profile. Returns a copy of the profile right
        after this session. Raises ``StoreClosed``, ``InvalidTenantId`` or
        ``InvalidSessionMetrics`` (and then nothing changes).
        """
        cell = self._cell(tenant_id)
        update = self._update(tenant_id, session_metrics, alpha)
        profile: TenantDNA = self._post(tenant_id, cell, update).get()
        return profile

    def update_from_session_async(
        self, tenant_id: str, session_metrics: Mapping[str, Any], alpha: float = 0.2
    ) -> pykka.Future[TenantDNA]:
        """Like :meth:`update_from_session`, without waiting.

        Returns a ``pykka.Future`` (``.get(timeout=...)``, or ``await`` it) that
        resolves to the profile right after this session, or raises
        ``InvalidSessionMetrics``. ``StoreClosed`` and ``InvalidTenantId`` are
        raised at once.
        """
        cell = self._cell(tenant_id)
        try:
            update = self._update(tenant_id, session_metrics, alpha)
        except InvalidSessionMetrics:
            future: Reply[TenantDNA] = Reply()
            future.set_exception()
            return future
        return self._post(tenant_id, cell, update)

    def flush(self, timeout: float | None = None) -> None:
        """Return once every change submitted before the call has been applied."""
        for future in self._ask(("flush",)):
            future.get(timeout=timeout)

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Apply everything already submitted, stop every actor, drop the profiles.

        Idempotent, and safe to call from several threads: every call returns
        once the store is closed. Any later call of another method raises
        ``StoreClosed``.
        """
        # next() on a count is atomic: exactly one caller does the closing.
        if next(self._close_calls):
            self._closed_signal.get()
            return
        self._closed = True
        try:
            self._finalizer()
            # A call that passed the closed check before it was set may still
            # post; closed cells answer it with StoreClosed instead of leaving
            # it waiting.
            for cell in list(self._directory.values()):
                cell.closed = True
                cell.fail_pending()
            self._directory.clear()
        finally:
            self._closed_signal.set(None)

    def __enter__(self) -> TenantDNAStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------

    def _update(
        self, tenant_id: str, session_metrics: Mapping[str, Any], alpha: float
    ) -> Update:
        # Validated in the caller's thread: a bad session is answered at once
        # and never reaches (or costs) the tenant's actor.
        try:
            return Update(parse_session_metrics(session_metrics), check_alpha(alpha))
        except InvalidSessionMetrics as error:
            _log.warning("session_metrics_rejected", tenant_id=tenant_id, key=error.key)
            raise

    def _cell(self, tenant_id: str) -> TenantCell | None:
        """The tenant's cell, or ``None`` if no change was ever submitted for it.

        Raises ``StoreClosed``, then ``InvalidTenantId``. A known id proves
        itself valid, so the hot path is one dict lookup.
        """
        if self._closed:
            raise StoreClosed("the store is closed")
        if type(tenant_id) is str:
            cell = self._directory.get(tenant_id)
            if cell is not None:
                return cell
        cell = self._directory.get(_plain(check_tenant_id(tenant_id)))
        if cell is None and self._closed:
            # close() emptied the directory after the first check.
            raise StoreClosed("the store is closed")
        return cell

    def _post(
        self, tenant_id: str, cell: TenantCell | None, operation: Operation
    ) -> pykka.Future[Any]:
        if cell is None:
            # setdefault is atomic: racing first writers all get the one cell,
            # so every change of a tenant meets in one mailbox.
            key = _plain(tenant_id)
            cell = self._directory.setdefault(key, TenantCell(key))
        try:
            cell.post(operation, self._registry)
        except pykka.ActorDeadError:
            raise StoreClosed("the store is closed") from None
        return operation.future

    def _ask(self, message: tuple[str, ...]) -> Any:
        if self._closed:
            raise StoreClosed("the store is closed")
        try:
            return self._registry.ask(message)
        except pykka.ActorDeadError:
            raise StoreClosed("the store is closed") from None


def _plain(tenant_id: str) -> str:
    # A str subclass (a StrEnum, a NewType-like class) names the same tenant
    # as its plain value, and list_tenants() returns plain strings.
    return tenant_id if type(tenant_id) is str else str.__str__(tenant_id)


def _shut_down(registry: pykka.ActorRef[Registry]) -> None:
    if not registry.is_alive():
        return
    # Everything submitted so far is applied before any actor is stopped.
    flushes: list[pykka.Future[None]]
    flushes = registry.ask(("flush",), block=True, timeout=_CLOSE_TIMEOUT)
    for flush in flushes:
        flush.get(timeout=_CLOSE_TIMEOUT)
    stops: list[tuple[pykka.Future[None], pykka.ActorRef[Any]]]
    stops = registry.ask(("close",), block=True, timeout=_CLOSE_TIMEOUT)
    for future, host in stops:
        future.get(timeout=_CLOSE_TIMEOUT)
        host.actor_stopped.wait(_CLOSE_TIMEOUT)
    registry.stop(timeout=_CLOSE_TIMEOUT)
