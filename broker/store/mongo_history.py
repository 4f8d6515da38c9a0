"""Attribute history in the MongoDB store: one ``instances`` collection per tenant database.

Layout. One document per attribute instance: ``{_id: ObjectId, e: <entity id>, a: <attribute
IRI>, d: <datasetId or "">, k: <attribute type>, t: <observedAt, or when recorded>, lag:
<createdAt - t>, mod: <modifiedAt when edited>, f: <flags: 1 observedAt given, 2 deletion>,
v: <the value: a number as a number, anything else as JSON text>, doc: <the other members,
orjson bytes, or absent>}``, times in integer microseconds as in the SQLite store
(``sqlite_history``), indexed by ``(e, a, d, t)``. ``instanceId`` is
``urn:ngsi-ld:Instance:<ObjectId hex>``.

Why a plain collection and not a time-series one: MongoDB refuses writes to time-series
collections inside multi-document transactions, and history must commit with the entity write
it comes from (``broker.store.base``). The compound index gives the same range scans; the
aggregation runs in the server's pipeline (``$match`` on the index, ``$group`` per period), so
no instance travels to Python.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from broker.ngsild.entity import Instance
from broker.ngsild.names import VALUE_MEMBER
from broker.ngsild.temporal.aggregate import PeriodStats, calendar_periods
from broker.ngsild.temporal.history import HistoryRow
from broker.ngsild.temporal.query import HistorySelection
from broker.ngsild.temporal.render import AttributeAggregate, AttributeHistory
from broker.ngsild.temporal.times import from_micros, to_micros

Document = dict[str, Any]
INSTANCE_PREFIX = "urn:ngsi-ld:Instance:"
_OBSERVED, _DELETED = 1, 2
_TIME = {
    "observedAt": "$t",
    "createdAt": {"$add": ["$t", "$lag"]},
    "modifiedAt": {"$ifNull": ["$mod", {"$add": ["$t", "$lag"]}]},
    "deletedAt": {"$add": ["$t", "$lag"]},
}


def encode(entity_id: str, row: HistoryRow) -> Document:
    """One history row as an ``instances`` document."""
    instance = row.instance
    kind = instance.get("type", "Property")
    member = VALUE_MEMBER.get(kind, "value")
    rest = {
        k: v
        for k, v in instance.items()
        if k not in (member, "observedAt", "datasetId") and not (k == "type" and v == "Property")
    }
    value = instance.get(member)
    if not (isinstance(value, int | float) and not isinstance(value, bool)):
        value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    recorded = to_micros(row.recorded)
    observed = instance.get("observedAt")
    t = to_micros(observed) if observed is not None else recorded
    flags = (_OBSERVED if observed is not None else 0) | (_DELETED if row.deleted else 0)
    document: Document = {
        "e": entity_id,
        "a": row.attr,
        "d": row.dataset_id or "",
        "k": kind,
        "t": t,
        "lag": recorded - t,
        "f": flags,
        "v": value,
    }
    if rest:
        document["doc"] = orjson.dumps(rest)
    return document


def decode(document: Document) -> Instance:
    """An ``instances`` document as the stored instance the temporal service renders."""
    rest: Instance = {} if document.get("doc") is None else orjson.loads(document["doc"])
    kind = rest.pop("type", "Property")
    value = document["v"]
    instance: Instance = {
        "type": kind,
        VALUE_MEMBER.get(kind, "value"): orjson.loads(value) if isinstance(value, str) else value,
    }
    instance.update(rest)
    if document["d"]:
        instance["datasetId"] = document["d"]
    recorded = document["t"] + document["lag"]
    if document["f"] & _OBSERVED:
        instance["observedAt"] = from_micros(document["t"])
    instance["createdAt"] = from_micros(recorded)
    instance["modifiedAt"] = from_micros(document.get("mod") or recorded)
    if document["f"] & _DELETED:
        instance["deletedAt"] = from_micros(recorded)
    instance["instanceId"] = f"{INSTANCE_PREFIX}{document['_id']}"
    return instance


class MongoHistory:
    """The ``instances`` collection of one tenant database."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._instances = collection

    async def prepare(self) -> None:
        """Create the index (idempotent)."""
        await self._instances.create_indexes(
            [IndexModel([("e", 1), ("a", 1), ("d", 1), ("t", 1)], name="series_time")]
        )

    async def append(
        self, entity_id: str, rows: Iterable[HistoryRow], session: AsyncClientSession | None
    ) -> None:
        """Append rows (inside the caller's transaction when ``session`` is given); one
        instance per observedAt, as in the SQLite store."""
        documents = [encode(entity_id, row) for row in rows]
        latest: dict[tuple[str, str, int], Document] = {}
        others = []
        for document in documents:
            if document["f"] == _OBSERVED:
                latest[(document["a"], document["d"], document["t"])] = document
            else:
                others.append(document)
        for attr, dataset, t in latest:
            await self._instances.delete_many(
                {"e": entity_id, "a": attr, "d": dataset, "t": t, "f": _OBSERVED},
                session=session,
            )
        documents = others + list(latest.values())
        if documents:
            await self._instances.insert_many(documents, ordered=True, session=session)

    async def _series(
        self, entity_ids: list[str], selection: HistorySelection
    ) -> list[tuple[str, str, str, str]]:
        where: Document = {"e": {"$in": entity_ids}}
        if selection.attrs is not None:
            where["a"] = {"$in": sorted(selection.attrs)}
        pipeline = [
            {"$match": where},
            {"$sort": {"t": 1}},
            {"$group": {"_id": {"e": "$e", "a": "$a", "d": "$d"}, "k": {"$last": "$k"}}},
        ]
        found = []
        async for group in await self._instances.aggregate(pipeline):
            key = group["_id"]
            dataset = key["d"] or "@none"
            if selection.dataset_ids is None or dataset in selection.dataset_ids:
                found.append((key["e"], key["a"], key["d"], group["k"]))
        return sorted(found)

    def _match(
        self, entity_id: str, attr: str, dataset: str, selection: HistorySelection
    ) -> Document:
        query = selection.query
        time = _TIME[query.timeproperty]
        conditions: list[Document] = [{"e": entity_id, "a": attr, "d": dataset}]
        deleted = (
            {"$bitsAllSet": _DELETED}
            if query.timeproperty == "deletedAt"
            else {"$bitsAllClear": _DELETED}
        )
        conditions.append({"f": deleted})
        for bound, operator in ((query.start, "$gte"), (query.end, "$lt")):
            if bound is None:
                continue
            if query.timeproperty == "observedAt":  # on the index
                conditions.append({"t": {operator: bound}})
            else:
                conditions.append({"$expr": {operator: [time, bound]}})
        return {"$and": conditions}

    async def read(
        self, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeHistory]]:
        """The selected instances, per entity, attribute and datasetId, oldest first."""
        last_n = selection.query.last_n
        limit = min(n for n in (last_n, selection.limit, 2**62) if n is not None)
        order = DESCENDING if last_n else ASCENDING
        out: dict[str, list[AttributeHistory]] = {}
        for entity_id, attr, dataset, _ in await self._series(entity_ids, selection):
            cursor = self._instances.find(self._match(entity_id, attr, dataset, selection))
            documents = [d async for d in cursor.sort([("t", order), ("_id", order)]).limit(limit)]
            if last_n:
                documents.reverse()
            if documents:
                series = AttributeHistory(attr, dataset or None, [decode(d) for d in documents])
                out.setdefault(entity_id, []).append(series)
        return out

    async def aggregate(
        self, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeAggregate]]:
        """Each selected series' non-empty periods, reduced by the server's pipeline."""
        out: dict[str, list[AttributeAggregate]] = {}
        for entity_id, attr, dataset, kind in await self._series(entity_ids, selection):
            match = self._match(entity_id, attr, dataset, selection)
            periods = await self._periods(match, selection)
            if periods is not None:
                out.setdefault(entity_id, []).append(
                    AttributeAggregate(attr, dataset or None, kind, periods)
                )
        return out

    async def _periods(
        self, match: Document, selection: HistorySelection
    ) -> list[PeriodStats] | None:
        query, aggregation = selection.query, selection.query.aggregation
        assert aggregation is not None
        time = _TIME[query.timeproperty]
        bounds = await self._group(match, None, {"first": {"$min": time}, "last": {"$max": time}})
        if not bounds:
            return None
        first, last = bounds[0]["first"], bounds[0]["last"]
        origin = query.start if query.start is not None else first
        period = aggregation.period
        if period.zero:
            end = query.end if query.end is not None else last
            found = await self._group(match, None, _STATS)
            return [_stats(origin, end, row) for row in found]
        if period.months:
            stats: list[PeriodStats] = []
            for start, end in calendar_periods(origin, period, last):
                window = {
                    "$and": [
                        match,
                        {"$expr": {"$gte": [time, start]}},
                        {"$expr": {"$lt": [time, end]}},
                    ]
                }
                stats.extend(
                    _stats(start, end, row) for row in await self._group(window, None, _STATS)
                )
            return stats
        step = period.micros
        bucket = {"$floor": {"$divide": [{"$subtract": [time, origin]}, step]}}
        rows = await self._group(match, bucket, _STATS)
        return [
            _stats(origin + int(row["_id"]) * step, origin + (int(row["_id"]) + 1) * step, row)
            for row in sorted(rows, key=lambda r: r["_id"])
        ]

    async def _group(self, match: Document, key: Any, fields: Document) -> list[Document]:
        pipeline = [{"$match": match}, {"$group": {"_id": key, **fields}}]
        return [row async for row in await self._instances.aggregate(pipeline)]

    async def delete_history(self, entity_id: str, attr: str | None, dataset: str | None) -> int:
        """Remove an entity's history, or one attribute's; how many series went."""
        where: Document = {"e": entity_id}
        if attr is not None:
            where["a"] = attr
        if dataset is not None:
            where["d"] = dataset
        series = await self._instances.distinct("d" if attr is not None else "a", where)
        await self._instances.delete_many(where)
        return len(series)

    async def instance(self, entity_id: str, attr: str, instance_id: str) -> Document | None:
        """The stored document of one instance, or ``None``."""
        if not instance_id.startswith(INSTANCE_PREFIX):
            return None
        try:
            object_id = ObjectId(instance_id[len(INSTANCE_PREFIX) :])
        except InvalidId:
            return None
        return await self._instances.find_one({"_id": object_id, "e": entity_id, "a": attr})

    async def replace(self, stored: Document, instance: Instance, modified: str) -> None:
        """Overwrite one instance, keeping its id and createdAt."""
        recorded = from_micros(stored["t"] + stored["lag"])
        row = HistoryRow(stored["a"], stored["d"] or None, instance, recorded)
        fresh = encode(stored["e"], row)
        fresh["mod"] = to_micros(modified)
        await self._instances.replace_one({"_id": stored["_id"]}, {"_id": stored["_id"], **fresh})

    async def delete(self, stored: Document) -> None:
        """Remove one instance."""
        await self._instances.delete_one({"_id": stored["_id"]})

    async def trim(self, recorded_before: int, limit: int) -> int:
        """Delete up to ``limit`` instances recorded before an instant."""
        old = {"$expr": {"$lt": [{"$add": ["$t", "$lag"]}, recorded_before]}}
        ids = [d["_id"] async for d in self._instances.find(old, {"_id": 1}).limit(limit)]
        if not ids:
            return 0
        result = await self._instances.delete_many({"_id": {"$in": ids}})
        return result.deleted_count


_NUMBER = {"$isNumber": "$v"}
_NUM = {"$cond": [_NUMBER, "$v", None]}
_STATS: Document = {
    "count": {"$sum": 1},
    "distinct": {"$addToSet": "$v"},
    "numbers": {"$sum": {"$cond": [_NUMBER, 1, 0]}},
    "total": {"$sum": _NUM},
    "low": {"$min": _NUM},
    "high": {"$max": _NUM},
    "squares": {"$sum": {"$cond": [_NUMBER, {"$multiply": ["$v", "$v"]}, 0]}},
}


def _stats(start: int, end: int, row: Document) -> PeriodStats:
    numbers = int(row["numbers"])
    return PeriodStats(
        start=start,
        end=end,
        count=int(row["count"]),
        distinct=len(row["distinct"]),
        numbers=numbers,
        total=float(row["total"]) if numbers else None,
        low=row["low"] if numbers else None,
        high=row["high"] if numbers else None,
        squares=float(row["squares"]) if numbers else None,
    )
