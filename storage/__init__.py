"""Versioned profile records on disks and servers: memory, SQLite, PostgreSQL.

No threads here: ``actors`` decides who calls what, and when. Open a backend
with :func:`open_storage`; every backend passes one shared test suite.
"""

from storage._base import (
    Change,
    Changes,
    Committed,
    Conflict,
    Outcome,
    Record,
    Storage,
    StorageError,
    VersionConflict,
)
from storage._open import open_storage
from storage.memory import MemoryStorage
from storage.postgres import PostgresStorage
from storage.sqlite import ScrubIncomplete, SQLiteStorage

__all__ = [
    "Change",
    "Changes",
    "Committed",
    "Conflict",
    "MemoryStorage",
    "Outcome",
    "PostgresStorage",
    "Record",
    "SQLiteStorage",
    "ScrubIncomplete",
    "Storage",
    "StorageError",
    "VersionConflict",
    "open_storage",
]
