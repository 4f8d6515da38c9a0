"""The production store: MongoDB through PyMongo's native asyncio API (``AsyncMongoClient``).

Layout. One database per tenant: the default tenant uses the database named in the URL path
(``toshi`` if none), tenant ``kyoto`` uses ``<base>-t-kyoto``; the base database's ``tenants``
collection lists the tenants that exist. Each tenant database has one ``entities`` collection,
one document per entity::

    {_id: <entity id>, seq: <insertion order>, version: <n>, types: [...], attrNames: [...],
     doc: <the entity document as orjson bytes>}

The entity document is stored as bytes because attribute IRIs contain dots and would be illegal
field names; ``types`` and ``attrNames`` are the queryable copies, both indexed.

Concurrency. ``update`` is an optimistic read-modify-write: read the document and its
``version``, run the pure mutation, then replace on ``{_id, version}``; if another writer won, run
the mutation again on the fresh document. Writes use ``w="majority", j=True``, so an acknowledged
write is journaled on a majority of the replica set.

``idPattern`` is RE2 syntax and is never handed to MongoDB's backtracking ``$regex``: candidates
are narrowed by the other filters and matched in Python with RE2.

Verification. MongoDB cannot run on the machines this project is developed on; this module is
held to ``tests/contract/`` only where ``TOSHI_TEST_MONGODB_URL`` is set (see README).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar
from urllib.parse import urlsplit

import orjson
from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument, WriteConcern
from pymongo.errors import DuplicateKeyError

from broker.ngsild.entity import EntityDoc
from broker.ngsild.errors import AlreadyExists, InternalError, NonexistentTenant, ResourceNotFound
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.model import compile_pattern
from broker.ngsild.tenants import DEFAULT_TENANT
from broker.store.base import Committed, EntityStore, Mutation, QueryPage

T = TypeVar("T")
_MAX_ATTEMPTS = 50
_DURABLE = WriteConcern(w="majority", j=True)


def _record(doc: EntityDoc, seq: int, version: int) -> dict[str, Any]:
    return {
        "_id": doc["id"],
        "seq": seq,
        "version": version,
        "types": list(doc["type"]),
        "attrNames": list(doc["attrs"]),
        "doc": orjson.dumps(doc),
    }


class MongoEntityStore(EntityStore):
    """The entities of one tenant in one MongoDB database."""

    def __init__(self, database: Any) -> None:
        self._db = database
        self._entities = database.get_collection("entities", write_concern=_DURABLE)
        self._counters = database.get_collection("counters", write_concern=_DURABLE)

    async def prepare(self) -> None:
        """Create the indexes queries rely on (idempotent)."""
        await self._entities.create_index([("seq", ASCENDING)], unique=True)
        await self._entities.create_index([("types", ASCENDING), ("seq", ASCENDING)])
        await self._entities.create_index([("attrNames", ASCENDING), ("seq", ASCENDING)])

    async def create(self, doc: EntityDoc) -> None:
        counter = await self._counters.find_one_and_update(
            {"_id": "entities"},
            {"$inc": {"seq": 1}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        try:
            await self._entities.insert_one(_record(doc, int(counter["seq"]), 0))
        except DuplicateKeyError:
            raise AlreadyExists(f"entity {doc['id']} already exists") from None

    async def get(self, entity_id: str) -> EntityDoc | None:
        found = await self._entities.find_one({"_id": entity_id}, {"doc": 1})
        return None if found is None else orjson.loads(found["doc"])

    async def update(self, entity_id: str, mutate: Mutation[T]) -> Committed[T]:
        for _ in range(_MAX_ATTEMPTS):
            found = await self._entities.find_one({"_id": entity_id})
            if found is None:
                raise ResourceNotFound(f"entity {entity_id} does not exist")
            before: EntityDoc = orjson.loads(found["doc"])
            after, result = mutate(before)
            if after is before:
                return Committed(before, after, result)
            replaced = await self._entities.replace_one(
                {"_id": entity_id, "version": found["version"]},
                _record(after, found["seq"], found["version"] + 1),
            )
            if replaced.matched_count == 1:
                return Committed(before, after, result)
            await asyncio.sleep(0)  # another writer won; read its result and try again
        raise InternalError(f"entity {entity_id} is changing too fast to update")

    async def delete(self, entity_id: str) -> EntityDoc:
        found = await self._entities.find_one_and_delete({"_id": entity_id})
        if found is None:
            raise ResourceNotFound(f"entity {entity_id} does not exist")
        return orjson.loads(found["doc"])  # type: ignore[no-any-return]

    async def query(self, query: EntityQuery) -> QueryPage:
        selector = _selector(query)
        if query.id_pattern is not None:
            return await self._query_with_pattern(selector, query)
        total = await self._entities.count_documents(selector) if query.count else None
        entities: list[EntityDoc] = []
        if query.limit > 0:
            cursor = (
                self._entities.find(selector, {"doc": 1})
                .sort("seq", ASCENDING)
                .skip(query.offset)
                .limit(query.limit)
            )
            entities = [orjson.loads(found["doc"]) async for found in cursor]
        return QueryPage(entities, total)

    async def _query_with_pattern(self, selector: dict[str, Any], query: EntityQuery) -> QueryPage:
        assert query.id_pattern is not None
        pattern = compile_pattern(query.id_pattern)
        matched = 0
        entities: list[EntityDoc] = []
        cursor = self._entities.find(selector, {"_id": 1, "doc": 1}).sort("seq", ASCENDING)
        async for found in cursor:
            if not pattern.search(found["_id"]):
                continue
            if query.offset <= matched < query.offset + query.limit:
                entities.append(orjson.loads(found["doc"]))
            matched += 1
            if not query.count and matched >= query.offset + query.limit:
                break
        return QueryPage(entities, matched if query.count else None)


def _selector(query: EntityQuery) -> dict[str, Any]:
    selector: dict[str, Any] = {}
    if query.types is not None:
        selector["types"] = {"$in": list(query.types)}
    if query.ids is not None:
        selector["_id"] = {"$in": list(query.ids)}
    if query.attrs is not None:
        selector["attrNames"] = {"$in": list(query.attrs)}
    return selector


class MongoStore:
    """All tenants' databases on one MongoDB deployment."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._base = parts.path.strip("/") or "toshi"
        self._hosts = parts.hostname or "localhost"
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
        self._open: dict[str, MongoEntityStore] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self.tenant(DEFAULT_TENANT, create=True)

    async def close(self) -> None:
        self._open.clear()
        await self._client.close()

    async def tenant(self, name: str, *, create: bool = False) -> MongoEntityStore:
        store = self._open.get(name)
        if store is not None:
            return store
        async with self._lock:
            store = self._open.get(name)
            if store is None:
                registry = self._client[self._base].get_collection(
                    "tenants", write_concern=_DURABLE
                )
                known = await registry.find_one({"_id": name}) is not None
                if not known and not create:
                    raise NonexistentTenant(f"tenant {name!r} does not exist")
                store = MongoEntityStore(self._client[self._database(name)])
                await store.prepare()
                if not known:
                    await registry.update_one({"_id": name}, {"$set": {"_id": name}}, upsert=True)
                self._open[name] = store
        return store

    async def tenants(self) -> list[str]:
        registry = self._client[self._base]["tenants"]
        names = [found["_id"] async for found in registry.find({}, {"_id": 1})]
        return sorted(n for n in names if n != DEFAULT_TENANT)

    def describe(self) -> dict[str, Any]:
        return {"backend": "mongodb", "hosts": self._hosts, "database": self._base}

    def _database(self, tenant: str) -> str:
        return self._base if tenant == DEFAULT_TENANT else f"{self._base}-t-{tenant}"
