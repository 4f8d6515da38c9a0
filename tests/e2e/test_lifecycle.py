"""Starting and stopping `toshi serve` (issue 11, point 5): a start-up that fails is one clear
line and leaves nothing running; SIGTERM drains deliveries within a bounded time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_process import Broker, free_port

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}


def run_serve(tmp_path: Path, port: int, **env: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broker", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--store", f"sqlite:///{tmp_path / 'data'}"]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=30, env={**os.environ, **env}
    )


def test_a_port_in_use_is_one_clear_error_and_never_ready(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve(tmp_path, port)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr
    assert " ready on " not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_part_that_cannot_start_stops_everything_started_before_it(tmp_path: Path) -> None:
    began = time.monotonic()
    done = run_serve(tmp_path, free_port(), TOSHI_MQTT__URL="mqtt://127.0.0.1:99999")
    assert time.monotonic() - began < 20
    assert done.returncode == 1
    assert "cannot start: bad port in broker URL: mqtt://127.0.0.1:99999" in done.stderr
    assert " ready on " not in done.stderr
    assert "Traceback" not in done.stderr
    # The store was opened and closed cleanly: SQLite folded its WAL back into the database.
    assert (tmp_path / "data" / "default.sqlite3").exists()
    assert not (tmp_path / "data" / "default.sqlite3-wal").exists()


def black_hole() -> tuple[socket.socket, list[socket.socket]]:
    """A receiver that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, held


def test_sigterm_drains_deliveries_within_the_drain_timeout(tmp_path: Path) -> None:
    server, held = black_hole()
    port = server.getsockname()[1]
    broker = Broker(tmp_path / "data", {"TOSHI_NOTIFICATIONS__DRAIN_TIMEOUT": "1"})
    broker.start()
    try:
        subscription = {
            "type": "Subscription",
            "entities": [{"type": "RiverGauge"}],
            "notification": {"endpoint": {"uri": f"http://127.0.0.1:{port}/notify"}},
        }
        with httpx.Client(base_url=broker.url) as http:
            assert http.post(f"{API}/subscriptions", json=subscription, headers=JSON).is_success
            for n in range(10):  # 4 hang in flight, 6 wait in the queue
                gauge = {"id": f"urn:ngsi-ld:RiverGauge:d{n}", "type": "RiverGauge", "level": n}
                assert http.post(f"{API}/entities", json=gauge, headers=JSON).status_code == 201
        deadline = time.monotonic() + 5
        while len(held) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(held) >= 1
        began = time.monotonic()
        assert broker.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert time.monotonic() - began < 5, "stopping waited for a receiver that never answers"
    finally:
        server.close()
        for conn in held:
            conn.close()
