"""The Temporal API over HTTP: history from entity writes, provision, consumption, errors."""

from __future__ import annotations

import httpx

from tests.conftest import API, gauge

JSON = {"Content-Type": "application/json"}
GAUGE = "urn:ngsi-ld:RiverGauge:kamo-1"
TEMPORAL = f"{API}/temporal/entities"
BAD = "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
NOT_FOUND = "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


def readings(entity_id: str, values: list[tuple[float, str]]) -> dict:
    return {
        "id": entity_id,
        "type": "RiverGauge",
        "level": [
            {"type": "Property", "value": v, "observedAt": t, "unitCode": "MTR"} for v, t in values
        ],
    }


HOURS = [
    (1.0, "2026-11-23T01:00:00Z"),
    (2.0, "2026-11-23T01:30:00Z"),
    (4.0, "2026-11-23T02:10:00Z"),
]


async def test_entity_writes_record_history(client: httpx.AsyncClient) -> None:
    assert (await client.post(f"{API}/entities", json=gauge(), headers=JSON)).status_code == 201
    for value, at in [(1.7, "2026-11-23T01:10:00Z"), (1.9, "2026-11-23T01:20:00Z")]:
        patched = await client.patch(
            f"{API}/entities/{GAUGE}/attrs/level",
            json={"value": value, "observedAt": at},
            headers=JSON,
        )
        assert patched.status_code == 204
    assert (await client.delete(f"{API}/entities/{GAUGE}/attrs/alert")).status_code == 204
    level = (await client.get(f"{TEMPORAL}/{GAUGE}", params={"attrs": "level"})).json()["level"]
    assert [i["value"] for i in level] == [1.5, 1.7, 1.9]
    assert all(i["instanceId"].startswith("urn:ngsi-ld:Instance:") for i in level)
    assert level[1]["unitCode"] == "MTR"
    deleted = (await client.get(f"{TEMPORAL}/{GAUGE}", params={"timeproperty": "deletedAt"})).json()
    assert deleted["alert"][0]["value"] == "urn:ngsi-ld:null" and "deletedAt" in deleted["alert"][0]
    assert "level" not in deleted


async def test_batch_writes_record_history(client: httpx.AsyncClient) -> None:
    batch = [gauge(f"urn:ngsi-ld:RiverGauge:b{i}", level=float(i)) for i in range(3)]
    assert (
        await client.post(f"{API}/entityOperations/upsert", json=batch, headers=JSON)
    ).status_code == 201
    batch = [gauge(f"urn:ngsi-ld:RiverGauge:b{i}", level=float(i) + 10) for i in range(3)]
    for doc in batch:
        doc["level"]["observedAt"] = "2026-11-23T02:00:00Z"
    await client.post(
        f"{API}/entityOperations/upsert", params={"options": "update"}, json=batch, headers=JSON
    )
    got = (await client.get(TEMPORAL, params={"type": "RiverGauge", "attrs": "level"})).json()
    assert sorted(len(e["level"]) for e in got) == [2, 2, 2]


async def test_create_and_query_temporal_representation(client: httpx.AsyncClient) -> None:
    created = await client.post(TEMPORAL, json=readings(GAUGE, HOURS), headers=JSON)
    assert created.status_code == 201
    assert created.headers["location"].endswith(GAUGE)
    # the entity holds the latest observation
    now = (await client.get(f"{API}/entities/{GAUGE}", params={"options": "keyValues"})).json()
    assert now["level"] == 4.0
    after = await client.get(
        TEMPORAL,
        params={"type": "RiverGauge", "timerel": "after", "timeAt": "2026-11-23T01:30:00Z"},
    )
    assert [i["value"] for i in after.json()[0]["level"]] == [2.0, 4.0]
    before = await client.get(
        f"{TEMPORAL}/{GAUGE}", params={"timerel": "before", "timeAt": "2026-11-23T01:30:00Z"}
    )
    assert [i["value"] for i in before.json()["level"]] == [1.0]
    last = await client.get(f"{TEMPORAL}/{GAUGE}", params={"lastN": "2"})
    assert [i["value"] for i in last.json()["level"]] == [2.0, 4.0]
    simple = await client.get(f"{TEMPORAL}/{GAUGE}", params={"options": "temporalValues"})
    assert simple.json()["level"] == {
        "type": "Property",
        "values": [[1.0, HOURS[0][1]], [2.0, HOURS[1][1]], [4.0, HOURS[2][1]]],
    }
    more = await client.post(
        TEMPORAL, json=readings(GAUGE, [(8.0, "2026-11-23T03:00:00Z")]), headers=JSON
    )
    assert more.status_code == 204
    assert len((await client.get(f"{TEMPORAL}/{GAUGE}")).json()["level"]) == 4


async def test_aggregated_values(client: httpx.AsyncClient) -> None:
    await client.post(TEMPORAL, json=readings(GAUGE, HOURS), headers=JSON)
    got = await client.get(
        f"{TEMPORAL}/{GAUGE}",
        params={
            "options": "aggregatedValues",
            "aggrMethods": "avg,max,totalCount",
            "aggrPeriodDuration": "PT1H",
        },
    )
    level = got.json()["level"]
    first = ("2026-11-23T01:00:00Z", "2026-11-23T02:00:00Z")
    second = ("2026-11-23T02:00:00Z", "2026-11-23T03:00:00Z")
    assert level["avg"] == [[1.5, *first], [4.0, *second]]
    assert level["max"] == [[2.0, *first], [4.0, *second]]
    assert level["totalCount"] == [[2, *first], [1, *second]]
    by_post = await client.post(
        f"{API}/temporal/entityOperations/query",
        json={
            "type": "Query",
            "entities": [{"type": "RiverGauge"}],
            "temporalQ": {"timerel": "after", "timeAt": "2026-11-23T00:00:00Z"},
            "aggrParams": {"aggrMethods": ["sum"], "aggrPeriodDuration": "P1D"},
        },
        headers=JSON,
    )
    assert by_post.status_code == 200
    assert by_post.json()[0]["level"]["sum"][0][0] == 7.0


async def test_instances_can_be_modified_and_deleted(client: httpx.AsyncClient) -> None:
    await client.post(TEMPORAL, json=readings(GAUGE, HOURS), headers=JSON)
    level = (await client.get(f"{TEMPORAL}/{GAUGE}")).json()["level"]
    first = level[0]["instanceId"]
    modified = await client.patch(
        f"{TEMPORAL}/{GAUGE}/attrs/level/{first}",
        json={"level": {"type": "Property", "value": 1.25, "observedAt": HOURS[0][1]}},
        headers=JSON,
    )
    assert modified.status_code == 204
    level = (await client.get(f"{TEMPORAL}/{GAUGE}")).json()["level"]
    assert level[0]["value"] == 1.25 and level[0]["instanceId"] == first
    gone = await client.delete(f"{TEMPORAL}/{GAUGE}/attrs/level/{first}")
    assert gone.status_code == 204
    again = await client.delete(f"{TEMPORAL}/{GAUGE}/attrs/level/{first}")
    assert again.status_code == 404 and again.json()["type"] == NOT_FOUND
    assert len((await client.get(f"{TEMPORAL}/{GAUGE}")).json()["level"]) == 2
    assert (await client.delete(f"{TEMPORAL}/{GAUGE}/attrs/level")).status_code == 204
    assert "level" not in (await client.get(f"{TEMPORAL}/{GAUGE}")).json()
    assert (await client.delete(f"{TEMPORAL}/{GAUGE}/attrs/level")).status_code == 404
    assert (await client.delete(f"{TEMPORAL}/{GAUGE}")).status_code == 204
    assert (await client.get(f"{TEMPORAL}/{GAUGE}")).status_code == 404
    assert (await client.delete(f"{TEMPORAL}/{GAUGE}")).status_code == 404


async def test_errors_are_problem_details(client: httpx.AsyncClient) -> None:
    await client.post(TEMPORAL, json=readings(GAUGE, HOURS), headers=JSON)
    for params in (
        {"timerel": "during", "timeAt": "2026-11-23T01:00:00Z"},
        {"timerel": "between", "timeAt": "2026-11-23T01:00:00Z"},
        {"lastN": "0"},
        {"timeproperty": "seenAt"},
        {"options": "aggregatedValues", "aggrMethods": "median"},
        {"options": "aggregatedValues", "aggrMethods": "avg", "aggrPeriodDuration": "hourly"},
    ):
        got = await client.get(f"{TEMPORAL}/{GAUGE}", params=params)
        assert got.status_code == 400, params
        assert got.json()["type"] == BAD
    assert (await client.get(f"{TEMPORAL}/not-a-uri")).status_code == 400
    assert (await client.get(f"{TEMPORAL}/urn:ngsi-ld:RiverGauge:none")).status_code == 404
    missing_id = await client.post(TEMPORAL, json={"type": "RiverGauge"}, headers=JSON)
    assert missing_id.status_code == 400
    no_entity = await client.post(
        f"{TEMPORAL}/urn:ngsi-ld:RiverGauge:none/attrs",
        json={"level": [{"type": "Property", "value": 1}]},
        headers=JSON,
    )
    assert no_entity.status_code == 404


async def test_history_can_be_turned_off_per_tenant(client: httpx.AsyncClient) -> None:
    tenant = {"NGSILD-Tenant": "quiet"}
    made = await client.post(
        "/admin/tenants", json={"name": "quiet", "history": {"enabled": False}}, headers=JSON
    )
    assert made.status_code == 201, made.text
    await client.post(f"{API}/entities", json=gauge(), headers={**JSON, **tenant})
    await client.patch(
        f"{API}/entities/{GAUGE}/attrs/level", json={"value": 9.0}, headers={**JSON, **tenant}
    )
    got = (await client.get(f"{TEMPORAL}/{GAUGE}", headers=tenant)).json()
    assert "level" not in got  # nothing recorded: not even the creation


async def test_a_repeated_observation_replaces_the_recorded_one(client: httpx.AsyncClient) -> None:
    await client.post(TEMPORAL, json=readings(GAUGE, HOURS), headers=JSON)
    again = readings(GAUGE, [(2.5, HOURS[1][1])])
    assert (await client.post(TEMPORAL, json=again, headers=JSON)).status_code == 204
    level = (await client.get(f"{TEMPORAL}/{GAUGE}")).json()["level"]
    assert [i["value"] for i in level] == [1.0, 2.5, 4.0]


async def test_deleted_instances_are_temporal_input(client: httpx.AsyncClient) -> None:
    body = readings(GAUGE, HOURS)
    body["level"].append(
        {"type": "Property", "value": "urn:ngsi-ld:null", "observedAt": "2026-11-23T03:00:00Z"}
    )
    assert (await client.post(TEMPORAL, json=body, headers=JSON)).status_code == 201
    level = (await client.get(f"{TEMPORAL}/{GAUGE}")).json()["level"]
    assert level[-1]["value"] == "urn:ngsi-ld:null"
    current = (await client.get(f"{API}/entities/{GAUGE}", params={"options": "keyValues"})).json()
    assert current["level"] == 4.0
    null_expiry = {**readings("urn:ngsi-ld:RiverGauge:x", HOURS), "expiresAt": "urn:ngsi-ld:null"}
    assert (await client.post(TEMPORAL, json=null_expiry, headers=JSON)).status_code == 400


async def test_empty_attribute_name_in_the_path(client: httpx.AsyncClient) -> None:
    got = await client.delete(f"{TEMPORAL}/{GAUGE}/attrs//urn:ngsi-ld:Instance:1")
    assert got.status_code == 400 and got.json()["type"] == BAD


async def test_q_and_geo_are_judged_on_the_window(client: httpx.AsyncClient) -> None:
    # kamo-1 was high only before the window; kamo-2 is high inside it.
    early = [(9.0, "2026-11-22T01:00:00Z"), (1.0, "2026-11-23T01:00:00Z")]
    late = [(1.0, "2026-11-22T01:00:00Z"), (9.0, "2026-11-23T01:00:00Z")]
    await client.post(TEMPORAL, json=readings(GAUGE, early), headers=JSON)
    await client.post(TEMPORAL, json=readings("urn:ngsi-ld:RiverGauge:kamo-2", late), headers=JSON)
    window = {
        "type": "RiverGauge",
        "timerel": "after",
        "timeAt": "2026-11-23T00:00:00Z",
        "count": "true",
    }
    got = await client.get(TEMPORAL, params={**window, "q": "level>5"})
    assert [e["id"] for e in got.json()] == ["urn:ngsi-ld:RiverGauge:kamo-2"]
    assert got.headers["NGSILD-Results-Count"] == "1"
    assert [i["value"] for i in got.json()[0]["level"]] == [9.0]
    before = {**window, "timerel": "before", "q": "level>5"}
    got = await client.get(TEMPORAL, params=before)
    assert [e["id"] for e in got.json()] == [GAUGE]


async def test_scope_q_follows_the_scope_over_time(client: httpx.AsyncClient) -> None:
    body = readings(GAUGE, [(1.0, "2026-03-01T12:15:00Z"), (2.0, "2026-03-01T12:45:00Z")])
    body["scope"] = [
        {"type": "Property", "value": "/Kyoto/North", "observedAt": "2026-03-01T10:00:00Z"},
        {"type": "Property", "value": "/Kyoto/South", "observedAt": "2026-03-01T12:30:00Z"},
    ]
    assert (await client.post(TEMPORAL, json=body, headers=JSON)).status_code == 201
    window = {
        "type": "RiverGauge",
        "timerel": "between",
        "timeAt": "2026-03-01T12:00:00Z",
        "endTimeAt": "2026-03-01T13:00:00Z",
    }
    north = (await client.get(TEMPORAL, params={**window, "scopeQ": "/Kyoto/North"})).json()
    assert [i["value"] for i in north[0]["level"]] == [1.0]
    south = (await client.get(TEMPORAL, params={**window, "scopeQ": "/Kyoto/South"})).json()
    assert [i["value"] for i in south[0]["level"]] == [2.0]
    later = {**window, "timeAt": "2026-03-02T00:00:00Z", "endTimeAt": "2026-03-03T00:00:00Z"}
    assert (await client.get(TEMPORAL, params={**later, "scopeQ": "/Kyoto/North"})).json() == []
    now = (await client.get(f"{API}/entities/{GAUGE}")).json()
    assert now["scope"] == "/Kyoto/South"


async def test_entity_maps_on_temporal_queries(client: httpx.AsyncClient) -> None:
    for n in (1, 2):
        await client.post(
            TEMPORAL, json=readings(f"urn:ngsi-ld:RiverGauge:m{n}", HOURS), headers=JSON
        )
    window = {"type": "RiverGauge", "timerel": "after", "timeAt": "2026-01-01T00:00:00Z"}
    made = await client.get(
        TEMPORAL, params={**window, "id": "urn:ngsi-ld:RiverGauge:m1", "entityMap": "true"}
    )
    assert made.status_code == 201
    location = made.headers["NGSILD-EntityMap"]
    fixed = await client.get(TEMPORAL, params=window, headers={"NGSILD-EntityMap": location})
    assert fixed.status_code == 200 and fixed.headers["NGSILD-EntityMap"] == location
    assert [e["id"] for e in fixed.json()] == ["urn:ngsi-ld:RiverGauge:m1"]
    dead = await client.get(TEMPORAL, params=window, headers={"NGSILD-EntityMap": "urn:x:gone"})
    assert dead.status_code == 201 and "gone" not in dead.headers["NGSILD-EntityMap"]


async def test_a_deleted_entity_keeps_its_history_until_the_history_is_deleted(
    client: httpx.AsyncClient,
) -> None:
    await client.post(TEMPORAL, json=readings(GAUGE, HOURS), headers=JSON)
    assert (await client.delete(f"{API}/entities/{GAUGE}")).status_code == 204
    assert (await client.get(f"{API}/entities/{GAUGE}")).status_code == 404
    kept = await client.get(f"{TEMPORAL}/{GAUGE}")
    assert kept.status_code == 200
    assert kept.json()["type"] == "RiverGauge"
    assert [i["value"] for i in kept.json()["level"]] == [v for v, _ in HOURS]
    deletions = await client.get(f"{TEMPORAL}/{GAUGE}", params={"timeproperty": "deletedAt"})
    assert [i["value"] for i in deletions.json()["level"]] == ["urn:ngsi-ld:null"]
    assert (await client.delete(f"{TEMPORAL}/{GAUGE}")).status_code == 204
    assert (await client.get(f"{TEMPORAL}/{GAUGE}")).status_code == 404
