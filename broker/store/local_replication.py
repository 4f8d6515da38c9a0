"""Replication for a store only one process opens (SQLite): nothing to coordinate.

The leases are real (the same decisions as the database's, ``broker.store.leases``, judged by
this process's monotonic clock) so that code written against ``LeaseStore`` behaves the same
here; with ``shared`` false the broker never needs them. No other replica changes records, so
the change feed ends at once, and no journal record belongs to anyone else.
"""

from __future__ import annotations

import time
from typing import Any

from broker.store.base import ChangeFeed, LeaseStore
from broker.store.leases import Held, Lease, may_take, released, replica_lease, taken


class LocalLeases:
    """Leases held in this process's memory, taken by ``me``.

    Several ``LocalLeases`` may share one ``table``: they then behave like replicas sharing a
    lease collection, judged by one clock (what the unit tests of lease-gated work use).
    """

    def __init__(self, me: str, table: dict[str, Lease] | None = None) -> None:
        self.me = me
        self._table: dict[str, Lease] = {} if table is None else table

    async def take(self, name: str, ttl: float) -> Held | None:
        sent_at = time.monotonic()
        now = await self.now()
        current = self._table.get(name)
        if not may_take(current, self.me, now):
            return None
        lease = taken(current, name, self.me, now, round(ttl * 1000))
        self._table[name] = lease
        return Held(lease.token, sent_at, ttl)

    async def release(self, name: str) -> None:
        current = self._table.get(name)
        if current is not None:
            self._table[name] = released(current, self.me, await self.now())

    async def announce(self, ttl: float) -> Held | None:
        return await self.take(replica_lease(self.me), ttl)

    async def all(self) -> dict[str, Lease]:
        return dict(self._table)

    async def now(self) -> int:
        return int(time.monotonic() * 1000)


class LocalReplication:
    """The replication of a store no other process opens."""

    shared = False

    def __init__(self, replica: str = "local") -> None:
        self.replica = replica
        self.leases: LeaseStore = LocalLeases(replica)

    async def open_changes(self, kinds: list[str]) -> ChangeFeed:
        return _nothing()

    async def record(
        self, tenant: str, kind: str, key: str
    ) -> tuple[dict[str, Any] | None, str | None]:
        return None, None  # never asked: nothing to follow

    async def records(self, tenant: str, kind: str) -> dict[str, dict[str, Any]]:
        return {}

    async def owners(self, tenant: str, kind: str) -> dict[str, str | None]:
        return {}

    async def claim(
        self, tenant: str, kind: str, key: str, owner: str | None
    ) -> dict[str, Any] | None:
        return None


async def _nothing() -> ChangeFeed:
    return
    yield  # pragma: no cover  (makes this an empty async generator)
