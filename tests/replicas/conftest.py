"""Several Toshi replicas on one MongoDB: each test opens two or more stores on one database,
as the replicas of one installation do. MongoDB only (SQLite files are not shared between
processes by design), so without ``TOSHI_TEST_MONGODB_URL`` every test here is skipped, with
the reason, never passed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from broker.store.mongo import MongoStore

from tests.contract.conftest import (
    MONGODB_URL_VARIABLE,
    NO_MONGODB,
    drop_test_databases,
    with_database,
)

Replicas = Callable[[], MongoStore]


@pytest.fixture
async def replicas() -> AsyncIterator[Callable[[], MongoStore]]:
    """Opens started stores on one fresh base database, each standing for one replica."""
    url = os.environ.get(MONGODB_URL_VARIABLE)
    if not url:
        pytest.skip(NO_MONGODB)
    base = f"toshi-test-{uuid.uuid4().hex[:12]}"
    opened: list[MongoStore] = []

    def open_replica() -> MongoStore:
        store = MongoStore(with_database(url, base))
        opened.append(store)
        return store

    try:
        yield open_replica
    finally:
        try:
            for store in opened:
                await store.close()
        finally:
            await drop_test_databases(url, base)
