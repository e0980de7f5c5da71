"""Versioned profile records on disks and servers: memory, SQLite (PostgreSQL later).

No threads here: ``actors`` decides who calls what, and when.
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

__all__ = [
    "Change",
    "Changes",
    "Committed",
    "Conflict",
    "Outcome",
    "Record",
    "Storage",
    "StorageError",
    "VersionConflict",
]
