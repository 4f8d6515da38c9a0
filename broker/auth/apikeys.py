"""API keys for machine clients that cannot do OpenID Connect (a gateway, a town's old SCADA).

Theory of operation. A key belongs to one tenant and carries one role there (or, made by the
platform, the operator flag). It is kept in its tenant's store as a record of kind ``api-key``
under its key id, holding only the key's digest (``keyformat``); the key itself is returned once,
by ``create``, and never again. While the broker runs every key is held in memory by id, so
``verify`` is one dictionary lookup and one constant-time comparison, without I/O. Revoking
deletes the record: the key stops working at once, on this replica (other replicas load keys at
their start; see the integration notes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from broker.auth import keyformat
from broker.auth.principal import API_KEY_ISSUER, AuthMethod, Principal
from broker.auth.roles import Role, parse_role
from broker.clock import Clock, timestamp, utc_now
from broker.ngsild.errors import AuthFailure, BadRequestData, ResourceNotFound, Unauthorized
from broker.store.base import Store
from broker.store.everywhere import records_everywhere

_log = logging.getLogger(__name__)
API_KEY: Final = "api-key"
"""Record kind of API keys in the tenant store."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """What is known of an API key: everything but the key itself.

    Attributes:
        id: the key id (the part after ``toshi_``), also the principal's subject.
        name: what the key is for, as its creator called it.
        tenant: the tenant it belongs to.
        role: its role in that tenant (None for an operator-only key).
        operator: whether it is a platform operator key.
        digest: the stored digest of the key.
        created_by: the principal id of its creator.
        created_at: when it was made (NGSI-LD DateTime).
    """

    id: str
    name: str
    tenant: str
    role: Role | None
    operator: bool
    digest: str
    created_by: str
    created_at: str

    def principal(self) -> Principal:
        """The principal a request presenting this key acts as."""
        roles = {} if self.role is None else {self.tenant: self.role}
        return Principal(self.id, API_KEY_ISSUER, roles, self.operator, None, AuthMethod.API_KEY)

    def as_json(self) -> dict[str, Any]:
        """The key as the admin API shows it (the digest is not shown either)."""
        return {
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant,
            "role": None if self.role is None else self.role.label,
            "operator": self.operator,
            "createdBy": self.created_by,
            "createdAt": self.created_at,
        }

    def to_doc(self) -> dict[str, Any]:
        """The record kept in the store."""
        return self.as_json() | {"digest": self.digest}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ApiKey:
        """The key a record holds."""
        role = None if doc.get("role") is None else parse_role(doc["role"])
        return cls(
            doc["id"],
            doc["name"],
            doc["tenant"],
            role,
            bool(doc.get("operator")),
            doc["digest"],
            doc["createdBy"],
            doc["createdAt"],
        )


class ApiKeyService:
    """Create, list, revoke and verify API keys; the store keeps them, memory serves them."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock
        self._keys: dict[str, ApiKey] = {}

    async def start(self) -> None:
        """Load every tenant's keys."""
        async for tenant, doc in records_everywhere(self._store, API_KEY):
            try:
                key = ApiKey.from_doc(doc)
            except (KeyError, TypeError, ValueError):  # one broken record must not stop us
                _log.exception("API key record %r of tenant %r not loaded", doc, tenant)
                continue
            self._keys[key.id] = key

    async def create(
        self,
        tenant: str,
        name: str,
        role: Role | None,
        created_by: str,
        *,
        operator: bool = False,
    ) -> tuple[ApiKey, str]:
        """A new key for ``tenant``: its description, and the key itself (shown only now).

        Raises:
            BadRequestData: the key would grant nothing, or has no name.
        """
        if role is None and not operator:
            raise BadRequestData("an API key needs a role, or to be an operator key")
        if not name.strip():
            raise BadRequestData("an API key needs a name saying what it is for")
        key_id, secret = keyformat.new_key()
        key = ApiKey(
            key_id,
            name.strip(),
            tenant,
            role,
            operator,
            keyformat.digest(secret),
            created_by,
            timestamp(self._clock),
        )
        store = await self._store.tenant(tenant, create=True)
        await store.save_record(API_KEY, key.id, key.to_doc())
        self._keys[key.id] = key
        return key, secret

    def list(self, tenant: str) -> list[ApiKey]:
        """The keys of ``tenant``, oldest first."""
        return sorted(
            (key for key in self._keys.values() if key.tenant == tenant),
            key=lambda key: key.created_at,
        )

    def get(self, tenant: str, key_id: str) -> ApiKey:
        """One key of ``tenant``; a key of another tenant is as absent as no key."""
        key = self._keys.get(key_id)
        if key is None or key.tenant != tenant:
            raise ResourceNotFound(f"there is no API key {key_id!r}")
        return key

    async def revoke(self, tenant: str, key_id: str) -> None:
        """Delete a key of ``tenant``; it is refused from now on."""
        key = self.get(tenant, key_id)
        del self._keys[key.id]
        store = await self._store.tenant(tenant)
        await store.delete_record(API_KEY, key.id)

    def forget_tenant(self, tenant: str) -> None:
        """Drop the keys of a deleted tenant (their records go with its store)."""
        self._keys = {key_id: key for key_id, key in self._keys.items() if key.tenant != tenant}

    def verify(self, secret: str) -> Principal:
        """The principal the API key ``secret`` authenticates.

        Raises:
            Unauthorized: unknown, revoked or not an API key (the same answer for all three).
        """
        key_id = keyformat.key_id_of(secret)
        key = None if key_id is None else self._keys.get(key_id)
        # An unknown id is compared too, so that timing alone does not tell ids apart.
        stored = keyformat.digest("") if key is None else key.digest
        if not keyformat.matches(secret, stored) or key is None:
            raise Unauthorized(AuthFailure.UNKNOWN_KEY, "the API key is unknown or revoked")
        return key.principal()
