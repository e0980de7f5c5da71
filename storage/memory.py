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
* Profiles are validated and copied on the way in and copied on the way out:
  nothing a caller holds is shared with the database.
* An erased tenant leaves nothing behind: its id, profile and version go; the
  erasure log keeps only the erased incarnation (a random number).
* ``commit`` cannot fail on resources: it raises only for invalid input
  (``dna.InvalidDNA``), a closed connection or the collision above.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, TypeVar

from dna import InvalidDNA, TenantDNA, check_profile
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

ERASURE_LOG: Final = 10_000
"""Erasures kept for ``changes_since``: an older cursor gets ``complete=False``."""

MAX_INCARNATION: Final = 2**63 - 1

_T = TypeVar("_T")


def new_incarnation() -> int:
    """A random positive 63-bit incarnation, as every backend draws them."""
    return secrets.randbits(63) or 1


def checked_copy(tenant_id: str, dna: TenantDNA) -> TenantDNA:
    """A checked copy of ``dna`` sharing nothing with it (``dna.check_profile``).

    Raises ``dna.InvalidDNA`` naming the field and the tenant, ``TypeError``
    for anything but a ``TenantDNA``.
    """
    try:
        return check_profile(dna)
    except InvalidDNA as error:
        detail = str(error).removeprefix(f"{error.field}: ")
        raise InvalidDNA(error.field, f"tenant {tenant_id!r}: {detail}") from error


def _matches(current: Record | None, change: Change) -> bool:
    if current is None:
        return change.base_version == 0 and change.base_incarnation == 0
    return (
        current.version == change.base_version
        and current.incarnation == change.base_incarnation
    )


def _exposed(record: Record | None) -> Record | None:
    if record is None:
        return None
    return Record(record.dna.copy(), record.version, record.incarnation)


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
        self.records: dict[str, tuple[Record, _Commit]] = {}
        # Commits and cursors draw from one clock (next() is atomic). A commit
        # draws once its writes are in place, so every commit that drew a
        # number below a cursor is entirely visible to whoever drew the cursor.
        self.clock = itertools.count(1)
        # tenant id -> the commit writing it now: one writer per tenant.
        self.claims: dict[str, _Commit] = {}
        self.erased: deque[tuple[_Commit, int]] = deque()  # (commit, incarnation)
        self.erased_floor = 0  # erasures up to this sequence may have been dropped
        self.pruner: dict[int, object] = {}  # who prunes the erasure log now


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

    @contextlib.contextmanager
    def _writing(self, tenant_ids: Iterable[str]) -> Iterator[_Commit]:
        db = self._open()
        commit = _Commit()
        claimed: list[str] = []
        try:
            for tenant_id in dict.fromkeys(tenant_ids):
                if db.claims.setdefault(tenant_id, commit) is not commit:
                    msg = (
                        f"{self.name}: tenant {tenant_id!r} is being committed "
                        "through another connection at this moment; nothing "
                        "was written"
                    )
                    raise StorageError(msg)
                claimed.append(tenant_id)
            yield commit
        finally:
            commit.sequence = next(db.clock)
            for tenant_id in claimed:
                del db.claims[tenant_id]

    def load(self, tenant_id: str) -> Record | None:
        """A copy of the tenant's record, or ``None``."""
        stored = self._open().records.get(tenant_id)
        return None if stored is None else _exposed(stored[0])

    def commit(self, changes: Sequence[Change]) -> list[Outcome]:
        """Apply ``changes`` in order, as :meth:`Storage.commit` says.

        Every profile is validated before anything is written: an invalid one
        raises ``dna.InvalidDNA`` naming the tenant and the field.
        """
        db = self._open()
        copies = [
            None if change.dna is None else checked_copy(change.tenant_id, change.dna)
            for change in changes
        ]
        if not changes:
            return []
        with self._writing(change.tenant_id for change in changes) as commit:
            # The tenants are claimed: no other thread writes them meanwhile.
            staged: dict[str, Record | None] = {}
            outcomes: list[Outcome] = []
            for change, copy in zip(changes, copies, strict=True):
                tenant_id = change.tenant_id
                if tenant_id in staged:
                    current = staged[tenant_id]
                else:
                    stored = db.records.get(tenant_id)
                    current = None if stored is None else stored[0]
                if not change.force and not _matches(current, change):
                    outcomes.append(Conflict(_exposed(current)))
                    continue
                if copy is None:
                    if current is not None:
                        db.erased.append((commit, current.incarnation))
                    staged[tenant_id] = None
                    outcomes.append(Committed(0, 0))
                    continue
                if current is None:
                    record = Record(copy, 1, new_incarnation())
                else:
                    record = Record(copy, current.version + 1, current.incarnation)
                staged[tenant_id] = record
                outcomes.append(Committed(record.version, record.incarnation))
            for tenant_id, staged_record in staged.items():
                if staged_record is None:
                    db.records.pop(tenant_id, None)
                else:
                    db.records[tenant_id] = (staged_record, commit)
        self._prune(db)
        return outcomes

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
            stored = records.get(tenant_id)
            if stored is not None:
                yield (
                    tenant_id,
                    Record(
                        stored[0].dna.copy(), stored[0].version, stored[0].incarnation
                    ),
                )

    def restore(self, records: Sequence[tuple[str, Record]]) -> None:
        """Write records exactly as given, overwriting (versions kept).

        Raises ``ValueError`` for a version below 1 or an incarnation outside
        ``1 .. 2**63 - 1`` and ``dna.InvalidDNA`` for an invalid profile, each
        naming the tenant; then nothing is written.
        """
        db = self._open()
        checked = [
            (tenant_id, _checked_record(tenant_id, record))
            for tenant_id, record in records
        ]
        if not checked:
            return
        with self._writing(tenant_id for tenant_id, _ in checked) as commit:
            for tenant_id, record in checked:
                db.records[tenant_id] = (record, commit)

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
        return Changes(
            now,
            [
                (tenant_id, record.version, record.incarnation)
                for tenant_id, (record, commit) in records.items()
                if commit.after(cursor)
            ],
            [incarnation for commit, incarnation in erased if commit.after(cursor)],
            complete,
        )

    def check(self) -> list[str]:
        """Problems with the stored records (empty: every record is sound)."""
        problems: list[str] = []
        records = _stable(self._open().records.copy)
        for tenant_id, (record, _) in records.items():
            try:
                _checked_record(tenant_id, record)
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


def _checked_record(tenant_id: str, record: Record) -> Record:
    if not isinstance(record.version, int) or record.version < 1:
        msg = (
            f"tenant {tenant_id!r}: version: expected an int >= 1, "
            f"got {record.version!r}"
        )
        raise ValueError(msg)
    if not isinstance(record.incarnation, int) or not (
        1 <= record.incarnation <= MAX_INCARNATION
    ):
        msg = (
            f"tenant {tenant_id!r}: incarnation: expected an int in 1 .. 2**63 - 1, "
            f"got {record.incarnation!r}"
        )
        raise ValueError(msg)
    return Record(
        checked_copy(tenant_id, record.dna), record.version, record.incarnation
    )
