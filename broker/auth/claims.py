"""Roles out of a token's claims, wherever and however an issuer writes them.

Issuers put roles in different places (``toshi_roles``, Keycloak's ``realm_access.roles``,
Entra ID's ``roles``) and in different shapes, so each trusted issuer has a ``RoleRule``:

- ``prefixed``: a list of strings, or one space-separated string like an OAuth ``scope``
  (RFC 8693 §4.2). ``takamatsu:editor`` is the role editor in tenant takamatsu, ``:editor``
  in the default tenant, a plain ``editor`` in the issuer's ``default_tenant`` (ignored when it
  has none), and ``operator`` or ``*:operator`` the platform operator flag.
- ``map``: an object ``{"takamatsu": "editor", "*": "operator"}``; a value may be a list.

Entries that name no Toshi role or no valid tenant are ignored, not refused: a Keycloak realm
lists ``offline_access`` and the like beside ours. Where a tenant gets several roles, the highest
counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from broker.auth.roles import OPERATOR, Role, parse_role
from broker.ngsild.errors import BadRequestData
from broker.ngsild.tenants import tenant_from_header

PLATFORM = "*"
"""Where the operator flag is written in place of a tenant name."""


@dataclass(frozen=True, slots=True)
class RoleRule:
    """Where an issuer's tokens carry roles, and in which shape.

    Attributes:
        path: dotted path of the claim, e.g. ``realm_access.roles``.
        format: ``prefixed`` or ``map`` (see the module docstring).
        default_tenant: the tenant plain role names mean, or None if they mean nothing.
    """

    path: str = "toshi_roles"
    format: Literal["prefixed", "map"] = "prefixed"
    default_tenant: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedRoles:
    """The roles found in a token: per tenant, and whether it names the platform operator."""

    roles: dict[str, Role]
    operator: bool


def roles_from_claims(claims: Mapping[str, Any], rule: RoleRule) -> ClaimedRoles:
    """The roles ``claims`` give under ``rule``; a missing claim gives none."""
    value = claim_at(claims, rule.path)
    pairs = _map_entries(value) if rule.format == "map" else _prefixed_entries(value, rule)
    roles: dict[str, Role] = {}
    operator = False
    for tenant, name in pairs:
        if tenant == PLATFORM:
            operator = operator or name.strip().lower() == OPERATOR
            continue
        role = parse_role(name)
        normal = _tenant(tenant)
        if role is not None and normal is not None:
            roles[normal] = max(role, roles.get(normal, role))
    return ClaimedRoles(roles, operator)


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of ``claims``, or None where a step is missing."""
    node: Any = claims
    for step in path.split("."):
        if not isinstance(node, Mapping) or step not in node:
            return None
        node = node[step]
    return node


def _prefixed_entries(value: Any, rule: RoleRule) -> Iterator[tuple[str, str]]:
    entries = value.split() if isinstance(value, str) else value
    if not isinstance(entries, list):
        return
    for entry in entries:
        if not isinstance(entry, str):
            continue
        tenant, separator, name = entry.rpartition(":")
        if separator:
            yield tenant, name
        elif name.strip().lower() == OPERATOR:
            yield PLATFORM, name
        elif rule.default_tenant is not None:
            yield rule.default_tenant, name


def _map_entries(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, Mapping):
        return
    for tenant, names in value.items():
        for name in names if isinstance(names, list) else [names]:
            if isinstance(tenant, str) and isinstance(name, str):
                yield tenant, name


def _tenant(name: str) -> str | None:
    if name == "":
        return ""
    try:
        normal = tenant_from_header(name)
    except BadRequestData:
        return None
    # A blank name is the default tenant for the header, but "  :editor" is no role of ours.
    return normal or None
