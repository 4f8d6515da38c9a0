"""Subscriptions: their lifecycle (GS CIM 009 v1.8.1 §5.8.1–§5.8.5).

Theory of operation. Subscriptions live in the tenant's store (record kind ``subscription``), so
they survive restarts, and, while the broker runs, in the ``Registry`` with their parsed filters
and term tables, where the ``Notifier`` finds them for each committed change. Delivery outcomes
update their status members (timesSent, lastSuccess, ...) in memory; those are saved back to the
store in the background, at most once per second per subscription.

With several replicas, ``changed`` applies what another replica saved (``broker.services.
following``): a new definition is held as if loaded, a deletion ends the subscription's
deliveries here too, and a save of status members only is ignored (each replica counts its own
deliveries; the saved members are those of the last replica that saved them).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from broker.auth.principal import principal_of
from broker.clock import Clock, timestamp, utc_now
from broker.contexts import ContextLoader
from broker.ngsild.errors import (
    AlreadyExists,
    BadRequestData,
    LdContextNotAvailable,
    ResourceNotFound,
    TooManyRequests,
)
from broker.ngsild.query.qlang import link_depth
from broker.ngsild.subscriptions.documents import from_doc, to_doc
from broker.ngsild.subscriptions.subscription import (
    Subscription,
    apply_patch,
    parse_filters,
    status,
)
from broker.ngsild.terms import TermTable
from broker.notify.dispatcher import Dispatcher
from broker.notify.engine import Notifier
from broker.notify.mqtt_message import EndpointError, parse_endpoint, split_notifier_info
from broker.notify.registry import SINK_SCHEME, GrantLookup, Held, Registry
from broker.notify.replicas import Replicas
from broker.services.following import same_definition
from broker.store.base import RecordChange, Store
from broker.store.everywhere import every_tenant, records_everywhere

_log = logging.getLogger(__name__)
_SAVE_EVERY = 1.0
QUOTA_RETRY_AFTER = 60
"""Seconds a client over a count quota is told to wait (something must be deleted first)."""
SUBSCRIPTION = "subscription"
"""Record kind of subscriptions in the tenant store."""
STATUS_MEMBERS = frozenset(
    {"times_sent", "times_failed", "last_notification", "last_success", "last_failure"}
)
"""What each replica counts for itself: a save that changes only these is not a new definition."""


class SubscriptionService:
    """Create, read, change and delete subscriptions; their notifier does the notifying."""

    def __init__(
        self,
        store: Store,
        contexts: ContextLoader,
        dispatcher: Dispatcher,
        clock: Clock = utc_now,
        *,
        durable: bool = True,
        grants: GrantLookup | None = None,
        replicas: Replicas | None = None,
    ) -> None:
        self._store = store
        self._contexts = contexts
        self._clock = clock
        self._registry = Registry(grants)
        self.notifier = Notifier(
            self._registry, dispatcher, store, clock, durable=durable, replicas=replicas
        )
        """The engine; the entity service hands it every write."""
        self._saver: asyncio.Task[None] | None = None

    def now(self) -> str:
        return timestamp(self._clock)

    async def start(self) -> None:
        """Load every tenant's subscriptions, notify what was owed at the last stop, start
        saving status members."""
        async for tenant, doc in records_everywhere(self._store, SUBSCRIPTION):
            sub = from_doc(doc)
            try:
                await self._hold(tenant, sub, loading=True)
            except Exception:  # one broken record must not stop the broker
                _log.exception("subscription %s of tenant %r not loaded", sub.id, tenant)
        await self.notifier.start(await every_tenant(self._store))
        self._saver = asyncio.create_task(self._save_loop(), name="subscription-status")

    async def close(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
        await self.notifier.close()
        self._registry.close()
        await self._save_dirty()

    async def drop_tenant(self, tenant: str) -> None:
        """Forget every subscription of a deleted tenant (its store is dropped after this)."""
        for key_tenant, subscription_id in list(self._registry.items):
            if key_tenant == tenant:
                self._registry.remove(tenant, subscription_id)
                self.notifier.forget(tenant, subscription_id)

    kinds = (SUBSCRIPTION,)

    async def changed(self, change: RecordChange) -> None:
        """Another replica saved or deleted a subscription: hold what the store now holds."""
        tenant, doc = change.tenant, change.doc
        held = self._registry.get(tenant, change.key)
        if doc is None:
            if held is not None and not held.transient:
                self._registry.remove(tenant, change.key)
                self.notifier.forget(tenant, change.key)
            return
        held_doc = None if held is None else orjson.loads(orjson.dumps(to_doc(held.sub)))
        if held_doc is not None and same_definition(held_doc, doc, STATUS_MEMBERS):
            return
        try:
            sub = from_doc(doc)
            await self._hold(tenant, sub, loading=True)
        except Exception:  # one broken record must not stop the following
            _log.exception("subscription %s of tenant %r not followed", change.key, tenant)
            return
        if status(sub, self.now()) != "active":
            self.notifier.forget(tenant, sub.id)

    def held_keys(self, kind: str) -> set[tuple[str, str]]:
        return {key for key, held in self._registry.items.items() if not held.transient}

    def grants_changed(self, owner: str) -> None:
        """Grants of ``owner`` were revoked: subscriptions no grant covers any more stop at
        once (what they had queued or was retrying included)."""
        for (tenant, subscription_id), held in list(self._registry.items.items()):
            if tenant == owner and not self._registry.still_shared(tenant, held):
                self.notifier.forget(tenant, subscription_id)

    async def close_journal(self) -> None:
        """Forget what was delivered (call after the dispatcher has closed)."""
        await self.notifier.journal.close()

    async def create(self, tenant: str, sub: Subscription, *, quota: int = 0) -> Subscription:
        """Create Subscription (§5.8.1); a taken id is AlreadyExists, more than ``quota``
        subscriptions in the tenant (0: no limit) TooManyRequests."""
        _refuse_sink(sub)
        if self._registry.get(tenant, sub.id) is not None:
            raise AlreadyExists(f"subscription {sub.id} already exists")
        if quota and self._registry.count(tenant) >= quota:
            raise TooManyRequests(
                f"the tenant has its quota of {quota} subscriptions", QUOTA_RETRY_AFTER
            )
        store = await self._store.tenant(tenant, create=True)
        await self._hold(tenant, sub)
        await store.save_record(SUBSCRIPTION, sub.id, to_doc(sub))
        return sub

    def get(self, tenant: str, subscription_id: str) -> Subscription:
        """Retrieve Subscription (§5.8.3)."""
        held = self._registry.get(tenant, subscription_id)
        if held is None:
            raise ResourceNotFound(f"subscription {subscription_id} does not exist")
        return held.sub

    def list(self, tenant: str) -> list[Subscription]:
        """Query Subscriptions (§5.8.4), in creation order."""
        return self._registry.of_tenant(tenant)

    def count_by_tenant(self) -> Counter[str]:
        """How many subscriptions each tenant has (for metrics)."""
        return Counter(
            tenant for (tenant, _), held in self._registry.items.items() if not held.transient
        )

    async def update(
        self,
        tenant: str,
        subscription_id: str,
        fragment: Any,
        terms: TermTable,
        *,
        check: Callable[[Subscription], Awaitable[None]] | None = None,
    ) -> Subscription:
        """Update Subscription (§5.8.2); ``check`` may refuse the result before it is kept."""
        held = self._registry.get(tenant, subscription_id)
        if held is None:
            raise ResourceNotFound(f"subscription {subscription_id} does not exist")
        sub = apply_patch(held.sub, fragment, terms, now=self.now())
        _refuse_sink(sub)
        if check is not None:
            await check(sub)
        store = await self._store.tenant(tenant)
        await self._hold(tenant, sub)
        if status(sub, self.now()) != "active":  # paused: what it owed ends too, for good
            self.notifier.forget(tenant, sub.id)
        await store.save_record(SUBSCRIPTION, sub.id, to_doc(sub))
        return sub

    async def delete(self, tenant: str, subscription_id: str) -> None:
        """Delete Subscription (§5.8.5)."""
        if self._registry.remove(tenant, subscription_id) is None:
            raise ResourceNotFound(f"subscription {subscription_id} does not exist")
        self.notifier.forget(tenant, subscription_id)
        store = await self._store.tenant(tenant)
        await store.delete_record(SUBSCRIPTION, subscription_id)

    async def hold_transient(self, tenant: str, sub: Subscription) -> None:
        """Hold ``sub``, whose endpoint is an in-process sink, in memory only: it notifies
        like any subscription, but is never saved, journaled or listed."""
        if not sub.notification.endpoint.uri.startswith(SINK_SCHEME):
            raise ValueError("only sink subscriptions are transient")
        await self._hold(tenant, sub)

    def release_transient(self, tenant: str, subscription_id: str) -> None:
        """End a transient subscription and whatever it still had queued."""
        if self._registry.remove(tenant, subscription_id) is not None:
            self.notifier.forget(tenant, subscription_id)

    async def _hold(self, tenant: str, sub: Subscription, *, loading: bool = False) -> None:
        _check_mqtt_endpoint(sub)
        terms = await self._terms(sub.context)
        shown = terms
        if sub.jsonld_context is not None:
            try:
                shown = await self._terms(sub.jsonld_context)
            except LdContextNotAvailable:
                if not loading:
                    raise
                # Kept subscriptions still notify when their jsonldContext went away (an
                # ImplicitlyCreated one deleted): compacted with their own @context instead.
                _log.warning(
                    "jsonldContext %s of subscription %s is not available; notifying with "
                    "the subscription's own @context",
                    sub.jsonld_context,
                    sub.id,
                )
                shown = terms
            if shown is self._contexts.core and sub.jsonld_context != shown.link_url:
                shown = shown.advertised_as(sub.jsonld_context)  # another core version
        filters = parse_filters(sub, terms)
        if filters.q is not None and link_depth(filters.q):
            # Evaluating it would need a store read per candidate on the write path; refusing
            # is better than accepting a subscription that would never notify.
            raise BadRequestData(
                "q terms that follow a Relationship (rel{Type:attr}) are not supported in "
                "subscriptions yet"
            )
        shared_by = None if sub.shared_by is None else principal_of(sub.shared_by)
        held = Held(sub, filters, shown, shared_by=shared_by)
        self._registry.put(tenant, held)
        self.notifier.start_timers(tenant, held)

    async def _terms(self, context: Any) -> TermTable:
        if context is None:
            return self._contexts.core
        if isinstance(context, str):
            return await self._contexts.from_link(context)
        return await self._contexts.from_body(context)

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(_SAVE_EVERY)
            await self._save_dirty()

    async def _save_dirty(self) -> None:
        dirty, self._registry.dirty = self._registry.dirty, set()
        for tenant, subscription_id in dirty:
            held = self._registry.get(tenant, subscription_id)
            if held is None:
                continue
            try:
                store = await self._store.tenant(tenant)
                await store.save_record(SUBSCRIPTION, subscription_id, to_doc(held.sub))
            except Exception:
                _log.exception("saving the status of subscription %s failed", subscription_id)


def _refuse_sink(sub: Subscription) -> None:
    """Sinks are the broker's own receivers (dashboard streams); a client may not name one."""
    if sub.notification.endpoint.uri.lower().startswith(SINK_SCHEME):
        raise BadRequestData("notification endpoint: the sink scheme is internal to the broker")


def _check_mqtt_endpoint(sub: Subscription) -> None:
    """Refuse MQTT endpoints that could never be published to (no topic, wildcards, bad QoS)."""
    endpoint = sub.notification.endpoint
    if not endpoint.uri.lower().startswith("mqtt"):
        return
    try:
        parse_endpoint(endpoint.uri)
        split_notifier_info(dict(endpoint.notifier_info or ()))
    except EndpointError as exc:
        raise BadRequestData(f"notification endpoint: {exc}") from None
