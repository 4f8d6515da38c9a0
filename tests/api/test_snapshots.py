"""Snapshots over HTTP (GS CIM 009 v1.9.1 §5.16, §6.3.22), against a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.conftest import API, broker_client, make_settings

JSON = {"Content-Type": "application/json"}
FAST, SLOW = "urn:ngsi-ld:Vehicle:fast", "urn:ngsi-ld:Vehicle:slow"


async def vehicles(client: httpx.AsyncClient) -> None:
    for entity_id, speed in ((FAST, 80), (SLOW, 30)):
        body = {"id": entity_id, "type": "Vehicle", "speed": speed}
        assert (await client.post(f"{API}/entities", json=body, headers=JSON)).status_code == 201


async def snapshot(client: httpx.AsyncClient, **query: object) -> str:
    body = {"type": "Snapshot", "snapshotQueries": [{"type": "Query", **query}]}
    created = await client.post(f"{API}/snapshots", json=body, headers=JSON)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    for _ in range(100):
        shown = (await client.get(location)).json()
        if shown["snapshotStatus"] != "preparing":
            return location
        await asyncio.sleep(0.02)
    raise AssertionError("the snapshot stayed preparing")


async def test_a_snapshot_freezes_what_its_queries_select(client: httpx.AsyncClient) -> None:
    await vehicles(client)
    location = await snapshot(client, entities=[{"type": "Vehicle"}], q="speed>50")
    shown = (await client.get(location)).json()
    assert shown["snapshotStatus"] == "success" and shown["snapshotPriority"] == 5
    assert shown["snapshotQueriesDetails"] == [{"resultStatus": "success"}]
    assert shown["lastUsedAt"]
    frozen = {"NGSILD-Snapshot": shown["id"]}
    listed = await client.get(f"{API}/entities", params={"type": "Vehicle"}, headers=frozen)
    assert [e["id"] for e in listed.json()] == [FAST]
    assert listed.headers["ngsild-snapshot"] == shown["id"]
    slower = {"speed": {"type": "Property", "value": 10}}
    assert (
        await client.patch(f"{API}/entities/{FAST}/attrs", json=slower, headers=JSON)
    ).status_code == 204
    kept = await client.get(f"{API}/entities/{FAST}", headers=frozen)
    assert kept.json()["speed"]["value"] == 80
    assert (await client.get(f"{API}/entities/{FAST}")).json()["speed"]["value"] == 10


async def test_bad_snapshots_and_unknown_ones_are_refused(client: httpx.AsyncClient) -> None:
    empty = await client.post(f"{API}/snapshots", json={"type": "Snapshot"}, headers=JSON)
    assert empty.status_code == 400
    temporal = {
        "type": "Snapshot",
        "snapshotQueries": [
            {"type": "Query", "entities": [{"type": "V"}], "temporalQ": {"timerel": "after"}}
        ],
    }
    assert (await client.post(f"{API}/snapshots", json=temporal, headers=JSON)).status_code == 400
    unknown = {"NGSILD-Snapshot": "urn:ngsi-ld:Snapshot:absent"}
    got = await client.get(f"{API}/entities", params={"type": "V"}, headers=unknown)
    assert got.status_code == 404


async def test_update_clone_delete_and_purge(client: httpx.AsyncClient) -> None:
    await vehicles(client)
    location = await snapshot(client, entities=[{"type": "Vehicle"}])
    updated = await client.patch(location, json={"snapshotPriority": 2}, headers=JSON)
    assert updated.status_code == 200 and updated.json()["snapshotPriority"] == 2
    read_only = await client.patch(location, json={"snapshotQueries": []}, headers=JSON)
    assert read_only.status_code == 400
    cloned = await client.post(f"{location}/clone", json={"snapshotPriority": 9}, headers=JSON)
    assert cloned.status_code == 201
    clone = cloned.headers["location"]
    for _ in range(100):
        if (await client.get(clone)).json()["snapshotStatus"] != "preparing":
            break
        await asyncio.sleep(0.02)
    wrong = await client.delete(f"{API}/snapshots", params={"q": "speed>50"})
    assert wrong.status_code == 400
    assert (
        await client.delete(f"{API}/snapshots", params={"q": "snapshotPriority<5"})
    ).status_code == 204
    assert (await client.get(location)).status_code == 404
    clone_id = (await client.get(clone)).json()["id"]
    frozen = {"NGSILD-Snapshot": clone_id}
    listed = await client.get(f"{API}/entities", params={"type": "Vehicle"}, headers=frozen)
    assert sorted(e["id"] for e in listed.json()) == [FAST, SLOW]
    assert (await client.delete(clone)).status_code == 204
    assert (await client.get(f"{API}/snapshots")).json() == []


async def test_deleting_a_tenant_deletes_its_snapshots(tmp_path: Path) -> None:
    holder = broker_client(make_settings(tmp_path / "data", tenants={"explicit": True}))
    async with holder as http:
        await holder.app.state.runtime.tenants.create({"name": "kamo"}, None)
        town = {"NGSILD-Tenant": "kamo"}
        body = {"id": FAST, "type": "Vehicle", "speed": 80}
        assert (
            await http.post(f"{API}/entities", json=body, headers={**JSON, **town})
        ).status_code == 201
        snap = {
            "type": "Snapshot",
            "snapshotQueries": [{"type": "Query", "entities": [{"type": "Vehicle"}]}],
        }
        made = await http.post(f"{API}/snapshots", json=snap, headers={**JSON, **town})
        assert made.status_code == 201
        for _ in range(100):
            shown = await http.get(made.headers["location"], headers=town)
            if shown.json()["snapshotStatus"] != "preparing":
                break
            await asyncio.sleep(0.02)
        runtime = holder.app.state.runtime
        assert [t for t in await runtime.store.tenants() if t.startswith("_snapshot-")]
        await runtime.delete_tenant("kamo")
        assert [t for t in await runtime.store.tenants() if t.startswith("_snapshot-")] == []


class _Source:
    """A real HTTP context source that answers every Query Entities with ``entities``."""

    def __init__(self, entities: list[dict[str, object]]) -> None:
        body = json.dumps(entities).encode()
        self.paths: list[str] = []
        paths = self.paths

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_a_snapshot_also_holds_what_registered_sources_answer(
    client: httpx.AsyncClient,
) -> None:
    # v1.9.1 §5.16.1.4: the snapshot queries run with the distributed behaviour of §5.7.2.4.
    remote = "urn:ngsi-ld:Vehicle:remote"
    speed = {"type": "Property", "value": 88}
    source = _Source([{"id": remote, "type": "Vehicle", "speed": speed}])
    try:
        await vehicles(client)
        registration = {
            "id": "urn:ngsi-ld:ContextSourceRegistration:snapshots",
            "type": "ContextSourceRegistration",
            "information": [{"entities": [{"type": "Vehicle"}]}],
            "operations": ["queryEntity"],
            "endpoint": source.url,
        }
        made = await client.post(f"{API}/csourceRegistrations", json=registration, headers=JSON)
        assert made.status_code == 201, made.text
        location = await snapshot(client, entities=[{"type": "Vehicle"}], q="speed>50")
        shown = (await client.get(location)).json()
        assert shown["snapshotStatus"] == "success"
        frozen = {"NGSILD-Snapshot": shown["id"]}
        listed = await client.get(f"{API}/entities", params={"type": "Vehicle"}, headers=frozen)
        assert sorted(e["id"] for e in listed.json()) == [FAST, remote]
        assert source.paths and source.paths[0].startswith(f"{API}/entities")
    finally:
        source.close()
