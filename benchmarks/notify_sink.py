"""Notification receivers for ``notify.py``: keep-alive HTTP sinks that time every arrival, and a
receiver that accepts connections and never answers.

Theory of operation. Each receiver listens on its own port of 127.0.0.1, because the broker's
dispatcher queues, limits (4 connections) and drops (beyond 1,000 queued) *per origin*
``scheme://host:port``: receivers on one port with different paths would share one queue and one
set of connections, so neither a fan-out over many receivers nor the isolation of a dead one would
be exercised. All receivers run on this process's event loop, on the load generator's core.

A healthy receiver is a minimal HTTP/1.1 server on asyncio protocols: it frames requests by
``Content-Length`` (what the broker's sender always sends), answers each with ``204`` and an empty
body on the same connection, and reads from the body the number the load generator put in the
updated attribute (``"seq": <time.time() when the PATCH was written>``, the subscriptions asking for
``keyValues`` and only ``seq``). Lag is then arrival time minus that stamp: both are
``time.time()`` in this one process, so the clocks agree. It is an upper bound of commit-to-receipt,
since it also holds the PATCH's trip to the broker and the broker's work before the commit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import cast

from harness import HOST

_NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
_STAMP = b'"seq":'
_LENGTH = b"\r\ncontent-length:"


class Recorder:
    """What the healthy receivers got: how many notifications, and each one's lag in ms."""

    def __init__(self) -> None:
        self.count = 0
        self.malformed = 0  # bodies without a readable stamp
        self.lags_ms: list[float] = []
        self._target = 0
        self._reached = asyncio.Event()

    def note(self, arrived: float, body: bytes) -> None:
        """Count one notification that arrived at ``arrived`` (time.time())."""
        self.count += 1
        start = body.find(_STAMP)
        end = -1 if start < 0 else _number_end(body, start + len(_STAMP))
        if end < 0:
            self.malformed += 1
        else:
            self.lags_ms.append((arrived - float(body[start + len(_STAMP) : end])) * 1000)
        if self.count >= self._target:
            self._reached.set()

    def reset(self) -> None:
        """Start counting afresh (between phases, after the previous one drained)."""
        self.count = self.malformed = 0
        self.lags_ms = []

    async def wait_for(self, count: int, timeout: float) -> bool:  # noqa: ASYNC109
        """Wait until ``count`` notifications arrived; False if ``timeout`` seconds passed."""
        self._target = count
        self._reached.clear()
        if self.count >= count:
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._reached.wait()
        except TimeoutError:
            return False
        return True


def _number_end(body: bytes, start: int) -> int:
    """Where the JSON number starting at ``start`` ends, or -1."""
    for index in range(start, min(len(body), start + 40)):
        if body[index] in b",}] \r\n":
            return index if index > start else -1
    return -1


class _Receiver(asyncio.Protocol):
    """One connection of a healthy receiver."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.sink.connections += 1

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self.buffer += data
        answered = 0
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            marker = head.find(_LENGTH)
            length = 0
            if marker >= 0:
                line_end = head.find(b"\r\n", marker + 2)
                length = int(head[marker + len(_LENGTH) : line_end if line_end >= 0 else None])
            total = end + 4 + length
            if len(self.buffer) < total:
                break
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self.sink.received += 1
            self.sink.recorder.note(arrived, body)
            answered += 1
        if answered and self.transport is not None:
            self.transport.write(_NO_CONTENT * answered)


class _Silent(asyncio.Protocol):
    """One connection of the dead receiver: accepted, read, never answered."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sink.connections += 1

    def data_received(self, data: bytes) -> None:
        self.sink.received += data.count(b"POST ")


@dataclass
class Sink:
    """One receiver port and what arrived on it."""

    recorder: Recorder
    healthy: bool = True
    port: int = 0
    connections: int = 0
    received: int = 0
    server: asyncio.AbstractServer | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/notify"

    async def start(self) -> Sink:
        loop = asyncio.get_running_loop()
        kind = _Receiver if self.healthy else _Silent
        self.server = await loop.create_server(lambda: kind(self), HOST, 0, backlog=1024)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def start_sinks(recorder: Recorder, healthy: int, *, dead: bool = False) -> list[Sink]:
    """``healthy`` receivers recording into ``recorder``, then (``dead``) one that never answers."""
    sinks = [await Sink(recorder).start() for _ in range(healthy)]
    if dead:
        sinks.append(await Sink(recorder, healthy=False).start())
    return sinks


def close_sinks(sinks: list[Sink]) -> None:
    for sink in sinks:
        sink.close()
