"""The MongoDB store: one database per tenant, one document per entity.

Layout. The default tenant lives in the database the URL names (``mongodb://host/toshi``; no name
→ ``toshi``), every other tenant in its own database, named by ``mongo_names`` so that no two
tenants can share one. Each tenant database has:

* ``entities``: ``{_id: <entity id>, doc: <orjson bytes>, seq: <int>, version: <int>, ...}``.
  The entity document itself is kept as the exact bytes ``orjson.dumps`` produced (BSON
  binary), because attribute IRIs contain dots and colons and must never become MongoDB field
  names, and because it makes a round trip byte-exact, as in the SQLite store. The other fields
  (``mongo_fields``: types, attribute names, indexed values, spherical covers of geometries
  under a ``2dsphere`` index, catalogue keys) are derived from the document and rewritten with
  it. ``seq`` numbers entities in insertion order (``mongo_seq``: this replica's clock, so no
  round trip), so that paging is stable as with the SQLite store's primary key; ``version``
  counts the writes to the document, for optimistic concurrency.
* ``records``: ``{_id: {k: <kind>, n: <key>}, doc: <orjson bytes>, seq: <int>}``: subscriptions,
  IoT provisioning and other small documents (``RecordStore``). Earlier versions kept
  subscriptions in a ``subscriptions`` collection; ``prepare`` moves them here.

* ``instances``: attribute history, one document per instance (``mongo_history``), appended in
  the same transaction as the entity write it comes from.

The base database also has ``tenants``: one ``{_id: <tenant name>}`` per tenant that was created,
which is what ``tenant(name)`` and ``tenants()`` consult (several brokers may share one MongoDB,
so a tenant another broker created is found, and an unknown name is never cached as missing).

Journal. A write that owes notifications (a ``Journal`` record, see ``broker.store.base``) saves
the entity and the record in one multi-document transaction, which needs a replica set; on a
standalone ``mongod`` the broker logs an error once and saves the record right after the write.

Round trips. A create is one ``insert_one``, a delete one ``find_one_and_delete``, an update
one read and one conditional ``update_one``: everything a write changes is in the entity's own
document. Writes that owe notifications add the journal record in the same transaction.

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

Queries. ``mongo_filters`` compiles a query to a filter that narrows candidates by the indexes
(types, ids, attributes, numbers and strings of ``q``, the ``2dsphere`` index for geo-queries);
what it cannot decide exactly (``q``, ``scopeQ``, exact geometry, type expressions,
``idPattern``, which is RE2 syntax and never handed to MongoDB's backtracking ``$regex``) is
decided by the reference evaluator over the candidates streamed in insertion order
(``broker.ngsild.query.page``), as in the SQLite store.

Discovery. ``catalogue()`` counts the ``cat`` keys of the entities in one aggregation: derived
from the entities at read time, the counts cannot drift from them (the cost is a scan of the
tenant's entities per discovery request).

What is verified where. ``tests/contract/test_store_contract.py`` runs the same contract (and a
differential test against ``broker.ngsild.query.matches``) on this store when
``TOSHI_TEST_MONGODB_URL`` points at a MongoDB server. Without one,
``tests/contract/test_mongo_translation.py`` checks the filters against an independent model of
MongoDB's query semantics over the stored fields, the name, clock and cover functions have unit
tests, and mypy checks the use of PyMongo's typed API. The behaviour against a real server is
verified only where that variable is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from pymongo import ASCENDING, DESCENDING, GEOSPHERE, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from broker.ngsild.catalogue import CatalogueRow
from broker.ngsild.entity import EntityDoc, Instance
from broker.ngsild.errors import (
    AlreadyExists,
    InternalError,
    NonexistentTenant,
    ResourceNotFound,
)
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.model import Position
from broker.ngsild.query.page import PageCollector
from broker.ngsild.temporal.history import History, HistoryRow
from broker.ngsild.temporal.query import HistorySelection
from broker.ngsild.temporal.render import AttributeAggregate, AttributeHistory
from broker.ngsild.tenants import DEFAULT_TENANT
from broker.retry import full_jitter
from broker.store.base import Committed, Journal, JournalRecord, Mutation, QueryPage, TenantStore
from broker.store.history import HistoryStore
from broker.store.mongo_changes import RecordChange, Reload, record_change, record_pipeline
from broker.store.mongo_fields import searchable
from broker.store.mongo_filters import ORDER, compile_query
from broker.store.mongo_history import MongoHistory
from broker.store.mongo_history import decode as decode_instance
from broker.store.mongo_leases import MongoLeases
from broker.store.mongo_names import check_base, tenant_database_name
from broker.store.mongo_replication import MongoReplication
from broker.store.mongo_seq import InsertionClock
from broker.store.tenant_cache import TenantCache

T = TypeVar("T")
Document = dict[str, Any]

_log = logging.getLogger(__name__)
DEFAULT_DATABASE: Final = "toshi"

MAX_UPDATE_ATTEMPTS: Final = 100
"""Optimistic retries before ``update`` gives up. A writer only loses a round when a concurrent
writer of the same entity wins it, so this is only reached under pathological contention."""

_ENTITIES: Final = "entities"
_RECORDS: Final = "records"
_OLD_SUBSCRIPTIONS: Final = "subscriptions"
_TENANTS: Final = "tenants"
_INSTANCES: Final = "instances"
_SORT: Final = list(ORDER)
_PAGE_FIELDS: Final = {"doc": 1, "seq": 1}  # and _id: the document and its place in ORDER
_CATALOGUE_COUNT: Final[list[Document]] = [
    {"$project": {"_id": 0, "cat": 1}},
    {"$unwind": "$cat"},
    {"$group": {"_id": "$cat", "n": {"$sum": 1}}},
]


_ENTITY_INDEXES: Final = [
    IndexModel([("seq", ASCENDING), ("_id", ASCENDING)], name="order"),
    IndexModel([("types", ASCENDING), ("seq", ASCENDING), ("_id", ASCENDING)], name="types"),
    IndexModel([("attrNames", ASCENDING), ("seq", ASCENDING), ("_id", ASCENDING)], name="attrs"),
    IndexModel([("vals.a", ASCENDING), ("vals.v", ASCENDING)], name="vals"),
    IndexModel([("geo.g", GEOSPHERE)], name="geo"),
    IndexModel([("geoWide", ASCENDING)], name="geo_wide"),
    IndexModel(
        [("expiry", ASCENDING)],
        name="expiry",
        partialFilterExpression={"expiry": {"$type": "number"}},
    ),
]
"""Every index of ``entities``; ``geo`` is a 2dsphere index (sparse by nature: entities without a
geometry are not in it)."""


class MongoEntityStore(TenantStore, HistoryStore):
    """The entities of one tenant in one MongoDB database."""

    def __init__(self, database: AsyncDatabase[Document], replica: str = "") -> None:
        self.database = database
        self.replica = replica
        """Named in the records this replica saves (``by``) and the journal records it
        commits (``owner``), for the other replicas (``mongo_replication``)."""
        self._history = MongoHistory(database[_INSTANCES])
        self._entities: AsyncCollection[Document] = database[_ENTITIES]
        self._records: AsyncCollection[Document] = database[_RECORDS]
        self._clock = InsertionClock()

    async def prepare(self) -> None:
        """Create the indexes, index documents of earlier versions, start the clock past every
        ``seq`` in use (idempotent)."""
        # Indexes of earlier versions: "seq" was unique, but two replicas' clocks may tie.
        for old in ("seq", "types_seq", "attrs_seq"):
            with contextlib.suppress(OperationFailure):
                await self._entities.drop_index(old)
        await self._entities.create_indexes(_ENTITY_INDEXES)
        await self._records.create_index(
            [("_id.k", ASCENDING), ("seq", ASCENDING)], name="kind_seq"
        )
        await self._history.prepare()
        for collection in (self._entities, self._records):
            last = await collection.find_one({}, {"seq": 1}, sort=[("seq", DESCENDING)])
            if last is not None:
                self._clock.advance_past(int(last["seq"]))
        await self._adopt_old_subscriptions()
        await self._index_old_documents()

    async def _index_old_documents(self) -> None:
        """Derive the fields of ``mongo_fields`` for documents written before they existed."""
        async for record in self._entities.find({"cat": {"$exists": False}}, {"doc": 1}):
            await self._entities.update_one(
                {"_id": record["_id"]}, {"$set": searchable(_load(record))}
            )

    async def create(
        self, doc: EntityDoc, *, journal: Journal | None = None, history: History | None = None
    ) -> None:
        # A seq taken by an insert that then fails is simply never used: gaps do not matter,
        # only the order does.
        seq = await self._next_seq()
        record = {**searchable(doc), "_id": doc["id"], "seq": seq, "version": 0}
        noted = None if journal is None else journal(None, doc)
        rows = _rows(doc["id"], history, None, doc)
        try:
            if noted is None and rows is None:
                await self._entities.insert_one(record)
            else:
                await self._in_transaction(noted, partial(self._entities.insert_one, record), rows)
        except DuplicateKeyError:
            raise AlreadyExists(f"entity {doc['id']} already exists") from None

    async def get(self, entity_id: str) -> EntityDoc | None:
        record = await self._entities.find_one({"_id": entity_id}, {"doc": 1})
        return None if record is None else _load(record)

    async def update(
        self,
        entity_id: str,
        mutate: Mutation[T],
        *,
        journal: Journal | None = None,
        history: History | None = None,
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
                {"$set": searchable(after), "$inc": {"version": 1}},
            )
            noted = None if journal is None else journal(before, after)
            rows = _rows(entity_id, history, before, after)
            try:
                if noted is None and rows is None:
                    written = await write()
                    won = written.matched_count == 1
                else:
                    won = await self._in_transaction(noted, write, rows)
            except _LostRace:
                won = False
            if won:
                return Committed(before, after, result)
            await _back_off(attempt)
        raise InternalError(
            f"entity {entity_id} kept changing: gave up after {MAX_UPDATE_ATTEMPTS} attempts"
        )

    async def delete(
        self, entity_id: str, *, journal: Journal | None = None, history: History | None = None
    ) -> EntityDoc:
        if journal is None and history is None:
            record = await self._entities.find_one_and_delete({"_id": entity_id}, {"doc": 1})
        else:
            record = await self._delete_journaled(entity_id, journal, history)
        if record is None:
            raise ResourceNotFound(f"entity {entity_id} does not exist")
        return _load(record)

    async def _delete_journaled(
        self, entity_id: str, journal: Journal | None, history: History | None = None
    ) -> Document | None:
        seq = await self._next_seq()
        if not _TRANSACTIONS.available:
            record = await self._entities.find_one_and_delete({"_id": entity_id}, {"doc": 1})
            noted = None if record is None or journal is None else journal(_load(record), None)
            if noted is not None:
                await self._save_noted(noted, seq, None)
            rows = None if record is None else _rows(entity_id, history, _load(record), None)
            if rows:
                await self._history.append(*rows, None)
            return record
        try:
            client = self.database.client
            async with client.start_session() as session, await session.start_transaction():
                record = await self._entities.find_one_and_delete(
                    {"_id": entity_id}, {"doc": 1}, session=session
                )
                noted = None if record is None or journal is None else journal(_load(record), None)
                if noted is not None:
                    await self._save_noted(noted, seq, session)
                rows = None if record is None else _rows(entity_id, history, _load(record), None)
                if rows:
                    await self._history.append(*rows, session)
                return record
        except OperationFailure as exc:
            _TRANSACTIONS.refused(exc)
            return await self._delete_journaled(entity_id, journal, history)

    async def _in_transaction(
        self,
        noted: JournalRecord | None,
        write: Callable[..., Awaitable[Any]],
        rows: tuple[str, list[HistoryRow]] | None = None,
    ) -> bool:
        """Run ``write`` and save the journal record ``noted`` and the history ``rows`` in one
        transaction (a replica set is needed for transactions); False when ``write`` matched
        nothing."""
        seq = await self._next_seq()
        if not _TRANSACTIONS.available:  # a standalone mongod: the record follows the write
            written = await write()
            if getattr(written, "matched_count", 1) != 1:
                return False
            if noted is not None:
                await self._save_noted(noted, seq, None)
            if rows is not None:
                await self._history.append(*rows, None)
            return True
        try:
            client = self.database.client
            async with client.start_session() as session, await session.start_transaction():
                written = await write(session=session)
                if getattr(written, "matched_count", 1) != 1:
                    raise _LostRace  # aborts the transaction: the record is not saved
                if noted is not None:
                    await self._save_noted(noted, seq, session)
                if rows is not None:
                    await self._history.append(*rows, session)
        except OperationFailure as exc:
            _TRANSACTIONS.refused(exc)
            return await self._in_transaction(noted, write, rows)
        return True

    async def _save_noted(
        self, noted: JournalRecord, seq: int, session: AsyncClientSession | None
    ) -> None:
        kind, key, doc = noted
        await self._records.update_one(
            {"_id": _record_id(kind, key)},
            {
                "$set": {"doc": orjson.dumps(doc), "owner": self.replica},
                "$setOnInsert": {"seq": seq},
            },
            upsert=True,
            session=session,
        )

    async def query(self, query: EntityQuery) -> QueryPage:
        plan = compile_query(query)  # with the keyset condition, when the query has one
        if query.keyset is not None:
            query = replace(query, offset=0, resume=None)  # the filter starts after it
        where = plan.filter
        if not plan.exact:
            return await self._finish(query, where)
        total = await self._entities.count_documents(where) if query.count else None
        entities: list[EntityDoc] = []
        last = None
        if query.limit > 0:  # PyMongo reads limit(0) as "no limit"
            cursor = (
                self._entities.find(where, _PAGE_FIELDS)
                .sort(_SORT)
                .skip(query.offset)
                .limit(query.limit)
            )
            records = [record async for record in cursor]
            entities = [_load(record) for record in records]
            last = _position(records[-1]) if records else None
        return QueryPage(entities, total, last)

    async def _finish(self, query: EntityQuery, where: Document) -> QueryPage:
        """Stream the indexed candidates in order and let the reference evaluator decide."""
        collector = PageCollector(query)
        in_order = query.ordering is None and not query.by_distance
        last = None
        cursor = self._entities.find(where, _PAGE_FIELDS).sort(_SORT).batch_size(200)
        try:
            async for record in cursor:
                more = collector.offer(_load(record))
                if collector.taken_last:
                    last = record
                if not more:
                    break
        finally:
            await cursor.close()
        entities, total = collector.result()
        position = _position(last) if in_order and last is not None and entities else None
        return QueryPage(entities, total, position)

    async def history(
        self, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeHistory]]:
        return await self._history.read(entity_ids, selection)

    async def aggregate(
        self, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeAggregate]]:
        return await self._history.aggregate(entity_ids, selection)

    async def delete_history(
        self, entity_id: str, attr: str | None = None, dataset_id: str | None = None
    ) -> int:
        return await self._history.delete_history(entity_id, attr, dataset_id)

    async def instance(self, entity_id: str, attr: str, instance_id: str) -> Instance | None:
        found = await self._history.instance(entity_id, attr, instance_id)
        return None if found is None else decode_instance(found)

    async def replace_instance(
        self, entity_id: str, attr: str, instance_id: str, instance: Instance, modified: str
    ) -> bool:
        found = await self._history.instance(entity_id, attr, instance_id)
        if found is not None:
            await self._history.replace(found, instance, modified)
        return found is not None

    async def delete_instance(self, entity_id: str, attr: str, instance_id: str) -> bool:
        found = await self._history.instance(entity_id, attr, instance_id)
        if found is not None:
            await self._history.delete(found)
        return found is not None

    async def trim_history(self, recorded_before: int, limit: int) -> int:
        return await self._history.trim(recorded_before, limit)

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
        # one block of seqs is reserved for the whole batch.
        last = await self._next_seq(len(items))
        writes = [
            UpdateOne(
                {"_id": _record_id(kind, key)},
                {
                    "$set": {"doc": orjson.dumps(doc), "by": self.replica},
                    "$setOnInsert": {"seq": seq},
                },
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

    async def existing(self, entity_ids: list[str]) -> set[str]:
        cursor = self._entities.find({"_id": {"$in": entity_ids}}, {"_id": 1})
        return {record["_id"] async for record in cursor}

    async def catalogue(self) -> list[CatalogueRow]:
        rows = await self._entities.aggregate(_CATALOGUE_COUNT)
        found = [
            CatalogueRow(row["_id"]["t"], row["_id"]["a"], row["_id"]["k"], row["n"])
            async for row in rows
        ]
        return sorted(found)

    async def _next_seq(self, block: int = 1) -> int:
        """Reserve ``block`` sequence numbers; returns the last of them. From this replica's
        clock (``mongo_seq``): no round trip, unlike the shared counter of earlier versions."""
        return self._clock.take(block)


class MongoStore:
    """All tenants' databases on one MongoDB deployment (a replica set, sharded or standalone)."""

    def __init__(self, url: str, replica: str | None = None) -> None:
        self.url = url
        self.replica = replica or socket.gethostname()
        """This replica's name among those sharing the database (``TOSHI_REPLICAS__ID``)."""
        hosts, database, options = parse_url(url)
        self.hosts = hosts
        self.base_database = check_base(database or DEFAULT_DATABASE)
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
            store = MongoEntityStore(self._client[self.database_name(name)], self.replica)
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

    def leases(self, replica: str) -> MongoLeases:
        """The installation's leases, as taken by ``replica`` (``mongo_leases``)."""
        return MongoLeases(self._client[self.base_database], replica)

    def replication(self) -> MongoReplication:
        """Coordination with the other replicas on this database (``mongo_replication``)."""
        return MongoReplication(self, self.leases(self.replica))

    async def watch_records(
        self, kinds: list[str], resume_after: Mapping[str, Any] | None = None
    ) -> AsyncChangeStream[Document]:
        """Open a change stream of the records of ``kinds`` (``mongo_changes``; a replica set
        is needed): what is committed from now on (or after ``resume_after``) is in it."""
        return await self._client.watch(
            record_pipeline(kinds), full_document="updateLookup", resume_after=resume_after
        )

    async def record_events(
        self, stream: AsyncChangeStream[Document]
    ) -> AsyncIterator[tuple[RecordChange | Reload, Mapping[str, Any] | None]]:
        """The changes ``stream`` reports, each with the resume token to continue after it."""
        databases = await self._tenant_databases()
        async for event in stream:
            if str(event.get("ns", {}).get("db")) not in databases:
                # A tenant created meanwhile? Old names are kept: a dropped tenant's
                # dropDatabase event still has to be told to the caches.
                databases = {**databases, **await self._tenant_databases()}
            change = record_change(event, databases)
            if change is not None:
                yield change, stream.resume_token

    async def record_changes(
        self, kinds: list[str], resume_after: Mapping[str, Any] | None = None
    ) -> AsyncIterator[tuple[RecordChange | Reload, Mapping[str, Any] | None]]:
        """Every change other replicas (and this one) make to records of ``kinds``, with the
        resume token to continue after it (``mongo_changes``; a replica set is needed)."""
        stream = await self.watch_records(kinds, resume_after)
        async with stream:
            async for item in self.record_events(stream):
                yield item

    async def _tenant_databases(self) -> dict[str, str]:
        tenants = [DEFAULT_TENANT, *await self.tenants()]
        return {self.database_name(tenant): tenant for tenant in tenants}

    def describe(self) -> dict[str, Any]:
        return {"backend": "mongodb", "hosts": list(self.hosts), "database": self.base_database}

    def database_name(self, tenant: str) -> str:
        """The database of ``tenant`` (``mongo_names``)."""
        return tenant_database_name(self.base_database, tenant)


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


def _position(record: Mapping[str, Any]) -> Position:
    """Where ``record`` is in ``ORDER``: its ``seq``, and its id for ties between replicas."""
    return int(record["seq"]), str(record["_id"])


def _load(record: Mapping[str, Any]) -> EntityDoc:
    doc: EntityDoc = orjson.loads(record["doc"])
    return doc


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


def _rows(
    entity_id: str, history: History | None, before: EntityDoc | None, after: EntityDoc | None
) -> tuple[str, list[HistoryRow]] | None:
    """What a write appends to history, for ``MongoHistory.append`` (``None``: nothing)."""
    if history is None:
        return None
    rows = history(before, after)
    return (entity_id, rows) if rows else None
