"""End to end: a real `toshi serve` process, spoken to over TCP like any client would."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Broker:
    """One `toshi serve` child process on a private port and data directory."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "broker",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--store",
            f"sqlite:///{self.data}",
            "--log-level",
            "warning",
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ}
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"toshi exited: {self.process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("toshi did not become healthy within 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


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
