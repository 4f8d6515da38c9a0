"""``/entities`` and ``/entities/{entityId}``: create, retrieve, replace, merge, delete.

GS CIM 009 v1.8.1 §6.4 and §6.5 (queries are in ``queries``). Each handler reads the request
(``requests``), calls the pure NGSI-LD code and the entity service, and writes the response
(``responses``); nothing else.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from broker.api.access import READ, WRITE, snapshot_headers
from broker.api.entity_maps import ENTITY_MAP_HEADER, map_id_of, map_location, map_space
from broker.api.federated import distributed
from broker.api.media import GEO_JSON, JSON, JSON_LD, negotiate, prefers_plain_body
from broker.api.requests import (
    entity_id_of,
    read_json,
    reads_of,
    runtime,
    selected_types,
    tenant_of,
    terms_of,
)
from broker.api.responses import entities_response, entity_json, json_response
from broker.ngsild.entity import EntityDoc, parse_entity, parse_fragment
from broker.ngsild.errors import BadRequestData, ResourceNotFound
from broker.ngsild.linked import check_join, flatten, render_inline
from broker.ngsild.params import build_view, parse_options
from broker.ngsild.registrations import operations as ops
from broker.ngsild.render import View, render_entity, render_feature, shows_anything
from broker.ngsild.terms import TermTable
from broker.ngsild.values import MERGE_NULLS
from broker.ngsild.versions import downgrade, preference_applied, preferred_version

router = APIRouter(tags=["Entities"])

_OFFERED = (JSON, JSON_LD, GEO_JSON)
Text = Annotated[str | None, Query()]


@router.post("/entities", status_code=201, summary="Create Entity (§5.6.1)", dependencies=[WRITE])
@distributed(ops.CREATE_ENTITY)
async def create_entity(request: Request) -> Response:
    incoming = await read_json(request)
    doc = parse_entity(incoming.body, incoming.terms)
    await runtime(request).entities.create(incoming.tenant, doc)
    return Response(status_code=201, headers={"Location": _location(doc["id"])})


@router.get("/entities/{entityId}", summary="Retrieve Entity (§5.7.1)", dependencies=[READ])
async def retrieve_entity(
    request: Request,
    entityId: str,
    type: Text = None,
    attrs: Text = None,
    pick: Text = None,
    omit: Text = None,
    options: Text = None,
    format: Text = None,
    lang: Text = None,
    geometryProperty: Text = None,
    join: Text = None,
    joinLevel: Annotated[int, Query(ge=1, le=10)] = 1,
    entityMap: Annotated[bool, Query()] = False,
) -> Response:
    entity_id = entity_id_of(entityId)
    media = negotiate(request.headers.get("accept"), _OFFERED)
    terms = await terms_of(request)
    if geometryProperty is not None and media != GEO_JSON:
        raise BadRequestData(
            "geometryProperty is only meaningful with Accept: application/geo+json"
        )
    view = build_view(
        terms,
        options=parse_options(options),
        format_=format,
        attrs=attrs,
        pick=pick,
        omit=omit,
        lang=lang,
    )
    join_mode = check_join(view, join, joinLevel)
    reads = reads_of(request)
    doc = await reads.retrieve(tenant_of(request), entity_id, selected_types(type, terms))
    if not shows_anything(doc, view):
        raise ResourceNotFound(f"entity {entity_id} has none of the attributes asked for")
    headers = _entity_map_headers(request, entityMap, [entity_id]) | snapshot_headers(request)
    if media == GEO_JSON:
        payload = render_feature(doc, terms, view, _geometry_iri(terms, geometryProperty))
        plain = prefers_plain_body(request.headers.get("prefer"))
        return json_response(payload, media, terms, headers=headers, geo_context=not plain)
    if join_mode is None:
        return _versioned(doc, view, media, terms, request, headers)
    linked = await reads.linked_entities(tenant_of(request), [doc], view, joinLevel)
    if join_mode == "inline":
        return json_response(render_inline(doc, terms, view, linked, joinLevel), media, terms)
    flat = [render_entity(d, terms, v) for d, v in flatten(doc, view, linked, joinLevel)]
    return json_response(flat if len(flat) > 1 else flat[0], media, terms)


@router.delete(
    "/entities/{entityId}", status_code=204, summary="Delete Entity (§5.6.6)", dependencies=[WRITE]
)
@distributed(ops.DELETE_ENTITY)
async def delete_entity(
    request: Request,
    entityId: str,
    type: Text = None,
) -> Response:
    entity_id = entity_id_of(entityId)
    types = selected_types(type, await terms_of(request)) if type else None
    await runtime(request).entities.delete(tenant_of(request), entity_id, types)
    return Response(status_code=204)


@router.put(
    "/entities/{entityId}",
    status_code=204,
    summary="Replace Entity (§5.6.18)",
    dependencies=[WRITE],
)
@distributed(ops.REPLACE_ENTITY)
async def replace_entity(request: Request, entityId: str) -> Response:
    entity_id = entity_id_of(entityId)
    incoming = await read_json(request)
    doc = parse_entity(incoming.body, incoming.terms, entity_id=entity_id)
    await runtime(request).entities.replace(incoming.tenant, entity_id, doc)
    return Response(status_code=204)


@router.patch(
    "/entities/{entityId}", status_code=204, summary="Merge Entity (§5.6.17)", dependencies=[WRITE]
)
@distributed(ops.MERGE_ENTITY)
async def merge_entity(
    request: Request,
    entityId: str,
    type: Text = None,
) -> Response:
    entity_id = entity_id_of(entityId)
    incoming = await read_json(request, merge_patch=True)
    fragment = parse_fragment(incoming.body, incoming.terms, nulls=MERGE_NULLS, entity_id=entity_id)
    await runtime(request).entities.merge(
        incoming.tenant, entity_id, fragment, selected_types(type, incoming.terms)
    )
    return Response(status_code=204)


@router.api_route(
    "/entities", methods=["PUT", "PATCH"], include_in_schema=False, dependencies=[WRITE]
)
async def entity_without_id(request: Request) -> Response:
    raise BadRequestData(f"{request.method} needs an entity id: /entities/{{entityId}}")


def _versioned(
    doc: EntityDoc,
    view: View,
    media: str,
    terms: TermTable,
    request: Request,
    headers: dict[str, str],
) -> Response:
    version = preferred_version(request.headers.get("prefer"))
    if version is None:
        return entities_response(entity_json(doc, terms, view), media, terms, headers=headers)
    payload, altered = downgrade(render_entity(doc, terms, view), version)
    headers = {**headers, "Preference-Applied": preference_applied(version)}
    return json_response(payload, media, terms, status=203 if altered else 200, headers=headers)


def _entity_map_headers(request: Request, asked: bool, entity_ids: list[str]) -> dict[str, str]:
    """Record the entities in the request's EntityMap when one is asked for or referenced."""
    referenced = map_id_of(request.headers.get(ENTITY_MAP_HEADER))
    if not asked and referenced is None:
        return {}
    used = runtime(request).entity_maps.record(map_space(request), referenced, entity_ids)
    return {ENTITY_MAP_HEADER: map_location(used.id)}


def _location(entity_id: str) -> str:
    return "/ngsi-ld/v1/entities/" + quote(entity_id, safe=":")


def _geometry_iri(terms: TermTable, name: str | None) -> str:
    return terms.expand(name or "location")
