"""The subcommands that only read: ``stats``, ``list``, ``show``, ``check``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ops._errors import BadUsage, CommandFailed
from ops._output import emit_json, emit_table, say, when
from ops._target import opened, resolve, sqlite_path
from storage import (
    InvalidTenantId,
    Record,
    SQLiteStorage,
    Storage,
    StorageError,
    check_tenant_id,
)


def tenant_argument(text: str, storage: Storage) -> str:
    """A tenant id from the command line; an invalid one is bad usage.

    Unless ``storage`` holds a tenant of exactly that id: one stored before
    the rule was as strict as it is, or by a program writing to storage
    directly. It is named as it is stored, so it can still be shown,
    exported and erased.
    """
    try:
        return check_tenant_id(text)
    except InvalidTenantId as error:
        try:
            stored = storage.load(text) is not None
        except StorageError:
            stored = True  # there, too damaged to read: still erasable
        if stored:
            return text
        raise BadUsage(str(error)) from error


def record_json(tenant_id: str, record: Record) -> dict[str, Any]:
    """A record as ``export`` writes it and ``show --json`` prints it."""
    return {
        "tenant_id": tenant_id,
        "version": record.version,
        "incarnation": record.incarnation,
        "dna": record.dna.to_dict(),
    }


def _sizes(storage: Storage) -> dict[str, int] | None:
    if not isinstance(storage, SQLiteStorage):
        return None
    sizes: dict[str, int] = {}
    for name, path in (("file", storage.path), ("wal", storage.path + "-wal")):
        try:
            sizes[name] = os.stat(path).st_size
        except FileNotFoundError:
            sizes[name] = 0
    return sizes


def stats(args: argparse.Namespace) -> int:
    """How many profiles are stored, and the bytes they take on disk."""
    with opened(args.url) as storage:
        tenants = storage.count()
        sizes = _sizes(storage)
        if args.json:
            emit_json({"storage": storage.name, "tenants": tenants, "bytes": sizes})
            return 0
        rows = [["storage", storage.name], ["tenants", f"{tenants:,}"]]
        if sizes is not None:
            rows += [[f"{name} bytes", f"{size:,}"] for name, size in sizes.items()]
        emit_table(None, rows)
    return 0


def list_(args: argparse.Namespace) -> int:
    """Every stored tenant with its version and when it was last updated."""
    with opened(args.url) as storage:
        rows = [
            (tenant_id, record.version, record.dna.last_updated)
            for tenant_id, record in storage.scan()
        ]
    if args.json:
        emit_json(
            [
                {"tenant_id": tenant, "version": version, "last_updated": updated}
                for tenant, version, updated in rows
            ]
        )
    else:
        emit_table(
            ["TENANT", "VERSION", "LAST UPDATED (UTC)"],
            [
                (tenant, str(version), when(updated))
                for tenant, version, updated in rows
            ],
            right=[1],
        )
    return 0


def show(args: argparse.Namespace) -> int:
    """One tenant's profile; exit 1 naming it when it is not stored."""
    with opened(args.url) as storage:
        tenant_id = tenant_argument(args.tenant, storage)
        record = storage.load(tenant_id)
        if record is None:
            msg = f"no tenant {tenant_id!r} in {storage.name}"
            raise CommandFailed(msg)
    if args.json:
        emit_json(record_json(tenant_id, record))
        return 0
    profile = record.dna
    tools = sorted(
        profile.tool_usage_frequency.items(), key=lambda item: (-item[1], item[0])
    )
    rows = [
        ["tenant", tenant_id],
        ["version", str(record.version)],
        ["last_updated", f"{when(profile.last_updated)} ({profile.last_updated!r})"],
        ["avg_task_complexity", f"{profile.avg_task_complexity:.4g}"],
        ["preferred_model_tier", profile.preferred_model_tier],
        ["avg_tokens_per_task", str(profile.avg_tokens_per_task)],
        ["risk_profile", f"{profile.risk_profile:.4g}"],
        ["peak_hours", ", ".join(map(str, profile.peak_hours)) or "-"],
        ["common_intents", ", ".join(profile.common_intents) or "-"],
        ["tool_usage_frequency", "-" if not tools else ""],
    ]
    rows += [[f"  {name}", f"{frequency:.4g}"] for name, frequency in tools]
    emit_table(None, rows)
    return 0


REFUSED_SHOWN = 20
"""Stored ids the store refuses that ``check`` names one by one (then counts)."""


def _refused_ids(storage: Storage) -> list[str]:
    """A problem for each stored tenant whose id the store refuses."""
    try:
        tenants = storage.tenants()
    except StorageError:
        return []  # a damaged id: storage.check() names it
    problems: list[str] = []
    refused = 0
    for tenant_id in tenants:
        try:
            check_tenant_id(tenant_id)
        except InvalidTenantId as error:
            refused += 1
            if refused <= REFUSED_SHOWN:
                reason = str(error).rpartition(" (")[2].rstrip(")")
                problems.append(
                    f"tenant {tenant_id!r}: an id the store refuses ({reason}); "
                    "no store can read or change it, erase it by that id"
                )
    if refused > REFUSED_SHOWN:
        problems.append(
            f"{refused - REFUSED_SHOWN} more tenant(s) with ids the store refuses"
        )
    return problems


def check(args: argparse.Namespace) -> int:
    """The storage's integrity check; exit 1 when it finds problems."""
    try:
        with opened(args.url) as storage:
            problems = storage.check() + _refused_ids(storage)
            name: str | None = storage.name
    except StorageError as error:
        if not args.json:
            raise
        # Damaged past opening (its header, its schema): still an answer.
        path = sqlite_path(resolve(args.url))
        problems = [str(error)]
        name = None if path is None else os.path.abspath(path)
    if args.json:
        emit_json({"storage": name, "ok": not problems, "problems": problems})
    else:
        for problem in problems:
            print(problem)
    if problems:
        say(f"{name}: {len(problems)} problem(s) found")
        return 1
    say(f"{name}: no problems found")
    return 0
