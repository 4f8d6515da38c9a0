"""Who may call a route: one policy per route, declared beside it (issue 12).

Every route of the application declares what it needs in its decorator, for example
``@router.get("/entities", dependencies=[READ])``; nothing else decides who may call it, and a
test enumerates the application's routes so that a route without a policy cannot be added.
The levels are ``broker.auth.access.Need``.

The policy is a FastAPI dependency, so it runs before the handler and before the body is read:

1. the tenant the request names (``NGSILD-Tenant``; for ``/iot``, else ``Fiware-Service``);
2. with authentication on, the caller (``Authorization: Bearer`` JWT or API key) and what it
   may do there (``broker.auth.access.decide``): 401 or 403 otherwise;
3. the tenant must exist (when tenants are explicit) and have request budget left (429);
4. the ``Access`` is kept on the request, where ``tenant_of`` and the handlers find it; an
   entity operation with an ``NGSILD-Snapshot`` header (v1.9 §6.3.22) then works in that
   Snapshot of the tenant (404 if it has none of that id): its ``Access`` names the store
   tenant holding the Snapshot's entities (``broker.services.snapshots``).

Authorization comes before the existence check, so a caller without rights in a tenant learns
nothing about whether it exists.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

from fastapi import Request
from fastapi.params import Depends

from broker.auth.access import Access, Need, decide
from broker.ngsild.errors import ResourceNotFound, TooManyRequests
from broker.ngsild.tenants import tenant_from_header
from broker.runtime import Runtime

SNAPSHOT_HEADER = "NGSILD-Snapshot"
_ENTITY_PATHS = ("/ngsi-ld/v1/entities", "/ngsi-ld/v1/entityOperations")

__all__ = ["ADMIN", "OPERATOR", "PUBLIC", "READ", "SUBSCRIBE", "WRITE", "Need", "Policy"]


def header_tenant(request: Request) -> str:
    """``NGSILD-Tenant`` (§6.3.14), the default tenant when absent."""
    return tenant_from_header(request.headers.get("ngsild-tenant"))


class Policy:
    """The dependency a route declares; decides the request's ``Access`` before the handler.

    Args:
        need: What the route needs.
        tenant: How the route names its tenant (``NGSILD-Tenant`` unless said otherwise).
        or_admin: On an ``OPERATOR`` route, let a tenant admin see its own part.
        or_operator: On a tenant route, let the platform operator in too.
    """

    def __init__(
        self,
        need: Need,
        tenant: Callable[[Request], str] = header_tenant,
        *,
        or_admin: bool = False,
        or_operator: bool = False,
    ) -> None:
        self.need = need
        self.tenant = tenant
        self.or_admin = or_admin
        self.or_operator = or_operator

    def __repr__(self) -> str:
        return f"Policy({self.need.name})"

    async def __call__(self, request: Request) -> None:
        runtime: Runtime = request.app.state.runtime
        tenant = self.tenant(request)
        access = Access(tenant)
        auth = runtime.auth
        if auth.enabled and self.need is not Need.PUBLIC:
            principal = await auth.authenticator.authenticate(request.headers.get("authorization"))
            access = decide(
                principal,
                tenant,
                self.need,
                lambda permission: auth.grants.applicable(tenant, principal, permission),
                or_admin=self.or_admin,
                or_operator=self.or_operator,
            )
        if self.need not in (Need.PUBLIC, Need.OPERATOR):
            runtime.tenants.require(tenant)
            wait = runtime.tenants.admit(tenant)
            if wait is not None:
                raise TooManyRequests("the tenant's request rate quota is spent", math.ceil(wait))
        request.state.access = access
        if SNAPSHOT_HEADER.lower() in request.headers and self.need in (Need.READ, Need.WRITE):
            await _enter_snapshot(request, runtime, access)


async def _enter_snapshot(request: Request, runtime: Runtime, access: Access) -> None:
    if not request.url.path.startswith(_ENTITY_PATHS):
        return
    snapshot_id = request.headers[SNAPSHOT_HEADER]
    if runtime.snapshots is None:
        raise ResourceNotFound(f"snapshot {snapshot_id} does not exist")
    store = await runtime.snapshots.store_of(access.tenant, snapshot_id)
    request.state.access = replace(access, tenant=store)
    request.state.snapshot = snapshot_id


def snapshot_headers(request: Request) -> dict[str, str]:
    """The ``NGSILD-Snapshot`` header echoed on answers from a Snapshot (§6.3.22)."""
    snapshot_id = getattr(request.state, "snapshot", None)
    return {} if snapshot_id is None else {SNAPSHOT_HEADER: snapshot_id}


def policy(need: Need, tenant: Callable[[Request], str] = header_tenant) -> Depends:
    """The ``Depends`` a route lists in ``dependencies=[...]``."""
    return Depends(Policy(need, tenant))


def access_of(request: Request) -> Access:
    """The request's ``Access``, as its route's policy decided it."""
    return request.state.access  # type: ignore[no-any-return]


PUBLIC = policy(Need.PUBLIC)
READ = policy(Need.READ)
SUBSCRIBE = policy(Need.SUBSCRIBE)
WRITE = policy(Need.WRITE)
ADMIN = policy(Need.ADMIN)
OPERATOR = policy(Need.OPERATOR)
