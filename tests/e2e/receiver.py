"""A real HTTP notification receiver for end-to-end tests, in a thread of the test process.

It can come up after the broker first tried to reach it, answer with a chosen status (a failing
receiver makes the broker retry), or hold each request for a while (a slow receiver makes
deliveries queue up). Each POST is recorded with the monotonic time it arrived.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.e2e.broker_process import free_port


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A broker killed mid-request resets its connections; that is the test, not an error.
        return


@dataclass(frozen=True)
class Arrival:
    """One POST the receiver read."""

    at: float
    """``time.monotonic()`` when its body had been read."""
    body: dict[str, Any]


class Receiver:
    """A real HTTP receiver on 127.0.0.1 at a port chosen before it listens."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/notify"
        self.status = 204
        """What it answers; a 5xx makes the broker retry."""
        self.hold = 0.0
        """Seconds it keeps each request before answering."""
        self.arrivals: list[Arrival] = []
        self.arrived = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [arrival.body for arrival in self.arrivals]

    def since(self, moment: float) -> list[Arrival]:
        """What arrived after ``moment`` (a ``time.monotonic()`` value)."""
        return [arrival for arrival in self.arrivals if arrival.at > moment]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                receiver.arrivals.append(Arrival(time.monotonic(), body))
                receiver.arrived.set()
                if receiver.hold:
                    time.sleep(receiver.hold)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, seconds: float) -> bool:
        """Whether ``count`` POSTs arrived within ``seconds``."""
        deadline = time.monotonic() + seconds
        while len(self.arrivals) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.arrived.clear()
            self.arrived.wait(min(left, 0.1))
        return True
