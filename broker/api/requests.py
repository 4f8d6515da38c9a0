"""Reading a request: its tenant, its @context (as a term table) and its JSON body.

GS CIM 009 v1.8.1 §6.3.5: with ``application/json`` the @context comes from the ``Link`` header
(and a body ``@context`` is an error); with ``application/ld+json`` it comes from the body (and a
``Link`` header as well is an error). No @context at all means the core context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from fastapi import Request

from broker.api.media import JSON_LD, content_type, context_link
from broker.ngsild.errors import BadRequestData, InvalidRequest
from broker.ngsild.names import is_uri
from broker.ngsild.params import expand_names, split_list
from broker.ngsild.terms import TermTable
from broker.runtime import Runtime
from broker.services.federation.reads import FederatedReads
from broker.services.federation.service import WARNINGS, Scope
from broker.services.shared_reads import EntityReads, SharedReads


@dataclass(slots=True)
class Incoming:
    """A request body with what is needed to understand it."""

    tenant: str
    terms: TermTable
    body: Any


def runtime(request: Request) -> Runtime:
    """The broker parts the app was built with."""
    return request.app.state.runtime  # type: ignore[no-any-return]


def tenant_of(request: Request) -> str:
    """The tenant the request targets ('' for the default tenant), as its route's policy
    resolved it (``broker.api.access``)."""
    return request.state.access.tenant  # type: ignore[no-any-return]


def reads_of(request: Request) -> EntityReads:
    """What the request reads entities through: the tenant's entities, or, for a caller that
    sees the tenant through grants only, what those grants share; either together with the
    registered context sources when the tenant has some (issue 14)."""
    return _reads(request, partial(federation_scope, request))


async def lasting_reads(request: Request) -> EntityReads:
    """``reads_of`` for work that goes on after the response (a Snapshot's fill): whether and
    where its reads are distributed is decided now, while the request is at hand."""
    scope = await federation_scope(request)

    async def decided() -> Scope | None:
        return scope

    return _reads(request, decided)


def _reads(request: Request, scope: Callable[[], Awaitable[Scope | None]]) -> EntityReads:
    access = request.state.access
    parts = runtime(request)
    entities = parts.entities
    reads: EntityReads = entities if access.grants is None else SharedReads(entities, access.grants)
    if not parts.federation.distributes(access.tenant):
        return reads
    return FederatedReads(reads, parts.federation, scope)


async def federation_scope(request: Request) -> Scope | None:
    """The request's distribution scope (``None``: it stays local); ``local`` is a query
    parameter or, for ``POST /entityOperations/query``, a member of the body."""
    local = request.query_params.get("local") == "true"
    if not local and request.method == "POST" and request.url.path.endswith("/query"):
        body = await json_body(request)
        local = isinstance(body, dict) and body.get("local") is True
    scope = runtime(request).federation.scope(
        tenant_of(request),
        {name.lower(): value for name, value in request.headers.items()},
        await _request_terms(request),
        dict(request.query_params),
        local=local,
    )
    if scope is not None:  # broker.api.federated.WarningHeaders sends them (§6.3.17)
        setattr(request.state, WARNINGS, scope.warnings)
    return scope


def list_window(request: Request, limit: int | None, offset: int | None) -> tuple[int, int]:
    """(page size, start) of a listing of in-memory documents (subscriptions), within the
    configured page limits."""
    limits = runtime(request).settings.limits
    size = limits.default_page_size if limit is None else limit
    start = offset or 0
    if size < 0 or start < 0 or size > limits.max_page_size:
        raise BadRequestData(f"limit must be 0..{limits.max_page_size} and offset not negative")
    return size, start


def refuse_unknown_parameters(request: Request, known: frozenset[str]) -> None:
    """§6.3.20: a query parameter the operation does not define is an InvalidRequest, not
    silently ignored (a misspelt filter would otherwise widen the answer)."""
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise InvalidRequest(
            f"unknown query parameter(s) {', '.join(unknown)}; accepted: {', '.join(sorted(known))}"
        )


async def _request_terms(request: Request) -> TermTable:
    """The request's @context: of its JSON-LD body (of the first member of a batch), else
    of its Link header, else the core context (§6.3.5)."""
    if request.method in ("POST", "PATCH", "PUT") and content_type_is_ld(request):
        try:
            body = await json_body(request)
        except InvalidRequest:
            return await terms_of(request)  # the handler reports the body
        first = body[0] if isinstance(body, list) and body else body
        if isinstance(first, dict) and "@context" in first:
            return await runtime(request).contexts.from_body(first["@context"])
    return await terms_of(request)


def content_type_is_ld(request: Request) -> bool:
    """Whether the request body is ``application/ld+json``."""
    return request.headers.get("content-type", "").split(";")[0].strip() == JSON_LD


def entity_id_of(path_value: str) -> str:
    """The ``{entityId}`` of a path, which must be a URI (§4.5.1)."""
    if not is_uri(path_value):
        raise BadRequestData(f"entity id {path_value!r} is not a URI")
    return path_value


def selected_types(value: str | None, terms: TermTable) -> list[str] | None:
    """The optional ``type`` selector of single-entity operations, as type IRIs."""
    names = split_list(value)
    return None if names is None else sorted(expand_names(names, terms))


async def terms_of(request: Request) -> TermTable:
    """The term table for a request without a body: ``Link`` header, else core."""
    url = context_link(request.headers.get("link"))
    contexts = runtime(request).contexts
    return contexts.core if url is None else await contexts.from_link(url)


async def read_json(request: Request, *, merge_patch: bool = False) -> Incoming:
    """Check the media type, parse the JSON body and resolve its @context."""
    media, body, link = await json_request(request, merge_patch=merge_patch)
    tenant = tenant_of(request)
    contexts = runtime(request).contexts
    if media == JSON_LD:
        if not isinstance(body, dict):
            raise InvalidRequest("an application/ld+json body must be a JSON object")
        if "@context" not in body:
            raise BadRequestData("an application/ld+json body needs an @context member")
        terms = await contexts.from_body(body["@context"])
        body = {key: value for key, value in body.items() if key != "@context"}
    else:
        if isinstance(body, dict) and "@context" in body:
            raise BadRequestData(
                "with application/json the @context belongs in a Link header; "
                "send application/ld+json to put it in the body"
            )
        terms = contexts.core if link is None else await contexts.from_link(link)
    return Incoming(tenant, terms, body)


async def json_request(
    request: Request, *, merge_patch: bool = False
) -> tuple[str, Any, str | None]:
    """(media type, parsed body, Link header @context URL) of a request with a JSON body.

    §6.3.5: with ``application/ld+json`` the @context travels in the body, so a Link header to
    one as well is an error.
    """
    media = content_type(request.headers.get("content-type"), merge_patch=merge_patch)
    body = await json_body(request)
    link = context_link(request.headers.get("link"))
    if media == JSON_LD and link is not None:
        raise BadRequestData(
            "with application/ld+json the @context belongs in the body, not in a Link header"
        )
    return media, body, link


async def json_body(request: Request) -> Any:
    """The request body parsed as JSON; anything else is an InvalidRequest."""
    body = await request.body()
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(not_json(body, exc)) from None


def not_json(body: bytes, exc: orjson.JSONDecodeError) -> str:
    """Where a body stops being JSON, with the text around that place quoted: a bare parser
    message ("no digit after sign") does not tell a person what to fix."""
    reason = str(exc).split(": line ")[0]
    text = body.decode("utf-8", "replace")
    near = text[max(0, exc.pos - 30) : exc.pos + 30].replace("\n", " ")
    detail = f"the body is not valid JSON at line {exc.lineno}, column {exc.colno} ({reason})"
    if near.strip():
        detail += f", near {near!r}"
    if "..." in text:
        detail += "; replace the '...' placeholder with real content"
    return detail
