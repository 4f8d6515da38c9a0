"""At-least-once notifications across a restart: kill -9 or SIGTERM while a receiver is down."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_process import Broker, free_port

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}


class Receiver:
    """A real HTTP receiver that can come up after the broker tried to reach it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bodies: list[dict] = []
        self.arrived = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                receiver.arrived.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    down = Receiver(free_port())  # nothing listens yet: the broker's attempts are refused
    yield down
    down.stop()


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM])
def test_a_notification_pending_at_a_stop_is_delivered_after_the_restart(
    tmp_path: Path, receiver: Receiver, stop_signal: int
) -> None:
    broker = Broker(tmp_path / "data")
    broker.start()
    subscription = {
        "id": "urn:ngsi-ld:Subscription:flood-alerts",
        "type": "Subscription",
        "entities": [{"type": "FloodAlert"}],
        "notification": {"endpoint": {"uri": f"http://127.0.0.1:{receiver.port}/notify"}},
    }
    alert = {"id": "urn:ngsi-ld:FloodAlert:kamo", "type": "FloodAlert", "level": "evacuate"}
    with httpx.Client(base_url=broker.url) as http:
        assert http.post(f"{API}/subscriptions", json=subscription, headers=JSON).is_success
        assert http.post(f"{API}/entities", json=alert, headers=JSON).status_code == 201
    broker.stop(stop_signal)  # the receiver is still down: the notification is not delivered

    receiver.start()
    broker.start()
    try:
        assert receiver.arrived.wait(15), "the pending notification never arrived"
        (entity,) = receiver.bodies[0]["data"]
        assert entity["id"] == "urn:ngsi-ld:FloodAlert:kamo"
        assert entity["level"]["value"] == "evacuate"
        with httpx.Client(base_url=broker.url) as http:
            for _ in range(50):  # the status is saved at most once a second
                got = http.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:flood-alerts")
                if got.json()["notification"].get("timesSent") == 1:
                    break
                receiver.arrived.wait(0.1)
            assert got.json()["notification"]["timesSent"] == 1
    finally:
        broker.stop()
    broker.start()  # delivered ones are forgotten: a second restart sends nothing again
    try:
        receiver.arrived.clear()
        assert not receiver.arrived.wait(2)
        assert len(receiver.bodies) == 1
    finally:
        broker.stop()
