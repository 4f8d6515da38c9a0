"""Stores behind one port (``base``): the embedded SQLite store and the MongoDB store."""

from __future__ import annotations

from pathlib import Path

from broker.settings import Settings
from broker.store.base import Store


def open_store(settings: Settings) -> Store:
    """The store the ``store`` setting names (not started yet)."""
    url = settings.store
    if url.startswith("sqlite://"):
        from broker.store.sqlite import SqliteStore

        return SqliteStore(sqlite_directory(url), settings.sqlite.synchronous)
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from broker.store.mongo import MongoStore

        return MongoStore(url, settings.replicas.id)
    raise ValueError(f"unsupported store URL {url!r}: use sqlite:///DIR or mongodb://HOST/DB")


def sqlite_directory(url: str) -> Path:
    """``sqlite:///rel/dir`` → ``rel/dir``; ``sqlite:////abs/dir`` → ``/abs/dir``."""
    rest = url[len("sqlite://") :]
    if not rest.startswith("/") or len(rest) < 2:
        raise ValueError(f"invalid SQLite store URL {url!r}: use sqlite:///DIR")
    return Path(rest[1:])
