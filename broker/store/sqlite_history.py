"""Attribute history in the SQLite store: an append-only ``instances`` table per tenant file.

Layout (why: bytes per instance and index-only reads). ``history_keys`` interns each
(entity, attribute, datasetId) once as a small integer ``key``. ``instances`` holds one row per
attribute instance: ``t`` (observedAt, or when recorded if it has none), ``lag`` (createdAt,
when recorded, is ``t + lag``: usually 0 or a few milliseconds, so a byte or three), ``mod``
(modifiedAt when later edited, else NULL), ``flags`` (1: observedAt given, 2: a deletion),
``val`` (the value member: a number as a number, anything else as JSON text) and ``doc`` (the
instance's other members, e.g. ``unitCode``, interned once per distinct content in
``history_docs``; NULL for a bare measurement). Times are integer microseconds. The index
``(key, t, flags, val)`` serves range scans, ``lastN`` and aggregation without touching the
table, so aggregation runs in SQL over the index alone. ``instanceId`` is
``urn:ngsi-ld:Instance:<rowid>``. An attribute (and datasetId) holds one instance per
``observedAt``: recording the same observation again replaces it.

Rows are appended by the writer in the same transaction as the entity write they come from.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from broker.ngsild.entity import Instance
from broker.ngsild.names import VALUE_MEMBER
from broker.ngsild.temporal.aggregate import PeriodStats, calendar_periods
from broker.ngsild.temporal.history import HistoryRow
from broker.ngsild.temporal.query import HistorySelection
from broker.ngsild.temporal.render import AttributeAggregate, AttributeHistory
from broker.ngsild.temporal.times import from_micros, to_micros
from broker.store import sqlite_hours as hours

HISTORY_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS history_keys (
    key     INTEGER PRIMARY KEY,
    entity  TEXT NOT NULL,
    attr    TEXT NOT NULL,
    dataset TEXT NOT NULL,
    kind    TEXT NOT NULL,
    UNIQUE (entity, attr, dataset)
);
CREATE TABLE IF NOT EXISTS history_docs (
    id  INTEGER PRIMARY KEY,
    doc BLOB NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS instances (
    iid   INTEGER PRIMARY KEY,
    key   INTEGER NOT NULL,
    t     INTEGER NOT NULL,
    lag   INTEGER NOT NULL,
    mod   INTEGER,
    flags INTEGER NOT NULL,
    val,
    doc   INTEGER
);
CREATE INDEX IF NOT EXISTS instances_by_time ON instances (key, t, flags, val);
"""
    + hours.HOURS_SCHEMA
)
INSTANCE_PREFIX = "urn:ngsi-ld:Instance:"
_OBSERVED, _DELETED = 1, 2
_TIME = {
    "observedAt": "t",
    "createdAt": "(t + lag)",
    "modifiedAt": "coalesce(mod, t + lag)",
    "deletedAt": "(t + lag)",
}
_NUM = "CASE WHEN typeof(val) IN ('integer', 'real') THEN val END"
_NEEDS = {
    "distinct": ("distinctCount",),
    "numbers": ("sum", "avg", "min", "max", "stddev", "sumsq"),
    "total": ("sum", "avg", "stddev"),
    "low": ("min",),
    "high": ("max",),
    "squares": ("stddev", "sumsq"),
}
_EXPRESSIONS = {
    "distinct": "count(DISTINCT val)",
    "numbers": f"count({_NUM})",
    "total": f"sum({_NUM})",
    "low": f"min({_NUM})",
    "high": f"max({_NUM})",
    "squares": f"sum({_NUM} * {_NUM})",
}


_COUNTS = frozenset({"totalCount", "distinctCount"})


def _stats_sql(methods: tuple[str, ...]) -> tuple[str, str]:
    """The aggregates ``methods`` need, in ``PeriodStats`` order (NULL for the others, so a
    query for ``max`` does not pay for ``count(DISTINCT …)``), and a condition to add.

    Without a counting method only numbers matter: they are selected once in the WHERE clause
    and aggregated plainly, which is about a third cheaper than a CASE per aggregate.
    """
    numeric_only = not _COUNTS & set(methods)
    parts = ["count(*)"]
    for aggregate_name, needed_by in _NEEDS.items():
        expression = _EXPRESSIONS[aggregate_name]
        if numeric_only:
            expression = expression.replace(_NUM, "val")
        parts.append(expression if set(needed_by) & set(methods) else "NULL")
    condition = " AND typeof(val) IN ('integer', 'real')" if numeric_only else ""
    return ", ".join(parts), condition


@dataclass
class SeriesCache:
    """What the writer learnt about this file's history, so a partial update's instance costs
    one INSERT (its hourly summary follows by trigger) rather than five statements.

    ``keys``: (entity, attr, datasetId) → (series key, kind); ``docs``: interned members → id;
    ``latest``: series key → an instant no instance of the series is later than, so appending
    a later observation needs no look-up for one it would replace. Entries may describe rows
    written in the current transaction, so the writer clears the cache whenever it rolls back
    (``SqliteWorker(on_rollback=…)``); history edits that move instances clear it too.
    """

    keys: dict[tuple[str, str, str], tuple[int, str]] = field(default_factory=dict)
    docs: dict[bytes, int] = field(default_factory=dict)
    latest: dict[int, int] = field(default_factory=dict)

    def clear(self) -> None:
        """Forget everything (after a rollback, or an edit of stored history)."""
        self.keys.clear()
        self.docs.clear()
        self.latest.clear()


def append(
    db: sqlite3.Connection, entity_id: str, rows: Iterable[HistoryRow], cache: SeriesCache
) -> None:
    """Append ``rows`` to the history of ``entity_id`` (inside the caller's transaction)."""
    values: dict[tuple[int, int], tuple[Any, ...]] = {}
    unobserved = []
    for row in rows:
        key = _series(db, cache, entity_id, row)
        value = _encode(key, row)
        if value[3] == _OBSERVED:
            # An attribute has one instance per observedAt: a repeated observation replaces
            # the one recorded before (a device resending, a temporal upsert correcting a value).
            values[(key, value[1])] = value
        else:
            unobserved.append(value)
    replaced = _replace_observed(db, cache, list(values))
    encoded = [*unobserved, *values.values()]
    db.executemany(
        "INSERT INTO instances (key, t, lag, mod, flags, val, doc) VALUES (?, ?, ?, NULL, ?, ?, ?)",
        [
            (key, t, rec - t, flags, value, None if doc is None else _doc_id(db, doc, cache.docs))
            for key, t, rec, flags, value, doc in encoded
        ],
    )
    latest = cache.latest
    for key, t, *_ in encoded:
        if key in latest and latest[key] < t:
            latest[key] = t
    if replaced:
        hours.recompute(db, [(v[0], v[1]) for v in encoded])


def _series(db: sqlite3.Connection, cache: SeriesCache, entity_id: str, row: HistoryRow) -> int:
    kind = row.instance.get("type", "Property")
    name = (entity_id, row.attr, row.dataset_id or "")
    known = cache.keys.get(name)
    if known is None or known[1] != kind:
        known = cache.keys[name] = (_key(db, *name, kind), kind)
    return known[0]


def _replace_observed(db: sqlite3.Connection, cache: SeriesCache, at: list[tuple[int, int]]) -> int:
    """Delete the instances observed at the same ``(key, t)`` as new ones; how many."""
    latest = cache.latest
    for key, _ in at:
        if key not in latest:
            found = db.execute("SELECT max(t) FROM instances WHERE key = ?", (key,)).fetchone()[0]
            latest[key] = -(2**63) if found is None else found
    maybe = [(key, t) for key, t in at if t <= latest[key]]
    if not maybe:
        return 0
    return db.executemany(
        f"DELETE FROM instances WHERE key = ? AND t = ? AND flags = {_OBSERVED}", maybe
    ).rowcount


def _doc_id(db: sqlite3.Connection, doc: bytes, known: dict[bytes, int]) -> int:
    """The id of an instance's other members, stored once per distinct content (most series
    repeat the same ``unitCode`` in every instance)."""
    found = known.get(doc)
    if found is None:
        row = db.execute("SELECT id FROM history_docs WHERE doc = ?", (doc,)).fetchone()
        if row is None:
            cursor = db.execute("INSERT INTO history_docs (doc) VALUES (?)", (doc,))
            assert cursor.lastrowid is not None
            row = (cursor.lastrowid,)
        found = known[doc] = row[0]
    return found


def _key(db: sqlite3.Connection, entity_id: str, attr: str, dataset: str, kind: str) -> int:
    found = db.execute(
        "SELECT key, kind FROM history_keys WHERE entity = ? AND attr = ? AND dataset = ?",
        (entity_id, attr, dataset),
    ).fetchone()
    if found is not None:
        if found[1] != kind:
            db.execute("UPDATE history_keys SET kind = ? WHERE key = ?", (kind, found[0]))
        return int(found[0])
    cursor = db.execute(
        "INSERT INTO history_keys (entity, attr, dataset, kind) VALUES (?, ?, ?, ?)",
        (entity_id, attr, dataset, kind),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _encode(key: int, row: HistoryRow) -> tuple[Any, ...]:
    rest = dict(row.instance)
    kind = rest.get("type", "Property")
    if kind == "Property":
        rest.pop("type", None)  # the usual kind is left implicit; _decode puts it back
    member = VALUE_MEMBER.get(kind, "value")
    value = rest.pop(member, None)
    observed = rest.pop("observedAt", None)
    rest.pop("datasetId", None)
    if type(value) not in (int, float):  # bool, a subclass of int, is stored as JSON
        value = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    recorded = to_micros(row.recorded)
    flags = (_OBSERVED if observed is not None else 0) | (_DELETED if row.deleted else 0)
    t = to_micros(observed) if observed is not None else recorded
    return key, t, recorded, flags, value, orjson.dumps(rest) if rest else None


def _decode(row: tuple[Any, ...], dataset: str) -> Instance:
    iid, t, rec, mod, flags, val, doc = row[:7]
    rest: Instance = {} if doc is None else orjson.loads(doc)
    kind = rest.pop("type", "Property")
    instance: Instance = {"type": kind, VALUE_MEMBER.get(kind, "value"): _value(val)}
    instance.update(rest)
    if dataset:
        instance["datasetId"] = dataset
    if flags & _OBSERVED:
        instance["observedAt"] = from_micros(t)
    instance["createdAt"] = from_micros(rec)
    instance["modifiedAt"] = from_micros(rec if mod is None else mod)
    if flags & _DELETED:
        instance["deletedAt"] = from_micros(rec)
    instance["instanceId"] = f"{INSTANCE_PREFIX}{iid}"
    return instance


def _value(val: Any) -> Any:
    return orjson.loads(val) if isinstance(val, str) else val


def series_keys(
    db: sqlite3.Connection, entity_ids: list[str], selection: HistorySelection
) -> list[tuple[int, str, str, str, str]]:
    """(key, entity, attr, dataset, kind) of the selected attributes of ``entity_ids``."""
    found: list[tuple[int, str, str, str, str]] = []
    for start in range(0, len(entity_ids), 500):
        chunk = entity_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        found.extend(
            db.execute(
                f"SELECT key, entity, attr, dataset, kind FROM history_keys "
                f"WHERE entity IN ({marks}) ORDER BY key",
                chunk,
            )
        )
    return [
        row
        for row in found
        if (selection.attrs is None or row[2] in selection.attrs)
        and (selection.dataset_ids is None or (row[3] or "@none") in selection.dataset_ids)
    ]


def _where(selection: HistorySelection) -> tuple[str, list[Any], str]:
    query = selection.query
    time = _TIME[query.timeproperty]
    clauses = ["key = ?"]
    params: list[Any] = []
    if query.timeproperty == "deletedAt":
        clauses.append(f"flags & {_DELETED}")
    else:
        clauses.append(f"NOT flags & {_DELETED}")
    if query.start is not None:
        clauses.append(f"{time} >= ?")
        params.append(query.start)
    if query.end is not None:
        clauses.append(f"{time} < ?")
        params.append(query.end)
    return " AND ".join(clauses), params, time


def read(
    db: sqlite3.Connection, entity_ids: list[str], selection: HistorySelection
) -> dict[str, list[AttributeHistory]]:
    """The selected instances of each entity, per attribute and datasetId, oldest first."""
    where, params, time = _where(selection)
    last_n = selection.query.last_n
    limit = min(n for n in (last_n, selection.limit, 2**62) if n is not None)
    order = f"{time} DESC, iid DESC" if last_n else f"{time}, iid"
    order += f" LIMIT {int(limit)}"
    sql = (
        "SELECT iid, t, t + lag, mod, flags, val, "
        "(SELECT d.doc FROM history_docs d WHERE d.id = instances.doc) "
        f"FROM instances WHERE {where} ORDER BY {order}"
    )
    out: dict[str, list[AttributeHistory]] = {}
    for key, entity, attr, dataset, _ in series_keys(db, entity_ids, selection):
        rows = db.execute(sql, [key, *params]).fetchall()
        if last_n:
            rows.reverse()
        if rows:
            instances = [_decode(tuple(row), dataset) for row in rows]
            out.setdefault(entity, []).append(AttributeHistory(attr, dataset or None, instances))
    return out


def aggregate(
    db: sqlite3.Connection, entity_ids: list[str], selection: HistorySelection
) -> dict[str, list[AttributeAggregate]]:
    """Each selected attribute's periods, reduced in SQL (``broker.ngsild.temporal.aggregate``)."""
    aggregation = selection.query.aggregation
    assert aggregation is not None  # only called for aggregatedValues
    where, params, time = _where(selection)
    out: dict[str, list[AttributeAggregate]] = {}
    for key, entity, attr, dataset, kind in series_keys(db, entity_ids, selection):
        first = _edge(db, [key, *params], where, time, "")
        if first is None:
            continue  # no instance in range
        last = first
        if _needs_last(selection):
            last = _edge(db, [key, *params], where, time, " DESC") or first
        periods = _periods(db, selection, [key, *params], where, time, (first, last))
        out.setdefault(entity, []).append(AttributeAggregate(attr, dataset or None, kind, periods))
    return out


def _edge(
    db: sqlite3.Connection, params: list[Any], where: str, time: str, order: str
) -> int | None:
    """The first (or last) instant in range: an index probe, where ``min()`` with ``max()``
    would scan the whole range."""
    row = db.execute(
        f"SELECT {time} FROM instances WHERE {where} ORDER BY {time}{order} LIMIT 1", params
    ).fetchone()
    return None if row is None else int(row[0])


def _needs_last(selection: HistorySelection) -> bool:
    aggregation = selection.query.aggregation
    assert aggregation is not None
    period = aggregation.period
    return period.months > 0 or (period.zero and selection.query.end is None)


def _periods(
    db: sqlite3.Connection,
    selection: HistorySelection,
    params: list[Any],
    where: str,
    time: str,
    bounds: tuple[int, int],
) -> list[PeriodStats]:
    """The non-empty periods of one series (``params`` start with its key)."""
    query, aggregation = selection.query, selection.query.aggregation
    assert aggregation is not None
    stats_sql, numeric = _stats_sql(aggregation.methods)
    where += numeric
    first, last = bounds
    origin = query.start if query.start is not None else first
    period = aggregation.period
    if period.zero:
        end = query.end if query.end is not None else last
        sql = f"SELECT {stats_sql} FROM instances WHERE {where}"
        return [_stats(origin, end, db.execute(sql, params).fetchone())]
    if period.months:
        sql = f"SELECT {stats_sql} FROM instances WHERE {where} AND {time} >= ? AND {time} < ?"
        found = []
        for start, end in calendar_periods(origin, period, last):
            row = db.execute(sql, [*params, start, end]).fetchone()
            if row[0]:
                found.append(_stats(start, end, row))
        return found
    step = period.micros
    if hours.usable(selection, origin):
        return hours.periods(db, params[0], origin, step, selection)
    rows = db.execute(
        f"SELECT ({time} - ?) / ? AS b, {stats_sql} FROM instances "
        f"WHERE {where} GROUP BY b ORDER BY b",
        [origin, step, *params],
    ).fetchall()
    return [_stats(origin + row[0] * step, origin + (row[0] + 1) * step, row[1:]) for row in rows]


def _stats(start: int, end: int, row: tuple[Any, ...]) -> PeriodStats:
    count, distinct, numbers, total, low, high, squares = row
    return PeriodStats(start, end, count, distinct or 0, numbers or 0, total, low, high, squares)


def delete_history(
    db: sqlite3.Connection,
    cache: SeriesCache,
    entity_id: str,
    attr: str | None = None,
    dataset: str | None = None,
) -> int:
    """Remove an entity's history, or one attribute's (one datasetId's when given)."""
    cache.clear()  # the keys removed may be handed out again
    sql = "SELECT key FROM history_keys WHERE entity = ?"
    params: list[Any] = [entity_id]
    if attr is not None:
        sql += " AND attr = ?"
        params.append(attr)
    if dataset is not None:
        sql += " AND dataset = ?"
        params.append(dataset)
    keys = [row[0] for row in db.execute(sql, params)]
    for key in keys:
        db.execute("DELETE FROM instances WHERE key = ?", (key,))
        db.execute("DELETE FROM history_keys WHERE key = ?", (key,))
        hours.forget(db, key)
    return len(keys)


def instance_row(
    db: sqlite3.Connection, entity_id: str, attr: str, instance_id: str
) -> tuple[int, Instance] | None:
    """The stored instance ``instance_id`` of ``attr`` of ``entity_id``, with its row id."""
    if not instance_id.startswith(INSTANCE_PREFIX):
        return None
    try:
        iid = int(instance_id[len(INSTANCE_PREFIX) :])
    except ValueError:
        return None
    row = db.execute(
        "SELECT i.iid, i.t, i.t + i.lag, i.mod, i.flags, i.val, "
        "(SELECT d.doc FROM history_docs d WHERE d.id = i.doc), k.dataset FROM instances i "
        "JOIN history_keys k ON k.key = i.key WHERE i.iid = ? AND k.entity = ? AND k.attr = ?",
        (iid, entity_id, attr),
    ).fetchone()
    return None if row is None else (iid, _decode(row, row[7]))


def replace_instance(
    db: sqlite3.Connection, cache: SeriesCache, iid: int, instance: Instance, modified: str
) -> None:
    """Overwrite instance ``iid`` with ``instance``, keeping its createdAt (§5.6.15)."""
    cache.clear()  # the instance may move past its series' latest instant
    key, old_t, rec = db.execute(
        "SELECT key, t, t + lag FROM instances WHERE iid = ?", (iid,)
    ).fetchone()
    row = HistoryRow("", instance.get("datasetId"), instance, from_micros(rec))
    _, t, _, flags, value, doc = _encode(key, row)
    doc_id = None if doc is None else _doc_id(db, doc, {})
    db.execute(
        "UPDATE instances SET t = ?, lag = ?, mod = ?, flags = ?, val = ?, doc = ? WHERE iid = ?",
        (t, rec - t, to_micros(modified), flags, value, doc_id, iid),
    )
    hours.recompute(db, [(key, old_t), (key, t)])


def delete_instance(db: sqlite3.Connection, iid: int) -> None:
    """Remove one instance (§5.6.16)."""
    found = db.execute("SELECT key, t FROM instances WHERE iid = ?", (iid,)).fetchone()
    db.execute("DELETE FROM instances WHERE iid = ?", (iid,))
    if found is not None:
        hours.recompute(db, [found])


def trim(db: sqlite3.Connection, before: int, limit: int) -> int:
    """Delete up to ``limit`` instances recorded before ``before`` (retention); how many."""
    old = db.execute(
        "SELECT iid, key, t FROM instances WHERE t + lag < ? LIMIT ?", (before, limit)
    ).fetchall()
    db.executemany("DELETE FROM instances WHERE iid = ?", [(row[0],) for row in old])
    hours.recompute(db, [(key, t) for _, key, t in old])
    return len(old)
