"""Transient entities end to end (GS CIM 009 v1.9.1 §4.22, issue 13 point 5): a real
`toshi serve` sweeps what expired out of the store, and a subscriber hears of each deletion
through the ordinary notification path. Real HTTP receiver."""

from __future__ import annotations

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
SWEEP = 0.2


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    running = Broker(tmp_path / "data", {"TOSHI_EXPIRY_SWEEP_INTERVAL": str(SWEEP)})
    running.start()
    yield running
    running.stop()


def soon(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[
        :-3
    ] + "Z"


def type_count(http: httpx.Client, type_name: str) -> int:
    rows = http.get(f"{API}/types", params={"details": "true"}).json()
    return sum(1 for row in rows if row["typeName"] == type_name)


def test_the_sweep_deletes_expired_entities_and_attributes_and_notifies(
    broker: Broker, receiver: Receiver
) -> None:
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "FloodAlert"}, {"type": "RiverGauge"}],
        "notificationTrigger": ["entityDeleted", "attributeDeleted"],
        "notification": {"endpoint": {"uri": receiver.url}},
    }
    alert = {
        "id": "urn:ngsi-ld:FloodAlert:kamo",
        "type": "FloodAlert",
        "severity": {"type": "Property", "value": "high"},
        "expiresAt": soon(1.0),
    }
    gauge = {
        "id": "urn:ngsi-ld:RiverGauge:kamo",
        "type": "RiverGauge",
        "level": {"type": "Property", "value": 2.5},
        "gust": {"type": "Property", "value": 19, "expiresAt": soon(1.0)},
    }
    with httpx.Client(base_url=broker.url) as http:
        assert http.post(f"{API}/subscriptions", json=subscription, headers=JSON).status_code == 201
        for body in (alert, gauge):
            assert http.post(f"{API}/entities", json=body, headers=JSON).status_code == 201
        assert type_count(http, "FloodAlert") == 1
        assert receiver.wait_for(2, 10), "no deletion was notified"
        deleted = {item["id"]: item for body in receiver.bodies for item in body["data"]}
        assert set(deleted) == {alert["id"], gauge["id"]}
        assert deleted[gauge["id"]]["gust"]["value"] == "urn:ngsi-ld:null"
        assert deleted[gauge["id"]]["level"]["value"] == 2.5
        # Removed from the store, not only hidden: discovery no longer counts it.
        assert type_count(http, "FloodAlert") == 0
        kept = http.get(f"{API}/entities/{gauge['id']}").json()
        assert set(kept) == {"id", "type", "level"}


def test_writes_go_on_while_many_entities_expire(broker: Broker) -> None:
    expiring = soon(0.5)
    with httpx.Client(base_url=broker.url) as http:
        batch = [
            {"id": f"urn:ngsi-ld:Reading:{n}", "type": "Reading", "expiresAt": expiring, "v": n}
            for n in range(500)
        ]
        assert (
            http.post(f"{API}/entityOperations/create", json=batch, headers=JSON).status_code == 201
        )
        time.sleep(0.5)
        started = time.monotonic()
        slowest = 0.0
        for n in range(50):
            body = {"id": f"urn:ngsi-ld:Gauge:{n}", "type": "Gauge", "v": n}
            began = time.monotonic()
            assert http.post(f"{API}/entities", json=body, headers=JSON).status_code == 201
            slowest = max(slowest, time.monotonic() - began)
        deadline = started + 10
        while type_count(http, "Reading") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert type_count(http, "Reading") == 0, "the sweep did not remove every expired entity"
        assert slowest < 1.0, f"a write waited {slowest:.2f} s behind the sweep"
