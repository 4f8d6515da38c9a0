"""Two unrelated Toshi installations on one MQTT broker, both with the default client id and
shared-subscription group: each gets every message of its own devices, and neither disturbs the
other's session.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from tests.e2e.broker_process import Broker
from tests.mqtt_fixtures import MqttBroker, own_mosquitto

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
MEASURES = 10
WITHIN = 20.0


@pytest.fixture
def city_broker(tmp_path: Path) -> Iterator[MqttBroker]:
    with own_mosquitto(tmp_path / "mosquitto") as broker:
        yield broker


def publish(broker: MqttBroker, messages: list[tuple[str, str]]) -> None:
    """Publish ``(topic, body)`` pairs at QoS 1, each confirmed by the broker."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex}")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for topic, body in messages:
            client.publish(topic, body, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def levels(http: httpx.Client, tenant: str) -> dict[str, float]:
    """Entity id -> measured height of the tenant's gauges."""
    got = http.get(
        f"{API}/entities",
        params={"type": "WaterObserved", "limit": 100, "options": "keyValues"},
        headers={"NGSILD-Tenant": tenant},
    )
    assert got.status_code == 200, got.text
    return {entity["id"]: entity["height"] for entity in got.json()}


def test_two_installations_on_one_broker_each_get_all_their_own_measures(
    tmp_path: Path, city_broker: MqttBroker
) -> None:
    towns = {"towna": f"a{uuid.uuid4().hex[:10]}", "townb": f"b{uuid.uuid4().hex[:10]}"}
    env = {"TOSHI_MQTT__URL": city_broker.url}  # client id and group: the defaults
    brokers = {town: Broker(tmp_path / town, env, log=tmp_path / f"{town}.log") for town in towns}
    for broker in brokers.values():
        broker.start()
    try:
        clients = {town: httpx.Client(base_url=broker.url) for town, broker in brokers.items()}
        for town, apikey in towns.items():
            group = {
                "apikey": apikey,
                "entity_type": "WaterObserved",
                "attributes": [{"object_id": "lvl", "name": "height", "type": "Number"}],
            }
            headers = {**JSON, "Fiware-Service": town}
            made = clients[town].post("/iot/groups", json={"groups": [group]}, headers=headers)
            assert made.status_code == 201, made.text

        # Toshi subscribes as it starts: until a probe arrives, measures could find no one.
        deadline = time.monotonic() + WITHIN
        waiting = set(towns)
        while waiting and time.monotonic() < deadline:
            publish(city_broker, [(f"/json/{towns[t]}/probe/attrs", '{"lvl": 0}') for t in waiting])
            time.sleep(0.2)
            waiting = {t for t in waiting if not levels(clients[t], t)}
        assert not waiting, f"{waiting} never subscribed"

        measures = [
            (f"/json/{apikey}/gauge-{n}/attrs", f'{{"lvl": {n + 1}}}')
            for apikey in towns.values()
            for n in range(MEASURES)
        ]
        publish(city_broker, measures)
        wanted = {f"urn:ngsi-ld:WaterObserved:gauge-{n}": n + 1 for n in range(MEASURES)}
        got: dict[str, dict[str, float]] = {}
        while time.monotonic() < deadline + WITHIN:
            got = {t: levels(clients[t], t) for t in towns}
            if all(wanted.items() <= got[t].items() for t in towns):
                break
            time.sleep(0.2)
        for town in towns:
            missing = sorted(set(wanted) - set(got[town]))
            assert missing == [], f"{town} lost {len(missing)} of its {MEASURES} measures"
            assert {k: got[town][k] for k in wanted} == wanted
        for client in clients.values():
            client.close()
    finally:
        for broker in brokers.values():
            broker.stop()
    for town, broker in brokers.items():
        log = broker.log_text()
        # Reconnection churn: sessions taken over, connections lost. (Each installation does
        # see the other's measures, and sets them aside as from unknown devices.)
        for churn in ("lost MQTT broker", "taken over", "cannot connect"):
            assert churn not in log, f"{town}'s log shows {churn!r}:\n{log}"


def test_two_installations_given_one_client_id_say_so_and_stop_fighting(
    tmp_path: Path, city_broker: MqttBroker
) -> None:
    env = {"TOSHI_MQTT__URL": city_broker.url, "TOSHI_MQTT__CLIENT_ID": "toshi-city"}
    first = Broker(tmp_path / "first", env, log=tmp_path / "first.log")
    second = Broker(tmp_path / "second", env, log=tmp_path / "second.log")
    first.start()
    try:
        time.sleep(1.0)  # connected and subscribed
        second.start()  # takes the session over
        time.sleep(8.0)
    finally:
        second.stop()
        first.stop()
    logs = {"first": first.log_text(), "second": second.log_text()}
    said = [
        line
        for log in logs.values()
        for line in log.splitlines()
        if "taken over by another client with the same client id 'toshi-city'" in line
    ]
    assert any(" ERROR " in line for line in said), logs
    assert all("TOSHI_MQTT__CLIENT_ID" in line and city_broker.url in line for line in said)
    for name, log in logs.items():
        assert "Unspecified error" not in log, log
        # One side leaves the session to the other for the backoff cap (30 s): a few losses
        # while they find out, not a fight for the whole time.
        assert log.count("lost MQTT broker") <= 2, f"{name} keeps fighting:\n{log}"
