"""EntityMaps over HTTP (v1.9 §5.14, §5.5.9.3): made by queries, read, updated, deleted, and
followed by later queries; against a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from tests.conftest import API

JSON = {"Content-Type": "application/json"}
HEADER = "NGSILD-EntityMap"


def vid(n: int) -> str:
    return f"urn:ngsi-ld:Vehicle:em-{n}"


async def vehicles(client: httpx.AsyncClient, count: int) -> None:
    for n in range(count):
        body = {"id": vid(n), "type": "Vehicle", "speed": 20 * n}
        assert (await client.post(f"{API}/entities", json=body, headers=JSON)).status_code == 201


def map_url(map_id: str) -> str:
    return f"{API}/entityMaps/{quote(map_id, safe='')}"


async def test_a_query_makes_a_map_that_can_be_read_updated_and_deleted(
    client: httpx.AsyncClient,
) -> None:
    await vehicles(client, 4)
    made = await client.get(f"{API}/entityMaps", params={"type": "Vehicle", "q": "speed>30"})
    assert made.status_code == 201
    body = made.json()
    assert body["type"] == "EntityMap"
    assert body["entityMap"] == {vid(2): ["@none"], vid(3): ["@none"]}
    map_id = made.headers[HEADER].rsplit("/", 1)[-1]
    assert map_id == body["id"]
    assert (await client.get(map_url(map_id))).json()["entityMap"] == body["entityMap"]
    assert (await client.get(f"{API}/entityMaps/not a uri")).status_code == 400

    injected = {"expiresAt": "2099-01-01T00:00:00Z", "entityMap": {vid(9): ["@none"]}}
    assert (await client.patch(map_url(map_id), json=injected, headers=JSON)).status_code == 204
    after = (await client.get(map_url(map_id))).json()
    assert vid(9) not in after["entityMap"]
    assert after["expiresAt"] < "2099-01-01T00:00:00Z", "the broker bounds a map's life"
    bad = await client.patch(map_url(map_id), json={"expiresAt": "tomorrow"}, headers=JSON)
    assert bad.status_code == 400
    past = {"expiresAt": "2000-01-01T00:00:00Z"}
    assert (await client.patch(map_url(map_id), json=past, headers=JSON)).status_code == 204
    assert (await client.get(map_url(map_id))).status_code == 404
    assert (await client.delete(map_url(map_id))).status_code == 404


async def test_map_lifetimes_are_durations_and_bounded(client: httpx.AsyncClient) -> None:
    await vehicles(client, 1)
    bad = await client.get(
        f"{API}/entityMaps", params={"type": "Vehicle", "entityMapLifetime": "1h"}
    )
    assert bad.status_code == 400
    wide = await client.get(f"{API}/entityMaps", params={"id": vid(0)})
    assert wide.status_code == 400
    long = await client.get(
        f"{API}/entityMaps", params={"type": "Vehicle", "entityMapLifetime": "P3650D"}
    )
    expires = datetime.fromisoformat(long.json()["expiresAt"])
    assert 0 < (expires - datetime.now(UTC)).total_seconds() <= 86400


async def test_a_query_pages_through_its_map_and_prunes_what_no_longer_fits(
    client: httpx.AsyncClient,
) -> None:
    await vehicles(client, 5)
    first = await client.get(f"{API}/entities", params={"type": "Vehicle", "entityMap": "true"})
    assert first.status_code == 201
    location = first.headers[HEADER]
    # A vehicle created after the map is not in it.
    late = {"id": vid(7), "type": "Vehicle", "speed": 1}
    assert (await client.post(f"{API}/entities", json=late, headers=JSON)).status_code == 201
    assert (await client.delete(f"{API}/entities/{vid(1)}")).status_code == 204
    mapped = {HEADER: location}
    page = await client.get(
        f"{API}/entities",
        params={"type": "Vehicle", "limit": "2", "offset": "2", "count": "true"},
        headers=mapped,
    )
    assert page.status_code == 200 and page.headers[HEADER] == location
    assert [e["id"] for e in page.json()] == [vid(3), vid(4)]
    assert page.headers["ngsild-results-count"] == "4"
    assert "offset=0" in page.headers["link"] and vid(0) not in page.headers["link"]
    kept = (await client.get(f"{API}{location.removeprefix('/ngsi-ld/v1')}")).json()
    assert sorted(kept["entityMap"]) == [vid(0), vid(2), vid(3), vid(4)]
