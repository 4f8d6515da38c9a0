"""Entity queries and EntityMaps (v1.9 §5.5.9.3, §5.14.4, §6.3.10): a query that asks for a map
(``entityMap=true``, or ``GET /entityMaps``) records the ids it matches; a query presenting a
live map (``NGSILD-EntityMap``) pages over the map's entities only, pruning those that no
longer fit it.

Every entity is local until distributed operations exist, so each entry is ``["@none"]``; a
map holds at most ``MAX_ENTRIES`` ids, and a mapped page is cut from every mapped match (what a
map is for: a stable set to page through while the live data moves).
"""

from __future__ import annotations

from dataclasses import replace

from fastapi import Request

from broker.api.entity_maps import ENTITY_MAP_HEADER, map_id_of, map_location, map_space
from broker.api.requests import reads_of, runtime, tenant_of
from broker.ngsild.errors import TooManyResults
from broker.ngsild.query import EntityQuery
from broker.services.entity_maps import EntityMap
from broker.store.base import QueryPage

MAX_ENTRIES = 10_000
_CHUNK = 1000


async def matching_ids(request: Request, query: EntityQuery) -> list[str]:
    """Every id ``query`` matches, for a new map (TooManyResults past ``MAX_ENTRIES``)."""
    reads, tenant = reads_of(request), tenant_of(request)
    ids: list[str] = []
    broad = replace(query, limit=_CHUNK, count=False, ordering=None, resume=None)
    while True:
        page = await reads.query(tenant, replace(broad, offset=len(ids)))
        ids.extend(doc["id"] for doc in page.entities)
        if len(page.entities) < _CHUNK:
            return ids
        if len(ids) >= MAX_ENTRIES:
            raise TooManyResults(f"an EntityMap holds at most {MAX_ENTRIES} entities")


async def mapped_query(
    request: Request, query: EntityQuery, asked: bool
) -> tuple[QueryPage, dict[str, str], int]:
    """The page of ``query``, its EntityMap header and the status (201 when a map was made)."""
    maps, space = runtime(request).entity_maps, map_space(request)
    referenced = map_id_of(request.headers.get(ENTITY_MAP_HEADER))
    live = None if referenced is None else maps.get(space, referenced)
    if live is not None:
        page = await _in_map(request, query, live)
        return page, {ENTITY_MAP_HEADER: map_location(live.id)}, 200
    page = await reads_of(request).query(tenant_of(request), query)
    if not asked and referenced is None:
        return page, {}, 200
    # §5.7.1.4: a map that is unknown or expired is replaced by a new one.
    created = maps.create(space, await matching_ids(request, query))
    return page, {ENTITY_MAP_HEADER: map_location(created.id)}, 201


async def _in_map(request: Request, query: EntityQuery, live: EntityMap) -> QueryPage:
    mapped = tuple(live.entries)
    if query.ids is not None:
        mapped = tuple(i for i in mapped if i in query.ids)
    if not mapped:
        return QueryPage([], 0 if query.count else None)
    everything = await reads_of(request).query(
        tenant_of(request),
        replace(query, ids=mapped, limit=len(mapped), offset=0, count=False, resume=None),
    )
    found = {doc["id"] for doc in everything.entities}
    runtime(request).entity_maps.prune(map_space(request), live.id, set(mapped) - found)
    end = query.offset + query.limit
    total = len(everything.entities) if query.count else None
    return QueryPage(everything.entities[query.offset : end], total)
