"""The request parameters that entity queries, temporal queries and snapshots share: the filter
parameters of GET, paging, the checks a query must pass, and the members of a Query body
(GS CIM 009 v1.8.1 §5.2.23, §6.4.3.2, §6.18.3.2, §6.23).
"""

from __future__ import annotations

from dataclasses import replace
from inspect import signature
from typing import Annotated, Any

from fastapi import Query, Request

from broker.api.requests import Incoming, read_json, runtime
from broker.ngsild.errors import BadRequestData
from broker.ngsild.params import build_view
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.geo import parse_geo_object
from broker.ngsild.query.ordering import Ordering, parse_ordering
from broker.ngsild.query.params import (
    Filters,
    Paging,
    narrow_by_selectors,
    parse_entity_query,
    parse_selectors,
    too_wide,
)
from broker.ngsild.query.qlang import parse_q
from broker.ngsild.render import View
from broker.ngsild.terms import TermTable

Text = Annotated[str | None, Query()]


def filter_parameters(
    request: Request,
    type: Text = None,
    id: Text = None,
    idPattern: Text = None,
    attrs: Text = None,
    q: Text = None,
    scopeQ: Text = None,
    georel: Text = None,
    geometry: Text = None,
    coordinates: Text = None,
    geoproperty: Text = None,
) -> Filters:
    """The filter parameters of GET and DELETE /entities and GET /temporal/entities."""
    return Filters(
        type, id, idPattern, attrs, q, scopeQ, georel, geometry, coordinates, geoproperty
    )


def parameter_names(handler: Any) -> frozenset[str]:
    """The query parameters a handler taking the filters knows (to refuse the others)."""
    names = set(signature(handler).parameters) | set(signature(filter_parameters).parameters)
    return frozenset(names - {"request", "filters"})


def paging_of(
    request: Request, limit: int | None, offset: int | None, opts: frozenset[str]
) -> Paging:
    """``limit``/``offset``/``count`` within the installation's page sizes."""
    limits = runtime(request).settings.limits
    return Paging(limit, offset, "count" in opts, limits.default_page_size, limits.max_page_size)


def check_scope(
    query: EntityQuery, terms: TermTable, local: bool | None, *, wildcard: bool = False
) -> None:
    """§5.7.2.4: a query must say what it is about; ids alone are not enough."""
    if wildcard and local is False:
        raise BadRequestData("type=* asks for every entity type, which contradicts local=false")
    if not local and too_wide(query, terms, wildcard=wildcard):
        raise BadRequestData(
            "a query needs a type, a geo-query, scopeQ, or a non-system attribute in attrs or q "
            "(or local=true); ids or an idPattern alone are not enough"
        )


def check_csf(csf: str | None) -> None:
    """``csf`` filters context source registrations (none exist yet), so it is only checked."""
    if csf is not None:
        parse_q(csf, lambda name: name)


def joined(value: Any, member: str) -> str | None:
    """A body member that is a list of names (or one comma-separated string), as text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return ",".join(value)
    raise BadRequestData(f"{member!r} must be a non-empty array of names")


def string_member(value: Any, member: str) -> str | None:
    """A body member that is a string, if present."""
    if value is None or isinstance(value, str):
        return value
    raise BadRequestData(f"{member!r} must be a string")


async def read_query_body(request: Request) -> tuple[dict[str, Any], Incoming]:
    """The Query object (§5.2.23) a POST query sends, and the request it came in."""
    incoming = await read_json(request)
    body = incoming.body
    if not isinstance(body, dict) or body.get("type") != "Query":
        raise BadRequestData('the body must be a Query object with "type": "Query"')
    return body, incoming


def query_of_body(body: dict[str, Any], terms: TermTable, paging: Paging) -> EntityQuery:
    """The entity query a Query object (§5.2.23) asks for, checked as Query Entities checks
    its parameters (also what each of a Snapshot's ``snapshotQueries`` selects)."""
    parsed = Filters(
        attrs=joined(body.get("attrs"), "attrs"),
        q=string_member(body.get("q"), "q"),
        scope_q=string_member(body.get("scopeQ"), "scopeQ"),
    )
    query = parse_entity_query(terms, parsed, paging)
    if "geoQ" in body:
        query = replace(query, geo=parse_geo_object(body["geoQ"], terms.expand))
    if "entities" in body:
        query = narrow_by_selectors(query, parse_selectors(body["entities"], terms))
    if "ordering" in body:
        query = replace(query, ordering=_body_ordering(body["ordering"], terms))
    local = body.get("local")
    check_scope(query, terms, local if isinstance(local, bool) else None)
    check_csf(string_member(body.get("csf"), "csf"))
    return query


def view_of_body(
    body: dict[str, Any], terms: TermTable, options: frozenset[str], format_: str | None
) -> View:
    """What of each entity a Query object asks to be shown (``attrs``, ``pick``, ``omit``,
    ``lang``, ``datasetId``), with the request's ``options`` and ``format``."""
    return build_view(
        terms,
        options=options,
        format_=format_,
        attrs=joined(body.get("attrs"), "attrs"),
        pick=joined(body.get("pick"), "pick"),
        omit=joined(body.get("omit"), "omit"),
        lang=string_member(body.get("lang"), "lang"),
        dataset_id=joined(body.get("datasetId"), "datasetId"),
    )


def _body_ordering(raw: Any, terms: TermTable) -> Ordering:
    """The ``ordering`` member of a Query body (v1.9 §5.2.43)."""
    if not isinstance(raw, dict) or "orderBy" not in raw:
        raise BadRequestData("'ordering' must be an object with an 'orderBy' array")
    return parse_ordering(
        raw["orderBy"],
        terms.expand,
        coordinates=raw.get("coordinates"),
        geometry=raw.get("geometry"),
        collation=raw.get("collation"),
    )
