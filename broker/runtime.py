"""The running broker's parts, built once at start-up by ``broker.app`` and shared by requests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from broker.audit import AuditTrail
from broker.auth.assembly import AuthServices
from broker.contexts import ContextLoader
from broker.dashboard.sink import Sinks
from broker.notify.dispatcher import Dispatcher
from broker.prometheus import Family
from broker.services.contexts import ContextService
from broker.services.csource_subscriptions import CsourceSubscriptionService
from broker.services.dead_letters import DeadLetters
from broker.services.entities import EntityService
from broker.services.entity_maps import EntityMapService
from broker.services.federation.service import Federation
from broker.services.provisioning.service import ProvisioningService
from broker.services.registrations import RegistrationService
from broker.services.snapshots import SnapshotService
from broker.services.subscriptions import SubscriptionService
from broker.services.temporal import TemporalService
from broker.services.tenants import TenantService
from broker.settings import Settings
from broker.store.base import Store


@dataclass(slots=True)
class Runtime:
    """Everything a request handler or an ingest adapter may use."""

    settings: Settings
    store: Store
    contexts: ContextLoader
    entities: EntityService
    entity_maps: EntityMapService
    subscriptions: SubscriptionService
    dispatcher: Dispatcher
    auth: AuthServices
    tenants: TenantService
    jsonld_contexts: ContextService
    """The @context store (``/jsonldContexts``)."""
    metric_sources: list[Callable[[], Iterable[Family]]] = field(default_factory=list)
    """More metric families for ``/metrics`` (the ingest adapter adds its own)."""
    provisioning: ProvisioningService | None = None
    """IoT Agent groups and devices (``/iot/...``) and the ingest path's device lookups."""
    audit: AuditTrail | None = None
    """Where audit lines go, when the audit log is on."""
    dead_letters: DeadLetters | None = None
    """Device messages the ingest adapters set aside (shown under ``/iot/dead-letters``)."""
    sinks: Sinks = field(default_factory=Sinks)
    """In-process receivers of dashboard streams (``broker.dashboard``)."""
    temporal: TemporalService | None = None
    """Attribute history (``/temporal/...``)."""
    registrations: RegistrationService = field(kw_only=True)
    """Context source registrations (``/csourceRegistrations``)."""
    csource_subscriptions: CsourceSubscriptionService = field(kw_only=True)
    """Registration subscriptions (``/csourceSubscriptions``)."""
    federation: Federation = field(kw_only=True)
    """Distributed operations: forwarding to registered context sources."""
    snapshots: SnapshotService | None = None
    """Snapshots (``/snapshots``, v1.9 §5.16)."""

    async def delete_tenant(self, name: str) -> None:
        """Delete tenant ``name``: what every part holds of it, then its data, for good."""
        await self.tenants.forget(name)
        await self.subscriptions.drop_tenant(name)
        self.registrations.drop_tenant(name)
        self.csource_subscriptions.drop_tenant(name)
        if self.provisioning is not None:
            await self.provisioning.drop_tenant(name)
        await self.auth.drop_tenant(name)
        self.jsonld_contexts.drop_tenant(name)
        if self.snapshots is not None:
            await self.snapshots.purge(name, None)  # their frozen copies live in tenants too
        await self.store.drop_tenant(name)
