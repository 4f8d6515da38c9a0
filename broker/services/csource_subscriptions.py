"""Registration subscriptions (GS CIM 009 v1.8.1 §5.11): ``/csourceSubscriptions``.

Theory of operation. A csource subscription is parsed, rendered and kept exactly as an entity
subscription is (``broker.ngsild.subscriptions``; record kind ``csourceSubscription``), so the
two cannot drift apart. What differs is what it watches: the registration service announces
every change (before, after) and ``notifications.relevant`` decides, per subscription, whether
the registration matched before and after; the reason follows (newlyMatching, updated,
noLongerMatching). A new subscription is told at once about the registrations that already
match, and a ``timeInterval`` subscription about all of them on every tick. Notifications go
through the shared ``Dispatcher`` (per-receiver queues, retries with backoff), whose outcome
updates the subscription's delivery status as for entity subscriptions.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from broker.clock import Clock, timestamp, utc_now
from broker.contexts import ContextLoader
from broker.ngsild.errors import AlreadyExists, ResourceNotFound
from broker.ngsild.registrations.notifications import (
    NEWLY_MATCHING,
    csource_notification,
    relevant,
    trigger_reason,
)
from broker.ngsild.registrations.registration import Registration
from broker.ngsild.subscriptions.documents import from_doc, to_doc
from broker.ngsild.subscriptions.subscription import (
    Filters,
    Subscription,
    apply_patch,
    parse_filters,
    status,
)
from broker.ngsild.terms import TermTable, context_link_header
from broker.notify.dispatcher import Delivery, Dispatcher, Outcome
from broker.services.registrations import RegistrationService
from broker.store.base import Store
from broker.store.everywhere import records_everywhere

_log = logging.getLogger(__name__)
CSOURCE_SUBSCRIPTION = "csourceSubscription"
"""Record kind of registration subscriptions in the tenant store."""


@dataclass(slots=True)
class _Held:
    sub: Subscription
    filters: Filters
    terms: TermTable
    timer: asyncio.Task[None] | None = None


class CsourceSubscriptionService:
    """Create, read, change and delete registration subscriptions; notify them."""

    def __init__(
        self,
        store: Store,
        contexts: ContextLoader,
        dispatcher: Dispatcher,
        registrations: RegistrationService,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._contexts = contexts
        self._dispatcher = dispatcher
        self._registrations = registrations
        self._clock = clock
        self._held: dict[str, dict[str, _Held]] = {}
        registrations.listeners.append(self._changed)

    def now(self) -> str:
        return timestamp(self._clock)

    async def start(self) -> None:
        """Load every tenant's registration subscriptions."""
        async for tenant, doc in records_everywhere(self._store, CSOURCE_SUBSCRIPTION):
            try:
                await self._hold(tenant, from_doc(doc))
            except Exception:  # one broken record must not stop the broker
                _log.exception("a csource subscription of tenant %r not loaded", tenant)

    async def close(self) -> None:
        for subs in self._held.values():
            for held in subs.values():
                if held.timer is not None:
                    held.timer.cancel()
        for tenant, subs in self._held.items():
            for held in subs.values():
                await self._save(tenant, held.sub)

    def drop_tenant(self, tenant: str) -> None:
        for held in self._held.pop(tenant, {}).values():
            if held.timer is not None:
                held.timer.cancel()

    async def create(self, tenant: str, sub: Subscription) -> Subscription:
        """Create Context Source Registration Subscription (§5.11.2)."""
        if sub.id in self._held.get(tenant, {}):
            raise AlreadyExists(f"subscription {sub.id} already exists")
        held = await self._hold(tenant, sub)
        await self._save(tenant, sub)
        if sub.time_interval is None:
            self._notify_matching(tenant, held)
        return sub

    def get(self, tenant: str, subscription_id: str) -> Subscription:
        """Retrieve Context Source Registration Subscription (§5.11.4)."""
        return self._get(tenant, subscription_id).sub

    def list(self, tenant: str) -> list[Subscription]:
        """Query Context Source Registration Subscriptions (§5.11.5), in creation order."""
        return [held.sub for held in self._held.get(tenant, {}).values()]

    async def update(
        self,
        tenant: str,
        subscription_id: str,
        fragment: Any,
        terms: TermTable,
        *,
        check: Callable[[Subscription], Awaitable[None]] | None = None,
    ) -> Subscription:
        """Update Context Source Registration Subscription (§5.11.3); ``check`` may refuse
        the result before it is kept."""
        held = self._get(tenant, subscription_id)
        sub = apply_patch(held.sub, fragment, terms, now=self.now())
        if check is not None:
            await check(sub)
        held = await self._hold(tenant, sub)
        await self._save(tenant, sub)
        if sub.time_interval is None:  # §5.11.3: told what matches now, as on creation
            self._notify_matching(tenant, held)
        return sub

    async def delete(self, tenant: str, subscription_id: str) -> None:
        """Delete Context Source Registration Subscription (§5.11.6)."""
        held = self._get(tenant, subscription_id)
        if held.timer is not None:
            held.timer.cancel()
        del self._held[tenant][subscription_id]
        self._dispatcher.cancel(tenant, "csource:" + subscription_id)
        store = await self._store.tenant(tenant)
        await store.delete_record(CSOURCE_SUBSCRIPTION, subscription_id)

    def _get(self, tenant: str, subscription_id: str) -> _Held:
        held = self._held.get(tenant, {}).get(subscription_id)
        if held is None:
            raise ResourceNotFound(f"subscription {subscription_id} does not exist")
        return held

    async def _hold(self, tenant: str, sub: Subscription) -> _Held:
        terms = await self._terms(sub.context)
        held = _Held(sub, parse_filters(sub, terms), terms)
        subs = self._held.setdefault(tenant, {})
        old = subs.get(sub.id)
        if old is not None and old.timer is not None:
            old.timer.cancel()
        subs[sub.id] = held
        if sub.time_interval is not None:
            held.timer = asyncio.create_task(self._periodic(tenant, held), name="csource-timer")
        return held

    async def _terms(self, context: Any) -> TermTable:
        if context is None:
            return self._contexts.core
        if isinstance(context, str):
            return await self._contexts.from_link(context)
        return await self._contexts.from_body(context)

    async def _changed(
        self, tenant: str, before: Registration | None, after: Registration | None
    ) -> None:
        for held in list(self._held.get(tenant, {}).values()):
            if status(held.sub, self.now()) != "active" or held.sub.time_interval is not None:
                continue
            expand = held.terms.expand
            was = None if before is None else relevant(held.sub, held.filters, before, expand)
            now = None if after is None else relevant(held.sub, held.filters, after, expand)
            reason = trigger_reason(was is not None, now is not None)
            shown = now or was
            if reason is not None and shown is not None:
                self._send(tenant, held, [shown], reason)

    def _notify_matching(self, tenant: str, held: _Held) -> None:
        if status(held.sub, self.now()) != "active":
            return
        found = [
            reg
            for reg in (
                relevant(held.sub, held.filters, reg, held.terms.expand)
                for reg in self._registrations.list(tenant)
            )
            if reg is not None
        ]
        if found:
            self._send(tenant, held, found, NEWLY_MATCHING)

    async def _periodic(self, tenant: str, held: _Held) -> None:
        assert held.sub.time_interval is not None  # only started for periodic ones
        while True:
            self._notify_matching(tenant, held)
            await asyncio.sleep(held.sub.time_interval)

    def _send(
        self, tenant: str, held: _Held, regs: builtins.list[Registration], reason: str
    ) -> None:
        sub = held.sub
        body = csource_notification(sub, regs, reason, held.terms, now=self.now())
        headers = {
            "Content-Type": "application/json",
            "Link": context_link_header(held.terms.link_url),
        }
        if tenant:
            headers["NGSILD-Tenant"] = tenant
        headers.update(sub.notification.endpoint.receiver_info or ())

        counted = False  # one notification is one failure, however often it is retried

        def failed_once() -> None:
            nonlocal counted
            if not counted:
                counted = True
                self._record(tenant, sub.id, ok=False)

        def done(outcome: Outcome) -> None:
            if outcome.cancelled or outcome.shutdown:
                return
            if outcome.ok:
                self._record(tenant, sub.id, ok=True)
            else:
                failed_once()

        def retrying(outcome: Outcome) -> None:
            failed_once()  # shown at once, not when the retry budget is spent

        self._record(tenant, sub.id, ok=None)
        self._dispatcher.submit(
            Delivery(
                sub.notification.endpoint.uri,
                orjson.dumps(body),
                headers,
                key="csource:" + sub.id,
                on_done=done,
                on_retry=retrying,
                tenant=tenant,
            )
        )

    def _record(self, tenant: str, subscription_id: str, *, ok: bool | None) -> None:
        """A notification was sent (``ok`` None), succeeded or failed (§5.2.14 members)."""
        held = self._held.get(tenant, {}).get(subscription_id)
        if held is None:
            return
        now = self.now()
        sub = held.sub
        if ok is None:
            held.sub = replace(sub, times_sent=sub.times_sent + 1, last_notification=now)
        elif ok:
            held.sub = replace(sub, last_success=now)
        else:
            held.sub = replace(sub, times_failed=sub.times_failed + 1, last_failure=now)

    async def _save(self, tenant: str, sub: Subscription) -> None:
        store = await self._store.tenant(tenant, create=True)
        await store.save_record(CSOURCE_SUBSCRIPTION, sub.id, to_doc(sub))
