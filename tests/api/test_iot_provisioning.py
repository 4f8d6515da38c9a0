"""IoT Agent provisioning over HTTP (/iot/groups, /iot/services, /iot/devices), real SQLite store.

Also what the ingest path gets from it: the service's ``for_iota`` / ``for_lorawan`` lookups,
reached through the running app's runtime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from broker.services.provisioning.service import ProvisioningService
from broker.settings import Settings

from tests.conftest import broker_client, make_settings

TOWN_A = {"Fiware-Service": "TownA", "Fiware-ServicePath": "/flood"}
TOWN_B = {"Fiware-Service": "townb", "Fiware-ServicePath": "/"}
RIVER_GROUP = {
    "apikey": "tA9flood",
    "resource": "/iot/json",
    "entity_type": "WaterObserved",
    "attributes": [{"object_id": "lvl", "name": "height", "type": "Number"}],
}
RIVER_DEVICE = {
    "device_id": "gauge-07",
    "apikey": "tA9flood",
    "entity_name": "urn:ngsi-ld:WaterObserved:towna:gauge-07",
    "attributes": [{"object_id": "bat", "name": "batteryVoltage", "type": "Number"}],
}
CHIRPSTACK = {"host": "mqtt.towna.local", "provider": "chirpstack"}


def lorawan_group(application_id: str = "12", **extra: Any) -> dict[str, Any]:
    return {
        "apikey": "",
        "resource": "70B3D57ED0001234",
        "entity_type": "WeatherObserved",
        "attributes": [{"object_id": "temperature_1", "name": "temperature", "type": "Number"}],
        "internal_attributes": {
            "lorawan": {
                "application_server": CHIRPSTACK,
                "application_id": application_id,
                "data_model": "cayennelpp",
            }
        },
        **extra,
    }


def lorawan_device(device_id: str, dev_eui: str, application_id: str = "12") -> dict[str, Any]:
    return {
        "device_id": device_id,
        "entity_name": f"urn:ngsi-ld:WeatherObserved:{device_id}",
        "internal_attributes": {
            "lorawan": {
                "application_server": CHIRPSTACK,
                "application_id": application_id,
                "dev_eui": dev_eui,
            }
        },
    }


class Broker:
    """The app with its HTTP client and its provisioning service."""

    def __init__(self, settings: Settings) -> None:
        self._running = broker_client(settings)
        self.http: httpx.AsyncClient

    async def __aenter__(self) -> Broker:
        self.http = await self._running.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._running.__aexit__(*exc)

    @property
    def provisioning(self) -> ProvisioningService:
        service = self._running.app.state.runtime.provisioning
        assert isinstance(service, ProvisioningService)
        return service


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
async def broker(settings: Settings) -> AsyncIterator[Broker]:
    async with Broker(settings) as running:
        yield running


async def test_groups_crud_via_groups_and_services(broker: Broker) -> None:
    http = broker.http
    created = await http.post("/iot/groups", json={"groups": [RIVER_GROUP]}, headers=TOWN_A)
    assert created.status_code == 201
    alias = {"services": [{"apikey": "k2", "resource": "/iot/d", "entity_type": "Bin"}]}
    assert (await http.post("/iot/services", json=alias, headers=TOWN_A)).status_code == 201

    listed = (await http.get("/iot/groups", headers=TOWN_A)).json()
    assert listed["count"] == 2 and listed["groups"][0] == RIVER_GROUP
    services = (await http.get("/iot/services", headers=TOWN_A)).json()
    assert services["count"] == 2 and services["services"][1]["entity_type"] == "Bin"

    key = {"resource": "/iot/json", "apikey": "tA9flood"}
    gauge = {"entity_type": "Gauge"}
    changed = await http.put("/iot/groups", params=key, json=gauge, headers=TOWN_A)
    assert changed.status_code == 204
    after = (await http.get("/iot/groups", headers=TOWN_A)).json()["groups"]
    assert [group["entity_type"] for group in after] == ["Gauge", "Bin"]  # order kept

    removed = await http.delete("/iot/services", params=key, headers=TOWN_A)
    assert removed.status_code == 204
    assert (await http.get("/iot/groups", headers=TOWN_A)).json()["count"] == 1
    again = await http.delete("/iot/groups", params=key, headers=TOWN_A)
    assert again.status_code == 404
    assert again.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


async def test_duplicates_and_bad_documents_are_ngsi_ld_errors(broker: Broker) -> None:
    http = broker.http
    body = {"groups": [RIVER_GROUP]}
    assert (await http.post("/iot/groups", json=body, headers=TOWN_A)).status_code == 201
    duplicate = await http.post("/iot/groups", json=body, headers=TOWN_A)
    assert duplicate.status_code == 409
    assert duplicate.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"

    bad = await http.post("/iot/devices", json={"devices": [{"entity_type": "X"}]}, headers=TOWN_A)
    assert bad.status_code == 400
    assert "device_id is required" in bad.json()["detail"]

    # A batch with one conflict creates nothing.
    batch = {"devices": [{"device_id": "d1"}, {"device_id": "d1"}]}
    assert (await http.post("/iot/devices", json=batch, headers=TOWN_A)).status_code == 409
    assert (await http.get("/iot/devices", headers=TOWN_A)).json() == {"count": 0, "devices": []}


async def test_devices_crud(broker: Broker) -> None:
    http = broker.http
    body = {"devices": [RIVER_DEVICE, {"device_id": "gauge-08", "apikey": "tA9flood"}]}
    assert (await http.post("/iot/devices", json=body, headers=TOWN_A)).status_code == 201
    listed = (await http.get("/iot/devices", headers=TOWN_A)).json()
    assert listed["count"] == 2 and listed["devices"][0] == RIVER_DEVICE
    page = (await http.get("/iot/devices", params={"offset": 1}, headers=TOWN_A)).json()
    assert [d["device_id"] for d in page["devices"]] == ["gauge-08"] and page["count"] == 2

    one = await http.get("/iot/devices/gauge-07", headers=TOWN_A)
    assert one.status_code == 200 and one.json() == RIVER_DEVICE

    change = {"entity_name": "urn:ngsi-ld:WaterObserved:gauge-7b", "timestamp": False}
    assert (await http.put("/iot/devices/gauge-07", json=change, headers=TOWN_A)).status_code == 204
    shown = (await http.get("/iot/devices/gauge-07", headers=TOWN_A)).json()
    assert shown["entity_name"] == "urn:ngsi-ld:WaterObserved:gauge-7b"
    assert shown["timestamp"] is False

    assert (await http.delete("/iot/devices/gauge-07", headers=TOWN_A)).status_code == 204
    assert (await http.get("/iot/devices/gauge-07", headers=TOWN_A)).status_code == 404
    assert (await http.put("/iot/devices/gauge-07", json={}, headers=TOWN_A)).status_code == 404


async def test_tenants_are_isolated_by_fiware_service_and_ngsild_tenant(broker: Broker) -> None:
    http = broker.http
    await http.post("/iot/groups", json={"groups": [RIVER_GROUP]}, headers=TOWN_A)
    await http.post("/iot/devices", json={"devices": [RIVER_DEVICE]}, headers=TOWN_A)

    # NGSILD-Tenant names the same tenant as Fiware-Service (both folded to lower case).
    same = await http.get("/iot/devices/gauge-07", headers={"NGSILD-Tenant": "towna"})
    assert same.status_code == 200
    assert (await http.get("/iot/devices/gauge-07", headers=TOWN_B)).status_code == 404
    assert (await http.get("/iot/devices", headers=TOWN_B)).json()["count"] == 0
    assert (await http.get("/iot/groups")).json() == {"count": 0, "groups": []}

    # An apikey belongs to one tenant: another town cannot take it over.
    stolen = await http.post("/iot/groups", json={"groups": [RIVER_GROUP]}, headers=TOWN_B)
    assert stolen.status_code == 409 and "another tenant" in stolen.json()["detail"]
    as_device = {"devices": [{"device_id": "x1", "apikey": "tA9flood"}]}
    assert (await http.post("/iot/devices", json=as_device, headers=TOWN_B)).status_code == 409
    # The same device id in another tenant is another device.
    other = {"devices": [{**RIVER_DEVICE, "apikey": "tB7"}]}
    assert (await http.post("/iot/devices", json=other, headers=TOWN_B)).status_code == 201

    found = broker.provisioning.for_iota("tA9flood", "gauge-07")
    assert found is not None and found.tenant == "towna"
    in_b = broker.provisioning.for_iota("tB7", "gauge-07")
    assert in_b is not None and in_b.tenant == "townb"

    bad_tenant = await http.get("/iot/groups", headers={"Fiware-Service": "../etc"})
    assert bad_tenant.status_code == 400


async def test_lorawan_groups_and_devices(broker: Broker) -> None:
    http = broker.http
    group = {"services": [lorawan_group()]}
    assert (await http.post("/iot/services", json=group, headers=TOWN_A)).status_code == 201
    device = {"devices": [lorawan_device("gauge-07", "70B3D57ED0061A2B")]}
    assert (await http.post("/iot/devices", json=device, headers=TOWN_A)).status_code == 201
    shown = (await http.get("/iot/groups", headers=TOWN_A)).json()["groups"][0]
    assert shown["internal_attributes"]["lorawan"]["data_model"] == "cayennelpp"

    # The same application on the same network server cannot be another town's.
    taken = await http.post("/iot/services", json=group, headers=TOWN_B)
    assert taken.status_code == 409
    same_eui = {"devices": [lorawan_device("gauge-99", "70b3d57ed0061a2b")]}
    assert (await http.post("/iot/devices", json=same_eui, headers=TOWN_A)).status_code == 409

    [(server, applications)] = broker.provisioning.application_servers().values()
    assert server.url == "mqtt://mqtt.towna.local:1883"
    assert server.provider == "chirpstack" and applications == frozenset({"12"})

    secret = lorawan_group("14", resource="70B3D57ED0001299")
    secret["internal_attributes"]["lorawan"]["application_server"] = {
        **CHIRPSTACK,
        "username": "towna",
        "password": "s3cret",
    }
    made = await http.post("/iot/groups", json={"groups": [secret]}, headers=TOWN_A)
    assert made.is_success, made.text
    listed = (await http.get("/iot/groups", headers=TOWN_A)).text
    assert "s3cret" not in listed and "towna" in listed  # the password is never shown

    unknown_provider = lorawan_group("13")
    unknown_provider["internal_attributes"]["lorawan"]["application_server"] = {
        "host": "h",
        "provider": "loriot",
    }
    refused = await http.post("/iot/groups", json={"groups": [unknown_provider]}, headers=TOWN_A)
    assert refused.status_code == 400 and "provider" in refused.json()["detail"]


async def test_lookups_find_provisioned_and_autoprovisioned_devices(broker: Broker) -> None:
    http = broker.http
    service = broker.provisioning
    await http.post("/iot/groups", json={"groups": [RIVER_GROUP]}, headers=TOWN_A)
    await http.post("/iot/devices", json={"devices": [RIVER_DEVICE]}, headers=TOWN_A)

    found = service.for_iota("tA9flood", "gauge-07")
    assert found is not None and not found.autoprovisioned
    assert found.entity_id == "urn:ngsi-ld:WaterObserved:towna:gauge-07"
    assert [a.name for a in found.attributes] == ["batteryVoltage", "height"]

    auto = service.for_iota("tA9flood", "gauge-42")
    assert auto is not None and auto.autoprovisioned
    assert auto.entity_id == "urn:ngsi-ld:WaterObserved:gauge-42"
    assert service.for_iota("unknown-key", "gauge-07") is None

    await service.remember_autoprovisioned(auto)
    filed = (await http.get("/iot/devices/gauge-42", headers=TOWN_A)).json()
    assert filed["entity_name"] == "urn:ngsi-ld:WaterObserved:gauge-42"
    again = service.for_iota("tA9flood", "gauge-42")
    assert again is not None and not again.autoprovisioned

    key = {"resource": "/iot/json", "apikey": "tA9flood"}
    await http.put("/iot/groups", params=key, json={"autoprovision": False}, headers=TOWN_A)
    assert service.for_iota("tA9flood", "gauge-43") is None
    assert service.for_iota("tA9flood", "gauge-07") is not None  # provisioned ones still work


async def test_lorawan_lookups(broker: Broker) -> None:
    http = broker.http
    service = broker.provisioning
    await http.post("/iot/groups", json={"groups": [lorawan_group()]}, headers=TOWN_A)
    device = {"devices": [lorawan_device("gauge-07", "70B3D57ED0061A2B")]}
    await http.post("/iot/devices", json=device, headers=TOWN_A)

    by_eui = service.for_lorawan("12", None, "70B3D57ED0061A2B")
    assert by_eui is not None
    found, settings = by_eui
    assert found.entity_id == "urn:ngsi-ld:WeatherObserved:gauge-07" and found.tenant == "towna"
    assert [a.name for a in found.attributes] == ["temperature"]  # from the group
    assert settings.dev_eui == "70b3d57ed0061a2b" and not found.autoprovisioned

    by_id = service.for_lorawan("12", "gauge-07", None)
    assert by_id is not None and by_id[0].device_id == "gauge-07"
    assert service.for_lorawan("12", "gauge-07", "0000000000000001") is None  # another radio

    auto = service.for_lorawan("12", "gauge-08", "70b3d57ed0061a2c")
    assert auto is not None
    assert auto[0].autoprovisioned and auto[0].entity_id == "urn:ngsi-ld:WeatherObserved:gauge-08"
    assert auto[1].dev_eui == "70b3d57ed0061a2c" and auto[1].data_model == "cayennelpp"
    await service.remember_autoprovisioned(auto[0])
    remembered = service.for_lorawan("12", None, "70B3D57ED0061A2C")
    assert remembered is not None and remembered[0].device_id == "gauge-08"
    assert not remembered[0].autoprovisioned

    assert service.for_lorawan("99", "gauge-07", None) is None
    url = "mqtt://mqtt.towna.local:1883"
    assert service.for_lorawan("12", "gauge-07", None, server_url=url) is not None
    assert service.for_lorawan("12", "gauge-07", None, server_url="mqtt://x:1883") is None

    key = {"resource": "70B3D57ED0001234", "apikey": ""}
    await http.put("/iot/groups", params=key, json={"autoprovision": False}, headers=TOWN_A)
    assert service.for_lorawan("12", "gauge-09", "70b3d57ed0061a2d") is None


async def test_listeners_hear_every_change(broker: Broker) -> None:
    heard: list[int] = []
    broker.provisioning.listeners.append(lambda: heard.append(1))
    http = broker.http
    await http.post("/iot/groups", json={"groups": [lorawan_group()]}, headers=TOWN_A)
    key = {"resource": "70B3D57ED0001234", "apikey": ""}
    await http.put("/iot/groups", params=key, json={"entity_type": "X"}, headers=TOWN_A)
    await http.delete("/iot/groups", params=key, headers=TOWN_A)
    assert len(heard) == 3
    assert broker.provisioning.application_servers() == {}


async def test_provisioning_survives_a_restart(settings: Settings) -> None:
    async with Broker(settings) as first:
        http = first.http
        await http.post("/iot/groups", json={"groups": [RIVER_GROUP]}, headers=TOWN_A)
        await http.post("/iot/services", json={"services": [lorawan_group()]}, headers=TOWN_A)
        await http.post("/iot/devices", json={"devices": [RIVER_DEVICE]}, headers=TOWN_A)
        change = {"entity_type": "Gauge"}
        await http.put("/iot/devices/gauge-07", json=change, headers=TOWN_A)
    async with Broker(settings) as second:
        http = second.http
        groups = (await http.get("/iot/groups", headers=TOWN_A)).json()
        assert groups["count"] == 2 and groups["groups"][0] == RIVER_GROUP
        device = (await http.get("/iot/devices/gauge-07", headers=TOWN_A)).json()
        assert device == {**RIVER_DEVICE, "entity_type": "Gauge"}
        found = second.provisioning.for_iota("tA9flood", "gauge-07")
        assert found is not None and found.entity_type == "Gauge" and found.tenant == "towna"
        assert second.provisioning.for_lorawan("12", "any-device", None) is not None
        # The apikey is still taken after the restart.
        stolen = await http.post("/iot/groups", json={"groups": [RIVER_GROUP]}, headers=TOWN_B)
        assert stolen.status_code == 409


def with_server(document: dict[str, Any], **server: Any) -> dict[str, Any]:
    """``document`` (a group or device) with other ``application_server`` settings."""
    lorawan = {**document["internal_attributes"]["lorawan"], "application_server": server}
    return {**document, "internal_attributes": {"lorawan": lorawan}}


async def test_one_application_cannot_get_a_second_login_or_provider(broker: Broker) -> None:
    http = broker.http
    login = {**CHIRPSTACK, "username": "towna-lns", "password": "first-secret"}
    group = with_server(lorawan_group(), **login)
    assert (await http.post("/iot/groups", json={"groups": [group]}, headers=TOWN_A)).is_success

    # The same application (same server, same id) under other settings would be subscribed
    # with one login or the other, one provider's topics or the other: refused, not merged.
    device = lorawan_device("gauge-07", "70B3D57ED0061A2B")
    refusals = [
        (TOWN_B, "groups", with_server(lorawan_group(), **{**login, "password": "second-secret"})),
        (TOWN_B, "groups", with_server(lorawan_group(), **{**login, "provider": "TTN"})),
        (TOWN_A, "devices", with_server(device, **{**login, "username": "someone-else"})),
        (TOWN_A, "devices", with_server(device, **{**login, "provider": "TTN"})),
    ]
    for headers, kind, document in refusals:
        refused = await http.post(f"/iot/{kind}", json={kind: [document]}, headers=headers)
        assert refused.status_code == 409, (kind, refused.text)
        problem = refused.json()
        assert problem["type"] == "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"
        assert "'12'" in problem["detail"]  # names the application...
        shown = problem["detail"].replace(CHIRPSTACK["host"], "the server")
        assert "towna" not in shown.lower()  # ...never the tenant that has it
        assert "secret" not in problem["detail"]  # nor a password

    # Port 1884 is another server, so another application: no conflict.
    elsewhere = with_server(device, **{**login, "port": 1884})
    made = await http.post("/iot/devices", json={"devices": [elsewhere]}, headers=TOWN_A)
    assert made.is_success, made.text
    same = with_server(lorawan_device("gauge-09", "70B3D57ED0061A2D"), **login)
    assert (await http.post("/iot/devices", json={"devices": [same]}, headers=TOWN_A)).is_success
    servers = broker.provisioning.application_servers().values()
    logins = sorted((s.url, s.username, s.password, apps) for s, apps in servers)
    assert logins == [
        ("mqtt://mqtt.towna.local:1883", "towna-lns", "first-secret", frozenset({"12"})),
        ("mqtt://mqtt.towna.local:1884", "towna-lns", "first-secret", frozenset({"12"})),
    ]


async def test_the_groups_login_can_change_and_its_devices_follow(settings: Settings) -> None:
    login = {**CHIRPSTACK, "username": "towna-lns", "password": "old-secret"}
    group = with_server(lorawan_group(), **login)
    device = with_server(lorawan_device("gauge-07", "70B3D57ED0061A2B"), **login)
    async with Broker(settings) as first:
        http = first.http
        assert (await http.post("/iot/groups", json={"groups": [group]}, headers=TOWN_A)).is_success
        made = await http.post("/iot/devices", json={"devices": [device]}, headers=TOWN_A)
        assert made.is_success

        # Rotating the password is a PUT on the group; its devices' copies follow it.
        new_login = {**login, "password": "new-secret"}
        rotated = {"internal_attributes": with_server(group, **new_login)["internal_attributes"]}
        key = {"resource": group["resource"], "apikey": ""}
        changed = await http.put("/iot/groups", params=key, json=rotated, headers=TOWN_A)
        assert changed.status_code == 204, changed.text

        # A device naming the old password now contradicts the application's login.
        stale = with_server(lorawan_device("gauge-08", "70B3D57ED0061A2C"), **login)
        refused = await http.post("/iot/devices", json={"devices": [stale]}, headers=TOWN_A)
        assert refused.status_code == 409
    async with Broker(settings) as second:  # and nothing disagrees after a restart
        [(server, _)] = second.provisioning.application_servers().values()
        assert server.password == "new-secret"
        lorawan = second.provisioning.device("towna", "gauge-07").lorawan
        assert lorawan is not None and lorawan.application_server.password == "new-secret"
