"""Snapshot use cases (GS CIM 009 v1.9.1 §5.16): create, read, update, clone, delete, purge.

Each Snapshot's frozen entities live in a store tenant of their own, named ``_snapshot-<hex>``:
the leading underscore is outside the tenant names clients may send (``broker.ngsild.tenants``),
so only the ``NGSILD-Snapshot`` header reaches it, and only through the tenant whose record
names it. Everything the store does for entities (queries, paging, geo-queries, counts) then
works on a snapshot unchanged. The record itself (``broker.ngsild.snapshots``) is kept in the
owning tenant's store as a record of kind ``snapshot``.

Creating and cloning answer at once with status ``preparing``; the copy runs in a task and sets
``success`` (or ``failed``) when it is done (§5.16.1.4: the snapshot is filled asynchronously).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import Any

from broker.clock import Clock, timestamp, utc_now
from broker.ngsild import snapshots as rules
from broker.ngsild.entity import EntityDoc
from broker.ngsild.errors import AlreadyExists, NgsiLdError, ResourceNotFound
from broker.ngsild.expiry import stamped
from broker.ngsild.query import EntityQuery
from broker.services.entities import EntityService
from broker.services.shared_reads import EntityReads
from broker.store.base import EntityStore, Store

_log = logging.getLogger(__name__)
_PAGE = 500


class SnapshotService:
    """The Snapshots of every tenant."""

    def __init__(self, store: Store, entities: EntityService, clock: Clock = utc_now) -> None:
        self._store = store
        self._entities = entities
        self._clock = clock
        self._fills: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop fills still running (their snapshots stay ``preparing``)."""
        for task in list(self._fills):
            task.cancel()
        await asyncio.gather(*self._fills, return_exceptions=True)

    async def create(
        self,
        tenant: str,
        raw: list[dict[str, Any]],
        queries: list[EntityQuery],
        priority: int,
        reads: EntityReads | None = None,
    ) -> dict[str, Any]:
        """Create Snapshot (§5.16.1): the record now, the copy of the live entities later.

        ``reads`` is what the creating request reads entities through (its grants, the
        registered context sources): §5.16.1.4 runs the queries with the behaviour of Query
        Entities (§5.7.2.4), so entities of context sources are frozen too. By default, the
        tenant's own entities.
        """
        record = await self._new(tenant, raw, priority)
        fill = self._fill_from_live(tenant, record, queries, reads or self._entities)
        self._start(tenant, record, fill)
        return rules.render(record)

    async def clone(self, tenant: str, snapshot_id: str, body: Any) -> dict[str, Any]:
        """Clone Snapshot (§5.16.2): a new Snapshot holding a copy of this one's entities."""
        original = await self._record(tenant, snapshot_id)
        priority = rules.clone_priority(original, body)
        record = await self._new(tenant, original["snapshotQueries"], priority)
        source = await self._store.tenant(rules.store_of(original), create=True)
        self._start(tenant, record, self._fill_from(source, record))
        return rules.render(record)

    async def retrieve(self, tenant: str, snapshot_id: str) -> dict[str, Any]:
        """Retrieve Snapshot (§5.16.3)."""
        return rules.render(await self._record(tenant, snapshot_id))

    async def query(self, tenant: str) -> list[dict[str, Any]]:
        """Query Snapshots (§5.16.6): every Snapshot of the tenant."""
        return [rules.render(r) for r in await self._records(tenant)]

    async def update(self, tenant: str, snapshot_id: str, body: Any) -> dict[str, Any]:
        """Update Snapshot (§5.16.4)."""
        record = await self._record(tenant, snapshot_id)
        updated = rules.update_snapshot(record, body, now=timestamp(self._clock))
        await self._save(tenant, updated)
        return rules.render(updated)

    async def delete(self, tenant: str, snapshot_id: str) -> None:
        """Delete Snapshot (§5.16.5): the record and the frozen entities."""
        await self._drop(tenant, await self._record(tenant, snapshot_id))

    async def purge(self, tenant: str, q: str | None) -> int:
        """Purge Snapshots (§5.16.7): delete those the ``q`` selects; how many."""
        expr = rules.purge_filter(q)
        doomed = [r for r in await self._records(tenant) if rules.selected(expr, r)]
        for record in doomed:
            await self._drop(tenant, record)
        return len(doomed)

    async def store_of(self, tenant: str, snapshot_id: str) -> str:
        """The store tenant a request with ``NGSILD-Snapshot: snapshot_id`` reads (§6.3.22)."""
        return rules.store_of(await self._record(tenant, snapshot_id))

    async def _new(self, tenant: str, raw: list[dict[str, Any]], priority: int) -> dict[str, Any]:
        key = uuid.uuid4().hex
        record = rules.new_record(
            f"urn:ngsi-ld:Snapshot:{key}",
            raw,
            priority,
            store=f"_snapshot-{key}",
            now=timestamp(self._clock),
        )
        await self._save(tenant, record, create=True)
        return record

    def _start(
        self, tenant: str, record: dict[str, Any], fill: Awaitable[list[int | None]]
    ) -> None:
        task = asyncio.create_task(self._run(tenant, record, fill), name=f"fill {record['id']}")
        self._fills.add(task)
        task.add_done_callback(self._fills.discard)

    async def _run(
        self, tenant: str, record: dict[str, Any], fill: Awaitable[list[int | None]]
    ) -> None:
        try:
            counts: list[int | None] = await fill
        except Exception:  # a failed fill is reported on the snapshot, not lost in a task
            _log.exception("filling snapshot %s failed", record["id"])
            counts = [None]
        try:
            current = await self._record(tenant, record["id"])
        except ResourceNotFound:
            await self._store.drop_tenant(rules.store_of(record))  # deleted while filling
            return
        await self._save(tenant, rules.filled(current, counts, now=timestamp(self._clock)))

    async def _fill_from_live(
        self,
        tenant: str,
        record: dict[str, Any],
        queries: list[EntityQuery],
        reads: EntityReads,
    ) -> list[int | None]:
        target = await self._store.tenant(rules.store_of(record), create=True)
        counts: list[int | None] = []
        for query in queries:
            try:
                counts.append(await _copy(target, partial_pages(reads, tenant, query)))
            except NgsiLdError:
                counts.append(None)
        return counts

    async def _fill_from(self, source: EntityStore, record: dict[str, Any]) -> list[int | None]:
        target = await self._store.tenant(rules.store_of(record), create=True)
        return [await _copy(target, store_pages(source))]

    async def _record(self, tenant: str, snapshot_id: str) -> dict[str, Any]:
        for record in await self._records(tenant):
            if record["id"] == snapshot_id:
                return record
        raise ResourceNotFound(f"snapshot {snapshot_id} does not exist")

    async def _records(self, tenant: str) -> list[dict[str, Any]]:
        store = await self._store.tenant(tenant)
        return await store.records(rules.KIND)

    async def _save(self, tenant: str, record: dict[str, Any], *, create: bool = False) -> None:
        store = await self._store.tenant(tenant, create=create)
        await store.save_record(rules.KIND, record["id"], record)

    async def _drop(self, tenant: str, record: dict[str, Any]) -> None:
        store = await self._store.tenant(tenant)
        await store.delete_record(rules.KIND, record["id"])
        await self._store.drop_tenant(rules.store_of(record))


async def partial_pages(
    entities: EntityReads, tenant: str, query: EntityQuery
) -> AsyncIterator[list[EntityDoc]]:
    """The live entities ``query`` selects, page by page (what readers see: nothing expired)."""
    offset = 0
    while True:
        page = await entities.query(tenant, replace(query, limit=_PAGE, offset=offset, count=False))
        yield page.entities
        if len(page.entities) < _PAGE:
            return
        offset += _PAGE


async def store_pages(store: EntityStore) -> AsyncIterator[list[EntityDoc]]:
    """Every entity of ``store``, page by page."""
    offset = 0
    while True:
        page = await store.query(EntityQuery(limit=_PAGE, offset=offset))
        yield page.entities
        if len(page.entities) < _PAGE:
            return
        offset += _PAGE


async def _copy(target: EntityStore, pages: AsyncIterator[list[EntityDoc]]) -> int:
    copied = 0
    async for docs in pages:
        # Submitted together: the SQLite writer commits a page in one transaction. What readers
        # were shown may lack expired parts, so its expiry stamp is taken anew.
        outcomes = await asyncio.gather(
            *(target.create(stamped(d)) for d in docs), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, AlreadyExists):
                continue  # selected by an earlier query of the same snapshot
            if isinstance(outcome, BaseException):
                raise outcome
            copied += 1
    return copied
