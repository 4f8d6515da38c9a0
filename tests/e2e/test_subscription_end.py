"""Ending a subscription ends its deliveries: queued, retrying and saved ones, at once and for
good, also across a restart (issue 11, point 1). Real `toshi serve`, real HTTP receiver."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_process import Broker
from tests.e2e.receiver import Receiver

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
SUB = "urn:ngsi-ld:Subscription:river-watch"
GRACE = 0.05
"""A request already on the wire when the subscription ended may still land this late."""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    # Quick retries, so that several would happen within the observation window.
    running = Broker(tmp_path / "data", {"TOSHI_NOTIFICATIONS__BACKOFF_CAP": "0.5"})
    running.start()
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop()


def subscribe(http: httpx.Client, receiver: Receiver, **extra: object) -> None:
    body = {
        "id": SUB,
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": receiver.url}},
        **extra,
    }
    assert http.post(f"{API}/subscriptions", json=body, headers=JSON).status_code == 201


def write_gauges(http: httpx.Client, count: int) -> None:
    for n in range(count):
        gauge = {"id": f"urn:ngsi-ld:RiverGauge:g{n}", "type": "RiverGauge", "level": n}
        assert http.post(f"{API}/entities", json=gauge, headers=JSON).status_code == 201


def test_deleting_stops_retries_at_once_and_after_a_restart(
    broker: Broker, receiver: Receiver
) -> None:
    receiver.status = 500  # every attempt fails, so the broker keeps retrying
    with httpx.Client(base_url=broker.url) as http:
        subscribe(http, receiver)
        write_gauges(http, 3)
        assert receiver.wait_for(6, 10), "the broker did not retry the failing receiver"
        assert http.delete(f"{API}/subscriptions/{SUB}").status_code == 204
        ended = time.monotonic() + GRACE
    time.sleep(2)
    assert receiver.since(ended) == []

    broker.stop(signal.SIGKILL)
    receiver.status = 204
    broker.start()
    time.sleep(2)
    assert receiver.since(ended) == [], "a deleted subscription notified after a restart"


def test_deleting_drops_queued_deliveries(broker: Broker, receiver: Receiver) -> None:
    receiver.hold = 0.5  # a slow receiver: deliveries queue up behind the 4 in flight
    with httpx.Client(base_url=broker.url) as http:
        subscribe(http, receiver)
        write_gauges(http, 20)
        assert receiver.wait_for(1, 10)
        assert http.delete(f"{API}/subscriptions/{SUB}").status_code == 204
        ended = time.monotonic() + GRACE
    time.sleep(3)
    assert receiver.since(ended) == []
    assert len(receiver.arrivals) < 20


def test_pausing_stops_retries_and_resuming_does_not_bring_them_back(
    broker: Broker, receiver: Receiver
) -> None:
    receiver.status = 500
    with httpx.Client(base_url=broker.url) as http:
        subscribe(http, receiver)
        write_gauges(http, 2)
        assert receiver.wait_for(4, 10)
        paused = http.patch(f"{API}/subscriptions/{SUB}", json={"isActive": False}, headers=JSON)
        assert paused.status_code == 204
        ended = time.monotonic() + GRACE
        time.sleep(2)
        assert receiver.since(ended) == []
        receiver.status = 204
        resumed = http.patch(f"{API}/subscriptions/{SUB}", json={"isActive": True}, headers=JSON)
        assert resumed.status_code == 204
        time.sleep(2)
        assert receiver.since(ended) == [], "deliveries ended by the pause came back"
        # The resumed subscription notifies what changes from now on.
        later = {"id": "urn:ngsi-ld:RiverGauge:after", "type": "RiverGauge", "level": 9}
        before = len(receiver.arrivals)
        assert http.post(f"{API}/entities", json=later, headers=JSON).is_success
        assert receiver.wait_for(before + 1, 10)
        (entity,) = receiver.arrivals[-1].body["data"]
        assert entity["id"] == "urn:ngsi-ld:RiverGauge:after"


def test_an_expired_subscription_stops_retrying(broker: Broker, receiver: Receiver) -> None:
    receiver.status = 500
    expires = datetime.now(UTC) + timedelta(seconds=2)
    with httpx.Client(base_url=broker.url) as http:
        subscribe(http, receiver, expiresAt=expires.isoformat().replace("+00:00", "Z"))
        write_gauges(http, 2)
        assert receiver.wait_for(4, 10)
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + GRACE)
    ended = time.monotonic()
    time.sleep(2)
    assert receiver.since(ended) == []
