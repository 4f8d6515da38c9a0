"""Subscriptions: their lifecycle, and turning committed changes into notifications (§5.8, §5.11).

Theory of operation. Subscriptions live in the tenant's store (so they survive restarts) and,
while the broker runs, in memory with their parsed filters and the @context they were created
with, filed in a ``SubscriptionIndex``. The entity service calls ``publish`` after each committed
write; ``publish`` only looks up candidates and tests them (``broker.ngsild.matching``), renders
the notification and hands the bytes to the ``Dispatcher``, which never blocks: delivery,
retries and overflow happen there, per endpoint. Delivery outcomes update the subscription's
status members (timesSent, lastSuccess, ...), which are saved back to the store in the
background, at most once per second per subscription.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from broker.contexts import ContextLoader
from broker.ngsild.changes import Change, triggers
from broker.ngsild.entity import EntityDoc
from broker.ngsild.errors import AlreadyExists, ResourceNotFound
from broker.ngsild.matching import index_keys, notifies
from broker.ngsild.names import format_timestamp
from broker.ngsild.notification import (
    JOINED,
    notification_body,
    notification_request,
    notification_view,
)
from broker.ngsild.notified_entity import notified_entity
from broker.ngsild.query import EntityQuery
from broker.ngsild.render import View
from broker.ngsild.subscription import Filters, Subscription, apply_patch, parse_filters, status
from broker.ngsild.subscription_index import SubscriptionIndex
from broker.ngsild.subscription_render import from_doc, to_doc
from broker.ngsild.terms import TermTable
from broker.notify.dispatcher import Delivery, Dispatcher, Outcome
from broker.services.throttle import Throttle
from broker.store.base import Store

_log = logging.getLogger(__name__)
_SAVE_EVERY = 1.0
_PERIODIC_LIMIT = 1000
"""Most entities one periodic notification lists."""
_Docs = list[EntityDoc]  # the service has a method named ``list``
LinkedLookup = Callable[[str, _Docs, View, int], Awaitable[dict[str, EntityDoc]]]
"""(tenant, entities, view, levels) → the entities they link to (``EntityService``)."""
SUBSCRIPTION = "subscription"
"""Record kind of subscriptions in the tenant store."""


@dataclass(slots=True)
class _Active:
    """A subscription as the engine holds it."""

    sub: Subscription
    filters: Filters
    terms: TermTable
    """Names in notifications: the subscription's ``jsonldContext``, else its own @context."""
    throttle: Throttle | None = None
    periodic: asyncio.Task[None] | None = None


class SubscriptionService:
    """Create, read, change and delete subscriptions, and notify them of changes."""

    def __init__(
        self,
        store: Store,
        contexts: ContextLoader,
        dispatcher: Dispatcher,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        linked: LinkedLookup | None = None,
    ) -> None:
        self._store = store
        self._contexts = contexts
        self._dispatcher = dispatcher
        self._clock = clock
        self._linked = linked
        self._joining: set[asyncio.Task[None]] = set()
        self._index = SubscriptionIndex()
        self._active: dict[tuple[str, str], _Active] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._saver: asyncio.Task[None] | None = None

    def now(self) -> str:
        return format_timestamp(self._clock())

    async def start(self) -> None:
        """Load every tenant's subscriptions and start saving status changes."""
        for tenant in ["", *await self._store.tenants()]:
            store = await self._store.tenant(tenant, create=tenant == "")
            for doc in await store.records(SUBSCRIPTION):
                sub = from_doc(doc)
                try:
                    await self._hold(tenant, sub)
                except Exception:  # one broken record must not stop the broker
                    _log.exception("subscription %s of tenant %r not loaded", sub.id, tenant)
        self._saver = asyncio.create_task(self._save_loop(), name="subscription-status")

    async def close(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
        for tenant, subscription_id in list(self._active):
            self._release(tenant, subscription_id)
        await self._save_dirty()

    def _release(self, tenant: str, subscription_id: str) -> None:
        """Stop the timers of the subscription's previous version, if any."""
        held = self._active.get((tenant, subscription_id))
        if held is None:
            return
        if held.throttle is not None:
            held.throttle.cancel()
        if held.periodic is not None:
            held.periodic.cancel()

    async def create(self, tenant: str, sub: Subscription) -> Subscription:
        """Create Subscription (§5.8.1); a taken id is AlreadyExists."""
        if (tenant, sub.id) in self._active:
            raise AlreadyExists(f"subscription {sub.id} already exists")
        store = await self._store.tenant(tenant, create=True)
        await self._hold(tenant, sub)
        await store.save_record(SUBSCRIPTION, sub.id, to_doc(sub))
        return sub

    def get(self, tenant: str, subscription_id: str) -> Subscription:
        """Retrieve Subscription (§5.8.3)."""
        held = self._active.get((tenant, subscription_id))
        if held is None:
            raise ResourceNotFound(f"subscription {subscription_id} does not exist")
        return held.sub

    def list(self, tenant: str) -> list[Subscription]:
        """Query Subscriptions (§5.8.4), in creation order."""
        return [held.sub for (t, _), held in self._active.items() if t == tenant]

    async def update(
        self, tenant: str, subscription_id: str, fragment: Any, terms: TermTable
    ) -> Subscription:
        """Update Subscription (§5.8.2)."""
        held = self._active.get((tenant, subscription_id))
        if held is None:
            raise ResourceNotFound(f"subscription {subscription_id} does not exist")
        sub = apply_patch(held.sub, fragment, terms, now=self.now())
        store = await self._store.tenant(tenant)
        await self._hold(tenant, sub)
        await store.save_record(SUBSCRIPTION, sub.id, to_doc(sub))
        return sub

    async def delete(self, tenant: str, subscription_id: str) -> None:
        """Delete Subscription (§5.8.5)."""
        if (tenant, subscription_id) not in self._active:
            raise ResourceNotFound(f"subscription {subscription_id} does not exist")
        self._release(tenant, subscription_id)
        del self._active[(tenant, subscription_id)]
        self._index.remove(tenant, subscription_id)
        self._dirty.discard((tenant, subscription_id))
        store = await self._store.tenant(tenant)
        await store.delete_record(SUBSCRIPTION, subscription_id)

    def publish(self, change: Change) -> None:
        """Notify the subscriptions ``change`` concerns (never awaits, never raises)."""
        try:
            self._publish(change)
        except Exception:  # a notification bug must never fail the write that caused it
            _log.exception("notifying change of %s failed", change.entity_id)

    def _publish(self, change: Change) -> None:
        if not len(self._index):  # the common case of a broker nobody subscribed to
            return
        fired = triggers(change)
        if not fired.entity and not fired.attributes:
            return
        tenant = change.tenant
        candidates = self._index.candidates(tenant, change.types, fired.changed_attributes)
        now = self.now()
        for subscription_id in candidates:
            held = self._active.get((tenant, subscription_id))
            if held is None or not notifies(held.sub, held.filters, change, fired, now):
                continue
            doc = notified_entity(held.sub, change, fired, now)
            if held.throttle is not None:
                held.throttle.offer(doc)
            else:
                self._send(tenant, held, [doc])

    def _send(self, tenant: str, held: _Active, docs: _Docs) -> None:
        if held.sub.notification.join in JOINED and self._linked is not None:
            # Linked entities come from the store: fetch them off the write's path.
            task = asyncio.create_task(self._send_joined(tenant, held, docs))
            self._joining.add(task)
            task.add_done_callback(self._joining.discard)
            return
        self._submit(tenant, held, docs, None)

    async def _send_joined(self, tenant: str, held: _Active, docs: _Docs) -> None:
        assert self._linked is not None
        levels = held.sub.notification.join_level or 1
        try:
            linked = await self._linked(tenant, docs, notification_view(held.sub), levels)
        except Exception:
            _log.exception("linked entities of a notification to %s not found", held.sub.id)
            linked = None
        self._submit(tenant, held, docs, linked)

    def _submit(
        self, tenant: str, held: _Active, docs: _Docs, linked: dict[str, EntityDoc] | None
    ) -> None:
        sub = held.sub
        body = notification_body(sub, docs, held.terms, now=self.now(), linked=linked)
        payload, headers = notification_request(sub, body, held.terms, tenant=tenant)
        endpoint = sub.notification.endpoint
        if endpoint.uri.startswith("mqtt"):  # the MQTT sender reads MQTT-QoS / MQTT-Version
            headers.update(endpoint.notifier_info or ())
        self._dispatcher.submit(
            Delivery(endpoint.uri, payload, headers, sub.id, self._recorder(tenant, sub.id))
        )

    async def _every(self, tenant: str, subscription_id: str, interval: float) -> None:
        """Periodic notifications (``timeInterval``): every matching entity, each interval."""
        while True:
            await asyncio.sleep(interval)
            held = self._active.get((tenant, subscription_id))
            if held is None:
                return
            if status(held.sub, self.now()) != "active":
                continue
            try:
                docs = await self._current_matches(tenant, held)
            except Exception:  # the store being unavailable must not end the schedule
                _log.exception("periodic notification of %s failed", subscription_id)
                continue
            if docs:
                self._send(tenant, held, docs)

    async def _current_matches(self, tenant: str, held: _Active) -> _Docs:
        store = await self._store.tenant(tenant)
        query = EntityQuery(
            selectors=held.sub.entities,
            q=held.filters.q,
            geo=held.filters.geo,
            scope=held.filters.scope,
            limit=_PERIODIC_LIMIT,
        )
        page = await store.query(query)
        if len(page.entities) == _PERIODIC_LIMIT:
            _log.warning(
                "periodic notification of %s lists only the first %d entities",
                held.sub.id,
                _PERIODIC_LIMIT,
            )
        return page.entities

    def _recorder(self, tenant: str, subscription_id: str) -> Callable[[Outcome], None]:
        def record(outcome: Outcome) -> None:
            held = self._active.get((tenant, subscription_id))
            if held is None:
                return
            now = self.now()
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
            self._dirty.add((tenant, subscription_id))

        return record

    async def _hold(self, tenant: str, sub: Subscription) -> None:
        terms = await self._terms(sub.context)
        shown = terms if sub.jsonld_context is None else await self._terms(sub.jsonld_context)
        held = _Active(sub, parse_filters(sub, terms), shown)
        self._release(tenant, sub.id)
        if sub.throttling:
            held.throttle = Throttle(sub.throttling, lambda docs: self._send(tenant, held, docs))
        if sub.time_interval:
            held.periodic = asyncio.create_task(
                self._every(tenant, sub.id, sub.time_interval), name=f"periodic {sub.id}"
            )
        self._active[(tenant, sub.id)] = held
        self._index.add(tenant, sub.id, index_keys(sub))

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
        dirty, self._dirty = self._dirty, set()
        for tenant, subscription_id in dirty:
            held = self._active.get((tenant, subscription_id))
            if held is None:
                continue
            try:
                store = await self._store.tenant(tenant)
                await store.save_record(SUBSCRIPTION, subscription_id, to_doc(held.sub))
            except Exception:
                _log.exception("saving the status of subscription %s failed", subscription_id)
