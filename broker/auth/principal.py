"""The authenticated caller of a request, and the pure questions routes ask about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from broker.auth.roles import Role
from broker.ngsild.errors import Forbidden

API_KEY_ISSUER = "urn:toshi:api-key"
"""The ``issuer`` of principals authenticated by a Toshi API key (their subject is the key id)."""


class AuthMethod(StrEnum):
    """How a principal proved who it is."""

    JWT = "jwt"
    API_KEY = "api_key"


def principal_id(issuer: str, subject: str) -> str:
    """One string naming a principal, for records (role bindings, grants, ``createdBy``).

    Issuers are URLs or URNs and hold no space, so the first space separates the two parts
    unambiguously whatever the subject contains.
    """
    return f"{issuer} {subject}"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request, and what they may do in each tenant.

    Attributes:
        subject: the token's ``sub``, or the API key's id.
        issuer: the token's ``iss``, or ``API_KEY_ISSUER``.
        roles: tenant name → role ('' is the default tenant).
        operator: whether this principal runs the platform (tenants, metrics, health). It grants
            no role in any tenant.
        expires_at: when the credentials stop being valid (UTC), None for API keys.
        method: how the principal authenticated.
    """

    subject: str
    issuer: str
    roles: Mapping[str, Role] = field(default_factory=dict, hash=False)
    operator: bool = False
    expires_at: datetime | None = None
    method: AuthMethod = AuthMethod.JWT

    def __post_init__(self) -> None:
        # A read-only view: a Principal is shared by every request presenting the same token.
        object.__setattr__(self, "roles", MappingProxyType(dict(self.roles)))

    @property
    def id(self) -> str:
        """``principal_id(issuer, subject)``: how records name this principal."""
        return principal_id(self.issuer, self.subject)

    def role_in(self, tenant: str) -> Role | None:
        """The principal's role in ``tenant``, or None if it has none there."""
        return self.roles.get(tenant)

    def may(self, tenant: str, needed: Role) -> bool:
        """Whether the principal's role in ``tenant`` includes ``needed``."""
        role = self.roles.get(tenant)
        return role is not None and role >= needed

    def may_manage_subscription(self, tenant: str, owner: str | None) -> bool:
        """Whether it may change or delete a subscription created by principal ``owner``.

        Subscribers manage their own subscriptions, editors and admins every one of the tenant.
        """
        if self.may(tenant, Role.EDITOR):
            return True
        return owner == self.id and self.may(tenant, Role.SUBSCRIBER)

    def with_roles(self, extra: Mapping[str, Role]) -> Principal:
        """This principal with ``extra`` roles added; where both name a tenant, the higher wins."""
        if not extra:
            return self
        merged = dict(self.roles)
        for tenant, role in extra.items():
            merged[tenant] = max(role, merged.get(tenant, role))
        return Principal(
            self.subject, self.issuer, merged, self.operator, self.expires_at, self.method
        )


def principal_doc(principal: Principal) -> dict[str, Any]:
    """``principal`` as plain JSON (kept with what it created through a grant)."""
    return {
        "subject": principal.subject,
        "issuer": principal.issuer,
        "roles": {tenant: role.label for tenant, role in principal.roles.items()},
        "method": principal.method.value,
    }


def principal_of(doc: dict[str, Any]) -> Principal:
    """The principal ``principal_doc`` kept (not an operator, whatever it was)."""
    roles = {tenant: Role[label.upper()] for tenant, label in doc["roles"].items()}
    return Principal(doc["subject"], doc["issuer"], roles, method=AuthMethod(doc["method"]))


def require(principal: Principal, tenant: str, needed: Role) -> None:
    """Raise ``Forbidden`` unless ``principal`` holds ``needed`` (or more) in ``tenant``.

    The message names only what the client asked for: never which tenants exist or which
    roles the principal holds elsewhere.
    """
    if not principal.may(tenant, needed):
        where = "the default tenant" if tenant == "" else f"tenant {tenant!r}"
        raise Forbidden(f"this operation needs the role {needed.label} in {where}")


def require_operator(principal: Principal) -> None:
    """Raise ``Forbidden`` unless ``principal`` is a platform operator."""
    if not principal.operator:
        raise Forbidden("this operation is for the platform's operators")
