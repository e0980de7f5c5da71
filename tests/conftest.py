"""Shared fixtures and helpers: a clock, probes, threads released together."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

import dna
from actors import TenantDNAStore
from dna import TenantDNA

# Shared 2-core machines: generation time varies, so no deadlines or slowness checks.
settings.register_profile(
    "shared-machine",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("shared-machine")


class TickingClock:
    """A clock that advances one second each time it is read."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.time = start

    def __call__(self) -> float:
        self.time += 1.0
        return self.time


@pytest.fixture
def clock() -> Iterator[TickingClock]:
    ticking = TickingClock()
    previous = dna.set_clock(ticking)
    try:
        yield ticking
    finally:
        dna.set_clock(previous)


@pytest.fixture
def store() -> Iterator[TenantDNAStore]:
    with TenantDNAStore() as opened:
        yield opened


def sessions_applied(dna: TenantDNA) -> int:
    """How many ``{"task_complexity": 1.0}`` sessions at alpha 0.01 made ``dna``.

    From the default 0.5, n such sessions give ``1 - 0.5 * 0.99**n``.
    """
    return round(math.log((1.0 - dna.avg_task_complexity) / 0.5) / math.log(0.99))


PROBE = {"task_complexity": 1.0}

SEED_SESSION = {
    "task_complexity": 0.8,
    "model_tier": "orchestrator",
    "tokens_used": 5000,
    "tools_used": {"code_interpreter": 5, "search": 2},
    "hour_utc": 14,
    "risk_score": 0.4,
    "intent": "code_generation",
}
"""The session of the seed's example."""


def learned(dna: TenantDNA) -> dict[str, object]:
    """The profile's learned fields: everything but ``last_updated``."""
    fields = dna.to_dict()
    del fields["last_updated"]
    return fields


def run_threads(count: int, work: Callable[[int], None], timeout: float = 60) -> None:
    """Run ``work(i)`` in ``count`` threads released together; re-raise a failure.

    The threads are named ``caller-<i>``. A thread still running after
    ``timeout`` seconds fails the test (a hang), as does one held at the start.
    """
    start = threading.Barrier(count)
    failures: list[BaseException] = []

    def body(index: int) -> None:
        try:
            start.wait(timeout=timeout)
            work(index)
        except BaseException as error:
            failures.append(error)

    threads = [
        threading.Thread(target=body, args=(i,), name=f"caller-{i}")
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if failures:
        raise failures[0]


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    failed: Callable[[], bool] = lambda: False,
) -> float | None:
    """Poll ``condition`` every 10 ms; the ``time.time()`` it held, or ``None``.

    Gives up at once when ``failed()`` says there is nothing to wait for.
    """
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return time.time()
        if time.monotonic() >= deadline or failed():
            return None
        time.sleep(0.01)


def writer_request(message: Any) -> str:
    """What a message to the store's writer asks: ``"commit"`` for a cell
    whose change it is handed (alone, or ``("urgent", cell)``), else its kind."""
    from actors._cell import TenantCell

    if type(message) is TenantCell or message[0] == "urgent":
        return "commit"
    return str(message[0])


def record_writer_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each message to a store's writer asked (:func:`writer_request`),
    appended once the writer has handled it. Undone with ``monkeypatch``."""
    from actors._writer import Writer

    received: list[str] = []
    on_receive = Writer.on_receive

    def recording(writer: Writer, message: Any) -> None:
        on_receive(writer, message)
        received.append(writer_request(message))

    monkeypatch.setattr(Writer, "on_receive", recording)
    return received


def hold_commits(
    monkeypatch: pytest.MonkeyPatch,
    release: threading.Event,
    *,
    once: bool = False,
    started: threading.Event | None = None,
    timeout: float = 60.0,
) -> None:
    """Make store writers' commits wait for ``release`` (``timeout`` s at most).

    Every commit of changes waits, or with ``once`` only the first; ``started``
    is set when one starts to wait. Undone with the test's ``monkeypatch``.
    """
    from actors._writer import Writer

    commit = Writer._commit
    held = threading.Event()

    def held_commit(writer: Writer) -> None:
        if writer._batch and not (once and held.is_set()):
            held.set()
            if started is not None:
                started.set()
            assert release.wait(timeout)
        commit(writer)

    monkeypatch.setattr(Writer, "_commit", held_commit)
