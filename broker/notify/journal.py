"""The change journal: a committed change and the promise to notify it are one write.

Theory of operation. Before a write in a tenant that has subscriptions, the engine hands the
entity service an ``Entry``. The store calls it inside the write's transaction with the document
before and after: the entry works out, with the engine's pure matching, which subscriptions the
change notifies and, if any, returns a record of kind ``change`` (the two documents and those
subscription ids) that the store commits together with the entity. So a change is either not
committed, or committed with its notifications owed — there is no moment in between for a crash
to fall into (issue 11: before, the notifications were saved in a second commit).

After the commit the engine renders and dispatches the notifications. Every delivery, held
throttle state and join in progress that stems from an entry keeps it open (``hold``/
``release``); when the last one ends — delivered, given up after its retries, dropped from a
full queue, or cancelled because its subscription ended — its record is forgotten. Forgetting is
gathered and committed every ``flush_every`` seconds, as nobody waits for it. When a
subscription ends while an entry still owes it a notification, the record is rewritten without
it, so that a restart does not bring the notification back.

At start the engine replays every record left: its change is notified again to those of its
subscriptions that still exist and are active. A receiver may get a notification twice after a
crash, never zero times. Records of kind ``notification`` (ready-made notifications saved by the
outbox of earlier versions) are read once and sent the same way.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from broker.clock import Clock, timestamp, utc_now
from broker.ngsild.entity import EntityDoc
from broker.ngsild.subscriptions.changes import Change, Fired, triggers
from broker.store.base import JournalRecord, Store

_log = logging.getLogger(__name__)
KIND: Final = "change"
"""Record kind of journal entries in the tenant store."""
LEGACY_KIND: Final = "notification"
"""Record kind of the outbox of earlier versions: one ready-made notification each."""


class Matcher(Protocol):
    """The engine's matching, as a write's journal entry uses it (``Registry``)."""

    def could_concern(self, tenant: str, before: EntityDoc | None, after: EntityDoc | None) -> bool:
        """A quick no for most writes: nobody subscribed to these types."""
        ...

    def match(self, change: Change, now: str) -> tuple[Fired, list[str]]:
        """What ``change`` fires and the ids of the subscriptions it notifies at ``now``."""
        ...

    def owes_record(self, tenant: str, subscription_ids: list[str]) -> bool:
        """Whether notifying ``subscription_ids`` must survive a restart."""
        ...

    def only_transient(self, tenant: str) -> bool:
        """Whether every subscription of ``tenant`` is transient (nothing to journal)."""
        ...


@dataclass(slots=True, eq=False)
class Entry:
    """One change and the notifications it owes; the store's journal for one write.

    Attributes:
        tenant: Where the write happens.
        matcher: Matches the change (None for an entry replayed from its record).
        clock: The write's time, read only when some subscription could care.
        durable: Whether to return a record for the store to save.
        at: The write's time (NGSI-LD DateTime), once read.
        change: Set when the store calls the entry (the write is about to commit).
        fired: What the change fired.
        subscriptions: The subscriptions it notifies, by id.
        key: The record's key, when one was saved.
    """

    tenant: str
    matcher: Matcher | None = None
    clock: Clock = utc_now
    durable: bool = True
    at: str | None = None
    change: Change | None = None
    fired: Fired | None = None
    subscriptions: list[str] = field(default_factory=list)
    key: str | None = None
    holds: int = 0

    def __call__(self, before: EntityDoc | None, after: EntityDoc | None) -> JournalRecord | None:
        """Runs in the store's transaction, in its writer thread: match, and say what to save."""
        assert self.matcher is not None  # only entries of a write are called
        if not self.matcher.could_concern(self.tenant, before, after):
            return None  # most writes: nobody subscribed to these types; keep this tiny
        self.change = Change(self.tenant, before, after)
        if self.matcher.only_transient(self.tenant):
            # Transient subscriptions are never matched: the engine's feed takes the change
            # after the commit (``broker.notify.engine``), and nothing is owed after a restart.
            return None
        try:
            self.fired, self.subscriptions = self.matcher.match(self.change, self.now)
        except Exception:  # a matching bug must not fail the write; it is logged, not hidden
            _log.exception("matching the change of %s failed", self.change.entity_id)
            self.subscriptions = []
        if not (self.durable and self.subscriptions):
            return None
        if not self.matcher.owes_record(self.tenant, self.subscriptions):
            return None  # only in-process sinks: a dashboard takes a snapshot when it reconnects
        self.key = uuid.uuid4().hex
        return KIND, self.key, self.to_doc()

    @property
    def now(self) -> str:
        """The write's time, read from the clock the first time it is needed."""
        if self.at is None:
            self.at = timestamp(self.clock)
        return self.at

    def to_doc(self) -> dict[str, Any]:
        assert self.change is not None
        return {
            "key": self.key,
            "before": self.change.before,
            "after": self.change.after,
            "subscriptions": self.subscriptions,
            "at": self.now,
        }

    @classmethod
    def from_doc(cls, tenant: str, doc: dict[str, Any]) -> Entry:
        """An entry saved by an earlier run."""
        change = Change(tenant, doc["before"], doc["after"])
        subscriptions = list(doc["subscriptions"])
        return cls(
            tenant,
            at=doc["at"],
            change=change,
            fired=triggers(change),
            subscriptions=subscriptions,
            key=doc["key"],
        )


@dataclass(frozen=True, slots=True)
class Legacy:
    """A ready-made notification the outbox of an earlier version saved and did not deliver."""

    key: str
    subscription_id: str
    endpoint: str
    headers: dict[str, str]
    body: bytes

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Legacy:
        return cls(
            doc["key"],
            doc["subscriptionId"],
            doc["endpoint"],
            dict(doc["headers"]),
            base64.b64decode(doc["body"]),
        )


class Journal:
    """Keeps track of open entries and forgets finished ones in batches."""

    def __init__(self, store: Store, flush_every: float = 0.1) -> None:
        self._store = store
        self._flush_every = flush_every
        self._forget: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
        """(tenant, kind) → keys to delete at the next flush."""
        self._rewrite: dict[tuple[str, str], Entry] = {}
        """(tenant, key) → entries to save again without an ended subscription."""
        self._open: defaultdict[str, set[Entry]] = defaultdict(set)
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="journal-flush")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()

    def hold(self, entry: Entry) -> None:
        """Something (a delivery, a held state) now depends on ``entry``."""
        if not entry.holds:
            self._open[entry.tenant].add(entry)
        entry.holds += 1

    def release(self, entry: Entry) -> None:
        """One thing that depended on ``entry`` ended; the last one forgets the record."""
        entry.holds -= 1
        if entry.holds <= 0:
            self._open[entry.tenant].discard(entry)
            self.finished(entry)

    def finished(self, entry: Entry) -> None:
        """Nothing more is owed for ``entry``: forget its record at the next flush."""
        if entry.key is not None:
            self._rewrite.pop((entry.tenant, entry.key), None)
            self._forget[(entry.tenant, KIND)].append(entry.key)
            entry.key = None

    def drop_subscription(self, entry: Entry, subscription_id: str) -> None:
        """``subscription_id`` ended: a restart must not notify ``entry`` to it any more."""
        if subscription_id in entry.subscriptions:
            entry.subscriptions = [s for s in entry.subscriptions if s != subscription_id]
            if entry.key is not None:
                self._rewrite[(entry.tenant, entry.key)] = entry

    def open_entries(self, tenant: str) -> list[Entry]:
        """The entries of ``tenant`` that still owe something."""
        return list(self._open.get(tenant, ()))

    def forget_legacy(self, tenant: str, key: str) -> None:
        self._forget[(tenant, LEGACY_KIND)].append(key)

    async def entries(self, tenant: str) -> list[Entry]:
        """What an earlier run left in ``tenant``, oldest first."""
        store = await self._store.tenant(tenant, create=tenant == "")
        found = []
        for doc in await store.records(KIND):
            try:
                found.append(Entry.from_doc(tenant, doc))
            except Exception:  # one unreadable record must not stop the others
                _log.exception("journal record in tenant %r not readable; dropped", tenant)
        return found

    async def legacy(self, tenant: str) -> list[Legacy]:
        store = await self._store.tenant(tenant, create=tenant == "")
        return [Legacy.from_doc(doc) for doc in await store.records(LEGACY_KIND)]

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            await self.flush()

    async def flush(self) -> None:
        """Commit what was forgotten or rewritten since the last flush."""
        forget, self._forget = self._forget, defaultdict(list)
        rewrite, self._rewrite = self._rewrite, {}
        for (tenant, kind), keys in forget.items():
            try:
                store = await self._store.tenant(tenant)
                await store.delete_records(kind, keys)
            except Exception:  # they will be replayed after a restart: duplicates, no loss
                _log.exception("forgetting %d journal records failed", len(keys))
        for (tenant, key), entry in rewrite.items():
            try:
                store = await self._store.tenant(tenant)
                await store.save_record(KIND, key, entry.to_doc())
            except Exception:
                _log.exception("rewriting journal record %s failed", key)
