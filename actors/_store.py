"""The store facade that callers hold: the seed's API on top of the actors."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final

import pykka

from actors._cell import (
    FRESH,
    Delete,
    Operation,
    Refresh,
    Save,
    TenantCell,
    Update,
    Versioned,
)
from actors._context import Context, StoreStats
from actors._errors import StoreClosed, check_tenant_id
from actors._future import Reply
from actors._registry import Registry
from actors._writer import Writer, start_ticker, start_watcher, tell_writer
from dna import (
    InvalidSessionMetrics,
    TenantDNA,
    check_alpha,
    check_profile,
    parse_session_metrics,
)
from storage import Storage, StorageError, open_storage
from storage.memory import MemoryStorage
from storage.sqlite import SQLiteStorage

DEFAULT_MAX_ACTIVE: Final = 1
"""Tenant actors (threads) a store runs in memory or on an SQLite file.

Each actor serves the tenants of its slot. Under the GIL one thread runs
Python at a time, so more actors add no parallelism to the work of applying
changes, and every extra thread that wants the GIL slows the others: more
context switches, smaller batches per wake-up, colder caches. Measured (16
submitting threads, 2 cores): with 1 actor instead of 4, fire-and-forget
updates went from 75,000/s to 94,000/s in memory and from 38,000/s to
54,000/s on SQLite (bench/ finalise); a million first touches cost 41 us
of CPU each instead of 58 fire-and-forget, 46 instead of 60 acknowledged.
"""

SERVER_MAX_ACTIVE: Final = 4
"""Tenant actors a store runs on a database server (PostgreSQL).

An actor reading a profile that is not in memory waits on the network with
the GIL released; several actors overlap those waits.
"""

DEFAULT_MAX_RESIDENT: Final = 100_000
"""Profiles a store holds in memory at most; the least recently used idle ones
beyond it are dropped and read back from storage on their next use."""

DEFAULT_MAX_QUEUED: Final = 100_000
"""Changes in flight in a store at most, by default; a caller past it waits.

A store's default is its ``max_resident``, within :data:`MIN_DEFAULT_QUEUED`
and this: a change in flight holds its tenant in memory (its cell, its
session, its profile), so more changes in flight than profiles allowed in
memory would let a flood of first touches hold more than ``max_resident``
tenants. Measured on SQLite with ``max_resident=10_000`` (a million first
touches, fire-and-forget): the process grew 267 MiB with 100,000 in flight,
39 MiB with 10,000, at the same rate.
"""

MIN_DEFAULT_QUEUED: Final = 1_000
"""The least default ``max_queued``: fewer in flight would make commits small."""

DURABILITIES: Final = ("commit", "buffered")

STOP_GRACE: Final = 2.0
"""Seconds each step of stopping gets once ``exit_timeout`` has run out."""

RETRY_PAUSE: Final = 0.1
"""Seconds between attempts to commit at close while storage refuses."""


class TenantDNAStore:
    """Tenant profiles, each one changed only inside its own tenant actor.

    Safe to share between any number of threads: every change to a tenant
    (update, save, delete) is applied by that tenant's actor one at a time, in
    the order it was submitted, so concurrent sessions never lose each other's
    learning. Reads are answered from the snapshot the actor published after
    its last change, without a message round trip.

    ``TenantDNAStore()`` keeps profiles in memory (compactly, in storage,
    with at most ``max_resident`` of them ready as profiles). Given a file
    (``"sqlite:///path.db"`` or any ``os.PathLike``) the profiles outlive the
    process: with ``durability="commit"`` (the default) a change is
    acknowledged only once committed to the file, in a transaction shared with
    other tenants' changes; with ``"buffered"`` once applied in memory, and
    committed within ``flush_interval`` seconds. Other processes' changes to
    the same file are seen within ``staleness`` seconds. ``max_active``
    bounds the tenant actors (one thread each) running at once (by default
    :data:`DEFAULT_MAX_ACTIVE` in memory and on SQLite,
    :data:`SERVER_MAX_ACTIVE` on PostgreSQL); ``max_queued`` the changes in
    flight, past which a caller waits (by default ``max_resident``, at least
    :data:`MIN_DEFAULT_QUEUED` and at most :data:`DEFAULT_MAX_QUEUED`).

    Use it as a context manager, or call :meth:`close`::

        with TenantDNAStore("sqlite:///profiles.db") as store:
            profile = store.update_from_session("acme", {"tokens_used": 5000})
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        max_active: int | None = None,
        max_resident: int = DEFAULT_MAX_RESIDENT,
        durability: str = "commit",
        staleness: float = 1.0,
        flush_interval: float = 1.0,
        max_queued: int | None = None,
        exit_timeout: float = 30.0,
    ) -> None:
        if max_active is not None:
            _check_count("max_active", max_active)
        _check_count("max_resident", max_resident)
        if max_queued is None:
            max_queued = min(max(max_resident, MIN_DEFAULT_QUEUED), DEFAULT_MAX_QUEUED)
        _check_count("max_queued", max_queued)
        if durability not in DURABILITIES:
            msg = f"durability: expected 'commit' or 'buffered', got {durability!r}"
            raise ValueError(msg)
        for name, value in (
            ("staleness", staleness),
            ("flush_interval", flush_interval),
            ("exit_timeout", exit_timeout),
        ):
            _check_seconds(name, value)
        storage = open_storage(url)
        inline = isinstance(storage, MemoryStorage)
        if max_active is None:
            local = inline or isinstance(storage, SQLiteStorage)
            max_active = DEFAULT_MAX_ACTIVE if local else SERVER_MAX_ACTIVE
        context = Context(
            storage,
            inline=inline,
            buffered=durability == "buffered" and not inline,
            max_active=max_active,
            max_resident=max_resident,
            max_queued=max_queued,
        )
        self._context = context
        self._directory = context.directory
        self._registry = Registry.start(context)
        context.registry = self._registry
        stops: list[queue.SimpleQueue[None]] = []
        if not inline:
            context.writer = Writer.start(context)
            stops.append(start_ticker(context, min(staleness / 2, flush_interval)))
            if type(storage).wait_for_changes is not Storage.wait_for_changes:
                # Told of other processes' commits: seen in milliseconds.
                stops.append(start_watcher(context, storage.clone(), staleness / 2))
        self._closed = False
        self._close_calls = itertools.count()
        self._closed_signal: Reply[None] = Reply()
        # Commits and stops the actors if the store is dropped or the program
        # exits without close().
        self._finalizer = weakref.finalize(self, _dropped, context, stops, exit_timeout)

    # -- reads ---------------------------------------------------------------

    def get(self, tenant_id: str) -> TenantDNA:
        """Return a copy of the tenant's profile, or a fresh default one.

        A tenant with no stored DNA gets ``TenantDNA()``, and nothing is stored.
        Raises ``InvalidTenantId``, ``StoreClosed`` or ``StorageError``.
        """
        # The hot path of routing: a resident tenant, read in one dict lookup.
        if type(tenant_id) is str and not self._closed:
            cell = self._directory.get(tenant_id)
            if cell is not None:
                published = cell.published
                if published is not None:
                    cell.recent = True
                    return published.dna.copy()
        return self.get_versioned(tenant_id).dna

    def get_versioned(self, tenant_id: str) -> Versioned:
        """Return ``Versioned(dna, version)``: a copy of the profile and its version.

        Version 0 means nothing is stored (and ``dna`` is a default profile).
        Pass the version to :meth:`save` as ``expected_version`` for a
        compare-and-set. Reads the published snapshot of a tenant in memory,
        and storage (in the calling thread) only for one that is not.
        """
        resident = self._peek(tenant_id)
        return self._read_stored(tenant_id) if resident is None else resident

    def _read_stored(self, tenant_id: str) -> Versioned:
        """The tenant's stored profile, read in the calling thread."""
        with self._context.reading() as storage:
            record = storage.load(_plain(tenant_id))
        if record is None:
            return Versioned(TenantDNA(), 0)
        return Versioned(record.dna.copy(), record.version)

    @property
    def count(self) -> int:
        """How many tenants have stored DNA."""
        self._check_open()
        if self._context.buffered:
            self.flush()
        with self._context.reading() as storage:
            return storage.count()

    def list_tenants(self) -> list[str]:
        """The ids of the tenants with stored DNA, sorted."""
        self._check_open()
        if self._context.buffered:
            self.flush()
        with self._context.reading() as storage:
            return storage.tenants()

    def stats(self) -> StoreStats:
        """The store's figures now; cheap enough to call every second."""
        self._check_open()
        context = self._context
        with context.reading() as storage:
            tenants = storage.count()
        return StoreStats(
            tenants=tenants,
            resident=len(self._directory),
            active_actors=context.active,
            changes_queued=context.queued,
            activations=context.activations.value,
            passivations=context.passivations.value,
            commits=context.commits + context.inline_commits.value,
            changes_committed=context.changes_committed + context.inline_changes.value,
            version_conflicts=context.conflicts.value,
            storage_errors=context.storage_errors.value,
            actors_replaced=context.replaced,
        )

    # -- changes ---------------------------------------------------------------

    def save(
        self, tenant_id: str, dna: TenantDNA, *, expected_version: int | None = None
    ) -> None:
        """Store a copy of ``dna`` as the tenant's profile, replacing what was there.

        Applied in order with the tenant's other changes; returns once applied
        (and committed, for a durable store). With ``expected_version``, only
        if the tenant's version is still that one, else ``VersionConflict``.
        Raises ``InvalidDNA`` for a profile that breaks the rules.
        """
        self._submit_save(tenant_id, dna, expected_version).get()

    def delete(self, tenant_id: str) -> None:
        """Erase the tenant (GDPR). Idempotent.

        When it returns, ``get`` gives a default profile, the tenant is in
        neither ``list_tenants()`` nor ``count``, no byte of its profile is
        left in storage, and no change submitted before the delete can bring
        it back: they are all applied before it.
        """
        self._submit_delete(tenant_id).get()

    def update_from_session(
        self, tenant_id: str, session_metrics: Mapping[str, Any], alpha: float = 0.2
    ) -> TenantDNA:
        """Learn from one session inside the tenant's actor; return the new profile.

        Atomic with respect to every other change of the tenant; a new tenant
        starts from the default profile. Returns a copy of the profile right
        after this session. Raises ``StoreClosed``, ``InvalidTenantId``,
        ``InvalidSessionMetrics`` (and then nothing changes) or
        ``StorageError`` (the commit failed; the profile is as it was).
        """
        profile: TenantDNA = self._submit_update(
            tenant_id, session_metrics, alpha, raise_invalid=True
        ).get()
        return profile

    def update_from_session_async(
        self, tenant_id: str, session_metrics: Mapping[str, Any], alpha: float = 0.2
    ) -> pykka.Future[TenantDNA]:
        """Like :meth:`update_from_session`, without waiting for the update.

        Returns a ``pykka.Future`` (``.get(timeout=...)``, or ``await`` it:
        the event loop is not blocked) that resolves to the profile right
        after this session, or raises ``InvalidSessionMetrics`` or
        ``StorageError``. ``StoreClosed`` and ``InvalidTenantId`` are raised
        at once. Waits only when ``max_queued`` changes are already in flight.
        """
        return self._submit_update(tenant_id, session_metrics, alpha)

    def flush(self, timeout: float | None = None) -> None:
        """Return once every change submitted before the call is committed."""
        for slot in self._ask(("flush",)):
            flushes = slot.get(timeout=timeout)
            for future in flushes:
                future.get(timeout=timeout)
            # The registry holds its last reply until its next message, and
            # through it these: one per busy tenant, each with what its
            # waiter made (measured: 125 MiB of RSS kept after a flush of
            # 100,000 tenants' changes on SQLite).
            flushes.clear()

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Commit everything already submitted, stop every actor, release storage.

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
            # Shut down here, and no more at exit (see _dropped).
            finalizer = self._finalizer.detach()
            if finalizer is not None:
                _shut_down(*finalizer[2])
            # A call that passed the closed check before it was set may still
            # post; closed cells answer it with StoreClosed instead of leaving
            # it waiting.
            for cell in list(self._directory.values()):
                cell.closed = True
                cell.fail_pending()
            self._directory.clear()
            # And the flushes of slots no actor reached.
            for ready in self._context.ready:
                while ready:
                    ready.popleft().fail_pending()
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
    # The _submit_* methods check their arguments, take a place for the change
    # (waiting for one, at most ``timeout`` seconds if given, or raising
    # queue.Empty with block=False or once that is past) and post it.

    def _submit_update(
        self,
        tenant_id: str,
        session_metrics: Mapping[str, Any],
        alpha: float,
        *,
        block: bool = True,
        timeout: float | None = None,
        raise_invalid: bool = False,
    ) -> Reply[TenantDNA]:
        cell = self._cell(tenant_id)
        # Validated in the caller's thread: a bad session is answered at once
        # and never reaches (or costs) the tenant's actor.
        try:
            update = Update(parse_session_metrics(session_metrics), check_alpha(alpha))
        except InvalidSessionMetrics as error:
            self._context.events.warning(
                "session_metrics_rejected", tenant_id=_plain(tenant_id), key=error.key
            )
            if raise_invalid:
                raise
            future: Reply[TenantDNA] = Reply()
            future.set_exception()
            return future
        return self._post(tenant_id, cell, update, block, timeout)

    def _submit_save(
        self,
        tenant_id: str,
        dna: TenantDNA,
        expected_version: int | None,
        *,
        block: bool = True,
        timeout: float | None = None,
    ) -> Reply[None]:
        cell = self._cell(tenant_id)
        profile = check_profile(dna)
        if expected_version is not None and (
            isinstance(expected_version, bool)
            or not isinstance(expected_version, int)
            or expected_version < 0
        ):
            msg = f"expected_version: expected an int >= 0, got {expected_version!r}"
            raise ValueError(msg)
        return self._post(
            tenant_id, cell, Save(profile, expected_version), block, timeout
        )

    def _submit_delete(
        self, tenant_id: str, *, block: bool = True, timeout: float | None = None
    ) -> Reply[None]:
        cell = self._cell(tenant_id)
        return self._post(tenant_id, cell, Delete(), block, timeout)

    def _peek(self, tenant_id: str) -> Versioned | None:
        """The tenant's profile if it can be read without storage, else ``None``.

        Raises ``StoreClosed`` or ``InvalidTenantId``. A tenant another
        process wrote since it was loaded must be read from storage: its actor
        is asked to read it back too, for the next reader.
        """
        cell = self._cell(tenant_id)
        if cell is None:
            return None
        cell.recent = True
        published = cell.published
        if published is not None:
            return Versioned(published.dna.copy(), published.version)
        if cell.loaded:
            if cell.stale == FRESH and cell.in_flight is None and not cell.pending:
                # Nothing stored (a change under way may yet store something,
                # or fail to erase what is: until it settles, storage says).
                return Versioned(TenantDNA(), 0)
            with contextlib.suppress(pykka.ActorDeadError):
                cell.post(Refresh(load=True), self._context)
        return None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the store is closed")

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
            check_tenant_id(tenant_id)  # a new tenant: its cell is made on post
        else:
            cell = self._directory.get(check_tenant_id(tenant_id))
        if cell is None and self._closed:
            # close() emptied the directory after the first check.
            raise StoreClosed("the store is closed")
        return cell

    def _post(
        self,
        tenant_id: str,
        cell: TenantCell | None,
        operation: Operation,
        block: bool = True,
        timeout: float | None = None,
    ) -> Reply[Any]:
        """Submit a change; ``queue.Empty`` if no room (``block=False``), or
        none came within ``timeout`` s."""
        context = self._context
        try:
            context.places.get(False)
        except queue.Empty:
            if context.buffered:
                # Buffered changes hold their places until committed, and
                # they wait for the next tick: the writer commits them now.
                tell_writer(context, ("flush",))
            if not block:
                raise
            context.places.get(True, timeout)
        if self._closed:  # woken by close(), which gives every place back
            context.release()
            raise StoreClosed("the store is closed")
        operation.counted = True
        if cell is None:
            cell = context.new_cell(_plain(tenant_id))
        try:
            cell.post(operation, context)
        except pykka.ActorDeadError:
            raise StoreClosed("the store is closed") from None
        if context.buffered and context.places.empty():
            # It took the last place. The writer may hold the change whose
            # place was just given back to it (it came while there was room):
            # callers waiting now have told it already, and it must commit.
            tell_writer(context, ("flush",))
        return operation  # its own future

    def _ask(self, message: tuple[str, ...]) -> Any:
        self._check_open()
        try:
            return self._registry.ask(message)
        except pykka.ActorDeadError:
            raise StoreClosed("the store is closed") from None


def _plain(tenant_id: str) -> str:
    # A str subclass (a StrEnum, a NewType-like class) names the same tenant
    # as its plain value, and list_tenants() returns plain strings.
    return tenant_id if type(tenant_id) is str else str.__str__(tenant_id)


def _check_count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name}: expected an int >= 1, got {value!r}"
        raise TypeError(msg)
    if value < 1:
        msg = f"{name}: expected an int >= 1, got {value!r}"
        raise ValueError(msg)


def _check_seconds(name: str, value: Any) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        msg = f"{name}: expected a number of seconds > 0, got {value!r}"
        raise ValueError(msg)


def _dropped(
    context: Context, stops: list[queue.SimpleQueue[None]], timeout: float
) -> None:
    """A store dropped unclosed, or still open at exit: shut it down.

    Dropped in a coroutine, it is shut down in a thread of its own (not a
    daemon: the program waits for it at exit), not on the event loop.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _shut_down(context, stops, timeout)
    else:
        threading.Thread(
            target=_shut_down,
            args=(context, stops, timeout),
            name="tenant-dna-shutdown",
        ).start()


def _shut_down(
    context: Context, stops: list[queue.SimpleQueue[None]], timeout: float
) -> None:
    """Commit what was submitted, stop every actor; never raises.

    Commits are tried again while storage refuses them, for ``timeout``
    seconds at most; whatever they did, every actor and thread of the store
    is then stopped, storage released, and callers still waiting (for an
    answer, or for room under ``max_queued``) are answered. At interpreter
    exit this runs for a store that was never closed. If not everything
    could be committed, one error names how many changes were not.
    """
    registry = context.registry
    if registry is None or not registry.is_alive():
        return
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(0.0, deadline - time.monotonic())

    def unsettled() -> int:
        return sum(
            cell.unsettled_changes() for cell in list(context.directory.values())
        )

    failure: Exception | None = None
    try:
        _commit_submitted(registry, left)
    except Exception as error:
        failure = error
    # Counted while the actors run, one may hold a batch it is settling:
    # counted again once they have stopped (see below).
    counted = unsettled() if failure is not None else 0

    # Past the deadline each step still gets a moment: a store that cannot
    # write must not leave its threads running.
    def grace() -> float:
        return max(left(), STOP_GRACE)

    stopped = False
    try:
        hosts: list[pykka.ActorRef[Any]]
        try:
            hosts = registry.ask(("close",), block=True, timeout=grace())
        except Exception as error:
            failure = failure or error
            hosts = [host for host in context.hosts if host is not None]
        for host in hosts:
            with contextlib.suppress(pykka.ActorDeadError):
                host.tell("retire")  # after every wake-up already queued
        stopped = all(host.actor_stopped.wait(grace()) for host in hosts)
        for stop in stops:
            stop.put(None)
        context.closing = True
        for actor in (context.writer, registry):
            if actor is None:
                continue
            try:
                actor.stop(timeout=grace())
            except Exception as error:  # still at work: it stops after that
                failure = failure or error
                stopped = False
    except Exception as error:
        failure = failure or error
        stopped = False
    finally:
        if failure is not None:
            context.events.error(
                "store_not_drained",
                changes_not_committed=unsettled()
                if stopped
                else max(counted, unsettled()),
                seconds=timeout,
                error=type(failure).__name__,
            )
        with contextlib.suppress(StorageError):
            context.storage.close()
        context.close_clones()
        if stopped:
            # No actor will settle them now.
            for cell in list(context.directory.values()):
                cell.fail_unsettled()
        # Callers waiting for room find the store closed (see _post).
        for _ in range(context.queued):
            context.release()


def _commit_submitted(registry: pykka.ActorRef[Any], left: Callable[[], float]) -> None:
    """Flush, again while storage refuses (buffered changes are kept)."""
    while True:
        try:
            flushes: list[pykka.Future[list[pykka.Future[None]]]]
            flushes = registry.ask(("flush",), block=True, timeout=left())
            for flush in flushes:
                for cell_flush in flush.get(timeout=left()):
                    cell_flush.get(timeout=left())
        except StorageError:
            if left() <= RETRY_PAUSE:
                raise
            time.sleep(RETRY_PAUSE)
        else:
            return
