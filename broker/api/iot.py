"""``/iot/groups`` (alias ``/iot/services``) and ``/iot/devices``: FIWARE IoT Agent provisioning.

The same paths, bodies and status codes as the IoT Agent's north port (node-lib ``doc/api.md``),
so existing provisioning tools and scripts work against Toshi unchanged. The tenant comes from
``NGSILD-Tenant``, else from the IoT Agent's ``Fiware-Service``; ``Fiware-ServicePath`` has no
NGSI-LD meaning and is ignored. Errors are NGSI-LD ProblemDetails like everywhere else.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from broker.api.access import Need, policy
from broker.api.requests import json_body, runtime, tenant_of
from broker.ngsild.errors import BadRequestData, OperationNotSupported
from broker.ngsild.tenants import tenant_from_header
from broker.services.provisioning.parse import parse_devices, parse_groups
from broker.services.provisioning.service import ProvisioningService

router = APIRouter(prefix="/iot", tags=["IoT provisioning"])
_log = logging.getLogger(__name__)
Page = Annotated[int | None, Query()]
Key = Annotated[str, Query()]


def provisioning_tenant(request: Request) -> str:
    """``NGSILD-Tenant``, else ``Fiware-Service`` (folded to lower case like every tenant)."""
    header = request.headers.get("ngsild-tenant")
    if header is None or not header.strip():
        header = request.headers.get("fiware-service")
    service_path = request.headers.get("fiware-servicepath")
    if service_path:
        _log.debug("Fiware-ServicePath %r ignored: NGSI-LD has no service paths", service_path)
    return tenant_from_header(header)


ADMIN = policy(Need.ADMIN, provisioning_tenant)
"""Provisioning is the tenant admin's, in the tenant the IoT Agent's headers name."""


def _service(request: Request) -> ProvisioningService:
    service = runtime(request).provisioning
    if service is None:
        raise OperationNotSupported("device provisioning is not enabled on this broker")
    return service


def _without_secrets(raw: dict[str, Any]) -> dict[str, Any]:
    """What GET shows: the provisioned document, with the network server's password masked
    (anyone who may list a town's devices need not learn its LoRaWAN credentials)."""
    server = raw.get("internal_attributes", {}).get("lorawan", {}).get("application_server")
    if not isinstance(server, dict) or "password" not in server:
        return raw
    lorawan = {**raw["internal_attributes"]["lorawan"]}
    lorawan["application_server"] = {**server, "password": "********"}
    return {**raw, "internal_attributes": {**raw["internal_attributes"], "lorawan": lorawan}}


def _listing(
    collection: str, docs: list[dict[str, Any]], limit: int | None, offset: int | None
) -> Response:
    start = offset or 0
    if start < 0 or (limit is not None and limit < 0):
        raise BadRequestData("limit and offset must not be negative")
    page = docs[start:] if limit is None else docs[start : start + limit]
    page = [_without_secrets(doc) for doc in page]
    body = {"count": len(docs), collection: page}
    return Response(orjson.dumps(body), media_type="application/json")


def _add_group_routes(collection: str) -> None:
    """The group routes under ``/iot/<collection>``; the listing's key follows the path."""

    async def create_groups(request: Request) -> Response:
        groups = parse_groups(await json_body(request))
        await _service(request).create_groups(tenant_of(request), groups)
        return Response(status_code=201)

    async def list_groups(request: Request, limit: Page = None, offset: Page = None) -> Response:
        groups = _service(request).groups(tenant_of(request))
        return _listing(collection, [group.raw for group in groups], limit, offset)

    async def update_group(request: Request, resource: Key, apikey: Key) -> Response:
        fragment = await json_body(request)
        tenant = tenant_of(request)
        await _service(request).update_group(tenant, resource, apikey, fragment)
        return Response(status_code=204)

    async def delete_group(request: Request, resource: Key, apikey: Key) -> Response:
        await _service(request).delete_group(tenant_of(request), resource, apikey)
        return Response(status_code=204)

    path = f"/{collection}"
    router.add_api_route(
        path, create_groups, methods=["POST"], status_code=201, dependencies=[ADMIN]
    )
    router.add_api_route(path, list_groups, methods=["GET"], dependencies=[ADMIN])
    router.add_api_route(path, update_group, methods=["PUT"], status_code=204, dependencies=[ADMIN])
    router.add_api_route(
        path, delete_group, methods=["DELETE"], status_code=204, dependencies=[ADMIN]
    )


for _collection in ("groups", "services"):
    _add_group_routes(_collection)


@router.post("/devices", status_code=201, summary="Provision devices", dependencies=[ADMIN])
async def create_devices(request: Request) -> Response:
    devices = parse_devices(await json_body(request))
    await _service(request).create_devices(tenant_of(request), devices)
    return Response(status_code=201)


@router.get("/devices", summary="List provisioned devices", dependencies=[ADMIN])
async def list_devices(request: Request, limit: Page = None, offset: Page = None) -> Response:
    devices = _service(request).devices(tenant_of(request))
    return _listing("devices", [device.raw for device in devices], limit, offset)


@router.get("/devices/{device_id}", summary="Retrieve a provisioned device", dependencies=[ADMIN])
async def retrieve_device(request: Request, device_id: str) -> Response:
    device = _service(request).device(tenant_of(request), device_id)
    return Response(orjson.dumps(_without_secrets(device.raw)), media_type="application/json")


@router.put(
    "/devices/{device_id}",
    status_code=204,
    summary="Change a provisioned device",
    dependencies=[ADMIN],
)
async def update_device(request: Request, device_id: str) -> Response:
    fragment = await json_body(request)
    await _service(request).update_device(tenant_of(request), device_id, fragment)
    return Response(status_code=204)


@router.delete(
    "/devices/{device_id}",
    status_code=204,
    summary="Remove a provisioned device",
    dependencies=[ADMIN],
)
async def delete_device(request: Request, device_id: str) -> Response:
    await _service(request).delete_device(tenant_of(request), device_id)
    return Response(status_code=204)


@router.get("/dead-letters", summary="Device messages set aside, newest last", dependencies=[ADMIN])
async def dead_letters(request: Request, limit: Page = None, offset: Page = None) -> Response:
    """What the ingest adapter could not use for this tenant, and why (see ``/metrics``)."""
    kept = runtime(request).dead_letters
    if kept is None:
        raise OperationNotSupported("the ingest adapter is not enabled on this broker")
    letters = kept.for_tenant(tenant_of(request))
    return _listing("deadLetters", [letter.as_json() for letter in letters], limit, offset)
