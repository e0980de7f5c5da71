"""Child processes for the durable store's tests.

Run as ``python -m tests.programs.durable_jobs JOB ARG...`` from the project's
root. Each job opens its own ``TenantDNAStore`` on a real SQLite file and
reports on stdout, one line at a time, written with one ``os.write`` so that
lines from several threads never mix and the parent reads every line written
before it kills us.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors import StorageError, TenantDNAStore, VersionConflict
from dna import TenantDNA

PROBE = {"task_complexity": 1.0}
"""The session of ``tests.conftest.sessions_applied``, applied at alpha 0.01."""


def say(value: object) -> None:
    """One line of JSON on stdout, in one write."""
    os.write(1, (json.dumps(value) + "\n").encode())


def secrets(tag: str) -> list[str]:
    """The distinctive strings of tenant ``victim-{tag}``: its id, intents, tools."""
    return [
        f"victim-{tag}-q7zx",
        *(f"intent-of-{tag}-q7zx-{n}" for n in range(3)),
        *(f"tool-of-{tag}-q7zx-{n}" for n in range(3)),
    ]


def victim_sessions(tag: str) -> list[dict[str, Any]]:
    """Sessions that teach ``victim-{tag}-q7zx`` every string of ``secrets(tag)``."""
    return [
        {
            "task_complexity": 0.1 * (n + 1),
            "intent": f"intent-of-{tag}-q7zx-{n}",
            "tools_used": {f"tool-of-{tag}-q7zx-{n}": n + 1, "search": 1},
            "tokens_used": 1000 + n,
        }
        for n in range(3)
    ]


def big_profile(tenant: int, intent: str = "big") -> TenantDNA:
    """A profile of about 10 kB: 50 tool names of 190 characters."""
    return TenantDNA(
        tool_usage_frequency={
            f"tool-{tenant:02d}-{n:02d}-{'x' * 180}": 0.01 for n in range(50)
        },
        common_intents=[intent],
        last_updated=1_700_000_000.0 + tenant,
    )


def small_profile(tenant: int) -> TenantDNA:
    return TenantDNA(common_intents=["small"], last_updated=1_600_000_000.0 + tenant)


def update_loop(path: str, durability: str, threads: str) -> None:
    """Thread k applies PROBE to tenant ``kill-k`` forever.

    After each acknowledged update it prints ``k`` and ``time.monotonic()``
    (one clock for every process of the machine).
    """
    store = TenantDNAStore(Path(path), durability=durability, flush_interval=0.2)

    def work(k: int) -> None:
        while True:
            store.update_from_session(f"kill-{k}", PROBE, alpha=0.01)
            os.write(1, f"{k} {time.monotonic()}\n".encode())

    for k in range(int(threads)):
        threading.Thread(target=work, args=(k,), daemon=True).start()
    time.sleep(3600)


def hammer(path: str, durability: str, shape: str, start: str) -> None:
    """Each thread applies PROBE ``rounds`` times to each shared tenant, then closes.

    ``shape`` is ``"THREADSxROUNDSxTENANTSxPAUSE"``, the pause (seconds after
    each round) spreading buffered writes over several flushes. The threads
    start at ``time.time() == start``, so that several processes started one
    after the other all write at once.
    """
    threads, rounds, tenants, pause = shape.split("x")
    store = TenantDNAStore(Path(path), durability=durability, flush_interval=0.1)
    time.sleep(max(0.0, float(start) - time.time()))
    failures: list[str] = []

    def work() -> None:
        try:
            for _ in range(int(rounds)):
                for n in range(int(tenants)):
                    store.update_from_session(f"shared-{n}", PROBE, alpha=0.01)
                time.sleep(float(pause))
        except BaseException as error:
            failures.append(repr(error))

    workers = [threading.Thread(target=work) for _ in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    stats = store.stats()
    store.close()
    say(
        {
            "failures": failures,
            "hung": sum(worker.is_alive() for worker in workers),
            "conflicts": stats.version_conflicts,
            "commits": stats.commits,
        }
    )


def save(path: str, tenant_id: str, intent: str) -> None:
    """Save a profile whose one intent is ``intent``; print when it returned."""
    with TenantDNAStore(Path(path)) as store:
        store.save(tenant_id, TenantDNA(common_intents=[intent]))
        say({"returned": time.time()})


def delete(path: str, tenant_id: str) -> None:
    """Erase the tenant; print when ``delete`` returned."""
    with TenantDNAStore(Path(path)) as store:
        store.delete(tenant_id)
        say({"returned": time.time()})


def write_victim(path: str, tag: str, durability: str) -> None:
    """Teach tenant ``victim-{tag}-q7zx`` its secrets, then close."""
    with TenantDNAStore(Path(path), durability=durability) as store:
        for session in victim_sessions(tag):
            store.update_from_session(f"victim-{tag}-q7zx", session)
    say({"done": True})


def erase_and_wait(path: str, tag: str, durability: str) -> None:
    """Teach ``victim-{tag}-q7zx`` its secrets, erase it, print, wait to be killed."""
    store = TenantDNAStore(Path(path), durability=durability)
    for session in victim_sessions(tag):
        store.update_from_session(f"victim-{tag}-q7zx", session)
        store.update_from_session(
            "keeper", {"intent": "kept-q7zx", "tools_used": {"kept-tool": 1}}
        )
        store.flush()
    store.update_from_session(f"victim-{tag}-q7zx", victim_sessions(tag)[0])
    store.delete(f"victim-{tag}-q7zx")
    say({"erased": True})
    time.sleep(3600)


def compare_and_set(path: str, tenant_id: str, expected: str, intent: str) -> None:
    """``save`` with ``expected_version``; print the version seen and the result."""
    with TenantDNAStore(Path(path)) as store:
        seen = store.get_versioned(tenant_id).version
        try:
            store.save(
                tenant_id,
                TenantDNA(common_intents=[intent]),
                expected_version=int(expected),
            )
        except VersionConflict as error:
            say(
                {
                    "seen": seen,
                    "conflict": [error.tenant_id, error.expected, error.actual],
                    "after": store.get_versioned(tenant_id).version,
                }
            )
        else:
            say({"seen": seen, "saved": store.get_versioned(tenant_id).version})


def file_size_limit(path: str, durability: str) -> None:
    """Saves of large profiles under RLIMIT_FSIZE, then without it.

    Reports, as one JSON object: each tenant's save outcome and the
    ``(version, intents, tools)`` that ``get_versioned`` shows after it, what
    ``flush`` did, and the outcome of later changes once the limit is lifted.
    """
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG
    tenants = 40
    names = [f"big-{n:02d}" for n in range(tenants)]
    store = TenantDNAStore(Path(path), durability=durability, flush_interval=0.2)
    report: dict[str, Any] = {}

    def shown(name: str) -> list[Any]:
        versioned = store.get_versioned(name)
        dna = versioned.dna
        return [versioned.version, dna.common_intents, len(dna.tool_usage_frequency)]

    for n, name in enumerate(names):
        store.save(name, small_profile(n))
    store.flush()
    report["before"] = {name: shown(name) for name in names}
    files = [Path(path), Path(path + "-wal")]
    size = max(file.stat().st_size for file in files if file.exists())
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    limit = size + 16_384
    report["limit"] = limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    outcomes: dict[str, str] = {}

    def saver(first: int) -> None:
        for n in range(first, tenants, 8):
            try:
                store.save(names[n], big_profile(n))
            except StorageError as error:
                outcomes[names[n]] = "StorageError: " + str(error)
            except BaseException as error:
                outcomes[names[n]] = "other: " + repr(error)
            else:
                outcomes[names[n]] = "ok"

    workers = [threading.Thread(target=saver, args=(k,)) for k in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    report["outcomes"] = outcomes
    report["during"] = {name: shown(name) for name in names}
    try:
        store.flush(timeout=20)
    except StorageError as error:
        report["flush"] = "StorageError: " + str(error)
    except BaseException as error:
        report["flush"] = "other: " + repr(error)
    else:
        report["flush"] = "ok"
    report["after_flush"] = {name: shown(name) for name in names}
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    try:
        store.update_from_session(names[1], PROBE, alpha=0.01)
        store.flush(timeout=20)
        report["later"] = "ok"
    except BaseException as error:
        report["later"] = repr(error)
    report["lifted"] = {name: shown(name) for name in names}
    report["stats"] = {
        "storage_errors": store.stats().storage_errors,
        "actors_replaced": store.stats().actors_replaced,
    }
    store.close()
    say(report)


def exit_without_close(path: str, durability: str, updates: str) -> None:
    """Acknowledged updates, then exit with the store never closed."""
    # Nothing ticks before exit: the exit hook must commit the buffered changes.
    store = TenantDNAStore(
        Path(path), durability=durability, flush_interval=600, staleness=600
    )
    for n in range(int(updates)):
        store.update_from_session(f"unclosed-{n % 4}", PROBE, alpha=0.01)
    say({"acknowledged": int(updates), "at": time.time()})
    # The module keeps ``store`` alive until the interpreter exits.
    globals()["kept"] = store


def exit_when_told(path: str, durability: str, updates: str) -> None:
    """Acknowledged updates; exit, never closing, once a line arrives on stdin.

    ``exit_timeout`` is 1 s: the parent holds the file's write lock meanwhile.
    """
    store = TenantDNAStore(
        Path(path),
        durability=durability,
        flush_interval=600,
        staleness=600,
        exit_timeout=1.0,
    )
    for n in range(int(updates)):
        store.update_from_session(f"unclosed-{n % 4}", PROBE, alpha=0.01)
    say({"acknowledged": int(updates)})
    sys.stdin.readline()
    globals()["kept"] = store


JOBS: dict[str, Callable[..., None]] = {
    "update_loop": update_loop,
    "hammer": hammer,
    "save": save,
    "delete": delete,
    "write_victim": write_victim,
    "erase_and_wait": erase_and_wait,
    "compare_and_set": compare_and_set,
    "file_size_limit": file_size_limit,
    "exit_without_close": exit_without_close,
    "exit_when_told": exit_when_told,
}

if __name__ == "__main__":
    JOBS[sys.argv[1]](*sys.argv[2:])
