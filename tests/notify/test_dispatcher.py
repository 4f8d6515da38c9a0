"""The notification sender and dispatcher against real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from broker.notify.dispatcher import Delivery, Dispatcher, Outcome
from broker.notify.http_sender import HttpSender, SendError
from broker.settings import NotificationSettings

Behaviour = Callable[[int], Awaitable[bytes | None]]
"""Request number (1-based) -> raw response bytes, or None to never answer."""


def reply(status: int, body: bytes = b"ok", *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n".encode()
    return head + extra + b"\r\n" + body


def answer(*statuses: int) -> Behaviour:
    """Answer with ``statuses`` in turn, then keep answering with the last one."""

    async def behave(n: int) -> bytes:
        return reply(statuses[min(n, len(statuses)) - 1])

    return behave


async def black_hole(n: int) -> None:
    return None


HANG_UP = b""
"""A response that makes the receiver drop the connection without a word."""


@dataclass
class Receiver:
    """A real HTTP/1.1 server that records bodies and counts TCP connections."""

    behave: Behaviour
    connections: int = 0
    bodies: list[bytes] = field(default_factory=list)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    server: asyncio.Server | None = None
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.bodies.append(await reader.readexactly(length))
                response = await self.behave(len(self.bodies))
                if response is None:
                    await self.released.wait()
                    return
                if response == HANG_UP:
                    return
                writer.write(response)
                await writer.drain()
                if b"Connection: close" in response:
                    return
        finally:
            writer.close()


Serve = Callable[[Behaviour], Awaitable[Receiver]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    started: list[Receiver] = []

    async def start(behave: Behaviour) -> Receiver:
        receiver = Receiver(behave)
        receiver.server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
        port = receiver.server.sockets[0].getsockname()[1]
        receiver.url = f"http://127.0.0.1:{port}/notify"
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        assert receiver.server is not None
        receiver.released.set()
        receiver.server.close()
        await receiver.server.wait_closed()
        await asyncio.sleep(0.01)  # let released handlers close their sockets


@dataclass
class Outcomes:
    """Collects on_done calls; ``wait`` resolves when ``n`` have arrived."""

    seen: list[Outcome] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, outcome: Outcome) -> None:
        self.seen.append(outcome)
        self.changed.set()

    async def wait(self, n: int, within: float = 5.0) -> list[Outcome]:
        async with asyncio.timeout(within):
            while len(self.seen) < n:
                self.changed.clear()
                await self.changed.wait()
        return self.seen


FAST = NotificationSettings(backoff_base=0.001, backoff_cap=0.01, request_timeout=2.0)


def delivery(url: str, done: Outcomes, body: bytes = b"{}") -> Delivery:
    return Delivery(url, body, {"Content-Type": "application/json"}, "urn:sub:1", done)


async def started(config: NotificationSettings = FAST) -> Dispatcher:
    dispatcher = Dispatcher(config, rng=random.Random(7))
    await dispatcher.start()
    return dispatcher


async def test_sender_reuses_one_keep_alive_connection(serve: Serve) -> None:
    receiver = await serve(answer(200))
    sender = HttpSender()
    statuses = [await sender.post(receiver.url, b"%d" % i, {}, 2.0) for i in range(20)]
    await sender.close()
    assert statuses == [200] * 20
    assert receiver.bodies == [b"%d" % i for i in range(20)]
    assert receiver.connections == 1


async def test_sender_closes_connections_idle_past_the_expiry(serve: Serve) -> None:
    receiver = await serve(answer(200))
    sender = HttpSender(keepalive_expiry=0.05)
    assert await sender.post(receiver.url, b"1", {}, 2.0) == 200
    await asyncio.sleep(0.15)
    assert await sender.post(receiver.url, b"2", {}, 2.0) == 200
    await sender.close()
    assert receiver.connections == 2


async def test_sender_reads_chunked_responses_and_keeps_the_connection(serve: Serve) -> None:
    chunked = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"

    async def behave(n: int) -> bytes:
        return chunked

    receiver = await serve(behave)
    sender = HttpSender()
    assert [await sender.post(receiver.url, b"x", {}, 2.0) for _ in range(3)] == [201] * 3
    await sender.close()
    assert receiver.connections == 1


async def test_sender_reconnects_when_server_closes_connections(serve: Serve) -> None:
    async def behave(n: int) -> bytes:
        return reply(200, close=n % 2 == 0)

    receiver = await serve(behave)
    sender = HttpSender()
    assert [await sender.post(receiver.url, b"x", {}, 2.0) for _ in range(4)] == [200] * 4
    await sender.close()
    assert receiver.connections == 2


async def test_sender_recovers_from_a_keep_alive_connection_dropped_while_idle(
    serve: Serve,
) -> None:
    async def behave(n: int) -> bytes:
        return reply(200) if n % 2 else HANG_UP

    receiver = await serve(behave)
    sender = HttpSender()
    assert await sender.post(receiver.url, b"1", {}, 2.0) == 200
    # The receiver keeps the connection open, then drops it when the next request arrives (as a
    # server does whose idle timer fired just then); the sender resends on a fresh connection.
    assert await sender.post(receiver.url, b"2", {}, 2.0) == 200
    await sender.close()
    assert receiver.bodies == [b"1", b"2", b"2"]
    assert receiver.connections == 2


async def test_sender_times_out_on_a_black_hole(serve: Serve) -> None:
    receiver = await serve(black_hole)
    sender = HttpSender()
    began = time.monotonic()
    with pytest.raises(SendError):
        await sender.post(receiver.url, b"x", {}, 0.2)
    assert time.monotonic() - began < 1.5
    await sender.close()


async def test_sender_refuses_header_injection(serve: Serve) -> None:
    receiver = await serve(answer(200))
    sender = HttpSender()
    with pytest.raises(SendError) as caught:
        await sender.post(receiver.url, b"x", {"X-A": "1\r\nX-Evil: 1"}, 2.0)
    await sender.close()
    assert not caught.value.retryable
    assert receiver.bodies == []


async def test_dispatcher_delivers_over_few_connections(serve: Serve) -> None:
    receiver = await serve(answer(200))
    dispatcher = await started()
    done = Outcomes()
    assert all(dispatcher.submit(delivery(receiver.url, done, b"%d" % i)) for i in range(50))
    outcomes = await done.wait(50)
    await dispatcher.close(1.0)
    assert all(o.ok and o.attempts == 1 and o.status == 200 for o in outcomes)
    assert sorted(receiver.bodies) == sorted(b"%d" % i for i in range(50))
    assert 1 <= receiver.connections <= FAST.concurrency
    totals = dispatcher.counters()
    assert (totals.sent, totals.failed, totals.retried, totals.dropped, totals.queued) == (
        50,
        0,
        0,
        0,
        0,
    )
    assert dispatcher.lag.count == 50
    p50, p99 = dispatcher.lag.p50(), dispatcher.lag.p99()
    assert p50 is not None and p99 is not None and 0 <= p50 <= p99 < 5


async def test_server_errors_are_retried_until_delivered(serve: Serve) -> None:
    receiver = await serve(answer(500, 500, 200))
    dispatcher = await started()
    done = Outcomes()
    dispatcher.submit(delivery(receiver.url, done))
    [outcome] = await done.wait(1)
    await dispatcher.close(1.0)
    assert outcome == Outcome(ok=True, attempts=3, status=200)
    assert len(receiver.bodies) == 3
    totals = dispatcher.counters()
    assert (totals.sent, totals.retried, totals.failed) == (1, 2, 0)


async def test_too_many_requests_is_retried(serve: Serve) -> None:
    receiver = await serve(answer(429, 204))
    dispatcher = await started()
    done = Outcomes()
    dispatcher.submit(delivery(receiver.url, done))
    [outcome] = await done.wait(1)
    await dispatcher.close(1.0)
    assert outcome == Outcome(ok=True, attempts=2, status=204)


async def test_client_errors_are_final(serve: Serve) -> None:
    receiver = await serve(answer(404))
    dispatcher = await started()
    done = Outcomes()
    dispatcher.submit(delivery(receiver.url, done))
    [outcome] = await done.wait(1)
    await asyncio.sleep(0.05)  # a retry, if any, would arrive now
    await dispatcher.close(1.0)
    assert outcome == Outcome(ok=False, attempts=1, status=404)
    assert len(receiver.bodies) == 1
    totals = dispatcher.counters()
    assert (totals.failed, totals.retried, totals.sent) == (1, 0, 0)


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/notify"


async def test_refused_connections_fail_after_the_retry_budget() -> None:
    dispatcher = await started(
        NotificationSettings(backoff_base=0.001, backoff_cap=0.01, max_attempts=3)
    )
    done = Outcomes()
    dispatcher.submit(delivery(refused_url(), done))
    [outcome] = await done.wait(1)
    await dispatcher.close(1.0)
    assert not outcome.ok and not outcome.dropped
    assert outcome.attempts == 3 and outcome.status is None and outcome.error
    totals = dispatcher.counters()
    assert (totals.failed, totals.retried, totals.sent) == (1, 2, 0)


async def test_retry_time_budget_ends_retries_early() -> None:
    config = NotificationSettings(backoff_base=1.0, backoff_cap=1.0, max_retry_time=0.0)
    dispatcher = await started(config)
    done = Outcomes()
    dispatcher.submit(delivery(refused_url(), done))
    [outcome] = await done.wait(1, within=0.9)
    await dispatcher.close(1.0)
    assert outcome.attempts == 1 and not outcome.ok


async def test_black_hole_fills_only_its_own_queue(serve: Serve) -> None:
    healthy = [await serve(answer(200)) for _ in range(2)]
    hole = await serve(black_hole)
    config = NotificationSettings(queue_size=5, request_timeout=30.0)
    dispatcher = await started(config)
    lost, done = Outcomes(), Outcomes()
    for _ in range(20):
        assert dispatcher.submit(delivery(hole.url, lost))
    began = time.monotonic()
    for batch in range(10):  # each batch fits the healthy origins' queues
        for i in range(5):
            assert dispatcher.submit(delivery(healthy[i % 2].url, done))
        outcomes = await done.wait(5 * (batch + 1))
    assert time.monotonic() - began < 2.0
    assert [o for o in outcomes if not o.ok] == []
    hole_origin = hole.url.removesuffix("/notify")
    stuck = dispatcher.origin_counters()[hole_origin]
    assert stuck.dropped == 15
    assert stuck.queued == 1  # 4 in flight (never answered), 1 waiting
    assert [o.dropped for o in lost.seen] == [True] * 15
    await dispatcher.close(0.1)
    assert len(lost.seen) == 20  # the rest are reported when the dispatcher gives up on them
    assert [o.shutdown for o in lost.seen] == [False] * 15 + [True] * 5
    assert dispatcher.counters().queued == 0
    assert dispatcher.origin_counters()[hole_origin].dropped == 15


async def test_close_drains_queued_deliveries(serve: Serve) -> None:
    async def slow(n: int) -> bytes:
        await asyncio.sleep(0.02)
        return reply(200)

    receiver = await serve(slow)
    dispatcher = await started()
    done = Outcomes()
    for _ in range(20):
        dispatcher.submit(delivery(receiver.url, done))
    await dispatcher.close(5.0)
    assert len(done.seen) == 20 and all(o.ok for o in done.seen)
    assert len(receiver.bodies) == 20
    assert not dispatcher.submit(delivery(receiver.url, done))


async def test_idle_workers_exit_and_come_back(serve: Serve) -> None:
    receiver = await serve(answer(200))
    dispatcher = await started(NotificationSettings(idle_timeout=0.05))
    done = Outcomes()
    dispatcher.submit(delivery(receiver.url, done))
    await done.wait(1)
    await asyncio.sleep(0.2)
    assert dispatcher.active_origins == frozenset()
    dispatcher.submit(delivery(receiver.url, done))
    await done.wait(2)
    await dispatcher.close(1.0)
    assert dispatcher.counters().sent == 2


async def test_unknown_schemes_are_refused() -> None:
    dispatcher = await started()
    assert not dispatcher.submit(Delivery("mqtt://127.0.0.1/topic", b"{}", {}, "urn:sub:1"))
    assert not dispatcher.submit(Delivery("not a url", b"{}", {}, "urn:sub:1"))
    await dispatcher.close(0.1)


async def test_pluggable_sender_per_scheme() -> None:
    class Recording:
        def __init__(self) -> None:
            self.urls: list[str] = []
            self.closed = False

        async def post(
            self,
            url: str,
            body: bytes,
            headers: dict[str, str],
            timeout: float,  # noqa: ASYNC109
            check: object = None,
        ) -> int:
            self.urls.append(url)
            return 200

        async def close(self) -> None:
            self.closed = True

    mqtt = Recording()
    dispatcher = Dispatcher(FAST, {"mqtt": mqtt})
    await dispatcher.start()
    done = Outcomes()
    assert dispatcher.submit(delivery("mqtt://127.0.0.1/city/alerts", done))
    [outcome] = await done.wait(1)
    await dispatcher.close(1.0)
    assert outcome.ok and mqtt.urls == ["mqtt://127.0.0.1/city/alerts"] and mqtt.closed


async def test_cancel_ends_queued_retrying_and_in_flight_deliveries_of_one_subscription(
    serve: Serve,
) -> None:
    hole = await serve(black_hole)  # holds the 4 in flight forever
    failing = await serve(answer(500))  # keeps the other subscription's delivery retrying
    dispatcher = await started(NotificationSettings(queue_size=50, request_timeout=30.0))
    ended, other = Outcomes(), Outcomes()
    for _ in range(10):
        dispatcher.submit(delivery(hole.url, ended))
    dispatcher.submit(delivery(failing.url, ended))
    dispatcher.submit(Delivery(hole.url, b"{}", {}, "urn:sub:other", other, tenant="", wanted=None))
    await asyncio.sleep(0.2)
    assert dispatcher.cancel("", "urn:sub:1") == 11
    outcomes = await ended.wait(11, within=1.0)
    assert all(o.cancelled and not o.ok for o in outcomes)
    assert other.seen == []  # another subscription's delivery is untouched
    assert dispatcher.origin_counters()[hole.url.removesuffix("/notify")].queued == 1
    await dispatcher.close(0.1)


async def test_an_unwanted_delivery_is_not_attempted_again(serve: Serve) -> None:
    failing = await serve(answer(500))
    dispatcher = await started()
    done = Outcomes()
    attempts_allowed = [2]

    def wanted() -> bool:
        attempts_allowed[0] -= 1
        return attempts_allowed[0] >= 0

    dispatcher.submit(
        Delivery(failing.url, b"{}", {}, "urn:sub:1", done, tenant="t", wanted=wanted)
    )
    [outcome] = await done.wait(1)
    await dispatcher.close(0.1)
    assert outcome.cancelled and outcome.attempts == 2
    assert len(failing.bodies) == 2
