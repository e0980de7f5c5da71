"""Run one contender on one plan and measure it.

A run: build a fresh contender, warm it (one session per tenant the run
touches, outside the clock), start the worker threads at a barrier, time from
the barrier to the last operation with ``time.perf_counter_ns`` — for a
fire-and-forget contender, to the end of ``flush()`` — then read the probe
profiles back to count lost updates, and close the contender.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from bench.contenders import Contender, ContenderSpec
from bench.workload import Op, Plan, applied_sessions

SAMPLE_EVERY = 4
"""One operation in four is timed alone for the latency figures; timing every
one would add two clock reads to the cheapest calls and skew the throughput."""

BARRIER_TIMEOUT = 600.0
"""Seconds a phase may take before the run is declared stuck."""


@dataclass(frozen=True, slots=True)
class Measurement:
    """The figures of one run of one contender on one scenario.

    * ``seconds``: the timed region, every phase added up;
    * ``p50_us`` / ``p99_us``: latency of one call as the worker thread sees it
      (for ``store-async`` updates, the time to submit, not to apply);
    * ``threads_peak``: most OS threads the process had at once during the run,
      the sampling thread not counted;
    * ``rss_growth_bytes``: resident memory after the run minus before the
      contender was built (freed memory is reused by later runs, so this is a
      lower bound);
    * ``probe_sessions`` / ``lost_updates``: probe sessions sent, and how many
      of them the probe profiles do not show;
    * ``storage``: where the contender keeps profiles (its spec's ``storage``);
    * ``loop_stall_ms``: for a run driven by coroutines, the longest gap, in
      milliseconds, between two wake-ups of a 1 ms ticker coroutine in the
      same event loop during the timed region (``None`` for threads);
    * ``commits``: storage transactions the store committed from the start of
      the timed region to the end of the flush after it (from ``stats()``;
      ``None`` for a contender without one).
    """

    scenario: str
    contender: str
    storage: str
    round: int
    threads: int
    ops: int
    updates: int
    tenants: int
    seconds: float
    p50_us: float
    p99_us: float
    threads_peak: int
    rss_growth_bytes: int | None
    probe_sessions: int
    lost_updates: int
    loop_stall_ms: float | None = None
    commits: int | None = None

    @property
    def ops_per_s(self) -> float:
        """Operations per second over the timed region."""
        return self.ops / self.seconds


def os_threads() -> int:
    """The process's OS threads (actors included), or Python's count off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()


def _trim_heap() -> None:
    """Hand free heap memory back to the OS (glibc), so RSS growth is the run's."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_bytes() -> int | None:
    """Resident memory of the process, or ``None`` where ``/proc`` is missing."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class ThreadPeak:
    """The most OS threads seen, sampled every ``interval`` s by its own thread.

    Under the GIL the sampler may not run during a short busy phase, so the
    runner also calls :meth:`sample` itself around each phase.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.peak = os_threads()
        self._interval = interval
        self._stop = threading.Event()
        self._sampler = threading.Thread(
            target=self._run, name="bench-thread-sampler", daemon=True
        )

    def sample(self) -> None:
        """Count the threads now, the sampler itself not included."""
        alive = os_threads()
        if self._sampler.is_alive():
            alive -= 1
        self.peak = max(self.peak, alive)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def __enter__(self) -> ThreadPeak:
        self._sampler.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._sampler.join()


def percentile(sorted_samples: Sequence[int], q: float) -> int:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of sorted samples."""
    return sorted_samples[max(0, math.ceil(q * len(sorted_samples)) - 1)]


def _drive(
    ops: Sequence[Op],
    get: Callable[[str], object],
    write: Callable[..., object],
    samples: list[int],
) -> None:
    clock = time.perf_counter_ns
    for index, (update, tenant, metrics, alpha) in enumerate(ops):
        if index % SAMPLE_EVERY:
            if update:
                write(tenant, metrics, alpha)
            else:
                get(tenant)
        else:
            began = clock()
            if update:
                write(tenant, metrics, alpha)
            else:
                get(tenant)
            samples.append(clock() - began)


def _worker(
    *,
    phases: Sequence[Sequence[Op]],
    contender: Contender,
    asynchronous: bool,
    start: threading.Barrier,
    done: threading.Barrier,
    samples: list[int],
    errors: list[BaseException],
) -> None:
    write = contender.update_async if asynchronous else contender.update
    for ops in phases:
        start.wait(BARRIER_TIMEOUT)
        try:
            _drive(ops, contender.get, write, samples)
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        done.wait(BARRIER_TIMEOUT)


def _timed(
    plan: Plan, contender: Contender, asynchronous: bool, threads_peak: ThreadPeak
) -> tuple[int, list[int]]:
    threads = plan.scenario.threads
    start = threading.Barrier(threads + 1)
    done = threading.Barrier(threads + 1)
    samples: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    workers = [
        threading.Thread(
            target=_worker,
            kwargs={
                "phases": [phase[index] for phase in plan.phases],
                "contender": contender,
                "asynchronous": asynchronous,
                "start": start,
                "done": done,
                "samples": samples[index],
                "errors": errors,
            },
            name=f"bench-worker-{index}",
            daemon=True,
        )
        for index in range(threads)
    ]
    for worker in workers:
        worker.start()
    elapsed = 0
    try:
        for _ in plan.phases:
            # Arrive last, so the clock starts the moment the workers are released.
            while start.n_waiting < threads:
                time.sleep(0.0005)
            threads_peak.sample()
            start.wait(BARRIER_TIMEOUT)
            began = time.perf_counter_ns()
            done.wait(BARRIER_TIMEOUT)
            if asynchronous:
                contender.flush()
            elapsed += time.perf_counter_ns() - began
            threads_peak.sample()
    except BaseException:
        start.abort()  # releases the workers, who then end
        done.abort()
        raise
    for worker in workers:
        worker.join()
    if errors:
        raise RuntimeError(f"a worker failed: {errors[0]!r}") from errors[0]
    return elapsed, sorted(sample for thread in samples for sample in thread)


def _lost_updates(plan: Plan, contender: Contender) -> int:
    return sum(
        sent - applied_sessions(contender.get(probe).avg_task_complexity)
        for probe, sent in plan.probes.items()
    )


def run_once(spec: ContenderSpec, plan: Plan, round_: int = 0) -> Measurement:
    """Run ``spec`` on ``plan`` with a fresh contender and measure it.

    A contender driven by coroutines runs in :mod:`bench.asyncio_run`.
    """
    if spec.coroutines:
        from bench.asyncio_run import run_once_in_loop

        return run_once_in_loop(spec, plan, round_)
    gc.collect()
    _trim_heap()
    rss_before = rss_bytes()
    with ThreadPeak() as threads_peak:
        contender = cast(Contender, spec.make())
        try:
            for op in plan.warm:
                contender.update(op.tenant, op.metrics, op.alpha)
            contender.flush()  # committed before the clock, write-behind too
            commits_before = _commits(contender)
            elapsed_ns, latencies = _timed(
                plan, contender, spec.asynchronous, threads_peak
            )
            contender.flush()
            commits_after = _commits(contender)
            rss_after = rss_bytes()
            lost = _lost_updates(plan, contender)
            threads_peak.sample()
        finally:
            contender.close()
    return measured(
        spec,
        plan,
        round_,
        elapsed_ns=elapsed_ns,
        latencies=latencies,
        threads_peak=threads_peak.peak,
        rss=(rss_before, rss_after),
        lost=lost,
        commits=None
        if commits_before is None or commits_after is None
        else commits_after - commits_before,
    )


def measured(
    spec: ContenderSpec,
    plan: Plan,
    round_: int,
    *,
    elapsed_ns: int,
    latencies: Sequence[int],
    threads_peak: int,
    rss: tuple[int | None, int | None],
    lost: int,
    commits: int | None,
    loop_stall_ms: float | None = None,
) -> Measurement:
    """The :class:`Measurement` of one run, from what the runner timed and counted."""
    rss_before, rss_after = rss
    return Measurement(
        scenario=plan.scenario.name,
        contender=spec.name,
        storage=spec.storage,
        round=round_,
        threads=plan.scenario.threads,
        ops=plan.ops,
        updates=plan.updates,
        tenants=plan.tenants,
        seconds=elapsed_ns / 1e9,
        p50_us=percentile(latencies, 0.50) / 1e3,
        p99_us=percentile(latencies, 0.99) / 1e3,
        threads_peak=threads_peak,
        rss_growth_bytes=(
            None
            if rss_before is None or rss_after is None
            else max(0, rss_after - rss_before)
        ),
        probe_sessions=sum(plan.probes.values()),
        lost_updates=lost,
        loop_stall_ms=loop_stall_ms,
        commits=commits,
    )


def _commits(contender: object) -> int | None:
    """The store's ``stats().commits`` so far, or ``None`` without ``stats``."""
    stats = getattr(contender, "stats", None)
    if stats is None:
        return None
    commits: int = stats().commits
    return commits


def run_all(
    plans: Sequence[Plan],
    specs: Sequence[ContenderSpec],
    rounds: int,
    progress: Callable[[int, int, str], None] = lambda done, total, label: None,
) -> list[Measurement]:
    """Every contender on every plan it takes part in, ``rounds`` times, interleaved.

    A contender runs the scenarios of its kind (:meth:`ContenderSpec.runs`:
    threads, or coroutines for ``asyncio``). Each round runs every scenario
    once per contender, the contenders' order
    rotated by one each round, so slow drifts of a shared machine fall on all
    of them alike. A contender with ``ops_share < 1`` runs the head of each
    plan, ``ops_share`` of its operations. ``progress(done, total, label)``
    is called before each run and once at the end.
    """
    heads = {
        (plan.scenario.name, spec.name): plan.head(round(spec.ops_share * plan.ops))
        if spec.ops_share < 1
        else plan
        for plan in plans
        for spec in specs
        if spec.runs(plan.scenario)
    }
    total = rounds * len(heads)
    measurements: list[Measurement] = []
    # The pre-generated operations are hundreds of thousands of containers; a
    # full collection would walk them all and charge it to whichever contender
    # happened to trigger it. Frozen, the collector skips them.
    gc.collect()
    gc.freeze()
    try:
        for round_ in range(rounds):
            shift = round_ % len(specs)
            order = [*specs[shift:], *specs[:shift]]
            for plan in plans:
                for spec in order:
                    if not spec.runs(plan.scenario):
                        continue
                    progress(
                        len(measurements),
                        total,
                        f"round {round_ + 1}/{rounds} {plan.scenario.name} {spec.name}",
                    )
                    measurements.append(
                        run_once(spec, heads[plan.scenario.name, spec.name], round_)
                    )
    finally:
        gc.unfreeze()
    progress(total, total, "done")
    return measurements
