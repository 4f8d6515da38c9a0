"""Temporal API use cases (GS CIM 009 v1.8.1 §5.6.11-§5.6.16 provision, §5.7.3-§5.7.4
consumption) over the tenant stores' history (``broker.store.history``).

History is written by every entity write (``EntityService``); the provision operations here
write given instances instead: creating a temporal representation creates the entity with the
latest instance of each attribute and appends every instance given, in one transaction.
Reads select entities exactly like entity queries (so ``type``, ``q``, ``geoQ``, ``scopeQ`` and
grants apply to the entity as it is now), then read the selected history of that page.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

from broker.clock import Clock, timestamp, utc_now
from broker.ngsild import patch
from broker.ngsild.entity import EntityDoc, Fragment, Instance
from broker.ngsild.errors import (
    AlreadyExists,
    OperationNotSupported,
    ResourceNotFound,
    TooManyResults,
)
from broker.ngsild.patch import UpdateResult
from broker.ngsild.query import EntityQuery
from broker.ngsild.temporal.history import (
    SCOPE,
    TYPES,
    given,
    latest_instances,
    representation_rows,
)
from broker.ngsild.temporal.query import HistorySelection, TemporalQuery
from broker.ngsild.temporal.render import AttributeAggregate, AttributeHistory
from broker.ngsild.temporal.window import Interval, restrict, scope_intervals, window_matches
from broker.services.shared_reads import EntityReads
from broker.store.base import Store
from broker.store.history import HistoryStore


@dataclass(frozen=True, slots=True)
class Windowed:
    """A page of a temporal query judged on its window (``TemporalService.windowed``)."""

    entities: list[EntityDoc]
    total: int
    periods: dict[str, list[Interval]] | None
    """Per entity, when a scope matching ``scopeQ`` was valid (``None``: no scopeQ)."""


@dataclass(frozen=True, slots=True)
class TemporalRepresentation:
    """A parsed temporal representation: the entity's identity and every instance given."""

    entity_id: str
    types: list[str]
    attrs: dict[str, list[Instance]]
    scope: list[Instance] | None = None
    """The scope's instances (``value``: the scope), as ``parse_scope_instances`` gives them."""

    def current_scope(self) -> list[str] | None:
        """The scope the entity has now: the one observed last."""
        if not self.scope:
            return None
        latest = latest_instances({SCOPE: self.scope}).get(SCOPE)
        return list(latest[0]["value"]) if latest else None


class TemporalService:
    """Provision and consumption of temporal representations."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    def _now(self) -> str:
        return timestamp(self._clock)

    async def _history(self, tenant: str, *, create: bool = False) -> HistoryStore:
        store = await self._store.tenant(tenant, create=create)
        if not isinstance(store, HistoryStore):
            raise OperationNotSupported("this store keeps no attribute history")
        return store

    async def create(self, tenant: str, rep: TemporalRepresentation) -> bool:
        """Create or add to a temporal representation (§5.6.11); whether the entity was new."""
        store = await self._store.tenant(tenant, create=True)
        await self._history(tenant)
        now = self._now()
        rows = given(representation_rows({**rep.attrs, SCOPE: rep.scope or []}, now))
        current = latest_instances(rep.attrs)
        scope = rep.current_scope()
        if await store.get(rep.entity_id) is None:
            doc: EntityDoc = {"id": rep.entity_id, "type": rep.types, "attrs": current}
            if scope is not None:
                doc["scope"] = scope
            try:
                await store.create(patch.new_entity(doc, now=now), history=rows)
                return True
            except AlreadyExists:
                pass  # created meanwhile: add to it instead
        fragment = Fragment(attrs=current, types=rep.types, scope=scope)
        rule = partial(patch.append_attributes, fragment=fragment, now=now)
        await store.update(rep.entity_id, _always(rule), history=rows)
        return False

    async def add_attributes(
        self, tenant: str, entity_id: str, attrs: dict[str, list[Instance]]
    ) -> None:
        """Add Attributes to a temporal representation (§5.6.12)."""
        store = await self._store.tenant(tenant)
        await self._history(tenant)
        now = self._now()
        rule = partial(
            patch.append_attributes, fragment=Fragment(attrs=latest_instances(attrs)), now=now
        )
        await store.update(entity_id, _always(rule), history=given(representation_rows(attrs, now)))

    async def delete_entity(self, tenant: str, entity_id: str) -> None:
        """Delete a temporal representation (§5.6.13): the entity and all its history (also
        the history of an entity that is gone already)."""
        store = await self._store.tenant(tenant)
        history = await self._history(tenant)
        try:
            await store.delete(entity_id)
        except ResourceNotFound:
            if not await history.delete_history(entity_id):
                raise
            return
        await history.delete_history(entity_id)

    async def delete_attribute(
        self,
        tenant: str,
        entity_id: str,
        attr: str,
        *,
        name: str,
        dataset_id: str | None = None,
        delete_all: bool = False,
    ) -> None:
        """Delete an attribute's temporal evolution (§5.6.14): all instances, or one datasetId's
        (the default instance's unless ``dataset_id``); the attribute leaves the entity too."""
        store = await self._store.tenant(tenant)
        history = await self._history(tenant)
        if await store.get(entity_id) is None:
            raise ResourceNotFound(f"entity {entity_id} does not exist")
        removed = await history.delete_history(
            entity_id, attr, None if delete_all else (dataset_id or "")
        )
        if not removed:
            raise ResourceNotFound(f"entity {entity_id} has no history of {name}")
        rule = partial(
            patch.delete_attribute,
            iri=attr,
            now=self._now(),
            name=name,
            dataset_id=dataset_id,
            delete_all=delete_all,
        )
        # The attribute may have history without being part of the entity any more.
        with suppress(ResourceNotFound):
            await store.update(entity_id, rule)

    async def modify_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: str, fragment: Instance
    ) -> None:
        """Partial update of one attribute instance (§5.6.15)."""
        history = await self._history(tenant)
        stored = await history.instance(entity_id, attr, instance_id)
        if stored is None:
            raise ResourceNotFound(f"no instance {instance_id} of that attribute of {entity_id}")
        kept = {k: v for k, v in stored.items() if k not in _SYSTEM}
        updated = {**kept, **fragment}
        await history.replace_instance(entity_id, attr, instance_id, updated, self._now())

    async def delete_instance(
        self, tenant: str, entity_id: str, attr: str, instance_id: str
    ) -> None:
        """Delete one attribute instance (§5.6.16)."""
        history = await self._history(tenant)
        if not await history.delete_instance(entity_id, attr, instance_id):
            raise ResourceNotFound(f"no instance {instance_id} of that attribute of {entity_id}")

    async def history(
        self, tenant: str, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeHistory]]:
        """The selected history of some entities."""
        found = await (await self._history(tenant)).history(entity_ids, selection)
        return found if selection.attrs is not None else _attributes_only(found)

    async def vanished(self, tenant: str, entity_id: str) -> EntityDoc | None:
        """What is left of an entity that is gone (deleted, or expired: §4.22 ends the current
        state only) while its history stays: its id, types and last recorded attributes, for
        serving that history (§5.7.3); None if it has no recorded history.

        An expired entity the sweep has not removed yet is still stored: it tells its types.
        """
        stored = await (await self._store.tenant(tenant)).get(entity_id)
        last = await self.history(tenant, [entity_id], HistorySelection(TemporalQuery(last_n=1)))
        series = last.get(entity_id, [])
        types = None if stored is None else stored["type"]
        if types is None:
            told = await self.history(
                tenant,
                [entity_id],
                HistorySelection(TemporalQuery(last_n=1), frozenset({TYPES})),
            )
            recorded = [i for s in told.get(entity_id, []) for i in s.instances]
            types = list(recorded[-1]["value"]) if recorded else None
        if types is None or not (series or stored):
            return None
        attrs = {s.attr: s.instances for s in series if s.attr != SCOPE}
        return {"id": entity_id, "type": types, "attrs": stored["attrs"] if stored else attrs}

    async def windowed(
        self, reads: EntityReads, tenant: str, query: EntityQuery, selection: HistorySelection
    ) -> Windowed:
        """The page of entities whose windowed instances satisfy ``q``/``geoQ``/``scopeQ``
        (§5.7.4.4), how many match in all, and for ``scopeQ`` when each was in scope.

        Candidates are selected by everything else (type, ids, grants) in the store, then
        judged on their history in the window.
        """
        broad = replace(
            query,
            q=None,
            geo=None,
            scope=None,
            offset=0,
            limit=_WINDOW_CANDIDATES,
            count=False,
            resume=None,
        )
        candidates = (await reads.query(tenant, broad)).entities
        if len(candidates) >= _WINDOW_CANDIDATES:
            raise TooManyResults(
                f"a temporal q, geoQ or scopeQ is judged on at most {_WINDOW_CANDIDATES} "
                "entities; narrow the query by type or id"
            )
        ids = [doc["id"] for doc in candidates]
        history = await self.history(tenant, ids, replace(selection, attrs=None, dataset_ids=None))
        periods = await self._in_scope(tenant, ids, query, selection)
        matched = []
        for doc in candidates:
            series = history.get(doc["id"], [])
            if periods is not None:
                if doc["id"] not in periods:
                    continue
                series = restrict(series, periods[doc["id"]], selection.query.timeproperty)
            shown = [s for s in series if selection.attrs is None or s.attr in selection.attrs]
            if window_matches(query, doc, series) and any(s.instances for s in shown):
                matched.append(doc)
        page = matched[query.offset : query.offset + query.limit]
        return Windowed(page, len(matched), periods)

    async def _in_scope(
        self, tenant: str, ids: list[str], query: EntityQuery, selection: HistorySelection
    ) -> dict[str, list[Interval]] | None:
        if query.scope is None:
            return None
        everything = HistorySelection(TemporalQuery(), frozenset({SCOPE}))
        scopes = await self.history(tenant, ids, everything)
        window = selection.query
        periods = {}
        for entity_id in ids:
            instances = [i for s in scopes.get(entity_id, []) for i in s.instances]
            found = scope_intervals(instances, query.scope, window.start, window.end)
            if found:
                periods[entity_id] = found
        return periods

    async def aggregate(
        self, tenant: str, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeAggregate]]:
        """The selected aggregated history of some entities."""
        found = await (await self._history(tenant)).aggregate(entity_ids, selection)
        return found if selection.attrs is not None else _attributes_only(found)

    async def trim(self, tenant: str, recorded_before: int, limit: int) -> int:
        """Retention: drop up to ``limit`` instances recorded before an instant."""
        return await (await self._history(tenant)).trim_history(recorded_before, limit)


_WINDOW_CANDIDATES = 10_000
S = TypeVar("S", AttributeHistory, AttributeAggregate)


def _attributes_only(found: dict[str, list[S]]) -> dict[str, list[S]]:
    """Without the recorded types of gone entities, which are no attribute (``TYPES``)."""
    return {
        entity: kept
        for entity, series in found.items()
        if (kept := [s for s in series if s.attr != TYPES])
    }


_SYSTEM = frozenset({"createdAt", "modifiedAt", "deletedAt", "instanceId"})


def _always(
    rule: Callable[[EntityDoc], tuple[EntityDoc, UpdateResult]],
) -> Callable[[EntityDoc], tuple[EntityDoc, UpdateResult]]:
    # Instances given to the temporal API are history even when the current state does not
    # change (an older observation), so the write must happen: never report "unchanged".
    def forced(doc: EntityDoc) -> tuple[EntityDoc, UpdateResult]:
        after, result = rule(doc)
        return (dict(after) if after is doc else after), result

    return forced
