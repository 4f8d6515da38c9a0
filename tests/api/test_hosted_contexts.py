"""Hosted @contexts over HTTP: add, serve, list, delete, per tenant, used by requests offline."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import API, CORE, broker_client, gauge, link, make_settings

JSON = {"Content-Type": "application/json"}
LD = {"Content-Type": "application/ld+json"}
CITY = {
    "city": "https://example.org/city#",
    "RiverGauge": "city:RiverGauge",
    "level": "city:level",
}
PROBLEM = "https://uri.etsi.org/ngsi-ld/errors/"


async def host(client: httpx.AsyncClient, context: object, tenant: str | None = None) -> str:
    """Add ``context``; its path (the Location header)."""
    headers = {**JSON, **({"NGSILD-Tenant": tenant} if tenant else {})}
    response = await client.post(
        f"{API}/jsonldContexts", json={"@context": context}, headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.content == b""
    return response.headers["Location"]


async def test_a_hosted_context_is_served_back_with_its_details(client: httpx.AsyncClient) -> None:
    path = await host(client, CITY)
    assert path.startswith("/ngsi-ld/v1/jsonldContexts/")
    served = await client.get(path)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "application/json"
    assert served.json() == {"@context": CITY}
    details = (await client.get(path, params={"details": "true"})).json()
    assert details["URL"] == f"http://toshi{path}"
    assert details["localId"] == path.rsplit("/", 1)[1]
    assert details["kind"] == "Hosted"
    assert details["createdAt"].endswith("Z")
    assert set(details) == {"URL", "localId", "kind", "createdAt"}


async def test_entities_use_a_hosted_context_by_its_url_whatever_the_host(
    client: httpx.AsyncClient,
) -> None:
    path = await host(client, CITY)
    # No server answers at this name: the broker takes the document from its own store.
    elsewhere = f"http://broker.town.invalid:9090{path}"
    created = await client.post(
        f"{API}/entities", json=gauge(), headers={**JSON, "Link": link(elsewhere)}
    )
    assert created.status_code == 201, created.text
    plain = (await client.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1")).json()
    assert plain["type"] == "https://example.org/city#RiverGauge"
    # A relative URL in a body @context names this broker too.
    body = {**gauge("urn:ngsi-ld:RiverGauge:kamo-2"), "@context": path}
    assert (await client.post(f"{API}/entities", json=body, headers=LD)).status_code == 201
    shown = await client.get(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-2", headers={"Link": link(elsewhere)}
    )
    assert shown.json()["type"] == "RiverGauge" and "level" in shown.json()


async def test_a_hosted_context_may_name_other_hosted_ones(client: httpx.AsyncClient) -> None:
    base = await host(client, CITY)
    extended = await host(client, [base, {"bridge": "https://example.org/city#bridge"}])
    created = await client.post(
        f"{API}/entities",
        json=gauge(),
        headers={**JSON, "Link": link(f"http://x.invalid{extended}")},
    )
    assert created.status_code == 201, created.text
    plain = (await client.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1")).json()
    assert "https://example.org/city#bridge" in plain and "https://example.org/city#level" in plain


async def test_a_deleted_context_is_gone_for_requests_too(client: httpx.AsyncClient) -> None:
    path = await host(client, CITY)
    body = {**gauge(), "@context": path}
    assert (await client.post(f"{API}/entities", json=body, headers=LD)).status_code == 201
    deleted = await client.delete(path)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await client.get(path)).status_code == 404
    again = await client.post(
        f"{API}/entities", json={**body, "id": "urn:ngsi-ld:RiverGauge:kamo-9"}, headers=LD
    )
    assert again.status_code == 400
    assert "no @context is hosted" in again.json()["detail"]
    assert (await client.delete(path)).status_code == 404


async def test_list_shows_hosted_urls_then_cached_ones(client: httpx.AsyncClient) -> None:
    first, second = await host(client, CITY), await host(client, {"x": "urn:x"})
    urls = (await client.get(f"{API}/jsonldContexts")).json()
    assert urls[:2] == [f"http://toshi{first}", f"http://toshi{second}"]
    assert CORE in urls
    hosted = (await client.get(f"{API}/jsonldContexts", params={"kind": "Hosted"})).json()
    assert hosted == urls[:2]
    detailed = await client.get(f"{API}/jsonldContexts", params={"details": "true"})
    kinds = {entry["URL"]: entry["kind"] for entry in detailed.json()}
    assert kinds[f"http://toshi{first}"] == "Hosted" and kinds[CORE] == "Cached"
    none = await client.get(f"{API}/jsonldContexts", params={"kind": "ImplicitlyCreated"})
    assert none.json() == []


@pytest.mark.parametrize("params", [{"kind": "other"}, {"details": "other"}])
async def test_list_parameters_are_checked(client: httpx.AsyncClient, params: dict) -> None:
    response = await client.get(f"{API}/jsonldContexts", params=params)
    assert response.status_code == 400
    assert response.json()["type"] == PROBLEM + "BadRequestData"


@pytest.mark.parametrize(
    ("content", "status", "problem"),
    [
        (b'{"@context": {"a": "urn:a"} "b": 1}', 400, "InvalidRequest"),
        (b'{"a": "urn:a"}', 400, "InvalidRequest"),
        (b'{"@context": 42}', 400, "BadRequestData"),
        (b'{"@context": ["https://example.org/ctx.jsonld", 7]}', 400, "BadRequestData"),
        (b'{"@context": {"level": {"@id": 42}}}', 400, "BadRequestData"),
    ],
)
async def test_what_is_no_context_is_refused_and_not_stored(
    client: httpx.AsyncClient, content: bytes, status: int, problem: str
) -> None:
    response = await client.post(f"{API}/jsonldContexts", content=content, headers=JSON)
    assert response.status_code == status
    assert response.json()["type"] == PROBLEM + problem
    assert "Location" not in response.headers
    hosted = await client.get(f"{API}/jsonldContexts", params={"kind": "Hosted"})
    assert hosted.json() == []


async def test_adding_needs_a_json_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/jsonldContexts", content=b"<ctx/>", headers={"Content-Type": "text/xml"}
    )
    assert response.status_code == 415


async def test_contexts_naming_unreachable_urls_can_still_be_added(
    client: httpx.AsyncClient,
) -> None:
    # An offline network adds its contexts before it can reach what they name, if ever.
    path = await host(client, ["https://unreachable.invalid/ctx.jsonld", CITY])
    assert (await client.get(path)).status_code == 200


async def test_size_and_count_are_capped(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", contexts={"max_hosted": 2, "hosted_max_bytes": 200})
    async with broker_client(settings) as client:
        big = {f"term{n}": f"https://example.org/vocabulary#term{n}" for n in range(10)}
        too_big = await client.post(f"{API}/jsonldContexts", json={"@context": big}, headers=JSON)
        assert too_big.status_code == 413
        assert "TOSHI_CONTEXTS__HOSTED_MAX_BYTES" in too_big.json()["detail"]
        await host(client, {"a": "urn:a"})
        await host(client, {"b": "urn:b"})
        third = await client.post(
            f"{API}/jsonldContexts", json={"@context": {"c": "urn:c"}}, headers=JSON
        )
        assert third.status_code == 400
        assert "TOSHI_CONTEXTS__MAX_HOSTED" in third.json()["detail"]
        await host(client, {"c": "urn:c"}, tenant="other")  # the cap is per tenant


async def test_hosted_contexts_are_private_to_their_tenant(client: httpx.AsyncClient) -> None:
    path = await host(client, {"Secret": "urn:kyoto:Secret"}, tenant="kyoto")
    osaka = {"NGSILD-Tenant": "osaka"}
    assert (await client.get(path, headers=osaka)).status_code == 404
    assert (await client.get(path)).status_code == 404  # the default tenant is another one
    listed = await client.get(f"{API}/jsonldContexts", params={"details": "true"}, headers=osaka)
    assert listed.status_code == 200 and path.rsplit("/", 1)[1] not in listed.text
    assert (await client.delete(path, headers=osaka)).status_code == 404
    kyoto = {"NGSILD-Tenant": "kyoto"}
    assert (await client.get(path, headers=kyoto)).json() == {
        "@context": {"Secret": "urn:kyoto:Secret"}
    }
    assert (await client.delete(path, headers=kyoto)).status_code == 204


async def test_hosted_contexts_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    async with broker_client(settings) as client:
        path = await host(client, CITY)
        kyoto = await host(client, {"x": "urn:x"}, tenant="kyoto")
    async with broker_client(settings) as client:
        assert (await client.get(path)).json() == {"@context": CITY}
        served = await client.get(kyoto, headers={"NGSILD-Tenant": "kyoto"})
        assert served.json() == {"@context": {"x": "urn:x"}}
        body = {**gauge(), "@context": path}
        assert (await client.post(f"{API}/entities", json=body, headers=LD)).status_code == 201


async def test_deleting_needs_an_existing_id_and_reload_only_suits_cached_ones(
    client: httpx.AsyncClient,
) -> None:
    path = await host(client, CITY)
    assert (await client.delete(f"{API}/jsonldContexts/nowhere")).status_code == 404
    for target in (f"{API}/jsonldContexts/nowhere", path):
        refused = await client.delete(target, params={"reload": "true"})
        assert refused.status_code == 400
        assert refused.json()["type"] == PROBLEM + "BadRequestData"
    assert (await client.delete(path, params={"reload": "xxx"})).status_code == 400
    assert (await client.get(path)).status_code == 200
