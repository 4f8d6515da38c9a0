"""Temporal consumption: ``GET /temporal/entities``, ``GET /temporal/entities/{entityId}`` and
``POST /temporal/entityOperations/query`` (GS CIM 009 v1.8.1 §6.18, §6.19, §6.24).

Entities are selected with the same filters, paging and grants as entity queries
(``reads_of``); their history is then read for the page and rendered normalized,
``temporalValues`` or ``aggregatedValues``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from broker.api.access import READ
from broker.api.media import JSON, JSON_LD, negotiate
from broker.api.query_params import (
    check_csf,
    check_scope,
    filter_parameters,
    paging_of,
    parameter_names,
    query_of_body,
    read_query_body,
    view_of_body,
)
from broker.api.requests import (
    entity_id_of,
    reads_of,
    refuse_unknown_parameters,
    runtime,
    tenant_of,
    terms_of,
)
from broker.api.responses import count_headers, json_response, page_links
from broker.api.temporal_maps import MapUse, fixed_by_map, map_headers, map_use
from broker.api.temporal_provision import service_of
from broker.auth.grants import shared_view
from broker.ngsild.entity import EntityDoc
from broker.ngsild.errors import BadRequestData, ResourceNotFound
from broker.ngsild.params import build_view, parse_options, split_list
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.ordering import Ordering, parse_ordering
from broker.ngsild.query.params import (
    WILDCARD,
    Filters,
    parse_entity_query,
)
from broker.ngsild.query.qlang import link_depth
from broker.ngsild.render import View
from broker.ngsild.temporal.paging import cap
from broker.ngsild.temporal.query import HistorySelection, TemporalQuery, parse_temporal_query
from broker.ngsild.temporal.render import render_aggregated, render_temporal
from broker.ngsild.temporal.window import Interval, restrict
from broker.ngsild.terms import TermTable
from broker.store.base import QueryPage

router = APIRouter(tags=["Temporal"])

_OFFERED = (JSON, JSON_LD)
Text = Annotated[str | None, Query()]
Number = Annotated[int | None, Query()]
Flag = Annotated[bool, Query()]
_TEMPORAL_OPTIONS = frozenset({"temporalValues", "aggregatedValues"})
_MEMBERS = frozenset({"id", "type", "scope", "createdAt", "modifiedAt"})


def _options(
    text: str | None, format_: str | None = None
) -> tuple[str | None, frozenset[str], str | None]:
    """``options`` split into the entity options and the temporal ones, and ``format``
    (§6.3.12: ``format=temporalValues|aggregatedValues`` wins over ``options``)."""
    items = split_list(text) or []
    temporal = frozenset(i for i in items if i in _TEMPORAL_OPTIONS)
    rest = [i for i in items if i not in _TEMPORAL_OPTIONS]
    if format_ in _TEMPORAL_OPTIONS:
        return (",".join(rest) if rest else None), frozenset({format_}), None
    return (",".join(rest) if rest else None), temporal, format_


@router.get(
    "/temporal/entities",
    summary="Query Temporal Evolution of Entities (§5.7.4)",
    dependencies=[READ],
)
async def query_temporal(
    request: Request,
    filters: Annotated[Filters, Depends(filter_parameters)],
    timerel: Text = None,
    timeAt: Text = None,
    endTimeAt: Text = None,
    timeproperty: Text = None,
    lastN: Text = None,
    aggrMethods: Text = None,
    aggrPeriodDuration: Text = None,
    options: Text = None,
    format: Text = None,
    pick: Text = None,
    omit: Text = None,
    lang: Text = None,
    datasetId: Text = None,
    csf: Text = None,
    orderBy: Text = None,
    expandValues: Text = None,
    local: Annotated[bool | None, Query()] = None,
    entityMap: Flag = False,
    count: Flag = False,
    limit: Number = None,
    offset: Number = None,
) -> Response:
    refuse_unknown_parameters(request, _QUERY_PARAMETERS)
    media = negotiate(request.headers.get("accept"), _OFFERED)
    terms = await terms_of(request)
    entity_options, temporal, format = _options(options, format)
    opts = _entity_options(entity_options, format, count)
    filters = replace(filters, expand_values=expandValues)
    query = parse_entity_query(terms, filters, paging_of(request, limit, offset, opts))
    check_scope(query, terms, local, wildcard=filters.types == WILDCARD)
    check_csf(csf)
    if orderBy is not None:
        query = replace(query, ordering=_id_ordering(orderBy, terms))
    temporal_query = parse_temporal_query(
        request.query_params, aggregated="aggregatedValues" in temporal
    )
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
    use = map_use(request, entityMap)
    query = fixed_by_map(request, use, query)
    return await _answer(request, query, temporal_query, temporal, view, terms, media, use)


@router.post(
    "/temporal/entityOperations/query",
    summary="Query Temporal Evolution of Entities via POST (§5.7.4, §6.24)",
    dependencies=[READ],
)
async def query_temporal_by_post(
    request: Request,
    options: Text = None,
    format: Text = None,
    count: Flag = False,
    limit: Number = None,
    offset: Number = None,
) -> Response:
    media = negotiate(request.headers.get("accept"), _OFFERED)
    body, incoming = await read_query_body(request)
    terms = incoming.terms
    entity_options, temporal, format = _options(options, format)
    opts = _entity_options(entity_options, format, count)
    query = query_of_body(body, terms, paging_of(request, limit, offset, opts))
    if query.ordering is not None:
        query = replace(query, ordering=_id_only(query.ordering))
    temporal_q = body.get("temporalQ") or {}
    aggr = body.get("aggrParams") or {}
    if not isinstance(temporal_q, dict) or not isinstance(aggr, dict):
        raise BadRequestData("temporalQ and aggrParams must be JSON objects")
    params = {**temporal_q, **aggr}
    aggregated = "aggregatedValues" in temporal or "aggrMethods" in params
    temporal_query = parse_temporal_query(params, aggregated=aggregated)
    if aggregated:
        temporal = temporal | {"aggregatedValues"}
    view = view_of_body(body, terms, opts, format)
    return await _answer(request, query, temporal_query, temporal, view, terms, media)


@router.get(
    "/temporal/entities/{entityId}",
    summary="Retrieve Temporal Evolution of an Entity (§5.7.3)",
    dependencies=[READ],
)
async def retrieve_temporal(
    request: Request,
    entityId: str,
    attrs: Text = None,
    type: Text = None,
    timerel: Text = None,
    timeAt: Text = None,
    endTimeAt: Text = None,
    timeproperty: Text = None,
    lastN: Text = None,
    aggrMethods: Text = None,
    aggrPeriodDuration: Text = None,
    options: Text = None,
    format: Text = None,
    pick: Text = None,
    omit: Text = None,
    lang: Text = None,
    datasetId: Text = None,
    entityMap: Flag = False,
) -> Response:
    entity_id = entity_id_of(entityId)
    media = negotiate(request.headers.get("accept"), _OFFERED)
    terms = await terms_of(request)
    entity_options, temporal, format = _options(options, format)
    opts = _entity_options(entity_options, format, False)
    temporal_query = parse_temporal_query(
        request.query_params, aggregated="aggregatedValues" in temporal
    )
    view = build_view(
        terms,
        options=opts,
        format_=format,
        attrs=attrs,
        pick=pick,
        omit=omit,
        lang=lang,
        dataset_id=datasetId,
    )
    _check_unlinked(view, temporal_query)
    types = None if type is None else [terms.expand(t) for t in split_list(type) or []]
    try:
        doc = await reads_of(request).retrieve(tenant_of(request), entity_id, types)
    except ResourceNotFound:
        doc = await _vanished(request, entity_id, types)
    ((rendered, _),) = await _render(request, [doc], temporal_query, temporal, view, terms)
    shown_attributes = set(rendered) - _MEMBERS
    if not rendered or (view.attrs is not None and not shown_attributes):
        # §5.7.3.4: attrs/pick/omit that leave nothing of the entity find nothing.
        raise ResourceNotFound(f"entity {entity_id} has nothing of what was asked for")
    headers = map_headers(request, map_use(request, entityMap), [entity_id])
    return _partial(request, json_response(rendered, media, terms, headers=headers))


async def _vanished(request: Request, entity_id: str, types: list[str] | None) -> EntityDoc:
    """A deleted or expired entity whose history stays is served from that history, as the
    caller would have seen the entity (type selector, grants); else it does not exist."""
    doc = await service_of(request).vanished(tenant_of(request), entity_id)
    grants = request.state.access.grants
    if doc is not None and grants is not None:
        doc = shared_view(doc, grants)
    if doc is None or (types is not None and not set(types) & set(doc["type"])):
        raise ResourceNotFound(f"entity {entity_id} does not exist")
    return doc


def _entity_options(text: str | None, format_: str | None, count: bool) -> frozenset[str]:
    return parse_options(text) | ({"count"} if count else set())


async def _answer(
    request: Request,
    query: EntityQuery,
    temporal_query: TemporalQuery,
    temporal: frozenset[str],
    view: View,
    terms: TermTable,
    media: str,
    use: MapUse | None = None,
) -> Response:
    if query.q is not None and link_depth(query.q):
        raise BadRequestData("a temporal query cannot follow Relationships in q (rel{...})")
    periods = None
    if query.q is not None or query.geo is not None or query.scope is not None:
        limit = runtime(request).settings.temporal.max_instances
        windowed = await service_of(request).windowed(
            reads_of(request),
            tenant_of(request),
            query,
            HistorySelection(temporal_query, view.attrs, limit=limit + 1),
        )
        page = QueryPage(windowed.entities, windowed.total if query.count else None)
        periods = windowed.periods
    else:
        page = await reads_of(request).query(tenant_of(request), query)
    pairs = await _render(
        request, page.entities, temporal_query, temporal, view, terms, periods=periods
    )
    # §5.7.4: an entity with no instance in the time range is no match of a temporal query.
    rendered = [item for item, has in pairs if has]
    headers = count_headers(page)
    headers |= page_links(
        request,
        query.offset,
        query.limit,
        returned=len(page.entities),
        total=page.total,
        media=media,
    )
    status = 200
    if use is not None and use.wanted:
        headers |= map_headers(request, use, [item["id"] for item in rendered if "id" in item])
        status = 200 if use.live is not None else 201
    return _partial(request, json_response(rendered, media, terms, status=status, headers=headers))


def _partial(request: Request, response: Response) -> Response:
    """§6.3.10: a response whose time range was cut is 206 with a ``Content-Range``."""
    content_range = getattr(request.state, "content_range", None)
    if content_range is not None:
        response.status_code = 206
        response.headers["Content-Range"] = content_range
    return response


async def _render(
    request: Request,
    docs: list[EntityDoc],
    temporal_query: TemporalQuery,
    temporal: frozenset[str],
    view: View,
    terms: TermTable,
    *,
    periods: dict[str, list[Interval]] | None = None,
) -> list[tuple[dict[str, Any], bool]]:
    """Each entity's temporal representation, and whether it has history in range."""
    _check_unlinked(view, temporal_query)
    service = service_of(request)
    tenant = tenant_of(request)
    # A pick of entity members only (no attributes) still needs history to tell whether the
    # entity has instances in range; the view hides them.
    attrs = None if view.attrs == frozenset() else view.attrs
    selection = HistorySelection(temporal_query, attrs, view.dataset_ids)
    ids = [doc["id"] for doc in docs]
    shared = request.state.access.grants is not None
    if temporal_query.aggregation is not None:
        aggregates = await service.aggregate(tenant, ids, selection)
        methods = temporal_query.aggregation.methods
        return [
            (
                render_aggregated(
                    doc, _visible(aggregates.get(doc["id"], []), doc, shared), terms, view, methods
                ),
                bool(aggregates.get(doc["id"])),
            )
            for doc in docs
        ]
    limit = runtime(request).settings.temporal.max_instances
    history = await service.history(tenant, ids, replace(selection, limit=limit + 1))
    if periods is not None:
        history = {
            entity: restrict(series, periods.get(entity, []), temporal_query.timeproperty)
            for entity, series in history.items()
        }
    history, cut = cap(history, temporal_query, limit)
    if cut is not None:
        request.state.content_range = cut.header()
    return [
        (
            render_temporal(
                doc,
                _visible(history.get(doc["id"], []), doc, shared),
                terms,
                view,
                simplified="temporalValues" in temporal,
                timeproperty=temporal_query.timeproperty,
            ),
            bool(history.get(doc["id"])),
        )
        for doc in docs
    ]


def _check_unlinked(view: View, temporal_query: TemporalQuery) -> None:
    """§5.7.3.4, §5.7.4.4: the temporal API has no Linked Entity retrieval."""
    if view.linked:
        raise BadRequestData("the temporal API cannot project linked entities (pick={...})")


def _id_ordering(text: str, terms: TermTable) -> Ordering:
    return _id_only(parse_ordering(text, terms.expand))


def _id_only(ordering: Ordering) -> Ordering:
    """§5.7.4.4: temporal results may be ordered by ``id`` only."""
    if any(key.path.attr != "id" or key.path.subs or key.distance for key in ordering.keys):
        raise BadRequestData("a temporal query can be ordered by id only")
    return ordering


def _visible(series: list[Any], doc: EntityDoc, shared: bool) -> list[Any]:
    """A caller reading through grants sees the history of the attributes they share only
    (the entity it got is already projected to them)."""
    if not shared:
        return series
    return [item for item in series if item.attr in doc["attrs"]]


_QUERY_PARAMETERS = parameter_names(query_temporal)
