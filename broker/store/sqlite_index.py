"""Secondary indexes of the SQLite store, kept in step with every write.

Tables (all per tenant file):

* ``entity_types(type, pk)`` — entities by type; drives type queries in insertion order.
* ``entity_attrs(attr, pk, num)`` — entities by attribute name; narrows ``attrs`` and ``q``.
  ``num`` is the attribute's value when it has a single instance whose value is a plain number
  (else NULL), so numeric ``q`` comparisons are pre-filtered without reading documents.
* ``geo_boxes`` (an R*Tree) + ``geo_keys(gid, pk, attr)`` — bounding boxes of GeoProperty values,
  so a geo-query reads the entities near its search box instead of every entity.
* ``catalogue(type, attr, kind, n)`` — counts behind discovery (``broker.ngsild.catalogue``).
* ``entity_expiry(pk, at)`` — when the first part of a transient entity expires
  (``broker.ngsild.expiry.when``, POSIX seconds), for the expiry sweep; durable entities
  have no row.

``reindex`` diffs the document before and after a write and touches only what changed, so a
partial update of a Property costs two set comparisons and no index writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

from broker.ngsild.catalogue import catalogue_delta
from broker.ngsild.entity import EntityDoc
from broker.ngsild.expiry import when
from broker.ngsild.names import GEO_PROPERTY
from broker.ngsild.query.geo import BBox, geometry_box

SCHEMA_VERSION = 4

INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS entity_types (
    type TEXT NOT NULL,
    pk   INTEGER NOT NULL,
    PRIMARY KEY (type, pk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entity_types_by_pk ON entity_types (pk);
CREATE TABLE IF NOT EXISTS entity_attrs (
    attr TEXT NOT NULL,
    pk   INTEGER NOT NULL,
    num  REAL,
    PRIMARY KEY (attr, pk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entity_attrs_by_pk ON entity_attrs (pk);
CREATE VIRTUAL TABLE IF NOT EXISTS geo_boxes USING rtree (gid, min_lon, max_lon, min_lat, max_lat);
CREATE TABLE IF NOT EXISTS geo_keys (
    gid  INTEGER PRIMARY KEY,
    pk   INTEGER NOT NULL,
    attr TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS geo_keys_by_pk ON geo_keys (pk);
CREATE TABLE IF NOT EXISTS catalogue (
    type TEXT NOT NULL,
    attr TEXT NOT NULL,
    kind TEXT NOT NULL,
    n    INTEGER NOT NULL,
    PRIMARY KEY (type, attr, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entity_expiry (
    pk INTEGER PRIMARY KEY,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entity_expiry_by_at ON entity_expiry (at);
"""


def reindex(
    db: sqlite3.Connection, pk: int, before: EntityDoc | None, after: EntityDoc | None
) -> None:
    """Bring every index of entity ``pk`` from ``before`` to ``after`` (``None`` = absent)."""
    _reexpire(db, pk, before, after)
    if before is not None and after is not None and _values_only(before, after):
        _renumber(db, pk, before, after)
        return
    old_types = [] if before is None else before["type"]
    new_types = [] if after is None else after["type"]
    if old_types != new_types:
        _replace_rows(db, "entity_types", "type", pk, new_types)
    old_attrs, new_attrs = _attribute_numbers(before), _attribute_numbers(after)
    if old_attrs.keys() != new_attrs.keys():
        db.execute("DELETE FROM entity_attrs WHERE pk = ?", (pk,))
        db.executemany(
            "INSERT INTO entity_attrs (attr, pk, num) VALUES (?, ?, ?)",
            [(attr, pk, number) for attr, number in new_attrs.items()],
        )
    elif old_attrs != new_attrs:
        db.executemany(
            "UPDATE entity_attrs SET num = ? WHERE attr = ? AND pk = ?",
            [(num, attr, pk) for attr, num in new_attrs.items() if old_attrs[attr] != num],
        )
    old_geo, new_geo = _geo_values(before), _geo_values(after)
    if old_geo != new_geo:
        _replace_boxes(db, pk, new_geo)
    for (type_, attr, kind), change in catalogue_delta(before, after).items():
        db.execute(
            "INSERT INTO catalogue (type, attr, kind, n) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (type, attr, kind) DO UPDATE SET n = n + excluded.n",
            (type_, attr, kind, change),
        )
        if change < 0:
            db.execute(
                "DELETE FROM catalogue WHERE type = ? AND attr = ? AND kind = ? AND n <= 0",
                (type_, attr, kind),
            )


def _values_only(before: EntityDoc, after: EntityDoc) -> bool:
    """Whether only attribute values changed: same types, names and attribute types, and no
    GeoProperty touched. Patch rules share unchanged instance lists, so this is cheap for the
    common partial update."""
    if before["type"] != after["type"] or before["attrs"].keys() != after["attrs"].keys():
        return False
    old = before["attrs"]
    for attr, instances in after["attrs"].items():
        previous = old[attr]
        if previous is instances:
            continue
        if [i["type"] for i in previous] != [i["type"] for i in instances]:
            return False
        if any(i["type"] == GEO_PROPERTY for i in instances):
            return False
    return True


def _renumber(db: sqlite3.Connection, pk: int, before: EntityDoc, after: EntityDoc) -> None:
    old = before["attrs"]
    changes = [
        (number, attr, pk)
        for attr, instances in after["attrs"].items()
        if old[attr] is not instances
        and (number := _single_number(instances)) != _single_number(old[attr])
    ]
    if changes:
        db.executemany("UPDATE entity_attrs SET num = ? WHERE attr = ? AND pk = ?", changes)


def rebuild(db: sqlite3.Connection, docs: Iterator[tuple[int, EntityDoc]]) -> None:
    """Recreate every index from the documents (opening a file written by an older version)."""
    tables = ("entity_types", "entity_attrs", "geo_boxes", "geo_keys", "catalogue", "entity_expiry")
    for table in tables:
        db.execute(f"DROP TABLE IF EXISTS {table}")
    # Statement by statement: executescript() would commit the caller's transaction first.
    for statement in INDEX_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    for pk, doc in docs:
        reindex(db, pk, None, doc)


def _reexpire(
    db: sqlite3.Connection, pk: int, before: EntityDoc | None, after: EntityDoc | None
) -> None:
    old, new = when(before), when(after)
    if old == new:
        return
    if new is None:
        db.execute("DELETE FROM entity_expiry WHERE pk = ?", (pk,))
    else:
        db.execute(
            "INSERT INTO entity_expiry (pk, at) VALUES (?, ?) "
            "ON CONFLICT (pk) DO UPDATE SET at = excluded.at",
            (pk, new),
        )


def _replace_rows(
    db: sqlite3.Connection, table: str, column: str, pk: int, new: Iterable[str]
) -> None:
    db.execute(f"DELETE FROM {table} WHERE pk = ?", (pk,))
    db.executemany(
        f"INSERT INTO {table} ({column}, pk) VALUES (?, ?)",
        [(value, pk) for value in new],
    )


def _attribute_numbers(doc: EntityDoc | None) -> dict[str, float | None]:
    if doc is None:
        return {}
    return {attr: _single_number(instances) for attr, instances in doc["attrs"].items()}


def _single_number(instances: list[dict[str, Any]]) -> float | None:
    if len(instances) != 1:
        return None
    value = instances[0].get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


GeoValues = list[tuple[str, dict[str, Any]]]


def _geo_values(doc: EntityDoc | None) -> GeoValues:
    if doc is None:
        return []
    return [
        (attr, instance["value"])
        for attr, instances in doc["attrs"].items()
        for instance in instances
        if instance["type"] == GEO_PROPERTY
    ]


def _replace_boxes(db: sqlite3.Connection, pk: int, values: GeoValues) -> None:
    db.execute("DELETE FROM geo_boxes WHERE gid IN (SELECT gid FROM geo_keys WHERE pk = ?)", (pk,))
    db.execute("DELETE FROM geo_keys WHERE pk = ?", (pk,))
    for attr, geometry in values:
        box: BBox = geometry_box(geometry)
        gid = db.execute("INSERT INTO geo_keys (pk, attr) VALUES (?, ?)", (pk, attr)).lastrowid
        db.execute(
            "INSERT INTO geo_boxes (gid, min_lon, max_lon, min_lat, max_lat) "
            "VALUES (?, ?, ?, ?, ?)",
            (gid, box[0], box[2], box[1], box[3]),
        )
