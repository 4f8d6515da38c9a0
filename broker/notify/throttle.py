"""Throttling of one subscription's notifications (GS CIM 009 v1.8.1 §5.2.12 ``throttling``).

The spec asks for at least ``throttling`` seconds between two notifications. Changes that come
sooner are not thrown away: the latest state of each entity is held and sent in one
notification when the period ends. For a river gauge that reports every few seconds this means
a receiver throttled to one notification a minute still gets the newest level, never a stale one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from broker.ngsild.entity import EntityDoc


class Throttle:
    """Lets a notification through at most once per ``period`` seconds, coalescing the rest."""

    def __init__(self, period: float, send: Callable[[list[EntityDoc]], None]) -> None:
        self._period = period
        self._send = send
        self._last = float("-inf")
        self._held: dict[str, EntityDoc] = {}
        self._timer: asyncio.TimerHandle | None = None

    def offer(self, doc: EntityDoc) -> None:
        """Send ``doc`` now if the period has passed, else hold it (replacing an older state)."""
        loop = asyncio.get_running_loop()
        if self._timer is None and loop.time() - self._last >= self._period:
            self._last = loop.time()
            self._send([doc])
            return
        self._held[doc["id"]] = doc
        if self._timer is None:
            self._timer = loop.call_at(self._last + self._period, self._release)

    def cancel(self) -> None:
        """Forget what is held (the subscription was changed or deleted)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._held.clear()

    def _release(self) -> None:
        self._timer = None
        docs, self._held = list(self._held.values()), {}
        self._last = asyncio.get_running_loop().time()
        if docs:
            self._send(docs)
