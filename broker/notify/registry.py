"""The subscriptions a running broker holds in memory, shared by their service and the engine.

Each is kept with what notifying needs at hand: its filters parsed with its own @context, the
term table its notifications are compacted with, and its timers. The registry also keeps the
index that finds candidate subscriptions for a change, and which subscriptions' status members
changed since they were last saved.

Subscriptions of another town, made through a sharing grant, see each change as the grantee
sees the entity: its projection under the grants that apply now (``seen``), so they match and
notify only what is shared, and nothing once the grant is revoked.

Threads. Matching runs inside each write's transaction, in the store's writer thread (see
``broker.notify.journal``), while subscriptions are created and deleted on the event loop. The
index's sets are therefore changed and read under one lock; a ``Held`` is replaced whole, never
changed in place except for its status counters, which matching does not read.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from broker.auth.grants import Grant, shared_view
from broker.auth.principal import Principal
from broker.ngsild.entity import EntityDoc
from broker.ngsild.subscriptions.changes import Change, Fired, triggers
from broker.ngsild.subscriptions.index import SubscriptionIndex
from broker.ngsild.subscriptions.matching import index_keys, notifies
from broker.ngsild.subscriptions.subscription import Filters, Subscription, status
from broker.ngsild.terms import TermTable
from broker.notify.dispatcher import Outcome
from broker.notify.throttle import Throttle

SINK_SCHEME = "sink:"
"""Endpoints of in-process receivers (``broker.dashboard.sink``); clients cannot name them."""
Key = tuple[str, str]
"""(tenant, subscription id)."""
GrantLookup = Callable[[str, Principal], Sequence[Grant]]
"""(owner tenant, grantee) → the grants that let the grantee subscribe there now."""


@dataclass(slots=True)
class Held:
    """A subscription as the engine holds it."""

    sub: Subscription
    filters: Filters
    terms: TermTable
    """Names in notifications: the subscription's ``jsonldContext``, else its own @context."""
    throttle: Throttle | None = None
    periodic: asyncio.Task[None] | None = None
    shared_by: Principal | None = None
    """The grantee, for a subscription made through a sharing grant."""

    def stop_timers(self) -> None:
        if self.throttle is not None:
            self.throttle.cancel()
        if self.periodic is not None:
            self.periodic.cancel()

    def active(self, now: str) -> bool:
        return status(self.sub, now) == "active"

    @property
    def transient(self) -> bool:
        """Held in memory only, for an in-process sink (a dashboard stream): never saved,
        never journaled, not listed, never matched (its changes reach the stream through the
        engine's ``Feed``); it ends with the connection that made it."""
        return self.sub.notification.endpoint.uri.startswith(SINK_SCHEME)


class Registry:
    """Held subscriptions by (tenant, id), their matching index, and unsaved status changes."""

    def __init__(self, grants: GrantLookup | None = None) -> None:
        self._grants = grants
        self.items: dict[Key, Held] = {}
        self.dirty: set[Key] = set()
        self._index = SubscriptionIndex()
        self._tenants: dict[str, int] = {}
        self._transient: dict[str, int] = {}
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
            if held.transient:
                self._transient[tenant] = self._transient.get(tenant, 0) + 1
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
            if held.transient:
                self._transient[tenant] -= 1
        return held

    def could_concern(self, tenant: str, before: EntityDoc | None, after: EntityDoc | None) -> bool:
        """Whether any subscription of ``tenant`` might care about an entity of these types.

        Called for every write in a tenant with subscriptions, from the store's writer thread:
        membership tests only (each atomic), no lock and nothing built.
        """
        index = self._index  # plain ifs: generators would cost more than the whole test
        if before is not None and index.could_concern(tenant, before["type"]):
            return True
        return after is not None and index.could_concern(tenant, after["type"])

    def match(self, change: Change, now: str) -> tuple[Fired, list[str]]:
        """What ``change`` fires and which subscriptions it notifies (safe from any thread)."""
        tenant = change.tenant
        fired = triggers(change)
        if not fired.entity and not fired.attributes:
            return fired, []
        with self._lock:
            candidates = self._index.candidates(tenant, change.types, fired.changed_attributes)
        found = []
        for subscription_id in sorted(candidates):
            held = self.items.get((tenant, subscription_id))
            if held is None or held.transient:  # fed by the engine's feed, not notified
                continue
            seen = self.seen(held, change, fired)
            if seen is not None and notifies(held.sub, held.filters, *seen, now):
                found.append(subscription_id)
        return fired, found

    def seen(self, held: Held, change: Change, fired: Fired) -> tuple[Change, Fired] | None:
        """``change`` as ``held``'s subscriber sees it; None when it sees nothing of it."""
        if held.shared_by is None:
            return change, fired
        return self.seen_through_grants(held.shared_by, change)

    def seen_through_grants(
        self, grantee: Principal, change: Change
    ) -> tuple[Change, Fired] | None:
        """``change`` projected to what the grants of its tenant show ``grantee`` now."""
        grants = () if self._grants is None else self._grants(change.tenant, grantee)
        if not grants:
            return None
        before = None if change.before is None else shared_view(change.before, grants)
        after = None if change.after is None else shared_view(change.after, grants)
        if before is None and after is None:
            return None
        seen = Change(change.tenant, before, after)
        return seen, triggers(seen)

    def shown(self, tenant: str, held: Held, docs: list[EntityDoc]) -> list[EntityDoc]:
        """What ``held``'s subscriber may see of ``docs`` (periodic notifications)."""
        if held.shared_by is None:
            return docs
        grants = () if self._grants is None else self._grants(tenant, held.shared_by)
        return [view for doc in docs if (view := shared_view(doc, grants)) is not None]

    def still_shared(self, tenant: str, held: Held) -> bool:
        """Whether a grant still lets ``held``'s subscriber subscribe (always for others)."""
        if held.shared_by is None:
            return True
        return bool(self._grants and self._grants(tenant, held.shared_by))

    def count(self, tenant: str) -> int:
        """How many subscriptions ``tenant`` has (its dashboards' streams not counted)."""
        return self._tenants.get(tenant, 0) - self._transient.get(tenant, 0)

    def of_tenant(self, tenant: str) -> list[Subscription]:
        """The tenant's subscriptions in creation order."""
        return [
            held.sub for (t, _), held in self.items.items() if t == tenant and not held.transient
        ]

    def only_transient(self, tenant: str) -> bool:
        """Whether all of ``tenant``'s subscriptions are transient (dashboards' streams)."""
        transient = self._transient.get(tenant, 0)
        return bool(transient) and transient == self._tenants.get(tenant, 0)

    def owes_record(self, tenant: str, subscription_ids: list[str]) -> bool:
        """Whether a change notifying ``subscription_ids`` must be journaled: transient
        subscriptions have nothing to send again after a restart."""
        for subscription_id in subscription_ids:
            held = self.items.get((tenant, subscription_id))
            if held is None or not held.transient:
                return True
        return False

    def record(self, tenant: str, subscription_id: str, outcome: Outcome, now: str) -> None:
        """Count a delivery's outcome in the subscription's status members."""
        held = self.items.get((tenant, subscription_id))
        if held is None or outcome.cancelled or held.transient:
            return  # a transient subscription's status is never shown
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
