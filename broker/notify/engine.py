"""Turning committed changes into notifications (GS CIM 009 v1.8.1 §5.8.6, §5.11).

Theory of operation. The entity service calls ``publish`` after each committed write. It looks
up the candidate subscriptions in the registry's index, runs the exact test
(``broker.ngsild.subscriptions.matching``) on them, and renders a notification for each one
that matches, with what the change deleted and, if asked, the previous values
(``notified_entity``). Throttled subscriptions pass through their ``Throttle``; joining ones
fetch their linked entities first, in a task; periodic ones (``timeInterval``) query the store
on their own timer.

With an ``Outbox``, notifications are saved before they are handed to the ``Dispatcher``, and
``publish`` returns the save for the write to await: a write is acknowledged only once the
notifications it caused are durable, and what was not delivered is sent again after a restart
(``resend_pending``). The dispatcher never blocks; delivery outcomes update the subscriptions'
status members through the registry.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from broker.ngsild.entity import EntityDoc
from broker.ngsild.query import EntityQuery
from broker.ngsild.render import View
from broker.ngsild.subscriptions.changes import Change, triggers
from broker.ngsild.subscriptions.matching import notifies
from broker.ngsild.subscriptions.notification import (
    JOINED,
    notification_body,
    notification_request,
    notification_view,
)
from broker.ngsild.subscriptions.notified_entity import notified_entity
from broker.ngsild.subscriptions.subscription import status
from broker.notify.dispatcher import Delivery, Dispatcher, Outcome
from broker.notify.outbox import Outbox, Pending
from broker.notify.registry import Held, Registry
from broker.notify.throttle import Throttle
from broker.store.base import Store

_log = logging.getLogger(__name__)
MQTT_NOTIFIER_KEYS = frozenset({"mqtt-version", "mqtt-qos"})
"""notifierInfo keys the MQTT sender understands; other keys are not sent on."""
PERIODIC_LIMIT = 1000
"""Most entities one periodic notification lists."""
LinkedLookup = Callable[[str, list[EntityDoc], View, int], Awaitable[dict[str, EntityDoc]]]
"""(tenant, entities, view, levels) → the entities they link to (``EntityService``)."""


class Notifier:
    """Matches changes against held subscriptions and hands notifications to the dispatcher."""

    def __init__(
        self,
        registry: Registry,
        dispatcher: Dispatcher,
        store: Store,
        now: Callable[[], str],
        *,
        linked: LinkedLookup | None = None,
        outbox: Outbox | None = None,
    ) -> None:
        self._registry = registry
        self._dispatcher = dispatcher
        self._store = store
        self._now = now
        self._linked = linked
        self._outbox = outbox
        self._staged: list[tuple[str, Pending]] = []
        self._saving: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def publish(self, change: Change) -> Awaitable[None] | None:
        """Notify the subscriptions ``change`` concerns; never raises.

        Returns what the write must await before it is acknowledged (saving its notifications
        in the outbox), or None.
        """
        try:
            self._publish(change)
        except Exception:  # a notification bug must never fail the write that caused it
            _log.exception("notifying change of %s failed", change.entity_id)
        return self._saving if self._staged else None

    def start_timers(self, tenant: str, held: Held) -> None:
        """Give ``held`` its throttle and periodic schedule, as its subscription asks."""
        sub = held.sub
        if sub.throttling:
            held.throttle = Throttle(sub.throttling, lambda docs: self._send(tenant, held, docs))
        if sub.time_interval:
            held.periodic = asyncio.create_task(
                self._every(tenant, sub.id, sub.time_interval), name=f"periodic {sub.id}"
            )

    async def resend_pending(self, tenants: list[str]) -> int:
        """Hand what the outbox kept from an earlier run to the dispatcher again."""
        if self._outbox is None:
            return 0
        count = 0
        for tenant in tenants:
            for pending in await self._outbox.pending(tenant):
                self._dispatch(tenant, pending)
                count += 1
        if count:
            _log.info("sending %d notifications again that were pending at the last stop", count)
        return count

    async def close(self) -> None:
        """Finish saving what is staged; cancel joins in progress."""
        if self._saving is not None:
            await asyncio.shield(self._saving)
        for task in list(self._tasks):
            task.cancel()

    def _publish(self, change: Change) -> None:
        index = self._registry.index
        if not index.could_concern(change.tenant, change.types):
            return
        fired = triggers(change)
        if not fired.entity and not fired.attributes:
            return
        tenant = change.tenant
        now = self._now()
        for subscription_id in index.candidates(tenant, change.types, fired.changed_attributes):
            held = self._registry.get(tenant, subscription_id)
            if held is None or not notifies(held.sub, held.filters, change, fired, now):
                continue
            doc = notified_entity(held.sub, change, fired, now)
            if held.throttle is not None:
                held.throttle.offer(doc)
            else:
                self._send(tenant, held, [doc])

    def _send(self, tenant: str, held: Held, docs: list[EntityDoc]) -> None:
        if held.sub.notification.join in JOINED and self._linked is not None:
            # Linked entities come from the store: fetch them off the write's path.
            self._spawn(self._send_joined(tenant, held, docs))
            return
        self._submit(tenant, held, docs, None)

    async def _send_joined(self, tenant: str, held: Held, docs: list[EntityDoc]) -> None:
        assert self._linked is not None
        levels = held.sub.notification.join_level or 1
        try:
            linked = await self._linked(tenant, docs, notification_view(held.sub), levels)
        except Exception:
            _log.exception("linked entities of a notification to %s not found", held.sub.id)
            linked = None
        self._submit(tenant, held, docs, linked)

    def _submit(
        self, tenant: str, held: Held, docs: list[EntityDoc], linked: dict[str, EntityDoc] | None
    ) -> None:
        sub = held.sub
        body = notification_body(sub, docs, held.terms, now=self._now(), linked=linked)
        payload, headers = notification_request(sub, body, held.terms, tenant=tenant)
        endpoint = sub.notification.endpoint
        if endpoint.uri.startswith("mqtt"):  # the MQTT sender reads MQTT-QoS / MQTT-Version
            headers.update(
                (key, value)
                for key, value in endpoint.notifier_info or ()
                if key.lower() in MQTT_NOTIFIER_KEYS
            )
        pending = Pending(uuid.uuid4().hex, sub.id, endpoint.uri, headers, payload)
        if self._outbox is None:
            self._dispatch(tenant, pending)
            return
        self._staged.append((tenant, pending))
        if self._saving is None:
            self._saving = asyncio.get_running_loop().create_task(self._save_staged())

    async def _save_staged(self) -> None:
        assert self._outbox is not None
        staged, self._staged, self._saving = self._staged, [], None
        by_tenant: dict[str, list[Pending]] = {}
        for tenant, pending in staged:
            by_tenant.setdefault(tenant, []).append(pending)
        for tenant, batch in by_tenant.items():
            try:
                await self._outbox.keep(tenant, batch)
            except Exception:  # deliver anyway; only a crash now could lose them
                _log.exception("saving %d notifications in the outbox failed", len(batch))
        for tenant, pending in staged:
            self._dispatch(tenant, pending)

    def _dispatch(self, tenant: str, pending: Pending) -> None:
        def done(outcome: Outcome) -> None:
            if outcome.shutdown:  # kept in the outbox: the next start sends it
                return
            self._registry.record(tenant, pending.subscription_id, outcome, self._now())
            if self._outbox is not None:
                self._outbox.finished(tenant, pending.key)

        def retried(outcome: Outcome) -> None:
            self._registry.record(tenant, pending.subscription_id, outcome, self._now())

        delivery = Delivery(
            pending.endpoint, pending.body, pending.headers, pending.subscription_id, done, retried
        )
        if not self._dispatcher.submit(delivery):
            _log.warning("notification to %s refused by the dispatcher", pending.endpoint)
            done(Outcome(ok=False, error="refused"))

    async def _every(self, tenant: str, subscription_id: str, interval: float) -> None:
        """Periodic notifications (``timeInterval``): every matching entity, each interval."""
        while True:
            await asyncio.sleep(interval)
            held = self._registry.get(tenant, subscription_id)
            if held is None:
                return
            if status(held.sub, self._now()) != "active":
                continue
            try:
                docs = await self._current_matches(tenant, held)
            except Exception:  # the store being unavailable must not end the schedule
                _log.exception("periodic notification of %s failed", subscription_id)
                continue
            if docs:
                self._send(tenant, held, docs)

    async def _current_matches(self, tenant: str, held: Held) -> list[EntityDoc]:
        store = await self._store.tenant(tenant)
        query = EntityQuery(
            selectors=held.sub.entities,
            q=held.filters.q,
            geo=held.filters.geo,
            scope=held.filters.scope,
            limit=PERIODIC_LIMIT,
        )
        page = await store.query(query)
        if len(page.entities) == PERIODIC_LIMIT:
            _log.warning(
                "periodic notification of %s lists only the first %d entities",
                held.sub.id,
                PERIODIC_LIMIT,
            )
        return page.entities

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
