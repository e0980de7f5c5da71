"""Profiles in an SQLite file: the embedded backend, on the standard library's sqlite3.

Guarantees:

* **Durable commits.** A commit returns only after its transaction is in the
  WAL with ``synchronous=FULL``: it survives ``kill -9`` and power loss, and a
  file killed at any moment opens and passes ``PRAGMA integrity_check``.
* **Several processes share a file.** Writes take the database's write lock
  up front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout`` for it, so a
  compare-and-set never reads one version and writes over another. Every read
  is one short transaction whose rows are fetched at once.
* **Nothing half-written.** A commit that fails (disk full, file-size limit,
  read-only file, I/O error, a lock never granted) rolls back and raises
  :class:`StorageError`; the connection serves later commits.
* **Erasure leaves no bytes.** ``secure_delete`` zeroes what SQLite frees, but
  not the stale copies of cells that page rebalancing leaves in a page's unused
  space (measured: one erased tenant id in 500 survived a churned file). So
  profiles are spread over :data:`SHARDS` tables by a hash of the tenant id,
  and a commit that erases also empties and refills the shards it touched —
  emptying a table gives back and zeroes every page it had. After the commit a
  ``wal_checkpoint(TRUNCATE)`` empties the WAL, which still held the old pages;
  if readers keep it busy past ``busy_timeout``, :class:`ScrubIncomplete` says
  so (the commit itself stands). The erasure log keeps erased incarnations
  (random numbers), never tenant ids.
* **Opening refuses what is not ours, untouched.** A missing or unwritable
  folder, a file that is not SQLite, an SQLite file holding other tables than
  ours, a file written by a newer schema: :class:`StorageError` naming the path
  (and both schema versions), with the file left byte for byte as it was — it
  is inspected read-only before anything is created or switched to WAL.
* **Older files open.** A file of schema 1 (profiles as JSON text) is
  upgraded to :data:`SCHEMA_VERSION` when it is opened, in one transaction:
  from then on a tenant-dna that reads schema 1 at most refuses to open it,
  naming both versions. Its JSON rows are read as they are, and replaced by
  packed ones as their tenants are written.
* Profiles are stored packed (a BLOB: :mod:`storage._packed`, as the memory
  backend keeps them), validated on the way in (``dna.InvalidDNA``) and on
  the way out: a stored profile that does not unpack, or holds a value
  ``dna.check_profile`` refuses, raises :class:`StorageError` naming the
  tenant (and so does a schema-1 JSON row that ``TenantDNA.from_dict``
  refuses).
"""

from __future__ import annotations

import contextlib
import heapq
import os
import sqlite3
import stat
import time
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from dna import TenantDNA
from storage._base import (
    Change,
    Changes,
    Committed,
    Conflict,
    Outcome,
    Record,
    Storage,
    StorageError,
)
from storage._packed import decode_checked, encode
from storage._records import (
    checked_ids,
    new_incarnation,
    parse_row,
    profile_from_json,
    rebased,
    restored_incarnation,
)

SCHEMA_VERSION: Final = 2
"""The layout this code writes; a file of a newer one is refused.

1: profiles as JSON text. 2: profiles packed, in BLOBs (a file upgraded from 1
keeps its columns declared ``TEXT``: SQLite stores a BLOB there as it is).
"""

SHARDS: Final = 64
"""Profile tables. An erasure rewrites one of them: 1/64 of the tenants."""

ERASURE_LOG: Final = 10_000
"""Erasures kept for ``changes_since``: an older cursor gets ``complete=False``."""

BUSY_TIMEOUT: Final = 5.0
"""Seconds a statement waits for another connection's lock before failing."""

WAL_RETRY: Final = 0.005
"""Seconds between tries to turn a file to WAL while another holds its lock."""

_HEADER: Final = b"SQLite format 3\x00"
_SCHEMA: Final = "tenant_dna_schema"
_META: Final = "tenant_dna_meta"
_ERASURES: Final = "tenant_dna_erasures"
_TABLES: Final = tuple(f"tenant_dna_profiles_{shard:02x}" for shard in range(SHARDS))
_OURS: Final = frozenset(
    (
        _SCHEMA,
        _META,
        _ERASURES,
        f"{_ERASURES}_sequence",
        *_TABLES,
        *(f"{table}_sequence" for table in _TABLES),
    )
)
_FIELDS: Final = "tenant_id, version, incarnation, dna"
# A commit's usual changes (see SQLiteStorage._write_on_bases), by table.
_CREATE_ON_NOTHING: Final = (
    "INSERT INTO {table} (tenant_id, version, incarnation, sequence, dna) "
    "VALUES (?, 1, ?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING"
)
_UPDATE_ON_BASE: Final = (
    "UPDATE {table} SET version = ?, sequence = ?, dna = ? "
    "WHERE tenant_id = ? AND version = ? AND incarnation = ?"
)
_LOAD: Final = {
    table: f"SELECT {_FIELDS} FROM {table} WHERE tenant_id = ?" for table in _TABLES
}

Row = tuple[Any, ...]


class ScrubIncomplete(StorageError):
    """The commit was written, but bytes of what it erased may remain for now.

    Raised by :meth:`SQLiteStorage.commit` when the checkpoint that empties the
    WAL after an erasure stays busy (other connections reading) past the busy
    timeout. The erasure itself is committed: ``outcomes`` holds the commit's
    outcomes, exactly as ``commit`` would have returned them. The checkpoint is
    tried again after every later commit and on ``close``.
    """

    def __init__(self, message: str, outcomes: list[Outcome]) -> None:
        super().__init__(message)
        self.outcomes = outcomes


def _table(tenant_id: str) -> str:
    # crc32, not hash(): every process must pick the same shard.
    return _TABLES[zlib.crc32(tenant_id.encode("utf-8")) % SHARDS]


def _create_statements() -> list[str]:
    statements = [
        f"CREATE TABLE {_SCHEMA} (version INTEGER NOT NULL)",
        f"CREATE TABLE {_META} (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        f"CREATE TABLE {_ERASURES} (id INTEGER PRIMARY KEY, "
        "sequence INTEGER NOT NULL, incarnation INTEGER NOT NULL)",
        f"CREATE INDEX {_ERASURES}_sequence ON {_ERASURES} (sequence)",
        f"INSERT INTO {_SCHEMA} (version) VALUES ({SCHEMA_VERSION})",
        f"INSERT INTO {_META} (key, value) VALUES "
        "('sequence', 0), ('erasure_floor', 0), ('tenants', 0)",
    ]
    for table in _TABLES:
        statements += [
            f"CREATE TABLE {table} (tenant_id TEXT PRIMARY KEY NOT NULL, "
            "version INTEGER NOT NULL, incarnation INTEGER NOT NULL, "
            "sequence INTEGER NOT NULL, dna BLOB NOT NULL) WITHOUT ROWID",
            f"CREATE INDEX {table}_sequence ON {table} (sequence)",
        ]
    return statements


def _schema_state(connection: sqlite3.Connection, path: str) -> int | None:
    """Our schema's version, or ``None`` for an empty database.

    Raises StorageError for anything else: another application's tables, a
    damaged or incomplete schema, a newer schema than :data:`SCHEMA_VERSION`.
    """
    names = {
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type IN "
            "('table', 'index', 'view', 'trigger')"
        ).fetchall()
        if not name.startswith("sqlite_")
    }
    if not names:
        return None
    version = 0
    if _SCHEMA in names:
        rows = connection.execute(f"SELECT version FROM {_SCHEMA}").fetchall()
        if len(rows) != 1 or not isinstance(rows[0][0], int) or rows[0][0] < 1:
            msg = f"{path}: its {_SCHEMA} table is damaged ({rows!r}); refusing it"
            raise StorageError(msg)
        version = rows[0][0]
        if version > SCHEMA_VERSION:
            msg = (
                f"{path}: written with tenant-dna storage schema version {version}; "
                f"this tenant-dna reads schema version {SCHEMA_VERSION} at most: "
                "upgrade tenant-dna to open it"
            )
            raise StorageError(msg)
    foreign = sorted(names - _OURS)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        msg = (
            f"{path}: an SQLite database holding tables that are not tenant-dna's "
            f"({shown}); refusing to touch it"
        )
        raise StorageError(msg)
    missing = sorted(_OURS - names)
    if missing:
        msg = (
            f"{path}: an incomplete tenant-dna database (missing {missing[0]}"
            f"{', ...' if len(missing) > 1 else ''}); refusing to touch it"
        )
        raise StorageError(msg)
    return version


def _inspect(path: str, busy_timeout: float) -> None:
    """Refuse, touching nothing, a path that cannot hold our database."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        msg = f"{path}: the folder {folder} does not exist"
        raise StorageError(msg)
    if not os.access(folder, os.W_OK | os.X_OK):
        msg = (
            f"{path}: the folder {folder} is not writable (SQLite keeps its -wal "
            "and -shm files beside the database)"
        )
        raise StorageError(msg)
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as error:
        msg = f"{path}: cannot be examined: {error}"
        raise StorageError(msg) from error
    if not stat.S_ISREG(status.st_mode):
        msg = f"{path}: not a regular file"
        raise StorageError(msg)
    if not os.access(path, os.R_OK | os.W_OK):
        msg = f"{path}: not readable and writable by this process"
        raise StorageError(msg)
    if status.st_size == 0:
        return  # SQLite's own view of a zero-length file: an empty database
    try:
        with open(path, "rb") as file:
            header = file.read(100)
    except OSError as error:
        msg = f"{path}: cannot be read: {error}"
        raise StorageError(msg) from error
    if len(header) < 100 or not header.startswith(_HEADER):
        msg = f"{path}: not an SQLite database; refusing to touch it"
        raise StorageError(msg)
    # Without a -wal file the main file holds everything, and immutable=1
    # reads it with no lock and no file created. With one, mode=ro reads the
    # WAL too and writes nothing to the database file.
    mode = "ro" if os.path.exists(path + "-wal") else "ro&immutable=1"
    # Quoted as bytes: a name need not be UTF-8 (POSIX names are bytes).
    uri = f"file:{urllib.parse.quote(os.fsencode(path))}?mode={mode}"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout)
    except sqlite3.Error as error:
        msg = f"{path}: cannot be opened read-only: {error}"
        raise StorageError(msg) from error
    try:
        _schema_state(connection, path)
    except sqlite3.Error as error:
        msg = f"{path}: not a readable SQLite database ({error}); refusing to touch it"
        raise StorageError(msg) from error
    finally:
        connection.close()


def _pragma(connection: sqlite3.Connection, setting: str) -> list[Row]:
    return connection.execute(f"PRAGMA {setting}").fetchall()


def _wal(connection: sqlite3.Connection, busy_timeout: float) -> list[Row]:
    """``journal_mode = WAL``, waited for as long as any statement would be.

    Turning a fresh file to WAL needs its lock, and SQLite answers "database
    is locked" at once rather than calling the busy handler: processes
    opening one new file at the same moment failed (3 runs in 6 here, with 6
    processes).
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            return _pragma(connection, "journal_mode = WAL")
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(WAL_RETRY)


CACHE_KIB: Final = 1024
"""Pages each connection keeps in memory, in KiB (``PRAGMA cache_size``)."""


def _configure(connection: sqlite3.Connection, path: str, busy_timeout: float) -> None:
    """Set every pragma we rely on: build defaults differ between machines."""
    _pragma(connection, f"busy_timeout = {round(busy_timeout * 1000)}")
    mode = _wal(connection, busy_timeout)
    if mode != [("wal",)]:
        msg = f"{path}: SQLite refused WAL mode here (journal_mode is {mode!r})"
        raise StorageError(msg)
    for setting in (
        "synchronous = FULL",  # a commit is on disk when it returns
        "secure_delete = ON",  # FAST leaves bytes on freelist pages
        "temp_store = MEMORY",  # sorts never spill tenant ids into temp files
        "locking_mode = NORMAL",  # other processes share the file
        "mmap_size = 0",  # an I/O error is an error, not SIGBUS
        "cell_size_check = ON",
        "foreign_keys = OFF",
        "trusted_schema = OFF",
        "recursive_triggers = OFF",
        "query_only = OFF",
        "wal_autocheckpoint = 1000",
        "journal_size_limit = 67108864",
        # Per connection, and a store has several (its actors', its writer's,
        # those its callers read through): 16 reading threads with one each
        # held 145 MiB at 8 MiB. At a million tenants 1 MiB was as fast.
        f"cache_size = -{CACHE_KIB}",
    ):
        _pragma(connection, setting)
    if _pragma(connection, "synchronous") != [(2,)] or _pragma(
        connection, "secure_delete"
    ) != [(1,)]:
        msg = f"{path}: SQLite did not take synchronous=FULL and secure_delete=ON"
        raise StorageError(msg)


def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    """A configured connection to our database, created if the file is empty."""
    try:
        connection = sqlite3.connect(
            path,
            timeout=busy_timeout,
            isolation_level=None,  # we begin transactions ourselves
            check_same_thread=False,  # one thread at a time, not always the same
        )
    except sqlite3.Error as error:  # a link to a folder that is not there
        msg = f"{path}: cannot be opened: {error}"
        raise StorageError(msg) from error
    try:
        _pragma(connection, f"busy_timeout = {round(busy_timeout * 1000)}")
        # Checked again on the real connection before anything is written: the
        # file may have changed since it was inspected.
        version = _schema_state(connection, path)
        if version is None:
            # Only a database with no page yet takes these; set before WAL.
            _pragma(connection, "page_size = 4096")
            _pragma(connection, "auto_vacuum = NONE")
        _configure(connection, path, busy_timeout)
        if version != SCHEMA_VERSION:
            connection.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have created or upgraded it since we looked.
                version = _schema_state(connection, path)
                if version is None:
                    for statement in _create_statements():
                        connection.execute(statement)
                elif version < SCHEMA_VERSION:
                    # From 1: the dna columns take BLOBs as they are declared.
                    connection.execute(
                        f"UPDATE {_SCHEMA} SET version = {SCHEMA_VERSION}"
                    )
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
    except sqlite3.Error as error:
        connection.close()
        msg = f"{path}: cannot be opened as a tenant-dna database: {error}"
        raise StorageError(msg) from error
    except BaseException:
        connection.close()
        raise
    return connection


def _profile(tenant_id: str, stored: Any) -> TenantDNA:
    """A stored profile: packed, or the JSON text of a row from schema 1."""
    if type(stored) is bytes:
        return decode_checked(tenant_id, stored)
    return profile_from_json(tenant_id, stored)


class SQLiteStorage(Storage):
    """Versioned profile records in one SQLite file, through one connection.

    ``SQLiteStorage(path)`` opens the file, creating it (and our tables) if it
    is missing or empty; raises :class:`StorageError` naming the path if the
    folder is missing or not writable, or the file is not ours (see the
    module's guarantees). Every method raises :class:`StorageError` naming the
    path when SQLite fails, and after :meth:`close`.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        if not busy_timeout > 0:
            msg = f"busy_timeout: expected seconds > 0, got {busy_timeout!r}"
            raise ValueError(msg)
        self.path = os.path.abspath(os.fspath(path))
        self.name = self.path
        self.busy_timeout = busy_timeout
        _inspect(self.path, busy_timeout)
        self._connection: sqlite3.Connection | None = _connect(self.path, busy_timeout)
        self._scrub_pending = False

    # -- plumbing ------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            msg = f"{self.name}: this connection is closed"
            raise StorageError(msg)
        return self._connection

    def _read(self, what: str, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        # fetchall: a statement left half-stepped would hold its read
        # transaction open, and with it every checkpoint.
        try:
            return self._db().execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            msg = f"{self.name}: {what} failed: {error}"
            raise StorageError(msg) from error

    @contextlib.contextmanager
    def _transaction(
        self, what: str, begin: str = "BEGIN IMMEDIATE"
    ) -> Iterator[sqlite3.Connection]:
        db = self._db()
        try:
            db.execute(begin)
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as error:
            self._rollback(db)
            written = ", nothing was written" if begin == "BEGIN IMMEDIATE" else ""
            msg = f"{self.name}: {what} failed{written}: {error}"
            raise StorageError(msg) from error
        except BaseException:
            self._rollback(db)
            raise

    @staticmethod
    def _rollback(db: sqlite3.Connection) -> None:
        if db.in_transaction:
            # SQLite may have rolled back already (SQLITE_FULL, I/O errors).
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")

    def _record(
        self, tenant_id: str, version: Any, incarnation: Any, stored: Any
    ) -> Record:
        return parse_row(
            self.name, tenant_id, version, incarnation, stored, profile=_profile
        )

    def _tables_for(self, tenant_ids: Iterable[str]) -> dict[str, str]:
        tables: dict[str, str] = {}
        for tenant_id in tenant_ids:
            try:
                tables[tenant_id] = _table(tenant_id)
            except (UnicodeEncodeError, AttributeError) as error:
                msg = f"{self.name}: tenant id {tenant_id!r} cannot be stored: {error}"
                raise StorageError(msg) from error
        return tables

    # -- the interface -------------------------------------------------------

    def load(self, tenant_id: str) -> Record | None:
        """The tenant's record, or ``None``; one short read."""
        try:
            table = _table(tenant_id)
        except UnicodeEncodeError:
            return None  # no such id can have been stored
        # As _read does, with the message made only for a failure: a store
        # loads every tenant it has not in memory, absent ones included.
        try:
            rows = self._db().execute(_LOAD[table], (tenant_id,)).fetchall()
        except sqlite3.Error as error:
            msg = f"{self.name}: loading tenant {tenant_id!r} failed: {error}"
            raise StorageError(msg) from error
        return self._record(*rows[0]) if rows else None

    def commit(self, changes: Sequence[Change]) -> list[Outcome]:
        """Apply ``changes`` in one transaction, as :meth:`Storage.commit` says.

        Profiles are validated and encoded before the write lock is taken
        (``dna.InvalidDNA`` naming the tenant, nothing written). A commit that
        erased anything empties the WAL before returning (see
        :class:`ScrubIncomplete`).
        """
        self._db()
        tables = self._tables_for(change.tenant_id for change in changes)
        bodies = [
            None if change.dna is None else encode(change.tenant_id, change.dna)
            for change in changes
        ]
        if not changes:
            return []
        scrubbed: set[str] = set()
        with self._transaction(f"the commit of {len(changes)} change(s)") as db:
            outcomes = self._apply(db, changes, tables, bodies, scrubbed)
        # An erasure of a tenant already gone empties the WAL too: the one
        # that removed it may have been stopped (killed, or ScrubIncomplete
        # in another process) before its old pages left the WAL.
        if scrubbed or self._scrub_pending or None in bodies:
            self._scrub_pending = True
            self._checkpoint(outcomes)
        return outcomes

    def _apply(
        self,
        db: sqlite3.Connection,
        changes: Sequence[Change],
        tables: dict[str, str],
        bodies: list[bytes | None],
        scrubbed: set[str],
    ) -> list[Outcome]:
        meta = dict(
            db.execute(
                f"SELECT key, value FROM {_META} WHERE key IN ('sequence', 'tenants')"
            ).fetchall()
        )
        sequence = meta["sequence"] + 1
        tenants = meta["tenants"]
        # tenant id -> (version, incarnation, stored profile), or None: absent
        current: dict[str, Row | None] = {}
        outcomes: list[Outcome | None] = [None] * len(changes)
        written = self._write_on_bases(db, changes, tables, bodies, sequence)
        wrote = bool(written)
        for index, (version, incarnation) in written.items():
            change = changes[index]
            if change.base_version == 0:
                tenants += 1
            current[change.tenant_id] = (version, incarnation, bodies[index])
            outcomes[index] = Committed(version, incarnation)
        for index, (change, given) in enumerate(zip(changes, bodies, strict=True)):
            if index in written:
                continue
            body = given
            tenant_id = change.tenant_id
            table = tables[tenant_id]
            if tenant_id not in current:
                rows = db.execute(
                    f"SELECT version, incarnation, dna FROM {table} "
                    "WHERE tenant_id = ?",
                    (tenant_id,),
                ).fetchall()
                current[tenant_id] = rows[0] if rows else None
            stored = current[tenant_id]
            base = (change.base_version, change.base_incarnation)
            rebase: TenantDNA | None = None
            if not change.force and base != (
                (0, 0) if stored is None else (stored[0], stored[1])
            ):
                record = None if stored is None else self._record(tenant_id, *stored)
                again = rebased(change, record, encode)
                if again is None:
                    outcomes[index] = Conflict(record)
                    continue
                rebase, body = again
            if body is None:
                if stored is not None:
                    db.execute(f"DELETE FROM {table} WHERE tenant_id = ?", (tenant_id,))
                    db.execute(
                        f"INSERT INTO {_ERASURES} (sequence, incarnation) "
                        "VALUES (?, ?)",
                        (sequence, stored[1]),
                    )
                    tenants -= 1
                    scrubbed.add(table)
                    wrote = True
                current[tenant_id] = None
                outcomes[index] = Committed(0, 0)
                continue
            if stored is None:
                version, incarnation = 1, new_incarnation()
                db.execute(
                    f"INSERT INTO {table} (tenant_id, version, incarnation, "
                    "sequence, dna) VALUES (?, ?, ?, ?, ?)",
                    (tenant_id, version, incarnation, sequence, body),
                )
                tenants += 1
            else:
                version, incarnation = stored[0] + 1, stored[1]
                db.execute(
                    f"UPDATE {table} SET version = ?, sequence = ?, dna = ? "
                    "WHERE tenant_id = ?",
                    (version, sequence, body, tenant_id),
                )
            current[tenant_id] = (version, incarnation, body)
            outcomes[index] = Committed(version, incarnation, rebase)
            wrote = True
        if wrote:
            db.execute(
                f"UPDATE {_META} SET value = CASE key WHEN 'sequence' THEN ? "
                "ELSE ? END WHERE key IN ('sequence', 'tenants')",
                (sequence, tenants),
            )
        if scrubbed:
            self._prune(db)
            for table in sorted(scrubbed):
                self._rewrite(db, table)
        assert None not in outcomes
        return outcomes  # type: ignore[return-value]  # (every one set above)

    @staticmethod
    def _write_on_bases(
        db: sqlite3.Connection,
        changes: Sequence[Change],
        tables: dict[str, str],
        bodies: list[bytes | None],
        sequence: int,
    ) -> dict[int, tuple[int, int]]:
        """Write the usual changes whose base is what is stored: the first of
        each tenant in ``changes`` that writes a profile, not forced. Returns
        the new version and incarnation of each written, by its index.

        One ``executemany`` per table for the updates, and one for the
        creations: a statement of its own per change was a Python call and a
        statement lookup each (measured: 2,773 changes in three transactions
        took 15.8 ms of the writer's thread, 13.7 ms so). The stored rows are
        read only when a statement wrote fewer rows than it was given: a row
        written here has this commit's sequence, which no other row has (every
        transaction that writes takes the next one).
        """
        created: dict[str, list[tuple[Any, ...]]] = {}
        updated: dict[str, list[tuple[Any, ...]]] = {}
        planned: dict[int, tuple[int, int]] = {}
        seen: set[str] = set()
        for index, change in enumerate(changes):
            tenant_id = change.tenant_id
            if tenant_id in seen:
                continue
            seen.add(tenant_id)
            body = bodies[index]
            if body is None or change.force:
                continue
            table = tables[tenant_id]
            if change.base_version == 0:
                if change.base_incarnation != 0:
                    continue  # erased since: read, and refused, below
                incarnation = new_incarnation()
                created.setdefault(table, []).append(
                    (tenant_id, incarnation, sequence, body)
                )
                planned[index] = (1, incarnation)
            else:
                version = change.base_version + 1
                updated.setdefault(table, []).append(
                    (
                        version,
                        sequence,
                        body,
                        tenant_id,
                        change.base_version,
                        change.base_incarnation,
                    )
                )
                planned[index] = (version, change.base_incarnation)
        missed: list[str] = []
        for grouped, statement, id_at in (
            (created, _CREATE_ON_NOTHING, 0),
            (updated, _UPDATE_ON_BASE, 3),
        ):
            for table, rows in grouped.items():
                cursor = db.executemany(statement.format(table=table), rows)
                if cursor.rowcount != len(rows):
                    missed.extend(row[id_at] for row in rows)
        if missed:
            ours = set()
            for tenant_id in missed:
                rows = db.execute(
                    f"SELECT sequence FROM {tables[tenant_id]} WHERE tenant_id = ?",
                    (tenant_id,),
                ).fetchall()
                if rows and rows[0][0] == sequence:
                    ours.add(tenant_id)
            lost = set(missed) - ours
            planned = {
                index: outcome
                for index, outcome in planned.items()
                if changes[index].tenant_id not in lost
            }
        return planned

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> int:
        rows = db.execute(f"SELECT value FROM {_META} WHERE key = ?", (key,)).fetchall()
        value: int = rows[0][0]
        return value

    @staticmethod
    def _prune(db: sqlite3.Connection) -> None:
        (last,) = db.execute(f"SELECT max(id) FROM {_ERASURES}").fetchall()[0]
        if last is None or last <= ERASURE_LOG:
            return
        cutoff = last - ERASURE_LOG
        (floor,) = db.execute(
            f"SELECT max(sequence) FROM {_ERASURES} WHERE id <= ?", (cutoff,)
        ).fetchall()[0]
        if floor is not None:
            db.execute(
                f"UPDATE {_META} SET value = max(value, ?) WHERE key = 'erasure_floor'",
                (floor,),
            )
            db.execute(f"DELETE FROM {_ERASURES} WHERE id <= ?", (cutoff,))

    @staticmethod
    def _rewrite(db: sqlite3.Connection, table: str) -> None:
        # Emptying a table without WHERE frees every page it had, and
        # secure_delete zeroes each one, stale cell copies included; the rows
        # that stay are written afresh into clean pages.
        rows = db.execute(f"SELECT * FROM {table}").fetchall()
        db.execute(f"DELETE FROM {table}")
        db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)", rows)

    def _checkpoint(self, outcomes: list[Outcome]) -> None:
        """Empty the WAL, which still holds pages from before the erasure."""
        db = self._db()
        deadline = time.monotonic() + self.busy_timeout
        result: object = None
        while True:
            try:
                result = _pragma(db, "wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as error:
                result = error
            if result == [(0, 0, 0)]:
                self._scrub_pending = False
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.005)
        msg = (
            f"{self.name}: the erasure is committed, but old bytes may remain in "
            f"the WAL: its checkpoint stayed busy for {self.busy_timeout} s "
            f"(last result: {result}); it is retried after the next commit"
        )
        raise ScrubIncomplete(msg, outcomes)

    def tenants(self) -> list[str]:
        """Every stored tenant id, sorted; one read."""
        union = " UNION ALL ".join(f"SELECT tenant_id FROM {t}" for t in _TABLES)
        rows = self._read("listing tenants", f"{union} ORDER BY 1")
        damaged = [tenant_id for (tenant_id,) in rows if type(tenant_id) is not str]
        if damaged:
            msg = (
                f"{self.name}: a stored tenant id is not text ({damaged[0]!r}): "
                "the file is damaged (tenant-dna check lists what)"
            )
            raise StorageError(msg)
        return [tenant_id for (tenant_id,) in rows]

    def count(self) -> int:
        """How many tenants are stored (a counter kept by every commit)."""
        rows = self._read(
            "counting tenants", f"SELECT value FROM {_META} WHERE key = 'tenants'"
        )
        count: int = rows[0][0]
        return count

    def _shard_rows(self, table: str, batch: int) -> Iterator[Row]:
        after: str | None = None
        while True:
            if after is None:
                rows = self._read(
                    "scanning",
                    f"SELECT {_FIELDS} FROM {table} ORDER BY tenant_id LIMIT ?",
                    (batch,),
                )
            else:
                rows = self._read(
                    "scanning",
                    f"SELECT {_FIELDS} FROM {table} WHERE tenant_id > ? "
                    "ORDER BY tenant_id LIMIT ?",
                    (after, batch),
                )
            yield from rows
            if len(rows) < batch:
                return
            after = rows[-1][0]

    def _rows(self, batch: int) -> Iterator[Row]:
        return heapq.merge(
            *(self._shard_rows(table, batch) for table in _TABLES),
            key=lambda row: str(row[0]),
        )

    def scan(self, batch: int = 1000) -> Iterator[tuple[str, Record]]:
        """Every ``(tenant_id, record)`` by tenant id, reading ``batch`` rows a read.

        Each read is its own short transaction: a scan never blocks writers or
        checkpoints, and may see a tenant written meanwhile in either state.
        Raises ``ValueError`` if ``batch < 1``.
        """
        if batch < 1:
            msg = f"batch: expected a positive int, got {batch!r}"
            raise ValueError(msg)
        self._db()
        for row in self._rows(batch):
            yield row[0], self._record(*row)

    def restore(self, records: Sequence[tuple[str, Record]]) -> None:
        """Write records exactly as given in one transaction, overwriting.

        A record that would take a stored life back to a version it had, or
        bring an erased one back, is written as a new life (see
        ``restored_incarnation``). Raises ``ValueError`` for a version below 1
        or an incarnation outside ``1 .. 2**63 - 1`` and ``dna.InvalidDNA``
        for an invalid profile, each naming the tenant; then nothing is
        written.
        """
        self._db()
        tables = self._tables_for(tenant_id for tenant_id, _ in records)
        rows: list[tuple[str, int, int, bytes]] = []
        for tenant_id, record in records:
            version, incarnation = checked_ids(tenant_id, record)
            rows.append(
                (tenant_id, version, incarnation, encode(tenant_id, record.dna))
            )
        if not rows:
            return
        with self._transaction(f"restoring {len(rows)} record(s)") as db:
            sequence = self._meta(db, "sequence") + 1
            tenants = self._meta(db, "tenants")
            erased = {
                incarnation
                for (incarnation,) in db.execute(
                    f"SELECT incarnation FROM {_ERASURES}"
                ).fetchall()
            }
            for tenant_id, version, given, body in rows:
                table = tables[tenant_id]
                exists = db.execute(
                    f"SELECT version, incarnation FROM {table} WHERE tenant_id = ?",
                    (tenant_id,),
                ).fetchall()
                incarnation = restored_incarnation(
                    version, given, exists[0] if exists else None, erased
                )
                if exists:
                    db.execute(
                        f"UPDATE {table} SET version = ?, incarnation = ?, "
                        "sequence = ?, dna = ? WHERE tenant_id = ?",
                        (version, incarnation, sequence, body, tenant_id),
                    )
                else:
                    db.execute(
                        f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)",
                        (tenant_id, version, incarnation, sequence, body),
                    )
                    tenants += 1
            db.execute(
                f"UPDATE {_META} SET value = ? WHERE key = 'sequence'", (sequence,)
            )
            db.execute(
                f"UPDATE {_META} SET value = ? WHERE key = 'tenants'", (tenants,)
            )

    def cursor(self) -> int:
        """The sequence of the last commit to this file, by any process."""
        rows = self._read(
            "reading the commit sequence",
            f"SELECT value FROM {_META} WHERE key = 'sequence'",
        )
        cursor: int = rows[0][0]
        return cursor

    def changes_since(self, cursor: int) -> Changes:
        """What any connection, in any process, committed after ``cursor``.

        One short read transaction; the cost grows with the changes, not with
        the tenants stored.
        """
        union = " UNION ALL ".join(
            f"SELECT tenant_id, version, incarnation FROM {table} WHERE sequence > ?1"
            for table in _TABLES
        )
        with self._transaction("reading changes", "BEGIN") as db:
            now = self._meta(db, "sequence")
            floor = self._meta(db, "erasure_floor")
            updated = db.execute(union, (cursor,)).fetchall()
            erased = db.execute(
                f"SELECT incarnation FROM {_ERASURES} WHERE sequence > ? ORDER BY id",
                (cursor,),
            ).fetchall()
        return Changes(
            now,
            [(str(t), int(v), int(i)) for t, v, i in updated],
            [int(incarnation) for (incarnation,) in erased],
            # A cursor past the sequence comes from another file, or from
            # before this one was replaced by an older copy: trust nothing.
            floor <= cursor <= now,
        )

    def check(self) -> list[str]:
        """``PRAGMA integrity_check``, then every stored row read back.

        Returns the problems found, one line each (empty: the file is sound).
        Raises :class:`StorageError` only if the file cannot be read at all
        for a reason other than damage (a lock held past the busy timeout).
        """
        problems: list[str] = []
        db = self._db()
        try:
            rows = _pragma(db, "integrity_check")
        except sqlite3.OperationalError as error:
            msg = f"{self.name}: the integrity check failed: {error}"
            raise StorageError(msg) from error
        except sqlite3.DatabaseError as error:
            return [f"{self.name}: {error}"]
        if rows != [("ok",)]:
            problems += [f"{self.name}: {message}" for (message,) in rows]
        stored = 0
        try:
            for table in _TABLES:
                for row in self._shard_rows(table, 1000):
                    stored += 1
                    try:
                        self._record(*row)
                    except StorageError as error:
                        problems.append(str(error))
                    if type(row[0]) is str and _table(row[0]) != table:
                        problems.append(
                            f"{self.name}: tenant {row[0]!r} is stored in {table}, "
                            f"which is not its table ({_table(row[0])})"
                        )
            counted = self.count()
        except StorageError as error:
            return [*problems, str(error)]
        if counted != stored:
            problems.append(
                f"{self.name}: the tenant counter says {counted}, the tables "
                f"hold {stored}"
            )
        return problems

    def clone(self) -> SQLiteStorage:
        """Another connection to the same file, for another thread."""
        self._db()
        clone = SQLiteStorage.__new__(SQLiteStorage)
        clone.path = self.path
        clone.name = self.name
        clone.busy_timeout = self.busy_timeout
        clone._connection = _connect(self.path, self.busy_timeout)
        clone._scrub_pending = False
        return clone

    def close(self) -> None:
        """Close the connection; idempotent.

        A checkpoint left pending by :class:`ScrubIncomplete` is tried once
        more first. Never raises for the connection's own failures.
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._scrub_pending:
            with contextlib.suppress(sqlite3.Error):
                _pragma(connection, "wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.Error):
            connection.close()
