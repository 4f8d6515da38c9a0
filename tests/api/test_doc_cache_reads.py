"""Reads served from the parsed-document cache show every write at once (broker.doc_cache).

Each test warms the cache with every rendering the hot routes make (retrieve and query, each in
normalized, keyValues and JSON-LD form), writes through one path, and checks that the very next
reads show the new value, whatever wrote it: the HTTP API, a batch, temporal provision, MQTT
ingest, the expiry sweep, a delete.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.adapters.test_ingest import eventually, gauge_group, publish
from tests.conftest import API, broker_client, make_settings
from tests.mqtt_fixtures import MqttBroker

JSON = {"Content-Type": "application/json"}
LD = {"Accept": "application/ld+json"}
TYPE = "CachedGauge"


def gauge(entity_id: str, level: float) -> dict[str, Any]:
    return {
        "id": entity_id,
        "type": TYPE,
        "level": {"type": "Property", "value": level, "unitCode": "MTR"},
        "alert": {"type": "Property", "value": "none"},
    }


async def levels(http: httpx.AsyncClient, entity_id: str, tenant: str = "") -> list[Any]:
    """The level of ``entity_id`` as each cached rendering shows it (None: not found)."""
    headers = {"NGSILD-Tenant": tenant} if tenant else {}
    seen: list[Any] = []
    for params, accept in (({}, {}), ({"options": "keyValues"}, {}), ({}, LD)):
        one = await http.get(f"{API}/entities/{entity_id}", params=params, headers=headers | accept)
        seen.append(_level(one.json()) if one.status_code == 200 else None)
        page = await http.get(
            f"{API}/entities",
            params={"type": TYPE, "limit": "50", **params},
            headers=headers | accept,
        )
        assert page.status_code == 200, page.text
        found = [e for e in page.json() if e["id"] == entity_id]
        seen.append(_level(found[0]) if found else None)
    return seen


def _level(entity: dict[str, Any]) -> Any:
    level = entity.get("level")
    return level["value"] if isinstance(level, dict) else level


async def shows(http: httpx.AsyncClient, entity_id: str, level: Any, tenant: str = "") -> None:
    assert await levels(http, entity_id, tenant) == [level] * 6


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with broker_client(make_settings(tmp_path / "data")) as client:
        yield client


def new_id() -> str:
    return f"urn:ngsi-ld:{TYPE}:{uuid.uuid4().hex[:8]}"


async def created(http: httpx.AsyncClient, level: float = 1.0) -> str:
    entity_id = new_id()
    response = await http.post(f"{API}/entities", json=gauge(entity_id, level), headers=JSON)
    assert response.status_code == 201, response.text
    await shows(http, entity_id, level)  # and now every rendering is cached
    await shows(http, entity_id, level)
    return entity_id


async def test_attribute_updates_and_replacements_are_seen_by_the_next_read(
    http: httpx.AsyncClient,
) -> None:
    entity_id = await created(http)
    url = f"{API}/entities/{entity_id}"
    assert (await http.patch(f"{url}/attrs/level", json={"value": 2.0})).status_code == 204
    await shows(http, entity_id, 2.0)
    update = {"level": {"type": "Property", "value": 3.0}}
    assert (await http.patch(f"{url}/attrs", json=update, headers=JSON)).status_code == 204
    await shows(http, entity_id, 3.0)
    replaced = gauge(entity_id, 4.0)
    assert (await http.put(url, json=replaced, headers=JSON)).status_code == 204
    await shows(http, entity_id, 4.0)
    merge = {"level": {"type": "Property", "value": 5.0}}
    assert (await http.patch(url, json=merge, headers=JSON)).status_code == 204
    await shows(http, entity_id, 5.0)


async def test_a_write_back_to_an_earlier_value_is_seen_too(http: httpx.AsyncClient) -> None:
    # The stored bytes differ (modifiedAt), but even equal bytes would be an equal document.
    entity_id = await created(http, 1.0)
    url = f"{API}/entities/{entity_id}/attrs/level"
    for level in (2.0, 1.0, 2.0):
        assert (await http.patch(url, json={"value": level})).status_code == 204
        await shows(http, entity_id, level)


async def test_batch_upserts_and_updates_are_seen_by_the_next_read(
    http: httpx.AsyncClient,
) -> None:
    ids = [await created(http) for _ in range(3)]
    upsert = [gauge(entity_id, 7.0) for entity_id in ids]
    response = await http.post(f"{API}/entityOperations/upsert", json=upsert, headers=JSON)
    assert response.status_code == 204, response.text
    for entity_id in ids:
        await shows(http, entity_id, 7.0)
    update = [{"id": i, "type": TYPE, "level": {"type": "Property", "value": 8.0}} for i in ids]
    response = await http.post(f"{API}/entityOperations/update", json=update, headers=JSON)
    assert response.status_code == 204, response.text
    for entity_id in ids:
        await shows(http, entity_id, 8.0)


async def test_a_deleted_entity_is_gone_and_a_new_one_of_the_same_id_is_new(
    http: httpx.AsyncClient,
) -> None:
    entity_id = await created(http, 1.0)
    assert (await http.delete(f"{API}/entities/{entity_id}")).status_code == 204
    await shows(http, entity_id, None)
    again = await http.post(f"{API}/entities", json=gauge(entity_id, 9.0), headers=JSON)
    assert again.status_code == 201
    await shows(http, entity_id, 9.0)
    deleted = await http.post(f"{API}/entityOperations/delete", json=[entity_id], headers=JSON)
    assert deleted.status_code == 204
    await shows(http, entity_id, None)


async def test_temporal_provision_is_seen_by_the_next_read(http: httpx.AsyncClient) -> None:
    entity_id = await created(http, 1.0)
    body = {
        "id": entity_id,
        "type": TYPE,
        "level": [{"type": "Property", "value": 6.5, "observedAt": "2026-01-01T00:00:00Z"}],
    }
    response = await http.post(f"{API}/temporal/entities", json=body, headers=JSON)
    assert response.status_code == 204, response.text
    await shows(http, entity_id, 6.5)


async def test_the_expiry_sweep_is_seen_by_the_next_read(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", expiry_sweep_interval=0.05)
    async with broker_client(settings) as http:
        entity_id = await created(http, 1.0)
        soon = datetime.now(UTC) + timedelta(milliseconds=600)
        stamp = soon.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        alert = {"alert": {"type": "Property", "value": "flood", "expiresAt": stamp}}
        url = f"{API}/entities/{entity_id}"
        assert (await http.patch(f"{url}/attrs", json=alert, headers=JSON)).status_code == 204
        shown = (await http.get(url, params={"options": "sysAttrs"})).json()
        assert shown["alert"]["value"] == "flood"

        async def swept() -> bool:
            # The sweep stamps modifiedAt when it removes what expired; reads before it hide
            # the expired attribute but keep the old stamp.
            now = (await http.get(url, params={"options": "sysAttrs"})).json()
            return "alert" not in now and now["modifiedAt"] != shown["modifiedAt"]

        await eventually(swept, seconds=10)
        await shows(http, entity_id, 1.0)


async def test_mqtt_ingest_is_seen_by_the_next_read(
    tmp_path: Path, mqtt_broker: MqttBroker
) -> None:
    unique = uuid.uuid4().hex[:8]
    settings = make_settings(tmp_path / "data", mqtt=mqtt_broker.ingest(unique))
    apikey = f"k{unique}"
    tenant = f"cache{unique}"
    headers = {**JSON, "Fiware-Service": tenant, "Fiware-ServicePath": "/flood"}
    group = gauge_group(apikey)
    group["groups"][0]["entity_type"] = TYPE
    group["groups"][0]["attributes"][0]["name"] = "level"
    entity_id = f"urn:ngsi-ld:{TYPE}:{unique}"
    device = {
        "devices": [
            {"device_id": "g1", "apikey": apikey, "entity_name": entity_id, "entity_type": TYPE}
        ]
    }
    async with broker_client(settings) as http:
        assert (await http.post("/iot/groups", json=group, headers=headers)).is_success
        assert (await http.post("/iot/devices", json=device, headers=headers)).is_success
        topic = f"/json/{apikey}/g1/attrs"
        await publish(mqtt_broker, topic, orjson.dumps({"lvl": 1.25}))

        async def ingested() -> bool:
            return await levels(http, entity_id, tenant) == [1.25] * 6

        await eventually(ingested)
        await shows(http, entity_id, 1.25, tenant)  # every rendering cached now
        await publish(mqtt_broker, topic, orjson.dumps({"lvl": 2.5}))

        async def updated() -> list[Any]:
            seen = await levels(http, entity_id, tenant)
            return seen if 1.25 not in seen else []

        # The first read after the ingest commit shows the new level in every rendering; no
        # rendering lags behind (a stale cache would keep showing 1.25 in some of them).
        assert await eventually(updated) == [2.5] * 6
