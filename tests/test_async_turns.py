"""AsyncTenantDNAStore shares the event loop: changes go in turns, in line.

Judged by counting, never by the clock: submissions are counted between two
steps of an observer coroutine that yields one turn at a time, and a blocked
loop is shown by a release that only a running loop can make.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from actors import AsyncTenantDNAStore, TenantDNAStore
from actors._future import TURN
from tests.conftest import PROBE, sessions_applied
from tests.test_embedding import Gate, ticks_while_waiting

T = TypeVar("T")
COROUTINES = 1000
TENANTS = 50


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` in a new event loop; a hang fails within a minute."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


class Submissions:
    """Counts the changes a store is given, and the most waiting for room at once."""

    def __init__(self, store: TenantDNAStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.waiting_for_room = 0
        self.most_waiting_for_room = 0
        submit = store._submit_update

        def counted(*args: Any, block: bool = True, **options: Any) -> Any:
            if block:
                self.waiting_for_room += 1
                self.most_waiting_for_room = max(
                    self.most_waiting_for_room, self.waiting_for_room
                )
            try:
                future = submit(*args, block=block, **options)
            finally:
                if block:
                    self.waiting_for_room -= 1
            self.count += 1
            return future

        monkeypatch.setattr(store, "_submit_update", counted)


def test_coroutines_woken_together_submit_a_turn_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def main() -> tuple[list[int], list[int], list[int]]:
        async with AsyncTenantDNAStore() as store:
            submissions = Submissions(store.store, monkeypatch)
            start = asyncio.Event()

            async def session(index: int) -> int:
                await start.wait()
                profile = await store.update_from_session(
                    f"t{index % TENANTS}", PROBE, alpha=0.01
                )
                return sessions_applied(profile)

            tasks = [asyncio.create_task(session(i)) for i in range(COROUTINES)]
            await asyncio.sleep(0)  # every coroutine waits on the event
            per_turn: list[int] = []
            start.set()
            while not all(task.done() for task in tasks):
                before = submissions.count
                await asyncio.sleep(0)  # one turn of the loop
                per_turn.append(submissions.count - before)
            answers = [task.result() for task in tasks]
            applied = [
                sessions_applied(await store.get(f"t{i}")) for i in range(TENANTS)
            ]
            return per_turn, answers, applied

    per_turn, answers, applied = run(main())
    # All together would be a thousand in one turn; in turns, at most one
    # turn's worth between two steps of the observer (which can straddle two).
    assert sum(per_turn) == COROUTINES
    assert max(per_turn) <= 2 * TURN
    assert applied == [COROUTINES // TENANTS] * TENANTS
    # Each tenant's sessions were applied one after another, none lost.
    assert sorted(answers) == sorted(
        n for _ in range(TENANTS) for n in range(1, COROUTINES // TENANTS + 1)
    )


def test_a_cancelled_coroutine_leaves_the_line_and_the_others_go_on() -> None:
    async def main() -> tuple[list[int], int]:
        async with AsyncTenantDNAStore() as store:
            start = asyncio.Event()

            async def session() -> int:
                await start.wait()
                return sessions_applied(
                    await store.update_from_session("acme", PROBE, alpha=0.01)
                )

            tasks = [asyncio.create_task(session()) for _ in range(4 * TURN)]
            await asyncio.sleep(0)
            start.set()
            await asyncio.sleep(0)  # one turn in, the rest wait in line
            cancelled = tasks[-TURN:]
            for task in cancelled:
                task.cancel()
            done = await asyncio.gather(*tasks[:-TURN])
            return done, sessions_applied(await store.get("acme"))

    done, applied = run(main())
    # The cancelled ones were still in line: they submitted nothing.
    assert sorted(done) == list(range(1, 3 * TURN + 1))
    assert applied == 3 * TURN


def test_coroutines_past_max_queued_wait_in_line_behind_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate(monkeypatch)
    changes = 200

    async def main() -> tuple[list[int], int, int, int]:
        async with AsyncTenantDNAStore(max_queued=5) as store:
            submissions = Submissions(store.store, monkeypatch)
            try:
                flood = asyncio.gather(
                    *(
                        store.update_from_session("acme", PROBE, alpha=0.01)
                        for _ in range(changes)
                    )
                )
                # The loop keeps running while all of them wait for room.
                profiles, ticks = await ticks_while_waiting(flood, gate.release)
            finally:
                gate.release()
            applied = sessions_applied(await store.get("acme"))
            return (
                sorted(sessions_applied(p) for p in profiles),
                applied,
                ticks,
                submissions.most_waiting_for_room,
            )

    answers, applied, ticks, most_waiting = run(main())
    assert answers == list(range(1, changes + 1))
    assert applied == changes
    assert ticks > 0
    assert most_waiting == 1
    assert not gate.timed_out
