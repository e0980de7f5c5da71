"""The contenders: one small interface, several ways to serve profiles.

* ``lock`` — a dict of profiles behind one ``threading.Lock``: the cost of the
  work itself in CPython, the practical limit. (Bench-only code: the no-locks
  rule is for ``dna`` and ``actors``.)
* ``naive-actors`` — plain pykka, the first design one writes: a registry actor
  maps each tenant to its own actor, created on first use, and every call is an
  ``ask`` to the registry for the tenant's ref and then an ``ask`` to the tenant.
* ``store-ack`` / ``store-async`` — :class:`actors.TenantDNAStore`, updates
  acknowledged (``update_from_session``) or fire-and-forget
  (``update_from_session_async``, drained by ``flush`` before the clock stops).
* ``seed-pattern`` — the seed's get → mutate → save on the store. It races by
  design and shows what the store's atomic update prevents; it is the only
  contender allowed to lose updates.
* ``lock-sqlite`` — what a user would write to make ``lock`` durable: the same
  dict and lock, committing each change to an SQLite file (WAL,
  ``synchronous=FULL``, a transaction per update).
* ``diskcache`` — the library a user would pick instead (``diskcache.Cache``,
  SQLite underneath, WAL with its default ``synchronous=NORMAL``): each update
  a ``transact()`` read-modify-write, each read a ``get``.
* ``store-sqlite`` / ``store-sqlite-async`` — the store on a fresh SQLite file
  with ``durability="commit"`` (``synchronous=FULL``, a change acknowledged
  once committed, commits grouped across tenants), updates acknowledged or
  fire-and-forget; ``store-sqlite-buffered`` — ``durability="buffered"``
  (write-behind), fire-and-forget.
* ``store-asyncio`` / ``store-sqlite-asyncio`` — :class:`actors.AsyncTenantDNAStore`
  in memory / on SQLite in ``commit`` mode, driven by 1,000 coroutines in one
  event loop that await their updates (the ``asyncio`` scenario, and only it).

Every contender says where its profiles live (``storage``: ``memory``,
``sqlite`` or ``diskcache``); the ones with files get a fresh temporary folder
per run, removed at close.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pykka

from bench.workload import Scenario
from dna import TenantDNA

if TYPE_CHECKING:
    from actors import StoreStats

Metrics = Mapping[str, Any]


class AsyncContender(Protocol):
    """What the asyncio runner awaits, in one event loop; see :class:`Contender`."""

    def get(self, tenant_id: str) -> Awaitable[TenantDNA]:
        """A copy of the tenant's profile (a default one if none is stored)."""
        ...

    def update(
        self, tenant_id: str, metrics: Metrics, alpha: float
    ) -> Awaitable[TenantDNA]:
        """Apply one session; return once it is applied."""
        ...

    def flush(self) -> Awaitable[None]:
        """Return once every update submitted before the call is applied."""
        ...

    def close(self) -> Awaitable[None]:
        """Release everything; the contender is not used afterwards."""
        ...


class Contender(Protocol):
    """What the runner calls; every contender serves the same five calls."""

    def get(self, tenant_id: str) -> TenantDNA:
        """A copy of the tenant's profile (a default one if none is stored)."""
        ...

    def update(self, tenant_id: str, metrics: Metrics, alpha: float) -> TenantDNA:
        """Apply one session and wait until it is applied."""
        ...

    def update_async(self, tenant_id: str, metrics: Metrics, alpha: float) -> object:
        """Submit one session without waiting for it."""
        ...

    def flush(self) -> None:
        """Return once every update submitted before the call is applied."""
        ...

    def close(self) -> None:
        """Release everything; the contender is not used afterwards."""
        ...


@dataclass(frozen=True, slots=True)
class ContenderSpec:
    """A named way to build a fresh contender and drive its updates.

    ``asynchronous`` makes the runner call ``update_async`` (and ``flush``
    inside the clock); ``racy`` marks the one contender allowed to lose updates.
    ``ops_share`` caps a slow contender's runs at that share of the base
    operation count: it runs the first operations of the same plan (the
    figures are rates, so a shorter run still compares). ``storage`` says where
    the profiles live: ``"memory"``, ``"sqlite"`` or ``"diskcache"``.
    ``coroutines`` marks a contender driven by coroutines in one event loop:
    ``make`` returns an :class:`AsyncContender`, and it runs the scenarios
    with ``coroutines`` (``asyncio``) and only those.
    """

    name: str
    make: Callable[[], Contender] | Callable[[], AsyncContender]
    asynchronous: bool = False
    racy: bool = False
    ops_share: float = 1.0
    storage: str = "memory"
    coroutines: bool = False

    def runs(self, scenario: Scenario) -> bool:
        """Whether this contender takes part in ``scenario``."""
        return self.coroutines == bool(scenario.coroutines)


class LockedDict:
    """Profiles in a dict behind one lock; every call holds it for its work."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profiles: dict[str, TenantDNA] = {}

    def get(self, tenant_id: str) -> TenantDNA:
        with self._lock:
            dna = self._profiles.get(tenant_id)
            return TenantDNA() if dna is None else dna.copy()

    def update(self, tenant_id: str, metrics: Metrics, alpha: float) -> TenantDNA:
        with self._lock:
            dna = self._profiles.get(tenant_id)
            if dna is None:
                dna = self._profiles[tenant_id] = TenantDNA()
            dna.update_from_session(metrics, alpha)
            return dna.copy()

    def update_async(self, tenant_id: str, metrics: Metrics, alpha: float) -> object:
        return self.update(tenant_id, metrics, alpha)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        with self._lock:
            self._profiles.clear()


class LockedSQLite(LockedDict):
    """:class:`LockedDict` committing each change to an SQLite file.

    What a user would write to make the lock baseline durable: one connection,
    used only under the lock, ``isolation_level=None`` and a ``BEGIN IMMEDIATE
    … COMMIT`` per update that upserts the tenant's ``to_dict()`` as JSON, in
    WAL mode with ``synchronous=FULL`` (an fsync per commit, the setting the
    store's ``durability="commit"`` uses). The dict takes the new profile only
    once it is committed; reads come from the dict, under the lock. The file,
    :attr:`path`, is new for each instance, in a temporary folder removed at
    :meth:`close`. In ``CONTENDERS`` it runs a quarter of the operations
    (``ops_share``): commits are serialised, one fsync each, and a full share
    would take a minute on a disk with millisecond fsyncs; its figures are
    rates, so they still compare.
    """

    def __init__(self) -> None:
        super().__init__()
        self._folder = tempfile.TemporaryDirectory(prefix="bench-lock-sqlite-")
        self.path = Path(self._folder.name) / "profiles.db"
        # Threads take turns under the lock, so one connection serves them all.
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False
        )
        # Every pragma explicitly: build defaults differ between machines.
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise RuntimeError(f"{self.path}: journal_mode is {mode!r}, not 'wal'")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE profiles (tenant_id TEXT PRIMARY KEY, dna TEXT NOT NULL)"
        )

    def update(self, tenant_id: str, metrics: Metrics, alpha: float) -> TenantDNA:
        with self._lock:
            stored = self._profiles.get(tenant_id)
            dna = TenantDNA() if stored is None else stored.copy()
            dna.update_from_session(metrics, alpha)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO profiles (tenant_id, dna) VALUES (?, ?) "
                    "ON CONFLICT (tenant_id) DO UPDATE SET dna = excluded.dna",
                    (tenant_id, json.dumps(dna.to_dict())),
                )
                self._db.execute("COMMIT")
            except BaseException:
                # A failed COMMIT may have rolled back already.
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._profiles[tenant_id] = dna
            return dna.copy()

    def close(self) -> None:
        with self._lock:
            self._profiles.clear()
            self._db.close()
        self._folder.cleanup()


class DiskCache:
    """``diskcache.Cache`` as a user would use it, on a fresh folder per instance.

    Profiles are stored as ``to_dict()`` values; an update is a read-modify-
    write inside ``cache.transact()`` (``BEGIN IMMEDIATE``, so updates of one
    cache never interleave), a read is a plain ``cache.get`` and
    ``TenantDNA.from_dict``. The cache keeps its own defaults, as a user would:
    WAL with ``sqlite_synchronous=1`` (``NORMAL``: a commit is not fsynced, the
    WAL is at checkpoints; ``DEFAULT_SETTINGS`` in ``diskcache/core.py``), a
    connection per thread and a 60 s busy timeout. Updates are synchronous;
    ``update_async`` is ``update``. The folder is removed at :meth:`close`. In
    ``CONTENDERS`` it runs half the operations (``ops_share``), to keep the
    default run short; its figures are rates, so they still compare.
    :attr:`cache` is the ``diskcache.Cache``.
    """

    def __init__(self) -> None:
        import diskcache  # the bench extra; only this contender needs it

        self._folder = tempfile.TemporaryDirectory(prefix="bench-diskcache-")
        self.cache = diskcache.Cache(self._folder.name)

    def get(self, tenant_id: str) -> TenantDNA:
        data = self.cache.get(tenant_id)
        return TenantDNA() if data is None else TenantDNA.from_dict(data)

    def update(self, tenant_id: str, metrics: Metrics, alpha: float) -> TenantDNA:
        with self.cache.transact():
            data = self.cache.get(tenant_id)
            dna = TenantDNA() if data is None else TenantDNA.from_dict(data)
            dna.update_from_session(metrics, alpha)
            self.cache.set(tenant_id, dna.to_dict())
        return dna

    def update_async(self, tenant_id: str, metrics: Metrics, alpha: float) -> object:
        return self.update(tenant_id, metrics, alpha)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        # Closes this thread's connection; the workers' went with their threads.
        self.cache.close()
        self._folder.cleanup()


class _TenantActor(pykka.ThreadingActor):
    """One tenant's profile; messages are ``(kind, *args)`` tuples."""

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self._dna = TenantDNA()

    def on_receive(self, message: Any) -> Any:
        kind = message[0]
        if kind == "update":
            self._dna.update_from_session(message[1], message[2])
            return self._dna.copy()
        if kind == "get":
            return self._dna.copy()
        return None  # "ping": everything sent before it has been applied


class _RegistryActor(pykka.ThreadingActor):
    """Tenant id -> tenant actor, started on first use."""

    use_daemon_thread = True

    def __init__(self) -> None:
        super().__init__()
        self._tenants: dict[str, pykka.ActorRef[_TenantActor]] = {}

    def on_receive(self, message: Any) -> Any:
        kind, tenant_id = message
        if kind == "all":
            return list(self._tenants.values())
        ref = self._tenants.get(tenant_id)
        if ref is None:
            ref = self._tenants[tenant_id] = _TenantActor.start()
        return ref


class NaiveActors:
    """Plain pykka: two ``ask`` round trips per call, all through one registry."""

    def __init__(self) -> None:
        self._registry = _RegistryActor.start()

    def _tenant(self, tenant_id: str) -> pykka.ActorRef[_TenantActor]:
        ref: pykka.ActorRef[_TenantActor] = self._registry.ask(
            ("ref", tenant_id), block=True
        )
        return ref

    def get(self, tenant_id: str) -> TenantDNA:
        dna: TenantDNA = self._tenant(tenant_id).ask(("get",), block=True)
        return dna

    def update(self, tenant_id: str, metrics: Metrics, alpha: float) -> TenantDNA:
        dna: TenantDNA = self._tenant(tenant_id).ask(
            ("update", metrics, alpha), block=True
        )
        return dna

    def update_async(self, tenant_id: str, metrics: Metrics, alpha: float) -> object:
        return self._tenant(tenant_id).ask(("update", metrics, alpha), block=False)

    def flush(self) -> None:
        refs: list[pykka.ActorRef[_TenantActor]] = self._registry.ask(
            ("all", None), block=True
        )
        for future in [ref.ask(("ping",), block=False) for ref in refs]:
            future.get(timeout=60)

    def close(self) -> None:
        if not self._registry.is_alive():
            return
        refs: list[pykka.ActorRef[_TenantActor]] = self._registry.ask(
            ("all", None), block=True
        )
        for future in [ref.stop(block=False) for ref in refs]:
            future.get(timeout=60)
        self._registry.stop(timeout=60)


FRESH_SQLITE = "sqlite:///{folder}/dna.db"
"""A :class:`StoreContender` ``url``: a new SQLite file in a temporary folder
of the contender's own, removed at close (``{folder}`` is an absolute path, so
the URL has the four slashes of an absolute SQLite path)."""


def _store_options(
    url: str | None, durability: str | None, fresh: Callable[[], None] | None = None
) -> tuple[dict[str, Any], tempfile.TemporaryDirectory[str] | None]:
    """The store's keyword arguments, and the fresh folder ``url`` asked for.

    ``fresh``, if given, is called first: it empties the storage ``url``
    names (``python -m bench --url``), so every run starts from nothing.
    """
    if fresh is not None:
        fresh()
    folder: tempfile.TemporaryDirectory[str] | None = None
    options: dict[str, Any] = {}
    if url is not None and "{folder}" in url:
        folder = tempfile.TemporaryDirectory(prefix="bench-store-")
        url = url.format(folder=folder.name)
    if url is not None:
        options["url"] = url
    if durability is not None:
        options["durability"] = durability
    return options, folder


class StoreContender:
    """:class:`actors.TenantDNAStore` as it is: its methods, bound, no wrapper.

    ``url`` and ``durability`` go to the store only when given, so the
    in-memory contenders build it as ``TenantDNAStore()``. A ``url`` holding
    ``{folder}`` (see :data:`FRESH_SQLITE`) gets a fresh temporary folder per
    instance, removed once the store is closed; ``fresh``, if given, is
    called before the store opens, to empty the storage ``url`` names::

        ContenderSpec(
            "store-sqlite",
            lambda: StoreContender(url=FRESH_SQLITE, durability="commit"),
            storage="sqlite",
        )
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        durability: str | None = None,
        fresh: Callable[[], None] | None = None,
    ) -> None:
        from actors import TenantDNAStore

        options, self._folder = _store_options(url, durability, fresh)
        try:
            self._store = TenantDNAStore(**options)
        except BaseException:
            if self._folder is not None:
                self._folder.cleanup()
            raise
        self.get: Callable[[str], TenantDNA] = self._store.get
        self.update: Callable[[str, Metrics, float], TenantDNA] = (
            self._store.update_from_session
        )
        self.update_async: Callable[[str, Metrics, float], object] = (
            self._store.update_from_session_async
        )
        self.flush: Callable[[], None] = self._store.flush
        self.stats: Callable[[], StoreStats] = self._store.stats

    def close(self) -> None:
        try:
            self._store.close()
        finally:
            if self._folder is not None:
                self._folder.cleanup()


class AsyncStoreContender:
    """:class:`actors.AsyncTenantDNAStore` as it is: its coroutines, bound.

    Takes ``url``, ``durability`` and ``fresh`` as :class:`StoreContender`
    does (a fresh folder for :data:`FRESH_SQLITE`, removed once the store is
    closed). An
    update is ``await store.update_from_session(...)``: the calling coroutine
    waits for its own update, the event loop does not.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        durability: str | None = None,
        fresh: Callable[[], None] | None = None,
    ) -> None:
        from actors import AsyncTenantDNAStore

        options, self._folder = _store_options(url, durability, fresh)
        try:
            self._store = AsyncTenantDNAStore(**options)
        except BaseException:
            if self._folder is not None:
                self._folder.cleanup()
            raise
        self.get: Callable[[str], Awaitable[TenantDNA]] = self._store.get
        self.update: Callable[[str, Metrics, float], Awaitable[TenantDNA]] = (
            self._store.update_from_session
        )
        self.flush: Callable[[], Awaitable[None]] = self._store.flush
        # Synchronous, for the runner's figures outside the timed region.
        self.stats: Callable[[], StoreStats] = self._store.store.stats

    async def close(self) -> None:
        try:
            await self._store.close()
        finally:
            if self._folder is not None:
                self._folder.cleanup()


class SeedPattern:
    """The seed's read-modify-write on the store: get, mutate the copy, save.

    Two threads that read the same profile both save their own version, and
    the first one's session is lost. Kept to show the race, not as a contender.
    """

    def __init__(self) -> None:
        from actors import TenantDNAStore

        self._store = TenantDNAStore()
        self.get: Callable[[str], TenantDNA] = self._store.get
        self.flush: Callable[[], None] = self._store.flush
        self.close: Callable[[], None] = self._store.close

    def update(self, tenant_id: str, metrics: Metrics, alpha: float) -> TenantDNA:
        dna = self._store.get(tenant_id)
        dna.update_from_session(metrics, alpha)
        self._store.save(tenant_id, dna)
        return dna

    def update_async(self, tenant_id: str, metrics: Metrics, alpha: float) -> object:
        return self.update(tenant_id, metrics, alpha)


def contenders(
    url: str = FRESH_SQLITE,
    storage: str = "sqlite",
    fresh: Callable[[], None] | None = None,
) -> tuple[ContenderSpec, ...]:
    """Every contender, the store's durable ones (``store-sqlite*``) on ``url``.

    By default a fresh SQLite file per run (:data:`CONTENDERS`);
    ``python -m bench --url`` passes its storage, where it lives
    (``storage``: ``"sqlite"`` or ``"postgres"``) and ``fresh``, which
    empties it before each run. The names stay, so targets still apply.
    """
    return (
        ContenderSpec("lock", LockedDict),
        # About ten times slower than lock; a full share would take most of the run.
        ContenderSpec("naive-actors", NaiveActors, ops_share=0.25),
        ContenderSpec("store-ack", StoreContender),
        ContenderSpec("store-async", StoreContender, asynchronous=True),
        ContenderSpec("seed-pattern", SeedPattern, racy=True),
        # An fsync per update, one at a time: 4,000 updates take under a second
        # at this machine's 0.2 ms an fsync, and 10 s where an fsync costs 2.5 ms.
        ContenderSpec("lock-sqlite", LockedSQLite, ops_share=0.25, storage="sqlite"),
        # No fsync per commit, but 16 threads queue in SQLite's busy handler,
        # whose sleeps grow to 100 ms: about 1.5 s a run here at half the
        # operations.
        ContenderSpec("diskcache", DiskCache, ops_share=0.5, storage="diskcache"),
        # The store on the embedded default, in both durability modes.
        ContenderSpec(
            "store-sqlite",
            lambda: StoreContender(url=url, durability="commit", fresh=fresh),
            ops_share=0.5,
            storage=storage,
        ),
        ContenderSpec(
            "store-sqlite-async",
            lambda: StoreContender(url=url, durability="commit", fresh=fresh),
            asynchronous=True,
            storage=storage,
        ),
        ContenderSpec(
            "store-sqlite-buffered",
            lambda: StoreContender(url=url, durability="buffered", fresh=fresh),
            asynchronous=True,
            storage=storage,
        ),
        # The asyncio scenario's contenders: 1,000 coroutines in one event loop.
        ContenderSpec("store-asyncio", AsyncStoreContender, coroutines=True),
        ContenderSpec(
            "store-sqlite-asyncio",
            lambda: AsyncStoreContender(url=url, durability="commit", fresh=fresh),
            storage=storage,
            coroutines=True,
        ),
    )


CONTENDERS = contenders()
"""Every contender, in table order; ``lock`` first, it is the reference."""
