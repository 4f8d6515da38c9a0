"""Leases and journal-entry takeover on MongoDB, for the replicas of one installation.

The decisions are ``broker.store.leases``; this module carries them out with single-document
atomic updates, which MongoDB applies one at a time per document on the primary, so two
replicas racing for one lease or one orphaned entry cannot both win. Leases live in the base
database's ``leases`` collection. Verified only against a real server (``tests/replicas``);
without one, the pure decisions and their mutual exclusion are tested in
``tests/unit/test_leases.py``.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Final

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from broker.store.leases import (
    Held,
    Lease,
    blank_update,
    claim_filter,
    release_update,
    replica_lease,
    take_filter,
    take_update,
)

Document = dict[str, Any]
LEASES: Final = "leases"


class MongoLeases:
    """Leases of one installation, taken by replica ``me``."""

    def __init__(self, database: AsyncDatabase[Document], me: str) -> None:
        self.me = me
        self._leases: AsyncCollection[Document] = database[LEASES]

    async def take(self, name: str, ttl: float) -> Held | None:
        """Take or renew lease ``name`` for ``ttl`` seconds; None while another replica holds
        it."""
        for attempt in range(2):
            sent_at = time.monotonic()
            record = await self._leases.find_one_and_update(
                take_filter(name, self.me),
                take_update(self.me, round(ttl * 1000)),
                return_document=ReturnDocument.AFTER,
            )
            if record is not None:
                return Held(int(record["token"]), sent_at, ttl)
            if attempt == 0:
                # Held by another replica, or no record yet: make sure it exists, try again.
                await self._leases.update_one({"_id": name}, blank_update(), upsert=True)
        return None

    async def release(self, name: str) -> None:
        """Give lease ``name`` up at once, if this replica holds it."""
        await self._leases.update_one({"_id": name, "holder": self.me}, release_update())

    async def announce(self, ttl: float) -> Held | None:
        """Take or renew this replica's own lease (it is alive while the lease holds)."""
        return await self.take(replica_lease(self.me), ttl)

    async def all(self) -> dict[str, Lease]:
        """Every lease, by name (for ``leases.orphaned``)."""
        return {
            str(record["_id"]): _lease(record)
            async for record in self._leases.find({"holder": {"$type": "string"}})
        }

    async def now(self) -> int:
        """The database's clock in milliseconds (what lease expiry is judged by)."""
        database = self._leases.database
        hello = await database.command("hello")
        moment: datetime = hello["localTime"]
        return int(moment.timestamp() * 1000)


async def claim(
    records: AsyncCollection[Document], key: dict[str, Any], owner: str | None, me: str
) -> bool:
    """Make ``me`` the owner of a journal entry that belonged to ``owner``; False when another
    replica claimed it first (or it is gone: its notifications were all sent)."""
    result = await records.update_one(claim_filter(key, owner), {"$set": {"owner": me}})
    return result.modified_count == 1


def _lease(record: Document) -> Lease:
    expires = record["expires"]
    millis = int(expires.timestamp() * 1000) if isinstance(expires, datetime) else int(expires)
    return Lease(str(record["_id"]), str(record["holder"]), millis, int(record["token"]))
