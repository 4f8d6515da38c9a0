"""The outbox: notifications survive a restart of the broker (issue 4, at-least-once delivery).

Theory of operation. Every notification the engine produces is saved in its tenant's store
(record kind ``notification``: endpoint, headers, body bytes) *before* it is handed to the
dispatcher, and before the write that caused it is acknowledged; it is deleted once its delivery
has ended — delivered, refused, given up after the retry budget, or dropped from a full queue
(the last three are counted as failures in the subscription's status). What is still saved when
the broker starts again (it was killed, or stopped with deliveries pending) is sent again.
A receiver may therefore get a notification twice after a crash, but never zero times.

Deletions are frequent and nobody waits for them, so they are gathered and committed together
every ``flush_every`` seconds; a crash in between only means a few more duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

from broker.store.base import Store

_log = logging.getLogger(__name__)
KIND: Final = "notification"
"""Record kind of pending notifications in the tenant store."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A notification saved but not yet known to be delivered."""

    key: str
    subscription_id: str
    endpoint: str
    headers: dict[str, str]
    body: bytes

    def to_doc(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "subscriptionId": self.subscription_id,
            "endpoint": self.endpoint,
            "headers": self.headers,
            "body": base64.b64encode(self.body).decode("ascii"),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Pending:
        return cls(
            doc["key"],
            doc["subscriptionId"],
            doc["endpoint"],
            dict(doc["headers"]),
            base64.b64decode(doc["body"]),
        )


class Outbox:
    """Saves pending notifications per tenant and forgets delivered ones in batches."""

    def __init__(self, store: Store, flush_every: float = 0.1) -> None:
        self._store = store
        self._flush_every = flush_every
        self._finished: defaultdict[str, list[str]] = defaultdict(list)
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="outbox-flush")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self._flush()

    async def keep(self, tenant: str, pending: list[Pending]) -> None:
        """Save ``pending`` in one commit (returns once it is durable)."""
        store = await self._store.tenant(tenant, create=True)
        await store.save_records(KIND, [(p.key, p.to_doc()) for p in pending])

    def finished(self, tenant: str, key: str) -> None:
        """The delivery of ``key`` ended: forget it at the next flush."""
        self._finished[tenant].append(key)

    async def pending(self, tenant: str) -> list[Pending]:
        """What was saved and not finished, oldest first."""
        store = await self._store.tenant(tenant, create=tenant == "")
        return [Pending.from_doc(doc) for doc in await store.records(KIND)]

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            await self._flush()

    async def _flush(self) -> None:
        finished, self._finished = self._finished, defaultdict(list)
        for tenant, keys in finished.items():
            try:
                store = await self._store.tenant(tenant)
                await store.delete_records(KIND, keys)
            except Exception:  # they will be sent again after a restart: duplicates, no loss
                _log.exception("forgetting %d delivered notifications failed", len(keys))
