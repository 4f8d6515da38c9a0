"""Reading another town's tenant through its grants (issue 12): as if nothing else existed.

A caller that has no role in a tenant but was granted read access to part of it reads through a
``SharedReads`` instead of the ``EntityService`` itself. Both answer the same ``EntityReads``
calls, so handlers do not care which they have. ``SharedReads`` narrows every query to what the
grants share (``broker.auth.narrowing``), hands the narrowed queries to the store so its indexes
do the work, and passes every result through the grants' projection: an entity outside them is
not found (404, never 403), an attribute outside them is absent, discovery counts only what is
visible, and Relationships lead only to entities that are shared too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Protocol

from broker.auth.grants import Grant, shared_view
from broker.auth.narrowing import Narrowing, narrow
from broker.ngsild.catalogue import CatalogueRow, catalogue_keys
from broker.ngsild.entity import EntityDoc
from broker.ngsild.errors import ResourceNotFound
from broker.ngsild.query import EntityQuery
from broker.ngsild.render import View
from broker.services.entities import EntityService
from broker.store.base import QueryPage

_CHUNK = 500


class EntityReads(Protocol):
    """What a handler reads entities through (``EntityService`` or ``SharedReads``)."""

    async def retrieve(
        self, tenant: str, entity_id: str, types: list[str] | None = None
    ) -> EntityDoc: ...

    async def query(self, tenant: str, query: EntityQuery) -> QueryPage: ...

    async def catalogue(self, tenant: str) -> list[CatalogueRow]: ...

    async def linked_entities(
        self, tenant: str, roots: list[EntityDoc], view: View, levels: int
    ) -> dict[str, EntityDoc]: ...


class SharedReads:
    """The reads of a caller that sees a tenant through ``grants`` only."""

    def __init__(self, entities: EntityService, grants: tuple[Grant, ...]) -> None:
        self._entities = entities
        self._grants = grants

    async def retrieve(
        self, tenant: str, entity_id: str, types: list[str] | None = None
    ) -> EntityDoc:
        doc = await self._entities.retrieve(tenant, entity_id, types)
        view = shared_view(doc, self._grants)
        if view is None:  # the same answer as for an entity that does not exist
            raise ResourceNotFound(f"entity {entity_id} does not exist")
        return view

    async def query(self, tenant: str, query: EntityQuery) -> QueryPage:
        narrowed = narrow(query, self._grants)
        if narrowed.combined is None:
            return QueryPage([], 0 if query.count else None)
        single = narrowed.single
        if single is not None:  # one exact query: the store pages and counts it
            page = await self._entities.query(tenant, single)
            return QueryPage(_finished(narrowed, page.entities), page.total, page.last)
        return await self._page(tenant, query, narrowed)

    async def catalogue(self, tenant: str) -> list[CatalogueRow]:
        counts: Counter[tuple[str, str, str]] = Counter()
        for doc in await self._visible(tenant, EntityQuery(types=self._types())):
            counts.update(catalogue_keys(doc))
        return sorted(CatalogueRow(*key, n) for key, n in counts.items())

    async def linked_entities(
        self, tenant: str, roots: list[EntityDoc], view: View, levels: int
    ) -> dict[str, EntityDoc]:
        found = await self._entities.linked_entities(tenant, roots, view, levels)
        shown = {}
        for entity_id, doc in found.items():
            visible = shared_view(doc, self._grants)
            if visible is not None:
                shown[entity_id] = visible
        return shown

    def _types(self) -> tuple[str, ...]:
        return tuple(sorted({t for grant in self._grants for t in grant.selection.types}))

    async def _page(self, tenant: str, query: EntityQuery, narrowed: Narrowing) -> QueryPage:
        """Page the combined query by finishing its results until the page is full."""
        matched = await self._visible(tenant, query, narrowed)
        page = matched[query.offset : query.offset + query.limit]
        return QueryPage(page, len(matched) if query.count else None)

    async def _visible(
        self, tenant: str, query: EntityQuery, narrowed: Narrowing | None = None
    ) -> list[EntityDoc]:
        narrowed = narrowed or narrow(query, self._grants)
        if narrowed.combined is None:
            return []
        # Every match, chunk by chunk: finishing decides, so the store cannot page for us.
        broad = replace(narrowed.combined, offset=0, limit=_CHUNK, count=False, resume=None)
        matched: list[EntityDoc] = []
        offset = 0
        while True:
            page = await self._entities.query(tenant, replace(broad, offset=offset))
            matched.extend(_finished(narrowed, page.entities))
            if len(page.entities) < _CHUNK:
                return matched
            offset += _CHUNK


def _finished(narrowed: Narrowing, docs: list[EntityDoc]) -> list[EntityDoc]:
    shown = []
    for doc in docs:
        view = narrowed.finish(doc)
        if view is not None:
            shown.append(view)
    return shown
