"""The @contexts tenants host (GS CIM 009 v1.8.1 §5.13.2): in memory, and saved in their stores.

Each tenant's hosted @contexts are records of kind ``jsonldContext`` in that tenant's store,
loaded at start, so they survive restarts; a tenant sees, serves and deletes only its own
(§5.5.10). Their local ids are random and unique across tenants, which is what lets the
``ContextLoader`` take the document a hosted URL names without knowing whose it is: whoever
knows a hosted URL may use its terms, as with any @context published on a web server.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from broker.clock import Clock, timestamp, utc_now
from broker.ngsild.errors import BadRequestData, PayloadTooLarge
from broker.ngsild.jsonld_contexts import Kind
from broker.settings import ContextSettings
from broker.store.base import Store
from broker.store.everywhere import records_everywhere

RECORD = "jsonldContext"
"""The record kind hosted @contexts are saved as."""
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HostedContext:
    """A @context the broker serves from its own store."""

    local_id: str
    kind: Kind
    """``Hosted`` (a client added it) or ``ImplicitlyCreated`` (the broker made it)."""
    document: dict[str, Any]
    """``{"@context": ...}``, as served."""
    created_at: str

    def record(self) -> dict[str, Any]:
        """The record it is saved as."""
        return {
            "localId": self.local_id,
            "kind": str(self.kind),
            "document": self.document,
            "createdAt": self.created_at,
        }

    @classmethod
    def from_record(cls, doc: dict[str, Any]) -> HostedContext:
        """The hosted @context a record holds."""
        return cls(doc["localId"], Kind(doc["kind"]), doc["document"], doc["createdAt"])


class HostedContexts:
    """Every tenant's hosted @contexts, with the caps of ``ContextSettings``."""

    def __init__(self, store: Store, settings: ContextSettings, clock: Clock = utc_now) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._tenants: dict[str, dict[str, HostedContext]] = {}
        self._by_id: dict[str, HostedContext] = {}

    async def start(self) -> None:
        """Load what every tenant hosts; a record that no longer parses is skipped."""
        async for tenant, doc in records_everywhere(self._store, RECORD):
            try:
                self._hold(tenant, HostedContext.from_record(doc))
            except (KeyError, TypeError, ValueError) as exc:
                _log.warning("hosted @context record of tenant %r not loaded: %r", tenant, exc)

    def document(self, local_id: str) -> Any:
        """The document hosted under ``local_id`` by any tenant, or ``None``."""
        found = self._by_id.get(local_id)
        return None if found is None else found.document

    def get(self, tenant: str, local_id: str) -> HostedContext | None:
        """``tenant``'s hosted @context ``local_id``, if it has one."""
        return self._tenants.get(tenant, {}).get(local_id)

    def of(self, tenant: str) -> list[HostedContext]:
        """``tenant``'s hosted @contexts, oldest first."""
        return list(self._tenants.get(tenant, {}).values())

    async def add(
        self, tenant: str, document: dict[str, Any], kind: Kind = Kind.HOSTED
    ) -> HostedContext:
        """Host ``document`` for ``tenant`` under a new local id, saved before it returns.

        Raises:
            PayloadTooLarge: it is larger than ``hosted_max_bytes``.
            BadRequestData: the tenant already hosts ``max_hosted`` @contexts.
        """
        size, limit = len(orjson.dumps(document)), self._settings.hosted_max_bytes
        if size > limit:
            raise PayloadTooLarge(
                f"the @context is {size} bytes; at most {limit} can be hosted "
                "(TOSHI_CONTEXTS__HOSTED_MAX_BYTES)"
            )
        if len(self._tenants.get(tenant, {})) >= self._settings.max_hosted:
            raise BadRequestData(
                f"the tenant already hosts {self._settings.max_hosted} @contexts, as many as it "
                "may (TOSHI_CONTEXTS__MAX_HOSTED); delete one first"
            )
        hosted = HostedContext(uuid.uuid4().hex, kind, document, timestamp(self._clock))
        self._hold(tenant, hosted)  # held first: concurrent adds cannot pass the cap together
        try:
            store = await self._store.tenant(tenant, create=True)
            await store.save_record(RECORD, hosted.local_id, hosted.record())
        except BaseException:
            self._release(tenant, hosted.local_id)
            raise
        return hosted

    async def delete(self, tenant: str, local_id: str) -> bool:
        """Delete ``tenant``'s hosted @context ``local_id``; whether it had one."""
        if self.get(tenant, local_id) is None:
            return False
        store = await self._store.tenant(tenant)
        await store.delete_record(RECORD, local_id)
        self._release(tenant, local_id)
        return True

    def drop_tenant(self, tenant: str) -> set[str]:
        """Forget a deleted tenant's hosted @contexts (its store goes with it); their ids."""
        dropped = self._tenants.pop(tenant, {})
        for local_id in dropped:
            self._by_id.pop(local_id, None)
        return set(dropped)

    def _hold(self, tenant: str, hosted: HostedContext) -> None:
        self._tenants.setdefault(tenant, {})[hosted.local_id] = hosted
        self._by_id[hosted.local_id] = hosted

    def _release(self, tenant: str, local_id: str) -> None:
        self._tenants.get(tenant, {}).pop(local_id, None)
        self._by_id.pop(local_id, None)
