"""The ASGI application: ``create_app(settings)`` wires the store, the @context loader and the
services together, and the lifespan starts and stops them."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from adapters.ingest import IngestService
from adapters.mqtt.runner import IngestRunner, SessionNames
from fastapi import FastAPI, Request, Response

from broker import __version__
from broker.api import (
    attributes,
    batch,
    discovery,
    entities,
    entity_maps,
    iot,
    metrics,
    problems,
    queries,
)
from broker.api import (
    subscriptions as subscription_routes,
)
from broker.api.guard import RequestGuard
from broker.contexts import ContextLoader
from broker.notify.dispatcher import Dispatcher
from broker.notify.http_sender import HttpSender
from broker.notify.mqtt_sender import MqttSender
from broker.runtime import Runtime
from broker.services.dead_letters import DeadLetters
from broker.services.entities import EntityService
from broker.services.entity_maps import EntityMapService
from broker.services.installation import installation_id
from broker.services.provisioning.service import ProvisioningService
from broker.services.subscriptions import SubscriptionService
from broker.settings import NotificationSettings, Settings
from broker.store import open_store

API_PREFIX = "/ngsi-ld/v1"
_log = logging.getLogger("broker")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the broker's ASGI application (nothing is opened until its lifespan starts)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(settings)
        await store.start()
        contexts = ContextLoader(settings.contexts)
        entities = EntityService(store)
        dispatcher = open_dispatcher(settings.notifications)
        await dispatcher.start()
        subscriptions = SubscriptionService(
            store,
            contexts,
            dispatcher,
            linked=entities.linked_entities,
            durable=settings.notifications.durable,
        )
        await subscriptions.start()
        entities.listeners.append(subscriptions.publish)
        provisioning = ProvisioningService(store)
        await provisioning.start()
        ingest, runner = await open_ingest(settings, entities, provisioning, contexts)
        app.state.runtime = Runtime(
            settings,
            store,
            contexts,
            entities,
            EntityMapService(),
            subscriptions,
            dispatcher,
            metric_sources=[ingest.metric_families, runner.metric_families],
            provisioning=provisioning,
            dead_letters=ingest.dead_letters,
        )
        _log.info("Toshi %s ready; store %s", __version__, store.describe())
        try:
            yield
        finally:
            await runner.close()  # stop taking device messages before anything else closes
            await subscriptions.close()
            await dispatcher.close()
            await subscriptions.close_outbox()
            await contexts.close()
            await store.close()
            _log.info("Toshi stopped")

    app = FastAPI(
        title="Toshi NGSI-LD broker",
        version=__version__,
        description="NGSI-LD context broker (ETSI GS CIM 009 v1.8).",
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(queries.router, prefix=API_PREFIX)
    app.include_router(entities.router, prefix=API_PREFIX)
    app.include_router(discovery.router, prefix=API_PREFIX)
    app.include_router(subscription_routes.router, prefix=API_PREFIX)
    app.include_router(attributes.router, prefix=API_PREFIX)
    app.include_router(entity_maps.router, prefix=API_PREFIX)
    app.include_router(batch.router, prefix=API_PREFIX)
    app.include_router(metrics.router)
    app.include_router(iot.router)
    app.add_api_route("/health", health, methods=["GET"], tags=["Operations"])
    app.add_middleware(RequestGuard, max_body_bytes=settings.limits.max_body_bytes)
    return app


async def open_ingest(
    settings: Settings,
    entities: EntityService,
    provisioning: ProvisioningService,
    contexts: ContextLoader,
) -> tuple[IngestService, IngestRunner]:
    """The ingest path and its MQTT connections (none without TOSHI_MQTT__URL or LoRaWAN
    groups: the HTTP broker runs without them)."""
    mqtt = settings.mqtt
    terms = contexts.core if mqtt.context is None else await contexts.from_link(mqtt.context)
    ingest = IngestService(entities, provisioning, terms, DeadLetters(mqtt.dead_letters))
    # A SQLite data directory has one process; a shared store (MongoDB) has replicas, each of
    # which needs a session of its own, under a name that stays the same across its restarts.
    replica = None if settings.store.startswith("sqlite:") else socket.gethostname()
    installation = await installation_id(provisioning.store)
    names = SessionNames.of(mqtt, installation, replica)
    runner = IngestRunner(mqtt, names, ingest, provisioning)
    await runner.start()
    return ingest, runner


def open_dispatcher(settings: NotificationSettings) -> Dispatcher:
    """The dispatcher with its senders: raw-asyncio HTTP(S) and MQTT(S)."""
    http = HttpSender(max_connections=settings.concurrency)
    mqtt = MqttSender()
    return Dispatcher(settings, {"http": http, "https": http, "mqtt": mqtt, "mqtts": mqtt})


async def health(request: Request) -> Response:
    """Liveness and readiness: 200 once the store is open."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    if runtime is None:
        return Response(b'{"status":"starting"}', 503, media_type="application/json")
    body = {"status": "ok", "version": __version__, "store": runtime.store.describe()}
    return Response(orjson.dumps(body), media_type="application/json")
