"""Which MQTT brokers the ingest adapter listens to, kept in step with provisioning.

One connection to the city's own broker (``TOSHI_MQTT__URL``) for IoT Agent JSON topics, and
one per distinct LoRaWAN network-server broker that provisioning names
(``internal_attributes.lorawan.application_server``), subscribed to the uplinks of the
provisioned applications: ``v3/<app>/devices/+/up`` (The Things Stack) or
``application/<app>/device/+/event/up`` (ChirpStack). When groups or devices change, topics are
added or dropped on the live connections and connections are opened or closed.

Every connection uses QoS 1 and a persistent session under a stable client id, so what devices
publish while Toshi restarts is delivered when it is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

from broker.prometheus import Family
from broker.services.provisioning.model import ApplicationServer
from broker.services.provisioning.service import ProvisioningService
from broker.settings import MqttSettings

from adapters.ingest import IngestService
from adapters.mqtt.source import Handler, MqttSource, SourceConfig, redact

_log = logging.getLogger(__name__)

CITY = "city"
"""Key of the connection to the city's own broker (``TOSHI_MQTT__URL``)."""
IOTA_TOPICS = (
    "/json/+/+/attrs",
    "/json/+/+/attrs/+",
    "json/+/+/attrs",
    "json/+/+/attrs/+",
    "/+/+/attrs",
    "/+/+/attrs/+",
    "+/+/attrs",
    "+/+/attrs/+",
)
"""IoT Agent JSON measure topics, prefixed and legacy, with and without a leading slash."""


@dataclass(frozen=True, slots=True)
class SessionNames:
    """What this installation's MQTT sessions are called on the brokers.

    Attributes:
        client_id: The city broker's session; network servers' sessions add a suffix to it.
        shared_group: The shared-subscription group of every connection; None for plain
            subscriptions.
    """

    client_id: str
    shared_group: str | None


def uplink_topics(server: ApplicationServer, applications: frozenset[str]) -> tuple[str, ...]:
    """The uplink topic filters of ``applications`` on a network server's broker."""
    if server.provider == "TTN":
        return tuple(sorted(f"v3/{app}/devices/+/up" for app in applications))
    return tuple(sorted(f"application/{app}/device/+/event/up" for app in applications))


class IngestRunner:
    """Runs one ``MqttSource`` per broker and keeps their topics matching provisioning."""

    def __init__(
        self,
        settings: MqttSettings,
        names: SessionNames,
        ingest: IngestService,
        provisioning: ProvisioningService,
    ) -> None:
        self._settings = settings
        self._names = names
        self._ingest = ingest
        self._provisioning = provisioning
        self._sources: dict[str, tuple[MqttSource, asyncio.Task[None]]] = {}
        """By URL; the city's broker under ``CITY`` (it may also be a network server's)."""
        self._reconciling: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._settings.url:
            self._open(
                CITY,
                self._settings.url,
                IOTA_TOPICS,
                self._names.client_id,
                self._ingest.handle_iota,
            )
        await self._reconcile()
        self._provisioning.listeners.append(self._provisioning_changed)

    async def close(self) -> None:
        if self._reconciling is not None:
            self._reconciling.cancel()
        for source, task in self._sources.values():
            await source.close()
            task.cancel()
        self._sources.clear()

    def metric_families(self) -> list[Family]:
        """Connection-level counters per broker (credentials never shown)."""
        received = Family(
            "toshi_ingest_mqtt_received_total", "counter", "MQTT messages received per broker."
        )
        reconnects = Family(
            "toshi_ingest_mqtt_reconnects_total", "counter", "Reconnections per broker."
        )
        inflight = Family(
            "toshi_ingest_mqtt_inflight", "gauge", "Messages being ingested, not yet acknowledged."
        )
        for key, (source, _) in sorted(self._sources.items()):
            url = self._settings.url if key == CITY else key
            labels = (("broker", redact(url or key)),)
            received.add(source.stats.received, labels)
            reconnects.add(source.stats.reconnects, labels)
            inflight.add(source.stats.inflight, labels)
        return [received, reconnects, inflight]

    def _provisioning_changed(self) -> None:
        if self._reconciling is None or self._reconciling.done():
            self._reconciling = asyncio.get_running_loop().create_task(self._reconcile())

    async def _reconcile(self) -> None:
        wanted: dict[str, tuple[ApplicationServer, tuple[str, ...]]] = {}
        for server, applications in self._provisioning.application_servers().values():
            wanted[server.login_url] = (server, uplink_topics(server, applications))
        for url in [u for u in self._sources if u != CITY and u not in wanted]:
            source, task = self._sources.pop(url)
            _log.info("ingest: no application listens on %s any more; disconnecting", redact(url))
            await source.close()
            task.cancel()
        for url, (server, topics) in wanted.items():
            if url in self._sources:
                await self._sources[url][0].set_topics(topics)
                continue

            async def handle(
                topic: str, payload: bytes, server: ApplicationServer = server
            ) -> None:
                await self._ingest.handle_lorawan(topic, payload, server)

            client_id = f"{self._names.client_id}-{_short_hash(url)}"
            self._open(url, url, topics, client_id, handle)

    def _open(
        self, key: str, url: str, topics: tuple[str, ...], client_id: str, handler: Handler
    ) -> None:
        config = SourceConfig(
            url=url,
            client_id=client_id,
            topics=topics,
            shared_group=self._names.shared_group,
            settings=self._settings,
        )
        source = MqttSource(config, handler)
        task = asyncio.get_running_loop().create_task(source.run(), name=f"ingest {redact(url)}")
        self._sources[key] = (source, task)
        _log.info("ingest: listening on %s (%d topic filters)", redact(url), len(topics))


def _short_hash(text: str) -> str:
    # Stable across restarts (unlike hash()), so the persistent session is found again.
    return hashlib.sha256(text.encode()).hexdigest()[:12]
