"""End to end: a town hosts its data-model @context on the broker and uses it with no network."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_process import Broker, free_port

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
WATER = {
    "water": "https://town.example/models/water#",
    "RiverGauge": "water:RiverGauge",
    "level": "water:level",
}


def link(url: str) -> str:
    return f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def test_a_hosted_context_serves_requests_across_a_restart_without_any_server_behind_its_url(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path / "data")
    broker.start()
    try:
        with httpx.Client(base_url=broker.url) as http:
            added = http.post(f"{API}/jsonldContexts", json={"@context": WATER}, headers=JSON)
            assert added.status_code == 201
            path = added.headers["Location"]
        broker.stop()
        broker.start()
        # The name clients use for the platform; nothing listens there, nor could the broker
        # reach it: the document comes from the broker's own store.
        public = f"http://127.0.0.1:{free_port()}{path}"
        with httpx.Client(base_url=broker.url) as http:
            gauge = {"id": "urn:ngsi-ld:RiverGauge:e2e", "type": "RiverGauge", "level": 1.2}
            created = http.post(
                f"{API}/entities", json=gauge, headers={**JSON, "Link": link(public)}
            )
            assert created.status_code == 201, created.text
            stored = http.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:e2e").json()
            assert stored["type"] == "https://town.example/models/water#RiverGauge"
            shown = http.get(
                f"{API}/entities/urn:ngsi-ld:RiverGauge:e2e",
                params={"options": "keyValues"},
                headers={"Link": link(public)},
            )
            assert shown.json() == gauge
            assert shown.headers["Link"] == link(public)
            listed = http.get(f"{API}/jsonldContexts", params={"kind": "Hosted"}).json()
            assert listed == [f"{broker.url}{path}"]
    finally:
        if broker.process is not None and broker.process.poll() is None:
            broker.stop()
