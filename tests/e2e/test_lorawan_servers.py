"""Two The Things Stack applications on one network server, each with its own login, provisioned
in two tenants of a real `toshi serve`: each application's uplinks reach its own tenant.

The network server's broker is a private Mosquitto whose ACL lets each application's login read
only its own ``v3/<application>/devices/+/up``, as The Things Stack's MQTT server does.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.e2e.broker_process import Broker
from tests.lorawan import lorawan_group, ttn_uplink, weather_id
from tests.mqtt_fixtures import MqttBroker, locked_mosquitto

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
PUBLISHER = ("network-server", "ns-secret")
WITHIN = 20.0


@pytest.fixture
def toshi(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path / "data")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def publish(server: MqttBroker, topic: str, body: bytes) -> None:
    """Publish as the network server does (QoS 1, confirmed by the broker)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"ns-{uuid.uuid4().hex}")
    client.username_pw_set(*PUBLISHER)
    client.connect(server.host, server.port)
    client.loop_start()
    try:
        client.publish(topic, body, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def entity(http: httpx.Client, entity_id: str, tenant: str) -> dict[str, Any] | None:
    got = http.get(f"{API}/entities/{entity_id}", headers={"NGSILD-Tenant": tenant})
    return got.json() if got.status_code == 200 else None


def test_two_ttn_applications_with_their_own_logins_reach_their_own_tenants(
    tmp_path: Path, toshi: Broker
) -> None:
    unique = uuid.uuid4().hex[:8]
    towns = {
        "towna": (f"flood-a-{unique}@ttn", "NNSXS.A-SECRET", "ws-a"),
        "townb": (f"flood-b-{unique}@ttn", "NNSXS.B-SECRET", "ws-b"),
    }
    logins = {app: password for app, password, _ in towns.values()} | dict([PUBLISHER])
    acl = "".join(
        f"user {app}\ntopic read v3/{app}/devices/+/up\n\n" for app, _, _ in towns.values()
    )
    acl += f"user {PUBLISHER[0]}\ntopic write v3/#\n"
    with (
        locked_mosquitto(tmp_path / "network-server", logins, acl) as server,
        httpx.Client(base_url=toshi.url) as http,
    ):
        for tenant, (app, password, _) in towns.items():
            group = lorawan_group(app, server, "TTN", username=app, password=password)
            headers = {**JSON, "Fiware-Service": tenant}
            made = http.post("/iot/groups", json={"groups": [group]}, headers=headers)
            assert made.status_code == 201, made.text

        arrived: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + WITHIN
        while len(arrived) < len(towns) and time.monotonic() < deadline:
            # Toshi subscribes once the groups exist; publish until each town has its reading.
            for tenant, (app, _, device) in towns.items():
                if tenant not in arrived:
                    publish(server, *ttn_uplink(app, device))
                    found = entity(http, weather_id(device), tenant)
                    if found is not None:
                        arrived[tenant] = found
            time.sleep(0.2)
        assert sorted(arrived) == sorted(towns), "uplinks of an application never arrived"
        assert all(found["temperature"]["value"] == 12.3 for found in arrived.values())
        assert entity(http, weather_id("ws-b"), "towna") is None  # each in its own tenant
        assert entity(http, weather_id("ws-a"), "townb") is None
