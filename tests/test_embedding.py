"""Embedding the store: quiet logs, an event loop never blocked, back-pressure.

Logging is judged in child processes, where nothing (pytest included) has
configured it. The event loop is judged by causality, not by the clock: what
holds a change back is released by a ticker coroutine after it has ticked
while the change waited, so a blocked loop would never release it. Turns are
judged by counting: the changes submitted between two steps of an observer
coroutine that yields one turn of the loop at a time.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from actors import (
    AsyncTenantDNAStore,
    StoreClosed,
    StoreStats,
    TenantDNAStore,
    VersionConflict,
)
from actors import _store as actors_store
from actors._future import TURN
from dna import InvalidSessionMetrics, TenantDNA
from tests.conftest import PROBE, SEED_SESSION, learned, sessions_applied, wait_for

ROOT = Path(__file__).resolve().parent.parent
CHILD_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
WAIT = 10.0  # seconds before a wait counts as a hang
TICKS = 20  # ticks the loop must make while a change waits
COROUTINES = 1000  # woken together, as in the bench's asyncio scenario
TENANTS = 50

T = TypeVar("T")


def run_program(program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=CHILD_ENV,
        check=False,
    )


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` in a new event loop; a hang fails within a minute."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout=60))


# -- quiet by default --------------------------------------------------------


def test_the_seed_example_prints_exactly_its_four_lines() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "seed_example.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=CHILD_ENV,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Complexity: 0.56",
        "Preferred tier: orchestrator",
        "Avg tokens: 2600",
        "Risk: 0.32",
    ]
    assert result.stderr == ""


USE_THE_STORE = """
from actors import TenantDNAStore
from actors._future import TURN
from dna import InvalidSessionMetrics, TenantDNA

for url in (None, "sqlite:///" + {db!r}):
    with TenantDNAStore(url, max_active=1) as store:
        store.update_from_session("acme", {{"task_complexity": 0.9}})
        store.update_from_session_async("globex", {{"tokens_used": 10}}).get(timeout=10)
        store.save("initech", TenantDNA(avg_tokens_per_task=77))
        try:
            store.update_from_session("acme", {{"hour_utc": 24}})
        except InvalidSessionMetrics:
            pass
        store.delete("acme")
        store.flush()
        assert store.list_tenants() == ["globex", "initech"], store.list_tenants()
"""


def test_a_program_that_configures_no_logging_sees_only_the_warnings(
    tmp_path: Path,
) -> None:
    result = run_program(USE_THE_STORE.format(db=str(tmp_path / "quiet.db")))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    # One rejected session per store: a warning each, and nothing else.
    warning = "session_metrics_rejected tenant_id='acme' key='hour_utc'"
    assert result.stderr.splitlines() == [warning, warning]


def test_basic_config_after_the_store_was_created_shows_the_debug_events(
    tmp_path: Path,
) -> None:
    program = (
        "import logging\n"
        "from actors import TenantDNAStore\n"
        "early = TenantDNAStore()\n"
        "early.update_from_session('before', {'tokens_used': 1})\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "early.update_from_session('before', {'tokens_used': 2})\n"
        "early.close()\n" + USE_THE_STORE.format(db=str(tmp_path / "loud.db"))
    )
    result = run_program(program)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    # basicConfig's format: LEVEL:logger:message.
    records = [line.split(":", 2) for line in result.stderr.splitlines()]
    assert all(len(record) == 3 for record in records), result.stderr
    lines = [message for _, name, message in records if name == "tenant_dna.actors"]
    events = {line.split(" ", 1)[0] for line in lines}
    assert {
        "tenant_actor_started",
        "tenant_activated",
        "tenant_passivated",
        "profile_updated",
        "profile_saved",
        "profile_committed",
        "tenant_erased",
        "session_metrics_rejected",
    } <= events
    # The store created before logging was configured speaks too.
    assert "profile_updated tenant_id='before' keys=('tokens_used',)" in lines
    assert "INFO:tenant_dna.actors:tenant_erased tenant_id='acme'" in result.stderr
    assert "WARNING:tenant_dna.actors:session_metrics_rejected" in result.stderr


STRUCTLOG_APPLICATION = """
import logging, sys
import structlog

structlog.configure(
    processors=[
        structlog.stdlib.add_log_level,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
)
handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(
    structlog.stdlib.ProcessorFormatter(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
        foreign_pre_chain=[structlog.stdlib.add_log_level],
    )
)
root = logging.getLogger()
root.addHandler(handler)
root.setLevel(logging.DEBUG)
structlog.get_logger("app").info("service_started", port=8080)
"""


def test_an_application_routing_logging_through_structlog_gets_structured_events(
    tmp_path: Path,
) -> None:
    result = run_program(
        STRUCTLOG_APPLICATION + USE_THE_STORE.format(db=str(tmp_path / "s.db"))
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    events = [json.loads(line) for line in result.stderr.splitlines()]
    ours = [event for event in events if event.get("logger") == "tenant_dna.actors"]
    updated = [event for event in ours if event["event"] == "profile_updated"]
    assert {
        "event": "profile_updated",
        "tenant_id": "acme",
        "keys": ["task_complexity"],
        "level": "debug",
        "logger": "tenant_dna.actors",
    } in updated
    assert {
        "event": "session_metrics_rejected",
        "tenant_id": "acme",
        "key": "hour_utc",
        "level": "warning",
        "logger": "tenant_dna.actors",
    } in ours
    erased = [event for event in ours if event["event"] == "tenant_erased"]
    assert erased
    assert all(e["level"] == "info" for e in erased)
    assert {"event": "service_started", "port": 8080, "level": "info"} in [
        {key: e[key] for key in ("event", "port", "level") if key in e} for e in events
    ]


# -- asyncio -----------------------------------------------------------------


class Gate:
    """Holds every profile update in its tenant actor until opened."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.timed_out = False
        apply_session = TenantDNA.apply_session

        def held(profile: TenantDNA, session: Any, alpha: float = 0.2) -> None:
            self.entered.set()
            if not self.opened.wait(timeout=WAIT):
                self.timed_out = True
            apply_session(profile, session, alpha)

        monkeypatch.setattr(TenantDNA, "apply_session", held)

    def release(self) -> None:
        self.opened.set()


class SQLiteLock:
    """Another connection holding the file's write lock until released."""

    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.execute("BEGIN IMMEDIATE")
        self.timed_out = False  # a store that gave up shows as an error

    def release(self) -> None:
        if self.connection.in_transaction:
            self.connection.execute("COMMIT")


async def ticks_while_waiting(
    awaited: Awaitable[T], release: Callable[[], None]
) -> tuple[T, int]:
    """Await ``awaited``; a ticker calls ``release`` after TICKS ticks while it waits.

    Returns the result and the ticks made while it was still waiting.
    """
    task = asyncio.ensure_future(awaited)
    waiting_ticks = 0
    while not task.done():
        await asyncio.sleep(0.002)
        if not task.done():
            waiting_ticks += 1
            if waiting_ticks == TICKS:
                release()
    return await task, waiting_ticks


def test_a_change_future_maps_joins_filters_and_reduces_as_pykka_futures_do() -> None:
    # pykka's map, filter, join and reduce make a future of the same class:
    # for a change's future that failed (TypeError), and a derived Reply
    # awaited in a coroutine never resolved.
    with TenantDNAStore() as store:
        first = store.update_from_session_async("a", PROBE, alpha=0.01)
        second = store.update_from_session_async("b", PROBE, alpha=0.01)
        assert first.map(sessions_applied).get(timeout=WAIT) == 1
        both = first.join(second).map(lambda dnas: [sessions_applied(d) for d in dnas])
        assert both.get(timeout=WAIT) == [1, 1]
        counts = both.filter(lambda n: n > 0).reduce(lambda a, n: a + n, 0)
        assert counts.get(timeout=WAIT) == 2

        async def awaited() -> list[int]:
            third = store.update_from_session_async("a", PROBE, alpha=0.01)
            mapped = await third.map(sessions_applied)
            joined = await first.join(third)
            return [mapped, *(sessions_applied(d) for d in joined)]

        assert run(awaited()) == [2, 1, 2]


@pytest.mark.parametrize("blocker", ["held-actor", "sqlite-lock"])
@pytest.mark.parametrize("api", ["AsyncTenantDNAStore", "awaited-future"])
def test_the_loop_keeps_running_while_an_awaited_change_cannot_complete(
    api: str, blocker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "locked.db"
    url = None if blocker == "held-actor" else f"sqlite:///{path}"

    async def main() -> tuple[TenantDNA, int, bool]:
        async with AsyncTenantDNAStore(url) as store:
            await store.update_from_session("acme", PROBE, alpha=0.01)
            hold: Gate | SQLiteLock
            hold = Gate(monkeypatch) if blocker == "held-actor" else SQLiteLock(path)
            try:
                change: Awaitable[TenantDNA]
                if api == "AsyncTenantDNAStore":
                    change = store.update_from_session("acme", PROBE, alpha=0.01)
                else:
                    future = store.store.update_from_session_async("acme", PROBE, 0.01)
                    change = future  # type: ignore[assignment]
                profile, ticks = await ticks_while_waiting(change, hold.release)
            finally:
                hold.release()
                if isinstance(hold, SQLiteLock):
                    hold.connection.close()
            assert sessions_applied(await store.get("acme")) == 2
            return profile, ticks, hold.timed_out

    profile, ticks, timed_out = run(main())
    assert sessions_applied(profile) == 2
    assert ticks >= TICKS
    assert not timed_out


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_every_coroutine_method_works(backend: str, tmp_path: Path) -> None:
    url = None if backend == "memory" else f"sqlite:///{tmp_path / 'a.db'}"

    async def main() -> None:
        async with AsyncTenantDNAStore(url, max_active=2) as store:
            assert await store.count() == 0
            assert await store.list_tenants() == []
            assert learned(await store.get("acme")) == learned(TenantDNA())
            profile = await store.update_from_session("acme", SEED_SESSION)
            assert profile.preferred_model_tier == "orchestrator"
            versioned = await store.get_versioned("acme")
            assert versioned.version == 1
            assert learned(versioned.dna) == learned(profile)
            with pytest.raises(InvalidSessionMetrics):
                await store.update_from_session("acme", {"hour_utc": 24})
            saved = TenantDNA(avg_tokens_per_task=42, peak_hours=[9])
            await store.save("globex", saved, expected_version=0)
            with pytest.raises(VersionConflict):
                await store.save("globex", TenantDNA(), expected_version=0)
            assert learned(await store.get("globex")) == learned(saved)
            await store.update_from_session("initech", PROBE, alpha=0.01)
            await store.flush()
            assert await store.list_tenants() == ["acme", "globex", "initech"]
            assert await store.count() == 3
            stats = await store.stats()
            assert isinstance(stats, StoreStats)
            assert stats.tenants == 3
            assert stats.changes_queued == 0
            await store.delete("acme")
            assert learned(await store.get("acme")) == learned(TenantDNA())
            assert await store.list_tenants() == ["globex", "initech"]
        await store.close()  # idempotent
        with pytest.raises(StoreClosed):
            await store.get("globex")
        with pytest.raises(StoreClosed):
            await store.update_from_session("globex", PROBE)
        if url is not None:
            # A tenant not in memory is read from the file, off the loop.
            async with AsyncTenantDNAStore(url) as reopened:
                versioned = await reopened.get_versioned("globex")
                assert learned(versioned.dna) == learned(saved)
                assert versioned.version == 1
                assert await reopened.count() == 2

    run(main())


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


def test_a_loop_that_ended_with_an_answer_pending_is_not_kept_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The answer comes once the loop is closed: it used to stay queued for
    # that loop, holding it (and its inbox's entry) for good.
    gate = Gate(monkeypatch)
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    with TenantDNAStore() as store:

        async def leave_one_waiting(tenant: str) -> None:
            loops.append(weakref.ref(asyncio.get_running_loop()))
            pending = store.update_from_session_async(tenant, PROBE, alpha=0.01)

            async def wait() -> None:
                await pending

            waiting = asyncio.ensure_future(wait())
            await asyncio.sleep(0)
            assert not waiting.done()  # cancelled when run() closes the loop

        for i in range(5):
            run(leave_one_waiting(f"t{i}"))
        gate.release()
        store.flush(timeout=WAIT)
    gc.collect()
    assert [ref() for ref in loops] == [None] * 5
    assert not gate.timed_out


def test_a_store_dropped_in_a_coroutine_shuts_down_off_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Dropped unclosed, a store commits what it was given and stops: that
    # used to run in the thread that dropped it, here the loop's, blocked
    # until the held change was applied (up to exit_timeout).
    gate = Gate(monkeypatch)

    async def main() -> tuple[bool, int]:
        store = AsyncTenantDNAStore(max_active=1)
        pending = store.store.update_from_session_async("acme", PROBE, alpha=0.01)
        assert gate.entered.wait(WAIT)
        del store
        gc.collect()
        await asyncio.sleep(0)  # the loop runs on while the change is held
        held = not pending.done
        gate.release()
        applied = sessions_applied(await pending)
        return held, applied

    held, applied = run(main())
    assert held
    assert applied == 1
    shutdowns = [t for t in threading.enumerate() if t.name == "tenant-dna-shutdown"]
    for thread in shutdowns:
        thread.join(timeout=WAIT)
    assert not [t for t in shutdowns if t.is_alive()]
    assert not gate.timed_out


def test_a_store_keeps_no_event_loop_alive_once_it_has_run() -> None:
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []
    with TenantDNAStore() as threaded:
        store = AsyncTenantDNAStore()

        async def main() -> None:
            loops.append(weakref.ref(asyncio.get_running_loop()))
            await store.update_from_session("acme", PROBE, alpha=0.01)
            await threaded.update_from_session_async("acme", PROBE, 0.01)

        for _ in range(3):
            asyncio.run(main())
        gc.collect()
        assert [loop() for loop in loops] == [None] * 3
        store.store.close()


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


# -- back-pressure -----------------------------------------------------------


def test_a_flood_of_fire_and_forget_changes_stays_within_max_queued() -> None:
    threads, per_thread, tenants = 4, 15_000, 40
    samples: list[int] = []
    flooding = threading.Event()
    with TenantDNAStore(max_queued=1000) as store:

        def monitor() -> None:
            while flooding.is_set():
                samples.append(store.stats().changes_queued)

        def submit(index: int) -> None:
            for call in range(per_thread):
                tenant = f"t{(index * per_thread + call) % tenants}"
                store.update_from_session_async(tenant, PROBE, alpha=0.01)

        flooding.set()
        watcher = threading.Thread(target=monitor)
        watcher.start()
        submitters = [
            threading.Thread(target=submit, args=(i,)) for i in range(threads)
        ]
        for thread in submitters:
            thread.start()
        for thread in submitters:
            thread.join(timeout=60)
        flooding.clear()
        watcher.join(timeout=WAIT)
        assert not any(t.is_alive() for t in [*submitters, watcher])
        store.flush(timeout=60)
        applied = [sessions_applied(store.get(f"t{i}")) for i in range(tenants)]
        assert store.stats().changes_queued == 0
    assert samples
    assert max(samples) <= 1000 + threads
    assert applied == [threads * per_thread // tenants] * tenants


def test_a_thread_past_max_queued_waits_for_room_and_nothing_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate(monkeypatch)
    submitted: list[Any] = []
    with TenantDNAStore(max_queued=10) as store:

        def submit() -> None:
            for _ in range(30):
                submitted.append(store.update_from_session_async("acme", PROBE, 0.01))

        submitter = threading.Thread(target=submit)
        try:
            submitter.start()
            assert gate.entered.wait(timeout=WAIT)
            # The actor holds one change; nine wait in the mailbox; the
            # submitter waits for a place, however long it is held.
            for _ in range(3):
                submitter.join(timeout=0.05)
                assert submitter.is_alive()
                assert len(submitted) == 10
                assert store.stats().changes_queued == 10
        finally:
            gate.release()
        submitter.join(timeout=WAIT)
        assert not submitter.is_alive()
        results = [future.get(timeout=WAIT) for future in submitted]
        assert sorted(sessions_applied(r) for r in results) == list(range(1, 31))
        assert sessions_applied(store.get("acme")) == 30
    assert not gate.timed_out


@pytest.mark.parametrize(
    ("max_resident", "cap", "expected"),
    [(1, 100_000, 1_000), (2_500, 100_000, 2_500), (5_000, 1_500, 1_500)],
)
def test_max_queued_defaults_to_max_resident_within_its_bounds(
    monkeypatch: pytest.MonkeyPatch, max_resident: int, cap: int, expected: int
) -> None:
    # A change in flight holds its tenant in memory: by default no more are
    # in flight than may be resident (at least 1,000, at most the cap).
    monkeypatch.setattr(actors_store, "DEFAULT_MAX_QUEUED", cap)
    gate = Gate(monkeypatch)
    submitted: list[Any] = []
    with TenantDNAStore(max_resident=max_resident) as store:

        def submit() -> None:
            for index in range(expected + 5):
                submitted.append(
                    store.update_from_session_async(f"t{index}", PROBE, 0.01)
                )

        submitter = threading.Thread(target=submit)
        try:
            submitter.start()
            assert gate.entered.wait(timeout=WAIT)
            assert wait_for(lambda: len(submitted) == expected, WAIT)
            submitter.join(timeout=0.1)
            assert submitter.is_alive()
            assert len(submitted) == expected
            assert store.stats().changes_queued == expected
        finally:
            gate.release()
        submitter.join(timeout=WAIT)
        assert not submitter.is_alive()
        assert all(future.get(timeout=WAIT) for future in submitted)
        assert store.count == expected + 5
    assert not gate.timed_out


def test_a_coroutine_past_max_queued_awaits_without_blocking_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate(monkeypatch)

    async def main() -> tuple[list[TenantDNA], int]:
        async with AsyncTenantDNAStore(max_queued=5) as store:
            try:
                first = [
                    store.update_from_session("acme", PROBE, alpha=0.01)
                    for _ in range(5)
                ]
                tasks = [asyncio.ensure_future(change) for change in first]
                await asyncio.sleep(0)
                assert (await store.stats()).changes_queued == 5
                # No room: this one waits for a place, the loop goes on.
                past = store.update_from_session("acme", PROBE, alpha=0.01)
                last, ticks = await ticks_while_waiting(past, gate.release)
            finally:
                gate.release()
            return [*(await asyncio.gather(*tasks)), last], ticks

    results, ticks = run(main())
    assert sorted(sessions_applied(r) for r in results) == list(range(1, 7))
    assert ticks >= TICKS
    assert not gate.timed_out


def test_a_coroutine_cancelled_while_waiting_for_room_submits_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each wait for room runs in one of the loop's executor threads; a
    # cancelled one used to stay blocked there for good (40 cancelled waits
    # took every worker, and stats() could not start) and submitted its change
    # once room came.
    gate = Gate(monkeypatch)

    async def main() -> tuple[int, int, int]:
        async with AsyncTenantDNAStore(max_queued=1) as store:
            submissions = Submissions(store.store, monkeypatch)
            try:
                held = asyncio.ensure_future(
                    store.update_from_session("held", PROBE, alpha=0.01)
                )
                await asyncio.sleep(0)
                assert gate.entered.wait(WAIT)
                cancelled = 0
                for _ in range(40):
                    try:
                        await asyncio.wait_for(
                            store.update_from_session("gone", PROBE, alpha=0.01),
                            0.01,
                        )
                    except TimeoutError:
                        cancelled += 1
                # An executor worker is free for what needs one.
                await asyncio.wait_for(store.stats(), WAIT)
                # Their threads give up within ROOM_POLL of the cancellation
                # (a wait that cannot end would fail here, not hang).
                assert await asyncio.to_thread(
                    wait_for, lambda: submissions.waiting_for_room == 0, WAIT
                )
            finally:
                gate.release()
            await held
            await store.flush()
            gone = sessions_applied(await store.get("gone"))
            return cancelled, gone, (await store.stats()).changes_queued

    cancelled, gone, queued = run(main())
    assert cancelled == 40
    assert gone == 0
    assert queued == 0
    assert not gate.timed_out


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


def test_max_queued_must_be_a_positive_int() -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_queued"):
            TenantDNAStore(max_queued=bad)
    with pytest.raises(TypeError, match="max_queued"):
        TenantDNAStore(max_queued=1.5)  # type: ignore[arg-type]


def test_logging_is_left_unconfigured_by_the_store() -> None:
    # Importing and using the store adds no handler and sets no level.
    program = (
        "import logging\n"
        "from actors import TenantDNAStore\n"
        "with TenantDNAStore() as store:\n"
        "    store.update_from_session('acme', {'tokens_used': 1})\n"
        "loggers = [logging.getLogger(), logging.getLogger('tenant_dna'),\n"
        "           logging.getLogger('tenant_dna.actors')]\n"
        "print([(len(l.handlers), l.level) for l in loggers])\n"
    )
    result = run_program(program)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{[(0, logging.WARNING), (0, 0), (0, 0)]}\n"
    assert result.stderr == ""
