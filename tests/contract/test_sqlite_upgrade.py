"""The SQLite store opens files written before its query indexes existed, and indexes them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
from broker.ngsild.query import EntityQuery
from broker.store.sqlite import SqliteStore

D = "https://uri.etsi.org/ngsi-ld/default-context/"


def old_file(path: Path, docs: list[dict]) -> None:
    """A database as the first release wrote it: entities and entity_types only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE entities (pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " doc BLOB NOT NULL);"
        "CREATE TABLE entity_types (type TEXT NOT NULL, pk INTEGER NOT NULL,"
        " PRIMARY KEY (type, pk)) WITHOUT ROWID;"
    )
    for pk, doc in enumerate(docs, 1):
        db.execute("INSERT INTO entities VALUES (?, ?, ?)", (pk, doc["id"], orjson.dumps(doc)))
        db.executemany("INSERT INTO entity_types VALUES (?, ?)", [(t, pk) for t in doc["type"]])
    db.commit()
    db.close()


def gauge(n: int, lon: float) -> dict:
    point = {"type": "Point", "coordinates": [lon, 35.0]}
    return {
        "id": f"urn:ngsi-ld:Gauge:{n}",
        "type": [D + "Gauge"],
        "createdAt": "2026-01-01T00:00:00.000Z",
        "modifiedAt": "2026-01-01T00:00:00.000Z",
        "attrs": {
            D + "level": [{"type": "Property", "value": n}],
            "https://uri.etsi.org/ngsi-ld/location": [{"type": "GeoProperty", "value": point}],
        },
    }


async def test_an_old_file_gets_its_indexes_and_catalogue_on_open(tmp_path: Path) -> None:
    old_file(tmp_path / "default.sqlite3", [gauge(1, 135.0), gauge(2, 136.0)])
    store = SqliteStore(tmp_path)
    await store.start()
    try:
        tenant = await store.tenant("")
        page = await tenant.query(EntityQuery(attrs=(D + "level",), count=True))
        assert page.total == 2
        rows = {(row.type, row.attr): row.entities for row in await tenant.catalogue()}
        assert rows[(D + "Gauge", "")] == 2
        assert rows[("", D + "level")] == 2
        await tenant.create(gauge(3, 137.0))
        assert (await tenant.query(EntityQuery(types=(D + "Gauge",), count=True))).total == 3
    finally:
        await store.close()


async def test_subscriptions_of_an_earlier_version_are_kept(tmp_path: Path) -> None:
    old_file(tmp_path / "default.sqlite3", [gauge(1, 135.0)])
    db = sqlite3.connect(tmp_path / "default.sqlite3")
    db.execute(
        "CREATE TABLE subscriptions (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
        " doc BLOB NOT NULL)"
    )
    for key in ("river", "rain"):
        doc = {"id": f"urn:ngsi-ld:Subscription:{key}", "type": "Subscription"}
        db.execute(
            "INSERT INTO subscriptions (id, doc) VALUES (?, ?)", (doc["id"], orjson.dumps(doc))
        )
    db.commit()
    db.close()
    for _ in range(2):  # the move happens once; opening again keeps them
        store = SqliteStore(tmp_path)
        await store.start()
        try:
            kept = await (await store.tenant("")).records("subscription")
            assert [doc["id"] for doc in kept] == [
                "urn:ngsi-ld:Subscription:river",
                "urn:ngsi-ld:Subscription:rain",
            ]
        finally:
            await store.close()
