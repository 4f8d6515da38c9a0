"""Roles tenant admins give to principals through the admin API, beside those tokens carry.

An issuer that cannot put Toshi roles into its tokens (a prefecture's directory run by another
department) still identifies people; a town's admin then binds ``(issuer, subject)`` to a role in
the town. Bindings are records of kind ``role-binding`` in the tenant's store, keyed by principal
id, held in memory by principal while the broker runs, so ``apply`` costs a dictionary lookup.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

from broker.auth.principal import Principal, principal_id
from broker.auth.roles import Role, parse_role
from broker.clock import Clock, timestamp, utc_now
from broker.ngsild.errors import ResourceNotFound
from broker.store.base import Store
from broker.store.everywhere import records_everywhere

_log = logging.getLogger(__name__)
ROLE_BINDING: Final = "role-binding"
"""Record kind of role bindings in the tenant store."""


@dataclass(frozen=True, slots=True)
class RoleBinding:
    """``(issuer, subject)`` holds ``role`` in ``tenant``, given by ``created_by``."""

    tenant: str
    issuer: str
    subject: str
    role: Role
    created_by: str
    created_at: str

    @property
    def principal(self) -> str:
        """The bound principal's id."""
        return principal_id(self.issuer, self.subject)

    def as_json(self) -> dict[str, Any]:
        """The binding as the admin API shows it and the store keeps it."""
        return {
            "tenant": self.tenant,
            "issuer": self.issuer,
            "subject": self.subject,
            "role": self.role.label,
            "createdBy": self.created_by,
            "createdAt": self.created_at,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> RoleBinding:
        """The binding a record holds."""
        role = parse_role(doc["role"])
        if role is None:
            raise ValueError(f"unknown role {doc['role']!r}")
        fields = (doc["issuer"], doc["subject"], role, doc["createdBy"], doc["createdAt"])
        return cls(doc["tenant"], *fields)


class RoleBindings:
    """Bind, unbind and list roles per tenant; ``apply`` adds them to a principal."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock
        self._by_principal: defaultdict[str, dict[str, RoleBinding]] = defaultdict(dict)

    async def start(self) -> None:
        """Load every tenant's bindings."""
        async for tenant, doc in records_everywhere(self._store, ROLE_BINDING):
            try:
                binding = RoleBinding.from_doc(doc)
            except (KeyError, TypeError, ValueError):
                _log.exception("role binding %r of tenant %r not loaded", doc, tenant)
                continue
            self._by_principal[binding.principal][binding.tenant] = binding

    async def bind(
        self, tenant: str, issuer: str, subject: str, role: Role, created_by: str
    ) -> RoleBinding:
        """Give ``(issuer, subject)`` the role ``role`` in ``tenant`` (replacing one it had)."""
        binding = RoleBinding(tenant, issuer, subject, role, created_by, timestamp(self._clock))
        store = await self._store.tenant(tenant, create=True)
        await store.save_record(ROLE_BINDING, binding.principal, binding.as_json())
        self._by_principal[binding.principal][tenant] = binding
        return binding

    async def unbind(self, tenant: str, issuer: str, subject: str) -> None:
        """Take back the role bound to ``(issuer, subject)`` in ``tenant``."""
        key = principal_id(issuer, subject)
        if tenant not in self._by_principal.get(key, {}):
            raise ResourceNotFound(f"{subject!r} of {issuer!r} has no role bound here")
        del self._by_principal[key][tenant]
        await (await self._store.tenant(tenant)).delete_record(ROLE_BINDING, key)

    def forget_tenant(self, tenant: str) -> None:
        """Drop the bindings of a deleted tenant (their records go with its store)."""
        for held in self._by_principal.values():
            held.pop(tenant, None)

    def list(self, tenant: str) -> list[RoleBinding]:
        """The bindings of ``tenant``, oldest first."""
        found = [held[tenant] for held in self._by_principal.values() if tenant in held]
        return sorted(found, key=lambda binding: binding.created_at)

    def roles_of(self, issuer: str, subject: str) -> dict[str, Role]:
        """Tenant → role bound to ``(issuer, subject)``."""
        held = self._by_principal.get(principal_id(issuer, subject), {})
        return {tenant: binding.role for tenant, binding in held.items()}

    def apply(self, principal: Principal) -> Principal:
        """``principal`` with its bound roles added (the higher role wins per tenant)."""
        return principal.with_roles(self.roles_of(principal.issuer, principal.subject))
