"""``/subscriptions`` and ``/subscriptions/{subscriptionId}`` (GS CIM 009 v1.8.1 §6.10, §6.11)."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response

from broker.api.access import SUBSCRIBE, access_of
from broker.api.media import JSON, JSON_LD, negotiate
from broker.api.requests import (
    list_window,
    read_json,
    refuse_unknown_parameters,
    runtime,
    tenant_of,
    terms_of,
)
from broker.api.responses import json_response, page_links
from broker.auth.principal import principal_doc
from broker.auth.roles import Role
from broker.ngsild.errors import BadRequestData, ResourceNotFound
from broker.ngsild.names import check_uri
from broker.ngsild.params import parse_options
from broker.ngsild.subscriptions.documents import render_subscription
from broker.ngsild.subscriptions.subscription import Subscription, parse_subscription
from broker.ngsild.versions import preference_applied, preferred_version

router = APIRouter(tags=["Subscriptions"])
_OFFERED = (JSON, JSON_LD)
Number = Annotated[int | None, Query()]
_LIST_PARAMETERS = frozenset({"options", "limit", "offset", "count"})
_RETRIEVE_PARAMETERS = frozenset({"options"})


@router.post(
    "/subscriptions",
    status_code=201,
    summary="Create Subscription (§5.8.1)",
    dependencies=[SUBSCRIBE],
)
async def create_subscription(request: Request) -> Response:
    incoming = await read_json(request)
    parts = runtime(request)
    service = parts.subscriptions
    sub = parse_subscription(
        incoming.body, incoming.terms, now=service.now(), context=incoming.terms.source
    )
    access = access_of(request)
    shared_by = principal_doc(access.principal) if access.shared and access.principal else None
    sub = replace(sub, owner=access.who, shared_by=shared_by)
    await _check_egress(request, sub)
    if sub.jsonld_context is None:
        implicit = await parts.jsonld_contexts.implicit(
            incoming.tenant, incoming.terms, str(request.base_url)
        )
        sub = replace(sub, jsonld_context=implicit)
    quota = parts.tenants.quotas(incoming.tenant).max_subscriptions
    await service.create(incoming.tenant, sub, quota=quota)
    location = "/ngsi-ld/v1/subscriptions/" + quote(sub.id, safe=":")
    return Response(status_code=201, headers={"Location": location})


@router.get("/subscriptions", summary="Query Subscriptions (§5.8.4)", dependencies=[SUBSCRIBE])
async def query_subscriptions(
    request: Request,
    options: Annotated[str | None, Query()] = None,
    limit: Number = None,
    offset: Number = None,
    count: Annotated[bool, Query()] = False,
) -> Response:
    refuse_unknown_parameters(request, _LIST_PARAMETERS)
    media = negotiate(request.headers.get("accept"), _OFFERED)
    terms = await terms_of(request)
    service = runtime(request).subscriptions
    # ``count=true`` (v1.8 §6.3.13) and ``options=count`` both ask for the total, as on /entities.
    opts = parse_options(options) | ({"count"} if count else set())
    size, start = list_window(request, limit, offset)
    subs = [sub for sub in service.list(tenant_of(request)) if _visible(request, sub)]
    now = service.now()
    page = [
        render_subscription(sub, terms, now=now, sys_attrs="sysAttrs" in opts)
        for sub in subs[start : start + size]
    ]
    headers = {"NGSILD-Results-Count": str(len(subs))} if "count" in opts else {}
    headers |= page_links(request, start, size, returned=len(page), total=len(subs), media=media)
    return json_response(page, media, terms, headers=headers)


@router.get(
    "/subscriptions/{subscriptionId}",
    summary="Retrieve Subscription (§5.8.3)",
    dependencies=[SUBSCRIBE],
)
async def retrieve_subscription(
    request: Request, subscriptionId: str, options: Annotated[str | None, Query()] = None
) -> Response:
    refuse_unknown_parameters(request, _RETRIEVE_PARAMETERS)
    media = negotiate(request.headers.get("accept"), _OFFERED)
    terms = await terms_of(request)
    service = runtime(request).subscriptions
    sub = _own(request, _subscription_id(subscriptionId))
    body = render_subscription(
        sub, terms, now=service.now(), sys_attrs="sysAttrs" in parse_options(options)
    )
    # A subscription has no version fallbacks (v1.9 §4.3.6.8): acknowledge, change nothing.
    version = preferred_version(request.headers.get("prefer"))
    headers = {} if version is None else {"Preference-Applied": preference_applied(version)}
    return json_response(body, media, terms, headers=headers)


@router.patch(
    "/subscriptions/{subscriptionId}",
    status_code=204,
    summary="Update Subscription (§5.8.2)",
    dependencies=[SUBSCRIBE],
)
async def update_subscription(request: Request, subscriptionId: str) -> Response:
    incoming = await read_json(request, merge_patch=True)  # 415/400 come before 404 (ETSI 048_01)
    subscription_id = _own(request, _subscription_id(subscriptionId)).id
    service = runtime(request).subscriptions
    check = partial(_check_egress, request)
    await service.update(
        incoming.tenant, subscription_id, incoming.body, incoming.terms, check=check
    )
    return Response(status_code=204)


@router.delete(
    "/subscriptions/{subscriptionId}",
    status_code=204,
    summary="Delete Subscription (§5.8.5)",
    dependencies=[SUBSCRIBE],
)
async def delete_subscription(request: Request, subscriptionId: str) -> Response:
    subscription_id = _own(request, _subscription_id(subscriptionId)).id
    await runtime(request).subscriptions.delete(tenant_of(request), subscription_id)
    return Response(status_code=204)


def _subscription_id(value: str) -> str:
    return check_uri(value, "subscription id")


def _visible(request: Request, sub: Subscription) -> bool:
    """Subscribers see their own subscriptions; editors and admins the tenant's."""
    access = access_of(request)
    if access.principal is None:
        return True
    return sub.owner == access.who or (not access.shared and access.may(Role.EDITOR))


def _own(request: Request, subscription_id: str) -> Subscription:
    """A subscription the caller may see; another's is as if it did not exist."""
    sub = runtime(request).subscriptions.get(tenant_of(request), subscription_id)
    if not _visible(request, sub):
        raise ResourceNotFound(f"subscription {subscription_id} does not exist")
    return sub


async def _check_egress(request: Request, sub: Subscription) -> None:
    """A notification endpoint the platform's or tenant's egress policy refuses is a 400."""
    uri = sub.notification.endpoint.uri
    refusal = await runtime(request).auth.egress.check_endpoint(uri, tenant_of(request))
    if refusal is not None:
        raise BadRequestData(f"notification endpoint refused: {refusal.message}")
