"""``/entities/{entityId}/attrs[/{attrId}]``: append, update, partial update, replace, delete.

GS CIM 009 v1.8.1 §6.6 and §6.7. 204 when everything asked for was done, 207 with an
``UpdateResult`` when some attributes were left alone (§5.2.18).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response

from broker.api.access import WRITE
from broker.api.federated import distributed
from broker.api.requests import (
    entity_id_of,
    read_json,
    runtime,
    selected_types,
    tenant_of,
    terms_of,
)
from broker.ngsild.entity import parse_attribute, parse_fragment, parse_instance
from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import check_name, check_uri
from broker.ngsild.params import parse_options
from broker.ngsild.patch import SCOPE, UpdateResult
from broker.ngsild.registrations import operations as ops
from broker.ngsild.terms import TermTable
from broker.ngsild.values import UPDATE_NULLS

router = APIRouter(tags=["Entity attributes"])
Text = Annotated[str | None, Query()]


@router.post(
    "/entities/{entityId}/attrs",
    status_code=204,
    summary="Append Entity Attributes (§5.6.3)",
    dependencies=[WRITE],
)
@distributed(ops.APPEND_ATTRS)
async def append_attributes(
    request: Request,
    entityId: str,
    options: Text = None,
    type: Text = None,
) -> Response:
    entity_id = entity_id_of(entityId)
    no_overwrite = "noOverwrite" in parse_options(options)
    incoming = await read_json(request)
    fragment = parse_fragment(incoming.body, incoming.terms, entity_id=entity_id)
    committed = await runtime(request).entities.append(
        incoming.tenant,
        entity_id,
        fragment,
        no_overwrite=no_overwrite,
        types=selected_types(type, incoming.terms),
    )
    return _update_response(committed.result, incoming.terms)


@router.patch(
    "/entities/{entityId}/attrs",
    status_code=204,
    summary="Update Entity Attributes (§5.6.2)",
    dependencies=[WRITE],
)
@distributed(ops.UPDATE_ATTRS)
async def update_attributes(
    request: Request,
    entityId: str,
    type: Text = None,
) -> Response:
    entity_id = entity_id_of(entityId)
    incoming = await read_json(request, merge_patch=True)
    fragment = parse_fragment(
        incoming.body, incoming.terms, nulls=UPDATE_NULLS, entity_id=entity_id
    )
    committed = await runtime(request).entities.update_attributes(
        incoming.tenant, entity_id, fragment, selected_types(type, incoming.terms)
    )
    return _update_response(committed.result, incoming.terms)


@router.patch(
    "/entities/{entityId}/attrs/{attrId}",
    status_code=204,
    summary="Partial Attribute Update (§5.6.4)",
    dependencies=[WRITE],
)
@distributed(ops.UPDATE_ATTRS)
async def partial_attribute_update(
    request: Request,
    entityId: str,
    attrId: str,
    type: Text = None,
) -> Response:
    entity_id = entity_id_of(entityId)
    incoming = await read_json(request, merge_patch=True)
    iri = _attribute_iri(attrId, incoming.terms)
    fragment = parse_instance(
        incoming.body, incoming.terms, nulls=UPDATE_NULLS, partial=True, name=attrId
    )
    await runtime(request).entities.partial_update(
        incoming.tenant,
        entity_id,
        iri,
        fragment,
        name=attrId,
        types=selected_types(type, incoming.terms),
    )
    return Response(status_code=204)


@router.put(
    "/entities/{entityId}/attrs/{attrId}",
    status_code=204,
    summary="Replace Attribute (§5.6.19)",
    dependencies=[WRITE],
)
@distributed(ops.REPLACE_ATTRS)
async def replace_attribute(
    request: Request,
    entityId: str,
    attrId: str,
    type: Text = None,
) -> Response:
    entity_id = entity_id_of(entityId)
    incoming = await read_json(request)
    iri = _attribute_iri(attrId, incoming.terms)
    instances = parse_attribute(incoming.body, incoming.terms, name=attrId)
    if len(instances) != 1:
        raise BadRequestData("replace one attribute instance at a time")
    await runtime(request).entities.replace_attribute(
        incoming.tenant,
        entity_id,
        iri,
        instances[0],
        name=attrId,
        types=selected_types(type, incoming.terms),
    )
    return Response(status_code=204)


@router.delete(
    "/entities/{entityId}/attrs/{attrId}",
    status_code=204,
    summary="Delete Attribute (§5.6.5)",
    dependencies=[WRITE],
)
@distributed(ops.DELETE_ATTRS)
async def delete_attribute(
    request: Request,
    entityId: str,
    attrId: str,
    datasetId: Text = None,
    deleteAll: Annotated[bool, Query()] = False,
    type: Text = None,
) -> Response:
    entity_id = entity_id_of(entityId)
    terms = await terms_of(request)
    iri = SCOPE if attrId == SCOPE else _attribute_iri(attrId, terms)
    dataset_id = None if datasetId is None else check_uri(datasetId, "datasetId")
    await runtime(request).entities.delete_attribute(
        tenant_of(request),
        entity_id,
        iri,
        name=attrId,
        dataset_id=dataset_id,
        delete_all=deleteAll,
        types=selected_types(type, terms),
    )
    return Response(status_code=204)


def _attribute_iri(name: str, terms: TermTable) -> str:
    if name == SCOPE:
        raise BadRequestData(
            "scope is an entity member, not an attribute; change it through the entity's /attrs"
        )
    return terms.expand(check_name(name, "attribute name"))


def _update_response(result: UpdateResult, terms: TermTable) -> Response:
    if not result.not_updated:
        return Response(status_code=204)
    body: dict[str, Any] = {
        "updated": [_compact(name, terms) for name in result.updated],
        "notUpdated": [
            {"attributeName": _compact(name, terms), "reason": reason}
            for name, reason in result.not_updated
        ],
    }
    return Response(orjson.dumps(body), 207, media_type="application/json")


def _compact(name: str, terms: TermTable) -> str:
    return name if name == SCOPE else terms.compact(name)
