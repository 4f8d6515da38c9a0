"""Preparing and loading a broker for ``notify.py``: entities and subscriptions over HTTP, the
stamped ``PATCH …/attrs/seq`` updates, and the three ways of sending them.

* ``send_all`` — setup: a list of requests over concurrent keep-alive connections, each status
  checked (creating 10,000 subscriptions one at a time would take minutes).
* ``closed_loop`` — each client sends its next update when the previous one is answered: the
  update throughput the broker sustains.
* ``open_loop`` — updates at a fixed rate whatever the answers, for latency: when every
  connection is busy a new one is opened rather than waiting, so a slow broker cannot delay the
  sends and hide its own latency (coordinated omission).

Every update carries ``{"value": time.time()}`` taken just before the request is written; the
receivers in ``notify_sink`` turn it into a lag.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from harness import API, HOST, RawConnection, Request, Result, raw_clients
from notify_sink import Recorder
from query import TYPES, area_side_km, entity

BENCH_TYPE = "BenchSensor"


def bench_entity(entity_id: str, n: int) -> dict[str, Any]:
    """A realistic entity (query.py's generator: 6 properties, 1 relationship, 1 GeoProperty)
    of type BenchSensor, plus the ``seq`` property the updates stamp."""
    doc = entity(n, random.Random(n), area_side_km(10_000))
    return {
        **doc,
        "id": entity_id,
        "type": BENCH_TYPE,
        "seq": {"type": "Property", "value": 0.0},
    }


def create_entity(entity_id: str, n: int) -> Request:
    return "POST", f"{API}/entities", json.dumps(bench_entity(entity_id, n)).encode()


def subscription(
    sub_id: str,
    endpoint: str,
    selector: dict[str, str],
    *,
    watched: Sequence[str] = ("seq",),
    attributes: Sequence[str] = ("seq",),
    q: str | None = None,
) -> Request:
    """``POST /subscriptions`` of one subscription notified in keyValues with few attributes."""
    body: dict[str, Any] = {
        "id": sub_id,
        "type": "Subscription",
        "entities": [selector],
        "watchedAttributes": list(watched),
        "notification": {
            "endpoint": {"uri": endpoint, "accept": "application/json"},
            "format": "keyValues",
            "attributes": list(attributes),
        },
    }
    if q is not None:
        body["q"] = q
    return "POST", f"{API}/subscriptions", json.dumps(body).encode()


def typed_subscriptions(endpoint: str, count: int) -> list[Request]:
    """Subscriptions to query.py's entity types, as a city's dashboards might hold: one type
    each, a threshold on temperature, notified with temperature only."""
    return [
        subscription(
            f"urn:ngsi-ld:Subscription:typed-{n}",
            endpoint,
            {"type": TYPES[n % len(TYPES)]},
            watched=("temperature",),
            attributes=("temperature",),
            q=f"temperature>{n % 40}",
        )
        for n in range(count)
    ]


def stamped_update(entity_id: str) -> Request:
    """Partial attribute update of ``seq`` with the time it is sent (call just before sending)."""
    body = b'{"value":%r}' % time.time()
    return "PATCH", f"{API}/entities/{entity_id}/attrs/seq", body


async def send_all(
    port: int, requests: Iterable[Request], status: int, result: Result, clients: int = 32
) -> None:
    """Send ``requests`` over ``clients`` connections; a status other than ``status`` is an
    error noted in ``result``."""
    pending = iter(requests)
    senders, close = await raw_clients(port, clients)

    async def client(send: Callable[[Request], Any]) -> None:
        for request in pending:
            got = await send(request)
            if got != status:
                result.note_error(f"setup: {got} on {request[0]} {request[1]}")

    try:
        await asyncio.gather(*(client(send) for send in senders))
    finally:
        close()


async def closed_loop(
    port: int, entity_ids: Sequence[str], duration: float, result: Result
) -> None:
    """One connection per entity, each updating its entity in a closed loop for ``duration``."""
    senders, close = await raw_clients(port, len(entity_ids))
    deadline = time.perf_counter() + duration

    async def client(send: Callable[[Request], Any], entity_id: str) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                got = await send(stamped_update(entity_id))
            except OSError as error:
                result.note_error(f"{type(error).__name__}: {error}")
                return
            if got == 204:
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                result.note_error(f"{got} on PATCH {entity_id}")

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(s, e) for s, e in zip(senders, entity_ids, strict=True)))
    finally:
        close()
    result.seconds = time.perf_counter() - started


async def open_loop(
    port: int,
    entity_ids: Sequence[str],
    rate: float,
    duration: float,
    result: Result,
    request: Callable[[str], Request] = stamped_update,
) -> int:
    """Update ``entity_ids`` in turn, ``rate`` updates/s for ``duration`` seconds; returns how
    many were answered 204 (each one's response time goes to ``result``). ``request`` builds
    each update just before it is sent (the default stamps ``seq`` with the time)."""
    loop = asyncio.get_running_loop()
    idle: list[RawConnection] = []
    opened: list[RawConnection] = []
    answered = 0

    async def one(entity_id: str) -> None:
        nonlocal answered
        if idle:
            connection = idle.pop()
        else:
            _, connection = await loop.create_connection(lambda: RawConnection(port), HOST, port)
            opened.append(connection)
        started = time.perf_counter()
        try:
            got = await connection.send(request(entity_id))
        except (OSError, RuntimeError) as error:  # RuntimeError: the server closed the socket
            result.note_error(f"{type(error).__name__}: {error}")
            return
        idle.append(connection)
        if got == 204:
            answered += 1
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
        else:
            result.note_error(f"{got} on PATCH {entity_id}")

    tasks: set[asyncio.Task[None]] = set()
    start = loop.time()
    total = int(rate * duration)
    for n in range(total):
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = loop.create_task(one(entity_ids[n % len(entity_ids)]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    result.seconds = loop.time() - start
    for connection in opened:
        if connection.transport is not None:
            connection.transport.close()
    return answered


async def windowed_loop(
    port: int, entity_id: str, recorder: Recorder, fan: int, window: int, result: Result
) -> int:
    """Update ``entity_id`` (each update notified ``fan`` times) in a closed loop for
    ``result.seconds``, but only while fewer than ``window`` updates are not fully delivered;
    returns the updates answered 204.

    The window keeps the dispatcher's per-origin queues from overflowing, which would drop
    notifications rather than show how fast they go.
    """
    senders, close = await raw_clients(port, 1)
    deadline = time.perf_counter() + result.seconds
    updates = 0
    started = time.perf_counter()
    try:
        while time.perf_counter() < deadline:
            if not await recorder.wait_for((updates - window + 1) * fan, 30.0):
                result.note_error(f"notifications stopped at {recorder.count}")
                break
            got = await senders[0](stamped_update(entity_id))
            updates += got == 204
            if got != 204:
                result.note_error(f"{got} on PATCH {entity_id}")
    finally:
        close()
    result.seconds = time.perf_counter() - started
    return updates


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident set size now and at its peak (VmRSS, VmHWM) of a process, in MB (Linux)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
