"""Provision operations forwarded to context sources (GS CIM 009 v1.8.1 §4.3.6.3,
§5.6.x.4 "distributed" behaviour of each operation, §6.3.17 207 with errors per source).

``@distributed(operation)`` wraps a write handler. The handler's access policy has already run
(dependencies come first), so nothing is forwarded for a caller who may not write. When the
tenant has registrations offering the operation for the entity and attributes the request
touches (``distribution.plan_writes``), each source gets its part (an exclusive one only the
attributes it holds), sent at once and each within its own deadline; the local handler then
runs with what is left (nothing when a redirect registration holds the entity), the body it
reads being replaced by the local part. All parts succeeded: the local answer (or 201/204).
Some failed: 207 with the entities that succeeded and an error per failed part, naming the
registration (§6.3.17); one part only, failed: its own error.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request, Response
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from broker.api.media import JSON_LD
from broker.api.requests import federation_scope, json_request, runtime, tenant_of
from broker.ngsild.entity import parse_entity
from broker.ngsild.errors import Conflict, NgsiLdError
from broker.ngsild.registrations import operations as ops
from broker.ngsild.registrations.distribution import (
    Forward,
    blocked,
    plan_all_writes,
    renamed_body,
    renamed_path,
    source_context,
    split_local,
)
from broker.ngsild.registrations.matching import Target
from broker.services.federation.service import WARNINGS, Scope, gather

Handler = Callable[..., Awaitable[Response]]
_MEMBERS = frozenset({"id", "type", "scope", "@context"})
_BATCH = {
    ops.CREATE_BATCH: "create",
    ops.UPSERT_BATCH: "upsert",
    ops.UPDATE_BATCH: "update",
    ops.DELETE_BATCH: "delete",
    ops.MERGE_BATCH: "merge",
}
_SUCCESS = {ops.CREATE_ENTITY: 201, ops.CREATE_BATCH: 201}


@dataclass(slots=True)
class _Part:
    """The outcome of one part of a distributed write."""

    source: str | None
    """The registration id, ``None`` for the local part."""
    status: int
    problem: dict[str, Any] | None = None
    body: Any = None
    """What a source answered when it succeeded (the ids a batch created, say)."""
    entity_id: str | None = None


def distributed(operation: str) -> Callable[[Handler], Handler]:
    """Wrap a write handler so that it is distributed (see the module docstring)."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def run(request: Request, **kwargs: Any) -> Response:
            if not runtime(request).federation.distributes(tenant_of(request)):
                return await handler(request, **kwargs)
            scope = await federation_scope(request)
            if scope is None:
                return await handler(request, **kwargs)
            if operation in _BATCH:
                return await _batch(request, scope, operation, handler, kwargs)
            if operation == ops.PURGE_ENTITY:
                return await _purge(request, scope, handler, kwargs)
            return await _single(request, scope, operation, handler, kwargs)

        return run

    return wrap


async def _single(
    request: Request, scope: Scope, operation: str, handler: Handler, kwargs: dict[str, Any]
) -> Response:
    body = await _body(request)
    entity_id = kwargs.get("entityId") or (body.get("id") if isinstance(body, dict) else None)
    if not isinstance(entity_id, str):
        return await handler(request, **kwargs)
    attr = kwargs.get("attrId")
    _validate(operation, body, scope, kwargs.get("entityId"))  # refused here: not forwarded
    target = await _target(request, scope, entity_id, body, attr)
    forwards = plan_all_writes(scope.registrations, target, operation)
    if not forwards:
        return await handler(request, **kwargs)
    split = split_local(forwards)
    path = request.url.path.split("/ngsi-ld/v1", 1)[1]
    concerned = [f for f in forwards if _has_part(body, f, scope, attr)]
    # The body of an attribute's own path is that one attribute: it goes whole or not at all.
    whole = attr is not None
    remote = await gather(
        [
            _send(request, scope, f, path, body if whole else _restricted(body, f, scope), whole)
            for f in concerned
            if not blocked(f)
        ]
    )
    remote += [_refused(forward, operation) for forward in concerned if blocked(forward)]
    local_body = (
        _without(body, split.withheld, scope) if isinstance(body, dict) and not whole else body
    )
    local: Response | None = None
    parts = list(remote)
    if split.local and _local_has_part(body, local_body, split.withheld, attr, scope):
        local, part = await _run_local(request, handler, kwargs, local_body)
        parts.insert(0, part)
    return _combined(operation, parts, local, [entity_id])


async def _batch(
    request: Request, scope: Scope, operation: str, handler: Handler, kwargs: dict[str, Any]
) -> Response:
    body = await _body(request)
    if not isinstance(body, list):
        return await handler(request, **kwargs)
    per_source: dict[str, tuple[Forward, list[Any]]] = {}
    local_items: list[Any] = []
    refusals: list[_Part] = []
    for item in body:
        entity_id = item if isinstance(item, str) else (item or {}).get("id")
        if not isinstance(entity_id, str):
            local_items.append(item)
            continue
        member = item if isinstance(item, dict) else {}
        target = await _target(request, scope, entity_id, member, None)
        forwards = plan_all_writes(scope.registrations, target, operation)
        split = split_local(forwards)
        for forward in forwards:
            if isinstance(item, dict) and not _has_part(item, forward, scope, None):
                continue
            if blocked(forward):
                refusals.append(_refused(forward, operation, entity_id))
                continue
            part = item if isinstance(item, str) else _restricted(item, forward, scope)
            per_source.setdefault(forward.registration.id, (forward, []))[1].append(part)
        if split.local:
            kept = item if isinstance(item, str) else _without(item, split.withheld, scope)
            if isinstance(item, str) or _local_has_part(item, kept, split.withheld, None, scope):
                local_items.append(kept)
    if not per_source and not refusals:
        return await handler(request, **kwargs)
    path = request.url.path.split("/ngsi-ld/v1", 1)[1]
    parts = list(
        await gather(
            [_send(request, scope, fwd, path, items) for fwd, items in per_source.values()]
        )
    )
    parts += refusals
    local: Response | None = None
    if local_items:
        local, part = await _run_local(request, handler, kwargs, local_items)
        parts.insert(0, part)
    ids = [i if isinstance(i, str) else i.get("id") for i in body if isinstance(i, str | dict)]
    return _combined(operation, parts, local, [i for i in ids if isinstance(i, str)])


def _validate(operation: str, body: Any, scope: Scope, path_id: str | None) -> None:
    """Refuse what is not a valid entity before any part of it is forwarded (D001_02)."""
    if operation in (ops.CREATE_ENTITY, ops.REPLACE_ENTITY) and isinstance(body, dict):
        plain = {k: v for k, v in body.items() if k != "@context"}
        parse_entity(plain, scope.terms, entity_id=path_id)


def _refused(forward: Forward, operation: str, entity_id: str | None = None) -> _Part:
    reg = forward.registration
    detail = (
        f"registration {reg.id} ({reg.effective_mode}) holds this data but does not offer "
        f"{operation}"
    )
    problem = Conflict(detail).problem() | {"status": 409}
    return _Part(reg.id, 409, problem, entity_id=entity_id)


async def _purge(
    request: Request, scope: Scope, handler: Handler, kwargs: dict[str, Any]
) -> Response:
    """Purge Entities (v1.9.1 §5.6.21.4): the same request to every source holding entities
    of the types it names, and locally unless a redirect registration holds them."""
    params = request.query_params
    types = params.get("type")
    ids = params.get("id")
    target = Target(
        ids=None if not ids else tuple(ids.split(",")),
        types=None if not types else frozenset(scope.terms.expand(t) for t in types.split(",")),
    )
    forwards = plan_all_writes(scope.registrations, target, ops.PURGE_ENTITY)
    if not forwards:
        return await handler(request, **kwargs)
    path = request.url.path.split("/ngsi-ld/v1", 1)[1]
    parts = list(
        await gather([_send(request, scope, f, path, None) for f in forwards if not blocked(f)])
    )
    parts += [_refused(f, ops.PURGE_ENTITY) for f in forwards if blocked(f)]
    local: Response | None = None
    if split_local(forwards).local:
        local, part = await _run_local(request, handler, kwargs, None)
        parts.insert(0, part)
    return _combined(ops.PURGE_ENTITY, parts, local, [])


async def _body(request: Request) -> Any:
    if request.method == "DELETE":
        return None
    try:
        _, body, _ = await json_request(request)
    except NgsiLdError:
        return None  # the handler reports it, as without registrations
    return body


async def _target(
    request: Request, scope: Scope, entity_id: str, body: Any, attr: str | None
) -> Target:
    expand = scope.terms.expand
    types: frozenset[str] | None = None
    # With an attribute in the path the body's "type" is the attribute's (Property...).
    if attr is None and isinstance(body, dict) and isinstance(body.get("type"), str | list):
        names = body["type"] if isinstance(body["type"], list) else [body["type"]]
        types = frozenset(expand(name) for name in names if isinstance(name, str))
    else:
        store = await runtime(request).store.tenant(scope.tenant, create=True)
        doc = await store.get(entity_id)
        if doc is not None:
            types = frozenset(doc["type"])
    attrs: frozenset[str] | None = None
    if attr is not None:
        attrs = frozenset({expand(attr)})
    elif isinstance(body, dict) and request.method != "DELETE":
        named = {expand(k) for k in body if k not in _MEMBERS}
        attrs = frozenset(named) if named else None
    return Target(ids=(entity_id,), types=types, attrs=attrs)


def _attr_names(body: dict[str, Any], scope: Scope) -> dict[str, str]:
    return {key: scope.terms.expand(key) for key in body if key not in _MEMBERS}


def _restricted(body: Any, forward: Forward, scope: Scope) -> Any:
    if not isinstance(body, dict) or forward.attrs is None:
        return body
    names = _attr_names(body, scope)
    return {k: v for k, v in body.items() if k in _MEMBERS or names.get(k) in forward.attrs}


def _without(body: dict[str, Any], withheld: frozenset[str], scope: Scope) -> dict[str, Any]:
    names = _attr_names(body, scope)
    return {k: v for k, v in body.items() if k in _MEMBERS or names.get(k) not in withheld}


def _has_part(body: Any, forward: Forward, scope: Scope, attr: str | None) -> bool:
    if forward.attrs is None:
        return True
    if attr is not None:
        return scope.terms.expand(attr) in forward.attrs
    if not isinstance(body, dict):
        return True
    names = set(_attr_names(body, scope).values())
    return not names or bool(names & forward.attrs)


def _local_has_part(
    body: Any, local_body: Any, withheld: frozenset[str], attr: str | None, scope: Scope
) -> bool:
    if attr is not None:
        return scope.terms.expand(attr) not in withheld
    if not isinstance(body, dict) or not withheld:
        return True
    had = _attr_names(body, scope)
    return not had or bool(_attr_names(local_body, scope))


async def _send(
    request: Request, scope: Scope, forward: Forward, path: str, body: Any, attribute: bool = False
) -> _Part:
    """``attribute``: ``body`` is the one attribute of an ``…/attrs/{attrId}`` path."""
    federation = runtime(request).federation
    source = forward.registration.id
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "local"]
    if isinstance(body, dict | list) and request.headers.get("content-type", "").startswith(
        JSON_LD
    ):
        body = _strip_contexts(body)
    terms = None
    spoken = source_context(forward.registration)
    if spoken is not None:
        try:
            terms = await runtime(request).contexts.from_link(spoken)
        except NgsiLdError as exc:  # the source's names are unknown: its part cannot be sent
            return _Part(source, exc.status, exc.problem() | {"status": exc.status})
        path = renamed_path(path, scope.terms, terms)
        body = renamed_body(body, scope.terms, terms, entity=not attribute)
    reply = await federation.send(
        scope, forward, request.method, path, params=params, body=body, terms=terms
    )
    if reply is None:
        return _Part(source, 504, _problem(504, "the context source did not answer in time"))
    if reply.ok:
        return _Part(source, reply.status, body=reply.body)
    problem = reply.body if isinstance(reply.body, dict) else _problem(reply.status, "")
    return _Part(source, reply.status, problem)


def _strip_contexts(body: Any) -> Any:
    # The forwarded request names its @context in Link (the request's own, as terms).
    if isinstance(body, list):
        return [_strip_contexts(item) for item in body]
    if isinstance(body, dict):
        return {k: v for k, v in body.items() if k != "@context"}
    return body


async def _run_local(
    request: Request, handler: Handler, kwargs: dict[str, Any], body: Any
) -> tuple[Response | None, _Part]:
    if body is not None:
        # Starlette keeps a read body in ``_body``; the handler reads the local part from it.
        request._body = orjson.dumps(body)
    try:
        response = await handler(request, **kwargs)
    except NgsiLdError as exc:
        return None, _Part(None, exc.status, exc.problem() | {"status": exc.status})
    return response, _Part(None, response.status_code)


def _combined(
    operation: str, parts: list[_Part], local: Response | None, ids: list[str]
) -> Response:
    # A source's own 207 is a partial failure of its part.
    failed = [p for p in parts if p.status >= 300 or p.status == 207 or p.problem is not None]
    if not failed:
        if local is not None:
            return local
        if len(parts) == 1 and parts[0].status != 207:  # the source's own answer
            (only,) = parts
            content = b"" if only.body is None else orjson.dumps(only.body)
            media = "application/json" if content else None
            return Response(content, only.status, media_type=media)
        status = _SUCCESS.get(operation, 204)
        if operation == ops.CREATE_ENTITY and ids:
            return Response(status_code=201, headers={"Location": "/ngsi-ld/v1/entities/" + ids[0]})
        if status == 201:
            return Response(orjson.dumps(ids), 201, media_type="application/json")
        return Response(status_code=204)
    if len(parts) == 1:
        (only,) = parts
        return Response(
            orjson.dumps(only.problem or _problem(only.status, "")),
            only.status,
            media_type="application/problem+json",
        )
    errors = [
        {
            "entityId": part.entity_id or (ids[0] if len(ids) == 1 else None),
            "registrationId": part.source,
            "error": {**(part.problem or {}), "status": part.status},
        }
        for part in failed
    ]
    for error in errors:
        if error["registrationId"] is None:
            del error["registrationId"]
        if error["entityId"] is None:
            del error["entityId"]
    success = ids if len(failed) < len(parts) else []
    return Response(
        orjson.dumps({"success": success, "errors": errors}), 207, media_type="application/json"
    )


class WarningHeaders:
    """Adds ``NGSILD-Warning`` (§6.3.17) to a response when a distributed part of it failed.

    A raw ASGI middleware: the handlers build their responses without knowing about the
    sources; the federated reads leave their warnings in the request's state
    (``WARNINGS``), and this adds them as one header on the way out.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_warnings(message: Message) -> None:
            warnings = state.get(WARNINGS)
            if message["type"] == "http.response.start" and warnings:
                header = (b"ngsild-warning", ", ".join(warnings).encode("latin-1", "replace"))
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_warnings)


def _problem(status: int, detail: str) -> dict[str, Any]:
    return {
        "type": "https://uri.etsi.org/ngsi-ld/errors/InternalError",
        "title": "Context source failed",
        "status": status,
        "detail": detail,
    }
