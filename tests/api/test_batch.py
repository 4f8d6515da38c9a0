"""Batch entity operations over HTTP (/entityOperations/...), against a real SQLite store."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import API, CORE, ContextServer, gauge, link

JSON = {"Content-Type": "application/json"}
JSON_LD = {"Content-Type": "application/ld+json"}
ERRORS = "https://uri.etsi.org/ngsi-ld/errors/"
OPS = f"{API}/entityOperations"


def urn(name: str) -> str:
    return f"urn:ngsi-ld:RiverGauge:{name}"


async def batch(
    client: httpx.AsyncClient, op: str, body: Any, *, params: Any = None, **headers: str
) -> httpx.Response:
    return await client.post(f"{OPS}/{op}", json=body, params=params, headers={**JSON, **headers})


async def entity(client: httpx.AsyncClient, entity_id: str, **params: str) -> dict[str, Any]:
    got = await client.get(f"{API}/entities/{entity_id}", params=params)
    assert got.status_code == 200, got.text
    return got.json()  # type: ignore[no-any-return]


async def exists(client: httpx.AsyncClient, entity_id: str, **headers: str) -> bool:
    got = await client.get(f"{API}/entities/{entity_id}", headers=headers)
    return got.status_code == 200


def error_types(response: httpx.Response) -> list[tuple[str | None, str]]:
    return [(e["entityId"], e["error"]["type"]) for e in response.json()["errors"]]


async def test_create_all_new_is_201_with_their_ids(client: httpx.AsyncClient) -> None:
    response = await batch(client, "create", [gauge(urn("a")), gauge(urn("b"), level=2.5)])
    assert response.status_code == 201
    assert response.json() == [urn("a"), urn("b")]
    assert (await entity(client, urn("b")))["level"]["value"] == 2.5
    assert (await entity(client, urn("a")))["bridge"]["object"] == "urn:ngsi-ld:Bridge:sanjo"


async def test_create_mixed_is_207_and_the_valid_entities_are_created(
    client: httpx.AsyncClient,
) -> None:
    assert (await batch(client, "create", [gauge(urn("old"))])).status_code == 201
    members = [
        gauge(urn("new")),
        gauge(urn("old")),
        {"id": urn("typeless"), "level": 1},
        gauge(urn("new")),
        {"type": "RiverGauge"},
    ]
    response = await batch(client, "create", members)
    assert response.status_code == 207
    body = response.json()
    assert body["success"] == [urn("new")]
    assert error_types(response) == [
        (urn("old"), ERRORS + "AlreadyExists"),
        (urn("typeless"), ERRORS + "BadRequestData"),
        (urn("new"), ERRORS + "AlreadyExists"),
        (None, ERRORS + "BadRequestData"),
    ]
    first = body["errors"][0]["error"]
    assert first["title"] and urn("old") in first["detail"] and first["status"] == 409
    assert await exists(client, urn("new"))
    assert not await exists(client, urn("typeless"))


async def test_create_where_everything_fails_is_still_207(client: httpx.AsyncClient) -> None:
    response = await batch(client, "create", [{"id": "not a uri", "type": "RiverGauge"}])
    assert response.status_code == 207
    assert response.json()["success"] == []
    assert error_types(response) == [("not a uri", ERRORS + "BadRequestData")]


async def test_unusable_batch_bodies_are_400(client: httpx.AsyncClient) -> None:
    for op in ("create", "upsert", "update", "merge", "delete"):
        broken = await client.post(f"{OPS}/{op}", content=b"[{,}]", headers=JSON)
        assert broken.status_code == 400
        assert broken.json()["type"] == ERRORS + "InvalidRequest"
        for body in ([], {"id": urn("x"), "type": "RiverGauge"}, [None], "urn:a:b"):
            refused = await batch(client, op, body)
            assert refused.status_code == 400, (op, body)
            assert refused.json()["type"] == ERRORS + "BadRequestData"
    wrong_media = await client.post(
        f"{OPS}/create", content=b"[]", headers={"Content-Type": "text/plain"}
    )
    assert wrong_media.status_code == 415


async def test_a_null_member_fails_the_whole_batch(client: httpx.AsyncClient) -> None:
    response = await batch(client, "create", [gauge(urn("sibling")), None])
    assert response.status_code == 400
    assert response.json()["type"] == ERRORS + "BadRequestData"
    assert not await exists(client, urn("sibling"))
    numbers = await batch(client, "delete", [urn("sibling"), 7])
    assert numbers.status_code == 400


async def test_json_ld_members_carry_their_own_contexts(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    city = context_server.url("city.jsonld")
    members = [{**gauge(urn(f"city{n}")), "@context": [city, CORE]} for n in range(3)] + [
        {**gauge(urn("core")), "@context": CORE}
    ]
    response = await batch(client, "create", members, **JSON_LD)
    assert response.status_code == 201
    assert context_server.hits[city.rsplit("/", 1)[1]] == 1
    as_city = await client.get(f"{API}/entities/{urn('city1')}", headers={"Link": link(city)})
    assert as_city.json()["level"]["value"] == 1.5
    plain = await entity(client, urn("city1"))
    assert "https://example.org/city#level" in plain
    assert "level" in await entity(client, urn("core"))


async def test_member_contexts_must_follow_the_content_type(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    city = context_server.url("city.jsonld")
    without = await batch(
        client, "create", [{**gauge(urn("a")), "@context": city}, gauge(urn("b"))], **JSON_LD
    )
    assert without.status_code == 207
    assert without.json()["success"] == [urn("a")]
    assert error_types(without) == [(urn("b"), ERRORS + "BadRequestData")]
    inside_json = await batch(client, "upsert", [{**gauge(urn("c")), "@context": city}])
    assert inside_json.status_code == 207
    assert error_types(inside_json) == [(urn("c"), ERRORS + "BadRequestData")]
    both = await batch(
        client, "create", [{**gauge(urn("d")), "@context": city}], Link=link(city), **JSON_LD
    )
    assert both.status_code == 400
    assert both.json()["type"] == ERRORS + "BadRequestData"
    broken = await batch(
        client,
        "create",
        [{**gauge(urn(f"e{n}")), "@context": context_server.url("missing.jsonld")} for n in (1, 2)],
        **JSON_LD,
    )
    assert broken.status_code == 207
    assert [entity_id for entity_id, _ in error_types(broken)] == [urn("e1"), urn("e2")]
    assert context_server.hits["missing.jsonld"] == 1


async def test_link_header_gives_the_context_of_every_member(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    city = link(context_server.url("city.jsonld"))
    response = await batch(client, "create", [gauge(urn("l1")), gauge(urn("l2"))], Link=city)
    assert response.status_code == 201
    assert "https://example.org/city#level" in await entity(client, urn("l2"))


async def test_upsert_reports_only_the_entities_it_created(client: httpx.AsyncClient) -> None:
    first = await batch(client, "upsert", [gauge(urn("u1")), gauge(urn("u2"))])
    assert first.status_code == 201
    assert first.json() == [urn("u1"), urn("u2")]
    again = await batch(client, "upsert", [gauge(urn("u1"), level=3.0), gauge(urn("u2"))])
    assert again.status_code == 204
    assert again.content == b""
    assert (await entity(client, urn("u1")))["level"]["value"] == 3.0
    mixed = await batch(client, "upsert", [gauge(urn("u2")), gauge(urn("u3"))])
    assert mixed.status_code == 201
    assert mixed.json() == [urn("u3")]


async def test_upsert_replaces_by_default_and_appends_with_update(
    client: httpx.AsyncClient,
) -> None:
    await batch(client, "create", [gauge(urn("r")), gauge(urn("p"))])
    before = await entity(client, urn("r"), options="sysAttrs")
    slim = {"type": "RiverGauge", "level": 9.0, "colour": "red"}
    replaced = await batch(
        client, "upsert", [{"id": urn("r"), **slim}], params={"options": "replace"}
    )
    assert replaced.status_code == 204
    after = await entity(client, urn("r"), options="sysAttrs,keyValues")
    assert after["level"] == 9.0 and after["colour"] == "red"
    assert "alert" not in after and "bridge" not in after
    assert after["createdAt"] == before["createdAt"]
    updated = await batch(
        client, "upsert", [{"id": urn("p"), **slim}], params={"options": "update"}
    )
    assert updated.status_code == 204
    kept = await entity(client, urn("p"), options="keyValues")
    assert kept["level"] == 9.0 and kept["colour"] == "red" and kept["alert"] == "none"
    both = await batch(client, "upsert", [gauge(urn("p"))], params={"options": "replace,update"})
    assert both.status_code == 400


async def test_upsert_with_failures_is_207_listing_created_and_updated(
    client: httpx.AsyncClient,
) -> None:
    await batch(client, "create", [gauge(urn("there"))])
    members = [gauge(urn("fresh")), gauge(urn("there")), {"id": urn("bad")}]
    response = await batch(client, "upsert", members)
    assert response.status_code == 207
    assert response.json()["success"] == [urn("fresh"), urn("there")]
    assert error_types(response) == [(urn("bad"), ERRORS + "BadRequestData")]


async def test_the_same_entity_twice_is_changed_in_array_order(
    client: httpx.AsyncClient,
) -> None:
    members = [
        {"id": urn("twice"), "type": "RiverGauge", "level": 1, "old": True},
        {"id": urn("other"), "type": "RiverGauge", "level": 5},
        {"id": urn("twice"), "type": "RiverGauge", "level": 2},
        {"id": urn("twice"), "type": "RiverGauge", "level": 3},
    ]
    response = await batch(client, "upsert", members)
    assert response.status_code == 201
    assert response.json() == [urn("twice"), urn("other")]
    final = await entity(client, urn("twice"), options="keyValues")
    assert final["level"] == 3 and "old" not in final
    updates = [{"id": urn("twice"), "level": n} for n in range(4, 9)]
    assert (await batch(client, "update", updates)).status_code == 204
    assert (await entity(client, urn("twice"), options="keyValues"))["level"] == 8


async def test_update_appends_and_reports_what_no_overwrite_kept(
    client: httpx.AsyncClient,
) -> None:
    await batch(client, "create", [gauge(urn("k1")), gauge(urn("k2"))])
    added = await batch(
        client,
        "update",
        [{"id": urn("k1"), "type": "RiverGauge", "colour": "blue", "level": 4.0}],
    )
    assert added.status_code == 204
    k1 = await entity(client, urn("k1"), options="keyValues")
    assert k1["colour"] == "blue" and k1["level"] == 4.0 and k1["alert"] == "none"
    kept = await batch(
        client,
        "update",
        [{"id": urn("k2"), "level": 7.0, "colour": "green"}, {"id": urn("k1"), "depth": 2}],
        params={"options": "noOverwrite"},
    )
    assert kept.status_code == 207
    body = kept.json()
    assert body["success"] == [urn("k1")]
    assert error_types(kept) == [(urn("k2"), ERRORS + "AlreadyExists")]
    assert body["errors"][0]["error"]["notUpdated"][0]["attributeName"] == "level"
    k2 = await entity(client, urn("k2"), options="keyValues")
    assert k2["level"] == 1.5 and k2["colour"] == "green"


async def test_update_of_missing_or_unnamed_entities_fails_per_member(
    client: httpx.AsyncClient,
) -> None:
    await batch(client, "create", [gauge(urn("here"))])
    members = [{"id": urn("here"), "alert": "flood"}, {"id": urn("gone"), "alert": "x"}, {"a": 1}]
    response = await batch(client, "update", members)
    assert response.status_code == 207
    assert response.json()["success"] == [urn("here")]
    assert error_types(response) == [
        (urn("gone"), ERRORS + "ResourceNotFound"),
        (None, ERRORS + "BadRequestData"),
    ]
    assert (await entity(client, urn("here"), options="keyValues"))["alert"] == "flood"
    nulls = await batch(client, "update", [{"id": urn("here"), "alert": {"value": None}}])
    assert error_types(nulls) == [(urn("here"), ERRORS + "BadRequestData")]


async def test_merge_patches_and_null_deletes(client: httpx.AsyncClient) -> None:
    await batch(client, "create", [gauge(urn("m1")), gauge(urn("m2"))])
    members = [
        {"id": urn("m1"), "level": {"value": 2.2}, "alert": "urn:ngsi-ld:null"},
        {"id": urn("m2"), "name": {"languageMap": {"fr": "Kamo"}}},
    ]
    response = await batch(client, "merge", members)
    assert response.status_code == 204
    m1 = await entity(client, urn("m1"))
    assert m1["level"]["value"] == 2.2 and m1["level"]["unitCode"] == "MTR"
    assert "alert" not in m1
    m2 = await entity(client, urn("m2"))
    assert m2["name"]["languageMap"]["fr"] == "Kamo"
    missing = await batch(client, "merge", [members[1], {"id": urn("nowhere"), "alert": "x"}])
    assert missing.status_code == 207
    assert missing.json()["success"] == [urn("m2")]
    assert error_types(missing) == [(urn("nowhere"), ERRORS + "ResourceNotFound")]


async def test_delete_is_204_or_207_naming_what_was_not_there(
    client: httpx.AsyncClient,
) -> None:
    await batch(client, "create", [gauge(urn(f"d{n}")) for n in range(3)])
    done = await batch(client, "delete", [urn("d0"), urn("d1")], **JSON_LD)
    assert done.status_code == 204
    assert not await exists(client, urn("d0"))
    partly = await batch(client, "delete", [urn("d2"), urn("d2"), urn("d9"), "nope"])
    assert partly.status_code == 207
    assert partly.json()["success"] == [urn("d2")]
    assert error_types(partly) == [
        (urn("d2"), ERRORS + "ResourceNotFound"),
        (urn("d9"), ERRORS + "ResourceNotFound"),
        ("nope", ERRORS + "BadRequestData"),
    ]


async def test_trailing_slash_and_options_are_accepted(client: httpx.AsyncClient) -> None:
    await batch(client, "create", [gauge(urn("slash"))])
    response = await client.post(
        f"{OPS}/upsert/?options=update",
        json=[{"id": urn("slash"), "type": "RiverGauge", "colour": "teal"}],
        headers=JSON,
    )
    assert response.status_code == 204
    after = await entity(client, urn("slash"), options="keyValues")
    assert after["colour"] == "teal" and after["alert"] == "none"
    unknown = await batch(client, "update", [gauge(urn("slash"))], params={"options": "bogus"})
    assert unknown.status_code == 400


async def test_tenants_create_on_write_and_must_exist_otherwise(
    client: httpx.AsyncClient,
) -> None:
    kyoto = {"NGSILD-Tenant": "kyoto"}
    created = await batch(client, "create", [gauge(urn("t1"))], **kyoto)
    assert created.status_code == 201
    assert created.headers["ngsild-tenant"] == "kyoto"
    assert await exists(client, urn("t1"), **kyoto)
    assert not await exists(client, urn("t1"))
    upserted = await batch(client, "upsert", [gauge(urn("t2"))], **{"NGSILD-Tenant": "osaka"})
    assert upserted.status_code == 201
    assert await exists(client, urn("t2"), **{"NGSILD-Tenant": "osaka"})
    nara = {"NGSILD-Tenant": "nara"}
    for op, body in (
        ("update", [{"id": urn("t1"), "level": 1}]),
        ("merge", [{"id": urn("t1"), "level": 1}]),
        ("delete", [urn("t1")]),
    ):
        refused = await batch(client, op, body, **nara)
        assert refused.status_code == 404, op
        assert refused.json()["type"] == ERRORS + "NonexistentTenant"


async def test_a_large_batch_goes_through_in_one_request(client: httpx.AsyncClient) -> None:
    members = [gauge(urn(f"bulk{n}"), level=n) for n in range(300)]
    created = await batch(client, "upsert", members)
    assert created.status_code == 201
    assert len(created.json()) == 300
    again = await batch(client, "upsert", [gauge(urn(f"bulk{n}"), level=-n) for n in range(300)])
    assert again.status_code == 204
    for n in range(0, 300, 37):
        assert (await entity(client, urn(f"bulk{n}"), options="keyValues"))["level"] == -n
    deleted = await batch(client, "delete", [urn(f"bulk{n}") for n in range(300)])
    assert deleted.status_code == 204
