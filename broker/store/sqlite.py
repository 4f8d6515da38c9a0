"""The embedded store: one SQLite database file per tenant, in WAL mode.

Layout under the data directory: ``default.sqlite3`` for the default tenant and
``tenants/<name>.sqlite3`` for the others (names are validated by ``broker.ngsild.tenants``, so
they are safe file names). Each database has one writer thread, which batches concurrent writes
into one transaction (see ``sqlite_worker``), and one reader thread; WAL lets them run at once.

Durability: with ``synchronous=NORMAL`` (the default) a commit is in the WAL before the client is
answered, which survives the broker process being killed; ``synchronous=FULL`` also survives the
machine losing power, at the cost of an fsync per batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import orjson

from broker.doc_cache import SHARED as DOCS
from broker.ngsild.catalogue import CatalogueRow
from broker.ngsild.entity import EntityDoc, Instance
from broker.ngsild.errors import AlreadyExists, NonexistentTenant, ResourceNotFound
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.model import Position
from broker.ngsild.query.page import PageCollector
from broker.ngsild.temporal.history import History
from broker.ngsild.temporal.query import HistorySelection
from broker.ngsild.temporal.render import AttributeAggregate, AttributeHistory
from broker.ngsild.tenants import DEFAULT_TENANT
from broker.store import sqlite_history, sqlite_hours
from broker.store.base import Committed, Journal, Mutation, QueryPage, TenantStore
from broker.store.history import HistoryStore
from broker.store.local_replication import LocalReplication
from broker.store.sqlite_history import SeriesCache
from broker.store.sqlite_index import INDEX_SCHEMA, SCHEMA_VERSION, rebuild, reindex
from broker.store.sqlite_queries import Candidates, candidates
from broker.store.sqlite_worker import SqliteWorker
from broker.store.tenant_cache import TenantCache

T = TypeVar("T")
_READ_MMAP_BYTES = 1 << 30  # per reader connection; SQLite maps no more than the file holds
Synchronous = Literal["off", "normal", "full", "extra"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entities (
    pk  INTEGER PRIMARY KEY,
    id  TEXT NOT NULL UNIQUE,
    doc BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    seq  INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    key  TEXT NOT NULL,
    doc  BLOB NOT NULL,
    UNIQUE (kind, key)
);
"""


class SqliteEntityStore(TenantStore, HistoryStore):
    """The entities of one tenant in one SQLite file."""

    def __init__(self, path: Path, synchronous: Synchronous) -> None:
        self.path = path
        self._synchronous = synchronous
        self._series = sqlite_history.SeriesCache()
        self._writer = SqliteWorker(
            self._connect_writer,
            f"sqlite-w:{path.name}",
            transactional=True,
            on_rollback=self._series.clear,
        )
        self._reader = SqliteWorker(
            self._connect_reader, f"sqlite-r:{path.name}", transactional=False
        )
        self._inline: sqlite3.Connection | None = None  # the event loop's own reader

    def open(self) -> None:
        """Create the file and schema if needed and start both threads (blocking)."""
        self._writer.start()
        self._reader.start()
        self._inline = self._connect_reader(check_same_thread=False)

    def close(self) -> None:
        """Stop both threads after their queued work (blocking)."""
        self._reader.stop()
        self._writer.stop()
        if self._inline is not None:
            self._inline.close()

    async def create(
        self, doc: EntityDoc, *, journal: Journal | None = None, history: History | None = None
    ) -> None:
        await self._writer.submit(lambda db: _insert(db, doc, journal, history, self._series))

    async def get(self, entity_id: str) -> EntityDoc | None:
        if self._inline is not None:
            # One row by its unique key: cheaper here than the hop to the reader thread.
            return _load(self._inline, entity_id)
        return await self._reader.submit(lambda db: _load(db, entity_id))

    async def update(
        self,
        entity_id: str,
        mutate: Mutation[T],
        *,
        journal: Journal | None = None,
        history: History | None = None,
    ) -> Committed[T]:
        return await self._writer.submit(
            lambda db: _update(db, entity_id, mutate, journal, history, self._series)
        )

    async def delete(
        self, entity_id: str, *, journal: Journal | None = None, history: History | None = None
    ) -> EntityDoc:
        return await self._writer.submit(
            lambda db: _delete(db, entity_id, journal, history, self._series)
        )

    async def query(self, query: EntityQuery) -> QueryPage:
        plan = candidates(query)
        if self._inline is not None and plan.bounded(query):
            # Measured: a page of 20 answered here is 1.6x the rate of one sent to the reader
            # thread, whose hand-off (and GIL hand-over) costs more than the query.
            return _query(self._inline, query, plan)
        return await self._reader.submit(lambda db: _query(db, query, plan))

    async def catalogue(self) -> list[CatalogueRow]:
        return await self._reader.submit(_catalogue)

    async def expiring(self, now: float, limit: int) -> list[str]:
        return await self._reader.submit(lambda db: _expiring(db, now, limit))

    async def count(self) -> int:
        return await self._reader.submit(
            lambda db: int(db.execute("SELECT count(*) FROM entities").fetchone()[0])
        )

    async def existing(self, entity_ids: list[str]) -> set[str]:
        return await self._reader.submit(lambda db: _existing(db, entity_ids))

    async def save_record(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        await self.save_records(kind, [(key, doc)])

    async def save_records(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        await self._writer.submit(lambda db: _save_records(db, kind, items))

    async def delete_records(self, kind: str, keys: list[str]) -> int:
        return await self._writer.submit(lambda db: _delete_records(db, kind, keys))

    async def records(self, kind: str) -> list[dict[str, Any]]:
        return await self._reader.submit(lambda db: _records(db, kind))

    async def delete_record(self, kind: str, key: str) -> bool:
        return await self.delete_records(kind, [key]) > 0

    async def history(
        self, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeHistory]]:
        return await self._reader.submit(lambda db: sqlite_history.read(db, entity_ids, selection))

    async def aggregate(
        self, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeAggregate]]:
        return await self._reader.submit(
            lambda db: sqlite_history.aggregate(db, entity_ids, selection)
        )

    async def delete_history(
        self, entity_id: str, attr: str | None = None, dataset_id: str | None = None
    ) -> int:
        return await self._writer.submit(
            lambda db: sqlite_history.delete_history(db, self._series, entity_id, attr, dataset_id)
        )

    async def instance(self, entity_id: str, attr: str, instance_id: str) -> Instance | None:
        found = await self._reader.submit(
            lambda db: sqlite_history.instance_row(db, entity_id, attr, instance_id)
        )
        return None if found is None else found[1]

    async def replace_instance(
        self, entity_id: str, attr: str, instance_id: str, instance: Instance, modified: str
    ) -> bool:
        def job(db: sqlite3.Connection) -> bool:
            found = sqlite_history.instance_row(db, entity_id, attr, instance_id)
            if found is not None:
                sqlite_history.replace_instance(db, self._series, found[0], instance, modified)
            return found is not None

        return await self._writer.submit(job)

    async def delete_instance(self, entity_id: str, attr: str, instance_id: str) -> bool:
        def job(db: sqlite3.Connection) -> bool:
            found = sqlite_history.instance_row(db, entity_id, attr, instance_id)
            if found is not None:
                sqlite_history.delete_instance(db, found[0])
            return found is not None

        return await self._writer.submit(job)

    async def trim_history(self, recorded_before: int, limit: int) -> int:
        return await self._writer.submit(lambda db: sqlite_history.trim(db, recorded_before, limit))

    def _connect_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        db.executescript(_SCHEMA + INDEX_SCHEMA + sqlite_history.HISTORY_SCHEMA)
        _migrate(db)
        sqlite_hours.build_if_missing(db)
        return db

    def _connect_reader(self, *, check_same_thread: bool = True) -> sqlite3.Connection:
        db = sqlite3.connect(
            f"file:{self.path}?mode=ro",
            uri=True,
            isolation_level=None,
            check_same_thread=check_same_thread,
        )
        db.execute("PRAGMA query_only=ON")
        db.execute("PRAGMA busy_timeout=5000")
        # Readers map the file instead of copying each page through SQLite's own 2 MB cache:
        # a walk through 25,000 entities by keyset pages (benchmarks/query.py, attrs-link)
        # spent 0.85 ms of SQL per page of 100 with copies, 0.37 ms mapped. The mapping shares
        # the OS page cache, so it costs address space, not memory.
        db.execute(f"PRAGMA mmap_size={_READ_MMAP_BYTES}")
        _register_functions(db)
        return db


class SqliteStore:
    """All tenants' databases under one directory."""

    def __init__(self, directory: Path, synchronous: Synchronous = "normal") -> None:
        self.directory = directory
        self._synchronous = synchronous
        self._tenants: TenantCache[SqliteEntityStore] = TenantCache()
        self._replication = LocalReplication()

    async def start(self) -> None:
        await self.tenant(DEFAULT_TENANT, create=True)

    async def close(self) -> None:
        for store in self._tenants.drain():
            await asyncio.to_thread(store.close)

    async def tenant(self, name: str, *, create: bool = False) -> SqliteEntityStore:
        async def open_tenant() -> SqliteEntityStore:
            path = self._path(name)
            if not create and not await asyncio.to_thread(path.exists):
                raise NonexistentTenant(f"tenant {name!r} does not exist")
            store = SqliteEntityStore(path, self._synchronous)
            await asyncio.to_thread(store.open)
            return store

        return await self._tenants.get(name, open_tenant)

    async def drop_tenant(self, name: str) -> None:
        if name == DEFAULT_TENANT:
            raise ValueError("the default tenant cannot be dropped")
        store = self._tenants.pop(name)
        if store is not None:
            await asyncio.to_thread(store.close)
        path = self._path(name)
        for suffix in ("", "-wal", "-shm"):
            await asyncio.to_thread(Path(f"{path}{suffix}").unlink, missing_ok=True)

    async def tenants(self) -> list[str]:
        folder = self.directory / "tenants"
        files = await asyncio.to_thread(lambda: sorted(folder.glob("*.sqlite3")))
        return [path.stem for path in files]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "sqlite",
            "directory": str(self.directory),
            "synchronous": self._synchronous,
        }

    def replication(self) -> LocalReplication:
        """One process per data directory: nothing to coordinate (``local_replication``)."""
        return self._replication

    def _path(self, name: str) -> Path:
        if name == DEFAULT_TENANT:
            return self.directory / "default.sqlite3"
        return self.directory / "tenants" / f"{name}.sqlite3"


def _dump(doc: EntityDoc) -> bytes:
    return orjson.dumps(doc)


def _insert(
    db: sqlite3.Connection,
    doc: EntityDoc,
    journal: Journal | None,
    history: History | None,
    series: SeriesCache,
) -> None:
    try:
        cursor = db.execute("INSERT INTO entities (id, doc) VALUES (?, ?)", (doc["id"], _dump(doc)))
    except sqlite3.IntegrityError:
        raise AlreadyExists(f"entity {doc['id']} already exists") from None
    assert cursor.lastrowid is not None  # an INSERT into a rowid table sets it
    reindex(db, cursor.lastrowid, None, doc)
    _journal(db, journal, None, doc)
    _history(db, history, series, None, doc)


def _journal(
    db: sqlite3.Connection,
    journal: Journal | None,
    before: EntityDoc | None,
    after: EntityDoc | None,
) -> None:
    record = None if journal is None else journal(before, after)
    if record is not None:
        kind, key, doc = record
        _save_records(db, kind, [(key, doc)])


def _history(
    db: sqlite3.Connection,
    history: History | None,
    series: SeriesCache,
    before: EntityDoc | None,
    after: EntityDoc | None,
) -> None:
    if history is not None:
        doc = after if after is not None else before
        assert doc is not None  # a write has a document before or after it
        sqlite_history.append(db, doc["id"], history(before, after), series)


def _load(db: sqlite3.Connection, entity_id: str) -> EntityDoc | None:
    row = db.execute("SELECT doc FROM entities WHERE id = ?", (entity_id,)).fetchone()
    return None if row is None else DOCS.load(row[0])


def _existing(db: sqlite3.Connection, entity_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(entity_ids), 500):  # well under SQLite's variable limit
        chunk = entity_ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        rows = db.execute(f"SELECT id FROM entities WHERE id IN ({marks})", chunk)
        found.update(row[0] for row in rows)
    return found


def _load_for_write(db: sqlite3.Connection, entity_id: str) -> tuple[int, EntityDoc]:
    row = db.execute("SELECT pk, doc FROM entities WHERE id = ?", (entity_id,)).fetchone()
    if row is None:
        raise ResourceNotFound(f"entity {entity_id} does not exist")
    return row[0], orjson.loads(row[1])


def _update(
    db: sqlite3.Connection,
    entity_id: str,
    mutate: Mutation[T],
    journal: Journal | None,
    history: History | None,
    series: SeriesCache,
) -> Committed[T]:
    pk, before = _load_for_write(db, entity_id)
    after, result = mutate(before)
    if after is not before:
        db.execute("UPDATE entities SET doc = ? WHERE pk = ?", (_dump(after), pk))
        reindex(db, pk, before, after)
        _journal(db, journal, before, after)
        _history(db, history, series, before, after)
    return Committed(before, after, result)


def _delete(
    db: sqlite3.Connection,
    entity_id: str,
    journal: Journal | None,
    history: History | None,
    series: SeriesCache,
) -> EntityDoc:
    pk, doc = _load_for_write(db, entity_id)
    db.execute("DELETE FROM entities WHERE pk = ?", (pk,))
    reindex(db, pk, doc, None)
    _journal(db, journal, doc, None)
    _history(db, history, series, doc, None)
    return doc


def _query(db: sqlite3.Connection, query: EntityQuery, plan: Candidates) -> QueryPage:
    if query.keyset is not None:  # the plan's SQL starts after the position: nothing to skip
        query = replace(query, offset=0, resume=None)
    if not plan.exact:
        return _collect(db.execute(plan.sql, plan.params), query, vouched=plan.vouched)
    total = None
    if query.count:
        total = db.execute(*plan.count()).fetchone()[0]
    entities: list[EntityDoc] = []
    last = None
    if query.limit > 0:
        rows = db.execute(*plan.page(query.limit, query.offset)).fetchall()
        entities = [DOCS.load(raw) for _, raw in rows]
        last = rows[-1][0] if rows else None
    return QueryPage(entities, total, _position(last, entities))


def _collect(rows: sqlite3.Cursor, query: EntityQuery, *, vouched: bool) -> QueryPage:
    """Finish candidates with the evaluator; a row SQL ``vouched`` for is taken unread."""
    collector = PageCollector(query)
    last = None
    for row in rows:
        if vouched and row[2]:
            more = collector.offer_known(partial(DOCS.load, row[1]))
        else:
            more = collector.offer(DOCS.load(row[1]))
        if collector.taken_last:
            last = row[0]
        if not more:
            break
    found, total = collector.result()
    in_order = query.ordering is None and not query.by_distance
    return QueryPage(found, total, _position(last, found) if in_order else None)


def _position(pk: int | None, page: list[EntityDoc]) -> Position | None:
    # The primary key alone orders rows: no id is needed to break ties.
    return None if pk is None or not page else (pk, "")


def _save_records(
    db: sqlite3.Connection, kind: str, items: list[tuple[str, dict[str, Any]]]
) -> None:
    db.executemany(
        "INSERT INTO records (kind, key, doc) VALUES (?, ?, ?) "
        "ON CONFLICT (kind, key) DO UPDATE SET doc = excluded.doc",
        [(kind, key, orjson.dumps(doc)) for key, doc in items],
    )


def _records(db: sqlite3.Connection, kind: str) -> list[dict[str, Any]]:
    rows = db.execute("SELECT doc FROM records WHERE kind = ? ORDER BY seq", (kind,))
    return [orjson.loads(row[0]) for row in rows]


def _delete_records(db: sqlite3.Connection, kind: str, keys: list[str]) -> int:
    cursor = db.executemany(
        "DELETE FROM records WHERE kind = ? AND key = ?", [(kind, key) for key in keys]
    )
    return cursor.rowcount


def _catalogue(db: sqlite3.Connection) -> list[CatalogueRow]:
    rows = db.execute(
        "SELECT type, attr, kind, n FROM catalogue WHERE n > 0 ORDER BY type, attr, kind"
    )
    return [CatalogueRow(*row) for row in rows]


def _expiring(db: sqlite3.Connection, now: float, limit: int) -> list[str]:
    rows = db.execute(
        "SELECT e.id FROM entity_expiry AS x JOIN entities AS e ON e.pk = x.pk "
        "WHERE x.at <= ? ORDER BY x.at LIMIT ?",
        (now, limit),
    )
    return [row[0] for row in rows]


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a file written by an earlier version up to date.

    Indexes are rebuilt when ``PRAGMA user_version`` is older than the index schema; the
    subscriptions table of earlier versions becomes records of kind ``subscription``.
    """
    old_table = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'subscriptions'"
    if db.execute(old_table).fetchone() is not None:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT OR IGNORE INTO records (kind, key, doc) "
            "SELECT 'subscription', id, doc FROM subscriptions ORDER BY seq"
        )
        db.execute("DROP TABLE subscriptions")
        db.execute("COMMIT")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version >= SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    rows = db.execute("SELECT pk, doc FROM entities").fetchall()
    rebuild(db, ((pk, orjson.loads(doc)) for pk, doc in rows))
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.execute("COMMIT")


def _register_functions(db: sqlite3.Connection) -> None:
    from broker.ngsild.query import compile_pattern

    def regexp(pattern: str, text: str) -> bool:
        return compile_pattern(pattern).search(text) is not None

    db.create_function("regexp", 2, regexp, deterministic=True)
