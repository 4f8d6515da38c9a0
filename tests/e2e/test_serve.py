"""End to end: a real `toshi serve` process, spoken to over TCP like any client would."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_process import Broker

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    running = Broker(tmp_path / "data")
    running.start()
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop()


def test_serve_answers_crud_and_stops_cleanly(broker: Broker) -> None:
    with httpx.Client(base_url=broker.url) as http:
        body = {"id": "urn:ngsi-ld:RiverGauge:e2e", "type": "RiverGauge", "level": 1.2}
        assert http.post(f"{API}/entities", json=body, headers=JSON).status_code == 201
        assert (
            http.patch(
                f"{API}/entities/urn:ngsi-ld:RiverGauge:e2e/attrs/level",
                json={"value": 1.4},
                headers=JSON,
            ).status_code
            == 204
        )
        got = http.get(
            f"{API}/entities/urn:ngsi-ld:RiverGauge:e2e", params={"options": "keyValues"}
        )
        assert got.json() == {
            "id": "urn:ngsi-ld:RiverGauge:e2e",
            "type": "RiverGauge",
            "level": 1.4,
        }
        assert http.delete(f"{API}/entities/urn:ngsi-ld:RiverGauge:e2e").status_code == 204
    # uvicorn shuts down gracefully, then re-raises SIGTERM so supervisors see why it ended.
    assert broker.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert (broker.data / "default.sqlite3").exists()


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "data")
    broker.start()

    async def burst() -> list[str]:
        acknowledged: list[str] = []
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=broker.url, limits=limits) as http:

            async def write(n: int) -> None:
                entity_id = f"urn:ngsi-ld:Sensor:{n}"
                body = {"id": entity_id, "type": "Sensor", "n": n}
                created = await http.post(f"{API}/entities", json=body, headers=JSON)
                assert created.status_code == 201
                patched = await http.patch(
                    f"{API}/entities/{entity_id}/attrs", json={"n": n + 1_000}, headers=JSON
                )
                assert patched.status_code == 204
                acknowledged.append(entity_id)

            await asyncio.gather(*[write(n) for n in range(300)])
        return acknowledged

    acknowledged = asyncio.run(burst())
    broker.stop(signal.SIGKILL)  # right after the last 204: no shutdown, no checkpoint

    broker.start()
    try:
        with httpx.Client(base_url=broker.url) as http:
            page = http.get(
                f"{API}/entities",
                params={"type": "Sensor", "limit": 1000, "options": "keyValues,count"},
            )
            stored = {e["id"]: e["n"] for e in page.json()}
        assert page.headers["ngsild-results-count"] == str(len(acknowledged))
        assert set(stored) == set(acknowledged)
        assert all(stored[i] == int(i.rsplit(":", 1)[1]) + 1_000 for i in acknowledged)
        # each acknowledged write's history survived with it (same transaction, issue 13)
        with httpx.Client(base_url=broker.url) as http:
            history = http.get(
                f"{API}/temporal/entities",
                params={"type": "Sensor", "attrs": "n", "limit": 1000},
            ).json()
        values = {e["id"]: [i["value"] for i in e["n"]] for e in history}
        assert set(values) == set(acknowledged)
        numbers = {i: int(i.rsplit(":", 1)[1]) for i in acknowledged}
        assert all(values[i] == [numbers[i], numbers[i] + 1_000] for i in acknowledged)
    finally:
        broker.stop()


def test_help_documents_every_setting() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for needle in ("--port", "--store", "TOSHI_STORE", "TOSHI_LIMITS__MAX_BODY_BYTES"):
        assert needle in result.stdout
