"""Entity use cases: the one path every write takes, from HTTP and from ingest adapters alike.

Callers hand in documents and fragments already parsed by ``broker.ngsild.entity`` (expanded
names); this layer picks the tenant, stamps the time, runs the matching ``patch`` rule inside the
store's atomic update, and hands what changed to the notification engine: each write carries the
engine's journal ``Entry`` into the store's transaction, and the engine notifies it once the
write is committed (``broker.notify.engine``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial

from broker.clock import Clock, timestamp, utc_now
from broker.ngsild import expiry, patch
from broker.ngsild.catalogue import CatalogueRow
from broker.ngsild.entity import EntityDoc, Fragment, Instance
from broker.ngsild.errors import (
    AlreadyExists,
    NonexistentTenant,
    ResourceNotFound,
    TooManyRequests,
    TooManyResults,
)
from broker.ngsild.names import EXPIRES_AT
from broker.ngsild.patch import UpdateResult
from broker.ngsild.query import EntityQuery, matches
from broker.ngsild.query.page import PageCollector
from broker.ngsild.query.qeval import linked_ids
from broker.ngsild.query.qlang import link_depth, linked_paths
from broker.ngsild.render import View
from broker.ngsild.temporal.history import History, changes
from broker.notify.engine import Notifier
from broker.notify.journal import Entry
from broker.store.base import Committed, EntityStore, Mutation, QueryPage, Store, T
from broker.store.history import HistoryStore
from broker.store.linked import linked_entities

_PURGE_PAGE = 500
_QUOTA_RETRY = 60
"""Seconds a client over its entity quota is told to wait (something must be deleted first)."""
_LINKED_CHUNK = 500
_LINKED_MAX_CANDIDATES = 10_000
_SETTLE_MAX = 1000
"""Most entities expired on the spot before a count; the sweep takes the rest."""


class EntityService:
    """Create, read, change and delete entities in a tenant's store."""

    def __init__(
        self,
        store: Store,
        clock: Clock = utc_now,
        *,
        notifier: Notifier | None = None,
        quota: Callable[[str], int] | None = None,
        history: Callable[[str], bool] | None = None,
    ) -> None:
        self._store = store
        self._history_on = history
        """Tenant → whether its writes record attribute history (Temporal API)."""
        self._clock = clock
        self._notifier = notifier
        self._quota = quota
        """Tenant → most entities it may hold (0: no limit)."""

    def _entry(self, tenant: str) -> Entry | None:
        return None if self._notifier is None else self._notifier.entry(tenant)

    def _committed(self, entry: Entry | None) -> None:
        if entry is not None and self._notifier is not None:
            self._notifier.committed(entry)

    def _now(self) -> str:
        return timestamp(self._clock)

    def _history(self, tenant: str, now: str | None = None) -> History | None:
        # Each write appends what it changed to the tenant's history, in its own transaction.
        if self._history_on is None or not self._history_on(tenant):
            return None
        return partial(changes, now=now or self._now())

    async def create(self, tenant: str, doc: EntityDoc) -> EntityDoc:
        """Create Entity (§5.6.1); creating in a new tenant creates the tenant."""
        store = await self._store.tenant(tenant, create=True)
        limit = 0 if self._quota is None else self._quota(tenant)
        if limit and await store.count() >= limit:
            raise TooManyRequests(f"the tenant has its quota of {limit} entities", _QUOTA_RETRY)
        stored = expiry.stamped(patch.new_entity(doc, now=self._now()))
        entry = self._entry(tenant)
        history = self._history(tenant, stored["createdAt"])
        try:
            await store.create(stored, journal=entry, history=history)
        except AlreadyExists:
            # An expired entity the sweep has not removed yet does not hold its id (§4.22).
            if not await self._reap(tenant, doc["id"]):
                raise
            entry = self._entry(tenant)
            await store.create(stored, journal=entry, history=history)
        self._committed(entry)
        return stored

    async def _reap(self, tenant: str, entity_id: str) -> bool:
        """Delete ``entity_id`` if it has expired; whether it did."""
        store = await self._store.tenant(tenant)
        now = self._clock().timestamp()
        entry = self._entry(tenant)
        try:
            await store.update(entity_id, partial(_expired_only, now=now))
            await store.delete(entity_id, journal=entry, history=self._history(tenant))
        except ResourceNotFound:
            return False
        self._committed(entry)
        return True

    async def expire(self, tenant: str, entity_id: str) -> None:
        """Carry out what expired in ``entity_id`` (§4.22): delete the entity if it expired, else
        remove its expired attribute instances; subscribers are notified as for any deletion.
        Nothing happens to an entity renewed or deleted meanwhile."""
        now = self._clock()
        if await self._reap(tenant, entity_id):
            return
        store = await self._store.tenant(tenant)
        rule = _stamping(partial(expiry.expire, now=now.timestamp(), stamp=timestamp(lambda: now)))
        entry = self._entry(tenant)
        try:
            committed = await store.update(
                entity_id, rule, journal=entry, history=self._history(tenant)
            )
        except ResourceNotFound:
            return
        if committed.changed:
            self._committed(entry)
            if isinstance(store, HistoryStore):
                for attr, dataset_id in expiry.gone(committed.before, committed.after):
                    await store.delete_history(entity_id, attr, dataset_id)

    async def retrieve(
        self, tenant: str, entity_id: str, types: list[str] | None = None
    ) -> EntityDoc:
        """Retrieve Entity (§5.7.1); ``types`` is the optional type selector."""
        store = await self._store.tenant(tenant)
        doc = expiry.live(await store.get(entity_id), self._clock().timestamp())
        if doc is None:
            raise ResourceNotFound(f"entity {entity_id} does not exist")
        _check_types(doc, types)
        return doc

    async def linked_entities(
        self, tenant: str, roots: list[EntityDoc], view: View, levels: int
    ) -> dict[str, EntityDoc]:
        """The entities reachable from ``roots`` within ``levels`` Relationship hops (§4.5.23)."""
        found = await linked_entities(await self._store.tenant(tenant), roots, view, levels)
        now = self._clock().timestamp()
        alive = ((key, expiry.live(doc, now)) for key, doc in found.items())
        return {key: doc for key, doc in alive if doc is not None}

    async def query(self, tenant: str, query: EntityQuery) -> QueryPage:
        """Query Entities (§5.7.2)."""
        store = await self._store.tenant(tenant)
        if query.count:
            await self._settle(tenant, store)
        if query.q is None or not link_depth(query.q):
            page = await store.query(query)
            return _alive(page, query, self._clock().timestamp())
        return _alive(await _query_linked(store, query), None, self._clock().timestamp())

    async def _settle(self, tenant: str, store: EntityStore) -> None:
        """Expire now what is due, before an answer that counts (a count or discovery must
        not include what expired since the last sweep, §4.22)."""
        due = await store.expiring(self._clock().timestamp(), _SETTLE_MAX)
        await asyncio.gather(*(self.expire(tenant, entity_id) for entity_id in due))

    async def purge(
        self,
        tenant: str,
        query: EntityQuery,
        *,
        keep: frozenset[str] | None = None,
        drop: frozenset[str] | None = None,
    ) -> int:
        """Purge Entities (§5.6.21): delete the matching entities, or with ``keep``/``drop``
        only some of their attributes. Returns how many entities were affected.

        Matches are collected first, page by page, then changed concurrently (the SQLite writer
        commits what is queued together in one transaction).
        """
        store = await self._store.tenant(tenant)
        matched: list[str] = []
        while True:
            page = await store.query(replace(query, limit=_PURGE_PAGE, offset=len(matched)))
            matched.extend(doc["id"] for doc in page.entities)
            if len(page.entities) < _PURGE_PAGE:
                break
        now = self._now()
        for start in range(0, len(matched), _PURGE_PAGE):
            chunk = matched[start : start + _PURGE_PAGE]
            entries = [self._entry(tenant) for _ in chunk]
            jobs: list[Awaitable[object]]
            if keep is None and drop is None:
                history = self._history(tenant, now)
                jobs = [
                    store.delete(i, journal=e, history=history)
                    for i, e in zip(chunk, entries, strict=True)
                ]
            else:
                rule = _stamping(
                    partial(patch.drop_attributes, now=now, keep=keep, drop=drop or frozenset())
                )
                history = self._history(tenant, now)
                jobs = [
                    store.update(i, rule, journal=e, history=history)
                    for i, e in zip(chunk, entries, strict=True)
                ]
            # An entity deleted meanwhile by someone else is simply no longer there to purge.
            outcomes = await asyncio.gather(*jobs, return_exceptions=True)
            for outcome, entry in zip(outcomes, entries, strict=True):
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, ResourceNotFound):
                        raise outcome
                elif not isinstance(outcome, Committed) or outcome.changed:
                    self._committed(entry)
        return len(matched)

    async def catalogue(self, tenant: str) -> list[CatalogueRow]:
        """The tenant's type/attribute catalogue, for discovery (§5.7.5–5.7.10)."""
        store = await self._store.tenant(tenant)
        await self._settle(tenant, store)
        return await store.catalogue()

    async def delete(
        self, tenant: str, entity_id: str, types: list[str] | None = None
    ) -> EntityDoc:
        """Delete Entity (§5.6.6); returns what was deleted."""
        store = await self._store.tenant(tenant)
        if types:
            await store.update(entity_id, _gated(_unchanged, types))
        entry = self._entry(tenant)
        deleted = await store.delete(entity_id, journal=entry, history=self._history(tenant))
        self._committed(entry)
        return deleted

    async def replace(self, tenant: str, entity_id: str, doc: EntityDoc) -> Committed[UpdateResult]:
        """Replace Entity (§5.6.18)."""
        rule = partial(patch.replace_entity, replacement=doc, now=self._now())
        return await self._update(tenant, entity_id, rule)

    async def merge(
        self, tenant: str, entity_id: str, fragment: Fragment, types: list[str] | None = None
    ) -> Committed[UpdateResult]:
        """Merge Entity (§5.6.17)."""
        rule = partial(patch.merge_entity, fragment=fragment, now=self._now())
        return await self._update(tenant, entity_id, rule, types)

    async def append(
        self,
        tenant: str,
        entity_id: str,
        fragment: Fragment,
        *,
        no_overwrite: bool = False,
        types: list[str] | None = None,
    ) -> Committed[UpdateResult]:
        """Append Entity Attributes (§5.6.3)."""
        rule = partial(
            patch.append_attributes, fragment=fragment, now=self._now(), no_overwrite=no_overwrite
        )
        return await self._update(tenant, entity_id, rule, types)

    async def existing(self, tenant: str, entity_ids: list[str]) -> set[str]:
        """Which of ``entity_ids`` the tenant has (none in a tenant that does not exist)."""
        try:
            store = await self._store.tenant(tenant)
        except NonexistentTenant:
            return set()
        return await store.existing(entity_ids)

    async def upsert(
        self, tenant: str, doc: EntityDoc, *, replace: bool, exists: bool = True
    ) -> bool:
        """Create ``doc``, or replace the existing entity / append to it; whether it was created.

        Updating first costs one round trip for entities that exist, the common case of devices
        reporting again; a new entity costs a second one, unless the caller knows it is new
        (``exists`` false, as a batch learns for all its members at once): then creating comes
        first. Either way a concurrent create or delete only costs the other step.
        """
        if not exists:
            try:
                await self.create(tenant, doc)
                return True
            except AlreadyExists:
                pass
        try:
            await self._change(tenant, doc, replace)
            return False
        except (ResourceNotFound, NonexistentTenant):
            pass
        try:
            await self.create(tenant, doc)
        except AlreadyExists:
            # Another request created it between the two steps; it exists now.
            await self._change(tenant, doc, replace)
            return False
        return True

    async def _change(self, tenant: str, doc: EntityDoc, replace: bool) -> None:
        if replace:
            await self.replace(tenant, doc["id"], doc)
            return
        fragment = Fragment(
            attrs=doc["attrs"],
            types=doc["type"],
            scope=doc.get("scope"),
            expires_at=doc.get(EXPIRES_AT),
        )
        await self.append(tenant, doc["id"], fragment)

    async def update_attributes(
        self, tenant: str, entity_id: str, fragment: Fragment, types: list[str] | None = None
    ) -> Committed[UpdateResult]:
        """Update Entity Attributes (§5.6.2)."""
        rule = partial(patch.update_attributes, fragment=fragment, now=self._now())
        return await self._update(tenant, entity_id, rule, types)

    async def partial_update(
        self,
        tenant: str,
        entity_id: str,
        iri: str,
        fragment: Instance,
        *,
        name: str,
        types: list[str] | None = None,
    ) -> Committed[UpdateResult]:
        """Partial Attribute Update (§5.6.4)."""
        rule = partial(patch.partial_update, iri=iri, fragment=fragment, now=self._now(), name=name)
        return await self._update(tenant, entity_id, rule, types)

    async def replace_attribute(
        self,
        tenant: str,
        entity_id: str,
        iri: str,
        instance: Instance,
        *,
        name: str,
        types: list[str] | None = None,
    ) -> Committed[UpdateResult]:
        """Replace Attribute (§5.6.19)."""
        rule = partial(
            patch.replace_attribute, iri=iri, instance=instance, now=self._now(), name=name
        )
        return await self._update(tenant, entity_id, rule, types)

    async def delete_attribute(
        self,
        tenant: str,
        entity_id: str,
        iri: str,
        *,
        name: str,
        dataset_id: str | None = None,
        delete_all: bool = False,
        types: list[str] | None = None,
    ) -> Committed[UpdateResult]:
        """Delete Attribute (§5.6.5)."""
        rule = partial(
            patch.delete_attribute,
            iri=iri,
            now=self._now(),
            name=name,
            dataset_id=dataset_id,
            delete_all=delete_all,
        )
        return await self._update(tenant, entity_id, rule, types)

    async def _update(
        self,
        tenant: str,
        entity_id: str,
        rule: Callable[[EntityDoc], tuple[EntityDoc, UpdateResult]],
        types: list[str] | None = None,
    ) -> Committed[UpdateResult]:
        store = await self._store.tenant(tenant)
        entry = self._entry(tenant)
        alive = _stamping(_unexpired(rule, self._clock().timestamp()))
        committed = await store.update(
            entity_id,
            _gated(alive, types) if types else alive,
            journal=entry,
            history=self._history(tenant),
        )
        if committed.changed:
            self._committed(entry)
        return committed


async def _query_linked(store: EntityStore, query: EntityQuery) -> QueryPage:
    """A ``q`` with linked-entity paths (``rel{attr}==…``): the store yields the candidates
    matching everything else, the entities their Relationships reach are fetched hop by hop
    (one store query per hop and chunk), and the evaluator decides with them at hand."""
    assert query.q is not None  # only called for a q with links
    broad = replace(
        query, q=None, ordering=None, offset=0, count=False, limit=_LINKED_CHUNK, resume=None
    )
    candidates: list[EntityDoc] = []
    while True:
        page = await store.query(replace(broad, offset=len(candidates)))
        candidates.extend(page.entities)
        if len(page.entities) < _LINKED_CHUNK:
            break
        if len(candidates) >= _LINKED_MAX_CANDIDATES:
            raise TooManyResults(
                f"a linked-entity query must be narrowed to at most {_LINKED_MAX_CANDIDATES} "
                "candidate entities (add a type, attrs or other q terms)"
            )
    linked: dict[str, EntityDoc] = {}
    for path in linked_paths(query.q):
        reached = candidates
        for hop in range(len(path.via)):
            step = replace(path, via=path.via[hop:])
            ids = {target for doc in reached for target in linked_ids(step, doc)}
            missing = sorted(ids - linked.keys())
            for start in range(0, len(missing), _LINKED_CHUNK):
                chunk = tuple(missing[start : start + _LINKED_CHUNK])
                found = await store.query(EntityQuery(ids=chunk, limit=len(chunk)))
                linked.update((doc["id"], doc) for doc in found.entities)
            reached = [linked[target] for target in ids if target in linked]
    collector = PageCollector(query, linked)
    for doc in candidates:
        if not collector.offer(doc):
            break
    entities, total = collector.result()
    return QueryPage(entities, total)


def _check_types(doc: EntityDoc, types: list[str] | None) -> None:
    """The optional ``type`` selector of single-entity operations: the entity must have one."""
    if types and not set(types).intersection(doc["type"]):
        raise ResourceNotFound(f"entity {doc['id']} is not of type {', '.join(types)}")


def _gated(rule: Mutation[T], types: list[str]) -> Mutation[T]:
    # Checked inside the store's atomic update so a concurrent type change cannot slip between.
    def gated(doc: EntityDoc) -> tuple[EntityDoc, T]:
        _check_types(doc, types)
        return rule(doc)

    return gated


def _unchanged(doc: EntityDoc) -> tuple[EntityDoc, None]:
    return doc, None


def _expired_only(doc: EntityDoc, *, now: float) -> tuple[EntityDoc, None]:
    # Checked inside the store's atomic update: a concurrent renewal keeps the entity.
    if not expiry.entity_expired(doc, now):
        raise ResourceNotFound(f"entity {doc['id']} has not expired")
    return doc, None


def _unexpired(rule: Mutation[T], now: float) -> Mutation[T]:
    """``rule`` applied to what is left of the entity at ``now`` (§4.22): an expired entity
    does not exist for writers either, and expired instances are gone before the rule runs."""

    def unexpired(doc: EntityDoc) -> tuple[EntityDoc, T]:
        alive = expiry.live(doc, now)
        if alive is None:
            raise ResourceNotFound(f"entity {doc['id']} does not exist")
        return rule(alive)

    return unexpired


def _stamping(rule: Mutation[T]) -> Mutation[T]:
    """``rule``, keeping the expiry stamp of what it writes up to date (``expiry.STAMP``)."""

    def stamping(doc: EntityDoc) -> tuple[EntityDoc, T]:
        after, result = rule(doc)
        return (after if after is doc else expiry.stamped(after)), result

    return stamping


def _alive(page: QueryPage, query: EntityQuery | None, now: float) -> QueryPage:
    """``page`` as readers may see it at ``now``: expired entities dropped, expired instances
    removed, and (with ``query``) an entity that matched only through what expired dropped
    too. Counts are settled before the query (``EntityService._settle``)."""
    entities = []
    for doc in page.entities:
        alive = expiry.live(doc, now)
        if alive is None or (alive is not doc and query is not None and not matches(query, alive)):
            continue
        entities.append(alive)
    return QueryPage(entities, page.total, page.last)
