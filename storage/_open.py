"""Which backend a URL names: ``open_storage``."""

from __future__ import annotations

import os

from storage._base import Storage
from storage.memory import MemoryStorage
from storage.sqlite import SQLiteStorage

_SQLITE = "sqlite:///"
_EXPECTED = (
    "expected None, 'memory://', 'sqlite:///relative/path.db', "
    "'sqlite:////absolute/path.db', 'postgresql://...' or an os.PathLike"
)


def sqlite_file(url: str) -> str:
    """The path an ``sqlite:///`` URL names; ``ValueError`` if it names none.

    >>> sqlite_file("sqlite:////srv/profiles.db")
    '/srv/profiles.db'
    """
    if not url.lower().startswith(_SQLITE) or len(url) == len(_SQLITE):
        msg = (
            f"url: an SQLite URL names a file: 'sqlite:///relative/path.db' "
            f"or 'sqlite:////absolute/path.db', got {url!r}"
        )
        raise ValueError(msg)
    path = url[len(_SQLITE) :]
    if "?" in path:
        msg = (
            f"url: an SQLite URL takes no query (it would become part of the "
            f"file's name), got {url!r}"
        )
        raise ValueError(msg)
    if path == ":memory:":
        msg = "url: for profiles in memory use 'memory://', not 'sqlite:///:memory:'"
        raise ValueError(msg)
    return path


def open_storage(url: str | os.PathLike[str] | None) -> Storage:
    """Open the storage that ``url`` names.

    * ``None`` or ``"memory://"``: a new, empty :class:`MemoryStorage`.
    * ``"sqlite:///relative/path.db"``, ``"sqlite:////absolute/path.db"`` (the
      convention of SQLAlchemy and Django) or any ``os.PathLike``: an
      :class:`SQLiteStorage` on that file, created if missing.
    * ``"postgresql://user:password@host/db"`` (also ``postgres://`` and
      SQLAlchemy's ``postgresql+psycopg://``): a :class:`PostgresStorage`,
      creating its tables if missing; :class:`StorageError` naming the URL
      without its password if the server cannot be reached or the database
      is not ours.

    Raises ``ValueError`` naming the scheme for any other URL (a bare path
    string too: pass a ``pathlib.Path`` or an ``sqlite:///`` URL),
    ``TypeError`` for anything but these types, and :class:`StorageError`
    naming the path when the file cannot be opened as ours.

    >>> open_storage("memory://").name
    'memory://'
    """
    if url is None:
        return MemoryStorage()
    if isinstance(url, os.PathLike):
        path = os.fspath(url)
        if not isinstance(path, str):
            msg = f"url: expected a str path, got {type(path).__name__} from {url!r}"
            raise TypeError(msg)
        return SQLiteStorage(path)
    if not isinstance(url, str):
        msg = f"url: {_EXPECTED}; got {type(url).__name__}"
        raise TypeError(msg)
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator:
        msg = f"url: {_EXPECTED}; got {url!r}, which has no scheme"
        raise ValueError(msg)
    if scheme == "memory":
        if rest:
            msg = f"url: 'memory://' takes nothing after it, got {url!r}"
            raise ValueError(msg)
        return MemoryStorage()
    if scheme == "sqlite":
        return SQLiteStorage(sqlite_file(url))
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        # Imported here: psycopg costs a tenth of a second to import.
        from storage.postgres import PostgresStorage

        return PostgresStorage(url)
    msg = f"url: unknown scheme {scheme!r} in {url!r}; {_EXPECTED}"
    raise ValueError(msg)
