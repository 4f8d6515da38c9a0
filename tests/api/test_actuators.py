"""Commands to actuators behind a FIWARE IoT Agent (issue 14 point 5), at the API level.

An IoT Agent registers each device with commands as an exclusive context source for those
attributes, shaped as iotagent-node-lib sends it (``POST /csourceRegistrations/``, JSON-LD
with the @context inline, its service as ``NGSILD-Tenant``, ``contextSourceInfo`` naming
``jsonldContext``). A real HTTP server stands in for the agent's north port and records what
Toshi forwards; tests/iotagent run the real agent end to end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, CORE, ContextServer, broker_client, link, make_settings

TENANT = "osaka"
GATE = "urn:ngsi-ld:Sluice:gate1"
IN_TENANT = {"NGSILD-Tenant": TENANT}


@dataclass
class Forwarded:
    method: str
    path: str
    headers: dict[str, str]
    body: object


@dataclass
class Agent:
    """The agent's north port: records each request, answers 204 as the agent does."""

    url: str
    received: list[Forwarded] = field(default_factory=list)


@pytest.fixture
async def agent() -> AsyncIterator[Agent]:
    holder: list[Agent] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
                start, *lines = head.split("\r\n")
                method, target, _ = start.split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines if line)
                }
                raw = await reader.readexactly(int(headers.get("content-length", "0")))
                body = json.loads(raw) if raw else None
                holder[0].received.append(Forwarded(method, target, headers, body))
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    holder.append(Agent(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"))
    async with server:
        yield holder[0]


def gate_registration(agent: Agent, *, context: str, speaks: str) -> dict[str, object]:
    """The sluice gate's command ``open`` registered as the agent's, which speaks ``speaks``."""
    return {
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "Sluice", "id": GATE}], "propertyNames": ["open"]}],
        "mode": "exclusive",
        "operations": ["updateOps"],
        "endpoint": agent.url,
        "contextSourceInfo": [{"key": "jsonldContext", "value": speaks}],
        "@context": context,
    }


async def register_device(client: httpx.AsyncClient, agent: Agent) -> None:
    """The registration iotagent-node-lib 4 sends for a device with the command ``open``."""
    body = gate_registration(agent, context=CORE, speaks=CORE)
    headers = {
        **IN_TENANT,
        "fiware-service": TENANT,
        "fiware-servicepath": "/",
        "NGSILD-Path": "/",
        "Content-Type": "application/ld+json",
    }
    made = await client.post(f"{API}/csourceRegistrations/", json=body, headers=headers)
    assert made.status_code == 201, made.text
    assert made.headers["Location"].startswith(f"{API}/csourceRegistrations/")


async def test_a_command_reaches_the_agent_although_the_entity_is_not_here_yet(
    client: httpx.AsyncClient, agent: Agent
) -> None:
    await register_device(client, agent)
    command = {"type": "Property", "value": "0.5"}
    sent = await client.patch(f"{API}/entities/{GATE}/attrs/open", json=command, headers=IN_TENANT)
    assert sent.status_code == 204, sent.text
    (forwarded,) = agent.received
    assert (forwarded.method, forwarded.path) == ("PATCH", f"{API}/entities/{GATE}/attrs/open")
    assert forwarded.body == command


async def test_a_command_goes_to_the_agent_and_not_into_the_local_entity(
    client: httpx.AsyncClient, agent: Agent
) -> None:
    await register_device(client, agent)
    status = {"id": GATE, "type": "Sluice", "open_status": {"type": "Property", "value": "OK"}}
    upserted = await client.post(
        f"{API}/entityOperations/upsert/",
        params={"options": "update"},
        json=[status],
        headers=IN_TENANT,
    )
    assert upserted.status_code in (201, 204), upserted.text
    sent = await client.patch(
        f"{API}/entities/{GATE}/attrs/open", json={"value": "1"}, headers=IN_TENANT
    )
    assert sent.status_code == 204, sent.text
    (forwarded,) = agent.received
    assert forwarded.body == {"value": "1"}
    local = (await client.get(f"{API}/entities/{GATE}", headers=IN_TENANT)).json()
    assert "open" not in local
    assert local["open_status"]["value"] == "OK"


async def test_the_forward_names_the_tenant_and_not_the_agents_instructions(
    tmp_path: Path, agent: Agent
) -> None:
    settings = make_settings(tmp_path / "data", federation={"tenantless": "request"})
    async with broker_client(settings) as client:
        await register_device(client, agent)
        patch = {"value": 1}
        await client.patch(f"{API}/entities/{GATE}/attrs/open", json=patch, headers=IN_TENANT)
    (forwarded,) = agent.received
    # The agent looks the device up in the service it was provisioned in: the tenant's name.
    assert forwarded.headers["ngsild-tenant"] == TENANT
    # "jsonldContext" tells the broker which @context the source speaks; it is no header.
    assert "jsonldcontext" not in forwarded.headers


async def test_by_default_a_tenantless_registration_forwards_to_the_sources_default_tenant(
    client: httpx.AsyncClient, agent: Agent
) -> None:
    # GS CIM 009 §5.2.9: without `tenant` in the registration the default tenant is assumed.
    await register_device(client, agent)
    await client.patch(f"{API}/entities/{GATE}/attrs/open", json={"value": 1}, headers=IN_TENANT)
    (forwarded,) = agent.received
    assert "ngsild-tenant" not in forwarded.headers


async def test_an_update_of_attributes_splits_command_and_local_attribute(
    client: httpx.AsyncClient, agent: Agent
) -> None:
    await register_device(client, agent)
    entity = {"id": GATE, "type": "Sluice", "note": {"type": "Property", "value": "-"}}
    assert (await client.post(f"{API}/entities", json=entity, headers=IN_TENANT)).status_code == 201
    both = {"open": {"type": "Property", "value": "1"}, "note": {"type": "Property", "value": "x"}}
    sent = await client.patch(f"{API}/entities/{GATE}/attrs", json=both, headers=IN_TENANT)
    assert sent.status_code == 204, sent.text
    (forwarded,) = agent.received
    assert (forwarded.method, forwarded.path) == ("PATCH", f"{API}/entities/{GATE}/attrs")
    assert forwarded.body == {"open": both["open"]}
    local = (await client.get(f"{API}/entities/{GATE}", headers=IN_TENANT)).json()
    assert local["note"]["value"] == "x"
    assert "open" not in local


SLUICE = {
    "@context": {
        "sluice": "https://example.org/sluice#",
        "Sluice": "sluice:Sluice",
        "open": "sluice:open",
    }
}
APP = {"@context": {"s": "https://example.org/sluice#", "Gate": "s:Sluice", "aperture": "s:open"}}


async def register_with_context(
    client: httpx.AsyncClient, agent: Agent, context: str, speaks: str | None = None
) -> None:
    body = gate_registration(agent, context=context, speaks=speaks or context)
    headers = {**IN_TENANT, "Content-Type": "application/ld+json"}
    made = await client.post(f"{API}/csourceRegistrations/", json=body, headers=headers)
    assert made.status_code == 201, made.text


async def test_a_command_is_named_as_the_agent_names_it(
    client: httpx.AsyncClient, agent: Agent, context_server: ContextServer
) -> None:
    # The app's @context calls the command "aperture"; the agent's (its jsonldContext) "open".
    context_server.documents.update({"sluice.jsonld": SLUICE, "app.jsonld": APP})
    await register_with_context(client, agent, context_server.url("sluice.jsonld"))
    as_app = {**IN_TENANT, "Link": link(context_server.url("app.jsonld"))}
    one = await client.patch(
        f"{API}/entities/{GATE}/attrs/aperture", json={"value": "0.5"}, headers=as_app
    )
    assert one.status_code == 204, one.text
    several = await client.patch(
        f"{API}/entities/{GATE}/attrs", json={"aperture": {"value": "1"}}, headers=as_app
    )
    assert several.status_code == 204, several.text
    first, second = agent.received
    assert first.path == f"{API}/entities/{GATE}/attrs/open"
    assert first.body == {"value": "0.5"}
    assert second.body == {"open": {"value": "1"}}
    for forwarded in (first, second):
        assert forwarded.headers["link"] == link(context_server.url("sluice.jsonld"))


async def test_an_agent_whose_context_cannot_be_had_fails_its_part_only(
    client: httpx.AsyncClient, agent: Agent, context_server: ContextServer
) -> None:
    context_server.documents["sluice.jsonld"] = SLUICE
    sluice = context_server.url("sluice.jsonld")
    await register_with_context(client, agent, sluice, speaks=context_server.url("gone.jsonld"))
    sent = await client.patch(
        f"{API}/entities/{GATE}/attrs/open",
        json={"value": "1"},
        headers={**IN_TENANT, "Link": link(sluice)},
    )
    assert sent.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable"
    assert agent.received == []
