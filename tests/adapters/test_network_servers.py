"""Several LoRaWAN groups on one network server's broker (same host and port): each distinct
login and provider gets its own connection and topics, so every group's uplinks arrive.

The broker is a private Mosquitto with logins and an ACL, as a network server's is; the app runs
in-process on a real SQLite store.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from tests.adapters.test_ingest import entity, eventually
from tests.conftest import broker_client, make_settings
from tests.lorawan import chirpstack_uplink, lorawan_group, ttn_uplink, weather_id
from tests.mqtt_fixtures import MqttBroker, locked_mosquitto

JSON = {"Content-Type": "application/json"}
PUBLISHER = ("network-server", "ns-secret")
DEV_EUI = "70b3d57ed0061a2b"


@pytest.fixture
async def toshi(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A broker app with no city broker: its only MQTT connections are provisioned ones."""
    async with broker_client(make_settings(tmp_path / "data")) as http:
        yield http


async def provision(http: httpx.AsyncClient, tenant: str, group: dict[str, Any]) -> None:
    headers = {**JSON, "Fiware-Service": tenant}
    made = await http.post("/iot/groups", json={"groups": [group]}, headers=headers)
    assert made.status_code == 201, made.text


async def publish(server: MqttBroker, topic: str, body: bytes) -> None:
    user, password = PUBLISHER
    async with aiomqtt.Client(server.host, server.port, username=user, password=password) as ns:
        await ns.publish(topic, body, qos=1)


async def delivered(
    http: httpx.AsyncClient,
    server: MqttBroker,
    uplink: tuple[str, bytes],
    entity_id: str,
    tenant: str,
) -> dict[str, Any]:
    """Publish ``uplink`` until its entity appears (Toshi subscribes after provisioning)."""

    async def attempt() -> dict[str, Any] | None:
        await publish(server, *uplink)
        return await entity(http, entity_id, tenant)

    found: dict[str, Any] = await eventually(attempt, seconds=15.0)
    return found


async def test_a_chirpstack_group_beside_a_ttn_group_gets_chirpstack_topics(
    tmp_path: Path, toshi: httpx.AsyncClient
) -> None:
    unique = uuid.uuid4().hex[:8]
    ttn_app, chirpstack_app = f"gauges-{unique}@ttn", str(uuid.uuid4())
    login = ("city-lns", "lns-secret")  # one login that may read both servers' uplinks
    acl = (
        f"user {login[0]}\ntopic read v3/{ttn_app}/devices/+/up\n"
        f"topic read application/{chirpstack_app}/device/+/event/up\n\n"
        f"user {PUBLISHER[0]}\ntopic write #\n"
    )
    with locked_mosquitto(tmp_path / "ns", dict([login, PUBLISHER]), acl) as server:
        user, password = login
        ttn = lorawan_group(ttn_app, server, "TTN", username=user, password=password)
        chirpstack = lorawan_group(
            chirpstack_app, server, "chirpstack", username=user, password=password
        )
        await provision(toshi, "towna", ttn)
        await provision(toshi, "towna", chirpstack)
        from_ttn = await delivered(
            toshi, server, ttn_uplink(ttn_app, "ws-ttn"), weather_id("ws-ttn"), "towna"
        )
        from_chirpstack = await delivered(
            toshi,
            server,
            chirpstack_uplink(chirpstack_app, "ws-cs", DEV_EUI),
            weather_id("ws-cs"),
            "towna",
        )
    assert from_ttn["temperature"]["value"] == 12.3
    assert from_chirpstack["temperature"]["value"] == 12.3


async def test_two_ttn_applications_with_their_own_logins_both_deliver(
    tmp_path: Path, toshi: httpx.AsyncClient
) -> None:
    unique = uuid.uuid4().hex[:8]
    apps = {f"flood-a-{unique}@ttn": "NNSXS.A", f"flood-b-{unique}@ttn": "NNSXS.B"}
    acl = "".join(f"user {app}\ntopic read v3/{app}/devices/+/up\n\n" for app in apps)
    acl += f"user {PUBLISHER[0]}\ntopic write #\n"
    with locked_mosquitto(tmp_path / "ns", apps | dict([PUBLISHER]), acl) as server:
        for tenant, (app, password) in zip(("towna", "townb"), apps.items(), strict=True):
            group = lorawan_group(app, server, "TTN", username=app, password=password)
            await provision(toshi, tenant, group)
        (app_a, password_a), (app_b, _) = apps.items()

        # Town B cannot take over town A's application with its own login: refused, and
        # town A's uplinks keep arriving under town A's login.
        stolen = lorawan_group(app_a, server, "TTN", username=app_b, password="guess")
        headers = {**JSON, "Fiware-Service": "townb"}
        refused = await toshi.post("/iot/groups", json={"groups": [stolen]}, headers=headers)
        assert refused.status_code == 409

        for tenant, app, device in (("towna", app_a, "ws-a"), ("townb", app_b, "ws-b")):
            found = await delivered(
                toshi, server, ttn_uplink(app, device), weather_id(device), tenant
            )
            assert found["temperature"]["value"] == 12.3
        assert await entity(toshi, weather_id("ws-a"), "townb") is None
        assert await entity(toshi, weather_id("ws-b"), "towna") is None
        assert password_a not in (await toshi.get("/metrics")).text
