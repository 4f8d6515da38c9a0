"""Replicas on one MongoDB: the change feed, leases and journal ownership (``base.Replication``).

The feed is one deployment-wide change stream of the followed record kinds (``mongo_changes``),
opened before the caches load, so nothing committed meanwhile is missed. It resumes after the
last event it reported when the connection breaks, and reports ``Reload(None)`` when the
server cannot replay what happened since (``after_error``): the caches then load again.

Journal records carry their ``owner`` (the replica that committed them, set in the write's
transaction by ``MongoEntityStore``); ``claim`` moves one to this replica with an update
conditional on the old owner, which only one replica can win. Verified against a server only
(``tests/replicas``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from pymongo import ReturnDocument
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.errors import PyMongoError

from broker.retry import full_jitter
from broker.store.base import ChangeFeed, LeaseStore, Reload
from broker.store.leases import claim_filter
from broker.store.mongo_changes import after_error
from broker.store.mongo_leases import MongoLeases

if TYPE_CHECKING:
    from broker.store.mongo import MongoStore

_log = logging.getLogger(__name__)
Document = dict[str, Any]


class MongoReplication:
    """Coordination of the replicas that share ``store``'s database."""

    shared = True

    def __init__(self, store: MongoStore, leases: MongoLeases) -> None:
        self._store = store
        self.replica = store.replica
        self.leases: LeaseStore = leases

    async def open_changes(self, kinds: list[str]) -> ChangeFeed:
        stream = await self._store.watch_records(kinds)
        return self._follow(kinds, stream)

    async def _follow(self, kinds: list[str], first: AsyncChangeStream[Document]) -> ChangeFeed:
        stream: AsyncChangeStream[Document] | None = first
        token: Mapping[str, Any] | None = first.resume_token
        failures = 0
        while True:
            try:
                if stream is None:
                    stream = await self._store.watch_records(kinds, token)
                async for change, after in self._store.record_events(stream):
                    failures = 0
                    token = after
                    yield change
            except PyMongoError as exc:
                failures += 1
                code = getattr(exc, "code", None)
                if after_error(code if isinstance(code, int) else None) == "reload":
                    _log.warning("change stream lost its history (%s): reloading caches", exc)
                    token = None
                    yield Reload(None)
                else:
                    _log.warning("change stream failed (%s); resuming", exc)
                await _pause(failures)
            finally:
                if stream is not None:
                    await stream.close()
                    stream = None

    async def record(
        self, tenant: str, kind: str, key: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        records = (await self._store.tenant(tenant)).database["records"]
        found = await records.find_one({"_id": {"k": kind, "n": key}}, {"doc": 1, "by": 1})
        if found is None:
            return None, None
        by = found.get("by")
        return orjson.loads(found["doc"]), None if by is None else str(by)

    async def records(self, tenant: str, kind: str) -> dict[str, dict[str, Any]]:
        records = (await self._store.tenant(tenant)).database["records"]
        cursor = records.find({"_id.k": kind}, {"doc": 1}).sort("seq", 1)
        return {str(found["_id"]["n"]): orjson.loads(found["doc"]) async for found in cursor}

    async def owners(self, tenant: str, kind: str) -> dict[str, str | None]:
        records = (await self._store.tenant(tenant)).database["records"]
        cursor = records.find({"_id.k": kind, "owner": {"$ne": self.replica}}, {"owner": 1})
        return {str(record["_id"]["n"]): record.get("owner") async for record in cursor}

    async def claim(
        self, tenant: str, kind: str, key: str, owner: str | None
    ) -> dict[str, Any] | None:
        records = (await self._store.tenant(tenant)).database["records"]
        claimed = await records.find_one_and_update(
            claim_filter({"k": kind, "n": key}, owner),
            {"$set": {"owner": self.replica}},
            projection={"doc": 1},
            return_document=ReturnDocument.AFTER,
        )
        if claimed is None:
            return None
        doc: dict[str, Any] = orjson.loads(claimed["doc"])
        return doc


async def _pause(failures: int) -> None:
    await asyncio.sleep(full_jitter(failures, base=0.1, cap=5.0))
