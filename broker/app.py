"""The ASGI application: ``create_app(settings)`` wires the store, the @context loader and the
services together, and the lifespan starts and stops them."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

import orjson
from adapters.ingest import IngestService
from adapters.mqtt.runner import IngestRunner, SessionNames
from fastapi import FastAPI, Request, Response
from fastapi.telemetry import TelemetryConfig

from broker import __version__, doc_cache
from broker.api import (
    admin,
    attributes,
    batch,
    discovery,
    entities,
    entity_maps,
    iot,
    jsonld_contexts,
    metrics,
    problems,
    queries,
    registrations,
    snapshots,
    source_identity,
    temporal_provision,
)
from broker.api import (
    csource_subscriptions as csource_subscription_routes,
)
from broker.api import (
    subscriptions as subscription_routes,
)
from broker.api import temporal as temporal_routes
from broker.api.access import PUBLIC
from broker.api.audit import AuditLog
from broker.api.fastlane import FastLane
from broker.api.federated import WarningHeaders
from broker.api.guard import RequestGuard
from broker.audit import AuditTrail
from broker.auth.assembly import build_auth
from broker.auth.grant_service import GRANT
from broker.context_store import HostedContexts
from broker.contexts import ContextLoader
from broker.dashboard import events as dashboard_events
from broker.dashboard import pages as dashboard_pages
from broker.dashboard.sink import Sinks
from broker.notify.dispatcher import Dispatcher, Egress, Sender
from broker.notify.http_sender import HttpSender
from broker.notify.mqtt_sender import MqttSender
from broker.notify.replicas import Replicas
from broker.runtime import Runtime
from broker.services.contexts import ContextService
from broker.services.csource_subscriptions import CsourceSubscriptionService
from broker.services.dead_letters import DeadLetters
from broker.services.entities import EntityService
from broker.services.entity_maps import EntityMapService
from broker.services.expiry import ExpirySweep
from broker.services.federation.service import Federation
from broker.services.following import Follower
from broker.services.installation import installation_id
from broker.services.provisioning.service import DEVICE, GROUP, ProvisioningService
from broker.services.registrations import REGISTRATION, RegistrationService
from broker.services.retention import RetentionJob
from broker.services.snapshots import SnapshotService
from broker.services.subscriptions import SUBSCRIPTION, SubscriptionService
from broker.services.temporal import TemporalService
from broker.services.tenants import KIND as TENANT
from broker.services.tenants import TenantService
from broker.settings import NotificationSettings, Settings
from broker.store import open_store
from broker.store.base import Store

API_PREFIX = "/ngsi-ld/v1"
FOLLOWED = [SUBSCRIPTION, REGISTRATION, GRANT, GROUP, DEVICE, TENANT]
"""Record kinds whose caches replicas keep current from each other's changes."""
_log = logging.getLogger("broker")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> FastAPI:
    """Build the broker's ASGI application.

    Without ``runtime``, its lifespan starts the broker's parts (``open_runtime``) and stops
    them; ``toshi serve`` starts them itself first, so that a failure is one clear message.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            yield
            return
        async with open_runtime(settings) as started:
            app.state.runtime = started
            yield

    app = FastAPI(
        title="Toshi NGSI-LD broker",
        version=__version__,
        description="NGSI-LD context broker (ETSI GS CIM 009 v1.8).",
        lifespan=lifespan,
        telemetry=_telemetry(settings.opentelemetry),
    )
    problems.install(app)
    ngsi_ld = [
        (API_PREFIX, module.router)
        for module in (
            queries,
            entities,
            discovery,
            subscription_routes,
            attributes,
            entity_maps,
            batch,
            temporal_routes,
            temporal_provision,
            jsonld_contexts,
            registrations,
            csource_subscription_routes,
            source_identity,
        )
    ]
    for prefix, router in ngsi_ld:
        app.include_router(router, prefix=prefix)
    app.include_router(metrics.router)
    app.include_router(iot.router)
    app.include_router(admin.router)
    app.include_router(snapshots.router, prefix=API_PREFIX)
    if settings.dashboard.enabled:
        app.include_router(dashboard_pages.router)
        app.include_router(dashboard_events.router)
    app.add_api_route(
        "/health", health, methods=["GET"], tags=["Operations"], dependencies=[PUBLIC]
    )
    if settings.fast_lane:
        app.add_middleware(FastLane, routers=ngsi_ld)
    if settings.audited:
        app.add_middleware(AuditLog)
    app.add_middleware(WarningHeaders)
    app.add_middleware(RequestGuard, max_body_bytes=settings.limits.max_body_bytes)
    return app


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """Start every part of the broker, in order, as one stack; stop them in reverse.

    Each part's stop is registered before it starts, so a start that fails half-way (a store
    that cannot be opened, an MQTT URL that cannot be used) unwinds everything started before
    it, and the failure reaches the caller. Stopping drains deliveries in flight for at most
    ``TOSHI_NOTIFICATIONS__DRAIN_TIMEOUT`` seconds; what is left is sent after the restart.
    """
    notify = settings.notifications
    async with AsyncExitStack() as stack:
        doc_cache.SHARED.size = settings.doc_cache_entries
        store = open_store(settings)
        await _start(stack, store.start, store.close)
        replicas, follower = await _open_replication(settings, store, stack)
        tenants = TenantService(store, settings.tenants, explicit=settings.explicit_tenants)
        await tenants.start()
        auth = build_auth(settings.auth, store)
        await _start(stack, auth.start, auth.close)
        hosted = HostedContexts(store, settings.contexts)
        await hosted.start()
        contexts = ContextLoader(settings.contexts, hosted=hosted.document)
        stack.push_async_callback(contexts.close)
        dispatcher = open_dispatcher(notify, auth.egress_refusal)
        subscriptions = SubscriptionService(
            store,
            contexts,
            dispatcher,
            durable=notify.durable,
            grants=auth.subscribable,
            replicas=replicas,
        )
        # Dashboard streams, fed by the engine in-process with what their viewers may read.
        sinks = Sinks(settings.dashboard.throttling, auth.readable)
        subscriptions.notifier.feed = sinks
        stack.push_async_callback(subscriptions.close_journal)  # after the dispatcher's drain
        await _start(stack, dispatcher.start, partial(dispatcher.close, notify.drain_timeout))
        history = settings.temporal
        entities = EntityService(
            store,
            notifier=subscriptions.notifier,
            quota=lambda tenant: tenants.quotas(tenant).max_entities,
            history=lambda tenant: _history_on(tenants, tenant, history.history),
        )
        temporal = TemporalService(store)
        retention = RetentionJob(
            store,
            temporal,
            lambda tenant: tenants.history(tenant).retention_days or history.retention_days,
            history.retention_interval,
        )
        await _start(stack, retention.start, retention.close)
        await _start(stack, subscriptions.start, subscriptions.close)
        registry = RegistrationService(store)
        await _start(stack, registry.start, registry.close)
        csource_subscriptions = CsourceSubscriptionService(store, contexts, dispatcher, registry)
        await _start(stack, csource_subscriptions.start, csource_subscriptions.close)
        sweep = ExpirySweep(store, entities, settings.expiry_sweep_interval)
        await _start(stack, sweep.start, sweep.close)
        snapshot_service = SnapshotService(store, entities)
        stack.push_async_callback(snapshot_service.close)
        provisioning = ProvisioningService(store)
        await provisioning.start()
        ingest, runner = await open_ingest(settings, entities, provisioning, contexts, stack)
        pseudonym = settings.federation.pseudonym or (
            "toshi-" + await installation_id(provisioning.store)
        )
        federation = Federation(settings.federation, registry, pseudonym)
        stack.push_async_callback(federation.close)
        if follower is not None:
            for cache in (tenants, auth.grants, subscriptions, registry, provisioning):
                follower.add(cache)
            auth.grants.revoked.append(subscriptions.grants_changed)
            follower.start()
        audit = AuditTrail(settings.audit_log_file) if settings.audited else None
        if audit is not None:
            await _start(stack, audit.start, audit.close)
        stack.callback(_log.info, "Toshi stopped")
        yield Runtime(
            settings,
            store,
            contexts,
            entities,
            EntityMapService(),
            subscriptions,
            dispatcher,
            auth,
            tenants,
            ContextService(hosted, contexts),
            metric_sources=[ingest.metric_families, runner.metric_families],
            provisioning=provisioning,
            audit=audit,
            dead_letters=ingest.dead_letters,
            sinks=sinks,
            temporal=temporal,
            registrations=registry,
            csource_subscriptions=csource_subscriptions,
            federation=federation,
            snapshots=snapshot_service,
        )


async def _open_replication(
    settings: Settings, store: Store, stack: AsyncExitStack
) -> tuple[Replicas | None, Follower | None]:
    """With a store other replicas share: this replica's lease, and the feed of their record
    changes, opened before any cache loads (docs/design.md, "Several replicas")."""
    replication = store.replication()
    if not replication.shared:
        return None, None
    term = settings.replicas
    replicas = Replicas(replication, term.lease_term, term.margin)
    await _start(stack, replicas.start, replicas.close)
    follower = Follower(store, replication)
    await _start(stack, partial(follower.open, FOLLOWED), follower.close)
    return replicas, follower


def _replica_name(settings: Settings) -> str:
    return settings.replicas.id or socket.gethostname()


def _history_on(tenants: TenantService, tenant: str, default: bool) -> bool:
    enabled = tenants.history(tenant).enabled
    return default if enabled is None else enabled


async def _start(
    stack: AsyncExitStack, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
) -> None:
    stack.push_async_callback(stop)
    await start()


async def open_ingest(
    settings: Settings,
    entities: EntityService,
    provisioning: ProvisioningService,
    contexts: ContextLoader,
    stack: AsyncExitStack,
) -> tuple[IngestService, IngestRunner]:
    """The ingest path and its MQTT connections (none without TOSHI_MQTT__URL or LoRaWAN
    groups: the HTTP broker runs without them)."""
    mqtt = settings.mqtt
    terms = contexts.core if mqtt.context is None else await contexts.from_link(mqtt.context)
    ingest = IngestService(entities, provisioning, terms, DeadLetters(mqtt.dead_letters))
    # A SQLite data directory has one process; a shared store (MongoDB) has replicas, each of
    # which needs a session of its own, under a name that stays the same across its restarts.
    replica = None if settings.store.startswith("sqlite:") else _replica_name(settings)
    installation = await installation_id(provisioning.store)
    names = SessionNames.of(mqtt, installation, replica)
    runner = IngestRunner(mqtt, names, ingest, provisioning)
    # Stopped first of all: no device message is taken while the rest closes.
    await _start(stack, runner.start, runner.close)
    return ingest, runner


def open_dispatcher(settings: NotificationSettings, egress: Egress | None = None) -> Dispatcher:
    """The dispatcher with its senders: raw-asyncio HTTP(S) and MQTT(S)."""
    http = HttpSender(max_connections=settings.concurrency)
    mqtt = MqttSender()
    senders: dict[str, Sender] = {"http": http, "https": http, "mqtt": mqtt, "mqtts": mqtt}
    return Dispatcher(settings, egress=egress, senders=senders)


async def health(request: Request) -> Response:
    """Liveness and readiness: 200 once the store is open (public, for probes)."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return Response(b'{"status":"starting"}', 503, media_type="application/json")
    body: dict[str, object] = {"status": "ok"}
    if not runtime.auth.enabled:  # anonymous probes of a shared platform learn only "ok"
        body |= {"version": __version__, "store": runtime.store.describe()}
    return Response(orjson.dumps(body), media_type="application/json")


def _telemetry(enabled: bool) -> TelemetryConfig:
    """FastAPI's OpenTelemetry hooks; off, so that an unconfigured process pays nothing for them
    per request (FastAPI otherwise looks the global providers up on every request)."""
    if enabled:
        return {}
    return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
