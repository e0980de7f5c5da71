"""Versioned profile records on disks and servers: memory, SQLite, PostgreSQL.

No threads here: ``actors`` decides who calls what, and when. Open a backend
with :func:`open_storage`; every backend passes one shared test suite.
"""

from typing import TYPE_CHECKING, Any

from storage._base import (
    Announced,
    Change,
    Changes,
    CommitOutcomeUnknown,
    Committed,
    Conflict,
    Outcome,
    Record,
    Storage,
    StorageError,
    VersionConflict,
)
from storage._ids import MAX_TENANT_ID_LENGTH, InvalidTenantId, check_tenant_id
from storage._open import open_storage, sqlite_file
from storage._records import MAX_INCARNATION, MAX_VERSION, new_incarnation
from storage.memory import MemoryStorage
from storage.sqlite import ScrubIncomplete, SQLiteStorage

if TYPE_CHECKING:
    from storage.postgres import PostgresStorage


def __getattr__(name: str) -> Any:
    # PostgreSQL's backend (and psycopg) only for those who use it.
    if name == "PostgresStorage":
        from storage.postgres import PostgresStorage

        return PostgresStorage
    raise AttributeError(f"module 'storage' has no attribute {name!r}")


__all__ = [
    "MAX_INCARNATION",
    "MAX_TENANT_ID_LENGTH",
    "MAX_VERSION",
    "Announced",
    "Change",
    "Changes",
    "CommitOutcomeUnknown",
    "Committed",
    "Conflict",
    "InvalidTenantId",
    "MemoryStorage",
    "Outcome",
    "PostgresStorage",
    "Record",
    "SQLiteStorage",
    "ScrubIncomplete",
    "Storage",
    "StorageError",
    "VersionConflict",
    "check_tenant_id",
    "new_incarnation",
    "open_storage",
    "sqlite_file",
]
