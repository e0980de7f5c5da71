"""Run a contender driven by coroutines: the ``asyncio`` scenario.

The same steps as :func:`bench.run.run_once`, in one event loop instead of
worker threads: build a fresh :class:`~bench.contenders.AsyncContender`, warm
it (one session per tenant the run touches, submitted together, outside the
clock), start one coroutine per operation list — 1,000 of them — waiting on an
event, set it and time from there to the end of ``flush()``, then read the
probe profiles back to count lost updates, and close the contender.

**The loop's worst stall.** A ticker coroutine sleeps 1 ms at a time in the
same loop and records the longest gap between two of its wake-ups that falls
in the timed region (a gap that began before the clock started counts from
the start; the gap still open when the clock stops counts to the stop). A loop
that is never blocked wakes it every millisecond or so; a coroutine that waits
for a thread, a lock or a file inside the loop shows as a long gap. The ready
coroutines also take their turns between two ticks, so the figure includes
the loop's own work (1,000 coroutines submitting an update each, at worst).

**The collector.** A full collection (generation 2) holds the GIL while it
looks at every tracked object of the process, so it stalls the loop for as
long as that takes, whoever triggers it: 13-30 ms of CPU on this project's
development machine for the 100,000 objects of a run, of which the
harness's own (the plans of every scenario, modules, results so far) are
about 60,000. They are frozen (``gc.freeze``) from before the contender is
built until the run ends: the store's objects - its profiles, cells, the
changes in flight, the coroutines and their futures - are collected as
always, and their collections are in the figure; the harness's are not.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from typing import cast

from bench.contenders import AsyncContender, ContenderSpec
from bench.run import (
    BARRIER_TIMEOUT,
    SAMPLE_EVERY,
    Measurement,
    ThreadPeak,
    _commits,
    _trim_heap,
    measured,
    rss_bytes,
)
from bench.workload import Op, Plan, applied_sessions

TICK = 0.001
"""Seconds the stall ticker sleeps between wake-ups."""


class StallMeter:
    """The longest gap between wake-ups of a 1 ms ticker, while armed.

    Run :meth:`tick` as a task in the loop being measured; :meth:`arm` when
    the clock starts, :meth:`disarm` when it stops (both from the same loop).
    :attr:`worst_ns` keeps the longest gap over every armed stretch.
    """

    def __init__(self) -> None:
        self.worst_ns = 0
        self._last = time.perf_counter_ns()
        self._armed_at: int | None = None

    async def tick(self) -> None:
        """Sleep :data:`TICK` at a time, for ever, noting each gap."""
        clock = time.perf_counter_ns
        self._last = clock()
        while True:
            await asyncio.sleep(TICK)
            self._note(clock())

    def arm(self) -> None:
        """Start counting gaps: from now, not from the last wake-up."""
        self._armed_at = time.perf_counter_ns()

    def disarm(self) -> None:
        """Count the gap still open, up to now, and stop counting."""
        self._note(time.perf_counter_ns())
        self._armed_at = None

    def _note(self, now: int) -> None:
        if self._armed_at is not None:
            self.worst_ns = max(self.worst_ns, now - max(self._last, self._armed_at))
        self._last = now


async def _drive(
    ops: Sequence[Op],
    contender: AsyncContender,
    start: asyncio.Event,
    samples: list[int],
) -> None:
    clock = time.perf_counter_ns
    await start.wait()
    for index, (update, tenant, metrics, alpha) in enumerate(ops):
        if index % SAMPLE_EVERY:
            if update:
                await contender.update(tenant, metrics, alpha)
            else:
                await contender.get(tenant)
        else:
            began = clock()
            if update:
                await contender.update(tenant, metrics, alpha)
            else:
                await contender.get(tenant)
            samples.append(clock() - began)


async def _timed(
    plan: Plan, contender: AsyncContender, threads_peak: ThreadPeak
) -> tuple[int, list[int], int, int, int | None]:
    """Elapsed ns, sorted latency samples, worst stall ns, lost updates, commits."""
    await asyncio.gather(
        *(contender.update(op.tenant, op.metrics, op.alpha) for op in plan.warm)
    )
    await contender.flush()
    commits_before = _commits(contender)
    meter = StallMeter()
    ticker = asyncio.create_task(meter.tick())
    samples: list[int] = []
    elapsed = 0
    try:
        for phase in plan.phases:
            start = asyncio.Event()
            tasks = [
                asyncio.create_task(_drive(ops, contender, start, samples))
                for ops in phase
            ]
            # Let every coroutine reach the event, and the ticker tick, first.
            await asyncio.sleep(TICK)
            threads_peak.sample()
            meter.arm()
            began = time.perf_counter_ns()
            start.set()
            await asyncio.wait_for(asyncio.gather(*tasks), BARRIER_TIMEOUT)
            await contender.flush()
            elapsed += time.perf_counter_ns() - began
            meter.disarm()
            threads_peak.sample()
    finally:
        ticker.cancel()
    commits_after = _commits(contender)
    commits = (
        None
        if commits_before is None or commits_after is None
        else commits_after - commits_before
    )
    lost = 0
    for probe, sent in plan.probes.items():
        dna = await contender.get(probe)
        lost += sent - applied_sessions(dna.avg_task_complexity)
    return elapsed, sorted(samples), meter.worst_ns, lost, commits


async def _run(
    plan: Plan, contender: AsyncContender, threads_peak: ThreadPeak
) -> tuple[tuple[int, list[int], int, int, int | None], int | None]:
    try:
        figures = await _timed(plan, contender, threads_peak)
        # Before close, as for threads: the contender's memory is still held.
        rss_after = rss_bytes()
        threads_peak.sample()
    finally:
        await contender.close()
    return figures, rss_after


def run_once_in_loop(spec: ContenderSpec, plan: Plan, round_: int = 0) -> Measurement:
    """Run ``spec`` (``coroutines=True``) on ``plan`` in a new event loop."""
    gc.collect()
    _trim_heap()
    rss_before = rss_bytes()
    # The harness's objects: see the module's docstring. Frozen already when
    # run by run_all, which must find them so after this run too (unfreeze
    # lets go of everything frozen, not only of what this froze).
    outer = gc.get_freeze_count()
    gc.freeze()
    try:
        with ThreadPeak() as threads_peak:
            contender = cast(AsyncContender, spec.make())
            figures, rss_after = asyncio.run(_run(plan, contender, threads_peak))
    finally:
        if not outer:
            gc.unfreeze()
    elapsed_ns, latencies, stall_ns, lost, commits = figures
    return measured(
        spec,
        plan,
        round_,
        elapsed_ns=elapsed_ns,
        latencies=latencies,
        threads_peak=threads_peak.peak,
        rss=(rss_before, rss_after),
        lost=lost,
        commits=commits,
        loop_stall_ms=stall_ns / 1e6,
    )
