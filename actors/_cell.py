"""A tenant's cell: its mailbox, its published snapshot, and the messages in it.

A cell is the meeting point of the threads that submit changes and the one
tenant actor that applies them. Callers append operations to ``mailbox`` (a
``list``: an append, a copy of it and the deletion of its head are each one
step under the GIL) and wake the actor only when no wake-up is pending; the
actor drains the mailbox in batches and
publishes ``published`` for readers. The tenant's durable state (its committed
record, the changes applied but not yet committed) lives in the cell too, not
in the actor, so any actor can take the tenant over: after a passivation, or
after an actor was lost. Every field has one writer, so no lock is needed.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import time
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from actors._errors import StoreClosed
from actors._future import Reply
from dna import TenantDNA

if TYPE_CHECKING:
    from actors._context import Context
    from dna import SessionMetrics
    from storage import Change, Outcome, Record, StorageError

_NOT_SETTLED = "the store closed before this change's commit settled"


class Versioned(NamedTuple):
    """A profile and its storage version (0: nothing stored)."""

    dna: TenantDNA
    version: int


class Snapshot(Protocol):
    """What readers take from ``TenantCell.published``: a profile and its version.

    A ``Versioned``, or the committed ``storage.Record`` itself when that is
    what is published (one object less for every tenant in memory).
    """

    @property
    def dna(self) -> TenantDNA: ...

    @property
    def version(self) -> int: ...


Frozen = tuple[Any, ...]
"""A profile's fields in one flat tuple of plain values: see :func:`freeze`."""


def freeze(dna: TenantDNA) -> Frozen:
    """``dna`` as an answer kept until someone asks for it (:func:`thaw`).

    An update's answer is the profile right after it, kept by the update
    until its commit settles, and mostly never asked for (fire-and-forget).
    Kept as a copy, it is three objects the garbage collector visits in every
    collection until then (a profile, its two lists); one flat tuple of plain
    values leaves the collector's lists at its first look. Measured (16
    threads, fire-and-forget, buffered on SQLite, 16,000 changes in flight):
    15,839 profiles kept, and full collections of 45 ms where they took 20.

    The tuple: complexity, tier, tokens, risk, last update, the numbers of
    tools, hours and intents, then the tools' names, their frequencies, the
    hours and the intents.
    """
    tools = dna.tool_usage_frequency
    hours = dna.peak_hours
    intents = dna.common_intents
    return (
        dna.avg_task_complexity,
        dna.preferred_model_tier,
        dna.avg_tokens_per_task,
        dna.risk_profile,
        dna.last_updated,
        len(tools),
        len(hours),
        len(intents),
        *tools,
        *tools.values(),
        *hours,
        *intents,
    )


def thaw(frozen: Frozen) -> TenantDNA:
    """A new profile equal to the one :func:`freeze` was given."""
    tools, hours, intents = frozen[5], frozen[6], frozen[7]
    names = 8 + tools
    frequencies = names + tools
    return TenantDNA(
        frozen[0],
        frozen[1],
        frozen[2],
        dict(zip(frozen[8:names], frozen[names:frequencies], strict=True)),
        list(frozen[frequencies : frequencies + hours]),
        frozen[3],
        list(frozen[frequencies + hours : frequencies + hours + intents]),
        frozen[4],
    )


def settle_profile(dna: TenantDNA) -> TenantDNA:
    """``dna``, become the committed profile a cell keeps: its lists as tuples.

    A committed profile is never changed again: every change starts from a
    copy, and every reader gets one (``TenantDNA.copy`` makes lists again).
    Held as tuples, its hours and intents leave the garbage collector's lists
    at its first look, and a resident tenant is three objects every full
    collection visits (its cell, its record, its profile) instead of five: a
    store holds 100,000 of them by default, and a flood of first touches
    spent a third of its time in full collections.
    """
    hours, intents = dna.peak_hours, dna.common_intents
    if type(hours) is list:
        dna.peak_hours = tuple(hours)  # type: ignore[assignment]  # see above
    if type(intents) is list:
        dna.common_intents = tuple(intents)  # type: ignore[assignment]
    return dna


PENDING: Any = object()
"""An operation's answer before it was decided."""

LATEST: Any = object()
"""An update's answer: the profile as committed with it (copied on ``get``)."""


class Operation(Reply[Any]):
    """A change or a request, applied by the tenant's actor in mailbox order.

    ``answer`` is decided when the operation is applied and sent when it is
    settled (committed, or failed); ``failure`` holds an exception instead.
    ``counted`` marks a change that holds a place of the store's ``max_queued``.

    An operation is its own future (``future`` is the operation itself), what
    the caller gets back: one object a change, not two, for the changes a
    fire-and-forget flood keeps in flight.
    """

    __slots__ = ("answer", "counted", "failure")

    def __init__(self) -> None:
        super().__init__()
        self.answer: Any = PENDING
        self.failure: BaseException | None = None
        self.counted = False

    @property
    def future(self) -> Reply[Any]:
        """The reply of the operation's caller: the operation itself."""
        return self


class Update(Operation):
    """Learn from one session; resolves to a copy of the profile right after it."""

    __slots__ = ("alpha", "session")

    def __init__(self, session: SessionMetrics, alpha: float) -> None:
        super().__init__()
        self.session = session
        self.alpha = alpha


class Save(Operation):
    """Replace the profile with ``dna`` (a checked copy the caller no longer holds).

    With ``expected`` set, only if the tenant's version is still that one.
    """

    __slots__ = ("dna", "expected")

    def __init__(self, dna: TenantDNA, expected: int | None) -> None:
        super().__init__()
        self.dna = dna
        self.expected = expected


class Delete(Operation):
    """Erase the tenant (GDPR); resolves to ``None`` once erased from storage."""

    __slots__ = ()


CHANGES = (Update, Save, Delete)

Pending = list[Operation] | tuple[()]
"""A cell's operations applied and not yet committed: a list, or while there
are none the one shared empty tuple (a list per idle cell would be one more
object for the garbage collector to visit, for every resident tenant)."""

NO_OPERATIONS: tuple[()] = ()


class Flush(Operation):
    """Resolves to ``None`` once every change before it has been committed."""

    __slots__ = ()


class FlushBarrier(Flush):
    """One flush pended in many cells of a slot (see :class:`SlotFlush`).

    Each cell answers it as it would a flush of its own, once every change
    before it is committed; it resolves once ``waiting`` cells have, or at
    the first error. One object and one wait for a slot, not a flush for
    every busy cell: a flush of a buffered backlog finds thousands.

    Answered by the slot's actor, or, for a buffered cell whose commit was
    in flight (``TenantCell.waiters``), by the writer as soon as that commit
    is written: two threads, so the answers are counted with ``next()`` on
    a count (one step under the GIL), and ``waiting`` is set before any cell
    is given the barrier.
    """

    __slots__ = ("_answered", "waiting")

    def __init__(self) -> None:
        super().__init__()
        self.waiting = 0
        self._answered = itertools.count(1)

    def set(self, value: Any | None = None) -> None:
        if next(self._answered) == self.waiting:
            # (Unless an error answered it first: in another thread, maybe.)
            with contextlib.suppress(queue.Full):
                super().set(None)


class SlotFlush(Reply[list[Reply[Any]]]):
    """A flush of one slot: put on the slot's ready queue, behind every cell on it.

    ``cells`` are the slot's cells that were busy when the flush was asked
    for. By the time the slot's actor reaches this, it has drained every cell
    queued before it; the flush resolves to a :class:`Flush` of each of those
    cells still busy (a commit in flight, or changes that came since), which
    the caller waits for. One message a slot, instead of a flush in every
    busy cell's mailbox: a fire-and-forget backlog is flushed at the cost of
    the cells that are still busy when the actor gets there.
    """

    __slots__ = ("cells", "slot")

    def __init__(self, slot: int, cells: list[TenantCell]) -> None:
        super().__init__()
        self.slot = slot
        self.cells = cells

    def fail_pending(self) -> None:
        """Answer with ``StoreClosed``: the slot's actor will not reach it."""
        self.cells = []
        if not self.done:
            self.set_exception((StoreClosed, StoreClosed("the store is closed"), None))


class Refresh(Operation):
    """Another process changed the tenant: its snapshot here is stale.

    ``version`` and ``incarnation`` name the record written (``0, 0``:
    unknown, anything may have changed); with ``erased`` the incarnation was
    erased instead. ``load``: a reader found the cell stale and asks its actor
    to read the stored profile back.
    """

    __slots__ = ("erased", "incarnation", "load", "version")

    def __init__(
        self,
        version: int = 0,
        incarnation: int = 0,
        *,
        erased: bool = False,
        load: bool = False,
    ) -> None:
        super().__init__()
        self.version = version
        self.incarnation = incarnation
        self.erased = erased
        self.load = load


class Resubmit(Operation):
    """The writer was lost: send the commit in flight again, if it is still."""

    __slots__ = ()


def pop_all(waiters: list[Flush]) -> list[Flush]:
    """Take every flush from ``waiters``, one ``pop`` each (see
    ``TenantCell.waiters``: the writer and the actor may both be taking)."""
    taken: list[Flush] = []
    with contextlib.suppress(IndexError):
        while True:
            taken.append(waiters.pop())
    return taken


class Settled(NamedTuple):
    """A commit's outcome, and the error of an erasure in it that may have
    left bytes in storage (``TenantCell.settled`` holds the outcome alone
    when there is none)."""

    outcome: Outcome | StorageError
    scrub: StorageError


class Settlement:
    """The cells of one slot whose commits the writer settled: put on the
    slot's ready queue, one for a transaction's cells of that slot.

    Each cell's outcome is in its ``settled``, written before this is queued;
    the slot's actor takes it at the cell's next drain, before anything in
    the mailbox: by this, or by a drain that came first. One queue entry and
    one wake-up a slot, instead of a message in every cell's mailbox: a
    buffered tick settles thousands of tenants.
    """

    __slots__ = ("cells", "slot")

    def __init__(self, slot: int, cells: list[TenantCell]) -> None:
        self.slot = slot
        self.cells = cells

    def fail_pending(self) -> None:
        """Nothing to answer: the store closes with the commits still unsettled,
        and answers them (``TenantCell.fail_unsettled``)."""
        self.cells = []


STALE: Any = object()
"""``TenantCell.working`` when it is not materialised: derive it from the base."""

FRESH = 0
"""``TenantCell.stale``: the base is the stored record, as far as anyone told."""
NEWER = 1
"""``TenantCell.stale``: another process wrote the tenant since the base was
read; a change computed on the base is computed again on the stored record by
its commit (``Change.rebase``), so only a read needs the stored record."""
UNKNOWN = 2
"""``TenantCell.stale``: anything may have changed, the tenant may have been
erased: the stored record is read before anything is applied."""


class TenantCell(list[Operation]):
    """A tenant's identity in the store: its mailbox, its published profile, its state.

    The cell is its own mailbox (a ``list`` with the fields below): one object
    per resident tenant rather than two, for memory and for the garbage
    collector, which visits every one at each full collection. A list, not a
    ``deque``: an idle cell is 224 bytes, where a deque's first block made it
    928 (most of what a resident tenant cost). Cells compare and hash by
    identity, never by what their mailboxes hold.

    A cell exists while its tenant is in use: it is created by the first change
    submitted for the tenant and retired (dropped from the directory) by its
    actor when it has been idle longest, or once the tenant is erased. The
    actor serving it is the one of its ``slot``, fixed by the tenant id, so
    finding a tenant's actor never needs a message. Every field has one writer
    at a time:

    * ``mailbox`` (the cell itself): appended by any thread; taken from the
      head only by the slot's actor (a copy, then the deletion of as many
      items: appends meanwhile stay behind them), so operations are applied
      one at a time in mailbox order.
    * ``published``: the profile and version readers see, never mutated once
      published; ``None`` when the tenant has no stored DNA (or is not loaded).
      Written only by the actor, before it answers, so a caller whose change
      was acknowledged reads it back.
    * ``loaded``, ``base``, ``working``, ``pending``, ``in_flight``, ``change``,
      ``latest``, ``suspect``, ``stale``: the actor's. ``base`` is the record as last
      committed; ``working`` is ``base`` with every pending and in-flight change
      applied (``STALE`` while nothing is pending: derived when needed);
      ``in_flight`` the operations of the one commit under way (``change`` is
      what it writes, ``sent_to`` the writer it was handed to); ``pending``
      those applied after it; ``latest`` the last
      update whose answer is the working profile itself; ``suspect`` that an
      actor died holding the cell; ``stale`` that another process wrote the
      tenant since (``FRESH``, ``NEWER`` or ``UNKNOWN``): then nothing is
      published, and readers ask storage.
    * ``settled``: the outcome of the commit in flight, written by the writer
      (before it queues the cell's :class:`Settlement`), taken and cleared by
      the actor at the start of the cell's next drain.
    * ``waiters``: buffered, the flushes (:class:`FlushBarrier`) that wait
      for nothing but the commit in flight: ``(change, barriers)``, or
      ``None``. The actor appends to the list, then reads ``settled``; the
      writer writes ``settled``, then pops the barriers of the change it
      wrote (never those of the next commit, which the actor may have begun
      meanwhile) and answers them if it was written as it was. Each side
      writes before it reads and a pop is one step, so each barrier is
      answered once: by the writer, or by the actor, which settles them with
      the commit, as part of it (a failed commit answers them its error).
    * ``scheduled``: the wake-up token. Whoever sets it after appending is
      responsible for getting the mailbox drained: it puts the cell on its
      slot's ready queue (``Context.wake``). The actor clears it *before*
      draining, so an operation appended while it was set is always seen.
    * ``draining``: set by the actor while it drains the cell (before it
      clears ``scheduled``), so a cell is never retired or missed by a flush
      mid-drain.
    * ``retired``: set by the actor that drops the cell. A caller that finds
      it set after appending takes its operation back and posts it to the
      tenant's live cell; the actor, after setting it, keeps the cell if
      anything reached it. Each side writes first and reads second, so one of
      them always sees the other.
    * ``recent``: touched by every read, cleared by the eviction clock.
    * ``closed``: set once by ``close()`` after every actor has stopped; from
      then on whatever reaches the mailbox is answered with ``StoreClosed``.
    """

    __slots__ = (
        "base",
        "change",
        "closed",
        "draining",
        "in_flight",
        "latest",
        "loaded",
        "pending",
        "published",
        "recent",
        "retired",
        "scheduled",
        "sent_to",
        "settled",
        "slot",
        "stale",
        "suspect",
        "tenant_id",
        "waiters",
        "working",
    )

    __hash__ = object.__hash__  # type: ignore[assignment]
    __eq__ = object.__eq__
    __ne__ = object.__ne__

    def __init__(self, tenant_id: str, slot: int) -> None:
        super().__init__()
        self.tenant_id = tenant_id
        self.slot = slot
        self.published: Snapshot | None = None
        self.scheduled = False
        self.draining = False
        self.retired = False
        # A cell's place in its actor's order says when it last changed; this
        # says it was read since the eviction clock last looked.
        self.recent = False
        self.closed = False
        self.loaded = False
        self.base: Record | None = None
        self.working: TenantDNA | None = STALE
        self.pending: Pending = NO_OPERATIONS
        self.in_flight: list[Operation] | None = None
        self.change: Change | None = None
        self.sent_to: object = None
        self.settled: Outcome | StorageError | Settled | None = None
        self.waiters: tuple[Change, list[Flush]] | None = None
        self.latest: Operation | None = None
        self.suspect = False
        self.stale = FRESH

    @property
    def mailbox(self) -> list[Operation]:
        """The operations waiting for the actor: the cell itself."""
        return self

    @property
    def busy(self) -> bool:
        """Whether the cell has operations that are not settled yet."""
        return bool(
            len(self)
            or self.pending
            or self.in_flight is not None
            or self.scheduled
            or self.draining
        )

    def unsettled_changes(self) -> int:
        """Changes submitted and not yet settled (for what exit could not apply)."""
        return sum(
            isinstance(operation, CHANGES)
            for operations in (self, self.pending, self.in_flight or ())
            for operation in list(operations)
        )

    def post(self, operation: Operation, context: Context) -> None:
        """Append ``operation`` and, if no wake-up is pending, arrange one.

        If the cell was retired meanwhile, the operation goes to the tenant's
        live cell instead, before this returns (so one thread's operations stay
        in order). Raises ``pykka.ActorDeadError`` if the store is closed.
        """
        self.append(operation)
        if self.retired:
            try:
                self.remove(operation)
            except ValueError:
                return  # the actor kept the cell and took it: it is applied
            live = context.cell(self.tenant_id)
            while live is self and self.retired:
                # The actor has marked it and not yet dropped it (or kept it).
                time.sleep(0)
                live = context.cell(self.tenant_id)
            live.post(operation, context)
            return
        if self.closed:
            # Appended after (or while) close() swept the mailbox: no actor
            # will ever drain it. Each operation is popped, and answered, once.
            self.fail_pending()
            return
        if self.scheduled:
            return
        self.scheduled = True
        context.wake(self)

    def fail_unsettled(self) -> None:
        """Answer applied changes no commit will settle (the actors have
        stopped, storage refusing): ``StoreClosed``, stored or not."""
        waiters = self.waiters
        for operations in (
            self.pending,
            self.in_flight or (),
            () if waiters is None else waiters[1],
        ):
            for operation in list(operations):
                if not operation.future.done:
                    operation.future.set_exception(
                        (StoreClosed, StoreClosed(_NOT_SETTLED), None)
                    )

    def fail_pending(self) -> None:
        """Answer every operation left in the mailbox with ``StoreClosed``."""
        while True:
            try:
                operation = self.pop(0)
            except IndexError:
                return
            if not operation.future.done:
                operation.future.set_exception(
                    (StoreClosed, StoreClosed("the store is closed"), None)
                )
