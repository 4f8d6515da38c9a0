"""EntityMaps on the temporal routes (v1.9 §5.7.3.4, §5.7.4.4, §5.5.14).

A query that asks for a map (``entityMap=true``) or names one that is gone gets a new map of
its result (201); a query naming a live map is fixed to the entities in it (200, its location
echoed). Retrieve records its entity in the asked-for or named map and stays 200.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fastapi import Request

from broker.api.entity_maps import ENTITY_MAP_HEADER, map_id_of, map_location, map_space
from broker.api.requests import runtime
from broker.ngsild.query import EntityQuery


@dataclass(frozen=True, slots=True)
class MapUse:
    """The map a request uses: the live one it names, or one to create for its result."""

    live: str | None
    create: bool

    @property
    def wanted(self) -> bool:
        return self.live is not None or self.create


def map_use(request: Request, asked: bool) -> MapUse:
    """Which map the request refers to and whether a new one must be made."""
    referenced = map_id_of(request.headers.get(ENTITY_MAP_HEADER))
    live = None
    if referenced is not None:
        found = runtime(request).entity_maps.get(map_space(request), referenced)
        live = None if found is None else found.id
    return MapUse(live, asked or (referenced is not None and live is None))


def fixed_by_map(request: Request, use: MapUse, query: EntityQuery) -> EntityQuery:
    """§5.5.14: a live map fixes the result set of a query to the entities it holds."""
    if use.live is None:
        return query
    found = runtime(request).entity_maps.get(map_space(request), use.live)
    ids = tuple(found.entries) if found is not None else ()
    if query.ids is not None:
        ids = tuple(i for i in query.ids if i in ids)
    return replace(query, ids=ids)


def map_headers(request: Request, use: MapUse, entity_ids: list[str]) -> dict[str, str]:
    """Record ``entity_ids`` in the map used; its location header (none when unused)."""
    if not use.wanted:
        return {}
    used = runtime(request).entity_maps.record(map_space(request), use.live, entity_ids)
    return {ENTITY_MAP_HEADER: map_location(used.id)}
