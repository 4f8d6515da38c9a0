"""Cached @contexts over HTTP: what requests downloaded is listed, served, deleted, reloaded."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import httpx

from tests.conftest import API, CORE, ContextServer, broker_client, gauge, link, make_settings

JSON = {"Content-Type": "application/json"}
PROBLEM = "https://uri.etsi.org/ngsi-ld/errors/"


def by_url(url: str) -> str:
    return f"{API}/jsonldContexts/{quote(url, safe='')}"


async def create(client: httpx.AsyncClient, context_url: str, entity_id: str) -> httpx.Response:
    headers = {**JSON, "Link": link(context_url)}
    return await client.post(f"{API}/entities", json=gauge(entity_id), headers=headers)


async def test_downloaded_contexts_are_listed_as_cached_with_their_use(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    city = context_server.url("city.jsonld")
    assert (await create(client, city, "urn:ngsi-ld:RiverGauge:1")).status_code == 201
    listed = await client.get(f"{API}/jsonldContexts", params={"kind": "Cached", "details": "true"})
    entry = next(item for item in listed.json() if item["URL"] == city)
    assert entry["kind"] == "Cached" and entry["localId"] and entry["createdAt"].endswith("Z")
    assert entry["numberOfHits"] == 0  # the download itself is no use of the copy
    assert (await create(client, city, "urn:ngsi-ld:RiverGauge:2")).status_code == 201
    details = (await client.get(by_url(city), params={"details": "true"})).json()
    assert details["numberOfHits"] == 2  # the second request, and this serving
    assert details["lastUsage"] >= details["createdAt"]
    assert context_server.hits["city.jsonld"] == 1
    served = await client.get(f"{API}/jsonldContexts/{details['localId']}")
    assert served.json() == context_server.documents["city.jsonld"]


async def test_a_deleted_cached_context_is_downloaded_again_when_next_used(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    city = context_server.url("city.jsonld")
    await create(client, city, "urn:ngsi-ld:RiverGauge:1")
    assert (await client.delete(by_url(city))).status_code == 204
    assert (await client.get(by_url(city))).status_code == 404
    assert (await create(client, city, "urn:ngsi-ld:RiverGauge:2")).status_code == 201
    assert context_server.hits["city.jsonld"] == 2


async def test_reload_takes_the_new_version_and_a_failed_one_keeps_the_old(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    city = context_server.url("city.jsonld")
    await create(client, city, "urn:ngsi-ld:RiverGauge:1")
    context_server.documents["city.jsonld"] = {
        "@context": {"RiverGauge": "https://example.org/city-v2#RiverGauge"}
    }
    assert (await client.delete(by_url(city), params={"reload": "true"})).status_code == 204
    await create(client, city, "urn:ngsi-ld:RiverGauge:2")
    second = (await client.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:2")).json()
    assert second["type"] == "https://example.org/city-v2#RiverGauge"
    del context_server.documents["city.jsonld"]  # the server no longer has it
    failed = await client.delete(by_url(city), params={"reload": "true"})
    assert failed.status_code == 504
    assert failed.json()["type"] == PROBLEM + "LdContextNotAvailable"
    kept = await client.get(by_url(city), params={"details": "true"})
    assert kept.status_code == 200 and kept.json()["kind"] == "Cached"
    assert (await client.delete(by_url(city))).status_code == 204


async def test_core_contexts_are_built_in_and_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    served = await client.get(by_url(CORE))
    assert served.status_code == 200 and "@context" in served.json()
    details = (await client.get(by_url(CORE), params={"details": "true"})).json()
    assert details["kind"] == "Cached"
    for params in ({}, {"reload": "false"}):
        refused = await client.delete(by_url(CORE), params=params)
        assert refused.status_code == 400
        assert refused.json()["type"] == PROBLEM + "BadRequestData"
    # Reloading a built-in context has nothing to download: it ships with Toshi.
    assert (await client.delete(by_url(CORE), params={"reload": "true"})).status_code == 204
    assert (await client.get(by_url(CORE))).status_code == 200


async def test_cached_contexts_are_seen_from_every_tenant(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    city = context_server.url("city.jsonld")
    await create(client, city, "urn:ngsi-ld:RiverGauge:1")
    osaka = {"NGSILD-Tenant": "osaka"}
    assert city in (await client.get(f"{API}/jsonldContexts", headers=osaka)).json()
    assert (await client.get(by_url(city), headers=osaka)).status_code == 200


async def test_a_mirrored_context_is_downloaded_from_the_mirror_and_keeps_its_url(
    tmp_path: Path, context_server: ContextServer
) -> None:
    # An installation that cannot reach a public host downloads its @contexts from a copy.
    public = "https://models.example.org/city.jsonld"
    mirrors = {"https://models.example.org/": context_server.base + "/"}
    settings = make_settings(tmp_path / "data", contexts={"mirrors": mirrors})
    async with broker_client(settings) as client:
        assert (await create(client, public, "urn:ngsi-ld:RiverGauge:1")).status_code == 201
        assert context_server.hits["city.jsonld"] == 1
        listed = await client.get(f"{API}/jsonldContexts", params={"kind": "Cached"})
        assert public in listed.json()
        assert context_server.url("city.jsonld") not in listed.json()
        served = await client.get(by_url(public))
        assert served.json() == context_server.documents["city.jsonld"]
        elsewhere = await create(client, "https://other.example.org/x.jsonld", "urn:x:2")
        assert elsewhere.status_code == 504  # not mirrored: fetched from its own host
