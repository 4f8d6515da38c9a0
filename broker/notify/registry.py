"""The subscriptions a running broker holds in memory, shared by their service and the notifier.

Each is kept with what notifying needs at hand: its filters parsed with its own @context, the
term table its notifications are compacted with, and its timers. The registry also keeps the
index that finds candidate subscriptions for a change, and which subscriptions' status members
changed since they were last saved.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from broker.ngsild.subscriptions.index import SubscriptionIndex
from broker.ngsild.subscriptions.matching import index_keys
from broker.ngsild.subscriptions.subscription import Filters, Subscription
from broker.ngsild.terms import TermTable
from broker.notify.dispatcher import Outcome
from broker.notify.throttle import Throttle

Key = tuple[str, str]
"""(tenant, subscription id)."""


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


class Registry:
    """Held subscriptions by (tenant, id), their matching index, and unsaved status changes."""

    def __init__(self) -> None:
        self.items: dict[Key, Held] = {}
        self.index = SubscriptionIndex()
        self.dirty: set[Key] = set()

    def get(self, tenant: str, subscription_id: str) -> Held | None:
        return self.items.get((tenant, subscription_id))

    def put(self, tenant: str, held: Held) -> None:
        """Hold ``held`` (replacing and stopping an earlier version of the same subscription)."""
        previous = self.items.get((tenant, held.sub.id))
        if previous is not None:
            previous.stop_timers()
        self.items[(tenant, held.sub.id)] = held
        self.index.add(tenant, held.sub.id, index_keys(held.sub))

    def remove(self, tenant: str, subscription_id: str) -> Held | None:
        held = self.items.pop((tenant, subscription_id), None)
        if held is not None:
            held.stop_timers()
            self.index.remove(tenant, subscription_id)
            self.dirty.discard((tenant, subscription_id))
        return held

    def of_tenant(self, tenant: str) -> list[Subscription]:
        """The tenant's subscriptions in creation order."""
        return [held.sub for (t, _), held in self.items.items() if t == tenant]

    def record(self, tenant: str, subscription_id: str, outcome: Outcome, now: str) -> None:
        """Count a delivery's outcome in the subscription's status members."""
        held = self.items.get((tenant, subscription_id))
        if held is None:
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
