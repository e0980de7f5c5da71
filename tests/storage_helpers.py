"""Child processes for the storage tests: ``python -m tests.storage_helpers JOB ...``.

Each job works on a real SQLite file and reports on stdout, one JSON object or
number a line, flushed at once so the parent reads it even if it kills us.
"""

from __future__ import annotations

import json
import resource
import signal
import sys
from collections.abc import Callable

from dna import TenantDNA
from storage import Change, Committed, SQLiteStorage, StorageError


def profile(step: int) -> TenantDNA:
    """A profile that tells which step wrote it."""
    return TenantDNA(avg_tokens_per_task=step, last_updated=1_700_000_000.0 + step)


def commit_forever(path: str, tenants: int) -> None:
    """Commit one change to each of ``tenants`` tenants per transaction, forever.

    Prints the step of every commit once ``commit`` has returned.
    """
    storage = SQLiteStorage(path)
    step = 0
    while True:
        step += 1
        changes = [
            Change(f"tenant-{n}", profile(step), 0, 0, force=True)
            for n in range(tenants)
        ]
        storage.commit(changes)
        print(step, flush=True)


def commit_over_the_size_limit(path: str) -> None:
    """Commit under RLIMIT_FSIZE (must fail), then without it (must succeed)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG
    storage = SQLiteStorage(path)
    before = {tenant: storage.load(tenant) for tenant in ("kept", "other")}
    big = TenantDNA(
        tool_usage_frequency={f"tool-{n:03d}-{'x' * 150}": 0.01 for n in range(50)},
        last_updated=1_700_000_001.0,
    )
    changes = [
        Change("kept", big, 0, 0, force=True),
        Change("other", None, 0, 0, force=True),
        Change("new", big, 0, 0),
    ]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    report: dict[str, object] = {}
    try:
        storage.commit(changes)
    except StorageError as error:
        report["error"] = str(error)
    else:
        report["error"] = None
    report["unchanged"] = (
        all(storage.load(tenant) == record for tenant, record in before.items())
        and storage.load("new") is None
    )
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    outcomes = storage.commit(changes)
    report["later"] = [isinstance(outcome, Committed) for outcome in outcomes]
    storage.close()
    print(json.dumps(report), flush=True)


def increment(path: str, times: int) -> None:
    """Add ``times`` to tenant "shared"'s tokens by compare-and-set, retrying."""
    storage = SQLiteStorage(path)
    conflicts = 0
    for _ in range(times):
        while True:
            record = storage.load("shared")
            assert record is not None
            dna = record.dna
            dna.avg_tokens_per_task += 1
            (outcome,) = storage.commit(
                [Change("shared", dna, record.version, record.incarnation)]
            )
            if isinstance(outcome, Committed):
                break
            conflicts += 1
    storage.close()
    print(json.dumps({"conflicts": conflicts}), flush=True)


JOBS: dict[str, Callable[..., None]] = {
    "commit_forever": lambda path, n: commit_forever(path, int(n)),
    "commit_over_the_size_limit": commit_over_the_size_limit,
    "increment": lambda path, n: increment(path, int(n)),
}

if __name__ == "__main__":
    JOBS[sys.argv[1]](*sys.argv[2:])
