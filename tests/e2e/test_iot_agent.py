"""An actuator behind a real FIWARE IoT Agent, commanded through Toshi (issue 14 point 5).

The agent is iotagent-node-lib 4 (the library every FIWARE IoT Agent is built on) speaking
NGSI-LD to a real `toshi serve`, with the IoT Agent JSON's MQTT southbound
(``tests/iotagent/agent.js``, installed by ``scripts/test`` with ``npm ci --prefix
tests/iotagent``); the device is this test, on a real MQTT broker. Provisioning a device with a
command makes the agent register it with Toshi; a command written to the entity in Toshi goes
to the agent, which publishes it to the device; the device's result comes back into the entity
as ``<command>_status`` and ``<command>_info``; deprovisioning removes the registration.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import orjson
import pytest

from tests.e2e.broker_process import Broker
from tests.mqtt_fixtures import MqttBroker, collect

pytestmark = pytest.mark.e2e
AGENT = Path(__file__).resolve().parents[1] / "iotagent"
API = "/ngsi-ld/v1"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
WITHIN = 30.0
"""Seconds to wait for each step: generous, the machine may be loaded."""


@dataclass
class Agent:
    url: str
    process: subprocess.Popen[str]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def toshi(tmp_path: Path) -> Iterator[Broker]:
    # A forwarded command waits for the agent, which first writes the PENDING status back to
    # Toshi and publishes to MQTT: allow for a loaded machine.
    broker = Broker(
        tmp_path / "toshi",
        {"TOSHI_FEDERATION__TIMEOUT": "10", "TOSHI_FEDERATION__TENANTLESS": "request"},
        log=tmp_path / "toshi.log",
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def agent(toshi: Broker, mqtt_broker: MqttBroker, tmp_path: Path) -> Iterator[Agent]:
    """A running IoT Agent; fails (never skips) if it cannot run."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed for the IoT Agent tests: install node (20 or later)")
    if not (AGENT / "node_modules" / "iotagent-node-lib").is_dir():
        pytest.fail("iotagent-node-lib is not installed: run npm ci --prefix tests/iotagent")
    log = tmp_path / "agent.log"
    with log.open("w") as errors:
        process = subprocess.Popen(
            [node, str(AGENT / "agent.js"), toshi.url, mqtt_broker.url, CORE],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env={**os.environ, "IOTA_LOG_LEVEL": os.environ.get("IOTA_LOG_LEVEL", "FATAL")},
        )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and not line.startswith("READY "):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                pytest.fail(f"the IoT Agent exited: {log.read_text(errors='replace')}")
        if not line.startswith("READY "):
            pytest.fail(f"the IoT Agent did not start: {log.read_text(errors='replace')}")
        yield Agent(line.split()[1], process, log)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


async def eventually(read: Any, check: Any, what: str) -> Any:
    """Poll ``read()`` until ``check`` holds for its result."""
    deadline = time.monotonic() + WITHIN
    while True:
        got = await read()
        if check(got):
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {WITHIN}s; last seen: {got}")
        await asyncio.sleep(0.1)


async def test_a_command_reaches_the_device_and_its_result_the_entity(
    toshi: Broker, agent: Agent, mqtt_broker: MqttBroker
) -> None:
    service = f"kamo{uuid.uuid4().hex[:8]}"
    apikey = uuid.uuid4().hex
    gate = f"urn:ngsi-ld:Sluice:{service}-gate1"
    in_service = {"fiware-service": service, "fiware-servicepath": "/"}
    in_tenant = {"NGSILD-Tenant": service}
    device = {
        "device_id": "gate1",
        "entity_name": gate,
        "entity_type": "Sluice",
        "apikey": apikey,
        "protocol": "PDI-IoTA-JSON",
        "transport": "MQTT",
        "commands": [{"name": "open", "type": "command"}],
        "attributes": [{"object_id": "l", "name": "level", "type": "Number"}],
    }
    async with httpx.AsyncClient(timeout=WITHIN) as http:
        provisioned = await http.post(
            f"{agent.url}/iot/devices", json={"devices": [device]}, headers=in_service
        )
        assert provisioned.status_code == 201, f"{provisioned.text}\n{agent.log_text()}"

        # The agent registered the device with Toshi as the exclusive source of its command.
        (registration,) = (
            await http.get(
                f"{toshi.url}{API}/csourceRegistrations",
                params={"type": "Sluice"},
                headers=in_tenant,
            )
        ).json()
        assert registration["endpoint"] == agent.url
        assert registration["mode"] == "exclusive"
        assert registration["information"] == [
            {"entities": [{"id": gate, "type": "Sluice"}], "propertyNames": ["open"]}
        ]

        async with collect(mqtt_broker, f"/{apikey}/gate1/cmd") as commands:
            sent = await http.patch(
                f"{toshi.url}{API}/entities/{gate}/attrs/open",
                json={"type": "Property", "value": "0.5"},
                headers=in_tenant,
            )
            assert sent.status_code == 204, f"{sent.text}\n{agent.log_text()}"
            await commands.wait_for(1, within=WITHIN)
        assert commands.json() == {"open": "0.5"}

        async def entity() -> dict[str, Any]:
            got = await http.get(f"{toshi.url}{API}/entities/{gate}", headers=in_tenant)
            return dict(got.json()) if got.status_code == 200 else {"status": got.status_code}

        pending = await eventually(entity, lambda e: "open_status" in e, "PENDING in Toshi")
        assert pending["open_status"]["value"] in ("PENDING", "OK")
        assert "open" not in pending  # the command lives at the agent, not in Toshi

        async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as device_side:
            result = orjson.dumps({"open": "opened to 0.5"})
            await device_side.publish(f"/{apikey}/gate1/cmdexe", result, qos=1)
        done = await eventually(
            entity,
            lambda e: e.get("open_info", {}).get("value") == "opened to 0.5",
            "the command's result in Toshi",
        )
        assert done["open_status"]["value"] == "OK"

        removed = await http.delete(f"{agent.url}/iot/devices/gate1", headers=in_service)
        assert removed.status_code == 204, removed.text
        left = await http.get(
            f"{toshi.url}{API}/csourceRegistrations", params={"type": "Sluice"}, headers=in_tenant
        )
        assert left.json() == []
