"""Subscriptions over HTTP, with notifications delivered to a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from tests.conftest import API, gauge
from tests.http_sink import Sink
from tests.mqtt_fixtures import MqttBroker, collect, unique_topic

JSON = {"Content-Type": "application/json"}


def subscription(sink: Sink, **members: object) -> dict:
    return {
        "id": "urn:ngsi-ld:Subscription:river",
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": sink.url}, "attributes": ["level"]},
        **members,
    }


async def test_a_matching_change_is_notified_and_counted(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    created = await client.post(
        f"{API}/subscriptions", json=subscription(sink, q="level>2"), headers=JSON
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{API}/subscriptions/urn:ngsi-ld:Subscription:river"
    await client.post(f"{API}/entities", json=gauge(level=1.0), headers=JSON)  # q not met
    await client.patch(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1/attrs/level",
        json={"value": 2.7},
        headers=JSON,
    )
    await sink.wait_for(1)
    headers, body = sink.received[0]
    assert body["type"] == "Notification"
    assert body["subscriptionId"] == "urn:ngsi-ld:Subscription:river"
    (entity,) = body["data"]
    assert entity["id"] == "urn:ngsi-ld:RiverGauge:kamo-1"
    assert entity["level"]["value"] == 2.7
    assert set(entity) == {"id", "type", "level"}  # notification.attributes
    assert "json-ld#context" in headers["link"]
    for _ in range(50):  # the status is updated when the delivery is acknowledged
        got = (await client.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:river")).json()
        if got["notification"].get("timesSent") == 1:
            break
        await asyncio.sleep(0.05)
    assert got["notification"]["timesSent"] == 1
    assert got["q"] == "level>2"
    assert len(sink.received) == 1


async def test_subscription_crud_and_errors(client: httpx.AsyncClient, sink: Sink) -> None:
    url = f"{API}/subscriptions/urn:ngsi-ld:Subscription:river"
    assert (
        await client.post(f"{API}/subscriptions", json=subscription(sink), headers=JSON)
    ).status_code == 201
    again = await client.post(f"{API}/subscriptions", json=subscription(sink), headers=JSON)
    assert again.status_code == 409
    listed = (await client.get(f"{API}/subscriptions")).json()
    assert [s["id"] for s in listed] == ["urn:ngsi-ld:Subscription:river"]
    paused = await client.patch(url, json={"isActive": False}, headers=JSON)
    assert paused.status_code == 204
    assert (await client.get(url)).json()["status"] == "paused"
    await client.post(f"{API}/entities", json=gauge(level=3.0), headers=JSON)
    await asyncio.sleep(0.3)
    assert sink.received == []  # paused: nothing sent
    invalid = subscription(sink, watchedAttributes=["level"], timeInterval=10)
    invalid["id"] = "urn:ngsi-ld:Subscription:bad"
    bad = await client.post(f"{API}/subscriptions", json=invalid, headers=JSON)
    assert bad.status_code == 400
    assert bad.json()["type"].endswith("/BadRequestData")
    assert (await client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.delete(url)).status_code == 404


async def test_tenants_do_not_see_each_others_subscriptions(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    kyoto = {"NGSILD-Tenant": "kyoto", **JSON}
    assert (
        await client.post(f"{API}/subscriptions", json=subscription(sink), headers=kyoto)
    ).status_code == 201
    await client.post(f"{API}/entities", json=gauge(level=3.0), headers=JSON)  # default tenant
    await asyncio.sleep(0.3)
    assert sink.received == []
    await client.post(f"{API}/entities", json=gauge(level=3.0), headers=kyoto)
    await sink.wait_for(1)
    assert sink.received[0][0]["ngsild-tenant"] == "kyoto"
    assert (await client.get(f"{API}/subscriptions")).json() == []


async def test_query_subscriptions_is_paged_with_prev_and_next_links(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    for key in ("a", "b", "c"):
        body = {**subscription(sink), "id": f"urn:ngsi-ld:Subscription:{key}"}
        assert (await client.post(f"{API}/subscriptions", json=body, headers=JSON)).is_success
    middle = await client.get(f"{API}/subscriptions", params={"limit": 1, "offset": 1})
    assert [s["id"] for s in middle.json()] == ["urn:ngsi-ld:Subscription:b"]
    links = middle.headers["link"]
    assert '</ngsi-ld/v1/subscriptions?limit=1&offset=0>; rel="prev"' in links
    assert '</ngsi-ld/v1/subscriptions?limit=1&offset=2>; rel="next"' in links
    last = await client.get(f"{API}/subscriptions", params={"limit": 1, "offset": 2})
    assert 'rel="next"' not in last.headers["link"]
    everything = await client.get(f"{API}/subscriptions")
    assert 'rel="prev"' not in everything.headers["link"]
    assert 'rel="next"' not in everything.headers["link"]


async def test_retrieving_a_subscription_acknowledges_a_version_preference(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    await client.post(f"{API}/subscriptions", json=subscription(sink), headers=JSON)
    url = f"{API}/subscriptions/urn:ngsi-ld:Subscription:river"
    for prefer in ("NGSI-LD=1.0", 'ngsi-ld="1.0"', "respond-async, ngsi-ld=1.0;q=0.1"):
        got = await client.get(url, headers={"Prefer": prefer})
        assert got.status_code == 200
        assert got.headers["preference-applied"] == "ngsi-ld=1.0"
    assert (
        "preference-applied"
        not in (await client.get(url, headers={"Prefer": "respond-async"})).headers
    )


async def test_deletions_and_previous_values_reach_the_receiver(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    sub = subscription(
        sink,
        notificationTrigger=["attributeUpdated", "attributeDeleted", "entityDeleted"],
        notification={"endpoint": {"uri": sink.url}, "showChanges": True},
    )
    await client.post(f"{API}/subscriptions", json=sub, headers=JSON)
    entity = {**gauge(level=1.0), "alert": {"type": "Property", "value": "none"}}
    await client.post(f"{API}/entities", json=entity, headers=JSON)
    url = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"
    await client.patch(f"{url}/attrs/level", json={"value": 2.5}, headers=JSON)
    await client.delete(f"{url}/attrs/alert")
    await client.delete(url)
    await sink.wait_for(3)
    updated, attr_deleted, entity_deleted = (body["data"][0] for _, body in sink.received)
    assert updated["level"]["value"] == 2.5
    assert updated["level"]["previousValue"] == 1.0
    assert attr_deleted["alert"] == {
        "type": "Property",
        "value": "urn:ngsi-ld:null",
        "previousValue": "none",
    }
    assert "deletedAt" in entity_deleted
    assert entity_deleted["level"]["value"] == "urn:ngsi-ld:null"
    assert entity_deleted["level"]["previousValue"] == 2.5


async def test_throttling_holds_back_and_then_sends_only_the_latest_state(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    await client.post(f"{API}/subscriptions", json=subscription(sink, throttling=1), headers=JSON)
    await client.post(f"{API}/entities", json=gauge(level=1.0), headers=JSON)
    await sink.wait_for(1)
    level = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1/attrs/level"
    for value in (2.0, 3.0, 4.0):
        await client.patch(level, json={"value": value}, headers=JSON)
    await asyncio.sleep(0.3)
    assert len(sink.received) == 1  # within the throttling period: held back
    await sink.wait_for(2, seconds=3)
    (entity,) = sink.received[1][1]["data"]
    assert entity["level"]["value"] == 4.0  # the latest state, once
    await asyncio.sleep(1.2)
    assert len(sink.received) == 2


async def test_a_time_interval_subscription_reports_every_matching_entity_periodically(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    await client.post(f"{API}/entities", json=gauge(level=1.0), headers=JSON)
    periodic = subscription(sink, timeInterval=1, q="level<5")
    assert (await client.post(f"{API}/subscriptions", json=periodic, headers=JSON)).is_success
    await sink.wait_for(2, seconds=5)
    for _, body in sink.received[:2]:
        assert [e["id"] for e in body["data"]] == ["urn:ngsi-ld:RiverGauge:kamo-1"]
    await client.patch(
        f"{API}/subscriptions/urn:ngsi-ld:Subscription:river",
        json={"isActive": False},
        headers=JSON,
    )
    await asyncio.sleep(0.2)  # one already on its way may still land
    seen = len(sink.received)
    await asyncio.sleep(1.5)
    assert len(sink.received) == seen  # paused: no more periodic notifications


async def test_a_joining_subscription_gets_the_linked_entities_too(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    bridge = {"id": "urn:ngsi-ld:Bridge:sanjo", "type": "Bridge", "closed": {"value": False}}
    await client.post(f"{API}/entities", json=bridge, headers=JSON)
    for key, join in (("flat", "flat"), ("inline", "inline")):
        sub = subscription(sink, notification={"endpoint": {"uri": sink.url}, "join": join})
        sub["id"] = f"urn:ngsi-ld:Subscription:{key}"
        await client.post(f"{API}/subscriptions", json=sub, headers=JSON)
    link = {"type": "Relationship", "object": "urn:ngsi-ld:Bridge:sanjo"}
    await client.post(f"{API}/entities", json={**gauge(level=1.0), "bridge": link}, headers=JSON)
    await sink.wait_for(2)
    by_sub = {body["subscriptionId"]: body["data"] for _, body in sink.received}
    flat = by_sub["urn:ngsi-ld:Subscription:flat"]
    assert [e["id"] for e in flat] == ["urn:ngsi-ld:RiverGauge:kamo-1", "urn:ngsi-ld:Bridge:sanjo"]
    (inline,) = by_sub["urn:ngsi-ld:Subscription:inline"]
    assert inline["bridge"]["entity"]["closed"]["value"] is False


async def test_mqtt_endpoints_get_notifications_through_a_real_mqtt_broker(
    client: httpx.AsyncClient, mqtt_broker: MqttBroker
) -> None:
    topic = unique_topic("towna/alerts")
    sub = {
        "id": "urn:ngsi-ld:Subscription:mqtt",
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {
            "endpoint": {
                "uri": mqtt_broker.endpoint(topic),
                "notifierInfo": [{"key": "MQTT-QoS", "value": "1"}],
                "receiverInfo": [{"key": "X-Town", "value": "towna"}],
            }
        },
    }
    assert (await client.post(f"{API}/subscriptions", json=sub, headers=JSON)).is_success
    async with collect(mqtt_broker, topic) as received:
        await client.post(f"{API}/entities", json=gauge(level=3.0), headers=JSON)
        await received.wait_for(1)
    message = received.json(0)
    assert message["body"]["subscriptionId"] == "urn:ngsi-ld:Subscription:mqtt"
    assert message["body"]["data"][0]["level"]["value"] == 3.0
    assert message["metadata"]["X-Town"] == "towna"
    assert "MQTT-QoS" not in message["metadata"]
    assert received.messages[0].qos == 1


async def test_an_mqtt_endpoint_without_a_topic_is_refused(
    client: httpx.AsyncClient, mqtt_broker: MqttBroker
) -> None:
    sub = {
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": mqtt_broker.endpoint("")}},
    }
    refused = await client.post(f"{API}/subscriptions", json=sub, headers=JSON)
    assert refused.status_code == 400
    assert "topic" in refused.json()["detail"]


async def test_a_failing_receiver_shows_in_the_status_while_it_is_still_retried(
    client: httpx.AsyncClient,
) -> None:
    with socket.socket() as sock:  # a port nobody listens on: every attempt is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = {
        "id": "urn:ngsi-ld:Subscription:down",
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": f"http://127.0.0.1:{port}/notify"}},
    }
    await client.post(f"{API}/subscriptions", json=down, headers=JSON)
    await client.post(f"{API}/entities", json=gauge(level=1.0), headers=JSON)
    for _ in range(100):
        shown = (await client.get(f"{API}/subscriptions/{down['id']}")).json()["notification"]
        if "lastFailure" in shown:
            break
        await asyncio.sleep(0.05)
    assert shown["status"] == "failed"
    assert shown["timesFailed"] >= 1
    assert "timesSent" not in shown


async def test_a_q_through_a_relationship_is_refused_rather_than_never_notifying(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    linked = subscription(sink, q="bridge{Bridge:closed}==true")
    refused = await client.post(f"{API}/subscriptions", json=linked, headers=JSON)
    assert refused.status_code == 400
    assert "Relationship" in refused.json()["detail"]


@pytest.mark.parametrize("ask", [{"count": "true"}, {"options": "count"}])
async def test_query_subscriptions_counts_with_either_spelling(
    client: httpx.AsyncClient, sink: Sink, ask: dict[str, str]
) -> None:
    for n in range(3):
        body = {
            "id": f"urn:ngsi-ld:Subscription:count-{n}",
            "type": "Subscription",
            "entities": [{"type": "RiverGauge"}],
            "notification": {"endpoint": {"uri": sink.url}},
        }
        assert (await client.post(f"{API}/subscriptions", json=body)).status_code == 201
    listed = await client.get(f"{API}/subscriptions", params={**ask, "limit": "2"})
    assert listed.status_code == 200
    assert listed.headers["NGSILD-Results-Count"] == "3"
    assert len(listed.json()) == 2


async def test_patching_with_a_wrong_media_type_is_415_even_for_an_unknown_subscription(
    client: httpx.AsyncClient,
) -> None:
    # ETSI 048_01_02: the media type is judged before the subscription is looked up.
    answer = await client.patch(
        f"{API}/subscriptions/urn:ngsi-ld:Subscription:nowhere",
        content=b"{}",
        headers={"Content-Type": "text/plain"},
    )
    assert answer.status_code == 415


async def test_an_unknown_query_parameter_on_subscriptions_is_invalid_request(
    client: httpx.AsyncClient,
) -> None:
    # §6.3.20 (ETSI 059_01_07): a misspelt parameter is refused, not ignored.
    answer = await client.get(f"{API}/subscriptions", params={"limt": "5"})
    assert answer.status_code == 400
    assert answer.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"
