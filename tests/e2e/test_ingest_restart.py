"""A Toshi restart (kill -9) while devices keep publishing loses no measure (QoS 1 + session)."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.e2e.broker_process import Broker
from tests.mqtt_fixtures import MqttBroker

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
DEVICES = 10
MESSAGES = 600


class SeqSink:
    """Records every ``seq`` value notified (keyValues), across broker restarts."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                sink.seen.update(int(entity["seq"]) for entity in body["data"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def seq_sink() -> Iterator[SeqSink]:
    sink = SeqSink()
    yield sink
    sink.close()


def publisher(broker: MqttBroker, apikey: str, stop_after: int) -> threading.Thread:
    def run() -> None:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{apikey}")
        client.connect(broker.host, broker.port)
        client.loop_start()
        try:
            for seq in range(stop_after):
                topic = f"/json/{apikey}/dev{seq % DEVICES}/attrs"
                client.publish(topic, json.dumps({"seq": seq}), qos=1).wait_for_publish(10)
                time.sleep(0.004)
        finally:
            client.loop_stop()
            client.disconnect()

    return threading.Thread(target=run, daemon=True)


def test_measures_published_while_toshi_is_killed_and_restarted_all_arrive(
    tmp_path: Path, mqtt_broker: MqttBroker, seq_sink: SeqSink
) -> None:
    unique = uuid.uuid4().hex[:8]
    env = {
        "TOSHI_MQTT__URL": mqtt_broker.url,
        "TOSHI_MQTT__CLIENT_ID": f"toshi-restart-{unique}",
        "TOSHI_MQTT__SHARED_GROUP": f"g{unique}",
        "TOSHI_MQTT__SESSION_EXPIRY": "30",  # outlives the restart, not the test
    }
    broker = Broker(tmp_path / "data", env)
    broker.start()
    apikey = f"k{unique}"
    group = {
        "apikey": apikey,
        "entity_type": "WaterObserved",
        "attributes": [{"object_id": "seq", "name": "seq", "type": "Integer"}],
    }
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "WaterObserved"}],
        "notification": {"endpoint": {"uri": seq_sink.url}, "format": "keyValues"},
    }
    with httpx.Client(base_url=broker.url) as http:
        assert http.post("/iot/groups", json={"groups": [group]}, headers=JSON).is_success
        assert http.post(f"{API}/subscriptions", json=subscription, headers=JSON).is_success
    devices = publisher(mqtt_broker, apikey, MESSAGES)
    devices.start()
    while len(seq_sink.seen) < MESSAGES // 4:  # well under way
        time.sleep(0.05)
    broker.stop(signal.SIGKILL)  # devices keep publishing while Toshi is down
    time.sleep(1.0)
    broker.start()
    try:
        devices.join(60)
        deadline = time.monotonic() + 30
        while len(seq_sink.seen) < MESSAGES and time.monotonic() < deadline:
            time.sleep(0.1)
        missing = sorted(set(range(MESSAGES)) - seq_sink.seen)
        assert missing == [], f"{len(missing)} measures lost, e.g. {missing[:10]}"
    finally:
        broker.stop()
