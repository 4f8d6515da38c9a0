"""``GET /dashboard/events`` on a real ``toshi serve``, read with a plain HTTP client."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.dashboard.town import API, river_town, seed, start_broker
from tests.e2e.broker_process import Broker

pytestmark = pytest.mark.e2e
SANJO = "urn:ngsi-ld:WaterObserved:kamo-sanjo"
EVENTS = "/dashboard/events?type=WaterObserved,Alert"
ACCEPT = {"Accept": "text/event-stream"}


class Reader(threading.Thread):
    """Reads one event stream into (event, data) pairs until it ends."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.events: list[tuple[str, str]] = []
        self.ended = threading.Event()

    def run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=None)) as http,
                http.stream("GET", self.url, headers=ACCEPT) as reply,
            ):
                assert reply.headers["content-type"].startswith("text/event-stream")
                event = ""
                for line in reply.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        self.events.append((event, line.removeprefix("data: ")))
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    def wait_for(self, event: str, count: int = 1, timeout: float = 5) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [data for name, data in self.events if name == event]
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {count} {event!r} events in {timeout} s: {self.events}")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    running = start_broker(tmp_path)
    seed(running.url, river_town())
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop(signal.SIGTERM)


def test_a_change_is_pushed_in_the_compact_form_the_page_asked_for(broker: Broker) -> None:
    reader = Reader(broker.url + EVENTS + "&attrs=height,location,nowhere")
    reader.start()
    reader.wait_for("ready")
    stored = httpx.get(f"{broker.url}{API}/entities/{SANJO}", params={"options": "sysAttrs"})
    plain = httpx.get(f"{broker.url}{API}/entities/{SANJO}").json()
    reply = httpx.patch(
        f"{broker.url}{API}/entities/{SANJO}/attrs/height",
        json={"value": 3.3, "unitCode": "MTR", "observedAt": "2026-01-01T00:00:00Z"},
    )
    assert reply.status_code == 204
    (data,) = reader.wait_for("changes")
    (entity,) = json.loads(data)
    # Only what the page draws: no other attribute, no per-attribute system times.
    assert set(entity) == {"id", "type", "modifiedAt", "height", "location"}
    assert entity["id"] == SANJO
    assert entity["type"] == "WaterObserved"
    assert entity["height"] == {
        "type": "Property",
        "value": 3.3,
        "observedAt": "2026-01-01T00:00:00Z",
        "unitCode": "MTR",
    }
    assert entity["location"] == plain["location"]
    assert entity["modifiedAt"] > stored.json()["modifiedAt"]  # for the page to order them


def test_changes_within_a_window_come_as_one_event_with_the_latest_state(
    broker: Broker,
) -> None:
    reader = Reader(broker.url + EVENTS + "&attrs=height")
    reader.start()
    reader.wait_for("ready")
    with httpx.Client(base_url=f"{broker.url}{API}") as http:
        for value in (1.0, 2.0, 3.0):  # well within the 0.1 s window
            assert http.patch(f"/entities/{SANJO}/attrs/height", json={"value": value}).is_success
    time.sleep(0.5)
    shown = [doc for data in reader.wait_for("changes") for doc in json.loads(data)]
    assert shown[-1]["height"]["value"] == 3.0
    assert len(shown) < 3


def test_the_stream_is_offered_as_server_sent_events_only(broker: Broker) -> None:
    reply = httpx.get(broker.url + EVENTS, headers={"Accept": "application/json"})
    assert reply.status_code == 406
    reply = httpx.get(f"{broker.url}/dashboard/events?type=", headers=ACCEPT)
    assert reply.status_code == 400


def test_its_subscription_is_the_stream_s_alone(broker: Broker) -> None:
    reader = Reader(broker.url + EVENTS)
    reader.start()
    reader.wait_for("ready")
    # Not listed, not saved: after a restart nothing of it is left.
    assert httpx.get(f"{broker.url}{API}/subscriptions").json() == []
    broker.stop(signal.SIGTERM)
    assert reader.ended.wait(5)  # the broker let the page go at once
    broker.start()
    assert httpx.get(f"{broker.url}{API}/subscriptions").json() == []


def test_a_client_cannot_name_a_sink(broker: Broker) -> None:
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "WaterObserved"}],
        "notification": {"endpoint": {"uri": "sink://0123456789abcdef:1/"}},
    }
    reply = httpx.post(f"{broker.url}{API}/subscriptions", json=subscription)
    assert reply.status_code == 400


def test_a_deleted_entity_is_pushed_as_deleted(broker: Broker) -> None:
    reader = Reader(broker.url + EVENTS)
    reader.start()
    reader.wait_for("ready")
    assert httpx.delete(f"{broker.url}{API}/entities/{SANJO}").status_code == 204
    (data,) = reader.wait_for("changes")
    (entity,) = json.loads(data)
    assert entity["id"] == SANJO
    assert "deletedAt" in entity
