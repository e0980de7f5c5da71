"""``python -m bench.processes --url postgresql://…``: the store across processes.

Not part of ``python -m bench`` (which needs no server). Two measurements on
one PostgreSQL server:

* **processes** — 4 worker processes x 4 threads each finish sessions
  (updates only) on a shared Zipf population (1,000 tenants by default, the
  sessions of :mod:`bench.workload`: the plan of a 16-thread scenario, 4 of
  its operation lists per process). Every contender runs the same operations:

  * ``store`` — each process its own ``TenantDNAStore(url)``, updates
    acknowledged (``update_from_session``: returns once committed);
  * ``store-async`` — the same, fire-and-forget
    (``update_from_session_async``), each process's ``flush()`` inside the clock;
  * ``lock-postgres`` — what a user would write without the store (a
    :class:`LockedPostgres` per process): a dict and a ``threading.Lock``, each
    change a read-modify-write transaction through psycopg 3 (``SELECT … FOR
    UPDATE`` of the tenant's JSON row, ``update_from_session``, ``UPDATE`` or
    ``INSERT``, ``COMMIT``) on a table of its own, :data:`LOCK_TABLE`.

  Before the clock each process applies one warm-up session to every tenant
  its threads will touch (so profiles are stored, and resident in the
  store's processes, as in a running service). The clock runs from the moment
  the processes are released together to the last one's end (``flush()``
  included); ``time.monotonic_ns`` is system-wide on Linux, so the processes'
  readings compare. Lost updates are counted with probe tenants
  (:func:`bench.workload.applied_sessions`) read back after the run; they must
  be 0 for every contender.

* **staleness** — a writer (this process) saves a tenant ``--writes`` times,
  5 to 15 ms apart, noting when each ``save`` returned; a reader process holds
  the tenant resident in its own store and polls ``get`` every 0.2 ms, noting
  when it first sees each value (or a later one). Staleness is the difference:
  p50 and p99 over every write.

Every run starts on empty tables: the bench creates a database of its own on
the server (``tenant_dna_bench_<pid>_<hex>``; the role needs ``CREATEDB``),
empties it between runs (``DROP SCHEMA public CASCADE``) and drops it at the
end. The database named in ``--url`` is only used to create and drop that one.

Prints a table and writes ``processes.json`` to ``--out`` (default
``bench-results/``). Targets (issue 12): ``store`` ÷ ``lock-postgres`` ≥ 3,
staleness p99 ≤ 100 ms on loopback, 0 lost updates. As in ``python -m
bench``, ratios and staleness are judged only in a run of two rounds or more
that is not ``--quick``; lost updates always.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import queue
import random
import secrets
import statistics
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
import structlog
from psycopg import sql

from bench.contenders import Contender, LockedDict, Metrics, StoreContender
from bench.report import machine, met, within
from bench.run import _drive, percentile
from bench.workload import PROBE_ALPHA, Op, Plan, Scenario, Workload, applied_sessions
from dna import TenantDNA

PROCESSES = 4
THREADS = 4
SCENARIO = Scenario(
    "processes",
    f"{PROCESSES} processes x {THREADS} threads finishing sessions (updates only)",
    PROCESSES * THREADS,
)

CONTENDERS = ("lock-postgres", "store", "store-async")
"""In table order; ``lock-postgres`` is the reference."""
REFERENCE = "lock-postgres"
ASYNCHRONOUS = frozenset({"store-async"})

DEFAULTS = {"tenants": 1_000, "ops": 16_000, "rounds": 3, "writes": 200}
QUICK = {"tenants": 100, "ops": 800, "rounds": 1, "writes": 20}

TARGET_RATIO = 3.0
"""``store`` ÷ ``lock-postgres``, at least (issue 12)."""
TARGET_P99_MS = 100.0
"""Cross-process staleness p99, at most, on loopback (SPEC §7)."""

LOCK_TABLE = "bench_lock_profiles"
"""``lock-postgres``'s table, in the bench's own database (never tenant-dna's)."""

TIMEOUT = 600.0
"""Seconds a run may take before it is declared stuck."""

WATCHED = "watched"
"""The staleness run's tenant."""

POLL = 0.0002
"""Seconds the staleness reader sleeps between two ``get``."""

BASE_TOKENS = 1_000_000
"""Write ``n`` saves ``avg_tokens_per_task = BASE_TOKENS + n``: above anything
the reader's own first session leaves (2,000 by default)."""


# -- the bench's database ------------------------------------------------------


def with_database(url: str, database: str) -> str:
    """``url`` pointing at another database of the same server."""
    parts = urllib.parse.urlsplit(url)
    path = "/" + urllib.parse.quote(database)
    return urllib.parse.urlunsplit(parts._replace(path=path))


def _admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


@contextlib.contextmanager
def bench_database(url: str) -> Iterator[str]:
    """A database created on ``url``'s server for this run, dropped at the end."""
    name = f"tenant_dna_bench_{os.getpid()}_{secrets.token_hex(4)}"
    with _admin(url) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(url, name)
    finally:
        with _admin(url) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )


def empty(url: str) -> None:
    """Drop every table of the bench's database ``url`` (tenant-dna's too).

    Only ever called on a database :func:`bench_database` created.
    """
    with _admin(url) as connection:
        connection.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


def server_version(url: str) -> str:
    with _admin(url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# -- lock-postgres ---------------------------------------------------------------


class LockedPostgres(LockedDict):
    """:class:`~bench.contenders.LockedDict` committing each change to PostgreSQL.

    What a user would write to share the lock baseline between processes:
    per process the dict and the lock, one psycopg 3 connection used only
    under the lock, and per update one read-modify-write transaction on
    :data:`LOCK_TABLE` (``tenant_id text PRIMARY KEY, dna text``, the JSON of
    ``to_dict()``): ``SELECT dna … FOR UPDATE`` — the row, not the dict, is
    the truth another process may have changed — then ``update_from_session``,
    ``UPDATE`` (or ``INSERT … ON CONFLICT DO NOTHING`` for a new tenant; if
    another process inserted it meanwhile, the transaction is rolled back and
    run again), ``COMMIT`` with ``synchronous_commit = on`` (as the store's
    connections). The dict takes the committed profile; reads go to the table
    (they are not timed here: the lost-update count uses them).
    """

    def __init__(self, url: str) -> None:
        super().__init__()
        self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self._db.execute("SET synchronous_commit = on")

    @staticmethod
    def create_table(url: str) -> None:
        """Create :data:`LOCK_TABLE` in the (empty) database ``url``."""
        with _admin(url) as connection:
            connection.execute(
                sql.SQL(
                    "CREATE TABLE {} (tenant_id text PRIMARY KEY, dna text NOT NULL)"
                ).format(sql.Identifier(LOCK_TABLE))
            )

    def get(self, tenant_id: str) -> TenantDNA:
        with self._lock:
            row = self._db.execute(
                f"SELECT dna FROM {LOCK_TABLE} WHERE tenant_id = %s", (tenant_id,)
            ).fetchone()
        return TenantDNA() if row is None else TenantDNA.from_dict(json.loads(row[0]))

    def update(self, tenant_id: str, metrics: Metrics, alpha: float) -> TenantDNA:
        with self._lock:
            while True:
                with self._db.transaction():
                    row = self._db.execute(
                        f"SELECT dna FROM {LOCK_TABLE} WHERE tenant_id = %s FOR UPDATE",
                        (tenant_id,),
                    ).fetchone()
                    dna = (
                        TenantDNA()
                        if row is None
                        else TenantDNA.from_dict(json.loads(row[0]))
                    )
                    dna.update_from_session(metrics, alpha)
                    data = json.dumps(dna.to_dict())
                    if row is not None:
                        self._db.execute(
                            f"UPDATE {LOCK_TABLE} SET dna = %s WHERE tenant_id = %s",
                            (data, tenant_id),
                        )
                    elif not self._db.execute(
                        f"INSERT INTO {LOCK_TABLE} (tenant_id, dna) VALUES (%s, %s) "
                        "ON CONFLICT (tenant_id) DO NOTHING",
                        (tenant_id, data),
                    ).rowcount:
                        raise psycopg.Rollback  # inserted meanwhile: read it again
                    self._profiles[tenant_id] = dna
                    return dna.copy()

    def close(self) -> None:
        with self._lock:
            self._profiles.clear()
            self._db.close()


def make(contender: str, url: str) -> Contender:
    """A fresh ``contender`` on the database ``url``."""
    if contender == REFERENCE:
        return LockedPostgres(url)
    return StoreContender(url=url)


# -- one run ---------------------------------------------------------------------


def _plan(tenants: int, seed: int, ops: int) -> Plan:
    return Workload(tenants=tenants, seed=seed).plan(SCENARIO, ops)


def _quiet() -> None:
    # The store logs events at debug level; the bench wants warnings only.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )


def _worker(
    *,
    contender_name: str,
    url: str,
    plan_args: tuple[int, int, int],
    index: int,
    start: Any,
    results: Any,
) -> None:
    """One worker process: warm up, wait for the others, run its threads."""
    _quiet()
    try:
        plan = _plan(*plan_args)
        lanes = plan.phases[0][index * THREADS : (index + 1) * THREADS]
        touched = {op.tenant for ops in lanes for op in ops}
        contender = make(contender_name, url)
        try:
            for op in plan.warm:
                if op.tenant in touched:
                    contender.update_async(op.tenant, op.metrics, op.alpha)
            contender.flush()
            report = _timed(contender, lanes, contender_name in ASYNCHRONOUS, start)
        finally:
            contender.close()
        results.put((index, report))
    except BaseException as error:  # reported by the parent
        results.put((index, {"error": repr(error)}))
        raise


def _timed(
    contender: Contender,
    lanes: Sequence[Sequence[Op]],
    asynchronous: bool,
    start: Any,
) -> dict[str, Any]:
    stats = getattr(contender, "stats", None)
    before = stats() if stats else None
    go = threading.Barrier(len(lanes) + 1)
    samples: list[list[int]] = [[] for _ in lanes]
    errors: list[BaseException] = []
    write = contender.update_async if asynchronous else contender.update

    def work(ops: Sequence[Op], own: list[int]) -> None:
        go.wait(TIMEOUT)
        try:
            _drive(ops, contender.get, write, own)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [
        threading.Thread(target=work, args=(ops, own), daemon=True)
        for ops, own in zip(lanes, samples, strict=True)
    ]
    for thread in threads:
        thread.start()
    while go.n_waiting < len(threads):
        time.sleep(0.0005)
    start.wait(TIMEOUT)  # every process, and the parent
    began = time.monotonic_ns()
    go.wait(TIMEOUT)
    for thread in threads:
        thread.join(TIMEOUT)
    if asynchronous:
        contender.flush()
    ended = time.monotonic_ns()
    if errors:
        raise RuntimeError(f"a worker thread failed: {errors[0]!r}") from errors[0]
    after = stats() if stats else None
    if before is None or after is None:
        commits = conflicts = None
    else:
        commits = after.commits - before.commits
        conflicts = after.version_conflicts - before.version_conflicts
    return {
        "began_ns": began,
        "ended_ns": ended,
        "samples": [sample for own in samples for sample in own],
        "commits": commits,
        "conflicts": conflicts,
    }


def run_once(
    contender: str, url: str, plan: Plan, plan_args: tuple[int, int, int]
) -> dict[str, Any]:
    """``contender`` on empty tables of ``url``: its figures for one run."""
    empty(url)
    if contender == REFERENCE:
        LockedPostgres.create_table(url)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES + 1)
    results = context.Queue()
    workers = [
        context.Process(
            target=_worker,
            kwargs={
                "contender_name": contender,
                "url": url,
                "plan_args": plan_args,
                "index": index,
                "start": start,
                "results": results,
            },
            name=f"bench-{contender}-{index}",
            daemon=True,
        )
        for index in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    reports: dict[int, dict[str, Any]] = {}
    try:
        # A worker that failed before the barrier reports instead of arriving.
        deadline = time.monotonic() + TIMEOUT
        while start.n_waiting < PROCESSES:
            with contextlib.suppress(queue.Empty):
                index, report = results.get(timeout=0.01)
                reports[index] = report
                if "error" in report:
                    raise RuntimeError(f"{contender} worker {index}: {report['error']}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{contender}: workers never got ready")
        start.wait(TIMEOUT)
        while len(reports) < PROCESSES:
            index, report = results.get(timeout=TIMEOUT)
            if "error" in report:
                raise RuntimeError(f"{contender} worker {index}: {report['error']}")
            reports[index] = report
        for worker in workers:
            worker.join(TIMEOUT)
    finally:
        start.abort()
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
                worker.join()
    reader = make(contender, url)
    try:
        lost = sum(
            sent - applied_sessions(reader.get(probe).avg_task_complexity)
            for probe, sent in plan.probes.items()
        )
    finally:
        reader.close()
    if contender == REFERENCE:
        with _admin(url) as connection:
            connection.execute(
                sql.SQL("DROP TABLE {}").format(sql.Identifier(LOCK_TABLE))
            )
    runs = reports.values()
    seconds = (
        max(r["ended_ns"] for r in runs) - min(r["began_ns"] for r in runs)
    ) / 1e9
    samples = sorted(sample for r in runs for sample in r["samples"])
    commits = [r["commits"] for r in runs]
    conflicts = [r["conflicts"] for r in runs]
    return {
        "seconds": seconds,
        "ops_per_s": plan.ops / seconds,
        "p50_us": percentile(samples, 0.50) / 1e3,
        "p99_us": percentile(samples, 0.99) / 1e3,
        "commits": None if None in commits else sum(commits),
        "version_conflicts": None if None in conflicts else sum(conflicts),
        "probe_sessions": sum(plan.probes.values()),
        "lost_updates": lost,
    }


# -- staleness -------------------------------------------------------------------


def _reader(url: str, writes: int, ready: Any, results: Any) -> None:
    """Hold :data:`WATCHED` resident; note when each value 1..writes is seen."""
    _quiet()
    from actors import TenantDNAStore

    try:
        with TenantDNAStore(url) as store:
            store.update_from_session(WATCHED, {"task_complexity": 1.0}, PROBE_ALPHA)
            seen: list[int] = []
            ready.set()
            deadline = time.monotonic() + TIMEOUT
            while len(seen) < writes and time.monotonic() < deadline:
                value = store.get(WATCHED).avg_tokens_per_task - BASE_TOKENS
                now = time.monotonic_ns()
                while len(seen) < min(value, writes):
                    seen.append(now)  # this value, or a later one: visible
                time.sleep(POLL)
        results.put({"seen_ns": seen})
    except BaseException as error:  # reported by the parent
        results.put({"error": repr(error)})
        raise


def staleness(url: str, writes: int, seed: int) -> dict[str, Any]:
    """Cross-process staleness over ``writes`` saves (see the module docstring)."""
    from actors import TenantDNAStore

    empty(url)
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    results = context.Queue()
    reader = context.Process(
        target=_reader, args=(url, writes, ready, results), daemon=True
    )
    reader.start()
    rng = random.Random(f"{seed}:staleness")
    try:
        with TenantDNAStore(url) as store:
            if not ready.wait(TIMEOUT):
                raise RuntimeError("staleness: the reader never got ready")
            returned: list[int] = []
            for value in range(1, writes + 1):
                store.save(WATCHED, TenantDNA(avg_tokens_per_task=BASE_TOKENS + value))
                returned.append(time.monotonic_ns())
                time.sleep(rng.uniform(0.005, 0.015))
        report = results.get(timeout=TIMEOUT)
        reader.join(TIMEOUT)
    finally:
        if reader.is_alive():
            reader.terminate()
            reader.join()
    if "error" in report:
        raise RuntimeError(f"staleness reader: {report['error']}")
    seen = report["seen_ns"]
    # Seen before the writer's save returned (NOTIFY is sent at commit, the
    # reply may come later): no staleness at all, counted 0.
    delays = sorted(max(0, s - r) / 1e6 for s, r in zip(seen, returned, strict=False))
    return {
        "writes": writes,
        "seen": len(seen),
        "p50_ms": percentile(delays, 0.50) if delays else None,
        "p99_ms": percentile(delays, 0.99) if delays else None,
        "max_ms": delays[-1] if delays else None,
    }


# -- report ----------------------------------------------------------------------


def summarise(
    runs: Mapping[str, Sequence[dict[str, Any]]],
    fresh: dict[str, Any],
    plan: Plan,
    verdicts: bool,
) -> dict[str, Any]:
    """Rows (medians over the rounds), staleness and the verdicts."""
    medians = {
        name: statistics.median(run["ops_per_s"] for run in own)
        for name, own in runs.items()
    }
    reference = medians.get(REFERENCE)
    rows = []
    for name, own in runs.items():
        commits = [run["commits"] for run in own if run["commits"] is not None]
        conflicts = [
            run["version_conflicts"]
            for run in own
            if run["version_conflicts"] is not None
        ]
        rows.append(
            {
                "contender": name,
                "storage": "postgres",
                "ops_per_s": medians[name],
                "ratio_to_lock_postgres": None
                if reference is None
                else medians[name] / reference,
                "p50_us": statistics.median(run["p50_us"] for run in own),
                "p99_us": statistics.median(run["p99_us"] for run in own),
                "commits_per_update": statistics.median(commits) / plan.updates
                if commits
                else None,
                "version_conflicts": sum(conflicts) if conflicts else None,
                "probe_sessions": sum(run["probe_sessions"] for run in own),
                "lost_updates": sum(run["lost_updates"] for run in own),
                "runs": list(own),
            }
        )
    ratio = medians["store"] / reference if reference and "store" in medians else None
    p99 = fresh.get("p99_ms")
    return {
        "rows": rows,
        "staleness": fresh,
        "targets": {
            "store_over_lock_postgres": {
                "at_least": TARGET_RATIO,
                "measured": ratio,
                "met": met(ratio, TARGET_RATIO, 2) if verdicts else None,
            },
            "staleness_p99_ms": {
                "at_most": TARGET_P99_MS,
                "measured": p99,
                "met": within(p99, TARGET_P99_MS, 1)
                if verdicts and fresh["seen"] == fresh["writes"]
                else None,
            },
            "lost_updates": {
                "at_most": 0,
                "measured": sum(row["lost_updates"] for row in rows),
                "met": all(row["lost_updates"] == 0 for row in rows),
            },
        },
    }


def _figure(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _verdict(met_: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not judged"}[met_]


def table(result: dict[str, Any]) -> str:
    """The terminal table of :func:`summarise`'s result."""
    settings = result["settings"]
    lines = [
        f"processes: {PROCESSES} processes x {THREADS} threads, "
        f"{settings['tenants']:,} tenants (Zipf), {settings['updates']:,} updates "
        f"a run, {settings['rounds']} round(s), PostgreSQL {result['server']}",
        "",
        f"{'contender':<14} {'ops/s':>9} {'x lock-pg':>9} {'p50 us':>8} "
        f"{'p99 us':>9} {'commits/upd':>11} {'conflicts':>9} {'lost':>5}",
    ]
    for row in result["rows"]:
        ratio = row["ratio_to_lock_postgres"]
        per_update = row["commits_per_update"]
        conflicts = row["version_conflicts"]
        lines.append(
            f"{row['contender']:<14} {row['ops_per_s']:>9,.0f} "
            f"{'' if ratio is None else f'{ratio:.2f}':>9} "
            f"{row['p50_us']:>8,.0f} {row['p99_us']:>9,.0f} "
            f"{'' if per_update is None else f'{per_update:.3g}':>11} "
            f"{'' if conflicts is None else conflicts:>9} {row['lost_updates']:>5}"
        )
    fresh = result["staleness"]
    targets = result["targets"]
    ratio = targets["store_over_lock_postgres"]
    p99 = targets["staleness_p99_ms"]
    lost = targets["lost_updates"]
    lines += [
        "",
        f"staleness (a save in one process, seen by get in another): "
        f"{fresh['seen']}/{fresh['writes']} writes seen, "
        f"p50 {fresh['p50_ms']:.1f} ms, p99 {fresh['p99_ms']:.1f} ms, "
        f"max {fresh['max_ms']:.1f} ms",
        "",
        "targets:",
        f"  store / lock-postgres >= {TARGET_RATIO:.2f}: "
        f"{_figure(ratio['measured'], 2)} {_verdict(ratio['met'])}",
        f"  staleness p99 <= {TARGET_P99_MS:.0f} ms: {p99['measured']:.1f} ms "
        f"{_verdict(p99['met'])}",
        f"  lost updates = 0: {lost['measured']} {_verdict(lost['met'])}",
    ]
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--quick`` changes the defaults, explicit values win."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.processes",
        description="The store across processes on PostgreSQL: 4 processes x 4 "
        "threads against lock-postgres, and cross-process staleness.",
    )
    parser.add_argument(
        "--url",
        required=True,
        help="postgresql://user:password@host:port/db of a role that may CREATE "
        "DATABASE; the bench creates its own database there and drops it",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a run of seconds: 100 tenants, 1 round"
    )
    parser.add_argument("--tenants", type=int, help="population (default 1,000)")
    parser.add_argument(
        "--ops", type=int, help="updates a run, all processes (default 16,000)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--writes", type=int, help="saves timed for staleness (default 200)"
    )
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="output folder (default bench-results/)",
    )
    args = parser.parse_args(argv)
    for name, value in (QUICK if args.quick else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("tenants", "ops", "rounds", "writes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status (1: an update was lost)."""
    args = parse_args(argv)
    _quiet()
    plan_args = (args.tenants, args.seed, args.ops)
    plan = _plan(*plan_args)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    with bench_database(args.url) as url:
        server = server_version(url)
        for round_ in range(args.rounds):
            shift = round_ % len(CONTENDERS)
            for name in (*CONTENDERS[shift:], *CONTENDERS[:shift]):
                print(
                    f"round {round_ + 1}/{args.rounds} {name}",
                    file=sys.stderr,
                    flush=True,
                )
                runs[name].append(run_once(name, url, plan, plan_args))
        print("staleness", file=sys.stderr, flush=True)
        fresh = staleness(url, args.writes, args.seed)
    result = summarise(runs, fresh, plan, not args.quick and args.rounds > 1)
    result = {
        "scenario": SCENARIO.name,
        "description": SCENARIO.description,
        "server": server,
        "settings": {
            "processes": PROCESSES,
            "threads_per_process": THREADS,
            "tenants": args.tenants,
            "updates": plan.updates,
            "rounds": args.rounds,
            "writes": args.writes,
            "seed": args.seed,
            "quick": args.quick,
        },
        "machine": machine(),
        **result,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "processes.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"\nwrote {path}")
    return 0 if result["targets"]["lost_updates"]["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
