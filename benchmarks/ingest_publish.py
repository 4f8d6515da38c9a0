"""The devices of ``ingest.py``: MQTT publishers, and the two ways they load a subscriber.

Theory of operation. ``Publishers`` holds a few paho-mqtt connections (MQTT 3.1.1, QoS 1, as
IoT Agent JSON devices speak), each with paho's own network thread, so this process's event loop
only builds payloads and hands them over. Device ``d`` always publishes through connection
``d % count``: MQTT keeps one connection's messages in order, so a device's last message is the
last one a subscriber sees for it, and ``ingest.py`` can check the entity shows exactly that.
A message counts as *published* when the broker acknowledged it (PUBACK).

* ``burst`` publishes ``messages`` round-robin over the devices as fast as it may, and times how
  long the subscriber takes to get through them. "As fast as it may": Mosquitto keeps for a
  QoS 1 subscriber what it has in flight (its Receive Maximum) plus ``max_queued_messages``
  (1,000 by default) and silently drops the rest. A burst that outruns the subscriber by more
  than that measures Mosquitto's drops, not the subscriber, so at most ``window`` messages are
  ever published and not yet through (``progress``, polled every ``poll`` seconds). A real
  deployment has the same limit: under a flood it is Mosquitto's queue, not Toshi, that drops.
  (Mosquitto 2.0.11 still dropped a few hundred messages now and then for a plain subscriber
  with a window of 1,000, never with 500; see ``ingest_ceiling``.)
* ``open_loop`` publishes at a fixed rate whatever happens downstream (publishing never blocks),
  stamping each measure's ``lvl`` with ``time.time()`` at the moment it is handed to paho.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from harness import HOST

MQTT_PORT = 1883
MOSQUITTO_LOG = Path("/var/log/mosquitto/mosquitto.log")  # Debian's service logs there
INFLIGHT = 1_000  # per connection: paho's default of 20 would make the PUBACK trip the limit

# The number of messages a subscriber got through so far.
Progress = Callable[[], Awaitable[int]]


def topic(apikey: str, device: int) -> str:
    """IoT Agent JSON measure topic of bench device ``device``."""
    return f"/json/{apikey}/{device_id(device)}/attrs"


def device_id(device: int) -> str:
    return f"d{device:04d}"


def measure(lvl: float) -> bytes:
    """A river gauge's measure: level, battery voltage, and the device's own time."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return orjson.dumps({"lvl": lvl, "bat": 3.6, "TimeInstant": now})


class Publishers:
    """``count`` QoS 1 publisher connections; ``await start()`` before publishing."""

    def __init__(self, count: int, tag: str) -> None:
        self.clients = [
            paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{tag}-{n}", userdata=n)
            for n in range(count)
        ]
        self.acked = [0] * count  # each entry is only written by its own client's thread
        self.last_ack = [0.0] * count
        self.sent = 0
        self.refused = 0  # publish() calls paho did not accept (not connected)
        self.lost_connections = 0
        self._connected = [threading.Event() for _ in range(count)]

    async def start(self) -> Publishers:
        for client in self.clients:
            client.max_inflight_messages_set(INFLIGHT)
            client.max_queued_messages_set(0)  # unbounded: bounded by the callers instead
            client.on_connect = self._on_connect
            client.on_publish = self._on_publish
            client.on_disconnect = self._on_disconnect
            client.connect(HOST, MQTT_PORT)
            client.loop_start()
        for connected in self._connected:
            if not await asyncio.to_thread(connected.wait, 10.0):
                raise RuntimeError(f"no CONNACK from the MQTT broker at {HOST}:{MQTT_PORT}")
        return self

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()

    @property
    def published(self) -> int:
        """Messages the broker acknowledged."""
        return sum(self.acked)

    def publish(self, device: int, apikey: str, payload: bytes) -> None:
        info = self.clients[device % len(self.clients)].publish(
            topic(apikey, device), payload, qos=1
        )
        self.sent += 1
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.refused += 1

    async def all_acknowledged(self, timeout: float) -> float:  # noqa: ASYNC109
        """Wait until every message sent is acknowledged; the time.time() of the last PUBACK."""
        deadline = time.perf_counter() + timeout
        # PUBACKs are counted on paho's threads, where an asyncio.Event cannot be set.
        while self.published < self.sent and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return max(self.last_ack)

    def _on_connect(
        self, client: paho.Client, n: int, flags: Any, reason: ReasonCode, _: Properties | None
    ) -> None:
        if not reason.is_failure:
            self._connected[n].set()

    def _on_publish(
        self, client: paho.Client, n: int, mid: int, reason: ReasonCode, _: Properties
    ) -> None:
        self.acked[n] += 1
        self.last_ack[n] = time.time()

    def _on_disconnect(
        self, client: paho.Client, n: int, flags: Any, reason: ReasonCode, _: Properties | None
    ) -> None:
        if reason.value:  # 0: our own DISCONNECT
            self.lost_connections += 1


@dataclass
class Burst:
    """What one burst took."""

    messages: int
    through: int  # what the subscriber got through (== messages unless some were lost)
    seconds: float  # first publish -> the subscriber through all of them (or gave up)
    publish_seconds: float  # first publish -> last PUBACK

    @property
    def rate(self) -> float:
        return self.through / self.seconds if self.seconds else 0.0

    @property
    def publish_rate(self) -> float:
        return self.messages / self.publish_seconds if self.publish_seconds else 0.0


async def burst(
    publishers: Publishers,
    apikey: str,
    devices: int,
    messages: int,
    *,
    window: int,
    progress: Progress,
    poll: float,
    patience: float = 20.0,
) -> Burst:
    """Publish ``messages`` (``lvl`` = the message's number) with at most ``window`` of them not
    yet through the subscriber; give up when ``progress`` stands still for ``patience`` s (some
    were lost: the time then runs to the last progress seen)."""
    sent, through = 0, await progress()
    moved = started = time.time()
    while through < messages and time.time() - moved < patience:
        for n in range(sent, min(messages, through + window)):
            publishers.publish(n % devices, apikey, measure(float(n)))
        sent = max(sent, min(messages, through + window))
        await asyncio.sleep(poll)
        now = await progress()
        if now != through:
            moved = time.time()
        through = now
    last_ack = await publishers.all_acknowledged(5.0)
    return Burst(messages, through, moved - started, last_ack - started)


async def open_loop(
    publishers: Publishers, apikey: str, devices: int, rate: float, duration: float
) -> int:
    """Publish ``rate`` messages/s for ``duration`` s, each stamped with its publish time in
    ``lvl``; returns how many were published."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    total = int(rate * duration)
    for n in range(total):
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        publishers.publish(n % devices, apikey, measure(time.time()))
    await publishers.all_acknowledged(10.0)
    return total


def drop_session(client_id: str) -> None:
    """End the persistent session Toshi left on the broker under ``client_id`` (Clean Start,
    expiry 0), so the shared broker does not queue copies of everyone's measures for it."""
    connected = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.on_connect = lambda *_: connected.set()
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call] # paho: untyped
    properties.SessionExpiryInterval = 0
    client.connect(HOST, MQTT_PORT, clean_start=True, properties=properties)
    client.loop_start()
    connected.wait(5.0)
    client.disconnect()
    client.loop_stop()


def broker_drops(client_ids: Iterable[str]) -> list[str]:
    """Mosquitto's own notices that it dropped messages for one of ``client_ids`` (read from its
    log where this process may read it): loss at the broker, not in the subscriber."""
    try:
        with MOSQUITTO_LOG.open("rb") as log:
            log.seek(max(0, log.seek(0, 2) - 4_000_000))  # the last few MB cover this run
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return []
    wanted = tuple(f"dropped for client {client_id}." for client_id in client_ids)
    return [line for line in lines if line.endswith(wanted)]
