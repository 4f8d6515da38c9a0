"""``/entityMaps/{entityMapId}``: read, update and delete EntityMaps (v1.9 §6.32)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request, Response

from broker.api.access import READ, access_of
from broker.api.requests import json_body, runtime
from broker.ngsild.errors import BadRequestData, ResourceNotFound
from broker.ngsild.names import EXPIRES_AT, check_datetime, is_uri

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
    found = runtime(request).entity_maps.get(map_space(request), _map_id(entityMapId))
    if found is None:
        raise ResourceNotFound(f"EntityMap {entityMapId} does not exist or has expired")
    return Response(orjson.dumps(found.as_json()), media_type="application/json")


@router.patch(
    "/entityMaps/{entityMapId}",
    status_code=204,
    summary="Update EntityMap (§5.14.2)",
    dependencies=[READ],
)
async def update_entity_map(request: Request, entityMapId: str) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise BadRequestData("an EntityMap update is a JSON object")
    # Only expiresAt can change; entityMap and the rest are the broker's (§5.14.2.4).
    when = body.get(EXPIRES_AT)
    map_id = _map_id(entityMapId)
    maps = runtime(request).entity_maps
    if when is None:
        if maps.get(map_space(request), map_id) is None:
            raise ResourceNotFound(f"EntityMap {entityMapId} does not exist or has expired")
        return Response(status_code=204)
    moment = datetime.fromisoformat(check_datetime(when, EXPIRES_AT))
    if not maps.expire_at(map_space(request), map_id, moment):
        raise ResourceNotFound(f"EntityMap {entityMapId} does not exist or has expired")
    return Response(status_code=204)


def _map_id(path_value: str) -> str:
    if not is_uri(path_value):
        raise BadRequestData(f"EntityMap id {path_value!r} is not a URI")
    return path_value


@router.delete(
    "/entityMaps/{entityMapId}", status_code=204, summary="Delete EntityMap", dependencies=[READ]
)
async def delete_entity_map(request: Request, entityMapId: str) -> Response:
    if not runtime(request).entity_maps.delete(map_space(request), _map_id(entityMapId)):
        raise ResourceNotFound(f"EntityMap {entityMapId} does not exist or has expired")
    return Response(status_code=204)
