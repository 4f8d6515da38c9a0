"""Transient entities over HTTP (GS CIM 009 v1.9.1 §4.22): what expired is not served, counted
as a match, written to or holding its id, from the moment it expires (before any sweep)."""

from __future__ import annotations

import httpx

from tests.conftest import API, gauge

JSON = {"Content-Type": "application/json"}
PAST = "2020-01-01T00:00:00Z"
FUTURE = "2100-01-01T00:00:00Z"
URL = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"


async def test_an_entity_whose_expiry_passed_is_gone_for_readers_and_writers(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.post(f"{API}/entities", json=gauge(), headers=JSON)).status_code == 201
    merge = {"expiresAt": FUTURE}
    assert (await client.patch(URL, json=merge, headers=JSON)).status_code == 204
    shown = (await client.get(URL, params={"options": "sysAttrs"})).json()
    assert shown["expiresAt"] == FUTURE
    assert "expiresAt" not in (await client.get(URL)).json()

    assert (await client.patch(URL, json={"expiresAt": PAST}, headers=JSON)).status_code == 204
    assert (await client.get(URL)).status_code == 404
    listed = await client.get(f"{API}/entities", params={"type": "RiverGauge"})
    assert listed.json() == []
    update = {"alert": {"type": "Property", "value": "high"}}
    assert (await client.post(f"{URL}/attrs", json=update, headers=JSON)).status_code == 404
    # Its id is free again: creating it anew succeeds.
    assert (await client.post(f"{API}/entities", json=gauge(), headers=JSON)).status_code == 201
    assert (await client.get(URL)).json()["alert"]["value"] == "none"


async def test_an_expired_attribute_instance_vanishes_its_siblings_stay(
    client: httpx.AsyncClient,
) -> None:
    body = gauge()
    body["alert"]["expiresAt"] = PAST
    body["speed"] = [
        {"type": "Property", "value": 1, "datasetId": "urn:ngsi-ld:d:gps", "expiresAt": PAST},
        {"type": "Property", "value": 2, "datasetId": "urn:ngsi-ld:d:odo", "expiresAt": FUTURE},
    ]
    assert (await client.post(f"{API}/entities", json=body, headers=JSON)).status_code == 201
    shown = (await client.get(URL)).json()
    assert "alert" not in shown
    assert shown["speed"]["datasetId"] == "urn:ngsi-ld:d:odo"
    assert shown["level"]["value"] == 1.5
    queried = await client.get(f"{API}/entities", params={"type": "RiverGauge", "attrs": "speed"})
    assert [e["speed"]["value"] for e in queried.json()] == [2]


async def test_batch_upsert_makes_an_existing_entity_transient(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{API}/entities", json=gauge(), headers=JSON)).status_code == 201
    upsert = {**gauge(), "expiresAt": PAST}
    answer = await client.post(
        f"{API}/entityOperations/upsert", params={"options": "update"}, json=[upsert], headers=JSON
    )
    assert answer.status_code == 204
    assert (await client.get(URL)).status_code == 404


async def test_counts_matches_and_discovery_leave_out_what_expired(
    client: httpx.AsyncClient,
) -> None:
    gone = {**gauge("urn:ngsi-ld:RiverGauge:gone"), "expiresAt": PAST}
    flagged = gauge("urn:ngsi-ld:RiverGauge:flagged", level=9.0)
    flagged["level"]["expiresAt"] = PAST
    for body in (gone, flagged, gauge("urn:ngsi-ld:RiverGauge:low", level=0.5)):
        assert (await client.post(f"{API}/entities", json=body, headers=JSON)).status_code == 201
    counted = await client.get(f"{API}/entities", params={"type": "RiverGauge", "count": "true"})
    assert counted.headers["ngsild-results-count"] == "2"
    high = await client.get(f"{API}/entities", params={"type": "RiverGauge", "q": "level>1"})
    assert high.json() == [], "a match on an expired attribute is no match"
    types = await client.get(f"{API}/types", params={"details": "true"})
    level_attrs = [t["attributeNames"] for t in types.json() if t["typeName"] == "RiverGauge"]
    assert level_attrs and "level" in level_attrs[0]
    attributes = await client.get(f"{API}/attributes/level")
    assert attributes.json()["attributeCount"] == 1


async def test_an_expired_attribute_takes_its_history_along_the_entity_keeps_the_rest(
    client: httpx.AsyncClient,
) -> None:
    body = gauge()
    body["alert"]["expiresAt"] = PAST
    assert (await client.post(f"{API}/entities", json=body, headers=JSON)).status_code == 201
    # a count expires what is due before answering
    counted = await client.get(f"{API}/entities", params={"type": "RiverGauge", "count": "true"})
    assert counted.headers["NGSILD-Results-Count"] == "1"
    temporal = await client.get(f"{API}/temporal/entities/urn:ngsi-ld:RiverGauge:kamo-1")
    assert temporal.status_code == 200
    assert "alert" not in temporal.json()
    assert [i["value"] for i in temporal.json()["level"]] == [1.5]


async def test_a_merge_with_a_null_expiry_makes_the_entity_durable(
    client: httpx.AsyncClient,
) -> None:
    body = {**gauge(), "expiresAt": FUTURE}
    assert (await client.post(f"{API}/entities", json=body, headers=JSON)).status_code == 201
    merge = {"expiresAt": "urn:ngsi-ld:null"}
    assert (await client.patch(URL, json=merge, headers=JSON)).status_code == 204
    shown = await client.get(URL, params={"options": "sysAttrs"})
    assert "expiresAt" not in shown.json()
    assert "urn:ngsi-ld:null" not in shown.text


async def test_the_history_of_an_expired_entity_outlives_it(client: httpx.AsyncClient) -> None:
    # §4.22 ends the current state only; the temporal evolution stays, as after a deletion.
    body = {**gauge(), "expiresAt": FUTURE, "scope": "/kyoto/kamo"}
    assert (await client.post(f"{API}/entities", json=body, headers=JSON)).status_code == 201
    later = {"value": 2.5, "observedAt": "2026-11-23T02:00:00Z"}
    assert (await client.patch(f"{URL}/attrs/level", json=later, headers=JSON)).status_code == 204
    assert (await client.patch(URL, json={"expiresAt": PAST}, headers=JSON)).status_code == 204
    assert (await client.get(URL)).status_code == 404
    temporal = f"{API}/temporal/entities/urn:ngsi-ld:RiverGauge:kamo-1"
    before_sweep = await client.get(temporal)
    assert before_sweep.status_code == 200
    assert before_sweep.json()["type"] == "RiverGauge"
    assert [i["value"] for i in before_sweep.json()["level"]] == [1.5, 2.5]
    # a count expires what is due before answering: the entity is now deleted from the store
    counted = await client.get(f"{API}/entities", params={"type": "RiverGauge", "count": "true"})
    assert counted.headers["NGSILD-Results-Count"] == "0"
    after_sweep = await client.get(temporal, params={"options": "temporalValues"})
    assert after_sweep.status_code == 200
    shown = after_sweep.json()
    assert shown["id"] == "urn:ngsi-ld:RiverGauge:kamo-1" and shown["type"] == "RiverGauge"
    assert [v[0] for v in shown["level"]["values"]] == [1.5, 2.5]
    assert set(shown) == {"id", "type", "scope", "level", "alert", "bridge", "location", "name"}
    wrong_type = await client.get(temporal, params={"type": "Shelter"})
    assert wrong_type.status_code == 404
    assert (await client.delete(temporal)).status_code == 204
    assert (await client.get(temporal)).status_code == 404
