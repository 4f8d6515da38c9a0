"""The notification engine: from a committed change to deliveries (GS CIM 009 v1.8.1 §5.8.6,
§5.11).

Theory of operation — the one path a change takes:

1. ``EntityService`` asks ``entry(tenant)`` before each write and passes the ``Entry`` to the
   store as the write's journal. Inside the write's transaction it matches the change against
   the held subscriptions (``Registry.match``: index lookup, then the exact pure test) and, if any
   is notified, has the change saved with the entity (``broker.notify.journal``).
2. After the commit, ``committed(entry)`` renders a notification per notified subscription
   (``broker.ngsild.subscriptions.notified_entity`` / ``notification``): straight away, through the
   subscription's ``Throttle``, or after fetching linked entities for a ``join``.
3. ``_dispatch`` hands each to the ``Dispatcher``, which never blocks. Its outcome updates the
   subscription's status members and releases the journal entry; the last release forgets it.

In-process receivers (the dashboard's streams) take another, shorter path: their transient
subscriptions only make the tenant's writes of their types produce an ``Entry`` and are never
matched; every committed change goes to the ``Feed`` as it is, which coalesces and renders it
its own way. Nothing of steps 2 and 3 runs for them.

A delivery is asked before every attempt whether its subscription still exists and is active,
and ``forget`` (a subscription deleted or paused) cancels its deliveries at once; so nothing is
sent for a subscription after it ended, not even a retry, not even after a restart. Periodic
notifications (``timeInterval``) query the store on their own timer and are not journaled:
after a restart the next period sends the current state again.

With several replicas on one store (``replicas``, ``broker.notify.replicas``), a replica
replays at start only the journal records it owns or claimed from a replica that is gone,
claims such orphans every lease term while it runs, and sends throttled and periodic
notifications only under their leases.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from broker.clock import Clock, timestamp, utc_now
from broker.ngsild.entity import EntityDoc
from broker.ngsild.query import EntityQuery
from broker.ngsild.subscriptions.changes import Change
from broker.ngsild.subscriptions.notification import (
    JOINED,
    notification_body,
    notification_request,
    notification_view,
)
from broker.ngsild.subscriptions.notified_entity import notified_entity
from broker.notify.dispatcher import Delivery, Dispatcher, Outcome
from broker.notify.journal import KIND, Entry, Journal
from broker.notify.registry import Held, Registry
from broker.notify.replicas import Gate, Replicas, throttle_retry
from broker.notify.throttle import Throttle
from broker.store.base import Store
from broker.store.everywhere import every_tenant
from broker.store.linked import linked_entities

_log = logging.getLogger(__name__)
MQTT_NOTIFIER_KEYS = frozenset({"mqtt-version", "mqtt-qos"})
"""notifierInfo keys the MQTT sender understands; other keys are not sent on."""
PERIODIC_LIMIT = 1000
"""Most entities one periodic notification lists."""


class Feed(Protocol):
    """Takes every committed change of the tenants it has receivers in (``Notifier.feed``)."""

    def changed(self, change: Change) -> None:
        """Never waits and never raises."""
        ...


class Notifier:
    """Matches changes against held subscriptions and hands notifications to the dispatcher.

    Args:
        registry: The held subscriptions.
        dispatcher: Carries the notifications.
        store: For periodic notifications, joins and the journal.
        clock: The time notifications and status members show.
        durable: Journal changes with their writes (``TOSHI_NOTIFICATIONS__DURABLE``).
        replicas: This replica among others sharing the store (None: the only process).
    """

    def __init__(
        self,
        registry: Registry,
        dispatcher: Dispatcher,
        store: Store,
        clock: Clock = utc_now,
        *,
        durable: bool = True,
        replicas: Replicas | None = None,
    ) -> None:
        self._registry = registry
        self._replicas = replicas
        self._dispatcher = dispatcher
        self._store = store
        self._clock = clock
        self._durable = durable
        self.journal = Journal(store)
        self.feed: Feed | None = None
        """Where changes of tenants with transient subscriptions also go (set by the app)."""
        self._tasks: set[asyncio.Task[None]] = set()

    def _now(self) -> str:
        return timestamp(self._clock)

    def entry(self, tenant: str) -> Entry | None:
        """The journal of a write about to happen in ``tenant``; None when ``tenant`` has no
        subscription at all (then the write does no notification work)."""
        if not self._registry.has_tenant(tenant):
            return None
        return Entry(tenant, self._registry, self._clock, durable=self._durable)

    def committed(self, entry: Entry) -> None:
        """Notify what the committed write of ``entry`` owes; never raises (a notification bug
        must not fail the write that caused it)."""
        try:
            self._notify(entry)
        except Exception:
            _log.exception("notifying a change in tenant %r failed", entry.tenant)

    def forget(self, tenant: str, subscription_id: str) -> None:
        """``subscription_id`` was deleted or paused: end its deliveries at once, for good."""
        self._dispatcher.cancel(tenant, subscription_id)
        for entry in self.journal.open_entries(tenant):
            self.journal.drop_subscription(entry, subscription_id)

    def start_timers(self, tenant: str, held: Held) -> None:
        """Give ``held`` its throttle and periodic schedule, as its subscription asks."""
        sub = held.sub
        if sub.throttling:

            def send(docs: list[EntityDoc], entries: list[Entry]) -> None:
                self._send(tenant, held, docs, entries)

            replicas = self._replicas
            if replicas is None:
                held.throttle = Throttle(sub.throttling, send, self.journal.release)
            else:
                gate = replicas.throttle_gate(tenant, sub.id, sub.throttling)
                retry = throttle_retry(sub.throttling)
                held.throttle = Throttle(sub.throttling, send, self.journal.release, gate, retry)
        if sub.time_interval:
            periodic = None
            if self._replicas is not None:
                periodic = self._replicas.periodic_gate(tenant, sub.id, sub.time_interval)
            held.periodic = asyncio.create_task(
                self._every(tenant, sub.id, sub.time_interval, periodic), name=f"periodic {sub.id}"
            )

    async def start(self, tenants: list[str]) -> int:
        """Replay what an earlier run left owed; how many changes and notifications."""
        await self.journal.start()
        count = 0
        for tenant in tenants:
            entries = await self.journal.entries(tenant)
            if self._replicas is not None and entries:
                keys = {entry.key for entry in entries}
                mine = set(await self._replicas.at_start(tenant, KIND, [k for k in keys if k]))
                entries = [entry for entry in entries if entry.key in mine]
            for entry in entries:
                self.committed(entry)
                count += 1
            for legacy in await self.journal.legacy(tenant):
                held = self._registry.get(tenant, legacy.subscription_id)
                if held is None or not held.active(self._now()):
                    self.journal.forget_legacy(tenant, legacy.key)
                    continue

                def forget(tenant: str = tenant, key: str = legacy.key) -> None:
                    self.journal.forget_legacy(tenant, key)

                self._dispatch(tenant, held, legacy.endpoint, legacy.body, legacy.headers, forget)
                count += 1
        if count:
            _log.info("notifying again %d changes that were owed at the last stop", count)
        if self._replicas is not None:
            self._spawn(self._take_over(self._replicas))
        return count

    async def _take_over(self, replicas: Replicas) -> None:
        """Every lease term, claim and notify what replicas that are gone left owed."""
        while True:
            await asyncio.sleep(replicas.term)
            try:
                for tenant in await every_tenant(self._store):
                    for doc in await replicas.orphaned(tenant, KIND):
                        _log.info("notifying change %s left by a replica that is gone", doc["key"])
                        self.committed(Entry.from_doc(tenant, doc))
            except Exception:  # the store unavailable: try again next term
                _log.exception("taking over the journal of replicas that are gone failed")

    async def close(self) -> None:
        """Cancel joins in progress (their changes stay journaled)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _notify(self, entry: Entry) -> None:
        change, fired = entry.change, entry.fired
        if change is not None and self.feed is not None:
            self.feed.changed(change)
        if change is None or fired is None or not entry.subscriptions:
            return
        now = self._now()
        self.journal.hold(entry)  # open while notifications are handed out
        try:
            for subscription_id in entry.subscriptions:
                held = self._registry.get(entry.tenant, subscription_id)
                if held is None or not held.active(now):
                    continue
                seen = self._registry.seen(held, change, fired)
                if seen is None:  # a grant was revoked since the write
                    continue
                doc = notified_entity(held.sub, *seen, now)
                self.journal.hold(entry)
                if held.throttle is not None:
                    held.throttle.offer(doc, entry)
                else:
                    self._send(entry.tenant, held, [doc], [entry])
        finally:
            self.journal.release(entry)

    def _send(self, tenant: str, held: Held, docs: list[EntityDoc], entries: list[Entry]) -> None:
        if held.sub.notification.join in JOINED:
            # Linked entities come from the store: fetch them off the write's path.
            self._spawn(self._send_joined(tenant, held, docs, entries))
            return
        self._submit(tenant, held, docs, entries, None)

    async def _send_joined(
        self, tenant: str, held: Held, docs: list[EntityDoc], entries: list[Entry]
    ) -> None:
        levels = held.sub.notification.join_level or 1
        try:
            store = await self._store.tenant(tenant)
            found = await linked_entities(store, docs, notification_view(held.sub), levels)
            # A subscription made through a grant is shown only linked entities shared too.
            shown = self._registry.shown(tenant, held, list(found.values()))
            linked = {doc["id"]: doc for doc in shown}
        except Exception:
            _log.exception("linked entities of a notification to %s not found", held.sub.id)
            linked = None
        self._submit(tenant, held, docs, entries, linked)

    def _submit(
        self,
        tenant: str,
        held: Held,
        docs: list[EntityDoc],
        entries: list[Entry],
        linked: dict[str, EntityDoc] | None,
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

        def release() -> None:
            for entry in entries:
                self.journal.release(entry)

        self._dispatch(tenant, held, endpoint.uri, payload, headers, release)

    def _dispatch(
        self,
        tenant: str,
        held: Held,
        endpoint: str,
        body: bytes,
        headers: dict[str, str],
        finished: Callable[[], None],
    ) -> None:
        subscription_id = held.sub.id

        def done(outcome: Outcome) -> None:
            if outcome.shutdown:  # still journaled: the next start sends it
                return
            self._registry.record(tenant, subscription_id, outcome, self._now())
            finished()

        def retried(outcome: Outcome) -> None:
            self._registry.record(tenant, subscription_id, outcome, self._now())

        def wanted() -> bool:
            current = self._registry.get(tenant, subscription_id)
            return (
                current is not None
                and current.active(self._now())
                and self._registry.still_shared(tenant, current)
            )

        delivery = Delivery(
            endpoint, body, headers, subscription_id, done, retried, tenant=tenant, wanted=wanted
        )
        if not self._dispatcher.submit(delivery):
            _log.warning("notification to %s refused by the dispatcher", endpoint)
            done(Outcome(ok=False, error="refused"))

    async def _every(
        self, tenant: str, subscription_id: str, interval: float, gate: Gate | None = None
    ) -> None:
        """Periodic notifications (``timeInterval``): every matching entity, each interval;
        with a ``gate``, only while this replica holds the subscription's periodic lease."""
        while True:
            await asyncio.sleep(interval)
            held = self._registry.get(tenant, subscription_id)
            if held is None:
                return
            if not held.active(self._now()):
                continue
            try:
                if gate is not None and not await gate():
                    continue  # another replica sends this period
                docs = self._registry.shown(tenant, held, await self._current_matches(tenant, held))
            except Exception:  # the store being unavailable must not end the schedule
                _log.exception("periodic notification of %s failed", subscription_id)
                continue
            if docs:
                self._send(tenant, held, docs, [])

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
