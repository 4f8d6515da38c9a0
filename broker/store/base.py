"""The store port: what the broker needs from a database, and nothing more.

A backend (``sqlite.py``, ``mongo.py``) implements ``Store``, which hands out one ``EntityStore``
per tenant. Entities are documents in the shape ``broker.ngsild.entity`` describes: one record per
entity, names expanded. Every write is committed before its coroutine returns, so a client that
got 201/204 can rely on it surviving a crash of the broker process.

Updates are an atomic read-modify-write: the service passes a pure ``Mutation`` (usually a
``broker.ngsild.patch`` function bound to the request's fragment); the store runs it against the
current document and writes the result in the same transaction. A mutation that returns its input
unchanged (``after is before``) writes nothing.

Every write also takes an optional ``History`` (``broker.ngsild.temporal.history``): the attribute
instances the write appends to the tenant's history, in the same transaction (``store.history``).

Every write takes an optional ``Journal``: a record derived from the change, committed in the same
transaction. It is how a change and the notifications it owes can never be separated by a crash.

``Store.replication()`` is what replicas sharing the store coordinate through (docs/design.md,
"Several replicas"): a feed of record changes, leases, and the ownership of journal records.
A store only one process opens (SQLite) answers with a ``Replication`` whose ``shared`` is
false; the broker then starts none of it.

Documents that reads (``get``, ``query``) return are values to read, not copies to change: the
SQLite store hands the same parsed document to every reader of the same stored version
(``broker.doc_cache``). A caller that needs a changed document builds a new one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from broker.ngsild.catalogue import CatalogueRow
from broker.ngsild.entity import EntityDoc
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.model import Position
from broker.ngsild.temporal.history import History
from broker.store.leases import Held, Lease

T = TypeVar("T")

Mutation = Callable[[EntityDoc], tuple[EntityDoc, T]]
"""Current document → (new document, outcome). Raising aborts the update and is re-raised."""
JournalRecord = tuple[str, str, dict[str, Any]]
"""(kind, key, document) of a record to save in the same transaction as an entity write."""
Journal = Callable[[EntityDoc | None, EntityDoc | None], JournalRecord | None]
"""Called inside a write's transaction with the document before and after it (``None`` for a
creation or a deletion), only when the write changes something; the record it returns, if any,
commits or vanishes together with the entity. It must be quick, pure and must not raise: it runs
in the store's writer (a thread, for SQLite). The notification engine's change journal uses it.
"""


@dataclass(frozen=True, slots=True)
class Committed(Generic[T]):
    """The outcome of an update, with the document before and after it."""

    before: EntityDoc
    after: EntityDoc
    result: T

    @property
    def changed(self) -> bool:
        """Whether the update wrote anything."""
        return self.after is not self.before


@dataclass(frozen=True, slots=True)
class QueryPage:
    """One page of query results, and the total number of matches when it was asked for.

    ``last`` is the store's position of the page's last entity when the query was in the
    store's own order (no ``orderBy``, no distance ordering): what a ``Resume`` for the next
    page holds. A page put together above the store (merged, re-cut) has none.
    """

    entities: list[EntityDoc]
    total: int | None = None
    last: Position | None = None


class EntityStore(Protocol):
    """The entities of one tenant."""

    async def create(
        self, doc: EntityDoc, *, journal: Journal | None = None, history: History | None = None
    ) -> None:
        """Insert a new entity. Raises ``AlreadyExists`` if the id is taken."""

    async def get(self, entity_id: str) -> EntityDoc | None:
        """The entity with this id, or ``None``."""

    async def update(
        self,
        entity_id: str,
        mutate: Mutation[T],
        *,
        journal: Journal | None = None,
        history: History | None = None,
    ) -> Committed[T]:
        """Atomically apply ``mutate``. Raises ``ResourceNotFound`` if there is no such entity."""

    async def delete(
        self, entity_id: str, *, journal: Journal | None = None, history: History | None = None
    ) -> EntityDoc:
        """Remove an entity and return it. Raises ``ResourceNotFound`` if there is none."""

    async def query(self, query: EntityQuery) -> QueryPage:
        """The entities matching ``query`` in a stable order, paged by ``limit``/``offset``.

        The order is insertion order, except that ``near`` geo-queries are ordered by distance.
        """

    async def catalogue(self) -> list[CatalogueRow]:
        """Counts of entities per type and per (type, attribute, attribute type), for discovery."""

    async def expiring(self, now: float, limit: int) -> list[str]:
        """Ids of up to ``limit`` entities something of which expires at or before ``now``
        (POSIX seconds; ``broker.ngsild.expiry.earliest``), soonest first."""
        ...

    async def count(self) -> int:
        """How many entities the tenant has (for its quota)."""

    async def existing(self, entity_ids: list[str]) -> set[str]:
        """Which of ``entity_ids`` are stored (a batch upsert asks once for all its members)."""


class RecordStore(Protocol):
    """Small JSON documents of one tenant, filed by kind and key.

    What the broker keeps besides entities lives here: subscriptions (kind ``subscription``),
    IoT provisioning, pending notifications. The services hold them in memory while they run;
    this is what makes them survive a restart. A save is committed before it returns, as entity
    writes are.
    """

    async def save_record(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        """Insert or replace the record ``(kind, key)``; a replaced record keeps its place."""

    async def records(self, kind: str) -> list[dict[str, Any]]:
        """Every record of ``kind``, in the order they were first saved."""

    async def delete_record(self, kind: str, key: str) -> bool:
        """Remove a record; whether it existed."""

    async def save_records(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Save several ``(key, doc)`` records of ``kind`` in one commit."""

    async def delete_records(self, kind: str, keys: list[str]) -> int:
        """Remove several records of ``kind`` in one commit; how many existed."""


class TenantStore(EntityStore, RecordStore, Protocol):
    """Everything a tenant keeps."""


class Store(Protocol):
    """A storage backend: tenants, each with its own ``EntityStore``."""

    async def start(self) -> None:
        """Open connections and make sure the default tenant exists."""

    async def close(self) -> None:
        """Finish pending work and release every resource."""

    async def tenant(self, name: str, *, create: bool = False) -> TenantStore:
        """The store of tenant ``name`` ('' is the default tenant).

        Raises ``NonexistentTenant`` when it does not exist and ``create`` is false.
        """

    async def tenants(self) -> list[str]:
        """The names of all existing tenants other than the default one."""

    async def drop_tenant(self, name: str) -> None:
        """Delete tenant ``name`` and everything it holds, for good (not the default one)."""

    def describe(self) -> dict[str, Any]:
        """A short description for logs and the health endpoint (never credentials)."""

    def replication(self) -> Replication:
        """How this process coordinates with the other replicas sharing the store."""
        ...


@dataclass(frozen=True, slots=True)
class RecordChange:
    """A record of ``kind``/``key`` in ``tenant`` is now ``doc`` (None: deleted).

    ``origin`` is the replica whose save left the record as it is now (None: unknown, as for a
    deletion); a replica skips the changes it made itself, as it applied them already.
    """

    tenant: str
    kind: str
    key: str
    doc: dict[str, Any] | None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Reload:
    """The feed cannot say what changed: reload every record of the tenant (None: all)."""

    tenant: str | None


ChangeFeed = AsyncGenerator[RecordChange | Reload, None]
"""What other replicas change in records, in commit order, for as long as it is iterated."""


class LeaseStore(Protocol):
    """Leases of one installation, taken by replica ``me`` (``broker.store.leases``)."""

    me: str

    async def take(self, name: str, ttl: float) -> Held | None:
        """Take or renew lease ``name`` for ``ttl`` seconds; None while another holds it."""
        ...

    async def release(self, name: str) -> None:
        """Give lease ``name`` up at once, if ``me`` holds it."""

    async def announce(self, ttl: float) -> Held | None:
        """Take or renew ``me``'s own lease: ``me`` is alive while it holds."""
        ...

    async def all(self) -> dict[str, Lease]:
        """Every lease that has a holder, by name."""
        ...

    async def now(self) -> int:
        """The clock lease expiry is judged by, in milliseconds."""
        ...


class Replication(Protocol):
    """What the replicas sharing one store coordinate through."""

    replica: str
    """This replica's name: the owner of the journal records it commits."""
    shared: bool
    """Whether other processes may open the same store (False: nothing to coordinate)."""
    leases: LeaseStore

    async def open_changes(self, kinds: list[str]) -> ChangeFeed:
        """Start following record changes of ``kinds``: whatever is committed after this
        returns is in the feed (open it before loading the caches it keeps current)."""
        ...

    async def record(
        self, tenant: str, kind: str, key: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        """The record ``(kind, key)`` of ``tenant`` as it is now and the replica that saved it
        (None: there is none)."""
        ...

    async def records(self, tenant: str, kind: str) -> dict[str, dict[str, Any]]:
        """Every record of ``kind`` in ``tenant``, by key."""
        ...

    async def owners(self, tenant: str, kind: str) -> dict[str, str | None]:
        """The records of ``kind`` in ``tenant`` that belong to other replicas, key → owner
        (None: written before owners were recorded)."""
        ...

    async def claim(
        self, tenant: str, kind: str, key: str, owner: str | None
    ) -> dict[str, Any] | None:
        """Make this replica the owner of a record that belonged to ``owner``, and return it;
        None when another replica claimed it first or it is gone."""
        ...
