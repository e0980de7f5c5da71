"""Profiles in this process's memory: the default backend, and the tests' reference.

:class:`MemoryStorage` keeps the semantics of every other backend — versions
(1 on creation, +1 per write), incarnations (a new one whenever an absent
tenant is stored), compare-and-set conflicts, forced overwrites, erasure,
:meth:`~MemoryStorage.changes_since` with a bounded erasure log — minus
outliving the process. It is a real backend, not a stub.

Guarantees:

* A clone shares the data: every clone is a connection to the same database.
* Clones may be used from several threads at once with no lock anywhere. A
  record is replaced by one dictionary assignment, so a reader sees a tenant's
  record either before or after a commit, never half of one. Commits touching
  different tenants run side by side; a commit that reaches a tenant another
  thread is committing at that very moment raises :class:`StorageError` and
  writes nothing (a single writer per tenant, as the actors provide, never
  meets this).
* Compact: a record is one ``bytes`` value (its ids, then the profile
  packed by ``storage._packed``), about 300 bytes for a typical profile;
  ``load`` and ``scan`` decode a new profile each time. Measured with
  ``python -m bench.memory_footprint``: under 600 bytes of RSS per stored
  tenant at a million tenants, id and index included.
* Profiles are validated on the way in (the packing checks every value;
  anything not already in canonical form goes through ``dna.check_profile``)
  and decoded afresh on the way out: nothing a caller holds is shared with
  the database.
* An erased tenant leaves nothing behind: its id, profile and version go, and
  no table shared by records keeps its tool names or intents; the erasure log
  keeps only the erased incarnation (a random number).
* ``commit`` cannot fail on resources: it raises only for invalid input
  (``dna.InvalidDNA``), a closed connection or the collision above.
"""

from __future__ import annotations

import itertools
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, TypeVar

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
from storage._packed import check_round_trip, decode, encode
from storage._records import (
    checked_ids,
    new_incarnation,
    rebased,
    restored_incarnation,
)

ERASURE_LOG: Final = 10_000
"""Erasures kept for ``changes_since``: an older cursor gets ``complete=False``."""

_T = TypeVar("_T")


# -- the encoding ----------------------------------------------------------------
#
# A stored record is one bytes value, little-endian:
#
#   sequence    Q  the commit that wrote it; 0 while that commit is running
#   version     Q
#   incarnation q
#   the profile, packed (storage._packed)

_IDS: Final = struct.Struct("<QQq")
_SEQUENCE: Final = struct.Struct("<Q")
_BODY_AT: Final = _IDS.size


def _decode(value: bytes) -> Record:
    """The record packed in ``value``; raises if ``value`` is malformed.

    The values are not checked here (``check`` does that), only the shape.
    """
    _, version, incarnation = _IDS.unpack_from(value)
    return Record(decode(value, _BODY_AT), version, incarnation)


def _stable(copy: Callable[[], _T]) -> _T:
    # The copies below run in C, but a container mutated meanwhile by another
    # thread raises rather than giving a torn copy: try again.
    while True:
        try:
            return copy()
        except RuntimeError:
            continue


class _Commit:
    """One commit; ``sequence`` is drawn when all its writes are in place."""

    __slots__ = ("sequence",)

    def __init__(self) -> None:
        self.sequence: int | None = None

    def after(self, cursor: int) -> bool:
        """Whether a reader at ``cursor`` has yet to see this commit."""
        sequence = self.sequence
        return sequence is None or sequence > cursor


class _Database:
    """What clones share. Every field changes by single atomic operations."""

    __slots__ = ("claims", "clock", "erased", "erased_floor", "pruner", "records")

    def __init__(self) -> None:
        # tenant id -> its record, encoded (see the encoding above).
        self.records: dict[str, bytes] = {}
        # Commits and cursors draw from one clock (next() is atomic). A commit
        # writes its records with sequence 0 (running), draws, then rewrites
        # them with the number drawn: every commit that drew a number below a
        # cursor is entirely visible to whoever drew the cursor.
        self.clock = itertools.count(1)
        # tenant id -> the commit writing it now: one writer per tenant.
        self.claims: dict[str, _Commit] = {}
        self.erased: deque[tuple[_Commit, int]] = deque()  # (commit, incarnation)
        self.erased_floor = 0  # erasures up to this sequence may have been dropped
        self.pruner: dict[int, object] = {}  # who prunes the erasure log now


# (tenant id, value) of a record a commit wrote, with sequence 0.
_Written = tuple[str, bytes]


def _release(
    db: _Database, commit: _Commit, claimed: list[str], written: list[_Written]
) -> None:
    """End ``commit``: draw its sequence, stamp what it wrote, free its tenants."""
    sequence = commit.sequence = next(db.clock)
    records = db.records
    stamp = _SEQUENCE.pack(sequence)
    for tenant_id, value in written:
        records[tenant_id] = stamp + value[_SEQUENCE.size :]
    for tenant_id in claimed:
        del db.claims[tenant_id]


class MemoryStorage(Storage):
    """Versioned profile records in a dictionary shared by this object's clones.

    >>> from storage import Change
    >>> storage = MemoryStorage()
    >>> storage.commit([Change("acme", TenantDNA(), 0, 0)])[0].version
    1
    """

    def __init__(self) -> None:
        self.name = "memory://"
        self._db = _Database()
        self._closed = False

    def _open(self) -> _Database:
        if self._closed:
            msg = f"{self.name}: this connection is closed"
            raise StorageError(msg)
        return self._db

    def _claim(
        self, db: _Database, commit: _Commit, tenant_ids: Iterable[str]
    ) -> list[str]:
        """Claim ``tenant_ids`` for ``commit``: no other thread writes them meanwhile.

        Raises ``StorageError`` (and claims nothing) if another commit holds one.
        """
        claimed: list[str] = []
        for tenant_id in tenant_ids:
            if db.claims.setdefault(tenant_id, commit) is not commit:
                _release(db, commit, claimed, [])
                msg = (
                    f"{self.name}: tenant {tenant_id!r} is being committed "
                    "through another connection at this moment; nothing "
                    "was written"
                )
                raise StorageError(msg)
            claimed.append(tenant_id)
        return claimed

    def load(self, tenant_id: str) -> Record | None:
        """The tenant's record, decoded afresh, or ``None``."""
        return self._exposed(tenant_id, self._open().records.get(tenant_id))

    def _damaged(self, tenant_id: str, error: Exception) -> StorageError:
        return StorageError(
            f"{self.name}: tenant {tenant_id!r}: the stored record is damaged: "
            f"{type(error).__name__}: {error}"
        )

    def commit(self, changes: Sequence[Change]) -> list[Outcome]:
        """Apply ``changes`` in order, as :meth:`Storage.commit` says.

        Every profile is validated before anything is written: an invalid one
        raises ``dna.InvalidDNA`` naming the tenant and the field.
        """
        db = self._open()
        if len(changes) == 1:
            return [self._commit_one(db, changes[0])]
        bodies = [
            None if change.dna is None else encode(change.tenant_id, change.dna)
            for change in changes
        ]
        if not changes:
            return []
        tenant_ids = [change.tenant_id for change in changes]
        if len(tenant_ids) > 1:
            tenant_ids = list(dict.fromkeys(tenant_ids))
        commit = _Commit()
        claimed = self._claim(db, commit, tenant_ids)
        written: list[_Written] = []
        try:
            staged: dict[str, bytes | None] = {}  # None: absent
            outcomes: list[Outcome] = []
            records = db.records
            for change, given in zip(changes, bodies, strict=True):
                body = given
                tenant_id = change.tenant_id
                current = (
                    staged[tenant_id] if tenant_id in staged else records.get(tenant_id)
                )
                if current is None:
                    version = incarnation = 0
                else:
                    _, version, incarnation = _IDS.unpack_from(current)
                rebase: TenantDNA | None = None
                if not change.force and (
                    version != change.base_version
                    or incarnation != change.base_incarnation
                ):
                    record = self._exposed(tenant_id, current)
                    again = rebased(change, record, encode)
                    if again is None:
                        outcomes.append(Conflict(record))
                        continue
                    rebase, body = again
                if body is None:
                    if current is not None:
                        db.erased.append((commit, incarnation))
                    staged[tenant_id] = None
                    outcomes.append(Committed(0, 0))
                    continue
                if current is None:
                    incarnation = new_incarnation()
                version += 1
                staged[tenant_id] = _IDS.pack(0, version, incarnation) + body
                outcomes.append(Committed(version, incarnation, rebase))
            for tenant_id, value in staged.items():
                if value is None:
                    records.pop(tenant_id, None)
                else:
                    records[tenant_id] = value
                    written.append((tenant_id, value))
        finally:
            _release(db, commit, claimed, written)
        self._prune(db)
        return outcomes

    def _commit_one(self, db: _Database, change: Change) -> Outcome:
        """:meth:`commit` of a single change: what a tenant actor commits.

        The same steps as the general case (claim, write with sequence 0,
        draw, stamp, release), without its staging of several changes.
        """
        tenant_id = change.tenant_id
        dna = change.dna
        body = None if dna is None else encode(tenant_id, dna)
        commit = _Commit()
        claims = db.claims
        if claims.setdefault(tenant_id, commit) is not commit:
            self._claim(db, commit, (tenant_id,))  # raises, naming the tenant
        records = db.records
        value = None
        try:
            current = records.get(tenant_id)
            if current is None:
                version = incarnation = 0
            else:
                _, version, incarnation = _IDS.unpack_from(current)
            rebase: TenantDNA | None = None
            if not change.force and (
                version != change.base_version or incarnation != change.base_incarnation
            ):
                record = self._exposed(tenant_id, current)
                again = rebased(change, record, encode)
                if again is None:
                    return Conflict(record)
                rebase, body = again
            if body is None:
                if current is not None:
                    db.erased.append((commit, incarnation))
                    records.pop(tenant_id, None)
                return Committed(0, 0)
            if current is None:
                incarnation = new_incarnation()
            version += 1
            value = records[tenant_id] = _IDS.pack(0, version, incarnation) + body
            return Committed(version, incarnation, rebase)
        finally:
            sequence = commit.sequence = next(db.clock)
            if value is not None:
                records[tenant_id] = _SEQUENCE.pack(sequence) + value[_SEQUENCE.size :]
            del claims[tenant_id]
            if db.erased:
                self._prune(db)

    def _exposed(self, tenant_id: str, value: bytes | None) -> Record | None:
        if value is None:
            return None
        try:
            return _decode(value)
        except Exception as error:  # only a record damaged by hand
            raise self._damaged(tenant_id, error) from error

    def _prune(self, db: _Database) -> None:
        if len(db.erased) <= ERASURE_LOG:
            return
        # One pruner at a time, and nobody waits: whoever finds another one
        # at work skips, and a later commit prunes. The floor is raised before
        # an entry goes, so a reader that misses an entry sees the raised floor.
        token = object()
        if db.pruner.setdefault(0, token) is not token:
            return
        try:
            while len(db.erased) > ERASURE_LOG:
                sequence = db.erased[0][0].sequence
                if sequence is None:  # its commit is still running
                    break
                db.erased_floor = max(db.erased_floor, sequence)
                db.erased.popleft()
        finally:
            del db.pruner[0]

    def tenants(self) -> list[str]:
        """Every stored tenant id, sorted."""
        records = self._open().records
        return sorted(_stable(records.copy))

    def count(self) -> int:
        """How many tenants are stored."""
        return len(self._open().records)

    def scan(self, batch: int = 1000) -> Iterator[tuple[str, Record]]:
        """Every ``(tenant_id, record)`` stored when the scan starts, by tenant id.

        A tenant erased while the scan runs is skipped; one written meanwhile
        may be seen in either state. Raises ``ValueError`` if ``batch < 1``.
        """
        if batch < 1:
            msg = f"batch: expected a positive int, got {batch!r}"
            raise ValueError(msg)
        records = self._open().records
        for tenant_id in sorted(_stable(records.copy)):
            value = records.get(tenant_id)
            record = self._exposed(tenant_id, value)
            if record is not None:
                yield tenant_id, record

    def restore(self, records: Sequence[tuple[str, Record]]) -> None:
        """Write records exactly as given, overwriting (versions kept).

        A record that would take a stored life back to a version it had, or
        bring an erased one back, is written as a new life (see
        ``restored_incarnation``).

        Raises ``ValueError`` for a version outside ``1 .. 2**63 - 1`` or an
        incarnation outside ``1 .. 2**63 - 1`` and ``dna.InvalidDNA`` for an
        invalid profile, each naming the tenant; then nothing is written.
        """
        db = self._open()
        checked = [
            (
                tenant_id,
                checked_ids(tenant_id, record),
                encode(tenant_id, record.dna),
            )
            for tenant_id, record in records
        ]
        if not checked:
            return
        # The last record given for a tenant wins, as if written in order.
        last = {tenant_id: (ids, body) for tenant_id, ids, body in checked}
        commit = _Commit()
        claimed = self._claim(db, commit, last)
        written: list[_Written] = []
        erased = {incarnation for _, incarnation in db.erased}
        try:
            for tenant_id, ((version, given), body) in last.items():
                current = db.records.get(tenant_id)
                stored = None
                if current is not None:
                    _, stored_version, stored_incarnation = _IDS.unpack_from(current)
                    stored = (stored_version, stored_incarnation)
                incarnation = restored_incarnation(version, given, stored, erased)
                value = _IDS.pack(0, version, incarnation) + body
                db.records[tenant_id] = value
                written.append((tenant_id, value))
        finally:
            _release(db, commit, claimed, written)

    def cursor(self) -> int:
        """A position in the commit history: every commit before it is visible."""
        return next(self._open().clock)

    def changes_since(self, cursor: int) -> Changes:
        """What was committed after ``cursor``, by any clone.

        Looks at every stored record: the cost grows with the tenants stored.
        """
        db = self._open()
        now = next(db.clock)
        erased = _stable(db.erased.copy)
        # The floor is read after the copy (see _prune); a cursor this clock
        # never gave comes from another database: trust nothing.
        complete = db.erased_floor <= cursor < now
        records = _stable(db.records.copy)
        updated: list[tuple[str, int, int]] = []
        for tenant_id, value in records.items():
            sequence, version, incarnation = _IDS.unpack_from(value)
            # Sequence 0: the commit writing it is still running.
            if sequence == 0 or sequence > cursor:
                updated.append((tenant_id, version, incarnation))
        return Changes(
            now,
            updated,
            [incarnation for commit, incarnation in erased if commit.after(cursor)],
            complete,
        )

    def check(self) -> list[str]:
        """Problems with the stored records (empty: every record is sound).

        Each record is decoded, checked as ``restore`` checks it, and packed
        again: it must give back the very bytes stored.
        """
        problems: list[str] = []
        records = _stable(self._open().records.copy)
        for tenant_id, value in records.items():
            try:
                record = _decode(value)
            except Exception as error:
                problems.append(str(self._damaged(tenant_id, error)))
                continue
            try:
                # Commits may take a version past restore's limit.
                checked_ids(tenant_id, record, 2**64 - 1)
                check_round_trip(tenant_id, record.dna, value, _BODY_AT)
            except (ValueError, TypeError) as error:
                problems.append(str(error))
        return problems

    def clone(self) -> MemoryStorage:
        """Another connection to the same data, for another thread."""
        db = self._open()
        clone = MemoryStorage()
        clone._db = db
        return clone

    def close(self) -> None:
        """Close this connection; the data stays with the other clones. Idempotent."""
        self._closed = True
