"""Backends for the store contract: SQLite always, MongoDB where ``TOSHI_TEST_MONGODB_URL`` is set.

MongoDB cannot run on this project's development machines, so there the ``mongodb`` parameter is
skipped. Point ``TOSHI_TEST_MONGODB_URL`` at a server (``mongodb://localhost:27017``; a replica
set is best, a standalone ``mongod`` works too) to hold the MongoDB store to the same contract.
Each test then gets its own database name (the URL's path is replaced, so put credentials'
``authSource=admin`` in its options), and every database it created is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from broker.store.base import Store

MONGODB_URL_VARIABLE = "TOSHI_TEST_MONGODB_URL"
NO_MONGODB = f"{MONGODB_URL_VARIABLE} not set: MongoDB cannot run on this machine"


class Backend:
    """Opens stores on one backing location (a directory or a database), and closes them all."""

    def __init__(self, name: str, make: Callable[[], Store]) -> None:
        self.name = name
        self._make = make
        self._open: list[Store] = []

    async def open(self) -> Store:
        """A new, started store on the same data (what a broker restart would open)."""
        store = self._make()
        await store.start()
        self._open.append(store)
        return store

    async def close(self, store: Store) -> None:
        """Close ``store`` now (a broker shutting down)."""
        self._open.remove(store)
        await store.close()

    async def close_all(self) -> None:
        stores, self._open = self._open, []
        for store in stores:
            await store.close()


def with_database(url: str, database: str) -> str:
    """``url`` with its path (the database name) replaced, options kept."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def drop_test_databases(url: str, base: str) -> None:
    """Drop the base database and every tenant database a test created."""
    from broker.store.mongo_names import is_installation_database
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    try:
        for name in await client.list_database_names():
            if is_installation_database(base, name):
                await client.drop_database(name)
    finally:
        await client.close()


@pytest.fixture(params=["sqlite", "mongodb"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """One backing location per test, for each backend that can run here."""
    if request.param == "sqlite":
        from broker.store.sqlite import SqliteStore

        directory = tmp_path / "data"
        sqlite = Backend("sqlite", lambda: SqliteStore(directory, "normal"))
        try:
            yield sqlite
        finally:
            await sqlite.close_all()
        return

    url = os.environ.get(MONGODB_URL_VARIABLE)
    if not url:
        pytest.skip(NO_MONGODB)
    from broker.store.mongo import MongoStore

    base = f"toshi-test-{uuid.uuid4().hex[:12]}"
    test_url = with_database(url, base)
    mongo = Backend("mongodb", lambda: MongoStore(test_url))
    try:
        yield mongo
    finally:
        try:
            await mongo.close_all()
        finally:
            await drop_test_databases(url, base)


@pytest.fixture
async def store(backend: Backend) -> Store:
    """A started store on a fresh backing location (closed by ``backend``)."""
    return await backend.open()
