"""Discovery: ``/types``, ``/types/{type}``, ``/attributes``, ``/attributes/{attrId}``
(GS CIM 009 v1.8.1 §6.25–6.28).

Answers come from the tenant's catalogue, which stores keep current on every write, so these are
cheap whatever the number of entities. Names are compacted with the request's @context; a path
name may be a term or a full IRI. Only the parameters the spec defines are accepted (§6.3.20).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from broker.api.access import READ
from broker.api.media import JSON, JSON_LD, negotiate
from broker.api.requests import reads_of, refuse_unknown_parameters, tenant_of, terms_of
from broker.api.responses import json_response
from broker.ngsild import discovery
from broker.ngsild.catalogue import CatalogueRow
from broker.ngsild.errors import ResourceNotFound
from broker.ngsild.names import check_name
from broker.ngsild.terms import TermTable

router = APIRouter(tags=["Discovery"])
_LOCAL = frozenset({"local"})
_DETAILED = _LOCAL | {"details"}
Flag = Annotated[bool, Query()]


@router.get(
    "/types", summary="Retrieve Available Entity Types (§5.7.5, §5.7.6)", dependencies=[READ]
)
async def entity_types(request: Request, details: Flag = False, local: Flag = False) -> Response:
    refuse_unknown_parameters(request, _DETAILED)
    terms, rows = await _catalogue(request)
    render = discovery.entity_types if details else discovery.entity_type_list
    return _respond(request, render(rows, terms.compact), terms)


@router.get(
    "/types/{type_name:path}",
    summary="Retrieve Available Entity Type Information (§5.7.7)",
    dependencies=[READ],
)
async def entity_type(request: Request, type_name: str, local: Flag = False) -> Response:
    refuse_unknown_parameters(request, _LOCAL)
    terms, rows = await _catalogue(request)
    return _one(request, terms, rows, type_name, "entity type", discovery.entity_type_info)


@router.get(
    "/attributes", summary="Retrieve Available Attributes (§5.7.8, §5.7.9)", dependencies=[READ]
)
async def attributes(request: Request, details: Flag = False, local: Flag = False) -> Response:
    refuse_unknown_parameters(request, _DETAILED)
    terms, rows = await _catalogue(request)
    render = discovery.attributes if details else discovery.attribute_list
    return _respond(request, render(rows, terms.compact), terms)


@router.get(
    "/attributes/{attr_name:path}",
    summary="Retrieve Available Attribute Information (§5.7.10)",
    dependencies=[READ],
)
async def attribute(request: Request, attr_name: str, local: Flag = False) -> Response:
    refuse_unknown_parameters(request, _LOCAL)
    terms, rows = await _catalogue(request)
    return _one(request, terms, rows, attr_name, "attribute", discovery.attribute_info)


async def _catalogue(request: Request) -> tuple[TermTable, list[CatalogueRow]]:
    terms = await terms_of(request)
    return terms, await reads_of(request).catalogue(tenant_of(request))


def _one(
    request: Request,
    terms: TermTable,
    rows: list[CatalogueRow],
    name: str,
    what: str,
    describe: Callable[[list[CatalogueRow], str, Callable[[str], str]], dict[str, Any] | None],
) -> Response:
    found = describe(rows, terms.expand(check_name(name, what)), terms.compact)
    if found is None:
        raise ResourceNotFound(f"no entity in this tenant has the {what} {name!r}")
    return _respond(request, found, terms)


def _respond(request: Request, payload: Any, terms: TermTable) -> Response:
    media = negotiate(request.headers.get("accept"), (JSON, JSON_LD))
    return json_response(payload, media, terms)
