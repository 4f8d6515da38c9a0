"""Sharing grants: what one tenant lets another tenant (or a named principal) see (pure).

A town shares part of its data with a neighbour or the prefecture: entities of some types,
optionally only some of their attributes, optionally only those a ``q`` and/or a geo-query
select. A ``Grant`` says so; this module decides, for one entity document of the owner tenant
(the internal expanded shape of ``broker.ngsild.entity``), whether a grantee sees it and which
attributes of it.

Semantics. An entity is visible under a set of grants when at least one grant *selects* it: the
entity has one of the grant's types, and satisfies the grant's ``q`` and geo-query. Those are
evaluated on the whole entity, as the owner sees it, so an owner may share "the name of every
gauge whose status is public" without sharing the status. The visible attributes are the union of
the attributes of the grants that select it (a grant without an attribute list shares them all).
What the grantee receives is the entity projected to them: its id, types, scope and system times,
and only the visible attributes. The grantee's own query filters that projection, never the
whole entity, so hidden attributes cannot be probed with ``q``.

Grants never follow Relationships: a grant's ``q`` has no linked-entity paths (``grant_docs``
refuses them), and in shared reads a grantee's linked-entity paths reach nothing, since the
entities they lead to may not be shared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from broker.auth.principal import Principal
from broker.auth.roles import Role
from broker.ngsild.entity import EntityDoc
from broker.ngsild.query.geo import GeoQuery, evaluate_geo
from broker.ngsild.query.qeval import evaluate_q
from broker.ngsild.query.qlang import QExpr


class Permission(StrEnum):
    """What a grant allows on the entities it selects."""

    READ = "read"
    """Retrieve and query them."""
    SUBSCRIBE = "subscribe"
    """Subscribe to their changes (notifications carry the same projection)."""


_NEEDED = {Permission.READ: Role.READER, Permission.SUBSCRIBE: Role.SUBSCRIBER}
"""The role a member of a grantee tenant needs there to use the permission."""


@dataclass(frozen=True, slots=True)
class Grantee:
    """Who receives a grant: every member of a tenant, or one principal (exactly one is set).

    Attributes:
        tenant: the grantee tenant; its readers may read, its subscribers subscribe.
        principal: a principal id (``principal_id(issuer, subject)``).
    """

    tenant: str | None = None
    principal: str | None = None

    def __post_init__(self) -> None:
        if (self.tenant is None) == (self.principal is None):
            raise ValueError("a grantee is a tenant or a principal")

    def covers(self, principal: Principal, permission: Permission) -> bool:
        """Whether ``principal`` may use ``permission`` of a grant to this grantee."""
        if self.principal is not None:
            return principal.id == self.principal
        assert self.tenant is not None
        return principal.may(self.tenant, _NEEDED[permission])


@dataclass(frozen=True, slots=True)
class Selection:
    """Which entities a grant shares, and which of their attributes.

    Attributes:
        types: entity type IRIs; an entity with any of them may be selected.
        attrs: attribute IRIs shared, None for all.
        q: a ``q`` the entity must satisfy (no linked-entity paths).
        geo: a geo-query the entity must satisfy.
    """

    types: frozenset[str]
    attrs: frozenset[str] | None = None
    q: QExpr | None = None
    geo: GeoQuery | None = None

    def selects(self, doc: EntityDoc) -> bool:
        """Whether ``doc`` is one of the entities this selection shares."""
        if self.types.isdisjoint(doc["type"]):
            return False
        if self.q is not None and not evaluate_q(self.q, doc):
            return False
        return self.geo is None or evaluate_geo(self.geo, doc)


@dataclass(frozen=True, slots=True)
class Grant:
    """``owner`` shares ``selection`` with ``grantee`` for ``permissions``.

    Attributes:
        id: the grant's id (a URN).
        owner: the tenant whose entities are shared.
        grantee: who receives them.
        permissions: ``read``, and optionally ``subscribe``.
        selection: what is shared.
        created_by: principal id of the admin who made the grant.
        created_at: when (NGSI-LD DateTime).
    """

    id: str
    owner: str
    grantee: Grantee
    permissions: frozenset[Permission]
    selection: Selection
    created_by: str
    created_at: str


def applicable(
    grants: Iterable[Grant], owner: str, principal: Principal, permission: Permission
) -> list[Grant]:
    """The grants of tenant ``owner`` that let ``principal`` use ``permission``."""
    return [
        grant
        for grant in grants
        if grant.owner == owner
        and permission in grant.permissions
        and grant.grantee.covers(principal, permission)
    ]


def visible_attributes(doc: EntityDoc, grants: Iterable[Grant]) -> frozenset[str] | None:
    """The attributes of ``doc`` its grantee sees, all of them as None.

    Raises:
        LookupError: no grant selects ``doc`` (it is not visible at all).
    """
    found: set[str] = set()
    selected = False
    for grant in grants:
        selection = grant.selection
        if selection.selects(doc):
            if selection.attrs is None:
                return None
            selected = True
            found |= selection.attrs
    if not selected:
        raise LookupError(doc["id"])
    return frozenset(found)


def project(doc: EntityDoc, attrs: frozenset[str] | None) -> EntityDoc:
    """``doc`` with only the attributes ``attrs`` (all of them for None); members other than
    attributes (id, types, scope, system times) are kept."""
    if attrs is None:
        return doc
    shown: dict[str, Any] = {name: value for name, value in doc.items() if name != "attrs"}
    shown["attrs"] = {name: value for name, value in doc["attrs"].items() if name in attrs}
    return shown


def shared_view(doc: EntityDoc, grants: Iterable[Grant]) -> EntityDoc | None:
    """What the grantee of ``grants`` sees of ``doc``: its projection, or None if invisible."""
    try:
        return project(doc, visible_attributes(doc, grants))
    except LookupError:
        return None
