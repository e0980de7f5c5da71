"""The store's futures behave as pykka futures do, across threads."""

from __future__ import annotations

import asyncio
import queue
import threading

import pykka
import pytest

from actors._future import Reply
from dna import TenantDNA


def test_every_waiting_thread_gets_the_value() -> None:
    reply: Reply[int] = Reply()
    results: list[int] = []
    waiters = [
        threading.Thread(target=lambda: results.append(reply.get(timeout=10)))
        for _ in range(8)
    ]
    for waiter in waiters:
        waiter.start()
    reply.set(42)
    for waiter in waiters:
        waiter.join(timeout=10)
    assert results == [42] * 8
    assert reply.get() == 42


def test_get_times_out_with_pykka_timeout() -> None:
    with pytest.raises(pykka.Timeout):
        Reply[int]().get(timeout=0.01)


def test_an_exception_is_raised_by_every_get() -> None:
    reply: Reply[int] = Reply()
    try:
        raise KeyError("boom")
    except KeyError:
        reply.set_exception()
    for _ in range(2):
        with pytest.raises(KeyError, match="boom"):
            reply.get(timeout=1)


def test_a_reply_is_set_once() -> None:
    reply: Reply[int] = Reply()
    reply.set(1)
    with pytest.raises(queue.Full):
        reply.set(2)
    with pytest.raises(queue.Full):
        reply.set_exception((ValueError, ValueError(), None))
    assert reply.get() == 1


def test_pykka_combinators_and_await_work() -> None:
    reply: Reply[int] = Reply()
    doubled = reply.map(lambda value: value * 2)
    reply.set(21)
    assert doubled.get(timeout=1) == 42
    assert pykka.get_all([reply, doubled], timeout=1) == [21, 42]

    async def wait() -> int:
        return await reply

    assert asyncio.run(wait()) == 21


def test_a_shared_value_is_copied_for_every_get() -> None:
    shared = TenantDNA(peak_hours=[3])
    reply: Reply[TenantDNA] = Reply()
    reply.set_copied(shared)
    first = reply.get(timeout=1)
    first.peak_hours.append(4)
    assert reply.get(timeout=1) == shared
    assert shared.peak_hours == [3]
    assert first is not reply.get(timeout=1)


def test_every_awaiting_coroutine_gets_the_value_in_its_own_loop() -> None:
    reply: Reply[int] = Reply()
    other_loop: list[int] = []

    async def wait() -> int:
        return await reply

    async def main() -> list[int]:
        awaiting = [asyncio.ensure_future(wait()) for _ in range(3)]
        await asyncio.sleep(0)  # all three wait for it
        elsewhere = threading.Thread(
            target=lambda: other_loop.append(asyncio.run(wait()))
        )
        elsewhere.start()
        threading.Thread(target=reply.set, args=(7,)).start()
        values = await asyncio.wait_for(asyncio.gather(*awaiting), timeout=10)
        await asyncio.to_thread(elsewhere.join, 10)
        return values

    assert asyncio.run(main()) == [7, 7, 7]
    assert other_loop == [7]
