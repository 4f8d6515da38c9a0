"""Context source registrations over HTTP (GS CIM 009 v1.8.1 §5.9, §5.10)."""

from __future__ import annotations

import httpx

from tests.conftest import API, gauge

JSON = {"Content-Type": "application/json"}
REGS = f"{API}/csourceRegistrations"


def registration(
    reg_id: str = "urn:ngsi-ld:ContextSourceRegistration:town", **members: object
) -> dict:
    return {
        "id": reg_id,
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "RiverGauge"}], "propertyNames": ["level"]}],
        "endpoint": "http://town.example:1026",
        **members,
    }


async def test_create_retrieve_update_delete(client: httpx.AsyncClient) -> None:
    created = await client.post(REGS, json=registration(), headers=JSON)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"{REGS}/urn:ngsi-ld:ContextSourceRegistration:town"
    got = await client.get(f"{REGS}/urn:ngsi-ld:ContextSourceRegistration:town")
    assert got.status_code == 200
    body = got.json()
    assert body["information"] == registration()["information"]
    assert body["mode"] == "inclusive"
    assert body["operations"] == ["federationOps"]
    patched = await client.patch(
        f"{REGS}/urn:ngsi-ld:ContextSourceRegistration:town",
        json={"endpoint": "http://other.example"},
        headers=JSON,
    )
    assert patched.status_code == 204, patched.text
    got = await client.get(f"{REGS}/urn:ngsi-ld:ContextSourceRegistration:town")
    assert got.json()["endpoint"] == "http://other.example"
    deleted = await client.delete(f"{REGS}/urn:ngsi-ld:ContextSourceRegistration:town")
    assert deleted.status_code == 204
    gone = await client.get(f"{REGS}/urn:ngsi-ld:ContextSourceRegistration:town")
    assert gone.status_code == 404


async def test_the_iot_agent_path_with_a_trailing_slash_works(client: httpx.AsyncClient) -> None:
    created = await client.post(REGS + "/", json=registration(), headers=JSON)
    assert created.status_code == 201, created.text


async def test_a_taken_id_is_409_and_bad_content_is_400(client: httpx.AsyncClient) -> None:
    assert (await client.post(REGS, json=registration(), headers=JSON)).status_code == 201
    again = await client.post(REGS, json=registration(), headers=JSON)
    assert again.status_code == 409
    for bad in (
        {"information": None},
        {"endpoint": None},
        {"expiresAt": "2001-01-01T00:00:00Z"},
        {"management": {"timeout": -5}},
        {"contextSourceInfo": [{"key": "X", "value": 1}]},
        {"mode": "auxiliary", "operations": ["updateEntity"]},
    ):
        answer = await client.post(REGS, json=registration("urn:x:bad", **bad), headers=JSON)
        assert answer.status_code == 400, bad


async def test_overlapping_exclusive_registrations_conflict(client: httpx.AsyncClient) -> None:
    exclusive = {
        "mode": "exclusive",
        "information": [
            {"entities": [{"type": "RiverGauge", "id": "urn:g:1"}], "propertyNames": ["level"]}
        ],
    }
    assert (
        await client.post(REGS, json=registration("urn:r:1", **exclusive), headers=JSON)
    ).status_code == 201
    second = await client.post(REGS, json=registration("urn:r:2", **exclusive), headers=JSON)
    assert second.status_code == 409
    assert second.json()["type"].endswith("/Conflict")
    redirect = {**exclusive, "mode": "redirect"}
    third = await client.post(REGS, json=registration("urn:r:3", **redirect), headers=JSON)
    assert third.status_code == 409


async def test_redirect_over_an_existing_entity_conflicts(client: httpx.AsyncClient) -> None:
    await client.post(f"{API}/entities", json=gauge(), headers=JSON)
    redirect = registration(
        mode="redirect",
        information=[{"entities": [{"type": "RiverGauge", "id": gauge()["id"]}]}],
    )
    answer = await client.post(REGS, json=redirect, headers=JSON)
    assert answer.status_code == 409


async def test_query_by_type_attrs_q_csf_and_paging(client: httpx.AsyncClient) -> None:
    await client.post(REGS, json=registration("urn:r:a", owner="kamo"), headers=JSON)
    other = registration(
        "urn:r:b",
        information=[{"entities": [{"type": "RainGauge"}]}],
        endpoint="http://b.example",
        location={"type": "Point", "coordinates": [135.7, 35.0]},
    )
    await client.post(REGS, json=other, headers=JSON)
    assert (await client.get(REGS)).status_code == 400  # no filter at all

    async def ids(**params: str) -> list[str]:
        answer = await client.get(REGS, params=params)
        assert answer.status_code == 200, answer.text
        return [reg["id"] for reg in answer.json()]

    assert await ids(type="RiverGauge") == ["urn:r:a"]
    assert await ids(attrs="level") == ["urn:r:a", "urn:r:b"]  # b names none: it has all
    assert await ids(attrs="flow") == ["urn:r:b"]
    assert await ids(type="RiverGauge,RainGauge", attrs="level") == ["urn:r:a", "urn:r:b"]
    assert await ids(q='owner=="kamo"') == ["urn:r:a"]
    assert await ids(type="RainGauge", csf='endpoint=="http://b.example"') == ["urn:r:b"]
    assert await ids(
        type="RiverGauge,RainGauge",
        georel="near;maxDistance==1000",
        geometry="Point",
        coordinates="[135.7,35.0]",
    ) == ["urn:r:b"]
    paged = await client.get(
        REGS, params={"type": "RiverGauge,RainGauge", "limit": 1, "count": "true"}
    )
    assert [reg["id"] for reg in paged.json()] == ["urn:r:a"]
    assert paged.headers["NGSILD-Results-Count"] == "2"
    assert 'rel="next"' in paged.headers["link"]


async def test_discovery_includes_registered_types_and_attributes(
    client: httpx.AsyncClient,
) -> None:
    await client.post(f"{API}/entities", json=gauge(), headers=JSON)
    rain = registration(
        information=[{"entities": [{"type": "RainGauge"}], "propertyNames": ["rainfall"]}]
    )
    await client.post(REGS, json=rain, headers=JSON)
    types = (await client.get(f"{API}/types")).json()
    assert set(types["typeList"]) == {"RiverGauge", "RainGauge"}
    attributes = (await client.get(f"{API}/attributes")).json()
    assert "rainfall" in attributes["attributeList"]
    local = (await client.get(f"{API}/types", params={"local": "true"})).json()
    assert local["typeList"] == ["RiverGauge"]
