"""``/entityMaps/{entityMapId}``: read and delete EntityMaps (v1.9 §6.32)."""

from __future__ import annotations

from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request, Response

from broker.api.access import READ, access_of
from broker.api.requests import runtime
from broker.ngsild.errors import ResourceNotFound

router = APIRouter(tags=["EntityMaps"])
ENTITY_MAP_HEADER = "NGSILD-EntityMap"


def map_location(map_id: str) -> str:
    """Where a map can be read; sent in the ``NGSILD-EntityMap`` response header."""
    return "/ngsi-ld/v1/entityMaps/" + quote(map_id, safe=":")


def map_id_of(header: str | None) -> str | None:
    """The map id in an ``NGSILD-EntityMap`` request header (a location or a bare id)."""
    return None if not header else header.rsplit("/", 1)[-1]


def map_space(request: Request) -> str:
    """Whose EntityMaps a request sees: its tenant's, or for a caller reading it through
    grants only its own (a map lists entity ids; another caller's could name hidden ones)."""
    access = access_of(request)
    return access.tenant if not access.shared else f"{access.tenant} {access.who}"


@router.get(
    "/entityMaps/{entityMapId}", summary="Retrieve EntityMap (§5.14.1)", dependencies=[READ]
)
async def retrieve_entity_map(request: Request, entityMapId: str) -> Response:
    found = runtime(request).entity_maps.get(map_space(request), entityMapId)
    if found is None:
        raise ResourceNotFound(f"EntityMap {entityMapId} does not exist or has expired")
    return Response(orjson.dumps(found.as_json()), media_type="application/json")


@router.delete(
    "/entityMaps/{entityMapId}", status_code=204, summary="Delete EntityMap", dependencies=[READ]
)
async def delete_entity_map(request: Request, entityMapId: str) -> Response:
    if not runtime(request).entity_maps.delete(map_space(request), entityMapId):
        raise ResourceNotFound(f"EntityMap {entityMapId} does not exist or has expired")
    return Response(status_code=204)
