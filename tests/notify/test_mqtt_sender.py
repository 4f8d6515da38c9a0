"""MQTT notifications: the endpoint and payload rules, then the sender against a real Mosquitto."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import orjson
import pytest
from broker.notify.dispatcher import Delivery, Dispatcher, Outcome
from broker.notify.http_sender import SendError
from broker.notify.mqtt_message import (
    EndpointError,
    MqttOptions,
    MqttTarget,
    encode_message,
    parse_endpoint,
    split_notifier_info,
)
from broker.notify.mqtt_sender import MqttSender
from broker.settings import NotificationSettings

from tests.mqtt_fixtures import (
    MqttBroker,
    collect,
    fake_broker,
    relay,
    unique_topic,
    unused_port,
)

LINK = '<https://example.org/ctx.jsonld>; rel="http://www.w3.org/ns/json-ld#context"'


def notification(level: float = 1.5) -> bytes:
    return orjson.dumps(
        {
            "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
            "type": "Notification",
            "subscriptionId": "urn:ngsi-ld:Subscription:kamo",
            "notifiedAt": "2026-11-23T01:00:00.000Z",
            "data": [
                {
                    "id": "urn:ngsi-ld:RiverGauge:kamo-1",
                    "type": "RiverGauge",
                    "level": {"type": "Property", "value": level},
                    "name": {"type": "Property", "value": "鴨川"},
                }
            ],
        }
    )


# --- the pure rules: endpoint URI, notifierInfo, payload ---------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://broker.city/gauges", MqttTarget("mqtt", "broker.city", 1883, "gauges")),
        ("mqtts://broker.city/a/b/c", MqttTarget("mqtts", "broker.city", 8883, "a/b/c")),
        ("MQTT://Broker.City:1999/x", MqttTarget("mqtt", "broker.city", 1999, "x")),
        ("mqtt://[::1]:1884/x", MqttTarget("mqtt", "::1", 1884, "x")),
        ("mqtt://h/river%20gauges/%E9%B4%A8", MqttTarget("mqtt", "h", 1883, "river gauges/鴨")),
        ("mqtt://ops@h/x", MqttTarget("mqtt", "h", 1883, "x", "ops", None)),
        ("mqtt://al%20ice:p%40ss%3Aw@h/x", MqttTarget("mqtt", "h", 1883, "x", "al ice", "p@ss:w")),
        ("mqtt://:secret@h/x", MqttTarget("mqtt", "h", 1883, "x", "", "secret")),
    ],
)
def test_endpoint_names_broker_topic_and_credentials(url: str, expected: MqttTarget) -> None:
    assert parse_endpoint(url) == expected


def test_only_mqtts_endpoints_use_tls() -> None:
    assert parse_endpoint("mqtts://h/x").tls
    assert not parse_endpoint("mqtt://h/x").tls


@pytest.mark.parametrize(
    "url",
    [
        "mqtt://h",  # no topic
        "mqtt://h/",  # empty topic
        "mqtt://h/city/+/level",  # wildcards can be subscribed to, never published to
        "mqtt://h/city/#",
        "mqtt://h/city/%23",
        "mqtt://h/city/%2B",
        "mqtt://h/$SYS/broker",  # reserved for the broker
        "mqtt://h:99999/x",
        "mqtt://h:port/x",
        "mqtt://h:0/x",
        "mqtt:///x",  # no host
        "mqtt://h/x?qos=1",
        "http://h/x",
        "mqtt://h/%FF",  # not UTF-8
    ],
)
def test_unusable_endpoints_are_refused(url: str) -> None:
    with pytest.raises(EndpointError):
        parse_endpoint(url)


def test_refusals_do_not_repeat_the_password() -> None:
    with pytest.raises(EndpointError) as refused:
        parse_endpoint("mqtt://ops:hunter2@h:99999/x")
    assert "hunter2" not in str(refused.value)
    assert "ops:***@h:99999" in str(refused.value)


def test_notifier_info_sets_version_and_qos_and_stays_out_of_metadata() -> None:
    headers = {
        "Content-Type": "application/json",
        "mqtt-version": "MQTT5.0",
        "MQTT-QOS": "2",
        "test-receiver-key": "test-receiver-info",
    }
    options, metadata = split_notifier_info(headers)
    assert options == MqttOptions(version="mqtt5.0", qos=2)
    assert metadata == {
        "Content-Type": "application/json",
        "test-receiver-key": "test-receiver-info",
    }


def test_notifier_info_defaults_to_mqtt_3_1_1_at_qos_0() -> None:
    assert split_notifier_info({"Content-Type": "application/json"})[0] == MqttOptions(
        "mqtt3.1.1", 0
    )


@pytest.mark.parametrize(
    "headers", [{"MQTT-Version": "mqtt3.1"}, {"MQTT-QoS": "3"}, {"MQTT-QoS": "one"}]
)
def test_undefined_notifier_info_values_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(EndpointError):
        split_notifier_info(headers)


def test_message_wraps_the_notification_unchanged_with_its_metadata() -> None:
    body = notification()
    message = orjson.loads(encode_message(body, {"Content-Type": "application/json", "Link": LINK}))
    assert message == {
        "metadata": {"Content-Type": "application/json", "Link": LINK},
        "body": orjson.loads(body),
    }


# --- against a real broker --------------------------------------------------------------------


@pytest.fixture
async def sender() -> AsyncIterator[MqttSender]:
    mqtt = MqttSender()
    yield mqtt
    await mqtt.close()


async def test_notification_arrives_on_the_topic_as_metadata_and_body(
    mqtt_broker: MqttBroker, sender: MqttSender
) -> None:
    topic = unique_topic("toshi-test/city/gauges")
    body = notification()
    headers = {
        "Content-Type": "application/ld+json",
        "Link": LINK,
        "NGSILD-Tenant": "kyoto",
        "test-receiver-key": "test-receiver-info",
        "MQTT-Version": "mqtt3.1.1",
        "MQTT-QoS": "1",
    }
    async with collect(mqtt_broker, topic) as received:
        status = await sender.post(mqtt_broker.endpoint(topic), body, headers, 5.0)
        await received.wait_for(1)
    assert status == 200
    assert received.messages[0].topic.value == topic
    assert received.json(0) == {
        "metadata": {
            "Content-Type": "application/ld+json",
            "Link": LINK,
            "NGSILD-Tenant": "kyoto",
            "test-receiver-key": "test-receiver-info",
        },
        "body": orjson.loads(body),
    }


@pytest.mark.parametrize(("qos", "published_qos"), [(None, 0), ("0", 0), ("1", 1), ("2", 2)])
async def test_message_is_published_with_the_requested_qos(
    mqtt_broker: MqttBroker, sender: MqttSender, qos: str | None, published_qos: int
) -> None:
    topic = unique_topic()
    headers = {"Content-Type": "application/json"} | ({"MQTT-QoS": qos} if qos else {})
    async with collect(mqtt_broker, topic) as received:
        await sender.post(mqtt_broker.endpoint(topic), notification(), headers, 5.0)
        [message] = await received.wait_for(1)
    # The collector subscribed at QoS 2, so the broker forwards at the publisher's QoS.
    assert message.qos == published_qos


async def test_mqtt_5_publishes_declare_json_and_use_their_own_connection(
    mqtt_broker: MqttBroker, sender: MqttSender
) -> None:
    topic = unique_topic()
    endpoint = mqtt_broker.endpoint(topic)
    async with collect(mqtt_broker, topic) as received:
        await sender.post(endpoint, notification(1.0), {"MQTT-Version": "mqtt5.0"}, 5.0)
        await sender.post(endpoint, notification(2.0), {"MQTT-Version": "mqtt3.1.1"}, 5.0)
        messages = await received.wait_for(2)
    # Two connections: arrival order between them is not defined, the level tells them apart.
    by_level = {
        orjson.loads(p)["body"]["data"][0]["level"]["value"]: m
        for p, m in zip(_payloads(*messages), messages, strict=True)
    }
    v5, v311 = by_level[1.0].properties, by_level[2.0].properties
    # Only an MQTT 5.0 PUBLISH can carry properties; 3.1.1 has nowhere to put them.
    assert v5 is not None and v311 is not None
    assert v5.json() == {"PayloadFormatIndicator": 1, "ContentType": "application/json"}
    assert v311.json() == {}
    assert sender.connections_opened == 2


async def test_many_notifications_share_one_connection(
    mqtt_broker: MqttBroker, sender: MqttSender
) -> None:
    topic = unique_topic()
    endpoint = mqtt_broker.endpoint(topic)
    async with collect(mqtt_broker, topic) as received:
        await asyncio.gather(
            *(sender.post(endpoint, notification(n), {"MQTT-QoS": "1"}, 5.0) for n in range(20))
        )
        for n in range(20, 25):
            await sender.post(endpoint, notification(n), {}, 5.0)
        messages = await received.wait_for(25)
    levels = sorted(
        orjson.loads(p)["body"]["data"][0]["level"]["value"] for p in _payloads(*messages)
    )
    assert levels == list(range(25))
    assert sender.connections_opened == 1


async def test_credentials_from_the_endpoint_are_sent_to_the_broker(
    mqtt_broker: MqttBroker, sender: MqttSender
) -> None:
    # The test Mosquitto is anonymous and accepts any credentials, so delivery alone would not
    # show that they are used: a relay records the CONNECT packet on its way to the broker.
    topic = unique_topic()
    async with relay(mqtt_broker) as proxy, collect(mqtt_broker, topic) as received:
        endpoint = proxy.endpoint(topic, userinfo="al%20ice:p%40ss%3Aw%C3%B6rd")
        await sender.post(endpoint, notification(), {}, 5.0)
        await received.wait_for(1)
    assert _mqtt_string("al ice") in proxy.sent
    assert _mqtt_string("p@ss:wörd") in proxy.sent


async def test_endpoint_without_topic_is_a_final_error(
    mqtt_broker: MqttBroker, sender: MqttSender
) -> None:
    with pytest.raises(SendError) as failed:
        await sender.post(f"{mqtt_broker.url}/", notification(), {}, 5.0)
    assert not failed.value.retryable
    assert sender.connections_opened == 0


async def test_unreachable_broker_is_a_retryable_error_within_the_timeout(
    sender: MqttSender,
) -> None:
    started = time.monotonic()
    with pytest.raises(SendError) as failed:
        await sender.post(f"mqtt://127.0.0.1:{unused_port()}/x", notification(), {}, 2.0)
    assert failed.value.retryable
    assert time.monotonic() - started < 2.0


async def test_silent_broker_is_a_retryable_error_at_the_timeout(sender: MqttSender) -> None:
    async with fake_broker(answer=None) as port:
        started = time.monotonic()
        with pytest.raises(SendError) as failed:
            await sender.post(f"mqtt://127.0.0.1:{port}/x", notification(), {}, 0.5)
        assert failed.value.retryable
        assert time.monotonic() - started < 1.5


async def test_broker_refusing_the_credentials_is_a_final_error(sender: MqttSender) -> None:
    not_authorized = b"\x20\x02\x00\x05"  # CONNACK, MQTT 3.1.1 return code 5
    async with fake_broker(answer=not_authorized) as port:
        with pytest.raises(SendError) as failed:
            await sender.post(f"mqtt://ops:wrong@127.0.0.1:{port}/x", notification(), {}, 2.0)
    assert not failed.value.retryable
    assert "wrong" not in str(failed.value)


async def test_dispatcher_delivers_through_the_mqtt_sender(mqtt_broker: MqttBroker) -> None:
    topic = unique_topic()
    dispatcher = Dispatcher(senders={"mqtt": MqttSender()})
    await dispatcher.start()
    try:
        async with collect(mqtt_broker, topic) as received:
            outcome = await deliver(dispatcher, mqtt_broker.endpoint(topic), {"MQTT-QoS": "1"})
            await received.wait_for(1)
    finally:
        await dispatcher.close()
    assert outcome.ok
    assert outcome.status == 200
    assert received.json(0)["body"]["type"] == "Notification"


async def test_lost_connection_is_replaced_on_the_next_attempt(mqtt_broker: MqttBroker) -> None:
    topic = unique_topic()
    sender = MqttSender()
    config = NotificationSettings(backoff_base=0.01, request_timeout=2.0)
    dispatcher = Dispatcher(config, senders={"mqtt": sender})
    await dispatcher.start()
    try:
        async with relay(mqtt_broker) as proxy, collect(mqtt_broker, topic) as received:
            endpoint = proxy.endpoint(topic)
            assert (await deliver(dispatcher, endpoint, {"MQTT-QoS": "1"})).ok
            await proxy.cut()
            outcome = await deliver(dispatcher, endpoint, {"MQTT-QoS": "1"})
            await received.wait_for(2)
    finally:
        await dispatcher.close()
    assert outcome.ok
    assert sender.connections_opened == 2
    assert proxy.connections == 2


# --- helpers ----------------------------------------------------------------------------------


async def deliver(dispatcher: Dispatcher, endpoint: str, headers: dict[str, str]) -> Outcome:
    done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    key = "urn:ngsi-ld:Subscription:kamo"
    assert dispatcher.submit(Delivery(endpoint, notification(), headers, key, done.set_result))
    return await asyncio.wait_for(done, 10.0)


def _payloads(*messages: aiomqtt.Message) -> list[bytes]:
    payloads = []
    for message in messages:
        assert isinstance(message.payload, bytes)
        payloads.append(message.payload)
    return payloads


def _mqtt_string(text: str) -> bytes:
    """How MQTT encodes a string field: two-byte big-endian length, then UTF-8."""
    encoded = text.encode()
    return len(encoded).to_bytes(2, "big") + encoded
