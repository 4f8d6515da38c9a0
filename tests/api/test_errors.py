"""One test per error type the API returns, as a client sees it (status + ProblemDetails)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import API, ContextServer, broker_client, gauge, link, make_settings

JSON = {"Content-Type": "application/json"}
ERR = "https://uri.etsi.org/ngsi-ld/errors/"


def problem(response: httpx.Response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == ERR + kind
    assert body["title"] and body["detail"]
    return body


async def test_malformed_json_is_invalid_request(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/entities", content=b"{not json", headers=JSON)
    problem(response, 400, "InvalidRequest")


async def test_a_documentation_placeholder_body_says_what_is_wrong(
    client: httpx.AsyncClient,
) -> None:
    batch = f"{API}/entityOperations/update"
    response = await client.post(batch, content=b"[...]", headers=JSON)
    detail = problem(response, 400, "InvalidRequest")["detail"]
    assert "line 1, column 2" in detail
    assert "'[...]'" in detail  # the text around the position is quoted
    assert "placeholder" in detail


async def test_a_json_error_quotes_where_it_is(client: httpx.AsyncClient) -> None:
    body = b'{"id": "urn:ngsi-ld:RiverGauge:1", "type": "RiverGauge", "level": 1.5,}'
    response = await client.post(f"{API}/entities", content=body, headers=JSON)
    detail = problem(response, 400, "InvalidRequest")["detail"]
    assert "line 1, column 70 (trailing comma is not allowed)" in detail
    assert '"level": 1.5,}' in detail
    assert "placeholder" not in detail


async def test_invalid_entity_is_bad_request_data(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/entities", json={"id": "nope", "type": "T"}, headers=JSON)
    assert "URI" in problem(response, 400, "BadRequestData")["detail"]


async def test_invalid_entity_id_in_path_is_bad_request_data(client: httpx.AsyncClient) -> None:
    problem(await client.get(f"{API}/entities/not-a-uri"), 400, "BadRequestData")


async def test_unknown_entity_is_resource_not_found(client: httpx.AsyncClient) -> None:
    problem(await client.get(f"{API}/entities/urn:ngsi-ld:X:1"), 404, "ResourceNotFound")


async def test_duplicate_is_already_exists(client: httpx.AsyncClient) -> None:
    await client.post(f"{API}/entities", json=gauge(), headers=JSON)
    problem(await client.post(f"{API}/entities", json=gauge(), headers=JSON), 409, "AlreadyExists")


async def test_unacceptable_accept_is_not_acceptable(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/entities/urn:ngsi-ld:X:1", headers={"Accept": "text/html"})
    problem(response, 406, "NotAcceptable")


async def test_wrong_content_type_is_unsupported_media_type(client: httpx.AsyncClient) -> None:
    response = await client.post(
        f"{API}/entities", content=b"{}", headers={"Content-Type": "text/plain"}
    )
    problem(response, 415, "UnsupportedMediaType")


async def test_body_without_content_length_is_411(client: httpx.AsyncClient) -> None:
    async def chunks():
        yield b'{"id": "urn:ngsi-ld:T:1", "type": "T"}'

    response = await client.post(f"{API}/entities", content=chunks(), headers=JSON)
    assert response.status_code == 411


async def test_body_over_the_cap_is_413(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, limits={"max_body_bytes": 100})
    async with broker_client(settings) as client:
        big = {"id": "urn:ngsi-ld:T:1", "type": "T", "note": "x" * 200}
        problem(
            await client.post(f"{API}/entities", json=big, headers=JSON),
            413,
            "RequestEntityTooLarge",
        )


async def test_unsupported_method_is_operation_not_supported(client: httpx.AsyncClient) -> None:
    problem(
        await client.put(f"{API}/entities/urn:ngsi-ld:X:1/attrs", json={}, headers=JSON),
        405,
        "OperationNotSupported",
    )


async def test_unreachable_context_is_ld_context_not_available(client: httpx.AsyncClient) -> None:
    headers = {**JSON, "Link": link("http://127.0.0.1:9/none.jsonld")}
    problem(
        await client.post(f"{API}/entities", json=gauge(), headers=headers),
        504,  # what the conformance suite expects (043_01, 028_07_02)
        "LdContextNotAvailable",
    )


async def test_invalid_remote_context_is_bad_request_data(
    client: httpx.AsyncClient, context_server: ContextServer
) -> None:
    headers = {**JSON, "Link": link(context_server.url("broken.jsonld"))}
    problem(
        await client.post(f"{API}/entities", json=gauge(), headers=headers), 400, "BadRequestData"
    )


async def test_context_in_both_link_and_body_is_bad_request_data(client: httpx.AsyncClient) -> None:
    body = {
        **gauge(),
        "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
    }
    headers = {"Content-Type": "application/ld+json", "Link": link("http://x.org/c")}
    problem(await client.post(f"{API}/entities", json=body, headers=headers), 400, "BadRequestData")


async def test_unknown_tenant_is_nonexistent_tenant(client: httpx.AsyncClient) -> None:
    response = await client.get(
        f"{API}/entities/urn:ngsi-ld:X:1", headers={"NGSILD-Tenant": "nowhere"}
    )
    problem(response, 404, "NonexistentTenant")


async def test_limit_over_maximum_is_too_many_results(client: httpx.AsyncClient) -> None:
    problem(
        await client.get(f"{API}/entities", params={"type": "T", "limit": 1001}),
        403,
        "TooManyResults",
    )


async def test_internal_errors_hide_their_details(tmp_path: Path) -> None:
    # A fault injected below the API (the service) must surface as a bare 500 ProblemDetails.
    async with broker_client(make_settings(tmp_path), raise_app_exceptions=False) as client:

        async def explode(*args: object, **kwargs: object) -> None:
            raise RuntimeError("secret stack detail")

        runtime = client._transport.app.state.runtime  # type: ignore[attr-defined]
        runtime.entities.retrieve = explode
        response = await client.get(f"{API}/entities/urn:ngsi-ld:X:1")
        body = problem(response, 500, "InternalError")
        assert "secret" not in response.text and "Traceback" not in response.text
        assert body["detail"]


@pytest.mark.parametrize("option", ["keyValues,bogus", "nonsense"])
async def test_unknown_options_are_invalid_requests(client: httpx.AsyncClient, option: str) -> None:
    await client.post(f"{API}/entities", json=gauge(), headers=JSON)
    response = await client.get(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1", params={"options": option}
    )
    problem(response, 400, "InvalidRequest")


async def test_a_json_ld_body_that_is_not_an_object_is_invalid_request(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        f"{API}/entities", content=b"[]", headers={"Content-Type": "application/ld+json"}
    )
    problem(response, 400, "InvalidRequest")


@pytest.mark.parametrize(
    "attribute",
    [
        {"type": ["Property"], "value": 1},
        {"type": {"x": 1}, "value": 1},
        {"type": "GeoProperty", "value": {"type": ["Point"], "coordinates": [1, 2]}},
    ],
)
async def test_a_type_that_is_not_a_string_is_bad_request_data_not_a_crash(
    client: httpx.AsyncClient, attribute: dict
) -> None:
    body = {"id": "urn:ngsi-ld:RiverGauge:odd", "type": "RiverGauge", "location": attribute}
    got = await client.post(f"{API}/entities", json=body, headers=JSON)
    assert got.status_code == 400, got.text
    assert got.json()["type"].endswith("/BadRequestData")


async def test_an_attribute_name_with_a_trailing_newline_is_refused(
    client: httpx.AsyncClient,
) -> None:
    body = {"id": "urn:ngsi-ld:RiverGauge:odd", "type": "RiverGauge", "level\n": 1}
    got = await client.post(f"{API}/entities", json=body, headers=JSON)
    assert got.status_code == 400, got.text
