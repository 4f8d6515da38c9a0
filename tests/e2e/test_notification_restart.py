"""At-least-once notifications across a restart: kill -9 or SIGTERM while a receiver is down."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_process import Broker, free_port
from tests.e2e.receiver import Receiver

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}


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


def test_a_state_held_back_by_throttling_is_sent_after_a_kill(tmp_path: Path) -> None:
    up = Receiver()
    up.start()
    broker = Broker(tmp_path / "data")
    broker.start()
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "throttling": 3600,  # the second change is held for an hour
        "notification": {"endpoint": {"uri": up.url}},
    }
    gauge = "urn:ngsi-ld:RiverGauge:throttled"
    try:
        with httpx.Client(base_url=broker.url) as http:
            assert http.post(f"{API}/subscriptions", json=subscription, headers=JSON).is_success
            body = {"id": gauge, "type": "RiverGauge", "level": 1.0}
            assert http.post(f"{API}/entities", json=body, headers=JSON).status_code == 201
            assert up.wait_for(1, 10)
            patched = http.patch(
                f"{API}/entities/{gauge}/attrs/level", json={"value": 3.5}, headers=JSON
            )
            assert patched.status_code == 204
        assert not up.wait_for(2, 1)  # held back by the throttle
        broker.stop(signal.SIGKILL)
        broker.start()
        assert up.wait_for(2, 15), "the held-back state was lost with the process"
        (entity,) = up.bodies[1]["data"]
        assert entity["level"]["value"] == 3.5
    finally:
        broker.stop()
        up.stop()
