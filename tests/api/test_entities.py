"""Entity operations over HTTP, against a real SQLite store (ASGI transport, real lifespan)."""

from __future__ import annotations

import httpx

from tests.conftest import API, gauge

JSON = {"Content-Type": "application/json"}


async def create(client: httpx.AsyncClient, body: dict, **headers: str) -> httpx.Response:
    return await client.post(f"{API}/entities", json=body, headers={**JSON, **headers})


async def test_create_then_retrieve_round_trips(client: httpx.AsyncClient) -> None:
    response = await create(client, gauge())
    assert response.status_code == 201
    assert response.headers["location"] == f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"
    got = await client.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1")
    assert got.status_code == 200
    body = got.json()
    assert body["level"] == {
        "type": "Property",
        "value": 1.5,
        "unitCode": "MTR",
        "observedAt": "2026-11-23T01:00:00Z",
    }
    assert body["type"] == "RiverGauge"
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in got.headers["link"]


async def test_creating_twice_is_already_exists(client: httpx.AsyncClient) -> None:
    assert (await create(client, gauge())).status_code == 201
    again = await create(client, gauge())
    assert again.status_code == 409
    assert again.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"


async def test_retrieve_options_and_formats(client: httpx.AsyncClient) -> None:
    await create(client, gauge())
    url = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"
    simplified = (await client.get(url, params={"options": "keyValues"})).json()
    assert simplified["level"] == 1.5 and simplified["bridge"] == "urn:ngsi-ld:Bridge:sanjo"
    concise = (await client.get(url, params={"format": "concise"})).json()
    assert concise["alert"] == "none"
    with_sys = (await client.get(url, params={"options": "sysAttrs"})).json()
    assert with_sys["createdAt"].endswith("Z") and "modifiedAt" in with_sys["level"]
    picked = (await client.get(url, params={"pick": "id,level"})).json()
    assert set(picked) == {"id", "level"}
    english = (await client.get(url, params={"lang": "en"})).json()
    assert english["name"]["value"] == "Kamo River"
    missing = await client.get(url, params={"attrs": "colour"})
    assert missing.status_code == 404


async def test_retrieve_as_json_ld_carries_the_context(client: httpx.AsyncClient) -> None:
    await create(client, gauge())
    got = await client.get(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1", headers={"Accept": "application/ld+json"}
    )
    assert got.headers["content-type"] == "application/ld+json"
    assert (
        got.json()["@context"] == "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
    )


async def test_retrieve_as_geojson(client: httpx.AsyncClient) -> None:
    await create(client, gauge())
    got = await client.get(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1", headers={"Accept": "application/geo+json"}
    )
    feature = got.json()
    assert feature["type"] == "Feature"
    assert feature["geometry"] == {"type": "Point", "coordinates": [135.77, 35.01]}
    assert feature["@context"] == CORE_CONTEXT


CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"


async def test_geojson_bodies_carry_the_context_unless_prefer_body_json(
    client: httpx.AsyncClient,
) -> None:
    # v1.9 §6.3.6: without Prefer (or with body=ld+json) the GeoJSON body has the @context;
    # with "Prefer: body=json" only the Link header names it.
    await create(client, gauge())
    geo = {"Accept": "application/geo+json"}
    listed = await client.get(f"{API}/entities", params={"type": "RiverGauge"}, headers=geo)
    collection = listed.json()
    assert collection["@context"] == CORE_CONTEXT
    assert ["@context" in f for f in collection["features"]] == [False]  # §4.5.16.3
    plain = await client.get(
        f"{API}/entities", params={"type": "RiverGauge"}, headers={**geo, "Prefer": "body=json"}
    )
    assert "@context" not in plain.json()
    assert "@context" not in plain.json()["features"][0]
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in plain.headers["link"]
    one = await client.get(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1", headers={**geo, "Prefer": "body=json"}
    )
    assert "@context" not in one.json()


async def test_type_selector_hides_entities_of_other_types(client: httpx.AsyncClient) -> None:
    await create(client, gauge())
    url = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"
    assert (await client.get(url, params={"type": "Bridge"})).status_code == 404
    assert (await client.delete(url, params={"type": "Bridge"})).status_code == 404
    assert (await client.get(url, params={"type": "RiverGauge"})).status_code == 200


async def test_replace_keeps_creation_time_and_drops_old_attributes(
    client: httpx.AsyncClient,
) -> None:
    await create(client, gauge())
    url = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"
    before = (await client.get(url, params={"options": "sysAttrs"})).json()
    replaced = await client.put(url, json={"type": "RiverGauge", "level": 2.0}, headers=JSON)
    assert replaced.status_code == 204
    after = (await client.get(url, params={"options": "sysAttrs,keyValues"})).json()
    assert after["level"] == 2.0 and "alert" not in after
    assert after["createdAt"] == before["createdAt"]


async def test_merge_patch_updates_and_null_deletes(client: httpx.AsyncClient) -> None:
    await create(client, gauge())
    url = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"
    merged = await client.patch(
        url,
        json={"level": {"value": 3.2}, "alert": "urn:ngsi-ld:null"},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert merged.status_code == 204
    after = (await client.get(url)).json()
    assert after["level"]["value"] == 3.2 and after["level"]["unitCode"] == "MTR"
    assert "alert" not in after


async def test_delete_entity(client: httpx.AsyncClient) -> None:
    await create(client, gauge())
    url = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"
    assert (await client.delete(url)).status_code == 204
    gone = await client.get(url)
    assert gone.status_code == 404
    assert gone.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"


async def test_basic_query_by_type_id_pattern_attrs_with_paging_and_count(
    client: httpx.AsyncClient,
) -> None:
    for n in range(5):
        await create(client, gauge(f"urn:ngsi-ld:RiverGauge:g{n}", level=n))
    await create(client, {"id": "urn:ngsi-ld:Bridge:sanjo", "type": "Bridge"})
    page = await client.get(
        f"{API}/entities",
        params={"type": "RiverGauge", "limit": 2, "offset": 1, "options": "count"},
    )
    assert [e["id"] for e in page.json()] == [
        "urn:ngsi-ld:RiverGauge:g1",
        "urn:ngsi-ld:RiverGauge:g2",
    ]
    assert page.headers["ngsild-results-count"] == "5"
    both = await client.get(f"{API}/entities", params={"type": "RiverGauge,Bridge", "limit": 100})
    assert len(both.json()) == 6
    pattern = await client.get(
        f"{API}/entities", params={"type": "RiverGauge", "idPattern": "g[34]$"}
    )
    assert sorted(e["id"] for e in pattern.json()) == [
        "urn:ngsi-ld:RiverGauge:g3",
        "urn:ngsi-ld:RiverGauge:g4",
    ]
    by_id = await client.get(
        f"{API}/entities", params={"type": "Bridge,RiverGauge", "id": "urn:ngsi-ld:Bridge:sanjo"}
    )
    assert [e["id"] for e in by_id.json()] == ["urn:ngsi-ld:Bridge:sanjo"]
    # v1.9.1 §5.7.2.4: ids or an idPattern alone would reach every type, which is too wide.
    for too_wide in (
        {"id": "urn:ngsi-ld:Bridge:sanjo"},
        {"idPattern": ".*"},
        {"attrs": "createdAt"},
    ):
        refused = await client.get(f"{API}/entities", params=too_wide)
        assert refused.status_code == 400, too_wide
        assert refused.json()["type"].endswith("/BadRequestData")
    with_attr = await client.get(f"{API}/entities", params={"attrs": "level", "limit": 100})
    assert len(with_attr.json()) == 5
    assert (await client.get(f"{API}/entities")).status_code == 400
    too_many = await client.get(f"{API}/entities", params={"type": "Bridge", "limit": 5000})
    assert too_many.status_code == 403
