"""The history retention job: drops attribute instances older than each tenant's retention.

It runs every ``TOSHI_TEMPORAL__RETENTION_INTERVAL`` seconds and deletes in small batches, each
its own write job in the tenant's writer, so entity writes queued meanwhile are served between
batches and never wait for a whole sweep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from broker.clock import Clock, utc_now
from broker.ngsild.temporal.times import to_micros
from broker.services.temporal import TemporalService
from broker.store.base import Store
from broker.store.everywhere import every_tenant

_BATCH = 2_000
_log = logging.getLogger(__name__)


class RetentionJob:
    """Periodically trims every tenant's history to its retention period."""

    def __init__(
        self,
        store: Store,
        temporal: TemporalService,
        retention_days: Callable[[str], float],
        interval: float,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._temporal = temporal
        self._retention_days = retention_days
        self._interval = interval
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the periodic task."""
        self._task = asyncio.create_task(self._run(), name="history-retention")

    async def close(self) -> None:
        """Stop the periodic task (a batch under way finishes first: it is one write job)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def sweep(self) -> int:
        """One pass over every tenant; how many instances were dropped."""
        dropped = 0
        for tenant in await every_tenant(self._store):
            days = self._retention_days(tenant)
            if days <= 0:
                continue
            cutoff = to_micros((self._clock() - timedelta(days=days)).isoformat())
            while True:
                removed = await self._temporal.trim(tenant, cutoff, _BATCH)
                dropped += removed
                if removed < _BATCH:
                    break
                await asyncio.sleep(0)  # let queued writes go first
        return dropped

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                dropped = await self.sweep()
            except Exception:
                _log.exception("history retention sweep failed")
            else:
                if dropped:
                    _log.info("history retention dropped %d instances", dropped)
