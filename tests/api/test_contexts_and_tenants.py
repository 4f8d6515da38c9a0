"""User @contexts (Link header and body, fetched once) and tenant isolation over HTTP."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import API, ContextServer, gauge, link

JSON = {"Content-Type": "application/json"}


async def test_link_context_names_round_trip_and_are_fetched_once(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    city = {**JSON, "Link": link(context_server.url("city.jsonld"))}
    created = await asyncio.gather(
        *[
            client.post(f"{API}/entities", json=gauge(f"urn:ngsi-ld:RiverGauge:{n}"), headers=city)
            for n in range(10)
        ]
    )
    assert {r.status_code for r in created} == {201}
    assert context_server.hits["city.jsonld"] == 1
    with_context = (
        await client.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:0", headers=city)
    ).json()
    assert with_context["type"] == "RiverGauge" and "level" in with_context
    # Without the context the same attribute is shown by its full IRI.
    plain = (await client.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:0")).json()
    assert plain["type"] == "https://example.org/city#RiverGauge"
    assert "https://example.org/city#level" in plain


async def test_body_context_with_json_ld(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    body = {**gauge(), "@context": [context_server.url("city.jsonld")]}
    response = await client.post(
        f"{API}/entities", json=body, headers={"Content-Type": "application/ld+json"}
    )
    assert response.status_code == 201
    got = await client.get(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1",
        headers={"Accept": "application/ld+json", "Link": link(context_server.url("city.jsonld"))},
    )
    assert got.json()["@context"] == context_server.url("city.jsonld")
    assert got.json()["type"] == "RiverGauge"


async def test_tenants_are_isolated_and_case_insensitive(client: httpx.AsyncClient) -> None:
    kyoto = {**JSON, "NGSILD-Tenant": "Kyoto"}
    response = await client.post(f"{API}/entities", json=gauge(), headers=kyoto)
    assert response.status_code == 201
    assert response.headers["ngsild-tenant"] == "kyoto"
    url = f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1"
    assert (await client.get(url, headers={"NGSILD-Tenant": "kyoto"})).status_code == 200
    assert (await client.get(url)).status_code == 404  # default tenant sees nothing
    await client.post(
        f"{API}/entities",
        json={"id": "urn:ngsi-ld:X:1", "type": "X"},
        headers={**JSON, "NGSILD-Tenant": "osaka"},
    )
    assert (await client.get(url, headers={"NGSILD-Tenant": "osaka"})).status_code == 404
    listed = await client.get(
        f"{API}/entities", params={"type": "RiverGauge"}, headers={"NGSILD-Tenant": "osaka"}
    )
    assert listed.json() == []


async def test_path_tricks_in_tenant_names_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/entities", json=gauge(), headers={**JSON, "NGSILD-Tenant": "../../etc"}
    )
    assert response.status_code == 400
