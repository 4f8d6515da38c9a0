"""Temporal provision: create, add to and delete temporal representations and instances
(GS CIM 009 v1.8.1 §6.18.3.1, §6.19.3.2, §6.20.3.1, §6.21.3.1, §6.22.3.1-2)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from broker.api.access import WRITE
from broker.api.attributes import _attribute_iri
from broker.api.requests import entity_id_of, read_json, runtime, tenant_of, terms_of
from broker.ngsild.entity import entity_body, parse_instance
from broker.ngsild.errors import BadRequestData, OperationNotSupported
from broker.ngsild.names import check_uri
from broker.ngsild.temporal.representation import (
    parse_temporal_attributes,
    parse_temporal_entity,
)
from broker.services.temporal import TemporalRepresentation, TemporalService

router = APIRouter(tags=["Temporal"])

Text = Annotated[str | None, Query()]


def service_of(request: Request) -> TemporalService:
    """The temporal service (absent when the runtime was built without one)."""
    service = runtime(request).temporal
    if service is None:
        raise OperationNotSupported("the Temporal API is not enabled")
    return service


@router.post(
    "/temporal/entities",
    status_code=201,
    summary="Create or Update Temporal Representation of an Entity (§5.6.11)",
    dependencies=[WRITE],
)
async def create_temporal(request: Request) -> Response:
    incoming = await read_json(request)
    entity_id, types, attrs, scope = parse_temporal_entity(incoming.body, incoming.terms)
    created = await service_of(request).create(
        incoming.tenant, TemporalRepresentation(entity_id, types, attrs, scope)
    )
    if not created:
        return Response(status_code=204)
    location = f"/ngsi-ld/v1/temporal/entities/{quote(entity_id, safe=':/')}"
    return Response(status_code=201, headers={"Location": location})


@router.delete(
    "/temporal/entities/{entityId}",
    status_code=204,
    summary="Delete Temporal Representation of an Entity (§5.6.16)",
    dependencies=[WRITE],
)
async def delete_temporal(request: Request, entityId: str) -> Response:
    entity_id = entity_id_of(entityId)
    await service_of(request).delete_entity(tenant_of(request), entity_id)
    return Response(status_code=204)


@router.post(
    "/temporal/entities/{entityId}/attrs",
    status_code=204,
    summary="Add Attributes to Temporal Representation of an Entity (§5.6.12)",
    dependencies=[WRITE],
)
async def add_temporal_attributes(request: Request, entityId: str) -> Response:
    entity_id = entity_id_of(entityId)
    incoming = await read_json(request)
    attrs = parse_temporal_attributes(entity_body(incoming.body), incoming.terms)
    if not attrs:
        raise BadRequestData("the body names no attribute")
    await service_of(request).add_attributes(incoming.tenant, entity_id, attrs)
    return Response(status_code=204)


@router.delete(
    "/temporal/entities/{entityId}/attrs/{attrId}",
    status_code=204,
    summary="Delete Attribute from Temporal Representation of an Entity (§5.6.13)",
    dependencies=[WRITE],
)
async def delete_temporal_attribute(
    request: Request,
    entityId: str,
    attrId: str,
    datasetId: Text = None,
    deleteAll: Annotated[bool, Query()] = False,
) -> Response:
    entity_id = entity_id_of(entityId)
    terms = await terms_of(request)
    iri = _attribute_iri(attrId, terms)
    dataset_id = None if datasetId is None else check_uri(datasetId, "datasetId")
    await service_of(request).delete_attribute(
        tenant_of(request),
        entity_id,
        iri,
        name=attrId,
        dataset_id=dataset_id,
        delete_all=deleteAll,
    )
    return Response(status_code=204)


@router.patch(
    "/temporal/entities/{entityId}/attrs/{attrId}/{instanceId}",
    status_code=204,
    summary="Modify Attribute Instance in Temporal Representation of an Entity (§5.6.14)",
    dependencies=[WRITE],
)
async def modify_temporal_instance(
    request: Request, entityId: str, attrId: str, instanceId: str
) -> Response:
    entity_id = entity_id_of(entityId)
    incoming = await read_json(request)
    iri = _attribute_iri(attrId, incoming.terms)
    instance_id = check_uri(instanceId, "instanceId")
    body = entity_body(incoming.body)
    fragment = body.get(attrId, body)
    if isinstance(fragment, list):
        if len(fragment) != 1:
            raise BadRequestData("a partial update names one instance")
        fragment = fragment[0]
    if isinstance(fragment, dict):
        fragment = {k: v for k, v in fragment.items() if k not in ("@context", "instanceId")}
    instance = parse_instance(fragment, incoming.terms, partial=True, name=attrId)
    await service_of(request).modify_instance(
        incoming.tenant, entity_id, iri, instance_id, instance
    )
    return Response(status_code=204)


@router.delete(
    "/temporal/entities/{entityId}/attrs/{attrId}/{instanceId}",
    status_code=204,
    summary="Delete Attribute Instance from Temporal Representation of an Entity (§5.6.15)",
    dependencies=[WRITE],
)
async def delete_temporal_instance(
    request: Request, entityId: str, attrId: str, instanceId: str
) -> Response:
    entity_id = entity_id_of(entityId)
    terms = await terms_of(request)
    iri = _attribute_iri(attrId, terms)
    instance_id = check_uri(instanceId, "instanceId")
    await service_of(request).delete_instance(tenant_of(request), entity_id, iri, instance_id)
    return Response(status_code=204)
