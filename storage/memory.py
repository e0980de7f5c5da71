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
* Compact: a record is one ``bytes`` value (see :func:`encode`), about 300
  bytes for a typical profile; ``load`` and ``scan`` decode a new profile
  each time. Measured with ``python -m bench.memory_footprint``: under 600
  bytes of RSS per stored tenant at a million tenants, id and index included.
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
import math
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, TypeVar

from dna import TenantDNA
from dna._rules import (
    MAX_INTENTS,
    MAX_NAME_LENGTH,
    MAX_PEAK_HOURS,
    MAX_TOKENS,
    MAX_TOOLS,
    TIERS,
)
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
from storage._records import (
    checked_copy,
    checked_ids,
    new_incarnation,
    rebased,
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
#   avg_task_complexity d, avg_tokens_per_task q, risk_profile d, last_updated d
#   form        B  the tier (its index in TIERS), plus _MEASURED (below)
#   counts      B  tools, hours, intents
#   the tools' frequencies, d each
#   the peak hours, B each
#   the tool names, then the intents, in UTF-8 ("surrogatepass": any str
#   round-trips), separated by NUL characters; or, in a record with _MEASURED
#   (some name holds a NUL), the length of every name in characters (a byte
#   each: names are at most 200 characters), then the names back to back.
#
# Floats are IEEE doubles: a profile round-trips exactly.

_IDS: Final = struct.Struct("<QQq")
_SEQUENCE: Final = struct.Struct("<Q")
_HEAD: Final = struct.Struct("<QQqdqddBBBB")
_BODY: Final = struct.Struct("<dqddBBBB")
_BODY_AT: Final = _IDS.size
_MEASURED: Final = 0x80
_TIER_CODES: Final = {tier: code for code, tier in enumerate(TIERS)}
_FREQUENCIES: Final = tuple(struct.Struct(f"<{n}d") for n in range(256))


def _canonical_items(
    frequencies: Sequence[object], hours: Sequence[object], names: Sequence[object]
) -> bool:
    for frequency in frequencies:
        if type(frequency) is not float or not 0.0 <= frequency <= 1.0:
            return False
    for hour in hours:
        if type(hour) is not int or not 0 <= hour <= 23:
            return False
    for name in names:
        if type(name) is not str or not 0 < len(name) <= MAX_NAME_LENGTH:
            return False
    return True


def _pack(dna: TenantDNA) -> bytes | None:
    """The record body of ``dna``, or ``None`` if it is not a canonical profile.

    Checks what ``check_profile`` checks, for values already in their
    canonical types (exactly ``float``, ``int``, ``str``, ``dict``, ``list``).
    Each container is copied once, then checked and packed from the copy.
    """
    if type(dna) is not TenantDNA:
        return None
    complexity = dna.avg_task_complexity
    risk = dna.risk_profile
    updated = dna.last_updated
    tokens = dna.avg_tokens_per_task
    tier = dna.preferred_model_tier
    tools = dna.tool_usage_frequency
    hours = dna.peak_hours
    intents = dna.common_intents
    if not (
        type(complexity) is float
        and 0.0 <= complexity <= 1.0
        and type(risk) is float
        and 0.0 <= risk <= 1.0
        and type(updated) is float
        and math.isfinite(updated)
        and type(tokens) is int
        and 0 <= tokens <= MAX_TOKENS
        and type(tier) is str
        and type(tools) is dict
        and type(hours) is list
        and type(intents) is list
    ):
        return None
    form = _TIER_CODES.get(tier)
    frequencies = [*tools.values()]
    hours = [*hours]
    intents = [*intents]
    names = [*tools, *intents]  # the tools' names, then the intents
    if (
        form is None
        # Another thread changing the dict meanwhile: let check_profile judge.
        or len(names) != len(frequencies) + len(intents)
        or len(frequencies) > MAX_TOOLS
        or len(hours) > MAX_PEAK_HOURS
        or len(intents) > MAX_INTENTS
        or not _canonical_items(frequencies, hours, names)
        or len({*hours}) != len(hours)
        or len({*intents}) != len(intents)
    ):
        return None
    head = _BODY.pack(
        complexity,
        tokens,
        risk,
        updated,
        form,
        len(frequencies),
        len(hours),
        len(intents),
    )
    small = bytes(hours)
    text = "\0".join(names)
    if names and text.count("\0") != len(names) - 1:  # a name holds a NUL
        head = _BODY.pack(
            complexity,
            tokens,
            risk,
            updated,
            form | _MEASURED,
            len(frequencies),
            len(hours),
            len(intents),
        )
        small += bytes(map(len, names))
        text = "".join(names)
    return b"".join(
        (
            head,
            _FREQUENCIES[len(frequencies)].pack(*frequencies),
            small,
            text.encode("utf-8", "surrogatepass"),
        )
    )


def encode(tenant_id: str, dna: TenantDNA) -> bytes:
    """The record body of ``dna`` (all but the sequence, version, incarnation).

    Raises ``dna.InvalidDNA`` naming the field and the tenant, ``TypeError``
    for anything but a ``TenantDNA``: the rules of ``dna.check_profile``.
    """
    body = _pack(dna)
    if body is None:
        # Not canonical: invalid (this raises), or valid in other types.
        body = _pack(checked_copy(tenant_id, dna))
        if body is None:  # pragma: no cover - check_profile gives canonical types
            msg = f"tenant {tenant_id!r}: a checked profile could not be packed"
            raise AssertionError(msg)
    return body


def _decode(value: bytes) -> Record:
    """The record packed in ``value``; raises if ``value`` is malformed.

    The values are not checked here (``check`` does that), only the shape.
    """
    (
        _,
        version,
        incarnation,
        complexity,
        tokens,
        risk,
        updated,
        form,
        tools,
        hours,
        intents,
    ) = _HEAD.unpack_from(value)
    frequencies = _FREQUENCIES[tools]
    at = _HEAD.size + frequencies.size
    end = at + hours
    if form & _MEASURED:
        lengths = value[end : end + tools + intents]
        text = value[end + tools + intents :].decode("utf-8", "surrogatepass")
        ends = list(itertools.accumulate(lengths))
        if len(lengths) != tools + intents or ends[-1] != len(text):
            msg = "the names' lengths do not add up"
            raise ValueError(msg)
        names = [
            text[start:stop] for start, stop in zip([0, *ends], ends, strict=False)
        ]
    elif tools + intents:
        names = value[end:].decode("utf-8", "surrogatepass").split("\0")
        if len(names) != tools + intents:
            msg = "the number of names is wrong"
            raise ValueError(msg)
    else:
        names = []
        if len(value) != end:
            msg = "unexpected bytes after the record"
            raise ValueError(msg)
    dna = TenantDNA(
        complexity,
        TIERS[form & ~_MEASURED],
        tokens,
        dict(zip(names, frequencies.unpack_from(value, _HEAD.size), strict=False)),
        list(value[at:end]),
        risk,
        names[tools:],
        updated,
    )
    return Record(dna, version, incarnation)


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
        # tenant id -> its record, encoded (see encode).
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
        try:
            for tenant_id, ((version, incarnation), body) in last.items():
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
                if encode(tenant_id, record.dna) != value[_BODY_AT:]:
                    msg = f"tenant {tenant_id!r}: the record does not round-trip"
                    raise ValueError(msg)
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
