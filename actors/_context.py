"""What the actors of one store share: storage access, limits, counters."""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pykka

from actors._cell import Settlement, SlotFlush, TenantCell
from actors._log import Events

if TYPE_CHECKING:
    from storage import Storage


READERS: Final = 4
"""Connections a store's callers share for reads of storage, at most.

A caller reads storage itself for a tenant not in memory (and for ``count``,
``list_tenants``, ``stats``). With a connection per calling thread, a service
with hundreds of threads held hundreds of connections, each with its page
cache (1 MiB on SQLite); they share at most these, and a caller that finds
all of them in use waits for one. SQLite reads let go of the GIL, so a few
overlap; more would only hold memory on two cores.
"""

WAKE: Final = "drain"
"""The message that tells a tenant actor to drain its slot's ready cells."""


class Counter:
    """A count that any thread may add to: ``next`` on ``itertools.count`` is atomic.

    ``add()`` counts one: it is the count's own ``__next__``, a call into C
    with no Python frame, as it is made a few times for every change.
    """

    __slots__ = ("_count", "add")

    def __init__(self) -> None:
        self._count = itertools.count()
        self.add: Callable[[], object] = self._count.__next__

    @property
    def value(self) -> int:
        """How many were counted (read without changing it)."""
        return int(repr(self._count)[6:-1])


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A store's figures at one moment (cheap enough to read every second).

    * ``tenants``: tenants with stored DNA (committed: buffered changes are
      counted once written);
    * ``resident``: profiles held in memory;
    * ``active_actors``: tenant actors (threads) running;
    * ``changes_queued``: changes submitted and not yet settled (in a mailbox
      or waiting for their commit);
    * ``activations`` / ``passivations``: tenants given / taken from an actor;
    * ``commits``: storage transactions that wrote changes;
    * ``changes_committed``: tenants' changes those transactions wrote;
    * ``version_conflicts``: changes whose commit found another version than
      the one they were computed from (computed again on it in the same
      commit, re-applied, or refused to a caller);
    * ``storage_errors``: storage operations that failed;
    * ``actors_replaced``: tenant actors lost and replaced by the registry.
    """

    tenants: int
    resident: int
    active_actors: int
    changes_queued: int
    activations: int
    passivations: int
    commits: int
    changes_committed: int
    version_conflicts: int
    storage_errors: int
    actors_replaced: int


class Context:
    """The shared parts of one store, handed to each of its actors.

    ``storage`` is the store's own connection; the actors' threads use
    :meth:`storage_here`, a connection of their own, and callers share at
    most :data:`READERS` (:meth:`reading`). ``inline``: changes are committed
    by the tenant's actor itself (the in-memory backend, where a commit costs
    microseconds); otherwise they go to the writer, which groups them into
    transactions.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        inline: bool,
        buffered: bool,
        max_active: int,
        max_resident: int,
        max_queued: int,
    ) -> None:
        self.storage = storage
        # Tenant id -> cell, for the tenants in use. Cells are added with
        # setdefault (atomic), so every operation for a tenant meets in one
        # mailbox, and removed only by the actor of their slot.
        self.directory: dict[str, TenantCell] = {}
        self.max_active = max_active
        self.max_resident = max_resident
        # slot -> the tenant actor serving the cells of that slot; written by
        # the registry, read by anyone posting.
        self.hosts: list[pykka.ActorRef[Any] | None] = [None] * max_active
        # slot -> the cells of that slot waiting to be drained (and flushes
        # of the slot and commits settled, in their turn), and the slot's
        # wake-up token (as a cell's, one level up): whoever sets it after
        # appending tells the slot's actor, which clears it before it drains,
        # so one message drains every cell that became ready meanwhile.
        self.ready: list[deque[TenantCell | SlotFlush | Settlement]] = [
            deque() for _ in range(max_active)
        ]
        self.woken: list[bool] = [False] * max_active
        self.inline = inline
        self.buffered = buffered
        self.registry: pykka.ActorRef[Any] | None = None
        self.writer: pykka.ActorRef[Any] | None = None
        # Places for changes in flight, one token each: get() takes one
        # (blocking while none is left), put() gives it back once the change
        # is settled. A SimpleQueue is taken and signalled in C, a bounded
        # Queue through a Condition at several times the cost.
        self.max_queued = max_queued
        self.places: queue.SimpleQueue[None] = queue.SimpleQueue()
        for _ in range(max_queued):
            self.places.put(None)
        self.events = Events("actors")
        self.conflicts = Counter()
        self.storage_errors = Counter()
        self.activations = Counter()  # profiles loaded into a cell
        self.passivations = Counter()  # cells retired
        self.replaced = 0  # registry-owned
        self.closing = False  # set once the store starts closing
        self.commits = 0  # writer-owned (or counted by inline actors below)
        self.inline_commits = Counter()
        self.changes_committed = 0  # writer-owned
        self.inline_changes = Counter()
        self._local = threading.local()
        # The callers' connections, idle, and a None for each that may still
        # be made: READERS items in all, so a reader waits on get() while
        # every one is in use. A SimpleQueue is taken from in C: a LifoQueue
        # (an idle connection taken before another is made) halved the rate
        # of 16 threads reading a million tenants, 54,900 -> 23,000 a second.
        self._readers: queue.SimpleQueue[Storage | None] = queue.SimpleQueue()
        for _ in range(READERS):
            self._readers.put(None)
        # Weakly: a thread's connection goes with the thread (its local), and
        # those still open are closed with the store.
        self._clones: weakref.WeakSet[Storage] = weakref.WeakSet()

    def wake(self, cell: TenantCell | SlotFlush | Settlement) -> None:
        """Have ``cell`` drained by its slot's actor (its token is set)."""
        slot = cell.slot
        self.ready[slot].append(cell)
        if self.woken[slot]:
            return
        self.woken[slot] = True
        host = self.hosts[slot]
        if host is not None:
            try:
                host.tell(WAKE)
            except pykka.ActorDeadError:
                pass  # lost: the registry replaces it; or the store is closed
            else:
                return
        assert self.registry is not None
        self.registry.tell(("wake", slot))

    def cell(self, tenant_id: str) -> TenantCell:
        """The tenant's live cell, created if it has none."""
        cell = self.directory.get(tenant_id)
        return self.new_cell(tenant_id) if cell is None else cell

    def new_cell(self, tenant_id: str) -> TenantCell:
        """The tenant's live cell, for a tenant that had none a moment ago.

        ``setdefault`` is atomic: of the callers that create a tenant's cell
        at once, one cell wins and every one of them gets it.
        """
        return self.directory.setdefault(
            tenant_id, TenantCell(tenant_id, hash(tenant_id) % self.max_active)
        )

    @property
    def active(self) -> int:
        """Tenant actors running."""
        return sum(host is not None for host in self.hosts)

    def storage_here(self) -> Storage:
        """This thread's connection to the store's storage."""
        clone: Storage | None = getattr(self._local, "storage", None)
        if clone is None:
            clone = self._local.storage = self.storage.clone()
            if clone is not self.storage:
                self._clones.add(clone)
        return clone

    @contextlib.contextmanager
    def reading(self) -> Iterator[Storage]:
        """A connection for a caller's read, one of at most :data:`READERS`."""
        storage = self._readers.get()
        if storage is None:
            try:
                storage = self.storage.clone()
            except BaseException:
                self._readers.put(None)  # the place stays for the next one
                raise
            if storage is not self.storage:
                self._clones.add(storage)
        try:
            yield storage
        finally:
            self._readers.put(storage)

    def release(self) -> None:
        """Give back the place of a settled change."""
        self.places.put(None)

    @property
    def queued(self) -> int:
        """Changes in flight now."""
        return self.max_queued - self.places.qsize()

    def close_clones(self) -> None:
        """Close every thread's connection (the store is closed)."""
        while True:
            try:
                clones = list(self._clones)
            except RuntimeError:  # a thread added one meanwhile: look again
                continue
            break
        for clone in clones:
            try:
                clone.close()
            except Exception:  # closing must go on
                continue
