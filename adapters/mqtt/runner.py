"""Which MQTT brokers the ingest adapter listens to, kept in step with provisioning.

One connection to the city's own broker (``TOSHI_MQTT__URL``) for IoT Agent JSON topics, and
one per distinct way provisioning names to reach a LoRaWAN network server's broker
(``internal_attributes.lorawan.application_server``: URL, login and provider), subscribed to the
uplinks of the applications reached that way: ``v3/<app>/devices/+/up`` (The Things Stack) or
``application/<app>/device/+/event/up`` (ChirpStack). Two applications on one broker with their
own logins thus get two connections, each reading only what its login may read; a ChirpStack
and a TTN application on one broker get their own providers' topics. When groups or devices
change, topics are added or dropped on the live connections and connections are opened or
closed.

Every connection uses QoS 1 and a persistent session under a client id of its own that stays
the same across restarts (for network servers: the installation's client id and a hash of the
URL, login and provider, which shows no password), so what devices publish while Toshi restarts
is delivered when it is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

import orjson
from broker.prometheus import Family
from broker.services.provisioning.model import ApplicationServer
from broker.services.provisioning.service import ProvisioningService
from broker.settings import MqttSettings

from adapters.ingest import IngestService
from adapters.mqtt.source import Handler, MqttSource, SourceConfig, redact

_log = logging.getLogger(__name__)

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

    @classmethod
    def of(
        cls, settings: MqttSettings, installation: str, replica: str | None = None
    ) -> SessionNames:
        """The names ``settings`` give, with the installation's own where they give none.

        Two installations on one broker must never share a client id (they would take the
        session from each other) or a group (they would split each other's messages), while
        the replicas of one installation share the group on purpose. Hence the defaults:
        ``toshi-<installation>`` for both, plus ``-<replica>`` for the client id of a
        replica of a shared store, since each replica needs a session of its own.

        Args:
            settings: ``client_id`` and ``shared_group`` win when set (an empty group means
                plain subscriptions).
            installation: The installation id (``broker.services.installation``).
            replica: What tells this replica from the others of its installation and stays the
                same across its restarts (its host name); None with a store of its own.
        """
        base = f"toshi-{installation}"
        default_id = base if replica is None else f"{base}-{replica}"
        group = base if settings.shared_group is None else settings.shared_group
        return cls(settings.client_id or default_id, group or None)


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
        """By client id; the city broker's is ``names.client_id`` (it may also be a network
        server's broker: that is another connection, under another client id)."""
        self._reconciling: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._settings.url:
            self._open(
                self._settings.url, IOTA_TOPICS, self._names.client_id, self._ingest.handle_iota
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
        """Connection-level counters per connection (credentials never shown)."""
        received = Family(
            "toshi_ingest_mqtt_received_total", "counter", "MQTT messages received per broker."
        )
        reconnects = Family(
            "toshi_ingest_mqtt_reconnects_total", "counter", "Reconnections per broker."
        )
        inflight = Family(
            "toshi_ingest_mqtt_inflight", "gauge", "Messages being ingested, not yet acknowledged."
        )
        for client_id, (source, _) in sorted(self._sources.items()):
            labels = (("broker", redact(source.config.url)), ("client_id", client_id))
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
            wanted[self._client_id(server)] = (server, uplink_topics(server, applications))
        city = self._names.client_id
        for client_id in [c for c in self._sources if c != city and c not in wanted]:
            source, task = self._sources.pop(client_id)
            _log.info(
                "ingest: no application is reached as %s on %s any more; disconnecting",
                client_id,
                redact(source.config.url),
            )
            await source.close()
            task.cancel()
        for client_id, (server, topics) in wanted.items():
            if client_id in self._sources:
                await self._sources[client_id][0].set_topics(topics)
                continue

            async def handle(
                topic: str, payload: bytes, server: ApplicationServer = server
            ) -> None:
                await self._ingest.handle_lorawan(topic, payload, server)

            self._open(server.login_url, topics, client_id, handle)

    def _client_id(self, server: ApplicationServer) -> str:
        # Stable across restarts (unlike hash()), so the persistent session is found again;
        # distinct per login and provider, and a digest, so it never shows the password.
        identity = orjson.dumps(list(server.connection))
        return f"{self._names.client_id}-{hashlib.sha256(identity).hexdigest()[:12]}"

    def _open(self, url: str, topics: tuple[str, ...], client_id: str, handler: Handler) -> None:
        config = SourceConfig(
            url=url,
            client_id=client_id,
            topics=topics,
            shared_group=self._names.shared_group,
            settings=self._settings,
        )
        source = MqttSource(config, handler)
        task = asyncio.get_running_loop().create_task(source.run(), name=f"ingest {client_id}")
        self._sources[client_id] = (source, task)
        _log.info(
            "ingest: listening on %s as %s (%d topic filters)",
            redact(url),
            client_id,
            len(topics),
        )
