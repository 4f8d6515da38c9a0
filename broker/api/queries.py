"""Entity queries: ``GET /entities``, ``POST /entityOperations/query`` and purge
``DELETE /entities`` (GS CIM 009 v1.8.1 §6.4.3.2, §6.23; v1.9 §6.4.3.3).

Parameters become one ``EntityQuery`` (``broker.ngsild.query.params``); the page is rendered with
the request's @context. A full page gets a ``Link: <…>; rel="next"`` header pointing at the next
one, so clients can walk a large result without computing offsets.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from broker.api.access import READ, WRITE, snapshot_headers
from broker.api.cursors import next_cursor, resumed
from broker.api.entity_map_queries import mapped_query, matching_ids
from broker.api.entity_maps import ENTITY_MAP_HEADER, map_location, map_space
from broker.api.federated import distributed
from broker.api.media import GEO_JSON, JSON, JSON_LD, negotiate, prefers_plain_body
from broker.api.query_params import (
    check_csf,
    check_scope,
    filter_parameters,
    paging_of,
    parameter_names,
    query_of_body,
    read_query_body,
    string_member,
    view_of_body,
)
from broker.api.requests import (
    reads_of,
    refuse_unknown_parameters,
    runtime,
    tenant_of,
    terms_of,
)
from broker.api.responses import (
    count_headers,
    entities_json,
    entities_response,
    feature_collection,
    json_response,
    page_links,
)
from broker.ngsild.durations import parse_duration
from broker.ngsild.errors import BadRequestData
from broker.ngsild.linked import check_join, render_joined
from broker.ngsild.params import build_view, expand_names, parse_options, split_list
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.ordering import parse_ordering
from broker.ngsild.query.params import (
    WILDCARD,
    Filters,
    Paging,
    parse_entity_query,
    too_wide,
)
from broker.ngsild.query.qlang import link_depth
from broker.ngsild.registrations import operations as ops
from broker.ngsild.render import View, render_feature
from broker.ngsild.terms import TermTable
from broker.store.base import QueryPage

router = APIRouter(tags=["Entities"])

_OFFERED = (JSON, JSON_LD, GEO_JSON)
Text = Annotated[str | None, Query()]
Number = Annotated[int | None, Query()]
Flag = Annotated[bool, Query()]
_SAFE = ":/.*,;()|!~[]@$'"
_TEMPORAL = frozenset({"timerel", "timeAt", "endTimeAt", "timeproperty", "lastN"})


@router.get("/entities", summary="Query Entities (§5.7.2)", dependencies=[READ])
async def query_entities(
    request: Request,
    filters: Annotated[Filters, Depends(filter_parameters)],
    csf: Text = None,
    pick: Text = None,
    omit: Text = None,
    options: Text = None,
    format: Text = None,
    lang: Text = None,
    datasetId: Text = None,
    geometryProperty: Text = None,
    join: Text = None,
    joinLevel: Number = None,
    orderBy: Text = None,
    orderFrom: Text = None,
    expandValues: Text = None,
    collation: Text = None,
    local: Annotated[bool | None, Query()] = None,
    splitEntities: Flag = False,
    count: Flag = False,
    limit: Number = None,
    offset: Number = None,
    entityMap: Flag = False,
    cursor: Text = None,
) -> Response:
    _refuse_temporal(request.query_params)
    refuse_unknown_parameters(request, _QUERY_PARAMETERS)
    media = negotiate(request.headers.get("accept"), _OFFERED)
    if geometryProperty is not None and media != GEO_JSON:
        raise BadRequestData(
            "geometryProperty is only meaningful with Accept: application/geo+json"
        )
    terms = await terms_of(request)
    opts = parse_options(options) | ({"count"} if count else set())
    filters = replace(filters, expand_values=expandValues)
    query = parse_entity_query(terms, filters, paging_of(request, limit, offset, opts))
    if orderBy is not None:
        ordering = parse_ordering(orderBy, terms.expand, coordinates=orderFrom, collation=collation)
        query = replace(query, ordering=ordering)
    check_scope(query, terms, local, wildcard=filters.types == WILDCARD)
    check_csf(csf)
    view = build_view(
        terms,
        options=opts,
        format_=format,
        attrs=filters.attrs,
        pick=pick,
        omit=omit,
        lang=lang,
        dataset_id=datasetId,
    )
    join_mode, levels = (
        check_join(view, join, 1 if joinLevel is None else joinLevel),
        joinLevel or 1,
    )
    _check_linked_q(query, join_mode, levels)
    query = resumed(request, query, cursor)
    page, headers, status = await mapped_query(request, _picked(query, view), entityMap)
    return await _page_response(
        request,
        page,
        query,
        media,
        terms,
        view,
        geometryProperty,
        join_mode,
        levels,
        extra=headers,
        status=status,
        resumable=query.resumable,
    )


@router.get(
    "/entityMaps", status_code=201, summary="Create EntityMap (§5.14.4)", dependencies=[READ]
)
async def create_entity_map(
    request: Request,
    filters: Annotated[Filters, Depends(filter_parameters)],
    entityMapLifetime: Text = None,
    local: Annotated[bool | None, Query()] = None,
) -> Response:
    refuse_unknown_parameters(request, _MAP_PARAMETERS)
    lifetime = None
    if entityMapLifetime is not None:
        lifetime = parse_duration(entityMapLifetime, "entityMapLifetime")
    terms = await terms_of(request)
    query = parse_entity_query(terms, filters, paging_of(request, None, None, frozenset()))
    check_scope(query, terms, local, wildcard=filters.types == WILDCARD)
    ids = await matching_ids(request, query)
    created = runtime(request).entity_maps.create(map_space(request), ids, lifetime)
    return Response(
        orjson.dumps(created.as_json()),
        201,
        headers={ENTITY_MAP_HEADER: map_location(created.id)},
        media_type="application/json",
    )


@router.post(
    "/entityOperations/query",
    summary="Query Entities via POST (§5.7.2, §6.23)",
    dependencies=[READ],
)
async def query_entities_by_post(
    request: Request,
    options: Text = None,
    format: Text = None,
    count: Flag = False,
    limit: Number = None,
    offset: Number = None,
) -> Response:
    media = negotiate(request.headers.get("accept"), _OFFERED)
    body, incoming = await read_query_body(request)
    if "temporalQ" in body:
        raise BadRequestData("temporalQ belongs to the temporal API (/temporal/entities), not here")
    terms = incoming.terms
    opts = parse_options(options) | ({"count"} if count else set())
    query = query_of_body(body, terms, paging_of(request, limit, offset, opts))
    view = view_of_body(body, terms, opts, format)
    levels = body.get("joinLevel", 1)
    if not isinstance(levels, int) or isinstance(levels, bool):
        raise BadRequestData("joinLevel must be a positive integer")
    join_mode = check_join(view, string_member(body.get("join"), "join"), levels)
    _check_linked_q(query, join_mode, levels)
    page = await reads_of(request).query(incoming.tenant, _picked(query, view))
    return await _page_response(request, page, query, media, terms, view, None, join_mode, levels)


@router.delete(
    "/entities", status_code=204, summary="Purge Entities (§5.6.21, v1.9)", dependencies=[WRITE]
)
@distributed(ops.PURGE_ENTITY)
async def purge_entities(
    request: Request,
    filters: Annotated[Filters, Depends(filter_parameters)],
    keep: Text = None,
    drop: Text = None,
    local: Flag = False,
) -> Response:
    refuse_unknown_parameters(request, _PURGE_PARAMETERS)
    terms = await terms_of(request)
    if keep is not None and drop is not None:
        raise BadRequestData("keep and drop cannot be used together")
    query = parse_entity_query(terms, filters, Paging())
    if query.q is not None and link_depth(query.q):
        # §5.6.21.4: purge has no Linked Entity retrieval to follow Relationships with.
        raise BadRequestData("purge cannot follow Relationships in q (rel{...})")
    if not local and too_wide(query, terms):
        raise BadRequestData(
            "purge needs type, attrs, q or a geo-query naming a non-system attribute "
            "(or local=true); id and idPattern alone would be too wide"
        )
    await runtime(request).entities.purge(
        tenant_of(request),
        query,
        keep=None if keep is None else _names(keep, terms),
        drop=None if drop is None else _names(drop, terms),
    )
    return Response(status_code=204)


async def _page_response(
    request: Request,
    page: QueryPage,
    query: EntityQuery,
    media: str,
    terms: TermTable,
    view: View,
    geometry_property: str | None,
    join_mode: str | None,
    levels: int,
    *,
    extra: dict[str, str] | None = None,
    status: int = 200,
    resumable: bool = False,
) -> Response:
    headers = count_headers(page) | snapshot_headers(request) | (extra or {})
    last = page.last if resumable else None
    headers |= page_links(
        request,
        query.offset,
        query.limit,
        returned=len(page.entities),
        total=page.total,
        media=media,
        cursor=None if last is None else partial(next_cursor, request, last=last),
    )
    if media == GEO_JSON:
        geometry = terms.expand(geometry_property or "location")
        features = [render_feature(doc, terms, view, geometry) for doc in page.entities]
        plain = prefers_plain_body(request.headers.get("prefer"))
        return json_response(
            feature_collection(features),
            media,
            terms,
            status=status,
            headers=headers,
            geo_context=not plain,
        )
    if join_mode is None:
        texts = entities_json(page.entities, terms, view)
        return entities_response(texts, media, terms, status=status, headers=headers)
    linked = await reads_of(request).linked_entities(
        tenant_of(request), page.entities, view, levels
    )
    rendered = render_joined(page.entities, terms, view, linked, levels, join_mode)
    return json_response(rendered, media, terms, status=status, headers=headers)


def _check_linked_q(query: EntityQuery, join_mode: str | None, levels: int) -> None:
    """§5.7.2.4: a ``q`` that follows Relationships (``rel{attr}``) is Linked Entity
    retrieval, so it needs ``join`` and a ``joinLevel`` at least as deep."""
    depth = 0 if query.q is None else link_depth(query.q)
    if depth and (join_mode is None or depth > levels):
        raise BadRequestData(
            f"q follows Relationships {depth} level(s) deep (rel{{...}}); "
            f"add join=inline or join=flat with joinLevel >= {depth}"
        )


def _picked(query: EntityQuery, view: View) -> EntityQuery:
    """A ``pick`` of attributes only leaves nothing of an entity without them: such entities
    are not part of the result (as with ``attrs``), so they must not take up page slots."""
    if view.attrs and not view.members and query.attrs is None:
        return replace(query, attrs=tuple(sorted(view.attrs)))
    return query


def _refuse_temporal(params: Any) -> None:
    temporal = sorted(_TEMPORAL.intersection(params))
    if temporal:
        raise BadRequestData(
            f"{', '.join(temporal)} belong to the temporal API (/temporal/entities), not here"
        )


def _names(text: str, terms: TermTable) -> frozenset[str]:
    return expand_names(split_list(text) or [], terms)


_QUERY_PARAMETERS = parameter_names(query_entities)
_PURGE_PARAMETERS = parameter_names(purge_entities)
_MAP_PARAMETERS = parameter_names(create_entity_map)
