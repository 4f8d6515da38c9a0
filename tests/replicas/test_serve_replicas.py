"""Two real ``toshi serve`` replicas on one MongoDB (docs/design.md, "Several replicas"): caches
follow each other, each change is notified once, a crashed replica's journal is taken over,
throttled and periodic notifications are sent under leases. MongoDB only (run by
``.github/workflows/mongodb.yml``); without ``TOSHI_TEST_MONGODB_URL`` each test is skipped
with the reason.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tests.contract.conftest import (
    MONGODB_URL_VARIABLE,
    NO_MONGODB,
    drop_test_databases,
    with_database,
)
from tests.e2e.broker_process import Broker
from tests.e2e.receiver import Receiver

API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
TERM = 2.0
"""Lease term of the replicas here (seconds): short, so takeovers happen within a test."""
Start = Callable[[str], Broker]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Start]:
    """Starts ``toshi serve`` replicas, by name, on one fresh MongoDB installation."""
    url = os.environ.get(MONGODB_URL_VARIABLE)
    if not url:
        pytest.skip(NO_MONGODB)
    base = f"toshi-test-{uuid.uuid4().hex[:12]}"
    started: list[Broker] = []

    def start(name: str) -> Broker:
        env = {"TOSHI_REPLICAS__ID": name, "TOSHI_REPLICAS__LEASE_TERM": str(TERM)}
        broker = Broker(
            tmp_path / name, env, log=tmp_path / f"{name}.log", store=with_database(url, base)
        )
        broker.start()
        started.append(broker)
        return broker

    try:
        yield start
    finally:
        for broker in started:
            if broker.process is not None and broker.process.poll() is None:
                broker.stop()
        await drop_test_databases(url, base)


def subscribe(broker: Broker, receiver: Receiver, sub_id: str, **members: object) -> None:
    body = {
        "id": sub_id,
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": receiver.url}},
        **members,
    }
    made = httpx.post(f"{broker.url}{API}/subscriptions", json=body, headers=JSON)
    assert made.status_code == 201, made.text


def unsubscribe(broker: Broker, sub_id: str) -> None:
    gone = httpx.delete(f"{broker.url}{API}/subscriptions/{sub_id}")
    assert gone.status_code == 204, gone.text


def create(broker: Broker, name: str, level: float = 1.0) -> None:
    body = {
        "id": f"urn:ngsi-ld:RiverGauge:{name}",
        "type": "RiverGauge",
        "level": {"type": "Property", "value": level},
    }
    made = httpx.post(f"{broker.url}{API}/entities", json=body, headers=JSON)
    assert made.status_code == 201, made.text


def level(broker: Broker, name: str, value: float) -> None:
    path = f"{broker.url}{API}/entities/urn:ngsi-ld:RiverGauge:{name}/attrs/level"
    done = httpx.patch(path, json={"value": value}, headers=JSON)
    assert done.status_code == 204, done.text


def notified_ids(receiver: Receiver) -> list[str]:
    return [entity["id"] for body in receiver.bodies for entity in body.get("data", [])]


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.1)


async def test_a_subscription_made_on_one_replica_is_matched_by_the_others_writes(
    serve: Start, receiver: Receiver
) -> None:
    a, b = serve("a"), serve("b")
    subscribe(a, receiver, "urn:ngsi-ld:Subscription:follow")
    await until(lambda: httpx.get(f"{b.url}{API}/subscriptions").json() != [])
    create(b, "on-b")
    await until(lambda: notified_ids(receiver) == ["urn:ngsi-ld:RiverGauge:on-b"])

    unsubscribe(a, "urn:ngsi-ld:Subscription:follow")
    await until(lambda: httpx.get(f"{b.url}{API}/subscriptions").json() == [])
    create(b, "after-delete")
    await asyncio.sleep(1.0)
    assert notified_ids(receiver) == ["urn:ngsi-ld:RiverGauge:on-b"]


async def test_each_change_is_notified_once_whichever_replica_commits_it(
    serve: Start, receiver: Receiver
) -> None:
    a, b = serve("a"), serve("b")
    subscribe(a, receiver, "urn:ngsi-ld:Subscription:once")
    await until(lambda: httpx.get(f"{b.url}{API}/subscriptions").json() != [])
    names = [f"g{n}" for n in range(20)]
    for n, name in enumerate(names):
        create(a if n % 2 else b, name)
    await until(lambda: len(notified_ids(receiver)) >= len(names))
    serve("c")  # a replica starting meanwhile replays nothing that the others still owe
    await asyncio.sleep(2 * TERM)
    assert sorted(notified_ids(receiver)) == sorted(f"urn:ngsi-ld:RiverGauge:{n}" for n in names)


async def test_what_a_killed_replica_owed_is_notified_by_another_after_its_lease(
    serve: Start, receiver: Receiver
) -> None:
    a, b = serve("a"), serve("b")
    receiver.status = 503  # nothing is delivered: a's journal keeps the change
    subscribe(a, receiver, "urn:ngsi-ld:Subscription:takeover")
    await until(lambda: httpx.get(f"{b.url}{API}/subscriptions").json() != [])
    create(a, "owed")
    await until(lambda: len(receiver.arrivals) >= 1)
    assert a.process is not None
    a.process.send_signal(signal.SIGKILL)
    a.process.wait()
    receiver.status = 204
    killed = time.monotonic()
    await until(lambda: receiver.since(killed) != [], seconds=6 * TERM)
    await asyncio.sleep(TERM)
    delivered = [a for a in receiver.since(killed) if a.body.get("data")]
    assert [entity["id"] for arrival in delivered for entity in arrival.body["data"]] == [
        "urn:ngsi-ld:RiverGauge:owed"
    ]


async def test_a_throttled_subscription_notifies_a_period_apart_across_replicas(
    serve: Start, receiver: Receiver
) -> None:
    a, b = serve("a"), serve("b")
    subscribe(a, receiver, "urn:ngsi-ld:Subscription:throttled", throttling=1)
    await until(lambda: httpx.get(f"{b.url}{API}/subscriptions").json() != [])
    create(a, "t")
    for n in range(40):
        level(a if n % 2 else b, "t", float(n))
        await asyncio.sleep(0.1)
    await asyncio.sleep(2.5)
    times = [arrival.at for arrival in receiver.arrivals]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(times) >= 3 and min(gaps) >= 0.9, gaps
    assert receiver.bodies[-1]["data"][0]["level"]["value"] in (38.0, 39.0)


async def test_a_periodic_subscription_is_sent_by_one_replica_and_survives_its_death(
    serve: Start, receiver: Receiver
) -> None:
    a, b = serve("a"), serve("b")
    create(a, "p")
    subscribe(a, receiver, "urn:ngsi-ld:Subscription:periodic", timeInterval=1)
    await until(lambda: httpx.get(f"{b.url}{API}/subscriptions").json() != [])
    await asyncio.sleep(5.5)
    first = len(receiver.arrivals)
    assert 3 <= first <= 7  # once a second, not once per replica
    assert a.process is not None  # if a held the lease, b takes it over once it lapses
    a.process.send_signal(signal.SIGKILL)
    a.process.wait()
    killed = time.monotonic()
    await until(lambda: receiver.since(killed + 3.0) != [], seconds=15)
