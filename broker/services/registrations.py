"""Context source registrations: their lifecycle (GS CIM 009 v1.8.1 §5.9, §5.10).

Theory of operation. Registrations live in their tenant's store (record kind
``csourceRegistration``, so every backend keeps them without a port change) and, while the
broker runs, in memory, in creation order per tenant: every forwarded query asks which
registrations concern it, and that must cost no store round trip. An expired registration
(``expiresAt`` passed) is as if it did not exist, and is deleted when next touched.

Changes are announced to ``listeners`` (the registration subscriptions, §5.11) with the
registration before and after (``None`` for a creation or a deletion). Delivery statistics
(timesSent, lastSuccess, ...) are kept in memory and saved at most once a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

import orjson

from broker.clock import Clock, timestamp, utc_now
from broker.ngsild.errors import AlreadyExists, Conflict, ResourceNotFound
from broker.ngsild.registrations.documents import from_doc, to_doc
from broker.ngsild.registrations.matching import holds_entity, overlapping
from broker.ngsild.registrations.registration import (
    EXCLUSIVE,
    REDIRECT,
    Registration,
    apply_patch,
)
from broker.ngsild.terms import TermTable
from broker.services.following import same_definition
from broker.store.base import RecordChange, Store
from broker.store.everywhere import records_everywhere

_log = logging.getLogger(__name__)
REGISTRATION = "csourceRegistration"
"""Record kind of registrations in the tenant store."""
_SAVE_EVERY = 1.0

_STATUS_MEMBERS = frozenset({"times_sent", "times_failed", "last_success", "last_failure"})
"""Counted by each replica for itself (a save of only these is no new definition)."""

Listener = Callable[[str, Registration | None, Registration | None], Awaitable[None]]
"""Called after a change with (tenant, before, after)."""


class RegistrationService:
    """Create, read, change and delete registrations; answer which ones concern a request."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock
        self._held: dict[str, dict[str, Registration]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._saver: asyncio.Task[None] | None = None
        self.listeners: list[Listener] = []

    def now(self) -> str:
        return timestamp(self._clock)

    async def start(self) -> None:
        """Load every tenant's registrations; start saving delivery statistics."""
        async for tenant, doc in records_everywhere(self._store, REGISTRATION):
            try:
                reg = from_doc(doc)
            except Exception:  # one broken record must not stop the broker
                _log.exception("a registration of tenant %r could not be loaded", tenant)
                continue
            self._held.setdefault(tenant, {})[reg.id] = reg
        self._saver = asyncio.create_task(self._save_loop(), name="registration-status")

    async def close(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
        await self._save_dirty()

    kinds = (REGISTRATION,)

    async def changed(self, change: RecordChange) -> None:
        """Another replica saved or deleted a registration: hold what the store holds. The
        replica that made the change told the listeners (csource notifications) already."""
        held = self._held.setdefault(change.tenant, {})
        if change.doc is None:
            held.pop(change.key, None)
            return
        current = held.get(change.key)
        if current is not None and same_definition(
            _plain(to_doc(current)), change.doc, _STATUS_MEMBERS
        ):
            return
        try:
            held[change.key] = from_doc(change.doc)
        except Exception:  # one broken record must not stop the following
            _log.exception("registration %s of tenant %r not followed", change.key, change.tenant)

    def held_keys(self, kind: str) -> set[tuple[str, str]]:
        return {(tenant, reg_id) for tenant, regs in self._held.items() for reg_id in regs}

    def drop_tenant(self, tenant: str) -> None:
        """Forget a deleted tenant's registrations (its store is dropped after this)."""
        self._held.pop(tenant, None)

    async def create(
        self, tenant: str, reg: Registration, *, entity: Callable[[str], Awaitable[Any]]
    ) -> Registration:
        """Register Context Source (§5.9.2); ``entity`` reads a local entity by id, for the
        conflict rules of §5.9.2.4."""
        held = self._held.setdefault(tenant, {})
        existing = held.get(reg.id)
        if existing is not None and not self._expired(existing):
            raise AlreadyExists(f"registration {reg.id} already exists")
        await self._check_conflicts(tenant, reg, entity)
        store = await self._store.tenant(tenant, create=True)
        await store.save_record(REGISTRATION, reg.id, to_doc(reg))
        held[reg.id] = reg
        await self._announce(tenant, None, reg)
        return reg

    def get(self, tenant: str, reg_id: str) -> Registration:
        """Retrieve Context Source Registration (§5.10.1)."""
        reg = self._held.get(tenant, {}).get(reg_id)
        if reg is None or self._expired(reg):
            raise ResourceNotFound(f"registration {reg_id} does not exist")
        return reg

    def list(self, tenant: str) -> list[Registration]:
        """Every live registration of the tenant, in creation order."""
        return [reg for reg in self._held.get(tenant, {}).values() if not self._expired(reg)]

    async def update(
        self, tenant: str, reg_id: str, fragment: Any, terms: TermTable
    ) -> Registration:
        """Update Context Source Registration (§5.9.3)."""
        before = self.get(tenant, reg_id)
        after = apply_patch(before, fragment, terms, now=self.now())
        await self._check_conflicts(tenant, after, None)
        store = await self._store.tenant(tenant)
        await store.save_record(REGISTRATION, reg_id, to_doc(after))
        self._held[tenant][reg_id] = after
        await self._announce(tenant, before, after)
        return after

    async def delete(self, tenant: str, reg_id: str) -> None:
        """Delete Context Source Registration (§5.9.4)."""
        before = self.get(tenant, reg_id)
        del self._held[tenant][reg_id]
        store = await self._store.tenant(tenant)
        await store.delete_record(REGISTRATION, reg_id)
        await self._announce(tenant, before, None)

    def record_outcome(self, tenant: str, reg_id: str, *, ok: bool) -> None:
        """Count one forwarded request to the registration's source (Table 5.2.9-1)."""
        reg = self._held.get(tenant, {}).get(reg_id)
        if reg is None:
            return
        now = self.now()
        if ok:
            reg = replace(reg, times_sent=reg.times_sent + 1, last_success=now)
        else:
            reg = replace(
                reg,
                times_sent=reg.times_sent + 1,
                times_failed=reg.times_failed + 1,
                last_failure=now,
            )
        self._held[tenant][reg_id] = reg
        self._dirty.add((tenant, reg_id))

    def _expired(self, reg: Registration) -> bool:
        return reg.expires_at is not None and reg.expires_at <= self.now()

    async def _check_conflicts(
        self, tenant: str, reg: Registration, entity: Callable[[str], Awaitable[Any]] | None
    ) -> None:
        clash = overlapping(reg, self.list(tenant))
        if clash is not None:
            raise Conflict(
                f"registration {clash.id} ({clash.effective_mode}) already covers these "
                "entities and attributes"
            )
        if entity is None or reg.effective_mode not in (EXCLUSIVE, REDIRECT):
            return
        for entity_id in _named_ids(reg):
            doc = await entity(entity_id)
            if doc is None:
                continue
            infos = holds_entity(reg, doc["id"], doc["type"])
            if reg.effective_mode == REDIRECT and infos:
                raise Conflict(f"entity {entity_id} exists here; it cannot be redirected")
            for info in infos:
                if info.attributes is not None and info.attributes & set(doc["attrs"]):
                    raise Conflict(
                        f"entity {entity_id} here already has attributes this exclusive "
                        "registration names"
                    )

    async def _announce(
        self, tenant: str, before: Registration | None, after: Registration | None
    ) -> None:
        for listener in self.listeners:
            try:
                await listener(tenant, before, after)
            except Exception:
                _log.exception("a registration listener failed")

    async def _save_loop(self) -> None:
        while True:
            await asyncio.sleep(_SAVE_EVERY)
            await self._save_dirty()

    async def _save_dirty(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for tenant, reg_id in dirty:
            reg = self._held.get(tenant, {}).get(reg_id)
            if reg is None:
                continue
            try:
                store = await self._store.tenant(tenant)
                await store.save_record(REGISTRATION, reg_id, to_doc(reg))
            except Exception:
                _log.exception("saving the status of registration %s failed", reg_id)


def _named_ids(reg: Registration) -> Iterable[str]:
    return {
        entity.id
        for info in reg.information
        for entity in info.entities or ()
        if entity.id is not None
    }


def _plain(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as it comes back from a store (tuples as lists)."""
    plain: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    return plain
