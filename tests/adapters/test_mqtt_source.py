"""The ingest adapter's MQTT subscriber against a real Mosquitto: delivery, acknowledgement only
after the handler returns (in receive order), persistence across restarts and crashes,
reconnection, back-pressure and shared subscriptions."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace

import aiomqtt
import pytest
from adapters.mqtt.acks import AckOrder
from adapters.mqtt.source import MqttSource, SourceConfig, redact
from broker.settings import MqttSettings

from tests.mqtt_fixtures import MqttBroker, relay, unique_topic, unused_port

WITHIN = 30.0  # seconds: generous, the suite may run on a loaded two-core machine
PUBACK = 4  # MQTT control packet type


class Inbox:
    """A handler that records what it is given; it can hold messages back or reject some."""

    def __init__(
        self, *, hold: bool = False, delay: float = 0.0, reject: Iterable[bytes] = ()
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.finished: list[bytes] = []
        self.release = asyncio.Event()  # held messages wait for this...
        self.gates: dict[bytes, asyncio.Event] = {}  # ...or for their own gate
        if not hold:
            self.release.set()
        self.delay = delay
        self.reject = frozenset(reject)
        self.running = 0
        self.peak = 0
        self._changed = asyncio.Event()

    @property
    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.messages]

    async def handler(self, topic: str, payload: bytes) -> None:
        self.messages.append((topic, payload))
        self.running += 1
        self.peak = max(self.peak, self.running)
        self._changed.set()
        try:
            await self.gates.get(payload, self.release).wait()
            if self.delay:
                await asyncio.sleep(self.delay)  # a slow store
            if payload in self.reject:
                raise ValueError("not a reading")
        finally:
            self.running -= 1
        self.finished.append(payload)
        self._changed.set()

    async def wait_for(self, count: int, *, finished: bool = False) -> None:
        """Until ``count`` messages were given to (or, with ``finished``, handled by) us."""
        seen = self.finished if finished else self.messages
        try:
            async with asyncio.timeout(WITHIN):
                while len(seen) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            pytest.fail(f"expected {count} messages within {WITHIN}s, got {len(seen)}")


TUNING = frozenset({"max_inflight", "session_expiry", "tls_ca_file"})
"""What ``SourceConfig`` takes from ``MqttSettings``."""


def config(url: str, *topics: str, **overrides: object) -> SourceConfig:
    client_id = f"toshi-test-{uuid.uuid4().hex[:12]}"
    return source_config(url=url, client_id=client_id, topics=topics, **overrides)


def source_config(**options: object) -> SourceConfig:
    """A ``SourceConfig``; options named like ``MqttSettings`` fields go to its settings."""
    # Long enough for a restart inside a test; short, so the shared broker forgets it soon.
    tuning: dict[str, object] = {"session_expiry": 30}
    tuning.update((name, options.pop(name)) for name in TUNING & set(options))
    options.setdefault("shared_group", f"g{uuid.uuid4().hex[:12]}")
    settings = MqttSettings(**tuning)  # type: ignore[arg-type]
    return SourceConfig(settings=settings, **options)  # type: ignore[arg-type]


def payloads(count: int, prefix: str = "reading") -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(count)]


async def publish(broker: MqttBroker, topic: str, messages: Iterable[bytes]) -> None:
    """Publish at QoS 1, each acknowledged by the broker before the next."""
    async with aiomqtt.Client(
        broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        for payload in messages:
            await client.publish(topic, payload, qos=1)


@asynccontextmanager
async def running(source: MqttSource) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``source`` (connected and subscribed) for the block; close it gracefully after."""
    task = asyncio.create_task(source.run())
    try:
        async with asyncio.timeout(WITHIN):
            await source.connected.wait()
        yield task
    finally:
        await source.close()
        if not task.cancelled():
            await task


async def crash(task: asyncio.Task[None]) -> None:
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """For what no event announces (counters, bytes seen by the relay): poll, with a deadline."""
    try:
        async with asyncio.timeout(WITHIN):
            while not condition():  # noqa: ASYNC110 - counters and relayed bytes announce nothing
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"not within {WITHIN}s: {what}")


def packet_ids(stream: bytes, packet_type: int) -> list[int]:
    """The packet identifiers of every ``packet_type`` packet in a client's byte stream."""
    found, pos = [], 0
    while pos < len(stream):
        kind, length, shift = stream[pos] >> 4, 0, 0
        pos += 1
        while True:  # MQTT 5.0 §1.5.5 Variable Byte Integer
            byte = stream[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if kind == packet_type:
            found.append(int.from_bytes(stream[pos : pos + 2], "big"))
        pos += length
    return found


# --- pure rules -------------------------------------------------------------------------------


def test_acknowledgements_wait_for_every_earlier_message() -> None:
    sent: list[int] = []
    order = AckOrder(lambda mid, qos: sent.append(mid))
    first, second, third, fourth = (order.receive(mid, 1) for mid in (7, 8, 9, 10))
    assert order.settle(third, acknowledge=True) == 0
    assert order.settle(second, acknowledge=False) == 0  # cancelled: it must come again
    assert sent == []
    assert order.settle(first, acknowledge=True) == 3
    assert sent == [7, 9]
    assert order.settle(fourth, acknowledge=True) == 1
    assert sent == [7, 9, 10]
    assert len(order) == 0


def test_nothing_is_acknowledged_on_a_lost_connection() -> None:
    sent: list[int] = []
    order = AckOrder(lambda mid, qos: sent.append(mid))
    slow, done, at_most_once = order.receive(1, 1), order.receive(2, 1), order.receive(0, 0)
    order.settle(done, acknowledge=True)
    order.settle(at_most_once, acknowledge=True)
    assert order.abandon() == 2  # the settled ones stop counting as outstanding at once
    assert order.settle(slow, acknowledge=True) == 1
    assert sent == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mqtt://ingest:s3cret@broker.city:1883", "mqtt://ingest:***@broker.city:1883"),
        ("mqtts://ingest:p%40ss@broker.city", "mqtts://ingest:***@broker.city"),
        ("mqtt://broker.city:1883", "mqtt://broker.city:1883"),
        ("mqtt://ingest@broker.city", "mqtt://ingest@broker.city"),
    ],
)
def test_redact_hides_only_the_password(url: str, shown: str) -> None:
    assert redact(url) == shown


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"url": "http://broker.city"}, "not an mqtt:// or mqtts:// broker URL"),
        ({"url": "mqtt://:1883"}, "not an mqtt:// or mqtts:// broker URL"),
        ({"url": "mqtt://broker.city:0"}, "port 0"),
        ({"url": "mqtt://ingest:s3cret@broker.city:99999"}, "[Pp]ort"),
        ({"client_id": ""}, "client_id"),
        ({"qos": 2}, "qos"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"shared_group": "a/b"}, "group"),
        ({"topics": ("city/#/level",)}, "topic filter"),
        ({"topics": ("city/gauge+",)}, "topic filter"),
        ({"topics": ("",)}, "topic filter"),
    ],
)
def test_unusable_settings_are_refused(overrides: dict[str, object], complaint: str) -> None:
    settings: dict[str, object] = {
        "url": "mqtt://broker.city",
        "client_id": "toshi-1",
        "topics": ("city/+/level", "lorawan/#"),
        **overrides,
    }
    with pytest.raises(ValueError, match=complaint) as refused:
        source_config(**settings)
    assert "s3cret" not in str(refused.value)


# --- against the broker -----------------------------------------------------------------------


async def test_published_messages_reach_the_handler_and_are_acknowledged(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    inbox = Inbox()
    source = MqttSource(config(mqtt_broker.url, f"{topic}/#"), inbox.handler)
    sent = payloads(50)
    async with running(source):
        await publish(mqtt_broker, f"{topic}/gauge-1", sent)
        await inbox.wait_for(len(sent), finished=True)
        await eventually(lambda: source.stats.acked == len(sent), "every message acknowledged")
    assert inbox.payloads == sent  # one topic: in publication order
    assert {topic_name for topic_name, _ in inbox.messages} == {f"{topic}/gauge-1"}
    assert source.stats.received == len(sent)
    assert source.stats.inflight == 0


async def test_pubacks_follow_receive_order_whatever_order_handlers_finish_in(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    sent = payloads(8)
    inbox = Inbox()
    inbox.gates = {payload: asyncio.Event() for payload in sent}
    async with relay(mqtt_broker) as proxy:
        source = MqttSource(config(f"mqtt://127.0.0.1:{proxy.port}", topic), inbox.handler)
        async with running(source):
            await publish(mqtt_broker, topic, sent)
            await inbox.wait_for(len(sent))
            for done, payload in enumerate(reversed(sent[1:]), start=1):
                inbox.gates[payload].set()
                await inbox.wait_for(done, finished=True)
            assert source.stats.acked == 0  # all wait for the first message
            assert source.stats.inflight == len(sent)
            inbox.gates[sent[0]].set()
            await eventually(lambda: len(packet_ids(proxy.sent, PUBACK)) == len(sent), "PUBACKs")
    acknowledged = packet_ids(proxy.sent, PUBACK)
    # A new session's packet ids count up from 1 in the order the broker sends the PUBLISHes.
    assert acknowledged == sorted(set(acknowledged))


async def test_a_slow_handler_loses_nothing_and_bounds_the_messages_in_flight(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    inbox = Inbox(delay=0.005)
    peak_inflight = 0

    async def handler(topic_name: str, payload: bytes) -> None:
        nonlocal peak_inflight
        peak_inflight = max(peak_inflight, source.stats.inflight)
        await inbox.handler(topic_name, payload)

    source = MqttSource(config(mqtt_broker.url, topic, max_inflight=5), handler)
    sent = payloads(300)  # Mosquitto queues up to 1000 messages per client by default
    async with running(source):
        await publish(mqtt_broker, topic, sent)
        await inbox.wait_for(len(sent), finished=True)
    assert sorted(inbox.finished) == sorted(sent)
    assert 2 <= inbox.peak <= 5  # concurrent, within the bound
    assert peak_inflight <= 5


async def test_messages_published_while_stopped_arrive_after_a_restart(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    settings = config(mqtt_broker.url, topic)
    async with running(MqttSource(settings, Inbox().handler)):
        pass  # the broker now has the session and its subscription
    sent = payloads(20)
    await publish(mqtt_broker, topic, sent)
    inbox = Inbox()
    async with running(MqttSource(settings, inbox.handler)):
        await inbox.wait_for(len(sent), finished=True)
    assert inbox.payloads == sent


async def test_messages_whose_handler_had_not_finished_come_again_after_a_crash(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    settings = config(mqtt_broker.url, topic)
    stuck = Inbox(hold=True)
    crashed = MqttSource(settings, stuck.handler)
    task = asyncio.create_task(crashed.run())
    async with asyncio.timeout(WITHIN):
        await crashed.connected.wait()
    sent = payloads(5)
    await publish(mqtt_broker, topic, sent)
    await stuck.wait_for(len(sent))
    await crash(task)
    assert crashed.stats.acked == 0

    inbox = Inbox()
    async with running(MqttSource(settings, inbox.handler)):
        await inbox.wait_for(len(sent), finished=True)
    assert inbox.payloads == sent


async def test_close_waits_for_running_handlers_and_acknowledges_them(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    settings = config(mqtt_broker.url, topic)
    held = Inbox(hold=True)
    source = MqttSource(settings, held.handler)
    task = asyncio.create_task(source.run())
    async with asyncio.timeout(WITHIN):
        await source.connected.wait()
    await publish(mqtt_broker, topic, payloads(3))
    await held.wait_for(3)
    closing = asyncio.create_task(source.close())
    await asyncio.wait({closing}, timeout=0.2)
    assert not closing.done()  # still waiting for the handlers
    held.release.set()
    await closing
    await task
    assert source.stats.acked == 3

    inbox = Inbox()
    async with running(MqttSource(settings, inbox.handler)):
        await publish(mqtt_broker, topic, [b"marker"])
        await inbox.wait_for(1, finished=True)
    assert inbox.payloads == [b"marker"]  # nothing acknowledged came again


async def test_close_returns_only_once_the_broker_has_read_the_acknowledgements(
    mqtt_broker: MqttBroker,
) -> None:
    # A restarted Toshi resumes the session as soon as the old process is gone. A broker that
    # takes a session over closes the old connection without reading what is left in it
    # (Mosquitto: "already connected, closing old connection"), so PUBACKs still on their way
    # are lost and the new connection gets those messages again: ingested twice.
    topic = unique_topic()
    held = Inbox(hold=True)
    async with relay(mqtt_broker) as proxy:
        settings = config(f"mqtt://127.0.0.1:{proxy.port}", topic)
        source = MqttSource(settings, held.handler)
        task = asyncio.create_task(source.run())
        async with asyncio.timeout(WITHIN):
            await source.connected.wait()
        sent = payloads(3)
        await publish(mqtt_broker, topic, sent)
        await held.wait_for(len(sent))
        proxy.hold()  # from here on the old connection's bytes reach the broker late
        closing = asyncio.create_task(source.close())
        held.release.set()
        await eventually(lambda: len(packet_ids(proxy.sent, PUBACK)) == len(sent), "PUBACKs")
        await publish(mqtt_broker, topic, [b"late"])  # too late to be handled by this source
        asyncio.get_running_loop().call_later(1.0, proxy.release)  # a second late
        await closing
        await task
        assert source.stats.acked == len(sent)
        assert held.payloads == sent

        # The successor: the same session, straight to the broker, once close has returned.
        inbox = Inbox()
        successor = replace(settings, url=mqtt_broker.url)
        async with running(MqttSource(successor, inbox.handler)):
            await publish(mqtt_broker, topic, [b"marker"])
            await inbox.wait_for(2, finished=True)
    assert inbox.payloads == [b"late", b"marker"]  # neither lost nor ingested twice


async def test_close_gives_up_on_a_stuck_handler_and_its_message_comes_again(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    settings = config(mqtt_broker.url, topic)
    stuck = Inbox(hold=True)
    source = MqttSource(settings, stuck.handler)
    async with running(source):
        await publish(mqtt_broker, topic, [b"stuck"])
        await stuck.wait_for(1)
        await source.close(timeout=0.1)
    assert source.stats.acked == 0

    inbox = Inbox()
    async with running(MqttSource(settings, inbox.handler)):
        await inbox.wait_for(1, finished=True)
    assert inbox.payloads == [b"stuck"]


async def test_after_a_cut_connection_it_reconnects_and_gets_unacknowledged_messages_again(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    inbox = Inbox(hold=True)
    async with relay(mqtt_broker) as proxy:
        settings = config(f"mqtt://127.0.0.1:{proxy.port}", topic, backoff_base=0.05)
        source = MqttSource(settings, inbox.handler)
        async with running(source):
            before = payloads(3, "before")
            await publish(mqtt_broker, topic, before)
            await inbox.wait_for(3)
            await proxy.cut()
            await inbox.wait_for(6)  # the broker sends the three unacknowledged ones again
            inbox.release.set()
            after = payloads(3, "after")
            await publish(mqtt_broker, topic, after)
            await inbox.wait_for(9, finished=True)
            await eventually(lambda: source.stats.acked == 6, "acknowledged on the new connection")
    assert inbox.payloads == before + before + after
    assert source.stats.reconnects == 1
    assert proxy.connections == 2


async def test_after_a_lost_connection_it_reconnects_only_once_handlers_make_room(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    inbox = Inbox(hold=True)
    sent = payloads(2)
    async with relay(mqtt_broker) as proxy:
        settings = config(
            f"mqtt://127.0.0.1:{proxy.port}",
            topic,
            max_inflight=2,
            backoff_base=0.01,
            keepalive=1,  # reading is paused: the keep-alive ping is what notices the cut
        )
        source = MqttSource(settings, inbox.handler)
        async with running(source):
            await publish(mqtt_broker, topic, sent)
            await inbox.wait_for(2)
            await proxy.cut()
            await eventually(lambda: not source.connected.is_set(), "the cut noticed")
            await asyncio.sleep(0.5)  # ample time to reconnect, which it must not do yet
            assert proxy.connections == 1
            inbox.release.set()
            await inbox.wait_for(4, finished=True)  # the two again, on a new connection
    assert proxy.connections == 2
    assert inbox.payloads == sent + sent


async def test_replicas_in_one_shared_group_split_the_messages_without_duplicates(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    group = f"toshi{uuid.uuid4().hex[:8]}"
    first, second = Inbox(), Inbox()
    sent = payloads(60)
    async with (
        running(MqttSource(config(mqtt_broker.url, topic, shared_group=group), first.handler)),
        running(MqttSource(config(mqtt_broker.url, topic, shared_group=group), second.handler)),
    ):
        await publish(mqtt_broker, topic, sent)
        await eventually(
            lambda: len(first.finished) + len(second.finished) == len(sent), "all messages"
        )
    assert sorted(first.payloads + second.payloads) == sorted(sent)
    assert first.payloads and second.payloads


async def test_set_topics_subscribes_and_unsubscribes_on_the_live_connection(
    mqtt_broker: MqttBroker,
) -> None:
    gauges, pumps = unique_topic("gauges"), unique_topic("pumps")
    inbox = Inbox()
    source = MqttSource(config(mqtt_broker.url, gauges), inbox.handler)
    async with running(source):
        await publish(mqtt_broker, gauges, [b"gauge-1"])
        await inbox.wait_for(1)

        await source.set_topics([pumps])
        await publish(mqtt_broker, gauges, [b"gauge-2"])  # Mosquitto routes in publish order,
        await publish(mqtt_broker, pumps, [b"pump-1"])  # so gauge-2 would come first
        await inbox.wait_for(2)

        await source.set_topics([gauges, pumps])
        await publish(mqtt_broker, gauges, [b"gauge-3"])
        await publish(mqtt_broker, pumps, [b"pump-2"])
        await inbox.wait_for(4)
    assert inbox.messages == [
        (gauges, b"gauge-1"),
        (pumps, b"pump-1"),
        (gauges, b"gauge-3"),
        (pumps, b"pump-2"),
    ]


async def test_a_handler_that_raises_does_not_stop_the_flow_and_its_message_is_acknowledged(
    mqtt_broker: MqttBroker,
) -> None:
    topic = unique_topic()
    settings = config(mqtt_broker.url, topic)
    inbox = Inbox(reject=[b"garbage"])
    source = MqttSource(settings, inbox.handler)
    async with running(source):
        await publish(mqtt_broker, topic, [b"reading-0", b"garbage", b"reading-1"])
        await inbox.wait_for(2, finished=True)
        await eventually(lambda: source.stats.acked == 3, "all three acknowledged")
    assert inbox.finished == [b"reading-0", b"reading-1"]
    assert source.stats.handler_errors == 1

    again = Inbox()
    async with running(MqttSource(settings, again.handler)):
        await publish(mqtt_broker, topic, [b"marker"])
        await again.wait_for(1, finished=True)
    assert again.payloads == [b"marker"]


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.arrived = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.arrived.set()


@pytest.fixture
def warnings() -> Iterator[Warnings]:
    watcher = Warnings()
    source_logger = logging.getLogger("adapters.mqtt.source")
    source_logger.addHandler(watcher)
    try:
        yield watcher
    finally:
        source_logger.removeHandler(watcher)


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param(lambda b: f"mqtt://ingest:s3cret@127.0.0.1:{unused_port()}", id="no-broker"),
        pytest.param(lambda b: f"mqtts://ingest:s3cret@{b.host}:{b.port}", id="no-tls-there"),
    ],
)
async def test_network_errors_are_retried_and_logged_without_the_password(
    mqtt_broker: MqttBroker, warnings: Warnings, broker: Callable[[MqttBroker], str]
) -> None:
    url = broker(mqtt_broker)
    settings = config(url, unique_topic(), backoff_base=0.01, backoff_cap=0.05)
    source = MqttSource(settings, Inbox().handler)
    task = asyncio.create_task(source.run())
    await _until(warnings, lambda: len(warnings.lines) >= 3)
    assert not task.done()  # still trying
    await source.close()
    await task
    assert all(redact(url) in line and "s3cret" not in line for line in warnings.lines)
    assert not source.connected.is_set()


async def _until(warnings: Warnings, condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WITHIN):
        while not condition():
            warnings.arrived.clear()
            await warnings.arrived.wait()


class LogLines(logging.Handler):
    """Every WARNING or worse line of the MQTT adapter (paho's own lines excepted)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("adapters.mqtt.connection.paho"):
            self.lines.append((record.levelno, record.getMessage()))

    def saying(self, text: str) -> list[str]:
        return [line for _, line in self.lines if text in line]


@pytest.fixture
def adapter_log() -> Iterator[LogLines]:
    watcher = LogLines()
    adapter_logger = logging.getLogger("adapters.mqtt")
    adapter_logger.addHandler(watcher)
    try:
        yield watcher
    finally:
        adapter_logger.removeHandler(watcher)


class Intruder:
    """Another client connecting under a given client id, as a second Toshi would (MQTT 5.0,
    Clean Start 0); ``kicked`` is set when the broker closes its connection."""

    def __init__(self, broker: MqttBroker, client_id: str) -> None:
        self._broker, self._client_id = broker, client_id
        self.kicked = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._watching: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self.close()  # the connection the broker closed, if any
        reader, self._writer = await asyncio.open_connection(self._broker.host, self._broker.port)
        identifier = self._client_id.encode()
        # MQTT 5.0 §3.1: "MQTT" v5, flags 0 (Clean Start 0), keep-alive 60 s, Session Expiry
        # Interval 30 s; the payload is the client id.
        body = b"\x00\x04MQTT\x05\x00\x00\x3c\x05\x11\x00\x00\x00\x1e"
        body += len(identifier).to_bytes(2, "big") + identifier
        self._writer.write(bytes([0x10, len(body)]) + body)
        connack = await reader.readexactly(4)
        assert connack[0] == 0x20 and connack[3] == 0, connack  # CONNACK, Success
        self.kicked.clear()
        self._watching = asyncio.create_task(self._watch(reader))

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass
        self.kicked.set()

    async def close(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
        if self._writer is not None:
            self._writer.close()
            with suppress(ConnectionError):
                await self._writer.wait_closed()


async def test_a_session_taken_over_by_another_client_is_said_so_and_left_to_it_a_while(
    mqtt_broker: MqttBroker, adapter_log: LogLines
) -> None:
    url = f"mqtt://ingest:s3cret@{mqtt_broker.host}:{mqtt_broker.port}"
    settings = config(url, unique_topic(), backoff_base=0.05, backoff_cap=4.0)
    source = MqttSource(settings, Inbox().handler)
    intruder = Intruder(mqtt_broker, settings.client_id)
    try:
        async with running(source):
            # Mosquitto before 2.0.15 closes the older connection without reason code 0x8E.
            await intruder.connect()
            await eventually(lambda: source.stats.reconnects == 1, "the session taken back")
            await asyncio.wait_for(intruder.kicked.wait(), WITHIN)

            await intruder.connect()  # and again: now there is no doubt left
            await eventually(lambda: not source.connected.is_set(), "the second takeover")
            await asyncio.sleep(2.0)  # less than the backoff cap: no fight for the session
            assert not intruder.kicked.is_set() and source.stats.reconnects == 1
            await asyncio.wait_for(intruder.kicked.wait(), WITHIN)  # back after the cap
            await eventually(lambda: source.connected.is_set(), "reconnected after the cap")
    finally:
        await intruder.close()
    shown = redact(url)
    taken_over = adapter_log.saying("taken over by another client with the same client id")
    assert taken_over, adapter_log.lines
    assert all(shown in line and settings.client_id in line for line in taken_over)
    assert all("TOSHI_MQTT__CLIENT_ID" in line for line in taken_over)
    assert any(level >= logging.ERROR for level, line in adapter_log.lines if line in taken_over)
    assert not adapter_log.saying("Unspecified error")
    assert not adapter_log.saying("s3cret")


CONNACK = b"\x20\x03\x00\x00\x00"  # MQTT 5.0 §3.2: Success, no session, no properties
SESSION_TAKEN_OVER = b"\xe0\x02\x8e\x00"  # §3.14: DISCONNECT, reason code 0x8E, no properties


async def test_a_broker_saying_session_taken_over_is_believed_and_not_fought(
    adapter_log: LogLines,
) -> None:
    loop = asyncio.get_running_loop()
    connected_at: list[float] = []

    async def takes_over_at_once(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connected_at.append(loop.time())
        await reader.read(65536)  # CONNECT
        writer.write(CONNACK + SESSION_TAKEN_OVER)
        await writer.drain()
        await reader.read()
        writer.close()

    server = await asyncio.start_server(takes_over_at_once, "127.0.0.1", 0)
    url = f"mqtt://ingest:s3cret@127.0.0.1:{server.sockets[0].getsockname()[1]}"
    source = MqttSource(config(url, backoff_base=0.01, backoff_cap=2.0), Inbox().handler)
    task = asyncio.create_task(source.run())
    try:
        await eventually(lambda: len(connected_at) >= 2, "a second attempt")
    finally:
        await source.close()
        await task
        server.close()
    assert connected_at[1] - connected_at[0] >= 1.9  # the cap, not the 0.01 s first backoff
    taken_over = adapter_log.saying("0x8E")
    assert taken_over, adapter_log.lines
    assert all(
        "taken over by another client with the same client id" in line for line in taken_over
    )
    assert all(redact(url) in line and "TOSHI_MQTT__CLIENT_ID" in line for line in taken_over)
    assert not adapter_log.saying("s3cret")
