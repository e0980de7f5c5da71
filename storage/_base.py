"""The storage interface: profiles as versioned records, one backend per engine.

A backend knows tenants, records and transactions, and nothing of threads or
actors. One backend object is one connection: it is used by one thread at a
time, and :meth:`Storage.clone` opens another one to the same database for
another thread.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from dna import TenantDNA


class StorageError(RuntimeError):
    """Storage could not do what was asked: nothing of the operation was written.

    The message names the database (path or URL) and the cause; the original
    exception is chained. One subclass reports a commit that *was* written:
    ``storage.ScrubIncomplete`` (SQLite), raised when the erased bytes could not
    yet be wiped from the WAL; it carries the commit's outcomes. Another, a
    commit that may or may not have been: :class:`CommitOutcomeUnknown`.
    """


class CommitOutcomeUnknown(StorageError):
    """The connection was lost during ``COMMIT`` and the server could not say
    in time whether the transaction was written: it may have been.

    Changes computed again on top of what is stored must not be committed
    again blindly: they may be there already.
    """


class VersionConflict(RuntimeError):
    """A compare-and-set ``save`` found another version than the one expected."""

    def __init__(self, tenant_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"{tenant_id!r}: expected version {expected}, the stored version is "
            f"{actual}"
        )
        self.tenant_id = tenant_id
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Record:
    """A stored profile and its version.

    Every backend hands out records whose ``dna`` is the caller's own copy.
    ``version`` is 1 when the tenant is first stored and grows by 1 with every
    committed write of it. ``incarnation`` tells one life of a tenant from the
    next: it is drawn afresh (a random positive 63-bit int) whenever a tenant
    is stored while absent, so a change computed before an erasure never
    matches the tenant created again after it. ``dna`` is never mutated.
    """

    dna: TenantDNA
    version: int
    incarnation: int


@dataclass(frozen=True, slots=True)
class Change:
    """Write ``dna`` as the tenant's profile, or erase it (``dna=None``).

    ``base_version`` and ``base_incarnation`` name the record the change was
    computed from (``0, 0``: the tenant was absent). Unless ``force`` is set
    the change is written only if the stored record is still that one; a
    forced change (a ``save`` without an expected version, an erasure)
    overwrites whatever is stored.

    ``rebase`` says how to compute the change again from another profile.
    When the stored record is not the base but the tenant is stored, the
    commit calls it, inside its transaction and with the record locked
    against other writers, with a copy of the stored profile (the caller's to
    change), and writes what it returns (checked like ``dna``) instead of
    ``dna``: the change is answered ``Committed`` with that profile as
    ``rebased``, not ``Conflict``. A tenant absent while the base was not
    (erased meanwhile) is still a conflict, and so is a rebase that raises.
    It may be called more than once (a transaction started over), each time
    on a fresh copy; it must not touch anything another thread uses.
    """

    tenant_id: str
    dna: TenantDNA | None
    base_version: int
    base_incarnation: int
    force: bool = False
    rebase: Callable[[TenantDNA], TenantDNA] | None = None


class Committed(NamedTuple):
    """The change was written: the record now has this version (0: erased).

    ``rebased`` is the profile written when the change was rebased on a newer
    stored record (see :class:`Change`), else ``None`` (its ``dna`` was).
    """

    version: int
    incarnation: int
    rebased: TenantDNA | None = None


class Conflict(NamedTuple):
    """The stored record was not the change's base; nothing was written for it.

    ``current`` is the record as stored when the commit looked (``None``:
    absent), so the caller can re-apply its change without another read.
    """

    current: Record | None


Outcome = Committed | Conflict


class Changes(NamedTuple):
    """What was committed since a cursor (:meth:`Storage.changes_since`).

    ``updated``: ``(tenant_id, version, incarnation)`` of every record written
    since and still stored, as it is now (a tenant written twice appears once);
    ``erased``: the incarnations erased since. ``complete`` is false when the
    cursor is too old for the bounded erasure log (10,000 erasures): then
    ``erased`` may miss some, and every record the caller holds must be
    treated as stale. Pass ``cursor`` to the next call; an entry may be
    reported twice, never missed.
    """

    cursor: int
    updated: list[tuple[str, int, int]]
    erased: list[int]
    complete: bool


class Announced(NamedTuple):
    """What announcements of commits said (:meth:`Storage.wait_for_changes`).

    ``updated``: ``(tenant_id, version, incarnation)`` written; ``erased``: the
    incarnations erased. ``complete`` is false when they may not name every
    change (an announcement too large to list them, or a listener that was
    reconnected and may have missed some): then ask :meth:`Storage.changes_since`.
    """

    updated: list[tuple[str, int, int]]
    erased: list[int]
    complete: bool


class Storage(abc.ABC):
    """Versioned profile records in one database, through one connection."""

    #: What the messages name: the file's path or the URL without its password.
    name: str

    @abc.abstractmethod
    def load(self, tenant_id: str) -> Record | None:
        """The tenant's record, or ``None``. Raises ``StorageError``."""

    @abc.abstractmethod
    def commit(self, changes: Sequence[Change]) -> list[Outcome]:
        """Apply ``changes`` in one transaction; one outcome per change, in order.

        Changes to the same tenant are applied in order, each against the
        result of the one before. A change whose base is not the stored record
        (and is not forced) is skipped and answered with a :class:`Conflict`;
        the others are written. An erasure removes the record and every byte
        of it (no trace in the database or beside it once ``commit`` returns),
        and is answered ``Committed(0, 0)`` even if the tenant was absent.
        Storing an absent tenant draws a new incarnation at version 1.

        Every profile is checked (``dna.check_profile``) before anything is
        written: an invalid one raises ``dna.InvalidDNA`` naming the tenant.
        If the transaction fails, nothing is written and ``StorageError`` is
        raised (see its one exception, ``ScrubIncomplete``).
        """

    @abc.abstractmethod
    def tenants(self) -> list[str]:
        """Every stored tenant id, sorted."""

    @abc.abstractmethod
    def count(self) -> int:
        """How many tenants are stored."""

    @abc.abstractmethod
    def scan(self, batch: int = 1000) -> Iterator[tuple[str, Record]]:
        """Every stored ``(tenant_id, record)`` by tenant id, ``batch`` a read.

        Each read is short: a long scan blocks no writer, and may see a tenant
        written during it in either state. ``ValueError`` if ``batch < 1``.
        """

    @abc.abstractmethod
    def restore(self, records: Sequence[tuple[str, Record]]) -> None:
        """Write records exactly as given (versions and incarnations kept).

        For importing an export into a database; one transaction, overwriting.
        A version below 1 or an incarnation outside ``1 .. 2**63 - 1`` raises
        ``ValueError``, an invalid profile ``dna.InvalidDNA``; then nothing is
        written.
        """

    @abc.abstractmethod
    def cursor(self) -> int:
        """A position in the commit history, for :meth:`changes_since`.

        Every commit before it, by any connection, is visible to the caller.
        """

    @abc.abstractmethod
    def changes_since(self, cursor: int) -> Changes:
        """What was committed after ``cursor`` (by any connection)."""

    @abc.abstractmethod
    def check(self) -> list[str]:
        """Problems found by an integrity check (empty: the database is sound)."""

    def wait_for_commit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s to hear of a commit by another connection.

        ``True``: something may have changed (call :meth:`changes_since`);
        ``False``: nothing was heard. :meth:`wait_for_changes` without what
        the announcements said.
        """
        return self.wait_for_changes(timeout) is not None

    def wait_for_changes(self, timeout: float) -> Announced | None:
        """Wait up to ``timeout`` s to hear of commits; what they changed, or ``None``.

        Backends that are told of commits (PostgreSQL's ``LISTEN``) override
        it; this default hears nothing and returns ``None`` at once, without
        waiting: poll :meth:`changes_since` instead.
        """
        return None

    @abc.abstractmethod
    def clone(self) -> Storage:
        """Another connection to the same database, for another thread."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; idempotent.

        Any later call on this object raises ``StorageError``; other clones
        stay open.
        """
