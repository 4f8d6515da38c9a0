"""The platform's admin API (issue 12): tenants, sharing grants, API keys and role bindings.

Not part of NGSI-LD, so under ``/admin`` rather than ``/ngsi-ld/v1``. Tenants are the
operator's; grants, keys and bindings belong to the tenant ``NGSILD-Tenant`` names and are its
admin's. Bodies are plain JSON; errors are ProblemDetails like everywhere else.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from broker.api.access import ADMIN, OPERATOR, Need, Policy, access_of
from broker.api.requests import json_body, runtime, tenant_of, terms_of
from broker.auth import grant_docs
from broker.auth.principal import require_operator
from broker.auth.roles import OPERATOR as OPERATOR_ROLE
from broker.auth.roles import parse_role
from broker.ngsild.errors import BadRequestData, OperationNotSupported
from broker.ngsild.tenants import tenant_from_header
from broker.services.tenants import Tenant

router = APIRouter(prefix="/admin", tags=["Administration"])
ADMIN_OR_OPERATOR = Depends(Policy(Need.ADMIN, or_operator=True))
"""API keys and role bindings: the tenant's admin, or the operator handing a new town its first."""
Text = Annotated[str, Query()]


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status, headers, media_type="application/json")


@router.post("/tenants", status_code=201, summary="Create a tenant", dependencies=[OPERATOR])
async def create_tenant(request: Request) -> Response:
    tenant = await runtime(request).tenants.create(await json_body(request), access_of(request).who)
    return _json(tenant.as_json(), 201, {"Location": f"/admin/tenants/{tenant.name}"})


@router.get("/tenants", summary="List tenants", dependencies=[OPERATOR])
async def list_tenants(request: Request) -> Response:
    return _json([tenant.as_json() for tenant in runtime(request).tenants.list()])


@router.get("/tenants/{name}", summary="Show a tenant", dependencies=[OPERATOR])
async def show_tenant(request: Request, name: str) -> Response:
    return _json(_tenant(request, name).as_json())


@router.patch(
    "/tenants/{name}", summary="Change a tenant's name or quotas", dependencies=[OPERATOR]
)
async def update_tenant(request: Request, name: str) -> Response:
    tenant = await runtime(request).tenants.update(
        _tenant(request, name).name, await json_body(request)
    )
    return _json(tenant.as_json())


@router.delete(
    "/tenants/{name}",
    status_code=204,
    summary="Delete a tenant and everything it holds",
    dependencies=[OPERATOR],
)
async def delete_tenant(request: Request, name: str) -> Response:
    await runtime(request).delete_tenant(_tenant(request, name).name)
    return Response(status_code=204)


def _tenant(request: Request, name: str) -> Tenant:
    return runtime(request).tenants.get(tenant_from_header(name))


@router.post(
    "/grants", status_code=201, summary="Share entities with another town", dependencies=[ADMIN]
)
async def create_grant(request: Request) -> Response:
    terms = await terms_of(request)
    grantee, permissions, selection = grant_docs.parse_request(await json_body(request), terms)
    owner = tenant_of(request)
    who = access_of(request).who or "anonymous"
    grant = await runtime(request).auth.grants.create(owner, grantee, permissions, selection, who)
    location = f"/admin/grants/{grant.id}"
    return _json(grant_docs.render(grant, terms), 201, {"Location": location})


@router.get("/grants", summary="The grants this tenant made", dependencies=[ADMIN])
async def list_grants(request: Request) -> Response:
    terms = await terms_of(request)
    grants = runtime(request).auth.grants.list(tenant_of(request))
    return _json([grant_docs.render(grant, terms) for grant in grants])


@router.get("/grants/{grant_id}", summary="Show a grant", dependencies=[ADMIN])
async def show_grant(request: Request, grant_id: str) -> Response:
    grant = runtime(request).auth.grants.get(tenant_of(request), grant_id)
    return _json(grant_docs.render(grant, await terms_of(request)))


@router.delete(
    "/grants/{grant_id}",
    status_code=204,
    summary="Revoke a grant (its subscriptions stop at once)",
    dependencies=[ADMIN],
)
async def revoke_grant(request: Request, grant_id: str) -> Response:
    parts = runtime(request)
    owner = tenant_of(request)
    await parts.auth.grants.revoke(owner, grant_id)
    parts.subscriptions.grants_changed(owner)
    return Response(status_code=204)


@router.post(
    "/apikeys",
    status_code=201,
    summary="Create an API key (shown once)",
    dependencies=[ADMIN_OR_OPERATOR],
)
async def create_api_key(request: Request) -> Response:
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise BadRequestData("an API key needs a 'name' and a 'role'")
    access = access_of(request)
    operator = body.get("role") == OPERATOR_ROLE
    if operator and access.principal is not None:
        require_operator(access.principal)
    role = None if operator else parse_role(str(body.get("role", "")))
    if role is None and not operator:
        raise BadRequestData("role must be reader, subscriber, editor, admin (or operator)")
    key, secret = await _api_keys(request).create(
        tenant_of(request), body["name"], role, access.who or "anonymous", operator=operator
    )
    location = f"/admin/apikeys/{key.id}"
    return _json({**key.as_json(), "key": secret}, 201, {"Location": location})


@router.get(
    "/apikeys", summary="This tenant's API keys (never the keys)", dependencies=[ADMIN_OR_OPERATOR]
)
async def list_api_keys(request: Request) -> Response:
    return _json([key.as_json() for key in _api_keys(request).list(tenant_of(request))])


@router.delete(
    "/apikeys/{key_id}",
    status_code=204,
    summary="Revoke an API key",
    dependencies=[ADMIN_OR_OPERATOR],
)
async def revoke_api_key(request: Request, key_id: str) -> Response:
    await _api_keys(request).revoke(tenant_of(request), key_id)
    return Response(status_code=204)


def _api_keys(request: Request) -> Any:
    keys = runtime(request).auth.api_keys
    if keys is None:
        raise OperationNotSupported("API keys are switched off (TOSHI_AUTH__API_KEYS)")
    return keys


@router.post(
    "/bindings",
    status_code=201,
    summary="Give a token's subject a role",
    dependencies=[ADMIN_OR_OPERATOR],
)
async def bind_role(request: Request) -> Response:
    body = await json_body(request)
    fields = body if isinstance(body, dict) else {}
    issuer, subject = fields.get("issuer"), fields.get("subject")
    role = parse_role(str(fields.get("role", "")))
    if not isinstance(issuer, str) or not isinstance(subject, str) or role is None:
        raise BadRequestData("a binding needs 'issuer', 'subject' and a 'role'")
    binding = await runtime(request).auth.bindings.bind(
        tenant_of(request), issuer, subject, role, access_of(request).who or "anonymous"
    )
    return _json(binding.as_json(), 201)


@router.get("/bindings", summary="Roles bound in this tenant", dependencies=[ADMIN_OR_OPERATOR])
async def list_bindings(request: Request) -> Response:
    bindings = runtime(request).auth.bindings.list(tenant_of(request))
    return _json([binding.as_json() for binding in bindings])


@router.delete(
    "/bindings", status_code=204, summary="Take back a bound role", dependencies=[ADMIN_OR_OPERATOR]
)
async def unbind_role(request: Request, issuer: Text, subject: Text) -> Response:
    await runtime(request).auth.bindings.unbind(tenant_of(request), issuer, subject)
    return Response(status_code=204)
