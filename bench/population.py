"""``python -m bench.population``: a million distinct tenants in one process.

Issue 11's scenario, run on its own (it takes minutes, so it is not part of
``python -m bench``)::

    python -m bench.population                 # 1,000,000 tenants
    python -m bench.population --quick         # 20,000 tenants, seconds
    python -m bench.population --tenants 200000 --no-ack

**The work.** ``--tenants`` N distinct tenants (``tenant-0000000`` …), each
updated exactly once by one *typical* session drawn up front from a seeded
generator: complexity, tier, tokens (300 to 30,000), 6 distinct tools of the
benchmark's catalogue of 30 (``bench.workload.TOOLS``), one hour and one intent
(of 12) — a single session cannot carry more hours or intents, so the stored
profiles have 6 tools, 1 hour and 1 intent. 16 worker threads each take every
16th tenant. Then a Zipf read pass (s = 1.1, ``--reads`` ``get`` calls, ranks
mapped to tenants by a seeded shuffle, so popularity is not touch order), then
the erasure of ``--erase`` tenants (``delete``, 16 threads; default N/5) from
the in-memory store and of ``--sqlite-erase`` (default 200) on SQLite, where
an erasing commit rewrites the shards it touches and is slow by design.

**The runs**, each in its own forked process (so resident memory is measured
from the same baseline every time, and one run's freed memory does not hide
the next one's growth), one after another:

* ``lock`` — ``bench.contenders.LockedDict`` doing the same first touches and
  reads: the reference of every ratio;
* ``memory / store-async`` — ``TenantDNAStore()`` (default ``max_resident``),
  first touches fire-and-forget (``update_from_session_async``; ``flush()``
  inside the clock), the read pass, a check of every tenant, the erasure;
* ``memory / store-ack`` — a fresh store, the same first touches acknowledged
  (``update_from_session``), and the check of every tenant;
* ``sqlite / store-ack`` — the same on ``sqlite:///<fresh temp dir>/dna.db``
  (``durability="commit"``) with ``max_resident=10,000``, first touches
  fire-and-forget and acknowledged (see :data:`WRITES`), the reads, the check
  and the erasure.

**The figures.** ops/s of each phase and its ratio to ``lock``'s same phase;
RSS growth from just before the store is built to just after the first
touches (and at the end), each reading after ``gc.collect()`` and glibc's
``malloc_trim(0)``, per stored tenant and in total, with the peak (``VmHWM``)
growth; the most OS threads the process had (raw, and net of the 16 workers);
``stats()`` after the first touches and at the end; and correctness: every
tenant read back with ``get_versioned`` and compared, learned fields only (not
``last_updated``), with the profile the lock baseline computed from the same
session (``mismatched``; a tenant read back with version 0 is a lost update),
``count`` against N, and a sample of tenants touched first and never read —
the least recently used, so evicted — checked not to be resident and compared
field by field. Prints tables and writes ``population.json`` to ``--out``
(default ``bench-results/``).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import random
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from bench.contenders import LockedDict
from bench.report import machine
from bench.run import ThreadPeak, _trim_heap, os_threads, rss_bytes
from bench.workload import INTENTS, SESSION_ALPHA, TOOLS, ZIPF_S
from dna import TenantDNA

THREADS = 16
TOOLS_PER_SESSION = 6
SAMPLE = 1_000
"""Tenants touched first and never read, checked field by field after the run."""

DEFAULTS = {"tenants": 1_000_000, "reads": 200_000, "sqlite_erase": 200}
QUICK = {"tenants": 20_000, "reads": 20_000, "sqlite_erase": 100}
ERASE_SHARE = 5
"""By default one tenant in five is erased: 200,000 of 1,000,000."""
SQLITE_MAX_RESIDENT = 10_000
WRITES = {"memory": "async,ack", "sqlite": "async,ack"}
"""The first-touch runs per storage by default (``--memory-writes``,
``--sqlite-writes``)."""

TARGET_FIRST_TOUCH_X_LOCK = 0.5
TARGET_MEMORY_BYTES_PER_TENANT = 600
TARGET_SQLITE_GROWTH_BYTES = 100 * 2**20
TARGET_THREADS_OVER_MAX_ACTIVE = 8

LEARNED = (
    "avg_task_complexity",
    "preferred_model_tier",
    "avg_tokens_per_task",
    "tool_usage_frequency",
    "peak_hours",
    "risk_profile",
    "common_intents",
)
"""What a session teaches; ``last_updated`` is the clock, not learning."""


class PhaseStuck(RuntimeError):
    """A phase took longer than its time budget: the run is declared stuck."""


# -- the workload, drawn once in the parent and inherited by every fork -----


@dataclass(slots=True)
class Population:
    """Everything the runs share, generated before any thread starts."""

    tenants: list[str]
    touches: list[list[tuple[str, dict[str, Any], float]]]
    reads: list[list[tuple[str]]]
    erasures: list[list[tuple[str]]]
    sample: list[str]
    distinct_read: int = 0
    seconds: float = 0.0


def typical_session(rng: random.Random) -> dict[str, Any]:
    """One session: 6 distinct tools, one hour, one intent, every scalar field."""
    return {
        "task_complexity": rng.random(),
        "model_tier": "orchestrator" if rng.random() < 0.4 else "worker",
        "tokens_used": rng.randint(300, 30_000),
        "tools_used": {
            tool: rng.randint(1, 8) for tool in rng.sample(TOOLS, TOOLS_PER_SESSION)
        },
        "hour_utc": rng.randrange(24),
        "risk_score": rng.random(),
        "intent": rng.choice(INTENTS),
    }


def tenant_id(index: int) -> str:
    """The id of the tenant of ``index``: ``tenant-0000042``."""
    return f"tenant-{index:07d}"


def population(
    tenants: int, reads: int, erase: int, seed: int = 1, threads: int = THREADS
) -> Population:
    """The sessions, the Zipf reads and the erasures of a run, from ``seed``."""
    began = time.perf_counter()
    rng = random.Random(f"{seed}:population-sessions")
    ids = [tenant_id(index) for index in range(tenants)]
    touches: list[list[tuple[str, dict[str, Any], float]]] = [
        [] for _ in range(threads)
    ]
    for index, tenant in enumerate(ids):
        touches[index % threads].append((tenant, typical_session(rng), SESSION_ALPHA))
    read_rng = random.Random(f"{seed}:population-reads")
    by_rank = list(ids)
    read_rng.shuffle(by_rank)
    cum_weights = list(
        itertools.accumulate(1.0 / (rank + 1) ** ZIPF_S for rank in range(tenants))
    )
    drawn = read_rng.choices(by_rank, cum_weights=cum_weights, k=reads)
    del cum_weights, by_rank
    read_lanes = [
        [(tenant,) for tenant in drawn[lane::threads]] for lane in range(threads)
    ]
    read_set = set(drawn)
    erase_rng = random.Random(f"{seed}:population-erase")
    erased = erase_rng.sample(ids, min(erase, tenants))
    erase_lanes = [
        [(tenant,) for tenant in erased[lane::threads]] for lane in range(threads)
    ]
    # The first tenants each thread touches and the read pass never reads: the
    # least recently used of the population when the run ends.
    per_lane = math.ceil(SAMPLE / threads)
    sample = [
        tenant
        for lane in touches
        for tenant in [t for t, _, _ in lane if t not in read_set][:per_lane]
    ][:SAMPLE]
    return Population(
        ids,
        touches,
        read_lanes,
        erase_lanes,
        sample,
        distinct_read=len(read_set),
        seconds=time.perf_counter() - began,
    )


# -- measuring -----------------------------------------------------------------


def learned(dna: TenantDNA) -> dict[str, Any]:
    """The profile's learned fields, ``last_updated`` left out."""
    data = dna.to_dict()
    return {key: data[key] for key in LEARNED}


def digest(dna: TenantDNA) -> bytes:
    """8 bytes that change with any learned field (floats compared exactly)."""
    fields = (
        dna.avg_task_complexity.hex(),
        dna.preferred_model_tier,
        dna.avg_tokens_per_task,
        sorted((tool, value.hex()) for tool, value in dna.tool_usage_frequency.items()),
        list(dna.peak_hours),
        dna.risk_profile.hex(),
        list(dna.common_intents),
    )
    return hashlib.blake2b(repr(fields).encode(), digest_size=8).digest()


def settled_rss() -> int | None:
    """Resident memory after a full collection and a heap trim."""
    gc.collect()
    _trim_heap()
    return rss_bytes()


def peak_rss() -> int | None:
    """The most resident memory the process has had (``VmHWM``)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _growth(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def timed_phase(
    lanes: Sequence[Sequence[tuple[Any, ...]]],
    call: Callable[..., object],
    peak: ThreadPeak,
    budget: float,
    flush: Callable[[float], None] | None = None,
) -> float:
    """Run ``call(*args)`` for every args of every lane, one thread per lane.

    The clock starts when the workers are released together and stops when
    the last one is done (and, given ``flush``, once it returns). Raises
    :class:`PhaseStuck` past ``budget`` seconds, and the first worker error.
    """
    start = threading.Barrier(len(lanes) + 1, timeout=budget)
    errors: list[BaseException] = []

    def work(lane: Sequence[tuple[Any, ...]]) -> None:
        start.wait()
        try:
            for args in lane:
                call(*args)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    workers = [
        threading.Thread(
            target=work, args=(lane,), name=f"bench-worker-{index}", daemon=True
        )
        for index, lane in enumerate(lanes)
    ]
    for worker in workers:
        worker.start()
    while start.n_waiting < len(lanes):
        time.sleep(0.0005)
    peak.sample()
    start.wait()
    began = time.perf_counter()
    deadline = began + budget
    for worker in workers:
        worker.join(max(0.0, deadline - time.perf_counter()))
        if worker.is_alive():
            raise PhaseStuck(f"workers still busy after {budget:.0f} s")
    peak.sample()
    if flush is not None:
        flush(max(1.0, deadline - time.perf_counter()))
    elapsed = time.perf_counter() - began
    peak.sample()
    if errors:
        raise RuntimeError(f"a worker failed: {errors[0]!r}") from errors[0]
    return elapsed


def _rate(ops: int, seconds: float) -> dict[str, float]:
    return {"ops": ops, "seconds": seconds, "ops_per_s": ops / seconds}


def _progress(label: str, message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {label}: {message}\n")
    sys.stderr.flush()


@dataclass(slots=True)
class Job:
    """One run, done in a forked process."""

    label: str
    contender: str
    storage: str
    acknowledged: bool = False
    max_resident: int | None = None
    read: bool = True
    erase: int = 0
    """Tenants to erase at the end (the head of the erasure lanes), or 0."""
    budget: float = 1800.0
    options: dict[str, Any] = field(default_factory=dict)


def run_lock(pop: Population, job: Job) -> dict[str, Any]:
    """The dict-and-lock baseline: the same first touches and reads."""
    result: dict[str, Any] = {}
    rss_before = settled_rss()
    with ThreadPeak() as peak:
        lock = LockedDict()
        result["first_touch"] = _rate(
            len(pop.tenants), timed_phase(pop.touches, lock.update, peak, job.budget)
        )
        _progress(job.label, f"first touches {result['first_touch']['seconds']:.1f} s")
        rss_after = settled_rss()
        reads = sum(map(len, pop.reads))
        result["read"] = _rate(
            reads, timed_phase(pop.reads, lock.get, peak, job.budget)
        )
        digests = bytearray()
        for tenant in pop.tenants:
            digests += digest(lock.get(tenant))
        result["digests"] = bytes(digests)
        result["sample"] = {tenant: learned(lock.get(tenant)) for tenant in pop.sample}
        lock.close()
    result["rss_before"] = rss_before
    result["rss_after_first_touch"] = rss_after
    result["rss_growth_bytes"] = _growth(rss_after, rss_before)
    result["threads_peak"] = peak.peak
    return result


def run_store(pop: Population, job: Job) -> dict[str, Any]:
    """One store run: first touches, then (as the job says) reads, checks, erasure."""
    from actors import TenantDNAStore

    # The store's own max_active: the population runs as a service would.
    result: dict[str, Any] = {}
    folder: tempfile.TemporaryDirectory[str] | None = None
    options: dict[str, Any] = {}
    if job.max_resident is not None:
        options["max_resident"] = job.max_resident
    if job.storage == "sqlite":
        folder = tempfile.TemporaryDirectory(prefix="bench-population-")
        options["url"] = f"sqlite:///{folder.name}/dna.db"
        options["durability"] = "commit"
    n = len(pop.tenants)
    rss_before = settled_rss()
    result["rss_before"] = rss_before
    blocks_before = sys.getallocatedblocks()
    hwm_before = peak_rss()
    try:
        with ThreadPeak() as peak:
            store = TenantDNAStore(**options)
            context = getattr(store, "_context", None)
            result["max_resident"] = getattr(context, "max_resident", job.max_resident)
            result["max_active"] = getattr(context, "max_active", None)
            try:
                write = (
                    store.update_from_session
                    if job.acknowledged
                    else store.update_from_session_async
                )
                seconds = timed_phase(
                    pop.touches,
                    write,
                    peak,
                    job.budget,
                    flush=store.flush,
                )
                result["first_touch"] = _rate(n, seconds)
                _progress(job.label, f"first touches {seconds:.1f} s")
                rss_after = settled_rss()
                result["rss_after_first_touch"] = rss_after
                result["rss_growth_bytes"] = _growth(rss_after, rss_before)
                result["blocks_growth"] = sys.getallocatedblocks() - blocks_before
                result["stats_after_first_touch"] = asdict(store.stats())
                if job.read:
                    reads = sum(map(len, pop.reads))
                    seconds = timed_phase(pop.reads, store.get, peak, job.budget)
                    result["read"] = _rate(reads, seconds)
                    _progress(job.label, f"reads {seconds:.1f} s")
                result.update(_check(store, pop, job))
                result["rss_end"] = settled_rss()
                result["stats_end"] = asdict(store.stats())
                if job.erase > 0:
                    result["erase"] = _erase(store, pop, job, peak)
            finally:
                began = time.perf_counter()
                store.close()
                result["close_seconds"] = time.perf_counter() - began
            peak.sample()
    finally:
        if folder is not None:
            result["sqlite_file_bytes"] = sum(
                path.stat().st_size for path in Path(folder.name).iterdir()
            )
            folder.cleanup()
    result["threads_peak"] = peak.peak
    result["rss_peak_growth_bytes"] = _growth(peak_rss(), hwm_before)
    return result


def _check(store: Any, pop: Population, job: Job) -> dict[str, Any]:
    """Read every tenant back; the sample of evicted ones field by field."""
    began = time.perf_counter()
    directory = getattr(store, "_directory", None)
    resident_in_sample = (
        None
        if directory is None
        else [tenant for tenant in pop.sample if tenant in directory]
    )
    sample = {}
    for tenant in pop.sample:
        versioned = store.get_versioned(tenant)
        sample[tenant] = learned(versioned.dna) if versioned.version else None
    digests = bytearray()
    missing = 0
    versions: dict[int, int] = {}
    for tenant in pop.tenants:
        versioned = store.get_versioned(tenant)
        if versioned.version == 0:
            missing += 1
            digests += bytes(8)
        else:
            digests += digest(versioned.dna)
        versions[versioned.version] = versions.get(versioned.version, 0) + 1
    stored = store.count
    seconds = time.perf_counter() - began
    _progress(job.label, f"every tenant read back in {seconds:.1f} s")
    return {
        "stored": stored,
        "missing": missing,
        "versions": {str(key): value for key, value in sorted(versions.items())},
        "digests": bytes(digests),
        "sample": sample,
        "sample_resident": resident_in_sample,
        "check_seconds": seconds,
    }


def _erase(store: Any, pop: Population, job: Job, peak: ThreadPeak) -> dict[str, Any]:
    """Delete the erasure set from 16 threads; RSS before and after."""
    per_lane = math.ceil(job.erase / len(pop.erasures))
    lanes = [lane[:per_lane] for lane in pop.erasures]
    erased = sum(map(len, lanes))
    rss_before = settled_rss()
    blocks_before = sys.getallocatedblocks()
    seconds = timed_phase(lanes, store.delete, peak, job.budget)
    _progress(job.label, f"erased {erased:,} in {seconds:.1f} s")
    rss_after = settled_rss()
    blocks_freed = blocks_before - sys.getallocatedblocks()
    still_there = sum(
        store.get_versioned(tenant).version != 0 for lane in lanes for (tenant,) in lane
    )
    return {
        **_rate(erased, seconds),
        "rss_before": rss_before,
        "rss_after": rss_after,
        "rss_freed_bytes": _growth(rss_before, rss_after),
        "blocks_freed": blocks_freed,
        "stored_after": store.count,
        "still_readable": still_there,
        "stats_after": asdict(store.stats()),
    }


# -- the forks -----------------------------------------------------------------


def _child(pop: Population, job: Job, connection: Connection) -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )
    try:
        began = time.perf_counter()
        run = run_lock if job.contender == "lock" else run_store
        result = run(pop, job)
        result["wall_seconds"] = time.perf_counter() - began
        result["threads_at_start"] = 1
        connection.send(("ok", result))
    except BaseException as error:
        connection.send(("error", f"{error!r}\n{traceback.format_exc()}"))
    finally:
        connection.close()


def run_forked(pop: Population, job: Job) -> dict[str, Any]:
    """Run ``job`` in a forked process; its result, or ``{"error": ...}``."""
    if os_threads() != 1:  # pragma: no cover - a fork with threads is unsafe
        raise RuntimeError("fork with threads running")
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(pop, job, sender), daemon=True)
    _progress(job.label, "started")
    process.start()
    sender.close()
    # Every phase has its own budget inside the child; this one is a backstop.
    if not receiver.poll(job.budget * 4):
        process.kill()
        process.join()
        return {"error": f"no result after {job.budget * 4:.0f} s (killed)"}
    try:
        status, payload = receiver.recv()
    except EOFError:
        payload, status = f"the child died (exit code {process.exitcode})", "error"
    process.join(60)
    if process.is_alive():  # pragma: no cover - a hang at close
        process.kill()
        process.join()
    if status != "ok":
        _progress(job.label, f"FAILED: {payload}")
        return {"error": payload}
    _progress(job.label, f"done in {payload['wall_seconds']:.1f} s")
    return dict(payload)


# -- the report ----------------------------------------------------------------


def _compare(lock: dict[str, Any], run: dict[str, Any], n: int) -> dict[str, Any]:
    """Correctness of one store run against the lock baseline."""
    mine, theirs = run.pop("digests"), lock["digests"]
    zero = bytes(8)
    mismatched = sum(
        mine[i : i + 8] != theirs[i : i + 8] and mine[i : i + 8] != zero
        for i in range(0, len(mine), 8)
    )
    sample = run.pop("sample")
    resident = run.pop("sample_resident")
    kept = set(resident or ())
    evicted = [tenant for tenant in sample if tenant not in kept]
    return {
        "stored": run["stored"],
        "stored_equals_n": run["stored"] == n,
        "lost_updates": run["missing"],
        "mismatched": mismatched,
        "evicted_sample": {
            "checked": len(sample),
            "equal": sum(sample[t] == lock["sample"][t] for t in sample),
            # None: the store's directory was not found, residency unknown.
            "evicted": None if resident is None else len(evicted),
            "evicted_equal": None
            if resident is None
            else sum(sample[t] == lock["sample"][t] for t in evicted),
        },
    }


def _verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("met" if ok else "MISSED")


def summarise(
    pop: Population, lock: dict[str, Any], runs: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The figures of every run, with ratios, correctness and target verdicts."""
    n = len(pop.tenants)
    lock_rates = {phase: lock[phase]["ops_per_s"] for phase in ("first_touch", "read")}
    summary: dict[str, Any] = {}
    for label, run in runs.items():
        if "error" in run:
            summary[label] = run
            continue
        storage = run["storage"]
        entry = dict(run)
        for phase in ("first_touch", "read"):
            if phase in entry:
                entry[phase] = {
                    **entry[phase],
                    "x_lock": entry[phase]["ops_per_s"] / lock_rates[phase],
                }
        entry["correctness"] = _compare(lock, entry, n)
        growth = entry["rss_growth_bytes"]
        entry["rss_per_tenant_bytes"] = None if growth is None else growth / n
        # After the read pass and the check of every tenant, before erasure.
        end_growth = _growth(entry["rss_end"], entry["rss_before"])
        entry["rss_end_growth_bytes"] = end_growth
        entry["threads_peak_net"] = entry["threads_peak"] - THREADS
        stats = entry["stats_end"]
        sample = entry["correctness"]["evicted_sample"]
        targets: dict[str, Any] = {
            "first_touch_x_lock >= 0.5": entry["first_touch"]["x_lock"]
            >= TARGET_FIRST_TOUCH_X_LOCK,
            "threads_peak_net <= max_active + 8": entry["threads_peak_net"]
            <= entry["max_active"] + TARGET_THREADS_OVER_MAX_ACTIVE,
            "resident <= max_resident": stats["resident"] <= entry["max_resident"],
            "stored == N, 0 lost, 0 mismatched": entry["correctness"]["stored_equals_n"]
            and entry["correctness"]["lost_updates"] == 0
            and entry["correctness"]["mismatched"] == 0,
            "evicted sample read back equal": bool(sample["evicted"])
            and sample["evicted_equal"] == sample["evicted"]
            and sample["equal"] == sample["checked"],
        }
        if growth is not None and storage == "memory":
            targets["RSS per tenant <= 600 B"] = (
                growth / n <= TARGET_MEMORY_BYTES_PER_TENANT
            )
        if growth is not None and storage == "sqlite":
            targets["RSS growth <= 100 MiB, after first touches"] = (
                growth <= TARGET_SQLITE_GROWTH_BYTES
            )
        if end_growth is not None and storage == "sqlite":
            targets["RSS growth <= 100 MiB, at the end"] = (
                end_growth <= TARGET_SQLITE_GROWTH_BYTES
            )
        entry["targets"] = targets
        summary[label] = entry
    return summary


def _n(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / 2**20:,.1f} MiB"


def table(result: dict[str, Any]) -> str:
    """The tables printed at the end of a run."""
    lock = result["lock"]
    runs = result["runs"]
    lines = [
        f"{result['tenants']:,} tenants, {THREADS} threads, "
        f"{result['reads']:,} Zipf reads ({result['distinct_read']:,} distinct), "
        f"erasures: {result['erase']:,} in memory, {result['sqlite_erase']:,} "
        "on SQLite",
        "",
        f"{'run':<22}{'phase':<13}{'ops/s':>11}{'x lock':>8}{'seconds':>9}",
        "-" * 63,
    ]
    phases = [("first_touch", "first touch"), ("read", "zipf read"), ("erase", "erase")]
    rows = [("lock", lock), *runs.items()]
    for key, name in phases:
        for label, run in rows:
            if "error" in run or key not in run:
                continue
            figure = run[key]
            lines.append(
                f"{label:<22}{name:<13}{_n(figure['ops_per_s']):>11}"
                f"{_n(figure.get('x_lock', 1.0 if label == 'lock' else None), 2):>8}"
                f"{_n(figure['seconds'], 1):>9}"
            )
    lines += [
        "",
        f"{'run':<22}{'RSS growth':>13}{'B/tenant':>10}{'blocks/t':>10}"
        f"{'at end':>13}{'peak RSS +':>13}"
        f"{'threads':>8}{'net':>5}{'resident':>10}{'max_res':>9}"
        f"{'stored':>11}{'lost':>6}{'wrong':>6}{'evicted equal/evicted/sample':>30}",
        "-" * 166,
    ]
    growth = lock["rss_growth_bytes"]
    lines.append(
        f"{'lock':<22}{_mib(growth):>13}"
        f"{_n(None if growth is None else growth / result['tenants']):>10}"
        f"{'—':>10}{'—':>13}{'—':>13}"
        f"{lock['threads_peak']:>8}{lock['threads_peak'] - THREADS:>5}"
    )
    for label, run in runs.items():
        if "error" in run:
            lines.append(f"{label:<22}ERROR {run['error'].splitlines()[0]}")
            continue
        correct = run["correctness"]
        sample = correct["evicted_sample"]
        lines.append(
            f"{label:<22}{_mib(run['rss_growth_bytes']):>13}"
            f"{_n(run['rss_per_tenant_bytes']):>10}"
            f"{_n(run['blocks_growth'] / result['tenants'], 2):>10}"
            f"{_mib(run['rss_end_growth_bytes']):>13}"
            f"{_mib(run['rss_peak_growth_bytes']):>13}"
            f"{run['threads_peak']:>8}{run['threads_peak_net']:>5}"
            f"{run['stats_end']['resident']:>10,}{run['max_resident']:>9,}"
            f"{correct['stored']:>11,}{correct['lost_updates']:>6}"
            f"{correct['mismatched']:>6}"
            f"{_n(sample['evicted_equal']):>7}/{_n(sample['evicted'])}"
            f"/{sample['checked']}"
        )
    lines.append(
        "RSS growth: from before the store to after the first touches (gc, "
        "malloc_trim); blocks/t: Python allocator blocks still live, per tenant;\n"
        "at end: RSS growth after the read pass and the check of every tenant; "
        "peak RSS +: VmHWM growth; net: threads less the 16 workers"
    )
    for label, run in runs.items():
        if "erase" in run:
            erase = run["erase"]
            lines.append(
                f"\n{label} erase: {erase['ops']:,} deletes in "
                f"{erase['seconds']:.1f} s; RSS {_mib(erase['rss_before'])} -> "
                f"{_mib(erase['rss_after'])} (freed {_mib(erase['rss_freed_bytes'])}, "
                f"{erase['blocks_freed']:,} Python blocks); "
                f"stored after {erase['stored_after']:,}, "
                f"still readable {erase['still_readable']}, "
                f"resident {erase['stats_after']['resident']:,}"
            )
    lines.append("\nstats() at the end:")
    for label, run in runs.items():
        if "stats_end" in run:
            stats = ", ".join(f"{k}={v:,}" for k, v in run["stats_end"].items())
            lines.append(f"  {label}: {stats}")
    lines.append("\ntargets:")
    for label, run in runs.items():
        for name, ok in run.get("targets", {}).items():
            lines.append(f"  {label:<22}{name:<44}{_verdict(ok)}")
    return "\n".join(lines)


# -- the command line ----------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` changes the defaults, explicit values win."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.population", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="20,000 tenants, 20,000 reads, 4,000 (100 on SQLite) erased, "
        "max_resident N/10",
    )
    parser.add_argument("--tenants", type=int, help="population (default 1,000,000)")
    parser.add_argument("--reads", type=int, help="Zipf reads (default 200,000)")
    parser.add_argument(
        "--erase",
        type=int,
        help="tenants erased from the in-memory store (default N/5: 200,000)",
    )
    parser.add_argument(
        "--sqlite-erase",
        type=int,
        help="tenants erased on SQLite (default 200; quick 100): an erasing "
        "commit there rewrites the shards it touches, so it is slow by design",
    )
    parser.add_argument(
        "--memory-max-resident",
        type=int,
        help="max_resident of the in-memory store (default: the store's; quick N/10)",
    )
    parser.add_argument(
        "--sqlite-max-resident",
        type=int,
        help=f"max_resident on SQLite (default {SQLITE_MAX_RESIDENT:,}; quick N/10)",
    )
    parser.add_argument(
        "--storages", default="memory,sqlite", help="subset of memory,sqlite"
    )
    for storage, default in WRITES.items():
        parser.add_argument(
            f"--{storage}-writes",
            default=default,
            help=f"first-touch runs on {storage}, in order: async (fire-and-forget) "
            f"and/or ack (acknowledged); the first also reads and erases "
            f"(default {default})",
        )
    parser.add_argument(
        "--no-ack",
        action="store_true",
        help="skip the acknowledged first touches (where async is also run)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=1800.0,
        help="seconds a phase may take before the run is declared stuck",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.tenants < THREADS:
        parser.error(f"--tenants must be at least {THREADS}")
    if args.erase is None:
        args.erase = args.tenants // ERASE_SHARE
    if args.reads < 1 or args.erase < 0 or args.sqlite_erase < 0:
        parser.error(
            "--reads must be at least 1, --erase and --sqlite-erase at least 0"
        )
    args.erase = min(args.erase, args.tenants)
    args.sqlite_erase = min(args.sqlite_erase, args.erase)
    if args.quick:
        small = max(1, args.tenants // 10)
        if args.memory_max_resident is None:
            args.memory_max_resident = small
        if args.sqlite_max_resident is None:
            args.sqlite_max_resident = small
    if args.sqlite_max_resident is None:
        args.sqlite_max_resident = SQLITE_MAX_RESIDENT
    storages = args.storages.split(",")
    if not storages or set(storages) - {"memory", "sqlite"}:
        parser.error("--storages: a subset of memory,sqlite")
    args.storages = storages
    for storage in ("memory", "sqlite"):
        name = f"{storage}_writes"
        writes = getattr(args, name).split(",")
        if (
            not writes
            or set(writes) - {"async", "ack"}
            or len(set(writes)) < len(writes)
        ):
            parser.error(f"--{storage}-writes: async and/or ack")
        if args.no_ack and writes != ["ack"]:
            writes = [mode for mode in writes if mode != "ack"]
        setattr(args, name, writes)
    return args


def jobs(args: argparse.Namespace) -> list[Job]:
    """The store runs, in order: per storage, fire-and-forget then acknowledged.

    The first run of a storage also does the read pass and the erasure.
    """
    planned = []
    for storage in args.storages:
        max_resident = (
            args.memory_max_resident
            if storage == "memory"
            else args.sqlite_max_resident
        )
        writes = args.memory_writes if storage == "memory" else args.sqlite_writes
        for index, mode in enumerate(writes):
            planned.append(
                Job(
                    f"{storage}/store-{mode}",
                    f"store-{mode}",
                    storage,
                    acknowledged=mode == "ack",
                    max_resident=max_resident,
                    read=index == 0,
                    erase=0
                    if index
                    else (args.erase if storage == "memory" else args.sqlite_erase),
                    budget=args.budget,
                )
            )
    return planned


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the population, run every job in a fork, print, write JSON."""
    args = parse_args(argv)
    began = time.perf_counter()
    pop = population(args.tenants, args.reads, args.erase, args.seed)
    _progress(
        "population",
        f"{args.tenants:,} sessions, {args.reads:,} reads drawn in {pop.seconds:.1f} s",
    )
    # Forked children inherit the population; frozen, no collection walks it.
    gc.collect()
    gc.freeze()
    lock = run_forked(pop, Job("lock", "lock", "memory", budget=args.budget))
    if "error" in lock:
        print(f"the lock baseline failed: {lock['error']}", file=sys.stderr)
        return 1
    runs: dict[str, dict[str, Any]] = {}
    for job in jobs(args):
        run = run_forked(pop, job)
        if "error" not in run:
            run = {"contender": job.contender, "storage": job.storage, **run}
        runs[job.label] = run
    summary = summarise(pop, lock, runs)
    lock.pop("digests")
    lock.pop("sample")
    result = {
        "tenants": args.tenants,
        "threads": THREADS,
        "reads": sum(map(len, pop.reads)),
        "distinct_read": pop.distinct_read,
        "erase": args.erase,
        "sqlite_erase": args.sqlite_erase if "sqlite" in args.storages else 0,
        "seed": args.seed,
        "quick": args.quick,
        "session": (
            f"typical: {TOOLS_PER_SESSION} distinct tools of {len(TOOLS)}, "
            f"1 hour, 1 intent of {len(INTENTS)}, alpha {SESSION_ALPHA}"
        ),
        "sample": len(pop.sample),
        "lock": lock,
        "runs": summary,
        "seconds": time.perf_counter() - began,
        "machine": machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "population.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwrote {path} ({result['seconds']:.0f} s)")
    failed = any("error" in run for run in runs.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
