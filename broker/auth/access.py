"""What one request may do: the decision a route's policy takes (pure).

A route needs one of the ``Need`` levels (``broker/api/access.py`` declares them beside the
routes). ``decide`` turns the caller's ``Principal`` and the tenant the request names into an
``Access``: full access when the principal's role in that tenant covers the need; for reading
and subscribing, access *through grants* when the tenant shared something with the caller (the
caller then sees only that, as if nothing else existed); otherwise ``Forbidden``, whose message
names only what was asked, never which tenants exist or what they hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from broker.auth.grants import Grant, Permission
from broker.auth.principal import Principal
from broker.auth.roles import Role
from broker.ngsild.errors import Forbidden


class Need(IntEnum):
    """What a route needs, ordered: each tenant need includes those below it. ``OPERATOR`` is
    platform-wide rather than a role in a tenant."""

    PUBLIC = 0
    """Anyone (health, the OpenAPI document)."""
    READ = 1
    """Retrieve, query and discovery in the tenant (``reader``), or through a grant."""
    SUBSCRIBE = 2
    """Manage one's own subscriptions (``subscriber``), or through a grant with subscribe."""
    WRITE = 3
    """Every entity write (``editor``)."""
    ADMIN = 4
    """The tenant's settings, devices, dead letters, keys and grants (``admin``)."""
    OPERATOR = 5
    """The platform: tenants, metrics of every tenant (``operator``)."""


ROLE_FOR: dict[Need, Role] = {
    Need.READ: Role.READER,
    Need.SUBSCRIBE: Role.SUBSCRIBER,
    Need.WRITE: Role.EDITOR,
    Need.ADMIN: Role.ADMIN,
}
_THROUGH_GRANTS: dict[Need, Permission] = {
    Need.READ: Permission.READ,
    Need.SUBSCRIBE: Permission.SUBSCRIBE,
}


@dataclass(frozen=True, slots=True)
class Access:
    """What a request may do.

    Attributes:
        tenant: The tenant it works in ('' is the default tenant).
        principal: Who asks; None when authentication is off (then everything is allowed).
        grants: Set when the caller sees ``tenant`` only through these grants.
        tenant_admin: A tenant admin on an operator route that shows it only its own part
            (``/metrics``).
    """

    tenant: str
    principal: Principal | None = None
    grants: tuple[Grant, ...] | None = None
    tenant_admin: bool = False

    @property
    def shared(self) -> bool:
        """Whether the caller sees the tenant through grants only."""
        return self.grants is not None

    @property
    def who(self) -> str | None:
        """The principal's id, for ``createdBy`` and the audit log."""
        return None if self.principal is None else self.principal.id

    def may(self, role: Role) -> bool:
        """Whether the caller holds ``role`` in the tenant (always, with authentication off)."""
        return self.principal is None or self.principal.may(self.tenant, role)


Grants = Callable[[Permission], list[Grant]]
"""The tenant's grants that let the caller use a permission."""


def decide(
    principal: Principal,
    tenant: str,
    need: Need,
    grants: Grants,
    *,
    or_admin: bool = False,
    or_operator: bool = False,
) -> Access:
    """The access ``principal`` has for a route needing ``need`` in ``tenant``.

    ``or_admin`` lets an admin of ``tenant`` onto an ``OPERATOR`` route, to see its own part;
    ``or_operator`` lets the operator onto a tenant route (handing a new town its first keys).

    Raises:
        Forbidden: the principal may not do this here.
    """
    if need is Need.PUBLIC:
        return Access(tenant, principal)
    if need is Need.OPERATOR:
        if principal.operator:
            return Access(tenant, principal)
        if or_admin and principal.may(tenant, Role.ADMIN):
            return Access(tenant, principal, tenant_admin=True)
        raise Forbidden("this operation is for the platform's operators")
    if principal.may(tenant, ROLE_FOR[need]) or (or_operator and principal.operator):
        return Access(tenant, principal)
    permission = _THROUGH_GRANTS.get(need)
    if permission is not None:
        shared = grants(permission)
        if shared:
            return Access(tenant, principal, tuple(shared))
    where = "the default tenant" if tenant == "" else f"tenant {tenant!r}"
    raise Forbidden(f"this operation needs the role {ROLE_FOR[need].label} in {where}")
