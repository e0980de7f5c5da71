"""A one-shot reply mailbox: a ``pykka.Future``, awaitable without blocking."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sys
from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

import pykka

T = TypeVar("T")

_PENDING: Any = object()


class Reply(pykka.Future[T], Generic[T]):
    """A ``pykka.Future`` backed by a ``queue.SimpleQueue`` of one message.

    ``pykka.ThreadingFuture`` builds a ``threading.Condition`` per future,
    which costs more than a whole profile update; a ``SimpleQueue`` is made and
    signalled in C. The value is stored before the signal, and every waiter
    passes the signal on, so any number of threads may ``get()`` it.

    Awaiting it in a coroutine never blocks the event loop: the answer is
    handed to the loop with ``call_soon_threadsafe`` when it is set.
    """

    __slots__ = ("_callbacks", "_copied", "_exc_info", "_signal", "_value")

    def __init__(self) -> None:
        super().__init__()
        self._signal: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._value: Any = _PENDING
        self._exc_info: Any = None
        self._copied = False
        self._callbacks: list[Callable[[], None]] | None = None

    @property
    def done(self) -> bool:
        """Whether the answer is in."""
        return self._value is not _PENDING

    def get(self, *, timeout: float | None = None) -> T:
        if self._get_hook is not None:
            return super().get(timeout=timeout)
        if self._value is _PENDING:
            try:
                self._signal.get(timeout=timeout)
            except queue.Empty:
                raise pykka.Timeout(f"{timeout} seconds") from None
            self._signal.put(None)
        if self._exc_info is not None:
            raise self._exc_info[1].with_traceback(self._exc_info[2])
        value: T = self._value.copy() if self._copied else self._value
        return value

    def set(self, value: Any | None = None) -> None:
        if self._value is not _PENDING:
            raise queue.Full
        self._value = value
        self._signal.put(None)
        self._notify()

    def set_copied(self, value: Any) -> None:
        """Resolve to ``value.copy()``, made afresh by every ``get()``.

        For a value that others share and must never see mutated.
        """
        if self._value is not _PENDING:
            raise queue.Full
        self._copied = True
        self._value = value
        self._signal.put(None)
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
        self._signal.put(None)
        self._notify()

    def _notify(self) -> None:
        callbacks = self._callbacks
        if callbacks:
            for callback in list(callbacks):
                callback()

    def __await__(self) -> Generator[Any, None, T]:
        if self._value is _PENDING:
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()

            def wake() -> None:
                # Called by the setter's thread, or by ours if the answer
                # came in while registering; the loop side runs it once.
                # A closed loop raises RuntimeError: nobody waits any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, waiter)

            if self._callbacks is None:
                self._callbacks = []
            self._callbacks.append(wake)
            # The setter stores the value before it reads the callbacks, and
            # we append before we read the value: one of us sees the other.
            if self._value is not _PENDING:
                wake()
            yield from waiter.__await__()
        return self.get(timeout=0)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
