"""``erase`` and ``purge``: GDPR erasure, by name or by idleness.

Both commit erasures through storage, which guarantees that no byte of an
erased profile stays in the database or beside it once the commit returns
(or says otherwise with ``ScrubIncomplete``, reported here as a failure).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

from ops._inspect import tenant_argument
from ops._output import Progress, emit_json, emit_table, say, when
from ops._target import opened
from storage import (
    Change,
    Committed,
    Outcome,
    Record,
    ScrubIncomplete,
    Storage,
    StorageError,
)

PURGE_BATCH = 5000
"""Erasures per transaction in ``purge``: each rewrites the shards it touches."""

DAY = 86_400.0


def _commit(
    storage: Storage, changes: Sequence[Change]
) -> tuple[list[Outcome], ScrubIncomplete | None]:
    """Commit the erasures; the outcomes, and the scrub still pending if any.

    An erasure whose WAL could not be emptied yet (a reader held it) is
    committed all the same; the storage's ``close`` tries the scrub once more.
    """
    try:
        return storage.commit(changes), None
    except ScrubIncomplete as error:
        return error.outcomes, error


def _report(scrub: ScrubIncomplete) -> None:
    say(str(scrub).replace("; it is retried after the next commit", ""))
    say(
        "those bytes go with the next erasure committed to this file, or once "
        "every connection to it is closed"
    )


def erase(args: argparse.Namespace) -> int:
    """Erase the named tenants; exit 1 naming any that is not stored."""
    with opened(args.url) as storage:
        named = [tenant_argument(tenant, storage) for tenant in args.tenants]
        named = list(dict.fromkeys(named))
        present: list[str] = []
        missing: list[str] = []
        for tenant_id in named:
            try:
                stored = storage.load(tenant_id) is not None
            except StorageError:
                # A profile too damaged to read is still erased; a storage
                # that cannot be read at all fails the commit below.
                stored = True
            (present if stored else missing).append(tenant_id)
        scrub = None
        if present:
            _, scrub = _commit(
                storage,
                [Change(tenant, None, 0, 0, force=True) for tenant in present],
            )
        name = storage.name
    if args.json:
        emit_json({"storage": name, "erased": present, "not_found": missing})
    else:
        for tenant_id in present:
            print(tenant_id)
    status = 0
    if present:
        say(f"erased {len(present)} tenant(s) from {name}")
    for tenant_id in missing:
        say(f"no tenant {tenant_id!r} in {name}")
        status = 1
    if scrub is not None:
        _report(scrub)
        status = 1
    return status


def idle_days(text: str) -> float:
    """``--idle-days``: a finite number of days > 0 (fractions allowed)."""
    try:
        days = float(text)
    except ValueError:
        days = math.nan
    # A cutoff that is a time: a number of days whose seconds overflow is not.
    if not (math.isfinite(days) and days > 0 and math.isfinite(days * DAY)):
        msg = f"expected a number of days > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return days


def purge(args: argparse.Namespace) -> int:
    """Erase every profile whose ``last_updated`` is older than N days.

    Each erasure is committed against the version the scan read: a tenant
    updated in the meantime is no longer idle, and is kept.
    """
    days: float = args.idle_days
    cutoff = time.time() - days * DAY
    idle: list[tuple[str, Record]] = []
    erased: list[str] = []
    changed: list[str] = []
    scrub = None
    with opened(args.url) as storage:
        with Progress("scanning", storage.count()) as progress:
            for tenant_id, record in storage.scan():
                progress.advance()
                if record.dna.last_updated < cutoff:
                    idle.append((tenant_id, record))
        if not args.dry_run:
            with Progress("erasing", len(idle)) as progress:
                for start in range(0, len(idle), PURGE_BATCH):
                    batch = idle[start : start + PURGE_BATCH]
                    changes = [
                        Change(tenant, None, record.version, record.incarnation)
                        for tenant, record in batch
                    ]
                    outcomes, scrub = _commit(storage, changes)
                    for (tenant, _), outcome in zip(batch, outcomes, strict=True):
                        (erased if isinstance(outcome, Committed) else changed).append(
                            tenant
                        )
                    progress.advance(len(batch))
        name = storage.name
    kept = set(changed)
    if args.json:
        emit_json(
            {
                "storage": name,
                "idle_days": days,
                "cutoff": cutoff,
                "dry_run": args.dry_run,
                "idle": [
                    {"tenant_id": tenant, "last_updated": record.dna.last_updated}
                    for tenant, record in idle
                ],
                "erased": erased,
                "updated_meanwhile": changed,
            }
        )
    elif idle:
        emit_table(
            ["TENANT", "LAST UPDATED (UTC)", "ACTION"],
            [
                (
                    tenant,
                    when(record.dna.last_updated),
                    "would erase"
                    if args.dry_run
                    else "kept: updated meanwhile"
                    if tenant in kept
                    else "erased",
                )
                for tenant, record in idle
            ],
        )
    before = f"not updated since {when(cutoff)}"
    if args.dry_run:
        say(f"dry run: {len(idle):,} profile(s) {before} would be erased from {name}")
    else:
        say(f"erased {len(erased):,} profile(s) {before} from {name}")
    if changed:
        say(f"kept {len(changed):,} profile(s) updated during the purge")
    if scrub is not None:
        _report(scrub)
        return 1
    return 0
