"""Keeping this replica's caches current with what other replicas change (several replicas).

Theory of operation. Subscriptions, registrations, provisioning and grants are held in memory by
their services, loaded from the store at start. When replicas share the store, each one follows
the store's change feed (``Replication.open_changes``), opened *before* the services load, so a
record committed while they load is reported afterwards and nothing falls in between. Each
``RecordChange`` goes to the cache that keeps its kind:

* a change this replica made (``origin`` is this replica) is skipped: the service applied it
  when it made it, in order, and applying a stale copy of it again could undo a later one;
* a deletion does not say who deleted, and the record may have been saved again since (deleted
  and created again with the same id), so the record is read again and the cache takes whatever
  the store now holds (``settle``);
* anything else is handed over as it is now; services ignore a copy whose definition they
  already hold (``same_definition``: the status members that each replica counts and saves,
  such as ``timesSent``, are not part of it), so the status saves of other replicas do not
  restart timers or throttles.

A ``Reload`` (the feed lost its place, a tenant's database was dropped) makes each cache take
the store's records as they are, forgetting what it holds that is no longer there. The same
code runs for every cache, so each service only says how one record changes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from broker.ngsild.errors import NonexistentTenant
from broker.store.base import ChangeFeed, RecordChange, Reload, Replication, Store
from broker.store.everywhere import every_tenant

_log = logging.getLogger(__name__)


class Cache(Protocol):
    """A service's records held in memory, kept current by the ``Follower``."""

    @property
    def kinds(self) -> tuple[str, ...]:
        """The record kinds it holds."""
        ...

    async def changed(self, change: RecordChange) -> None:
        """Hold ``change.doc`` as the record (None: forget it); must not raise for a record
        that does not parse (log it)."""

    def held_keys(self, kind: str) -> set[tuple[str, str]]:
        """(tenant, key) of every record of ``kind`` it holds."""
        ...


def same_definition(held: dict[str, Any], new: dict[str, Any], status: Iterable[str]) -> bool:
    """Whether two saved versions of a record differ at most in their ``status`` members."""
    skip = frozenset(status)
    return {k: v for k, v in held.items() if k not in skip} == {
        k: v for k, v in new.items() if k not in skip
    }


def settle(
    change: RecordChange, current: dict[str, Any] | None, origin: str | None
) -> RecordChange:
    """What a reported deletion means, once the record has been read again (``current``)."""
    return RecordChange(change.tenant, change.kind, change.key, current, origin)


def wanted(change: RecordChange, me: str) -> bool:
    """Whether a reported change is news to this replica (not one it made itself)."""
    return change.origin is None or change.origin != me


class Follower:
    """Applies the store's change feed to the caches (started only when the store is shared).

    Args:
        store: Where records are read again (deletions, reloads).
        replication: The store's replication (its feed, and this replica's name).
    """

    def __init__(self, store: Store, replication: Replication) -> None:
        self._store = store
        self._replication = replication
        self._caches: dict[str, Cache] = {}
        self._feed: ChangeFeed | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, cache: Cache) -> None:
        """Keep ``cache`` current (once it loaded, before ``start``)."""
        for kind in cache.kinds:
            self._caches[kind] = cache

    async def open(self, kinds: list[str]) -> None:
        """Start recording changes of ``kinds``, before the caches that hold them load."""
        self._feed = await self._replication.open_changes(kinds)

    def start(self) -> None:
        """Apply what was recorded since ``open``, and everything after (once caches loaded)."""
        if self._feed is not None:
            self._task = asyncio.create_task(self._run(self._feed), name="follow-replicas")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._feed is not None:
            await self._feed.aclose()

    async def _run(self, feed: ChangeFeed) -> None:
        async for change in feed:
            try:
                if isinstance(change, Reload):
                    await self.reload(change.tenant)
                else:
                    await self.apply(change)
            except Exception:  # one change must not stop the following
                _log.exception("applying a change of another replica failed: %r", change)

    async def apply(self, change: RecordChange) -> None:
        """Apply one reported change to the cache of its kind."""
        cache = self._caches.get(change.kind)
        if cache is None or not wanted(change, self._replication.replica):
            return
        if change.doc is None:
            current, origin = await self._current(change.tenant, change.kind, change.key)
            change = settle(change, current, origin)
            if not wanted(change, self._replication.replica):
                return
        await cache.changed(change)

    async def reload(self, tenant: str | None) -> None:
        """Make every cache hold exactly the store's records (of ``tenant``; None: all)."""
        tenants = [tenant] if tenant is not None else await every_tenant(self._store)
        for kind, cache in self._caches.items():
            found: dict[tuple[str, str], dict[str, Any]] = {}
            for name in tenants:
                for key, doc in (await self._records(name, kind)).items():
                    found[(name, key)] = doc
            for held in cache.held_keys(kind):
                if (tenant is None or held[0] == tenant) and held not in found:
                    await cache.changed(RecordChange(held[0], kind, held[1], None))
            for (name, key), doc in found.items():
                await cache.changed(RecordChange(name, kind, key, doc))

    async def _current(
        self, tenant: str, kind: str, key: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        try:
            return await self._replication.record(tenant, kind, key)
        except NonexistentTenant:
            return None, None

    async def _records(self, tenant: str, kind: str) -> dict[str, dict[str, Any]]:
        try:
            return await self._replication.records(tenant, kind)
        except NonexistentTenant:
            return {}
