"""Device messages in, entity updates out: the ingest path every southbound transport shares.

Theory of operation. A transport (MQTT today) hands each message to ``handle_iota`` (the city's
broker: FIWARE IoT Agent JSON topics) or ``handle_lorawan`` (a network server's broker, whose
provider says the format: The Things Stack or ChirpStack). Where a message came from decides how
it is read, so nobody can inject a fake LoRaWAN uplink through the city's broker. A pure decoder
turns the bytes into readings (``adapters.formats``); provisioning
(``broker.services.provisioning``) says which tenant, entity and attribute mapping the device
has; the pure mapping builds an NGSI-LD fragment (``adapters.mapping``); and the fragment is
written through ``EntityService.upsert``, exactly as an HTTP write would be, so subscriptions
fire and the same validation applies. A handler returns once the write is committed: the
transport acknowledges the message only then, so a message is never acknowledged and lost.

Concurrency: the transport runs many ``handle`` calls at once, which is how bursts become
batched store writes (the SQLite writer commits concurrent writes together). Writes to one
entity are serialised in arrival order, so a device's older reading never overwrites a newer one
that arrived after it.

Bad input never raises: it is counted per reason, logged at WARNING with the topic, and kept in
the tenant's dead-letter list. A store outage is not bad input: the message is retried with
backoff, unacknowledged, until the store takes the write (the transport stops reading once its
in-flight window is full), so readings sent during an outage arrive late instead of never.

MQTT may deliver a message twice (QoS 1); a LoRaWAN uplink seen before (same network-server
uplink id) is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

from broker.clock import Clock, timestamp, utc_now
from broker.ngsild.entity import parse_entity
from broker.ngsild.errors import NgsiLdError
from broker.ngsild.terms import TermTable
from broker.prometheus import Family
from broker.retry import full_jitter
from broker.services.dead_letters import DeadLetter, DeadLetters
from broker.services.entities import EntityService
from broker.services.provisioning.model import ApplicationServer, Effective
from broker.services.provisioning.service import ProvisioningService
from broker.store.outage import is_outage

from adapters.formats import chirpstack, iota_json, ttn_v3
from adapters.formats.errors import DecodeError
from adapters.formats.uplink import Reading, Uplink
from adapters.mapping import entity_fragment, radio_fragment, uplink_readings

_log = logging.getLogger(__name__)


class _UplinkDecoder(Protocol):
    def decode(self, topic: str, payload: bytes) -> Uplink: ...


_LOG_EVERY: Final = 10.0
"""Seconds between two WARNING lines for rejections of the same reason."""
_DEDUP_WINDOW: Final = 10_000
"""Recent LoRaWAN uplink ids remembered to drop redeliveries."""
_RETRY_BASE: Final = 0.1
_RETRY_CAP: Final = 5.0
"""Seconds: backoff bounds while the store is away."""


class Rejected(Exception):
    """A message (or part of it) that cannot be ingested, with the tenant it belongs to."""

    def __init__(self, reason: str, detail: str, tenant: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.tenant = tenant


class _KeyedLocks:
    """One lock per entity, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._held.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._held[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (lock, users - 1)


class IngestService:
    """Decodes device messages, maps them with provisioning, and writes the entities."""

    def __init__(
        self,
        entities: EntityService,
        provisioning: ProvisioningService,
        terms: TermTable,
        dead_letters: DeadLetters,
        clock: Clock = utc_now,
    ) -> None:
        self._entities = entities
        self._provisioning = provisioning
        self._terms = terms
        self.dead_letters = dead_letters
        self._clock = clock
        self._locks = _KeyedLocks()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._logged: dict[str, tuple[float, int]] = {}
        self.messages: Counter[str] = Counter()
        """Messages handled, per format."""
        self.updates = 0
        """Entity updates committed."""
        self.store_retries = 0
        """Messages tried again because the store was away."""

    async def handle_iota(self, topic: str, payload: bytes) -> None:
        """Ingest one IoT Agent JSON message; never raises (bad input is set aside)."""
        self.messages["iota_json"] += 1
        await self._guarded(topic, payload, lambda: self._iota(topic, payload))

    async def handle_lorawan(self, topic: str, payload: bytes, server: ApplicationServer) -> None:
        """Ingest one uplink from ``server``'s broker; never raises (bad input is set aside)."""
        self.messages[server.provider.lower()] += 1
        decoder = ttn_v3 if server.provider == "TTN" else chirpstack
        await self._guarded(topic, payload, lambda: self._lorawan(topic, payload, decoder, server))

    async def _guarded(
        self, topic: str, payload: bytes, work: Callable[[], Awaitable[None]]
    ) -> None:
        failures = 0
        while True:
            try:
                await work()
                return
            except Exception as error:
                if not is_outage(error):
                    self._set_aside(topic, payload, error)
                    return
                # Writes are upserts of the same fragments, so trying the whole message again
                # after a partial write repeats nothing a reader could tell apart.
                self.store_retries += 1
                self._log_limited("store_unavailable", f"store unavailable ({error}); retrying")
                await asyncio.sleep(full_jitter(failures, _RETRY_BASE, _RETRY_CAP))
                failures += 1

    def _set_aside(self, topic: str, payload: bytes, error: Exception) -> None:
        if isinstance(error, Rejected):
            self._reject(error.tenant, topic, error.reason, error.detail, payload)
        elif isinstance(error, DecodeError):
            self._reject("", topic, error.reason, error.message, payload)
        else:  # a bug must not stop the flow of valid messages
            _log.error("ingesting a message from %s failed", topic, exc_info=error)
            self._reject("", topic, "internal_error", repr(error), payload)

    def metric_families(self) -> list[Family]:
        """Ingest counters for ``/metrics``."""
        messages = Family("toshi_ingest_messages_total", "counter", "Device messages handled.")
        for kind, count in sorted(self.messages.items()):
            messages.add(count, (("format", kind),))
        updates = Family(
            "toshi_ingest_updates_total", "counter", "Entity updates committed from devices."
        ).add(self.updates)
        retries = Family(
            "toshi_ingest_store_retries_total",
            "counter",
            "Device messages tried again because the store was unavailable.",
        ).add(self.store_retries)
        return [messages, updates, retries, *self.dead_letters.metric_families()]

    async def _iota(self, topic: str, payload: bytes) -> None:
        where = iota_json.parse_topic(topic)
        effective = self._provisioning.for_iota(where.apikey, where.device_id)
        if effective is None:
            raise Rejected(
                "unknown_device", f"no device {where.device_id!r} under apikey {where.apikey!r}"
            )
        try:
            readings = iota_json.decode(where, payload)
        except DecodeError as error:
            raise Rejected(error.reason, error.message, effective.tenant) from None
        await self._write(effective, readings, topic, payload)

    async def _lorawan(
        self, topic: str, payload: bytes, decoder: _UplinkDecoder, server: ApplicationServer
    ) -> None:
        uplink = decoder.decode(topic, payload)
        found = self._provisioning.for_lorawan(
            uplink.application_id, uplink.device_id, uplink.dev_eui, server_url=server.url
        )
        if found is None:
            raise Rejected(
                "unknown_device",
                f"no LoRaWAN device {uplink.device_id!r} in application {uplink.application_id!r}",
            )
        effective, lorawan = found
        if uplink.dedup_id is not None and self._already_seen(uplink.dedup_id):
            return
        try:
            readings = uplink_readings(uplink, lorawan)
        except DecodeError as error:
            raise Rejected(error.reason, error.message, effective.tenant) from None
        radio = radio_fragment(effective, uplink, received_at=self._now())
        await self._write(effective, readings, topic, payload, also=radio)

    async def _write(
        self,
        effective: Effective,
        readings: list[Reading],
        topic: str,
        payload: bytes,
        *,
        also: dict[str, Any] | None = None,
    ) -> None:
        """Write ``readings`` into the device's entity, then ``also`` (the radio entity)."""
        # The entity's lock is taken before the first await and held for the whole message:
        # messages of one device are written in the order they arrived, each as a whole (a
        # later one is never written between two readings of an earlier one).
        async with self._locks.hold((effective.tenant, effective.entity_id)):
            if effective.autoprovisioned:
                await self._provisioning.remember_autoprovisioned(effective)
            for reading in readings:
                fragment, rejected = entity_fragment(effective, reading, received_at=self._now())
                for part in rejected:
                    detail = f"{part.object_id}: {part.detail}"
                    self._reject(effective.tenant, topic, part.reason, detail, payload)
                await self._upsert(effective.tenant, fragment)
            if also is not None:
                await self._upsert(effective.tenant, also)

    async def _upsert(self, tenant: str, fragment: dict[str, Any]) -> None:
        try:
            doc = parse_entity(fragment, self._terms)
        except NgsiLdError as error:
            raise Rejected("invalid_entity", error.detail, tenant) from None
        await self._entities.upsert(tenant, doc, replace=False)
        self.updates += 1

    def _already_seen(self, dedup_id: str) -> bool:
        if dedup_id in self._seen:
            return True
        self._seen[dedup_id] = None
        if len(self._seen) > _DEDUP_WINDOW:
            self._seen.popitem(last=False)
        return False

    def _reject(self, tenant: str, topic: str, reason: str, detail: str, payload: bytes) -> None:
        self.dead_letters.add(tenant, DeadLetter.of(self._now(), topic, reason, detail, payload))
        self._log_limited(reason, f"{reason} from {topic}: {detail}")

    def _log_limited(self, reason: str, text: str) -> None:
        # One line per reason per interval: a misconfigured fleet must not flood the log (every
        # rejection is still counted in /metrics and kept in the dead letters).
        now = time.monotonic()
        last, skipped = self._logged.get(reason, (float("-inf"), 0))
        if now - last < _LOG_EVERY:
            self._logged[reason] = (last, skipped + 1)
            return
        self._logged[reason] = (now, 0)
        more = f" ({skipped} more like it not logged)" if skipped else ""
        _log.warning("ingest: %s%s", text, more)

    def _now(self) -> str:
        return timestamp(self._clock)
