"""Shared fixtures: a controllable clock for ``last_updated``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import dna

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
