"""Ingest end to end through the real MQTT broker: provision over /iot, publish, read over HTTP."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest

from tests.conftest import API, broker_client, make_settings
from tests.http_sink import Sink
from tests.mqtt_fixtures import MqttBroker

JSON = {"Content-Type": "application/json"}
LPP_FRAME = "AWcAewJoowMCAPEEcydnBYgHOqkBTakAn2AGAAE="
"""ingest-formats.md d: temperature_1=12.3, relative_humidity_2=81.5, gps_5=(47.3769, 8.5417)."""


@pytest.fixture
async def city(tmp_path: Path, mqtt_broker: MqttBroker) -> AsyncIterator[httpx.AsyncClient]:
    """A broker app that ingests from the real MQTT broker (own client id and share group)."""
    unique = uuid.uuid4().hex[:8]
    settings = make_settings(tmp_path / "data", mqtt=mqtt_broker.ingest(unique))
    async with broker_client(settings) as http:
        yield http


async def publish(broker: MqttBroker, topic: str, payload: bytes | str) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.publish(topic, payload, qos=1)


async def eventually(check: Callable[[], Awaitable[Any]], seconds: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (ingest is asynchronous)."""
    async with asyncio.timeout(seconds):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.05)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def gauge_group(apikey: str) -> dict[str, Any]:
    """ingest-formats.md a: the river gauge group (IoT Agent JSON)."""
    return {
        "groups": [
            {
                "apikey": apikey,
                "resource": "/iot/json",
                "entity_type": "WaterObserved",
                "timestamp": True,
                "autoprovision": False,
                "attributes": [
                    {
                        "object_id": "lvl",
                        "name": "height",
                        "type": "Number",
                        "metadata": {"unitCode": {"type": "Text", "value": "MTR"}},
                    },
                    {"object_id": "bat", "name": "batteryVoltage", "type": "Number"},
                ],
                "static_attributes": [
                    {
                        "name": "refDevice",
                        "type": "Relationship",
                        "value": "urn:ngsi-ld:Device:towna:gauge-07",
                    }
                ],
            }
        ]
    }


def gauge_device(apikey: str) -> dict[str, Any]:
    location = {"type": "Point", "coordinates": [8.5417, 47.3769]}
    return {
        "devices": [
            {
                "device_id": "gauge-07",
                "apikey": apikey,
                "entity_name": "urn:ngsi-ld:WaterObserved:towna:gauge-07",
                "entity_type": "WaterObserved",
                "static_attributes": [{"name": "location", "type": "geo:json", "value": location}],
            }
        ]
    }


async def provision_gauge(http: httpx.AsyncClient, apikey: str, tenant: str = "towna") -> None:
    headers = {**JSON, "Fiware-Service": tenant, "Fiware-ServicePath": "/flood"}
    assert (await http.post("/iot/groups", json=gauge_group(apikey), headers=headers)).is_success
    assert (await http.post("/iot/devices", json=gauge_device(apikey), headers=headers)).is_success


async def entity(http: httpx.AsyncClient, entity_id: str, tenant: str) -> dict[str, Any] | None:
    got = await http.get(f"{API}/entities/{entity_id}", headers={"NGSILD-Tenant": tenant})
    return got.json() if got.status_code == 200 else None


async def test_an_iot_agent_json_measure_becomes_the_provisioned_entity(
    city: httpx.AsyncClient, mqtt_broker: MqttBroker
) -> None:
    apikey = f"k{uuid.uuid4().hex[:10]}"
    await provision_gauge(city, apikey)
    measure = {"lvl": 2.41, "bat": 3.61, "TimeInstant": "2025-03-14T06:30:00Z"}
    await publish(mqtt_broker, f"/json/{apikey}/gauge-07/attrs", orjson.dumps(measure))
    gauge_id = "urn:ngsi-ld:WaterObserved:towna:gauge-07"
    found = await eventually(lambda: entity(city, gauge_id, "towna"))
    assert found["type"] == "WaterObserved"
    assert found["height"]["value"] == 2.41
    assert found["height"]["unitCode"] == "MTR"
    assert instant(found["height"]["observedAt"]) == instant("2025-03-14T06:30:00Z")  # device's
    assert found["refDevice"]["object"] == "urn:ngsi-ld:Device:towna:gauge-07"
    assert found["location"]["value"]["coordinates"] == [8.5417, 47.3769]  # [lon, lat]
    assert await entity(city, gauge_id, "townb") is None  # only in the provisioning tenant


async def test_ingested_measures_are_recorded_in_history(
    city: httpx.AsyncClient, mqtt_broker: MqttBroker
) -> None:
    apikey = f"k{uuid.uuid4().hex[:10]}"
    await provision_gauge(city, apikey)
    gauge_id = "urn:ngsi-ld:WaterObserved:towna:gauge-07"
    for level, at in ((2.41, "2025-03-14T06:30:00Z"), (2.55, "2025-03-14T06:40:00Z")):
        measure = {"lvl": level, "TimeInstant": at}
        await publish(mqtt_broker, f"/json/{apikey}/gauge-07/attrs", orjson.dumps(measure))

    async def two_readings() -> list[Any] | None:
        got = await city.get(
            f"{API}/temporal/entities/{gauge_id}",
            params={"attrs": "height"},
            headers={"NGSILD-Tenant": "towna"},
        )
        height = got.json().get("height", []) if got.status_code == 200 else []
        return height if len(height) == 2 else None

    height = await eventually(two_readings)
    assert [i["value"] for i in height] == [2.41, 2.55]
    assert [instant(i["observedAt"]) for i in height] == [
        instant("2025-03-14T06:30:00Z"),
        instant("2025-03-14T06:40:00Z"),
    ]


async def test_an_ingested_measure_fires_subscriptions(
    city: httpx.AsyncClient, mqtt_broker: MqttBroker, sink: Sink
) -> None:
    apikey = f"k{uuid.uuid4().hex[:10]}"
    await provision_gauge(city, apikey)
    alarm = {
        "type": "Subscription",
        "entities": [{"type": "WaterObserved"}],
        "q": "height>3",
        "notification": {"endpoint": {"uri": sink.url}, "attributes": ["height"]},
    }
    headers = {**JSON, "NGSILD-Tenant": "towna"}
    assert (await city.post(f"{API}/subscriptions", json=alarm, headers=headers)).is_success
    for level in (2.0, 3.4):
        payload = orjson.dumps({"lvl": level})
        await publish(mqtt_broker, f"/json/{apikey}/gauge-07/attrs", payload)
    await sink.wait_for(1)
    headers_seen, body = sink.received[0]
    assert body["data"][0]["height"]["value"] == 3.4
    assert headers_seen["ngsild-tenant"] == "towna"


async def test_bad_messages_are_set_aside_counted_and_do_not_stop_good_ones(
    city: httpx.AsyncClient, mqtt_broker: MqttBroker, caplog: pytest.LogCaptureFixture
) -> None:
    apikey = f"k{uuid.uuid4().hex[:10]}"
    await provision_gauge(city, apikey)
    topic = f"/json/{apikey}/gauge-07/attrs"
    for _ in range(3):
        await publish(mqtt_broker, topic, b"{not json")
    await publish(mqtt_broker, topic, orjson.dumps({"lvl": "high"}))  # not a Number
    await publish(mqtt_broker, topic, orjson.dumps({"lvl": 1.25}))
    gauge_id = "urn:ngsi-ld:WaterObserved:towna:gauge-07"

    async def good_one_arrived() -> bool:
        found = await entity(city, gauge_id, "towna")
        # The entity may exist before the reading lands (devices are provisioned with it).
        return found is not None and found.get("height", {}).get("value") == 1.25

    await eventually(good_one_arrived)
    listed = await city.get("/iot/dead-letters", headers={"Fiware-Service": "towna"})
    letters = listed.json()["deadLetters"]
    assert [letter["reason"] for letter in letters] == [*["malformed_json"] * 3, "out_of_range"]
    assert letters[0]["topic"] == topic and letters[0]["payloadExcerpt"] == "{not json"
    logged = [r.getMessage() for r in caplog.records if "malformed_json" in r.getMessage()]
    assert len(logged) == 1 and topic in logged[0]  # one line per reason and interval
    metrics = (await city.get("/metrics")).text
    assert 'toshi_ingest_rejected_total{reason="malformed_json"}' in metrics


async def test_a_lorawan_uplink_through_the_network_servers_broker(
    city: httpx.AsyncClient, mqtt_broker: MqttBroker
) -> None:
    application = f"flood-{uuid.uuid4().hex[:8]}"
    server = {"host": mqtt_broker.host, "port": mqtt_broker.port, "provider": "TTN"}
    group = {
        "apikey": "",
        "resource": application,
        "entity_type": "WeatherObserved",
        "attributes": [
            {"object_id": "temperature_1", "name": "temperature", "type": "Number"},
            {"object_id": "gps_5", "name": "location", "type": "geo:json"},
        ],
        "internal_attributes": {
            "lorawan": {
                "application_server": server,
                "application_id": application,
                "data_model": "cayennelpp",
            }
        },
    }
    headers = {**JSON, "Fiware-Service": "towna"}
    assert (await city.post("/iot/groups", json={"groups": [group]}, headers=headers)).is_success
    uplink = {
        "end_device_ids": {
            "device_id": "ws-01",
            "application_ids": {"application_id": application},
            "dev_eui": "70B3D57ED0061A2B",
        },
        "correlation_ids": [f"as:up:{uuid.uuid4().hex}"],
        "received_at": "2025-03-14T06:30:01.5Z",
        "uplink_message": {
            "f_port": 2,
            "f_cnt": 1042,
            "frm_payload": LPP_FRAME,
            "rx_metadata": [
                {
                    "gateway_ids": {"gateway_id": "towna-gw-1"},
                    "time": "2025-03-14T06:30:01.2Z",
                    "rssi": -97,
                    "snr": 7.25,
                }
            ],
            "received_at": "2025-03-14T06:30:01.4Z",
        },
    }
    topic = f"v3/{application}/devices/ws-01/up"
    weather_id = "urn:ngsi-ld:WeatherObserved:ws-01"  # the documented autoprovisioning id

    async def delivered() -> dict[str, Any] | None:
        # The runner subscribes when the group appears; publish until it is listening.
        await publish(mqtt_broker, topic, orjson.dumps(uplink))
        return await entity(city, weather_id, "towna")

    found = await eventually(delivered)
    assert found["temperature"]["value"] == 12.3
    assert instant(found["temperature"]["observedAt"]) == instant("2025-03-14T06:30:01.2Z")
    assert found["location"]["value"]["coordinates"][:2] == [8.5417, 47.3769]
    # The radio metadata is written just after the observed entity.
    device = await eventually(lambda: entity(city, "urn:ngsi-ld:Device:ws-01", "towna"))
    assert device["rssi"]["value"] == -97
    assert device["controlledAsset"]["object"] == weather_id


async def test_a_reading_sent_while_the_store_is_away_is_written_once_it_is_back(
    city: httpx.AsyncClient, mqtt_broker: MqttBroker, tmp_path: Path
) -> None:
    """A store outage is not a bad message: the reading waits, unacknowledged, and lands later."""
    apikey = f"k{uuid.uuid4().hex[:10]}"
    await provision_gauge(city, apikey)
    gauge_id = "urn:ngsi-ld:WaterObserved:towna:gauge-07"
    # Another process holding the database's write lock is what a store outage looks like to
    # SQLite: every write fails with "database is locked" after the busy timeout.
    holder = sqlite3.connect(tmp_path / "data" / "tenants" / "towna.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        await publish(mqtt_broker, f"/json/{apikey}/gauge-07/attrs", orjson.dumps({"lvl": 4.5}))

        async def write_failed() -> bool:
            metrics = (await city.get("/metrics")).text
            retried = re.search(r"^toshi_ingest_store_retries_total ([1-9]\d*)$", metrics, re.M)
            return retried is not None or "internal_error" in metrics

        await eventually(write_failed, seconds=20.0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    listed = await city.get("/iot/dead-letters", headers={"Fiware-Service": "towna"})
    assert listed.json()["deadLetters"] == []

    async def landed() -> bool:
        found = await entity(city, gauge_id, "towna")
        return found is not None and found.get("height", {}).get("value") == 4.5

    await eventually(landed, seconds=20.0)
    listed = await city.get("/iot/dead-letters", headers={"Fiware-Service": "towna"})
    assert listed.json()["deadLetters"] == []
