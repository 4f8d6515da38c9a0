"""``/csourceSubscriptions`` and ``/csourceSubscriptions/{subscriptionId}`` (GS CIM 009 v1.8.1
§6.12, §6.13): subscriptions to registration changes, with the same documents as entity
subscriptions and the same access need (SUBSCRIBE)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from broker.api.access import SUBSCRIBE
from broker.api.media import JSON, JSON_LD, negotiate
from broker.api.registrations import created, registry_page_links
from broker.api.requests import (
    json_body,
    list_window,
    read_json,
    refuse_unknown_parameters,
    runtime,
    tenant_of,
    terms_of,
)
from broker.api.responses import json_response
from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import check_uri
from broker.ngsild.params import parse_options
from broker.ngsild.subscriptions.documents import render_subscription
from broker.ngsild.subscriptions.subscription import Subscription, parse_subscription
from broker.ngsild.terms import TermTable

router = APIRouter(tags=["Context Source Registration Subscriptions"])
_OFFERED = (JSON, JSON_LD)
_PATH = "/csourceSubscriptions"
Number = Annotated[int | None, Query()]
_LIST_PARAMETERS = frozenset({"options", "limit", "offset", "count"})


@router.post(
    _PATH, status_code=201, summary="Create CSR Subscription (§5.11.2)", dependencies=[SUBSCRIBE]
)
async def create_csource_subscription(request: Request) -> Response:
    incoming = await read_json(request)
    service = runtime(request).csource_subscriptions
    sub = parse_subscription(
        incoming.body, incoming.terms, now=service.now(), context=incoming.terms.source
    )
    await _check_egress(request, sub)
    await service.create(incoming.tenant, sub)
    return created(_location(sub.id))


@router.get(_PATH, summary="Query CSR Subscriptions (§5.11.5)", dependencies=[SUBSCRIBE])
async def query_csource_subscriptions(
    request: Request,
    options: Annotated[str | None, Query()] = None,
    limit: Number = None,
    offset: Number = None,
    count: Annotated[bool, Query()] = False,
) -> Response:
    refuse_unknown_parameters(request, _LIST_PARAMETERS)
    media = negotiate(request.headers.get("accept"), _OFFERED)
    terms = await terms_of(request)
    service = runtime(request).csource_subscriptions
    opts = parse_options(options) | ({"count"} if count else set())
    size, start = list_window(request, limit, offset)
    subs = service.list(tenant_of(request))
    now = service.now()
    page = [
        _render(sub, terms, now=now, sys_attrs="sysAttrs" in opts)
        for sub in subs[start : start + size]
    ]
    headers = {"NGSILD-Results-Count": str(len(subs))} if "count" in opts else {}
    headers |= registry_page_links(request, start, size, total=len(subs))
    return json_response(page, media, terms, headers=headers)


@router.get(
    _PATH + "/{subscriptionId}",
    summary="Retrieve CSR Subscription (§5.11.4)",
    dependencies=[SUBSCRIBE],
)
async def retrieve_csource_subscription(
    request: Request, subscriptionId: str, options: Annotated[str | None, Query()] = None
) -> Response:
    media = negotiate(request.headers.get("accept"), _OFFERED)
    terms = await terms_of(request)
    service = runtime(request).csource_subscriptions
    sub = service.get(tenant_of(request), _subscription_id(subscriptionId))
    body = _render(sub, terms, now=service.now(), sys_attrs="sysAttrs" in parse_options(options))
    return json_response(body, media, terms)


@router.patch(
    _PATH + "/{subscriptionId}",
    status_code=204,
    summary="Update CSR Subscription (§5.11.3)",
    dependencies=[SUBSCRIBE],
)
async def update_csource_subscription(request: Request, subscriptionId: str) -> Response:
    await json_body(request)  # a body that is not JSON is InvalidRequest whatever its type
    incoming = await read_json(request, merge_patch=True)
    subscription_id = _subscription_id(subscriptionId)
    service = runtime(request).csource_subscriptions
    await service.update(
        incoming.tenant,
        subscription_id,
        incoming.body,
        incoming.terms,
        check=partial(_check_egress, request),
    )
    return Response(status_code=204)


@router.delete(
    _PATH + "/{subscriptionId}",
    status_code=204,
    summary="Delete CSR Subscription (§5.11.6)",
    dependencies=[SUBSCRIBE],
)
async def delete_csource_subscription(request: Request, subscriptionId: str) -> Response:
    subscription_id = _subscription_id(subscriptionId)
    await runtime(request).csource_subscriptions.delete(tenant_of(request), subscription_id)
    return Response(status_code=204)


def _render(sub: Subscription, terms: TermTable, *, now: str, sys_attrs: bool) -> dict[str, Any]:
    body = render_subscription(sub, terms, now=now, sys_attrs=sys_attrs)
    body.pop("notificationTrigger", None)  # entity triggers mean nothing for registrations
    return body


def _subscription_id(value: str) -> str:
    return check_uri(value, "subscription id")


def _location(subscription_id: str) -> str:
    return "/ngsi-ld/v1/csourceSubscriptions/" + quote(subscription_id, safe=":")


async def _check_egress(request: Request, sub: Subscription) -> None:
    """A notification endpoint the egress policy refuses is a 400, as for subscriptions."""
    uri = sub.notification.endpoint.uri
    refusal = await runtime(request).auth.egress.check_endpoint(uri, tenant_of(request))
    if refusal is not None:
        raise BadRequestData(f"notification endpoint refused: {refusal.message}")
