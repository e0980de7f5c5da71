"""Profiles in PostgreSQL: one truth for many processes on many machines, via psycopg 3.

Guarantees:

* **Durable, checked commits.** One transaction per :meth:`PostgresStorage.commit`,
  with ``synchronous_commit = on`` set on every connection: a commit returns
  once the server has flushed it. The rows a commit touches are locked with
  ``SELECT … FOR UPDATE`` in tenant-id order (so two commits never deadlock),
  every change is checked against the locked version and incarnation, and
  the writes say so again: ``UPDATE … WHERE version = … AND incarnation = …``,
  ``INSERT … ON CONFLICT DO NOTHING`` (a tenant created meanwhile by another
  process makes the commit start over, and the change conflicts). Erasure is
  a ``DELETE``: the row leaves the table in that transaction.
* **A commit whose reply was lost is settled, not guessed.** If the connection
  drops during ``COMMIT``, the transaction's id is looked up on a new
  connection (``pg_xact_status``): committed, the outcomes are returned;
  rolled back, :class:`StorageError` says nothing was written; if the server
  cannot answer within ``connect_timeout``, :class:`StorageError` says the
  outcome is unknown.
* **Freshness by ``NOTIFY``.** Every commit that writes sends, on channel
  :data:`CHANNEL` and inside its transaction (so listeners hear it at commit,
  in commit order), the JSON ``{"updated": [[tenant_id, version,
  incarnation], ...], "erased": [incarnation, ...]}`` — or :data:`STALE`
  (``"*"``: anything may have changed) when that would not fit PostgreSQL's
  8,000-byte limit. Erased tenants are named by incarnation, never by id.
  :meth:`PostgresStorage.wait_for_changes` listens on a connection of its own.
* **Cursors without a hot row.** A row and an erasure-log entry carry the id
  of the transaction that wrote them (``pg_current_xact_id()``); a cursor is
  the oldest transaction still running (``xmin`` of a snapshot), so every
  transaction below it has ended and is visible. ``changes_since`` is one
  statement under one snapshot, may repeat an entry (while a long
  transaction runs anywhere in the cluster), never misses one; commits share
  no counter row, so they run side by side. The erasure log keeps the last
  :data:`ERASURE_LOG` erased incarnations (random numbers, never tenant ids).
* **Connections: shared by an object and its clones, made on demand, checked
  on reuse; no thread.** The interface is one connection per thread, and
  ``actors`` clones a storage for every thread that reads: one server
  connection per clone would exhaust the server's ``max_connections`` in a
  service of hundreds of threads and tens of processes. So an object and its
  clones share their idle connections (at most ``pool_size`` kept); an
  operation borrows one for its duration, or connects in the caller's thread
  when none is idle. A connection is never handed out dead: one whose socket
  has anything to read while idle (a restarted server's goodbye) is checked
  with an empty query, and the first dead one found closes every idle one
  (they died together), so the first call after a restart reconnects at
  once. Not ``psycopg_pool``: it runs worker threads (this layer has none),
  and measured here its reconnection backs off (0, 1, 2, 4 … s per dead
  connection or failed attempt), so a pool of 10 connections, or one used
  while the server was down, failed its first call after the server came
  back with ``PoolTimeout``. A connection lost in use raises
  :class:`StorageError`; TCP keepalives notice a silent peer in ~20 s.
* **Opening refuses what is not ours.** The tables (and a schema-version row)
  are created if missing, under an advisory lock so processes starting
  together create them once. A database holding a table named like ours
  without our schema row, an incomplete set of our tables, or a newer schema
  raises :class:`StorageError` naming the URL (and both schema versions), and
  nothing is changed. Messages name the URL without its password.
* **Older databases open.** A database of schema 1 (profiles as JSON text) is
  upgraded to :data:`SCHEMA_VERSION` when it is opened, in one transaction
  under the advisory lock: every row is read, packed and written once (the
  upgrade costs a rewrite of the table, and holds it locked meanwhile), and a
  row that does not read stops it, naming the tenant, with nothing changed.
  From then on a tenant-dna that reads schema 1 at most refuses to open it,
  naming both versions (one still running gets :class:`StorageError` from
  every read of a profile and every write).
* Profiles are stored packed (:mod:`storage._packed`, as the memory and SQLite
  backends keep them) in a ``bytea`` column: every valid profile, lone
  surrogates and NULs in its names included, comes back exactly (JSON text
  did not: a lone high surrogate followed by a lone low one came back as one
  character, and ``jsonb`` refuses lone surrogates). Validated on the way in
  (``dna.InvalidDNA``) and on the way out: a stored profile that does not
  unpack, or holds a value ``dna.check_profile`` refuses, raises
  :class:`StorageError` naming the tenant. Tenant ids sort by code point
  (``COLLATE "C"``), as Python's do.

Not guaranteed: PostgreSQL has no secure delete. An erased row's bytes stay
in the table's pages until ``VACUUM`` reuses them, and in the server's WAL
until it is recycled; operators who must wipe them run ``VACUUM`` and rely on
encrypted storage and WAL retention limits.
"""

from __future__ import annotations

import contextlib
import json
import math
import select
import time
import urllib.parse
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import psycopg
import psycopg.errors
from psycopg.pq import TransactionStatus

from dna import TenantDNA
from storage._base import (
    Announced,
    Change,
    Changes,
    CommitOutcomeUnknown,
    Committed,
    Conflict,
    Outcome,
    Record,
    Storage,
    StorageError,
)
from storage._packed import decode_checked, encode, encode_stored
from storage._records import (
    checked_ids,
    new_incarnation,
    parse_row,
    profile_from_json,
    rebased,
    restored_incarnation,
)

SCHEMA_VERSION: Final = 2
"""The layout this code writes; a database of a newer one is refused.

1: profiles as JSON text. 2: profiles packed, in ``bytea``.
"""

ERASURE_LOG: Final = 10_000
"""Erasures kept for ``changes_since``: an older cursor gets ``complete=False``."""

CHANNEL: Final = "tenant_dna"
"""The ``NOTIFY`` channel every commit is announced on."""

STALE: Final = "*"
"""The payload meaning "anything may have changed" (the list would not fit)."""

MAX_PAYLOAD: Final = 7_900
"""Bytes; PostgreSQL refuses payloads of 8,000 bytes or more."""

CONNECT_TIMEOUT: Final = 5.0
"""Seconds to connect to the server."""

LOCK_TIMEOUT: Final = 10.0
"""Seconds a commit waits for rows another transaction has locked."""

POOL_SIZE: Final = 10
"""Idle connections an object and its clones keep for reuse, at most."""

_SCHEMA: Final = "tenant_dna_schema"
_META: Final = "tenant_dna_meta"
_PROFILES: Final = "tenant_dna_profiles"
_ERASURES: Final = "tenant_dna_erasures"
_OURS: Final = (_SCHEMA, _META, _PROFILES, _ERASURES)
# pg_advisory_xact_lock keys: "tdna" + 1 and + 2.
_SETUP_LOCK: Final = 0x74646E61_00000001
_PRUNE_LOCK: Final = 0x74646E61_00000002
_XID: Final = "pg_current_xact_id()::text::bigint"
_RETRIES: Final = 8
_UPGRADE_BATCH: Final = 1000  # rows packed per statement while upgrading

_CREATE: Final = (
    f"CREATE TABLE {_SCHEMA} (version integer NOT NULL)",
    f"INSERT INTO {_SCHEMA} (version) VALUES ({SCHEMA_VERSION})",
    f"CREATE TABLE {_META} (key text PRIMARY KEY, value bigint NOT NULL)",
    f"INSERT INTO {_META} (key, value) VALUES ('erasure_floor', 0)",
    f"CREATE TABLE {_PROFILES} ("
    'tenant_id text COLLATE "C" PRIMARY KEY, '
    "version bigint NOT NULL CHECK (version >= 1), "
    "incarnation bigint NOT NULL CHECK (incarnation >= 1), "
    "xid bigint NOT NULL, "
    "dna bytea NOT NULL)",
    f"CREATE INDEX {_PROFILES}_xid ON {_PROFILES} (xid)",
    f"CREATE TABLE {_ERASURES} (id bigserial PRIMARY KEY, "
    "xid bigint NOT NULL, incarnation bigint NOT NULL)",
    f"CREATE INDEX {_ERASURES}_xid ON {_ERASURES} (xid)",
)

Row = tuple[Any, ...]
_Stored = tuple[int, int, bytes]  # version, incarnation, packed profile


class _Raced(Exception):
    """Another transaction created a tenant this commit thought absent."""


class _CommitLost(Exception):
    """The connection dropped during ``COMMIT``: the outcome must be looked up."""

    def __init__(self, xid: str, outcomes: list[Outcome], error: BaseException):
        super().__init__(xid)
        self.xid = xid
        self.outcomes = outcomes
        self.error = error


def _normalised(url: str) -> str:
    scheme, _, rest = url.partition("://")
    if scheme.lower().startswith("postgresql+"):  # SQLAlchemy's driver suffix
        return f"postgresql://{rest}"
    return url


def _redacted(url: str) -> tuple[str, tuple[str, ...]]:
    """The URL without its password, and every form of the password an error
    may quote (none: no password), longest first.

    libpq quotes a password as written in the URL when an escape in it is
    bad, and decoded otherwise: both forms are hidden.
    """
    parts = urllib.parse.urlsplit(url)
    written: list[str] = []
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hosts = netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if colon:
            written.append(password)
        netloc = f"{user}@{hosts}"
    for pair in parts.query.split("&"):
        key, _, value = pair.partition("=")
        if urllib.parse.unquote_plus(key) == "password":
            written.append(value)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    kept = urllib.parse.urlencode([(k, v) for k, v in query if k != "password"])
    shown = urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, kept, parts.fragment)
    )
    forms = {
        form
        for raw in written
        for form in (raw, urllib.parse.unquote(raw), urllib.parse.unquote_plus(raw))
        if form
    }
    return shown, tuple(sorted(forms, key=len, reverse=True))


def _configure(connection: psycopg.Connection[Any]) -> None:
    """Every session setting we rely on: a server's defaults may differ."""
    connection.execute(
        "SET synchronous_commit = on; "
        "SET default_transaction_isolation = 'read committed'; "
        f"SET lock_timeout = {round(LOCK_TIMEOUT * 1000)}; "
        "SET idle_in_transaction_session_timeout = 60000"
    )


def _storable(tenant_id: str) -> bool:
    # PostgreSQL text holds neither NUL nor anything that is not UTF-8.
    if "\x00" in tenant_id:
        return False
    try:
        tenant_id.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _profile(tenant_id: str, stored: Any) -> TenantDNA:
    """A stored profile, packed; ``ValueError`` if it is not a valid one."""
    if type(stored) is not bytes:
        msg = f"dna: expected packed bytes, got {type(stored).__name__}"
        raise ValueError(msg)
    return decode_checked(tenant_id, stored)


def _announced(payloads: Iterable[str]) -> Announced:
    """What announcements (:func:`_payload`'s) name; incomplete if one cannot say."""
    updated: list[tuple[str, int, int]] = []
    erased: list[int] = []
    complete = True
    for payload in payloads:
        try:
            named = json.loads(payload)
            updated += [(str(t), int(v), int(i)) for t, v, i in named["updated"]]
            erased += [int(incarnation) for incarnation in named["erased"]]
        except (ValueError, TypeError, KeyError):  # STALE, or not ours
            complete = False
    return Announced(updated, erased, complete)


def _payload(updated: list[tuple[str, int, int]], erased: list[int]) -> str:
    text = json.dumps(
        {"updated": updated, "erased": erased}, separators=(",", ":")
    )  # ASCII: its length is its size in bytes
    return text if len(text) < MAX_PAYLOAD else STALE


def _checked_record(tenant_id: str, record: Record) -> _Stored:
    version, incarnation = checked_ids(tenant_id, record)
    return version, incarnation, encode(tenant_id, record.dna)


class _Shared:
    """What an object and its clones share: idle connections, and who is open.

    ``deque.append`` and ``deque.pop`` are atomic: threads share it lock-free.
    """

    __slots__ = ("idle", "open")

    def __init__(self) -> None:
        self.idle: deque[psycopg.Connection[Any]] = deque()
        self.open: set[object] = set()

    def close_idle(self) -> None:
        """Close every idle connection."""
        while True:
            try:
                connection = self.idle.pop()
            except IndexError:
                return
            with contextlib.suppress(psycopg.Error):
                connection.close()


def _dead(connection: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection is gone (closed, broken, or its server left)."""
    if connection.closed or connection.broken:
        return True
    try:
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    if not readable:
        return False  # an idle server says nothing: nothing to check
    try:
        connection.execute("")  # ConnectionPool.check_connection's check
    except psycopg.Error:
        return True
    return False


class PostgresStorage(Storage):
    """Versioned profile records in a PostgreSQL database, through psycopg 3.

    ``PostgresStorage("postgresql://user:password@host:5432/db")`` connects,
    creates our tables if missing and checks them (see the module's
    guarantees); raises :class:`StorageError` naming the URL without its
    password if the server cannot be reached or the database is not ours.
    Every method raises :class:`StorageError` when the server fails or is
    unreachable, and after :meth:`close`; the next call after the server is
    back works again, on the same object.
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        pool_size: int = POOL_SIZE,
    ) -> None:
        if not connect_timeout > 0:
            msg = f"connect_timeout: expected seconds > 0, got {connect_timeout!r}"
            raise ValueError(msg)
        if not isinstance(pool_size, int) or pool_size < 1:
            msg = f"pool_size: expected an int >= 1, got {pool_size!r}"
            raise ValueError(msg)
        self.url = _normalised(url)
        self.name, self._secrets = _redacted(self.url)
        self.connect_timeout = connect_timeout
        self.pool_size = pool_size
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(connect_timeout)),
            "fallback_application_name": "tenant-dna",
            # A peer that vanishes without a word is noticed in ~20 s.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 3,
            "keepalives_count": 3,
        }
        self._set_up()
        self._token = object()
        self._shared: _Shared | None = _Shared()
        self._shared.open.add(self._token)
        self._listener: psycopg.Connection[Any] | None = None

    # -- plumbing ------------------------------------------------------------

    def _describe(self, error: BaseException) -> str:
        text = " ".join(str(error).split()) or type(error).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, what: str, error: BaseException) -> StorageError:
        return StorageError(f"{self.name}: {what} failed: {self._describe(error)}")

    def _connect(self, timeout: float | None = None) -> psycopg.Connection[Any]:
        kwargs = dict(self._kwargs)
        if timeout is not None:
            kwargs["connect_timeout"] = max(2, math.ceil(timeout))
        connection = psycopg.connect(self.url, **kwargs)
        try:
            _configure(connection)
        except BaseException:
            connection.close()
            raise
        return connection

    def _set_up(self) -> None:
        """Create our tables if missing, or upgrade them from an older schema;
        refuse a database that is not ours."""
        try:
            with self._connect() as connection, connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
                version = self._schema_state(connection)
                if version is None:
                    for statement in _CREATE:
                        connection.execute(statement)
                elif version < SCHEMA_VERSION:
                    self._upgrade(connection)
        except psycopg.Error as error:
            raise self._error("opening the tenant-dna tables", error) from error

    def _upgrade(self, connection: psycopg.Connection[Any]) -> None:
        """Schema 1 to 2, in the caller's transaction: every JSON row packed.

        Each row is read, packed and written once, through a new column that
        then takes the old one's place. A row that does not read raises
        :class:`StorageError` naming the tenant (the caller rolls back).
        """
        connection.execute(f"ALTER TABLE {_PROFILES} ADD COLUMN packed bytea")
        row = "(%s, %s::bytea)"
        # All cursors are insensitive: this one reads the rows as they were.
        with connection.cursor(name="tenant_dna_upgrade") as rows:
            rows.execute(
                f"SELECT tenant_id, version, incarnation, dna FROM {_PROFILES}"
            )
            while batch := rows.fetchmany(_UPGRADE_BATCH):
                values: list[str | bytes] = []
                for tenant_id, version, incarnation, text in batch:
                    try:
                        record = parse_row(
                            self.name,
                            tenant_id,
                            version,
                            incarnation,
                            text,
                            profile=profile_from_json,
                        )
                    except StorageError as error:
                        msg = (
                            f"{error}; upgrading the database from schema 1 to "
                            f"{SCHEMA_VERSION} stopped, nothing was changed"
                        )
                        raise StorageError(msg) from error
                    values += (tenant_id, encode_stored(tenant_id, record.dna))
                connection.execute(
                    f"UPDATE {_PROFILES} AS p SET packed = u.packed "
                    f"FROM (VALUES {', '.join([row] * len(batch))}) "
                    "AS u(tenant_id, packed) WHERE p.tenant_id = u.tenant_id",
                    values,
                )
        connection.execute(
            f"ALTER TABLE {_PROFILES} DROP COLUMN dna; "
            f"ALTER TABLE {_PROFILES} RENAME COLUMN packed TO dna; "
            f"ALTER TABLE {_PROFILES} ALTER COLUMN dna SET NOT NULL; "
            f"UPDATE {_SCHEMA} SET version = {SCHEMA_VERSION}"
        )

    def _schema_state(self, connection: psycopg.Connection[Any]) -> int | None:
        """Our schema's version, or ``None`` for an empty database.

        Raises StorageError for anything else: a table named like ours that
        is not, a damaged or incomplete schema, a newer schema than
        :data:`SCHEMA_VERSION`.
        """
        names = {
            name
            for (name,) in connection.execute(
                "SELECT relname FROM pg_class WHERE relname = ANY(%s) "
                "AND relkind IN ('r', 'p', 'v', 'm', 'f') "
                "AND pg_table_is_visible(oid)",
                (list(_OURS),),
            ).fetchall()
        }
        if not names:
            return None
        if _SCHEMA not in names:
            msg = (
                f"{self.name}: holds a table named {sorted(names)[0]} that "
                f"tenant-dna did not create (there is no {_SCHEMA} table); "
                "refusing to touch it"
            )
            raise StorageError(msg)
        rows = connection.execute(f"SELECT version FROM {_SCHEMA}").fetchall()
        if len(rows) != 1 or not isinstance(rows[0][0], int) or rows[0][0] < 1:
            msg = f"{self.name}: its {_SCHEMA} table is damaged ({rows!r}); refusing it"
            raise StorageError(msg)
        version = rows[0][0]
        if version > SCHEMA_VERSION:
            msg = (
                f"{self.name}: written with tenant-dna storage schema version "
                f"{version}; this tenant-dna reads schema version {SCHEMA_VERSION} "
                "at most: upgrade tenant-dna to open it"
            )
            raise StorageError(msg)
        missing = sorted(set(_OURS) - names)
        if missing:
            msg = (
                f"{self.name}: an incomplete tenant-dna database (missing "
                f"{', '.join(missing)}); refusing to touch it"
            )
            raise StorageError(msg)
        return version

    def _open(self) -> _Shared:
        if self._shared is None:
            msg = f"{self.name}: this connection is closed"
            raise StorageError(msg)
        return self._shared

    def _borrow(self, shared: _Shared) -> psycopg.Connection[Any]:
        while True:
            try:
                connection = shared.idle.pop()
            except IndexError:
                return self._connect()
            if not _dead(connection):
                return connection
            with contextlib.suppress(psycopg.Error):
                connection.close()
            shared.close_idle()  # they died together: none is worth a look

    def _give_back(self, shared: _Shared, connection: psycopg.Connection[Any]) -> None:
        if (
            shared.open
            and len(shared.idle) < self.pool_size
            and not connection.broken
            and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        ):
            shared.idle.append(connection)
            return
        with contextlib.suppress(psycopg.Error):
            connection.close()

    @contextlib.contextmanager
    def _connection(self, what: str) -> Iterator[psycopg.Connection[Any]]:
        """A live connection for one operation; psycopg errors become StorageError."""
        shared = self._open()
        try:
            connection = self._borrow(shared)
        except psycopg.Error as error:
            raise self._error(what, error) from error
        try:
            yield connection
        except psycopg.Error as error:
            raise self._error(what, error) from error
        finally:
            self._give_back(shared, connection)

    def _read(
        self, what: str, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[Row]:
        with self._connection(what) as connection:
            return connection.execute(sql, parameters).fetchall()

    def _record(
        self, tenant_id: str, version: Any, incarnation: Any, stored: Any
    ) -> Record:
        return parse_row(
            self.name, tenant_id, version, incarnation, stored, profile=_profile
        )

    def _check_ids(self, tenant_ids: Iterable[str]) -> None:
        for tenant_id in tenant_ids:
            if not _storable(tenant_id):
                msg = (
                    f"{self.name}: tenant id {tenant_id!r} cannot be stored: "
                    "PostgreSQL text holds only UTF-8 without NUL"
                )
                raise StorageError(msg)

    # -- the interface -------------------------------------------------------

    def load(self, tenant_id: str) -> Record | None:
        """The tenant's record, or ``None``; one short read."""
        self._open()
        if not _storable(tenant_id):
            return None  # no such id can have been stored
        rows = self._read(
            f"loading tenant {tenant_id!r}",
            f"SELECT version, incarnation, dna FROM {_PROFILES} WHERE tenant_id = %s",
            (tenant_id,),
        )
        return self._record(tenant_id, *rows[0]) if rows else None

    def commit(self, changes: Sequence[Change]) -> list[Outcome]:
        """Apply ``changes`` in one transaction, as :meth:`Storage.commit` says.

        Profiles are validated and encoded before the server is asked
        (``dna.InvalidDNA`` naming the tenant, nothing written). The rows are
        locked in tenant-id order; a commit that meets one created meanwhile
        by another process starts over. Raises :class:`StorageError` if the
        transaction fails (nothing written) or its fate cannot be learnt.
        """
        self._open()
        self._check_ids(change.tenant_id for change in changes)
        bodies = [
            None if change.dna is None else encode(change.tenant_id, change.dna)
            for change in changes
        ]
        if not changes:
            return []
        what = f"the commit of {len(changes)} change(s)"
        # A commit starts over when another process created one of the
        # tenants it found absent, and that tenant is then present: so one
        # more attempt for each tenant it might create. Four processes giving
        # their first touches to one thousand tenants raced eight times in a
        # row (a commit of 225 changes failed).
        attempts = _RETRIES + sum(change.base_version == 0 for change in changes)
        for _ in range(attempts):
            try:
                with self._connection(f"{what}, nothing was written") as connection:
                    return self._commit_once(connection, changes, bodies)
            except _Raced:
                continue
            except _CommitLost as lost:
                return self._settle(what, lost)
            except StorageError as error:
                cause = error.__cause__
                if isinstance(
                    cause,
                    psycopg.errors.DeadlockDetected
                    | psycopg.errors.SerializationFailure,
                ):
                    continue
                raise
        msg = (
            f"{self.name}: {what} failed, nothing was written: other "
            f"transactions kept creating its tenants ({attempts} attempts)"
        )
        raise StorageError(msg)

    def _commit_once(
        self,
        connection: psycopg.Connection[Any],
        changes: Sequence[Change],
        bodies: list[bytes | None],
    ) -> list[Outcome]:
        # Two round trips: BEGIN, the transaction's id and the locking read
        # in one; the writes (the commonest in one statement that announces
        # itself) and COMMIT in the other, so rows stay locked for one.
        tenant_ids = sorted({change.tenant_id for change in changes})
        outcomes: list[Outcome] = []
        xid = ""
        committing = False
        cursor = psycopg.ClientCursor(connection)
        try:
            try:
                cursor.execute(
                    "BEGIN; SELECT pg_current_xact_id()::text; "
                    f"SELECT tenant_id, version, incarnation, dna FROM {_PROFILES} "
                    "WHERE tenant_id = ANY(%s::text[]) ORDER BY tenant_id FOR UPDATE",
                    (tenant_ids,),
                )
                cursor.nextset()
                ((xid,),) = cursor.fetchall()
                cursor.nextset()
                initial: dict[str, _Stored] = {
                    row[0]: (row[1], row[2], row[3]) for row in cursor.fetchall()
                }
                current: dict[str, _Stored | None] = {
                    tenant_id: initial.get(tenant_id) for tenant_id in tenant_ids
                }
                outcomes, erased = self._apply(changes, bodies, current)
                updated = [
                    (tenant_id, stored[0], stored[1])
                    for tenant_id, stored in current.items()
                    if stored is not None and stored is not initial.get(tenant_id)
                ]
                last = self._write(
                    connection,
                    tenant_ids,
                    initial,
                    current,
                    erased,
                    payload=_payload(updated, erased),
                )
                committing = True
                if last is None:  # nothing to write: end the transaction
                    cursor.execute("COMMIT")
                else:
                    cursor.execute(f"{last[0]}; COMMIT", last[1])
            except BaseException:
                if (
                    not connection.broken
                    and connection.info.transaction_status != TransactionStatus.IDLE
                ):
                    with contextlib.suppress(psycopg.Error):
                        connection.execute("ROLLBACK")
                raise
        except psycopg.OperationalError as error:
            if committing and xid and connection.broken:
                raise _CommitLost(xid, outcomes, error) from error
            raise
        finally:
            cursor.close()
        return outcomes

    def _apply(
        self,
        changes: Sequence[Change],
        bodies: list[bytes | None],
        current: dict[str, _Stored | None],
    ) -> tuple[list[Outcome], list[int]]:
        """Each change against the result of the one before; ``current`` updated."""
        outcomes: list[Outcome] = []
        erased: list[int] = []
        for change, given in zip(changes, bodies, strict=True):
            body = given
            tenant_id = change.tenant_id
            stored = current[tenant_id]
            base = (change.base_version, change.base_incarnation)
            rebase: TenantDNA | None = None
            if not change.force and base != (
                (0, 0) if stored is None else (stored[0], stored[1])
            ):
                record = None if stored is None else self._record(tenant_id, *stored)
                again = rebased(change, record, encode)
                if again is None:
                    outcomes.append(Conflict(record))
                    continue
                rebase, body = again
            if body is None:
                if stored is not None:
                    erased.append(stored[1])
                current[tenant_id] = None
                outcomes.append(Committed(0, 0))
                continue
            if stored is None:
                version, incarnation = 1, new_incarnation()
            else:
                version, incarnation = stored[0] + 1, stored[1]
            current[tenant_id] = (version, incarnation, body)
            outcomes.append(Committed(version, incarnation, rebase))
        return outcomes, erased

    @staticmethod
    def _write(
        connection: psycopg.Connection[Any],
        tenant_ids: list[str],
        initial: dict[str, _Stored],
        current: dict[str, _Stored | None],
        erased: list[int],
        *,
        payload: str,
    ) -> tuple[str, tuple[Any, ...]] | None:
        """Write the net result but its last statement, which announces it.

        That statement (query, parameters) is returned for the caller to send
        with ``COMMIT``; ``None`` if nothing is written (nor announced).
        Raises _Raced if a tenant was created meanwhile.
        """
        updates: list[tuple[str, _Stored, _Stored]] = []
        inserts: list[tuple[str, _Stored]] = []
        deletes: list[str] = []
        for tenant_id in tenant_ids:  # sorted: rows are taken in one order
            before, after = initial.get(tenant_id), current[tenant_id]
            if after is before:
                continue
            if after is None:
                deletes.append(tenant_id)
            elif before is None:
                inserts.append((tenant_id, after))
            else:
                updates.append((tenant_id, before, after))
        if inserts:
            # Rows of values, not arrays (see the update below); in tenant-id
            # order, as they were locked.
            row = "(%s, %s::bigint, %s::bigint, %s)"
            created = connection.execute(
                f"INSERT INTO {_PROFILES} (tenant_id, version, incarnation, xid, dna) "
                f"SELECT u.tenant_id, u.version, u.incarnation, {_XID}, u.dna "
                f"FROM (VALUES {', '.join([row] * len(inserts))}) "
                "AS u(tenant_id, version, incarnation, dna) "
                'ORDER BY u.tenant_id COLLATE "C" '
                "ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id",
                tuple(
                    value
                    for tenant_id, stored in inserts
                    for value in (tenant_id, *stored)
                ),
            ).fetchall()
            if len(created) != len(inserts):
                raise _Raced
        announce = "SELECT pg_notify(%s, %s)"
        if updates:
            # The rows are locked (FOR UPDATE, this transaction), so every one
            # is written; the commonest commit announces itself in the same
            # statement, sent with COMMIT.
            # A row of values per change, not arrays: chosen when profiles
            # were JSON text, whose quotes an array literal escapes one by one
            # (a quarter of a commit's CPU). A packed profile renders as
            # '\x…'::bytea as cheaply as its JSON did (8 µs a row of 1,000);
            # arrays of them measured 3.8 µs a row, untried end to end.
            row = "(%s, %s::bigint, %s::bigint, %s::bigint, %s::bigint, %s)"
            update = (
                f"UPDATE {_PROFILES} AS p SET version = u.new_version, "
                f"incarnation = u.new_incarnation, dna = u.dna, xid = {_XID} "
                f"FROM (VALUES {', '.join([row] * len(updates))}) "
                "AS u(tenant_id, version, incarnation, new_version, "
                "new_incarnation, dna) "
                "WHERE p.tenant_id = u.tenant_id AND p.version = u.version "
                "AND p.incarnation = u.incarnation"
            )
            values = tuple(
                value
                for tenant_id, before, after in updates
                for value in (tenant_id, *before[:2], *after)
            )
            if not (deletes or erased):
                return (
                    f"WITH written AS ({update} RETURNING 1) {announce}",
                    (*values, CHANNEL, payload),
                )
            connection.execute(update, values)
        if deletes:
            connection.execute(
                f"DELETE FROM {_PROFILES} WHERE tenant_id = ANY(%s::text[])",
                (deletes,),
            )
        if erased:
            connection.execute(
                f"INSERT INTO {_ERASURES} (xid, incarnation) "
                f"SELECT {_XID}, unnest(%s::bigint[])",
                (erased,),
            )
            PostgresStorage._prune(connection)
        if not (updates or inserts or deletes or erased):
            return None
        return announce, (CHANNEL, payload)

    @staticmethod
    def _prune(connection: psycopg.Connection[Any]) -> None:
        # One pruner at a time, and nobody waits: a commit that finds another
        # one at work skips, and a later commit prunes. The floor rises in the
        # same transaction as the entries go, so no snapshot sees one without
        # the other.
        ((free,),) = connection.execute(
            "SELECT pg_try_advisory_xact_lock(%s)", (_PRUNE_LOCK,)
        ).fetchall()
        if not free:
            return
        connection.execute(
            f"WITH gone AS (DELETE FROM {_ERASURES} WHERE id <= "
            f"(SELECT max(id) FROM {_ERASURES}) - %s RETURNING xid) "
            f"UPDATE {_META} SET value = greatest(value, "
            "(SELECT max(xid) + 1 FROM gone)) "
            "WHERE key = 'erasure_floor' AND EXISTS (SELECT FROM gone)",
            (ERASURE_LOG,),
        )

    def _settle(self, what: str, lost: _CommitLost) -> list[Outcome]:
        """Whether a commit whose reply was lost was written, from the server."""
        deadline = time.monotonic() + self.connect_timeout
        status: str | None = None
        while True:
            try:
                with self._connection("looking up a lost commit") as connection:
                    ((status,),) = connection.execute(
                        "SELECT pg_xact_status(%s::xid8)", (lost.xid,)
                    ).fetchall()
            except StorageError:
                status = None
            if status == "committed":
                return lost.outcomes
            if status == "aborted":
                msg = (
                    f"{self.name}: {what} failed, nothing was written: the "
                    f"connection was lost during COMMIT "
                    f"({self._describe(lost.error)}) and the server rolled it back"
                )
                raise StorageError(msg) from lost.error
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        msg = (
            f"{self.name}: {what} failed: the connection was lost during COMMIT "
            f"({self._describe(lost.error)}) and the server could not say within "
            f"{self.connect_timeout} s whether transaction {lost.xid} was written "
            f"(last status: {status})"
        )
        raise CommitOutcomeUnknown(msg) from lost.error

    def tenants(self) -> list[str]:
        """Every stored tenant id, sorted by code point; one read."""
        rows = self._read(
            "listing tenants", f"SELECT tenant_id FROM {_PROFILES} ORDER BY tenant_id"
        )
        return [tenant_id for (tenant_id,) in rows]

    def count(self) -> int:
        """How many tenants are stored (``count(*)``: no counter row to contend on)."""
        rows = self._read("counting tenants", f"SELECT count(*) FROM {_PROFILES}")
        count: int = rows[0][0]
        return count

    def _batches(self, batch: int) -> Iterator[Row]:
        after: str | None = None
        while True:
            if after is None:
                rows = self._read(
                    "scanning",
                    f"SELECT tenant_id, version, incarnation, dna FROM {_PROFILES} "
                    "ORDER BY tenant_id LIMIT %s",
                    (batch,),
                )
            else:
                rows = self._read(
                    "scanning",
                    f"SELECT tenant_id, version, incarnation, dna FROM {_PROFILES} "
                    "WHERE tenant_id > %s ORDER BY tenant_id LIMIT %s",
                    (after, batch),
                )
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def scan(self, batch: int = 1000) -> Iterator[tuple[str, Record]]:
        """Every ``(tenant_id, record)`` by tenant id, reading ``batch`` rows a read.

        Each read borrows a connection for one statement: a scan holds no
        connection or snapshot between batches, and may see a tenant written
        meanwhile in either state. Raises ``ValueError`` if ``batch < 1``.
        """
        if batch < 1:
            msg = f"batch: expected a positive int, got {batch!r}"
            raise ValueError(msg)
        self._open()
        for row in self._batches(batch):
            yield row[0], self._record(*row)

    def restore(self, records: Sequence[tuple[str, Record]]) -> None:
        """Write records exactly as given in one transaction, overwriting.

        Raises ``ValueError`` for a version below 1 or an incarnation outside
        ``1 .. 2**63 - 1`` and ``dna.InvalidDNA`` for an invalid profile, each
        naming the tenant; then nothing is written. A tenant given twice
        takes its last record. Like :meth:`commit`, a restore whose COMMIT
        reply was lost asks the server whether it was written
        (:class:`CommitOutcomeUnknown` if it cannot say in time).
        """
        self._open()
        self._check_ids(tenant_id for tenant_id, _ in records)
        rows = {
            tenant_id: _checked_record(tenant_id, record)
            for tenant_id, record in records
        }
        if not rows:
            return
        what = f"restoring {len(rows)} record(s)"
        try:
            with self._connection(f"{what}, nothing was written") as connection:
                self._restore_once(connection, rows)
        except _CommitLost as lost:
            # Its COMMIT went out and no answer came back: the server says.
            self._settle(what, lost)

    def _restore_once(
        self, connection: psycopg.Connection[Any], rows: dict[str, _Stored]
    ) -> None:
        xid = ""
        committing = False
        try:
            with connection.transaction():
                ((xid,),) = connection.execute(
                    "SELECT pg_current_xact_id()::text"
                ).fetchall()
                self._restore_rows(connection, rows)
                committing = True  # the block's end sends COMMIT
        except psycopg.OperationalError as error:
            if committing and xid and connection.broken:
                raise _CommitLost(xid, [], error) from error
            raise

    @staticmethod
    def _restore_rows(
        connection: psycopg.Connection[Any], rows: dict[str, _Stored]
    ) -> None:
        # Rows replaced (locked, in one order) and lives erased: see
        # restored_incarnation.
        present = {
            tenant_id: (version, incarnation)
            for tenant_id, version, incarnation in connection.execute(
                f"SELECT tenant_id, version, incarnation FROM {_PROFILES} "
                "WHERE tenant_id = ANY(%s::text[]) ORDER BY tenant_id FOR UPDATE",
                (sorted(rows),),
            ).fetchall()
        }
        erased = {
            incarnation
            for (incarnation,) in connection.execute(
                f"SELECT incarnation FROM {_ERASURES}"
            ).fetchall()
        }
        ordered = [
            (
                tenant_id,
                (
                    version,
                    restored_incarnation(
                        version, given, present.get(tenant_id), erased
                    ),
                    body,
                ),
            )
            for tenant_id, (version, given, body) in sorted(rows.items())
        ]
        payload = _payload(
            [(tenant_id, stored[0], stored[1]) for tenant_id, stored in ordered],
            [],
        )
        connection.execute(
            f"INSERT INTO {_PROFILES} (tenant_id, version, incarnation, xid, dna) "
            f"SELECT u.tenant_id, u.version, u.incarnation, {_XID}, u.dna "
            "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bytea[]) "
            "WITH ORDINALITY AS u(tenant_id, version, incarnation, dna, n) "
            "ORDER BY u.n ON CONFLICT (tenant_id) DO UPDATE SET "
            "version = excluded.version, incarnation = excluded.incarnation, "
            "xid = excluded.xid, dna = excluded.dna",
            (
                [tenant_id for tenant_id, _ in ordered],
                [stored[0] for _, stored in ordered],
                [stored[1] for _, stored in ordered],
                [stored[2] for _, stored in ordered],
            ),
        )
        connection.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def cursor(self) -> int:
        """The oldest transaction still running: every one before it has ended."""
        rows = self._read(
            "reading the commit position",
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint",
        )
        cursor: int = rows[0][0]
        return cursor

    def changes_since(self, cursor: int) -> Changes:
        """What any connection, on any machine, committed after ``cursor``.

        One statement, so one snapshot; the cost grows with the changes since
        the cursor (and with any long transaction running meanwhile), not with
        the tenants stored.
        """
        rows = self._read(
            "reading changes",
            "SELECT 0 AS kind, NULL::text, "
            "pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint, "
            f"(SELECT value FROM {_META} WHERE key = 'erasure_floor'), 0::bigint "
            "FROM pg_current_snapshot() AS s "
            "UNION ALL "
            "SELECT 1, tenant_id, version, incarnation, NULL, 0 "
            f"FROM {_PROFILES} WHERE xid >= %(cursor)s "
            "UNION ALL "
            f"SELECT 2, NULL, incarnation, NULL, NULL, id FROM {_ERASURES} "
            "WHERE xid >= %(cursor)s "
            "ORDER BY 1, 6",
            {"cursor": cursor},
        )
        _, _, now, horizon, floor, _ = rows[0]
        return Changes(
            int(now),
            [(str(t), int(v), int(i)) for kind, t, v, i, _, _ in rows if kind == 1],
            [int(incarnation) for kind, _, incarnation, *_ in rows if kind == 2],
            # A cursor past the transactions begun comes from another server,
            # or from before this database was restored from a copy.
            int(floor) <= cursor <= int(horizon),
        )

    def check(self) -> list[str]:
        """Our tables and every stored row read back; problems, one line each."""
        problems: list[str] = []
        try:
            with self._connection("the integrity check") as connection:
                self._schema_state(connection)
            for row in self._batches(1000):
                try:
                    self._record(*row)
                except StorageError as error:
                    problems.append(str(error))
        except StorageError as error:
            return [*problems, str(error)]
        return problems

    def clone(self) -> PostgresStorage:
        """Another handle for another thread, sharing idle connections (none made)."""
        shared = self._open()
        clone = PostgresStorage.__new__(PostgresStorage)
        clone.url = self.url
        clone.name = self.name
        clone._secrets = self._secrets
        clone.connect_timeout = self.connect_timeout
        clone.pool_size = self.pool_size
        clone._kwargs = self._kwargs
        clone._shared = shared
        clone._listener = None
        clone._token = object()
        shared.open.add(clone._token)
        return clone

    def wait_for_changes(self, timeout: float) -> Announced | None:
        """Wait up to ``timeout`` s for commits by anyone: what they changed.

        Listens on a connection of its own, opened by the first call, which
        returns at once an incomplete :class:`~storage.Announced`: nothing
        was heard before, so anything may have changed. Later calls return as
        soon as a commit is announced, with every announcement already
        received (incomplete if one was :data:`STALE` or unreadable), ``None``
        after ``timeout`` without one. A lost connection is reopened, and the
        call that reopens it returns an incomplete one: announcements sent
        meanwhile are lost for good. While the server cannot be reached the
        call waits out its timeout and returns ``None``. Raises ``ValueError``
        for a negative timeout, :class:`StorageError` after :meth:`close`.
        """
        if not timeout >= 0:
            msg = f"timeout: expected seconds >= 0, got {timeout!r}"
            raise ValueError(msg)
        self._open()
        deadline = time.monotonic() + timeout
        listener = self._listener
        if listener is not None:
            try:
                heard = list(listener.notifies(timeout=timeout, stop_after=1))
                if heard:
                    # Announcements that came together are one wake-up.
                    heard += listener.notifies(timeout=0.0)
                    return _announced(notify.payload for notify in heard)
                if not listener.broken:
                    return None
            except psycopg.Error:
                pass
            self._close_listener()
        while True:
            remaining = deadline - time.monotonic()
            try:
                listener = self._connect(timeout=max(remaining, 0.0))
            except psycopg.Error:
                listener = None
            if listener is not None:
                try:
                    listener.execute(f"LISTEN {CHANNEL}")
                except psycopg.Error:
                    with contextlib.suppress(psycopg.Error):
                        listener.close()
                    listener = None
            if listener is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                time.sleep(min(0.1, remaining))
                continue
            self._listener = listener
            return Announced([], [], complete=False)

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(psycopg.Error):
                listener.close()

    def close(self) -> None:
        """Close this handle (and its listener); idempotent.

        The idle connections close with the last of the object and its
        clones. Never raises for the server's own failures.
        """
        shared, self._shared = self._shared, None
        self._close_listener()
        if shared is None:
            return
        shared.open.discard(self._token)
        if not shared.open:
            shared.close_idle()
