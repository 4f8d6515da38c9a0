"""``/entityMaps/{entityMapId}``: read and delete EntityMaps (v1.9 §6.32)."""

from __future__ import annotations

from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request, Response

from broker.api.access import READ
from broker.api.requests import runtime, tenant_of
from broker.ngsild.errors import ResourceNotFound

router = APIRouter(tags=["EntityMaps"])
ENTITY_MAP_HEADER = "NGSILD-EntityMap"


def map_location(map_id: str) -> str:
    """Where a map can be read; sent in the ``NGSILD-EntityMap`` response header."""
    return "/ngsi-ld/v1/entityMaps/" + quote(map_id, safe=":")


def map_id_of(header: str | None) -> str | None:
    """The map id in an ``NGSILD-EntityMap`` request header (a location or a bare id)."""
    return None if not header else header.rsplit("/", 1)[-1]


@router.get(
    "/entityMaps/{entityMapId}", summary="Retrieve EntityMap (§5.14.1)", dependencies=[READ]
)
async def retrieve_entity_map(request: Request, entityMapId: str) -> Response:
    found = runtime(request).entity_maps.get(tenant_of(request), entityMapId)
    if found is None:
        raise ResourceNotFound(f"EntityMap {entityMapId} does not exist or has expired")
    return Response(orjson.dumps(found.as_json()), media_type="application/json")


@router.delete(
    "/entityMaps/{entityMapId}", status_code=204, summary="Delete EntityMap", dependencies=[READ]
)
async def delete_entity_map(request: Request, entityMapId: str) -> Response:
    if not runtime(request).entity_maps.delete(tenant_of(request), entityMapId):
        raise ResourceNotFound(f"EntityMap {entityMapId} does not exist or has expired")
    return Response(status_code=204)
