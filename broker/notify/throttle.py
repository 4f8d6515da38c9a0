"""Throttling of one subscription's notifications (GS CIM 009 v1.8.1 §5.2.12 ``throttling``).

The spec asks for at least ``throttling`` seconds between two notifications. Changes that come
sooner are not thrown away: the latest state of each entity is held and sent in one
notification when the period ends. For a river gauge that reports every few seconds this means
a receiver throttled to one notification a minute still gets the newest level, never a stale one.

What is held keeps the journal entries of the changes it stands for open (``broker.notify.
journal``), so a held state is replayed after a crash like any notification owed.

With several replicas (``broker.notify.replicas``) each one throttles the changes it committed,
and a ``gate`` (the subscription's throttle lease, taken for one period) makes their sends a
period apart too: a replica whose gate is closed keeps holding and asks again a little later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from broker.ngsild.entity import EntityDoc
from broker.notify.journal import Entry

Send = Callable[[list[EntityDoc], list[Entry]], None]
"""Sends entity states, on behalf of the journal entries they stand for."""
_log = logging.getLogger(__name__)


class Throttle:
    """Lets a notification through at most once per ``period`` seconds, coalescing the rest.

    Args:
        period: Seconds between two notifications.
        send: Sends states now; it takes over the entries (releases them when delivered).
        release: Gives back an entry whose state was superseded or forgotten.
        gate: Asked before each send whether this replica may send now (None: always).
        retry: Seconds before asking a closed gate again.
    """

    def __init__(
        self,
        period: float,
        send: Send,
        release: Callable[[Entry], None],
        gate: Callable[[], Awaitable[bool]] | None = None,
        retry: float = 1.0,
    ) -> None:
        self._period = period
        self._send = send
        self._release = release
        self._gate = gate
        self._retry = retry
        self._last = float("-inf")
        self._held: dict[str, EntityDoc] = {}
        self._entries: list[Entry] = []
        self._timer: asyncio.TimerHandle | None = None
        self._asking: asyncio.Task[None] | None = None

    def offer(self, doc: EntityDoc, entry: Entry) -> None:
        """Send ``doc`` now if the period has passed, else hold it (replacing an older state).

        ``entry`` has been held once for this state; the throttle now owns that hold.
        """
        loop = asyncio.get_running_loop()
        idle = self._timer is None and self._asking is None
        if idle and self._gate is None and loop.time() - self._last >= self._period:
            self._last = loop.time()
            self._send([doc], [entry])
            return
        self._held[doc["id"]] = doc
        self._entries.append(entry)  # a superseded state's change is notified by the newer one
        if idle:
            self._timer = loop.call_at(self._last + self._period, self._flush)

    def cancel(self) -> None:
        """Forget what is held (the subscription was changed or deleted)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._asking is not None:
            self._asking.cancel()
            self._asking = None
        self._held.clear()
        entries, self._entries = self._entries, []
        for entry in entries:
            self._release(entry)

    def _flush(self) -> None:
        self._timer = None
        if self._gate is not None:
            self._asking = asyncio.get_running_loop().create_task(self._ask(self._gate))
            return
        self._send_held()

    async def _ask(self, gate: Callable[[], Awaitable[bool]]) -> None:
        try:
            allowed = await gate()
        except Exception:  # the store unreachable: keep holding, the entries stay journaled
            _log.exception("asking for a throttle lease failed")
            allowed = False
        self._asking = None
        if allowed:
            self._send_held()
        elif self._held:
            self._timer = asyncio.get_running_loop().call_later(self._retry, self._flush)

    def _send_held(self) -> None:
        docs, self._held = list(self._held.values()), {}
        entries, self._entries = self._entries, []
        self._last = asyncio.get_running_loop().time()
        if docs:
            self._send(docs, entries)
