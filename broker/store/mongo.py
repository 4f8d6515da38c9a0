"""The MongoDB store: one database per tenant, one document per entity.

Layout. The default tenant lives in the database the URL names (``mongodb://host/toshi``; no name
→ ``toshi``), every other tenant in ``<base>-t-<tenant>`` (tenant names are validated by
``broker.ngsild.tenants``; a name that would make the database name longer than MongoDB's 63
characters is shortened and suffixed with a hash of the full name). Each tenant database has:

* ``entities``: ``{_id: <entity id>, doc: <orjson bytes>, types: [<type IRI>],
  attrNames: [<attribute IRI>], seq: <int>, version: <int>}``. The entity document itself is kept
  as the exact bytes ``orjson.dumps`` produced (BSON binary), because attribute IRIs contain dots
  and colons and must never become MongoDB field names, and because it makes a round trip
  byte-exact, as in the SQLite store. ``types`` and ``attrNames`` are copies of what queries
  filter on, indexed (multikey). ``seq`` numbers entities in insertion order, so that paging is
  stable and identical to the SQLite store's primary-key order; ``version`` counts the writes to
  the document, for optimistic concurrency.
* ``counters``: the ``seq`` counter, advanced atomically with ``$inc``.
* ``records``: ``{_id: {k: <kind>, n: <key>}, doc: <orjson bytes>, seq: <int>}``: subscriptions,
  IoT provisioning and other small documents (``RecordStore``). Earlier versions kept
  subscriptions in a ``subscriptions`` collection; ``prepare`` moves them here.

The base database also has ``tenants``: one ``{_id: <tenant name>}`` per tenant that was created,
which is what ``tenant(name)`` and ``tenants()`` consult (several brokers may share one MongoDB,
so a tenant another broker created is found, and an unknown name is never cached as missing).

Journal. A write that owes notifications (a ``Journal`` record, see ``broker.store.base``) saves
the entity and the record in one multi-document transaction, which needs a replica set; on a
standalone ``mongod`` the broker logs an error once and saves the record right after the write.

Concurrency. ``update`` is an optimistic read-modify-write: read the document and its
``version``, run the pure mutation in Python, and write only if ``version`` is still the one that
was read (``update_one({_id, version}, ...)`` is atomic on one document). If another writer got
in between, nothing was written and the whole read-modify-write is retried, with a little random
back-off; a writer only loses a round when another one won it, so every update completes. Deletes
are a single ``find_one_and_delete``. Apart from the journal, this works on a standalone ``mongod``
too: only writes that owe notifications use transactions.

Durability. Unless the URL says otherwise (``w=`` / ``journal=``), writes use the write concern
``{w: "majority", j: true}``: a write is acknowledged once it is in the journal of a majority of
the replica set, so a client that got 201/204 can rely on it, as with the SQLite store.

Queries. ``types``, ``ids``, ``attrs`` and the attributes a ``q`` requires become ``$in``/``$all``
filters on ``types``, ``_id`` and ``attrNames``, sorted by ``seq``. Everything else (``q``,
``scopeQ``, ``geoQ``, type expressions with ``;``, and ``idPattern``, which is RE2 syntax and never
handed to MongoDB's backtracking ``$regex``) is decided by the reference evaluator here, over the
candidates streamed in ``seq`` order (``broker.ngsild.query.page``). Geo-queries do not use a
MongoDB spatial index yet: they narrow only by the GeoProperty's presence.

Discovery. ``catalogue`` holds ``{_id: {type, attr, kind}, n}`` counts, incremented after each
entity write (``broker.ngsild.catalogue``).

What is verified where. ``tests/contract/test_store_contract.py`` runs the same contract (and a
differential test against ``broker.ngsild.query.matches``) on this store when
``TOSHI_TEST_MONGODB_URL`` points at a MongoDB server; on machines without MongoDB only the
server-free parts (URL parsing, ``describe``, database naming) are exercised, and mypy checks the
use of PyMongo's typed API. The behaviour against a real server is verified only where that
variable is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from pymongo import ASCENDING, AsyncMongoClient, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from broker.ngsild.catalogue import CatalogueRow, catalogue_delta
from broker.ngsild.entity import EntityDoc
from broker.ngsild.errors import (
    AlreadyExists,
    InternalError,
    NonexistentTenant,
    ResourceNotFound,
)
from broker.ngsild.expiry import when
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.page import PageCollector
from broker.ngsild.tenants import DEFAULT_TENANT
from broker.retry import full_jitter
from broker.store.base import Committed, Journal, JournalRecord, Mutation, QueryPage, TenantStore
from broker.store.tenant_cache import TenantCache

T = TypeVar("T")
Document = dict[str, Any]

_log = logging.getLogger(__name__)
DEFAULT_DATABASE: Final = "toshi"
TENANT_INFIX: Final = "-t-"
"""Tenant databases are named ``<base>-t-<tenant>``."""

MAX_UPDATE_ATTEMPTS: Final = 100
"""Optimistic retries before ``update`` gives up. A writer only loses a round when a concurrent
writer of the same entity wins it, so this is only reached under pathological contention."""

_MAX_DATABASE_NAME: Final = 63
_ENTITIES: Final = "entities"
_COUNTERS: Final = "counters"
_CATALOGUE: Final = "catalogue"
_RECORDS: Final = "records"
_OLD_SUBSCRIPTIONS: Final = "subscriptions"
_TENANTS: Final = "tenants"
_SEQ_COUNTER: Final = "entities"


class MongoEntityStore(TenantStore):
    """The entities of one tenant in one MongoDB database."""

    def __init__(self, database: AsyncDatabase[Document]) -> None:
        self.database = database
        self._entities: AsyncCollection[Document] = database[_ENTITIES]
        self._counters: AsyncCollection[Document] = database[_COUNTERS]
        self._catalogue: AsyncCollection[Document] = database[_CATALOGUE]
        self._records: AsyncCollection[Document] = database[_RECORDS]

    async def prepare(self) -> None:
        """Create the indexes and the ``seq`` counter if needed (idempotent)."""
        await self._entities.create_indexes(
            [
                IndexModel([("seq", ASCENDING)], name="seq", unique=True),
                IndexModel([("types", ASCENDING), ("seq", ASCENDING)], name="types_seq"),
                IndexModel([("attrNames", ASCENDING), ("seq", ASCENDING)], name="attrs_seq"),
                IndexModel(
                    [("expiry", ASCENDING)],
                    name="expiry",
                    partialFilterExpression={"expiry": {"$type": "number"}},
                ),
            ]
        )
        await self._records.create_index(
            [("_id.k", ASCENDING), ("seq", ASCENDING)], name="kind_seq"
        )
        await self._adopt_old_subscriptions()
        # Two brokers may race to create it; the loser's duplicate key means it exists.
        with contextlib.suppress(DuplicateKeyError):
            await self._counters.update_one(
                {"_id": _SEQ_COUNTER}, {"$setOnInsert": {"seq": 0}}, upsert=True
            )

    async def create(self, doc: EntityDoc, *, journal: Journal | None = None) -> None:
        # A seq taken by an insert that then fails is simply never used: gaps do not matter,
        # only the order does.
        seq = await self._next_seq()
        record = {**_searchable(doc), "_id": doc["id"], "seq": seq, "version": 0}
        noted = None if journal is None else journal(None, doc)
        try:
            if noted is None:
                await self._entities.insert_one(record)
            else:
                await self._in_transaction(noted, partial(self._entities.insert_one, record))
        except DuplicateKeyError:
            raise AlreadyExists(f"entity {doc['id']} already exists") from None
        await self._recount(None, doc)

    async def get(self, entity_id: str) -> EntityDoc | None:
        record = await self._entities.find_one({"_id": entity_id}, {"doc": 1})
        return None if record is None else _load(record)

    async def update(
        self, entity_id: str, mutate: Mutation[T], *, journal: Journal | None = None
    ) -> Committed[T]:
        for attempt in range(MAX_UPDATE_ATTEMPTS):
            record = await self._entities.find_one({"_id": entity_id}, {"doc": 1, "version": 1})
            if record is None:
                raise ResourceNotFound(f"entity {entity_id} does not exist")
            before = _load(record)
            after, result = mutate(before)
            if after is before:
                return Committed(before, after, result)
            write = partial(
                self._entities.update_one,
                {"_id": entity_id, "version": record["version"]},
                {"$set": _searchable(after), "$inc": {"version": 1}},
            )
            noted = None if journal is None else journal(before, after)
            try:
                if noted is None:
                    written = await write()
                    won = written.matched_count == 1
                else:
                    won = await self._in_transaction(noted, write)
            except _LostRace:
                won = False
            if won:
                await self._recount(before, after)
                return Committed(before, after, result)
            await _back_off(attempt)
        raise InternalError(
            f"entity {entity_id} kept changing: gave up after {MAX_UPDATE_ATTEMPTS} attempts"
        )

    async def delete(self, entity_id: str, *, journal: Journal | None = None) -> EntityDoc:
        if journal is None:
            record = await self._entities.find_one_and_delete({"_id": entity_id}, {"doc": 1})
        else:
            record = await self._delete_journaled(entity_id, journal)
        if record is None:
            raise ResourceNotFound(f"entity {entity_id} does not exist")
        doc = _load(record)
        await self._recount(doc, None)
        return doc

    async def _delete_journaled(self, entity_id: str, journal: Journal) -> Document | None:
        seq = await self._next_seq()
        if not _TRANSACTIONS.available:
            record = await self._entities.find_one_and_delete({"_id": entity_id}, {"doc": 1})
            noted = None if record is None else journal(_load(record), None)
            if noted is not None:
                await self._save_noted(noted, seq, None)
            return record
        try:
            client = self.database.client
            async with client.start_session() as session, await session.start_transaction():
                record = await self._entities.find_one_and_delete(
                    {"_id": entity_id}, {"doc": 1}, session=session
                )
                noted = None if record is None else journal(_load(record), None)
                if noted is not None:
                    await self._save_noted(noted, seq, session)
                return record
        except OperationFailure as exc:
            _TRANSACTIONS.refused(exc)
            return await self._delete_journaled(entity_id, journal)

    async def _in_transaction(
        self, noted: JournalRecord, write: Callable[..., Awaitable[Any]]
    ) -> bool:
        """Run ``write`` and save the journal record ``noted`` in one transaction (a replica
        set is needed for transactions); False when ``write`` matched nothing."""
        seq = await self._next_seq()
        if not _TRANSACTIONS.available:  # a standalone mongod: the record follows the write
            written = await write()
            if getattr(written, "matched_count", 1) != 1:
                return False
            await self._save_noted(noted, seq, None)
            return True
        try:
            client = self.database.client
            async with client.start_session() as session, await session.start_transaction():
                written = await write(session=session)
                if getattr(written, "matched_count", 1) != 1:
                    raise _LostRace  # aborts the transaction: the record is not saved
                await self._save_noted(noted, seq, session)
        except OperationFailure as exc:
            _TRANSACTIONS.refused(exc)
            return await self._in_transaction(noted, write)
        return True

    async def _save_noted(
        self, noted: JournalRecord, seq: int, session: AsyncClientSession | None
    ) -> None:
        kind, key, doc = noted
        await self._records.update_one(
            {"_id": _record_id(kind, key)},
            {"$set": {"doc": orjson.dumps(doc)}, "$setOnInsert": {"seq": seq}},
            upsert=True,
            session=session,
        )

    async def query(self, query: EntityQuery) -> QueryPage:
        where = _filter(query)
        if query.has_expressions or query.id_pattern is not None:
            return await self._finish(query, where)
        total = await self._entities.count_documents(where) if query.count else None
        entities: list[EntityDoc] = []
        if query.limit > 0:  # PyMongo reads limit(0) as "no limit"
            cursor = (
                self._entities.find(where, {"doc": 1})
                .sort("seq", ASCENDING)
                .skip(query.offset)
                .limit(query.limit)
            )
            entities = [_load(record) async for record in cursor]
        return QueryPage(entities, total)

    async def _finish(self, query: EntityQuery, where: Document) -> QueryPage:
        """Stream the indexed candidates in order and let the reference evaluator decide."""
        collector = PageCollector(query)
        cursor = self._entities.find(where, {"doc": 1}).sort("seq", ASCENDING).batch_size(200)
        try:
            async for record in cursor:
                if not collector.offer(_load(record)):
                    break
        finally:
            await cursor.close()
        entities, total = collector.result()
        return QueryPage(entities, total)

    async def save_record(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        await self.save_records(kind, [(key, doc)])

    async def records(self, kind: str) -> list[dict[str, Any]]:
        cursor = self._records.find({"_id.k": kind}, {"doc": 1}).sort("seq", ASCENDING)
        return [_load(record) async for record in cursor]

    async def delete_record(self, kind: str, key: str) -> bool:
        return await self.delete_records(kind, [key]) > 0

    async def save_records(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        if not items:
            return
        # seq is set once, on insert, so listing keeps creation order across replacements;
        # one $inc reserves a block of seqs for the whole batch.
        last = await self._next_seq(len(items))
        writes = [
            UpdateOne(
                {"_id": _record_id(kind, key)},
                {"$set": {"doc": orjson.dumps(doc)}, "$setOnInsert": {"seq": seq}},
                upsert=True,
            )
            for seq, (key, doc) in enumerate(items, last - len(items) + 1)
        ]
        await self._records.bulk_write(writes, ordered=True)

    async def delete_records(self, kind: str, keys: list[str]) -> int:
        if not keys:
            return 0
        ids = [_record_id(kind, key) for key in keys]
        deleted = await self._records.delete_many({"_id": {"$in": ids}})
        return deleted.deleted_count

    async def _adopt_old_subscriptions(self) -> None:
        old = self.database[_OLD_SUBSCRIPTIONS]
        async for record in old.find({}).sort("seq", ASCENDING):
            await self.save_record("subscription", str(record["_id"]), _load(record))
            await old.delete_one({"_id": record["_id"]})

    async def expiring(self, now: float, limit: int) -> list[str]:
        cursor = (
            self._entities.find({"expiry": {"$type": "number", "$lte": now}}, {"_id": 1})
            .sort("expiry", ASCENDING)
            .limit(limit)
        )
        return [record["_id"] async for record in cursor]

    async def count(self) -> int:
        return await self._entities.count_documents({})

    async def catalogue(self) -> list[CatalogueRow]:
        rows = self._catalogue.find({"n": {"$gt": 0}})
        found = [
            CatalogueRow(row["_id"]["type"], row["_id"]["attr"], row["_id"]["kind"], row["n"])
            async for row in rows
        ]
        return sorted(found)

    async def _recount(self, before: EntityDoc | None, after: EntityDoc | None) -> None:
        # Applied after the entity write: a crash in between leaves discovery counts off by
        # one for that entity (they are statistics, not data), which a rebuild would fix.
        changes = [
            UpdateOne(
                {"_id": {"type": type_, "attr": attr, "kind": kind}},
                {"$inc": {"n": change}},
                upsert=True,
            )
            for (type_, attr, kind), change in catalogue_delta(before, after).items()
        ]
        if changes:
            await self._catalogue.bulk_write(changes, ordered=False)

    async def _next_seq(self, block: int = 1) -> int:
        """Reserve ``block`` sequence numbers; returns the last of them."""
        counter = await self._counters.find_one_and_update(
            {"_id": _SEQ_COUNTER},
            {"$inc": {"seq": block}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert counter is not None  # upsert with AFTER always returns the document
        return int(counter["seq"])


class MongoStore:
    """All tenants' databases on one MongoDB deployment (a replica set, sharded or standalone)."""

    def __init__(self, url: str) -> None:
        self.url = url
        hosts, database, options = parse_url(url)
        self.hosts = hosts
        self.base_database = database or DEFAULT_DATABASE
        durability: dict[str, Any] = {}
        if "w" not in options:
            durability["w"] = "majority"
        if "journal" not in options:
            durability["journal"] = True
        # The client connects lazily, on the first operation (PyMongo's async client never
        # connects in its constructor).
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, tz_aware=True, **durability
        )
        self._registry: AsyncCollection[Document] = self._client[self.base_database][_TENANTS]
        self._tenants: TenantCache[MongoEntityStore] = TenantCache()

    async def start(self) -> None:
        await self.tenant(DEFAULT_TENANT, create=True)

    async def close(self) -> None:
        self._tenants.drain()
        await self._client.close()

    async def tenant(self, name: str, *, create: bool = False) -> MongoEntityStore:
        async def open_tenant() -> MongoEntityStore:
            known = await self._registry.find_one({"_id": name}, {"_id": 1})
            if known is None and not create:
                raise NonexistentTenant(f"tenant {name!r} does not exist")
            store = MongoEntityStore(self._client[self.database_name(name)])
            await store.prepare()
            if known is None:
                # Registered after the indexes exist, so a registered tenant is usable; a
                # duplicate key means another broker registered it at the same moment.
                with contextlib.suppress(DuplicateKeyError):
                    await self._registry.insert_one({"_id": name})
            return store

        return await self._tenants.get(name, open_tenant)

    async def drop_tenant(self, name: str) -> None:
        if name == DEFAULT_TENANT:
            raise ValueError("the default tenant cannot be dropped")
        self._tenants.pop(name)
        await self._registry.delete_one({"_id": name})
        await self._client.drop_database(self.database_name(name))

    async def tenants(self) -> list[str]:
        names = [
            str(record["_id"])
            async for record in self._registry.find({}, {"_id": 1}).sort("_id", ASCENDING)
        ]
        return [name for name in names if name != DEFAULT_TENANT]

    def describe(self) -> dict[str, Any]:
        return {"backend": "mongodb", "hosts": list(self.hosts), "database": self.base_database}

    def database_name(self, tenant: str) -> str:
        """The database of ``tenant``: the base one, or ``<base>-t-<tenant>`` (≤ 63 chars)."""
        return tenant_database_name(self.base_database, tenant)


def tenant_database_name(base: str, tenant: str) -> str:
    """``<base>-t-<tenant>``, shortened with a hash of the tenant when MongoDB needs it."""
    if tenant == DEFAULT_TENANT:
        return base
    name = f"{base}{TENANT_INFIX}{tenant}"
    if len(name) <= _MAX_DATABASE_NAME:
        return name
    digest = hashlib.sha256(tenant.encode()).hexdigest()[:12]
    keep = max(0, _MAX_DATABASE_NAME - len(base) - len(TENANT_INFIX) - len(digest) - 1)
    return f"{base}{TENANT_INFIX}{tenant[:keep]}-{digest}"


def parse_url(url: str) -> tuple[list[str], str | None, dict[str, str]]:
    """``mongodb://user:pw@h1:1,h2/db?w=1`` → (hosts, database, lower-cased options).

    Done by hand rather than with PyMongo's parser, which resolves ``mongodb+srv`` names over
    DNS; credentials are dropped here so they can never reach ``describe``.
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    hosts = [host for host in netloc.split(",") if host]
    database = unquote(parts.path.lstrip("/")) or None
    options = {key.lower(): value for key, value in parse_qsl(parts.query)}
    return hosts, database, options


def _searchable(doc: EntityDoc) -> Document:
    """The stored fields derived from an entity document (everything but ids and counters).

    ``expiry`` is ``broker.ngsild.expiry.when`` (``None`` for durable entities), for the
    expiry sweep.
    """
    return {
        "doc": orjson.dumps(doc),
        "types": list(doc["type"]),
        "attrNames": list(doc["attrs"]),
        "expiry": when(doc),
    }


def _load(record: Mapping[str, Any]) -> EntityDoc:
    doc: EntityDoc = orjson.loads(record["doc"])
    return doc


def _filter(query: EntityQuery) -> Document:
    """The MongoDB filter narrowing candidates (``_finish`` decides the rest exactly)."""
    where: Document = {}
    if query.types is not None:
        where["types"] = {"$in": list(query.types)}
    if query.ids is not None:
        where["_id"] = {"$in": list(query.ids)}
    attr_filters: list[Document] = []
    if query.attrs is not None:
        attr_filters.append({"attrNames": {"$in": list(query.attrs)}})
    if query.required_attributes:
        attr_filters.append({"attrNames": {"$all": sorted(query.required_attributes)}})
    if attr_filters:
        where["$and"] = attr_filters
    return where


class _Transactions:
    """Whether the server runs transactions; a standalone ``mongod`` refuses them (code 20)."""

    available = True

    def refused(self, exc: OperationFailure) -> None:
        if exc.code != _ILLEGAL_OPERATION or not self.available:
            raise exc
        self.available = False
        _log.error(
            "MongoDB refuses transactions (a standalone server, not a replica set): a change "
            "and the notifications it owes are now saved in two steps, and a crash between "
            "them can lose those notifications. Run MongoDB as a replica set."
        )


_ILLEGAL_OPERATION: Final = 20
_TRANSACTIONS = _Transactions()


class _LostRace(Exception):
    """Another writer changed the entity first; the transaction is aborted and retried."""


async def _back_off(attempt: int) -> None:
    """Sleep a little before retrying, longer after repeated conflicts (jitter, not security)."""
    if attempt >= 2:
        await asyncio.sleep(full_jitter(attempt, base=0.001, cap=0.05))


def _record_id(kind: str, key: str) -> dict[str, str]:
    # An embedded document as _id: exact-match lookups compare it field by field, in this order.
    return {"k": kind, "n": key}
