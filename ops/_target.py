"""Which database a command works on: ``--url`` or ``TENANT_DNA_URL``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from ops._errors import BadUsage, CommandFailed
from storage import Storage, open_storage, sqlite_file

ENVIRONMENT: Final = "TENANT_DNA_URL"


def resolve(url: str | None) -> str | Path:
    """The storage URL to open: a bare path is an SQLite file.

    ``--url`` wins over the environment; neither is bad usage.
    """
    if url is None:
        url = os.environ.get(ENVIRONMENT)
    if not url:
        msg = f"no database named: pass --url or set {ENVIRONMENT}"
        raise BadUsage(msg)
    if "://" not in url:
        return Path(url)
    if url.lower().startswith("memory://"):
        msg = "memory:// keeps nothing between commands: name an SQLite file"
        raise BadUsage(msg)
    return url


def sqlite_path(target: str | Path) -> str | None:
    """The file that ``target`` names, if it is an SQLite one.

    Raises :class:`BadUsage` for an SQLite URL that names no file (one with
    a query, say), before anything looks for that file.
    """
    if isinstance(target, Path):
        return str(target)
    if not target.lower().startswith("sqlite:"):
        return None
    try:
        return sqlite_file(target)
    except ValueError as error:
        raise BadUsage(str(error)) from error


@contextlib.contextmanager
def opened(url: str | None, *, create: bool = False) -> Iterator[Storage]:
    """Open the database; closed when the block ends.

    A missing SQLite file is created only with ``create`` (``import``): a
    mistyped path given to ``erase`` or ``check`` must not leave an empty
    database behind. Raises :class:`BadUsage` for a URL that names no
    backend; ``StorageError`` (naming the path) for a file that is not ours.
    """
    target = resolve(url)
    path = sqlite_path(target)
    if path is not None and not create:
        # Followed through links: a dangling one names a file not there.
        if not os.path.exists(path):
            msg = f"{os.path.abspath(path)}: no such file"
            raise CommandFailed(msg)
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            # SQLite takes it for an empty database; opening would fill it.
            msg = f"{os.path.abspath(path)}: an empty file, not a tenant-dna database"
            raise CommandFailed(msg)
    try:
        storage = open_storage(target)
    except ValueError as error:
        raise BadUsage(str(error)) from error
    try:
        yield storage
    finally:
        storage.close()
