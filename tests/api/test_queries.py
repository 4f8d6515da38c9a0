"""Queries over HTTP: q, scopeQ, geo-queries, paging links, POST queries, joins, purge and
discovery, against a real SQLite store."""

from __future__ import annotations

import httpx

from tests.conftest import API, gauge

JSON = {"Content-Type": "application/json"}
BRIDGE = [135.7722, 35.0087]  # Sanjo Ohashi, Kyoto


async def seed(client: httpx.AsyncClient) -> None:
    """Five gauges along the Kamo river, 0…4 km north of the bridge, levels 1.0…3.0."""
    for n in range(5):
        body = gauge(f"urn:ngsi-ld:RiverGauge:g{n}", level=1.0 + n / 2)
        body["location"]["value"]["coordinates"] = [BRIDGE[0], BRIDGE[1] + n * 0.009]
        body["scope"] = "/kyoto/kamo" if n % 2 == 0 else "/kyoto/katsura"
        response = await client.post(f"{API}/entities", json=body, headers=JSON)
        assert response.status_code == 201
    bridge = {"id": "urn:ngsi-ld:Bridge:sanjo", "type": "Bridge", "name": {"value": "Sanjo"}}
    assert (await client.post(f"{API}/entities", json=bridge, headers=JSON)).status_code == 201


async def ids(client: httpx.AsyncClient, **params: object) -> list[str]:
    response = await client.get(f"{API}/entities", params=params)
    assert response.status_code == 200, response.text
    return [entity["id"] for entity in response.json()]


def gauges(*numbers: int) -> list[str]:
    return [f"urn:ngsi-ld:RiverGauge:g{n}" for n in numbers]


async def test_q_filters_by_value_range_relationship_and_existence(
    client: httpx.AsyncClient,
) -> None:
    await seed(client)
    assert await ids(client, type="RiverGauge", q="level>2") == gauges(3, 4)
    assert await ids(client, type="RiverGauge", q="level==1.5..2.5") == gauges(1, 2, 3)
    assert await ids(client, type="RiverGauge", q="level<1.2|level>=3") == gauges(0, 4)
    assert await ids(client, q="bridge==urn:ngsi-ld:Bridge:sanjo;level<1.6") == gauges(0, 1)
    assert await ids(client, q='level.unitCode=="MTR";level>2.9') == gauges(4)
    assert await ids(client, type="Bridge,RiverGauge", q="!level") == ["urn:ngsi-ld:Bridge:sanjo"]
    assert await ids(client, type="RiverGauge", q='alert~="^no"', limit=2) == gauges(0, 1)


async def test_bad_q_is_bad_request_data_pointing_at_the_position(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(f"{API}/entities", params={"type": "T", "q": "level>>2"})
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"].endswith("/BadRequestData")
    assert "position" in problem["detail"]


async def test_scope_and_type_expressions(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert await ids(client, scopeQ="/kyoto/kamo") == gauges(0, 2, 4)
    assert await ids(client, scopeQ="/kyoto/#", type="RiverGauge", limit=2) == gauges(0, 1)
    assert await ids(client, type="(RiverGauge;Bridge)|Nothing") == []
    assert len(await ids(client, type="*")) == 6


async def test_near_orders_by_distance_and_within_uses_the_polygon(
    client: httpx.AsyncClient,
) -> None:
    await seed(client)
    # The reference point is just north of gauge 3: 3 is nearest, then 2 and 4, then 1.
    near = {
        "georel": "near;maxDistance==2500",
        "geometry": "Point",
        "coordinates": f"[{BRIDGE[0]},{BRIDGE[1] + 3.1 * 0.009}]",
    }
    assert await ids(client, **near) == gauges(3, 4, 2, 1)
    box = [[135.76, 35.0], [135.78, 35.0], [135.78, 35.02], [135.76, 35.02], [135.76, 35.0]]
    within = {"georel": "within", "geometry": "Polygon", "coordinates": str([box])}
    assert await ids(client, **within) == gauges(0, 1)
    bad = await client.get(f"{API}/entities", params={**within, "georel": "near"})
    assert bad.status_code == 400


async def test_paging_links_and_count(client: httpx.AsyncClient) -> None:
    await seed(client)
    first = await client.get(
        f"{API}/entities", params={"type": "RiverGauge", "limit": 2, "count": "true"}
    )
    assert first.headers["ngsild-results-count"] == "5"
    links = first.headers["link"]
    assert 'rel="next"' in links and "offset=2" in links and 'rel="prev"' not in links
    last = await client.get(
        f"{API}/entities", params={"type": "RiverGauge", "limit": 2, "offset": 4}
    )
    assert [e["id"] for e in last.json()] == gauges(4)
    assert 'rel="prev"' in last.headers["link"] and 'rel="next"' not in last.headers["link"]
    over = await client.get(f"{API}/entities", params={"type": "RiverGauge", "limit": 100000})
    assert over.status_code == 403
    assert over.json()["type"].endswith("/TooManyResults")


async def test_post_query_with_selectors_q_and_geo(client: httpx.AsyncClient) -> None:
    await seed(client)
    body = {
        "type": "Query",
        "entities": [
            {"type": "RiverGauge", "idPattern": "g[0-2]$"},
            {"type": "Bridge", "id": "urn:ngsi-ld:Bridge:sanjo"},
        ],
        "q": "level>1.2|!level",
        "attrs": ["level", "name"],
    }
    response = await client.post(f"{API}/entityOperations/query", json=body, headers=JSON)
    assert response.status_code == 200, response.text
    assert [e["id"] for e in response.json()] == [*gauges(1, 2), "urn:ngsi-ld:Bridge:sanjo"]
    geo = {
        "type": "Query",
        "geoQ": {"geometry": "Point", "coordinates": BRIDGE, "georel": "near;maxDistance==100"},
    }
    near = await client.post(f"{API}/entityOperations/query", json=geo, headers=JSON)
    assert [e["id"] for e in near.json()] == gauges(0)
    wrong = await client.post(
        f"{API}/entityOperations/query", json={"type": "Other", "q": "a"}, headers=JSON
    )
    assert wrong.status_code == 400


async def test_query_joins_linked_entities(client: httpx.AsyncClient) -> None:
    await seed(client)
    page = await client.get(
        f"{API}/entities",
        params={"type": "RiverGauge", "q": "level<1.2", "join": "inline", "attrs": "bridge"},
    )
    (only,) = page.json()
    assert only["bridge"]["entity"]["id"] == "urn:ngsi-ld:Bridge:sanjo"
    flat = await client.get(
        f"{API}/entities", params={"type": "RiverGauge", "q": "level<2", "join": "flat"}
    )
    # Each entity once, the shared Bridge included, after the first entity linking to it.
    assert [e["id"] for e in flat.json()] == [
        gauges(0)[0],
        "urn:ngsi-ld:Bridge:sanjo",
        gauges(1)[0],
    ]


async def test_purge_deletes_or_trims_matching_entities(client: httpx.AsyncClient) -> None:
    await seed(client)
    too_wide = await client.delete(f"{API}/entities", params={"id": "urn:ngsi-ld:Bridge:sanjo"})
    assert too_wide.status_code == 400
    trimmed = await client.delete(f"{API}/entities", params={"type": "RiverGauge", "drop": "name"})
    assert trimmed.status_code == 204
    assert "name" not in (await client.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:g0")).json()
    purged = await client.delete(f"{API}/entities", params={"type": "RiverGauge", "q": "level>2"})
    assert purged.status_code == 204
    assert await ids(client, type="RiverGauge") == gauges(0, 1, 2)


async def test_discovery_follows_writes_and_compacts_names(client: httpx.AsyncClient) -> None:
    await seed(client)
    types = (await client.get(f"{API}/types")).json()
    assert types["typeList"] == ["Bridge", "RiverGauge"]
    info = (await client.get(f"{API}/types/RiverGauge")).json()
    assert info["entityCount"] == 5
    kinds = {
        detail["attributeName"]: detail["attributeTypes"] for detail in info["attributeDetails"]
    }
    assert kinds["bridge"] == ["Relationship"] and kinds["location"] == ["GeoProperty"]
    name = (await client.get(f"{API}/attributes/name")).json()
    assert name["attributeCount"] == 6
    assert name["typeNames"] == ["Bridge", "RiverGauge"]
    await client.delete(f"{API}/entities/urn:ngsi-ld:Bridge:sanjo")
    assert (await client.get(f"{API}/types")).json()["typeList"] == ["RiverGauge"]
    missing = await client.get(f"{API}/types/Bridge")
    assert missing.status_code == 404
    unknown = await client.get(f"{API}/types/RiverGauge", params={"details": "true"})
    assert unknown.status_code == 400
    assert unknown.json()["type"].endswith("/InvalidRequest")
    other_tenant = await client.get(f"{API}/types", headers={"NGSILD-Tenant": "osaka"})
    assert other_tenant.status_code == 404


async def test_order_by_value_and_distance(client: httpx.AsyncClient) -> None:
    await seed(client)
    assert await ids(client, type="RiverGauge", orderBy="level;desc", limit=2) == gauges(4, 3)
    origin = f"[{BRIDGE[0]},{BRIDGE[1] + 0.0181}]"  # just north of gauge 2
    nearest = await ids(
        client, type="RiverGauge", orderBy="location;dist-asc", orderFrom=origin, limit=3
    )
    assert nearest == gauges(2, 3, 1)
    refused = await client.get(
        f"{API}/entities", params={"type": "RiverGauge", "orderBy": "location;dist-asc"}
    )
    assert refused.status_code == 400


async def test_pick_of_attributes_leaves_out_entities_without_them(
    client: httpx.AsyncClient,
) -> None:
    await seed(client)
    picked = await client.get(
        f"{API}/entities", params={"type": "Bridge,RiverGauge", "pick": "level", "limit": 10}
    )
    assert [set(e) for e in picked.json()] == [{"level"}] * 5
    with_id = await client.get(
        f"{API}/entities", params={"type": "Bridge,RiverGauge", "pick": "id", "limit": 10}
    )
    assert len(with_id.json()) == 6


async def test_expand_values_lets_a_term_match_a_stored_vocab_iri(
    client: httpx.AsyncClient,
) -> None:
    body = {"id": "urn:ngsi-ld:Road:r1", "type": "Road", "category": {"vocab": "closed"}}
    assert (await client.post(f"{API}/entities", json=body, headers=JSON)).status_code == 201
    assert await ids(client, type="Road", q="category==closed") == []
    found = await ids(client, type="Road", q="category==closed", expandValues="category")
    assert found == ["urn:ngsi-ld:Road:r1"]


async def test_a_bad_pattern_is_explained_in_text(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/entities", params={"type": "Road", "idPattern": "("})
    assert response.status_code == 400
    assert "b'" not in response.json()["detail"]


async def test_unknown_query_parameters_are_invalid_requests(client: httpx.AsyncClient) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(
            method, f"{API}/entities", params={"type": "RiverGauge", "limt": "5"}
        )
        assert response.status_code == 400
        problem = response.json()
        assert problem["type"].endswith("/InvalidRequest")
        assert "limt" in problem["detail"]


async def test_q_can_follow_a_relationship_when_joining(client: httpx.AsyncClient) -> None:
    await seed(client)
    linked = {"type": "RiverGauge", "q": 'bridge{Bridge:name}=="Sanjo"', "join": "inline"}
    assert await ids(client, **linked) == gauges(0, 1, 2, 3, 4)
    assert await ids(client, **{**linked, "q": 'bridge{name}=="Gojo"'}) == []
    assert await ids(client, **{**linked, "q": 'bridge{RiverGauge:name}=="Sanjo"'}) == []
    without_join = await client.get(
        f"{API}/entities", params={"type": "RiverGauge", "q": 'bridge{name}=="Sanjo"'}
    )
    assert without_join.status_code == 400
    too_deep = await client.get(
        f"{API}/entities",
        params={**linked, "q": 'bridge{owner{name}}=="x"', "joinLevel": "1"},
    )
    assert too_deep.status_code == 400


async def test_purge_refuses_linked_entity_queries_and_deletes_nothing(
    client: httpx.AsyncClient,
) -> None:
    await seed(client)
    refused = await client.delete(
        f"{API}/entities", params={"type": "RiverGauge", "q": 'bridge{name}=="Sanjo"'}
    )
    assert refused.status_code == 400
    assert refused.json()["type"].endswith("/BadRequestData")
    assert len(await ids(client, type="RiverGauge")) == 5
