"""Pieces every benchmark shares: a minimal keep-alive HTTP client, pinned server processes,
and latency bookkeeping. See ``entity_write.py`` for the method and its caveats."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
API = "/ngsi-ld/v1"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# (method, path, body) of one request; a client sends them in order.
Request = tuple[str, str, bytes]
# Sends one request and returns the response status (raises on a broken connection).
Send = Callable[[Request], Awaitable[int]]


class RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request in flight; just enough HTTP for this."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.prefix = f"Host: {HOST}:{port}\r\nContent-Type: application/json\r\n{extra}"
        self.buffer = bytearray()
        self.head = b""  # the status line and headers of the last complete response, as sent
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        status = self._complete_response()
        if status is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(status)

    def _complete_response(self) -> int | None:
        """The status of the buffered response once it is complete (and drop it), else None."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        raw_head = bytes(self.buffer[:end])
        head = raw_head.lower()
        status = int(head[9:12])
        body_start = end + 4
        marker = head.find(b"\r\ncontent-length:")
        if marker >= 0:
            line_end = head.find(b"\r\n", marker + 2)
            length = int(head[marker + 17 : line_end if line_end >= 0 else len(head)])
            if len(self.buffer) < body_start + length:
                return None
            del self.buffer[: body_start + length]
            self.head = raw_head
            return status
        if b"\r\ntransfer-encoding: chunked" in head:
            position = body_start
            while True:  # walk the chunks; the 0-sized one ends the body
                size_end = self.buffer.find(b"\r\n", position)
                if size_end < 0:
                    return None
                size = int(bytes(self.buffer[position:size_end]).split(b";")[0], 16)
                position = size_end + 2 + size + 2
                if len(self.buffer) < position:
                    return None
                if size == 0:
                    del self.buffer[:position]
                    self.head = raw_head
                    return status
        del self.buffer[:body_start]  # 204/304: no body
        self.head = raw_head
        return status

    async def send(self, request: Request) -> int:
        method, path, body = request
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(
            f"{method} {path} HTTP/1.1\r\n{self.prefix}Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        return await self.waiter


async def raw_clients(
    port: int, clients: int, headers: Callable[[int], dict[str, str]] | None = None
) -> tuple[list[Send], Callable[[], None]]:
    """``clients`` raw keep-alive connections (client ``n`` sending ``headers(n)`` with every
    request), and a function closing them."""
    connections, close = await raw_connections(port, clients, headers)
    return [connection.send for connection in connections], close


async def raw_connections(
    port: int, clients: int, headers: Callable[[int], dict[str, str]] | None = None
) -> tuple[list[RawConnection], Callable[[], None]]:
    """``raw_clients`` as the connections themselves (each keeps its last response's head)."""
    loop = asyncio.get_running_loop()
    connections = []
    for n in range(clients):
        extra = None if headers is None else headers(n)
        _, protocol = await loop.create_connection(partial(RawConnection, port, extra), HOST, port)
        connections.append(protocol)

    def close() -> None:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()

    return connections, close


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Server:
    """``toshi serve`` (a fresh temporary SQLite store, or ``data``) or the echo app, pinned to one
    core."""

    def __init__(
        self, name: str, core: int, data: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.env = env or {}
        self.core = core
        self.port = free_port()
        self.keep_data = data is not None  # a prepared store belongs to the caller
        self.data = data or Path(tempfile.mkdtemp(prefix="toshi-bench-"))
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        common = ["--host", HOST, "--port", str(self.port), "--log-level", "warning"]
        if self.name == "toshi":
            script = Path(sys.executable).with_name("toshi")
            toshi = [str(script)] if script.exists() else [sys.executable, "-m", "broker"]
            return [*toshi, "serve", *common, "--store", f"sqlite:///{self.data}"]
        uvicorn = [sys.executable, "-m", "uvicorn", "benchmarks.echo_app:app"]
        return [*uvicorn, *common, "--loop", "uvloop", "--http", "httptools", "--no-access-log"]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def __aenter__(self) -> Server:
        taskset = ["taskset", "-c", str(self.core)] if shutil.which("taskset") else []
        env = {**os.environ, "TOSHI_ACCESS_LOG": "false", **self.env}
        self.process = subprocess.Popen([*taskset, *self.command()], cwd=ROOT, env=env)
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                if self.process.poll() is not None:
                    break
                try:
                    async with http.get(f"http://{HOST}:{self.port}/health") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        await self.__aexit__()
        raise RuntimeError(f"{self.name} did not start: {' '.join(self.command())}")

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if not self.keep_data:
            shutil.rmtree(self.data, ignore_errors=True)


@dataclass
class Result:
    """One phase against one server."""

    server: str
    phase: str
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    server_cpu: float = 0.0  # server CPU seconds / wall seconds (1.0 = its core saturated)
    generator_cpu: float = 0.0  # the same for this process

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of successful requests' latencies, in ms."""
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    def note_error(self, what: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or what


def finish(json_path: str | None, figures: dict[str, Any], problems: list[str]) -> int:
    """Write ``figures`` (and the problems) to ``json_path`` if given; print the problems and
    return the exit status: 1 when any problem makes the figures invalid."""
    if json_path:
        Path(json_path).write_text(json.dumps({**figures, "problems": problems}, indent=2))
    if problems:
        print(f"\n!!!! {len(problems)} PROBLEMS: the figures above are not valid !!!!")
        for problem in problems:
            print(f"!!!! {problem}")
        return 1
    return 0


async def closed_loop(
    server: Server,
    phase: str,
    make: Callable[[int], Request],
    clients: int,
    duration: float,
    expected: set[int],
) -> Result:
    """``clients`` keep-alive connections each sending ``make(n)`` back to back for ``duration``
    seconds; a status outside ``expected`` counts as an error."""
    result = Result(server.name, phase, duration)
    senders, close = await raw_clients(server.port, clients)
    counter = iter(range(10**9))

    async def client(send: Send) -> None:
        while time.perf_counter() < deadline:
            request = make(next(counter))
            started = time.perf_counter()
            try:
                status = await send(request)
            except OSError as error:
                result.note_error(f"{error} on {request[1]}")
                return
            if status not in expected:
                result.note_error(f"{status} on {request[0]} {request[1]}")
                continue
            result.latencies_ms.append((time.perf_counter() - started) * 1000)

    cpu_before, wall_before = cpu_seconds(server.pid), time.perf_counter()
    deadline = wall_before + duration
    await asyncio.gather(*(client(send) for send in senders))
    result.seconds = time.perf_counter() - wall_before
    result.server_cpu = (cpu_seconds(server.pid) - cpu_before) / result.seconds
    close()
    return result
