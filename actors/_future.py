"""A one-shot reply mailbox: a ``pykka.Future``, awaitable without blocking."""

from __future__ import annotations

import asyncio
import functools
import queue
import sys
import weakref
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import Any, Generic, TypeVar

import pykka
from pykka._future import _Unset

T = TypeVar("T")
M = TypeVar("M")
J = TypeVar("J")
R = TypeVar("R")

_PENDING: Any = object()
_SIGNAL = "_signal"  # in the instance dict, made by the first waiter
_NO_HOOK_RESULT: Any = _Unset()

TURN = 64
"""Coroutines an event loop is handed per turn by the store, at most: answers
(:class:`Reply`), and changes let through to be submitted (``AsyncTenantDNAStore``)."""


class Reply(pykka.Future[T], Generic[T]):
    """A ``pykka.Future`` whose waiters block on a ``queue.SimpleQueue``.

    ``pykka.ThreadingFuture`` builds a ``threading.Condition`` per future,
    which costs more than a whole profile update; a ``SimpleQueue`` is made and
    signalled in C. It is made by the first thread that waits, not before: a
    fire-and-forget change's reply, which nobody waits for, costs none. The
    first waiter puts it in the reply's instance dict with ``setdefault``
    (atomic: every waiter gets the same queue), then looks at the value again;
    the setter stores the value, then looks for the queue. Each side writes
    before it reads, so a waiter either finds the value or is signalled. Every
    waiter passes the signal on, so any number of threads may ``get()`` it.

    Awaiting it in a coroutine never blocks the event loop: the answer is
    handed to the loop with ``call_soon_threadsafe`` when it is set.
    """

    __slots__ = ("_awaiting", "_exc_info", "_make", "_value")

    # pykka.Future's own state, as class defaults: its __init__ would give
    # every reply an instance dict and an object of its own, which a store
    # making one reply per change pays for in allocations and collections.
    # ``set_get_hook`` (pykka's map, filter, join) sets both on the instance.
    _get_hook = None
    _get_hook_result = _NO_HOOK_RESULT

    def __init__(self) -> None:  # pykka.Future.__init__ is left out: see above
        self._value: Any = _PENDING
        self._exc_info: Any = None
        self._make: Callable[[Any], Any] | None = None
        self._awaiting: list[Any] | None = None

    @property
    def done(self) -> bool:
        """Whether the answer is in."""
        return self._value is not _PENDING

    def get(self, *, timeout: float | None = None) -> T:
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if self._value is _PENDING:
            signal: queue.SimpleQueue[None]
            signal = self.__dict__.setdefault(_SIGNAL, queue.SimpleQueue())
            if self._value is _PENDING:
                try:
                    signal.get(timeout=timeout)
                except queue.Empty:
                    raise pykka.Timeout(f"{timeout} seconds") from None
                signal.put(None)
        if self._exc_info is not None:
            raise self._exc_info[1].with_traceback(self._exc_info[2])
        make = self._make
        value: T = self._value if make is None else make(self._value)
        return value

    def set(self, value: Any | None = None) -> None:
        if self._value is not _PENDING:
            raise queue.Full
        self._value = value
        self._notify()

    def set_copied(self, value: Any) -> None:
        """Resolve to ``value.copy()``, made afresh by every ``get()``.

        For a value that others share and must never see mutated.
        """
        self.set_made(value, _copy)

    def set_made(self, value: Any, make: Callable[[Any], Any]) -> None:
        """Resolve to ``make(value)``, made afresh by every ``get()``."""
        if self._value is not _PENDING:
            raise queue.Full
        self._make = make
        self._value = value
        self._notify()

    def set_exception(self, exc_info: Any = None) -> None:
        if self._value is not _PENDING:
            raise queue.Full
        if exc_info is None:
            exc_info = sys.exc_info()
        if exc_info[1] is None:
            exc_info = (exc_info[0], exc_info[0](), exc_info[2])
        self._exc_info = exc_info
        self._value = None
        self._notify()

    def _notify(self) -> None:
        # getattr, not __dict__: a reply nobody waited for has no dict to make.
        signal: queue.SimpleQueue[None] | None = getattr(self, _SIGNAL, None)
        if signal is not None:
            signal.put(None)
        awaiting = self._awaiting
        if awaiting:
            # Pairs of (inbox, waiter), flat: no closure, no tuple per await.
            for index in range(0, len(awaiting) - 1, 2):
                awaiting[index].put(awaiting[index + 1])
            # Let go of the waiters (and their loops): one added meanwhile
            # saw the value and put itself (see __await__).
            self._awaiting = None

    # pykka's map, filter, join and reduce make ``self.__class__()``, which a
    # change (a Reply whose class takes arguments) cannot be made as.

    def map(self, func: Callable[[T], M]) -> pykka.Future[M]:
        return _derived(lambda timeout: func(self.get(timeout=timeout)))

    def filter(
        self: pykka.Future[Iterable[J]], func: Callable[[J], bool]
    ) -> pykka.Future[Iterable[J]]:
        return _derived(
            lambda timeout: [x for x in self.get(timeout=timeout) if func(x)]
        )

    def join(
        self: pykka.Future[Any], *futures: pykka.Future[Any]
    ) -> pykka.Future[Iterable[Any]]:
        return _derived(
            lambda timeout: [f.get(timeout=timeout) for f in (self, *futures)]
        )

    def reduce(
        self: pykka.Future[Iterable[J]], func: Callable[[R, J], R], *args: R
    ) -> pykka.Future[R]:
        return _derived(
            lambda timeout: functools.reduce(func, self.get(timeout=timeout), *args)
        )

    def __await__(self) -> Generator[Any, None, T]:
        if self._get_hook is not None:
            # Derived (map, filter, join, reduce): get() waits for the futures
            # it derives from, in a worker thread, not on the loop.
            derived: T = yield from asyncio.to_thread(self.get).__await__()
            return derived
        if self._value is _PENDING:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            inbox = _inbox(loop)
            if self._awaiting is None:
                self._awaiting = []
            self._awaiting.extend((inbox, waiter))
            # The setter stores the value before it reads the waiters, and we
            # add ours before we read the value: one of us sees the other
            # (the inbox resolves a waiter once, however often it is put).
            if self._value is not _PENDING:
                inbox.put(waiter)
            yield from waiter.__await__()
        return self.get(timeout=0)


def _copy(value: Any) -> Any:
    return value.copy()


def _derived(hook: Callable[[float | None], Any]) -> Reply[Any]:
    """A reply whose value ``hook(timeout)`` computes when asked."""
    future: Reply[Any] = Reply()
    future.set_get_hook(hook)
    return future


class _LoopInbox:
    """Answers handed to one event loop, resolved at most ``TURN`` per turn.

    Any thread puts waiters in; one ``call_soon_threadsafe`` wakes the loop
    for all that arrive meanwhile (the same token as a cell's: cleared before
    draining). Resolving a bounded number per turn lets the loop run its other
    callbacks between them, so a thousand answers arriving together do not
    stall it for the time of a thousand coroutine steps. It holds its loop
    weakly: the inboxes are kept per loop in a ``WeakKeyDictionary``, whose
    entry would otherwise keep every loop that ever awaited a reply alive.
    """

    __slots__ = ("_loop", "_scheduled", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._scheduled = False

    def put(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.append(waiter)
        if self._scheduled:
            return
        self._scheduled = True
        loop = self._loop()
        try:
            if loop is None:
                raise RuntimeError("the loop is gone")
            loop.call_soon_threadsafe(self._run)
        except RuntimeError:  # gone, or closed: nobody waits any more
            # Not kept: each waiter holds its loop, which this inbox's entry
            # in _inboxes would then never let go of.
            self._waiters.clear()
            self._scheduled = False

    def _run(self) -> None:
        self._scheduled = False
        waiters = self._waiters
        for _ in range(TURN):
            try:
                waiter = waiters.popleft()
            except IndexError:
                return
            if not waiter.done():
                waiter.set_result(None)
        loop = self._loop()
        if waiters and not self._scheduled and loop is not None:
            self._scheduled = True
            loop.call_soon(self._run)


_inboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopInbox] = (
    weakref.WeakKeyDictionary()
)


def _inbox(loop: asyncio.AbstractEventLoop) -> _LoopInbox:
    """The loop's inbox (made in the loop's own thread, on first use)."""
    inbox = _inboxes.get(loop)
    if inbox is None:
        inbox = _inboxes[loop] = _LoopInbox(loop)
    return inbox
