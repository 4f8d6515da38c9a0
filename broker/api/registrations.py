"""``/csourceRegistrations`` and ``/csourceRegistrations/{registrationId}`` (GS CIM 009 v1.8.1
§6.8, §6.9).

A FIWARE IoT Agent posts its registrations to ``/csourceRegistrations/`` with a trailing
slash, so creation answers there too. Registering a source is a write (WRITE), reading the
registry is a read (READ): whoever may read a tenant's entities may learn where the rest of
them live.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from broker.api.access import READ, WRITE
from broker.api.media import JSON, JSON_LD, negotiate
from broker.api.requests import read_json, refuse_unknown_parameters, runtime, tenant_of, terms_of
from broker.api.responses import json_response
from broker.ngsild.errors import BadRequestData, NonexistentTenant, TooManyResults
from broker.ngsild.names import check_uri
from broker.ngsild.params import parse_options
from broker.ngsild.query.params import Filters, Paging, parse_entity_query
from broker.ngsild.registrations.discovery import (
    CSourceQuery,
    parse_csf,
    parse_temporal,
    query_matches,
)
from broker.ngsild.registrations.documents import render_registration
from broker.ngsild.registrations.registration import parse_registration

router = APIRouter(tags=["Context Source Registrations"])
_OFFERED = (JSON, JSON_LD)
Text = Annotated[str | None, Query()]
_PATH = "/csourceRegistrations"
_QUERY_PARAMETERS = frozenset(
    {
        "id",
        "type",
        "idPattern",
        "attrs",
        "q",
        "csf",
        "georel",
        "geometry",
        "coordinates",
        "geoproperty",
        "timerel",
        "timeAt",
        "endTimeAt",
        "timeproperty",
        "scopeQ",
        "limit",
        "offset",
        "count",
        "options",
        "lang",
    }
)
_SAFE = ":/.*,;()|!~[]@$'"
_FILTERS = _QUERY_PARAMETERS - {"limit", "offset", "count", "options", "lang"}


@router.post(
    _PATH, status_code=201, summary="Register Context Source (§5.9.2)", dependencies=[WRITE]
)
@router.post(_PATH + "/", status_code=201, include_in_schema=False, dependencies=[WRITE])
async def create_registration(request: Request) -> Response:
    incoming = await read_json(request)
    service = runtime(request).registrations
    reg = parse_registration(incoming.body, incoming.terms, now=service.now())
    store = runtime(request).store

    async def entity(entity_id: str) -> Any:
        try:
            return await (await store.tenant(incoming.tenant)).get(entity_id)
        except NonexistentTenant:
            return None

    await service.create(incoming.tenant, reg, entity=entity)
    return created(_location(reg.id))


@router.get(_PATH, summary="Query Context Source Registrations (§5.10.2)", dependencies=[READ])
async def query_registrations(
    request: Request,
    options: Text = None,
    limit: Annotated[int | None, Query()] = None,
    offset: Annotated[int | None, Query()] = None,
    count: Annotated[bool, Query()] = False,
) -> Response:
    refuse_unknown_parameters(request, _QUERY_PARAMETERS)
    media = negotiate(request.headers.get("accept"), _OFFERED)
    terms = await terms_of(request)
    params = request.query_params
    if not any(params.get(name) for name in _FILTERS):
        # §5.10.2.4: at least one filter (entity types, attributes, ...) must be given.
        raise BadRequestData("a registration query needs at least one filter (type, attrs, ...)")
    filters = Filters(
        types=params.get("type") or None,
        ids=params.get("id") or None,
        id_pattern=params.get("idPattern") or None,
        attrs=params.get("attrs") or None,
        q=params.get("q") or None,
        scope_q=params.get("scopeQ") or None,
        georel=params.get("georel"),
        geometry=params.get("geometry"),
        coordinates=params.get("coordinates"),
        geoproperty=params.get("geoproperty") or None,
    )
    entities = parse_entity_query(terms, filters, Paging(limit=1))
    query = CSourceQuery(
        entities,
        csf=parse_csf(params.get("csf") or None, terms),
        temporal=parse_temporal(
            params.get("timerel"),
            params.get("timeAt"),
            params.get("endTimeAt"),
            params.get("timeproperty") or None,
        ),
    )
    opts = parse_options(options) | ({"count"} if count else set())
    limits = runtime(request).settings.limits
    size = limits.default_page_size if limit is None else limit
    start = offset or 0
    if size < 0 or start < 0:
        raise BadRequestData("limit and offset must not be negative")
    if size > limits.max_page_size:
        raise TooManyResults(f"limit {size} is over the maximum of {limits.max_page_size}")
    service = runtime(request).registrations
    found = [
        reg for reg in service.list(tenant_of(request)) if query_matches(query, reg, terms.expand)
    ]
    page = [
        render_registration(reg, terms, sys_attrs="sysAttrs" in opts)
        for reg in found[start : start + size]
    ]
    headers = {"NGSILD-Results-Count": str(len(found))} if "count" in opts else {}
    headers |= registry_page_links(request, start, size, total=len(found))
    return json_response(page, media, terms, headers=headers)


@router.get(
    _PATH + "/{registrationId}",
    summary="Retrieve Context Source Registration (§5.10.1)",
    dependencies=[READ],
)
async def retrieve_registration(
    request: Request, registrationId: str, options: Text = None
) -> Response:
    media = negotiate(request.headers.get("accept"), _OFFERED)
    terms = await terms_of(request)
    reg = runtime(request).registrations.get(tenant_of(request), _reg_id(registrationId))
    body = render_registration(reg, terms, sys_attrs="sysAttrs" in parse_options(options))
    return json_response(body, media, terms)


@router.patch(
    _PATH + "/{registrationId}",
    status_code=204,
    summary="Update Context Source Registration (§5.9.3)",
    dependencies=[WRITE],
)
async def update_registration(request: Request, registrationId: str) -> Response:
    reg_id = _reg_id(registrationId)
    incoming = await read_json(request, merge_patch=True)
    await runtime(request).registrations.update(
        incoming.tenant, reg_id, incoming.body, incoming.terms
    )
    return Response(status_code=204)


@router.delete(
    _PATH + "/{registrationId}",
    status_code=204,
    summary="Delete Context Source Registration (§5.9.4)",
    dependencies=[WRITE],
)
async def delete_registration(request: Request, registrationId: str) -> Response:
    await runtime(request).registrations.delete(tenant_of(request), _reg_id(registrationId))
    return Response(status_code=204)


def created(location: str) -> Response:
    """201 with ``Location`` (§6.8.3.1, §6.12.3.1)."""
    return Response(status_code=201, headers={"Location": location})


def registry_page_links(request: Request, offset: int, limit: int, *, total: int) -> dict[str, str]:
    """``rel="prev"``/``rel="next"`` links (§4.12) of the registry resources: the request's
    own parameters in their order, then ``limit`` and ``offset`` (the form ETSI 037_11 and
    041_03 expect)."""
    if limit == 0:
        return {}
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]
    links = []
    if offset > 0:
        links.append(_link(request, kept, max(0, offset - limit), limit, "prev"))
    if total > offset + limit:
        links.append(_link(request, kept, offset + limit, limit, "next"))
    return {"Link": ", ".join(links)} if links else {}


def _link(request: Request, kept: list[tuple[str, str]], offset: int, limit: int, rel: str) -> str:
    pairs = [*kept, ("limit", str(limit)), ("offset", str(offset))]
    query = "&".join(f"{key}={quote(value, safe=_SAFE)}" for key, value in pairs)
    return f'<{request.url.path}?{query}>;rel="{rel}";type="{JSON_LD}"'


def _reg_id(value: str) -> str:
    return check_uri(value, "registration id")


def _location(reg_id: str) -> str:
    return "/ngsi-ld/v1/csourceRegistrations/" + quote(reg_id, safe=":")
