"""History retention: the background job drops instances older than each tenant's retention."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from broker.ngsild.temporal.history import HistoryRow, given
from broker.ngsild.temporal.query import HistorySelection, TemporalQuery
from broker.ngsild.temporal.times import from_micros, to_micros
from broker.services.retention import RetentionJob
from broker.services.temporal import TemporalService
from broker.store.history import HistoryStore
from broker.store.sqlite import SqliteStore

NOW = datetime(2026, 12, 3, tzinfo=UTC)
LEVEL = "https://example.org/level"
DAY = 86_400_000_000


def rows(days_ago: list[int]) -> list[HistoryRow]:
    now = to_micros("2026-12-03T00:00:00Z")
    return [
        HistoryRow(LEVEL, None, {"type": "Property", "value": d}, from_micros(now - d * DAY))
        for d in days_ago
    ]


async def values(store: SqliteStore, tenant: str) -> list[int]:
    history = await store.tenant(tenant)
    assert isinstance(history, HistoryStore)
    found = await history.history(["urn:e:1"], HistorySelection(TemporalQuery()))
    return [i["value"] for s in found.get("urn:e:1", []) for i in s.instances]


async def test_the_sweep_keeps_what_is_within_retention(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    await store.start()
    try:
        for tenant in ("", "keeper"):
            tenant_store = await store.tenant(tenant, create=True)
            doc = {"id": "urn:e:1", "type": ["T"], "attrs": {}}
            await tenant_store.create(doc, history=given(rows([40, 20, 5, 1])))
        days = {"": 10.0, "keeper": 0.0}  # 0: keep for ever
        job = RetentionJob(store, TemporalService(store), days.__getitem__, 60, clock=lambda: NOW)
        assert await job.sweep() == 2
        assert sorted(await values(store, "")) == [1, 5]
        assert sorted(await values(store, "keeper")) == [1, 5, 20, 40]
        # the periodic task starts and stops cleanly
        await job.start()
        await asyncio.sleep(0)
        await job.close()
    finally:
        await store.close()
