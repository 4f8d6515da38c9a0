"""The subscriptions a running broker holds in memory, shared by their service and the engine.

Each is kept with what notifying needs at hand: its filters parsed with its own @context, the
term table its notifications are compacted with, and its timers. The registry also keeps the
index that finds candidate subscriptions for a change, and which subscriptions' status members
changed since they were last saved.

Threads. Matching runs inside each write's transaction, in the store's writer thread (see
``broker.notify.journal``), while subscriptions are created and deleted on the event loop. The
index's sets are therefore changed and read under one lock; a ``Held`` is replaced whole, never
changed in place except for its status counters, which matching does not read.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, replace

from broker.ngsild.subscriptions.changes import Change, Fired, triggers
from broker.ngsild.subscriptions.index import SubscriptionIndex
from broker.ngsild.subscriptions.matching import index_keys, notifies
from broker.ngsild.subscriptions.subscription import Filters, Subscription, status
from broker.ngsild.terms import TermTable
from broker.notify.dispatcher import Outcome
from broker.notify.throttle import Throttle

Key = tuple[str, str]
"""(tenant, subscription id)."""
_NOTHING = Fired(frozenset(), {})


@dataclass(slots=True)
class Held:
    """A subscription as the engine holds it."""

    sub: Subscription
    filters: Filters
    terms: TermTable
    """Names in notifications: the subscription's ``jsonldContext``, else its own @context."""
    throttle: Throttle | None = None
    periodic: asyncio.Task[None] | None = None

    def stop_timers(self) -> None:
        if self.throttle is not None:
            self.throttle.cancel()
        if self.periodic is not None:
            self.periodic.cancel()

    def active(self, now: str) -> bool:
        return status(self.sub, now) == "active"


class Registry:
    """Held subscriptions by (tenant, id), their matching index, and unsaved status changes."""

    def __init__(self) -> None:
        self.items: dict[Key, Held] = {}
        self.dirty: set[Key] = set()
        self._index = SubscriptionIndex()
        self._tenants: dict[str, int] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str, subscription_id: str) -> Held | None:
        return self.items.get((tenant, subscription_id))

    def has_tenant(self, tenant: str) -> bool:
        """Whether ``tenant`` has any subscription (most writes elsewhere skip all matching)."""
        return tenant in self._tenants

    def put(self, tenant: str, held: Held) -> None:
        """Hold ``held`` (replacing and stopping an earlier version of the same subscription)."""
        key = (tenant, held.sub.id)
        previous = self.items.get(key)
        if previous is not None:
            previous.stop_timers()
        else:
            self._tenants[tenant] = self._tenants.get(tenant, 0) + 1
        with self._lock:
            self.items[key] = held
            self._index.add(tenant, held.sub.id, index_keys(held.sub))

    def remove(self, tenant: str, subscription_id: str) -> Held | None:
        key = (tenant, subscription_id)
        with self._lock:
            held = self.items.pop(key, None)
            if held is not None:
                self._index.remove(tenant, subscription_id)
        if held is not None:
            held.stop_timers()
            self.dirty.discard(key)
            self._tenants[tenant] -= 1
            if not self._tenants[tenant]:
                del self._tenants[tenant]
        return held

    def match(self, change: Change, now: str) -> tuple[Fired, list[str]]:
        """What ``change`` fires and which subscriptions it notifies (safe from any thread)."""
        tenant = change.tenant
        with self._lock:
            if not self._index.could_concern(tenant, change.types):
                return _NOTHING, []
        fired = triggers(change)
        if not fired.entity and not fired.attributes:
            return fired, []
        with self._lock:
            candidates = self._index.candidates(tenant, change.types, fired.changed_attributes)
        found = []
        for subscription_id in sorted(candidates):
            held = self.items.get((tenant, subscription_id))
            if held is not None and notifies(held.sub, held.filters, change, fired, now):
                found.append(subscription_id)
        return fired, found

    def of_tenant(self, tenant: str) -> list[Subscription]:
        """The tenant's subscriptions in creation order."""
        return [held.sub for (t, _), held in self.items.items() if t == tenant]

    def record(self, tenant: str, subscription_id: str, outcome: Outcome, now: str) -> None:
        """Count a delivery's outcome in the subscription's status members."""
        held = self.items.get((tenant, subscription_id))
        if held is None or outcome.cancelled:
            return
        sub = held.sub
        if outcome.ok:
            sub = replace(
                sub, times_sent=sub.times_sent + 1, last_notification=now, last_success=now
            )
        else:
            sub = replace(
                sub, times_failed=sub.times_failed + 1, last_notification=now, last_failure=now
            )
        held.sub = sub
        self.dirty.add((tenant, subscription_id))

    def close(self) -> None:
        for held in self.items.values():
            held.stop_timers()
