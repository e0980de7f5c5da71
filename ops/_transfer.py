"""``export`` and ``import``: profiles as JSON Lines, versions and incarnations kept.

A line is ``{"tenant_id", "version", "incarnation", "dna"}``: ``dna`` is
``TenantDNA.to_dict()``. ``incarnation`` (which life of the tenant the record
belongs to) is written so that an import gives back the very records, and may
be left out of a file made by other tools: the import then draws a new one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any, NamedTuple, TextIO

from dna import InvalidDNA, TenantDNA
from ops._errors import CommandFailed
from ops._inspect import record_json, tenant_argument
from ops._output import Progress, emit_json, say
from ops._target import opened, resolve
from storage import (
    MAX_INCARNATION,
    MAX_VERSION,
    InvalidTenantId,
    Record,
    check_tenant_id,
    new_incarnation,
)


@contextlib.contextmanager
def _destination(output: str | None, source: str | None) -> Iterator[TextIO]:
    """stdout; a file that appears (mode 0600) only once fully written; or,
    for what is not a regular file (a pipe, a device), that itself.

    A symbolic link is followed (the link stays). ``source``, the database's
    own file, is refused, and so are the files SQLite keeps beside it.
    """
    if output is None or output == "-":
        yield sys.stdout
        return
    target = os.path.realpath(output)
    if source is not None:
        database = os.path.realpath(source)
        if target in {database + suffix for suffix in ("", "-wal", "-shm", "-journal")}:
            msg = f"{output}: that is the database being exported; nothing written"
            raise CommandFailed(msg)
    try:
        regular = not os.path.exists(target) or stat.S_ISREG(os.stat(target).st_mode)
        if not regular:
            if os.path.isdir(target):
                msg = f"{output}: is a folder; nothing written"
                raise CommandFailed(msg)
            with open(target, "w", encoding="utf-8", newline="\n") as stream:
                yield stream
            return
        handle, temporary = tempfile.mkstemp(
            prefix=".tenant-dna-export-", dir=os.path.dirname(target)
        )
    except OSError as error:
        msg = f"{output}: cannot write there: {error.strerror}"
        raise CommandFailed(msg) from error
    try:
        with open(handle, "w", encoding="utf-8", newline="\n") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _line(tenant_id: str, record: Record) -> str:
    return json.dumps(record_json(tenant_id, record), separators=(",", ":")) + "\n"


def export(args: argparse.Namespace) -> int:
    """Every stored profile (or the named tenants') as JSON Lines."""
    with opened(args.url) as storage:
        named = [tenant_argument(tenant, storage) for tenant in args.tenants]
        if named:
            found = {tenant: storage.load(tenant) for tenant in dict.fromkeys(named)}
            missing = [tenant for tenant, record in found.items() if record is None]
            if missing:
                names = ", ".join(map(repr, missing))
                msg = f"no tenant {names} in {storage.name}; nothing exported"
                raise CommandFailed(msg)
            records: Iterator[tuple[str, Record | None]] = iter(found.items())
            total = len(found)
        else:
            records = storage.scan()
            total = storage.count()
        written = 0
        with (
            _destination(args.output, getattr(storage, "path", None)) as stream,
            Progress("exporting", total) as progress,
        ):
            for tenant_id, record in records:
                assert record is not None
                stream.write(_line(tenant_id, record))
                written += 1
                progress.advance()
        where = "stdout" if args.output in (None, "-") else args.output
        say(f"exported {written:,} profile(s) from {storage.name} to {where}")
    return 0


class _Line(NamedTuple):
    tenant_id: str
    record: Record


def _parse(raw: bytes, seen: dict[str, int], number: int) -> _Line:
    """One line of an export, checked; ``ValueError`` says what is wrong."""
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        msg = f"not UTF-8 ({error.reason} at byte {error.start})"
        raise ValueError(msg) from error
    except json.JSONDecodeError as error:
        msg = f"not JSON: {error}"
        raise ValueError(msg) from error
    except RecursionError as error:
        msg = "not JSON this command reads: nested too deeply"
        raise ValueError(msg) from error
    if not isinstance(data, dict):
        msg = f"expected a JSON object, got {type(data).__name__}"
        raise ValueError(msg)
    for key in ("tenant_id", "version", "dna"):
        if key not in data:
            msg = f"{key}: missing"
            raise ValueError(msg)
    try:
        tenant_id = check_tenant_id(data["tenant_id"])
    except InvalidTenantId as error:
        msg = f"tenant_id: {error}"
        raise ValueError(msg) from error
    version = data["version"]
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        msg = f"version: expected an int in 1 .. 2**63 - 1, got {version!r}"
        raise ValueError(msg)
    incarnation = data.get("incarnation")
    if incarnation is None:
        incarnation = new_incarnation()
    elif type(incarnation) is not int or not 1 <= incarnation <= MAX_INCARNATION:
        msg = f"incarnation: expected an int in 1 .. 2**63 - 1, got {incarnation!r}"
        raise ValueError(msg)
    try:
        profile = TenantDNA.from_dict(data["dna"])
    except InvalidDNA as error:
        msg = f"dna: {error}"
        raise ValueError(msg) from error
    if tenant_id in seen:
        msg = f"tenant {tenant_id!r} is also on line {seen[tenant_id]}"
        raise ValueError(msg)
    seen[tenant_id] = number
    return _Line(tenant_id, Record(profile, version, incarnation))


def _read(
    stream: IO[bytes], size: int | None
) -> tuple[list[tuple[str, Record]], list[tuple[int, str]]]:
    """Every line checked: the records, and the bad lines by number."""
    records: list[tuple[str, Record]] = []
    bad: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    with Progress("reading", size) as progress:
        for number, raw in enumerate(stream, start=1):
            progress.advance(len(raw))
            if not raw.strip():
                continue  # a blank line (the end of a file) holds no profile
            try:
                records.append(_parse(raw, seen, number))
            except ValueError as error:
                bad.append((number, str(error)))
    return records, bad


@contextlib.contextmanager
def _source(path: str) -> Iterator[tuple[IO[bytes], int | None]]:
    if path == "-":
        yield sys.stdin.buffer, None
        return
    try:
        stream: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as error:
        msg = f"{path}: {error.strerror}"
        raise CommandFailed(msg) from error
    with stream:
        size = os.fstat(stream.fileno()).st_size
        yield stream, size or None


def import_(args: argparse.Namespace) -> int:
    """Profiles from JSON Lines, all or nothing, versions and incarnations kept."""
    resolve(args.url)  # bad usage is reported before a long read
    with _source(args.file) as (stream, size):
        records, bad = _read(stream, size)
    name = "stdin" if args.file == "-" else args.file
    for number, reason in bad:
        say(f"{name} line {number}: {reason}")
    imported = replaced = 0
    storage_name = None
    if records and (args.skip_bad or not bad):
        with opened(args.url, create=True) as storage:
            storage_name = storage.name
            stored = set(storage.tenants())
            replaced = sum(tenant_id in stored for tenant_id, _ in records)
            with Progress("writing", len(records)) as progress:
                progress.advance(0)
                storage.restore(records)
                progress.advance(len(records))
            imported = len(records)
    if args.json:
        emit_json(
            {
                "file": name,
                "storage": storage_name,
                "imported": imported,
                "replaced": replaced,
                "bad_lines": [
                    {"line": number, "error": reason} for number, reason in bad
                ],
            }
        )
    if bad and not args.skip_bad:
        say(f"{name}: {len(bad)} bad line(s); nothing imported")
        return 1
    if storage_name is None:
        say(f"{name}: no profiles to import")
    else:
        say(
            f"imported {imported:,} profile(s) into {storage_name} "
            f"({replaced:,} replaced)"
        )
    return 1 if bad else 0
