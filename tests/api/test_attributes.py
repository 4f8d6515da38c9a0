"""Attribute operations over HTTP: append, update, partial update, replace, delete."""

from __future__ import annotations

import httpx

from tests.conftest import API, gauge

JSON = {"Content-Type": "application/json"}
URL = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"


async def setup(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{API}/entities", json=gauge(), headers=JSON)).status_code == 201


async def values(client: httpx.AsyncClient) -> dict:
    return (await client.get(URL, params={"options": "keyValues"})).json()


async def test_append_adds_and_no_overwrite_reports_207(client: httpx.AsyncClient) -> None:
    await setup(client)
    added = await client.post(f"{URL}/attrs", json={"rainfall": 12}, headers=JSON)
    assert added.status_code == 204
    partial = await client.post(
        f"{URL}/attrs",
        params={"options": "noOverwrite"},
        json={"level": 9.9, "flow": 3},
        headers=JSON,
    )
    assert partial.status_code == 207
    body = partial.json()
    assert body["updated"] == ["flow"]
    assert body["notUpdated"][0]["attributeName"] == "level"
    now = await values(client)
    assert now["level"] == 1.5 and now["flow"] == 3 and now["rainfall"] == 12


async def test_update_attributes_replaces_and_adds(client: httpx.AsyncClient) -> None:
    await setup(client)
    updated = await client.patch(f"{URL}/attrs", json={"level": 2.5, "flow": 1}, headers=JSON)
    assert updated.status_code == 204
    now = await values(client)
    assert now["level"] == 2.5 and now["flow"] == 1


async def test_partial_attribute_update_keeps_other_members(client: httpx.AsyncClient) -> None:
    await setup(client)
    patched = await client.patch(
        f"{URL}/attrs/level",
        json={"value": 4.0, "observedAt": "2026-11-23T02:00:00Z"},
        headers=JSON,
    )
    assert patched.status_code == 204
    level = (await client.get(URL)).json()["level"]
    assert level == {
        "type": "Property",
        "value": 4.0,
        "unitCode": "MTR",
        "observedAt": "2026-11-23T02:00:00Z",
    }
    missing = await client.patch(f"{URL}/attrs/flow", json={"value": 1}, headers=JSON)
    assert missing.status_code == 404


async def test_replace_attribute_swaps_it_whole(client: httpx.AsyncClient) -> None:
    await setup(client)
    replaced = await client.put(
        f"{URL}/attrs/level", json={"type": "Property", "value": 7}, headers=JSON
    )
    assert replaced.status_code == 204
    assert (await client.get(URL)).json()["level"] == {"type": "Property", "value": 7}


async def test_delete_attribute_by_dataset_and_all(client: httpx.AsyncClient) -> None:
    await setup(client)
    gps = {"type": "Property", "value": 1.7, "datasetId": "urn:ngsi-ld:Dataset:radar"}
    await client.post(f"{URL}/attrs", json={"level": gps}, headers=JSON)
    assert len((await client.get(URL)).json()["level"]) == 2
    one = await client.delete(
        f"{URL}/attrs/level", params={"datasetId": "urn:ngsi-ld:Dataset:radar"}
    )
    assert one.status_code == 204
    assert (await client.get(URL)).json()["level"]["value"] == 1.5
    assert (
        await client.delete(f"{URL}/attrs/level", params={"deleteAll": "true"})
    ).status_code == 204
    assert "level" not in await values(client)
    assert (await client.delete(f"{URL}/attrs/level")).status_code == 404
