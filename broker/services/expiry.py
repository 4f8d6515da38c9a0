"""The expiry sweep: transient entities and attributes are deleted once their time is up.

GS CIM 009 v1.9.1 §4.22 lets the deletion lag ``expiresAt``; readers never see the lag (the
entity service passes what it serves through ``broker.ngsild.expiry.live``). Every
``interval`` seconds the sweep asks each tenant's store for the entities due (an index lookup,
``EntityStore.expiring``) and has the entity service expire them one by one, as ordinary writes:
each is its own small job in the store's writer queue, so the sweep never holds a transaction
open across other clients' writes, and each deletion carries its journal entry, so subscribers
are notified of it like of any other deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from broker.clock import Clock, utc_now
from broker.ngsild.errors import NonexistentTenant
from broker.services.entities import EntityService
from broker.store.base import Store
from broker.store.everywhere import every_tenant

_log = logging.getLogger(__name__)
_BATCH = 200
"""Entities expired per store lookup; the next lookup follows at once while more are due."""


class ExpirySweep:
    """Deletes what expired, in every tenant, every ``interval`` seconds."""

    def __init__(
        self, store: Store, entities: EntityService, interval: float, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._entities = entities
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start sweeping in the background."""
        self._task = asyncio.create_task(self._run(), name="expiry-sweep")

    async def close(self) -> None:
        """Stop sweeping (a sweep under way stops at its next await)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def sweep(self) -> int:
        """One pass over every tenant; returns how many entities were expired."""
        done = 0
        for tenant in await every_tenant(self._store):
            try:
                done += await self._sweep_tenant(tenant)
            except NonexistentTenant:
                continue  # dropped meanwhile
        return done

    async def _sweep_tenant(self, tenant: str) -> int:
        store = await self._store.tenant(tenant)
        seen: set[str] = set()
        while True:
            due = await store.expiring(self._clock().timestamp(), _BATCH)
            fresh = [i for i in due if i not in seen]
            # Submitted together, the SQLite writer commits them in one group with whatever
            # else is queued; other clients' writes wait for no more than that commit.
            await asyncio.gather(*(self._entities.expire(tenant, i) for i in fresh))
            seen.update(fresh)
            if len(due) < _BATCH or not fresh:
                return len(seen)

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a failing pass must not end the sweep: log, retry next time
                _log.exception("expiry sweep failed")
            await asyncio.sleep(self._interval)
