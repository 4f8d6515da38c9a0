"""The README's first two sections, run to the letter against a real `toshi serve`.

Every `curl` in the Quick start and "Querying the city" is run in order, as a reader pasting
them would: none may fail, and every query must find something (issue 11: the query examples
once followed the deletion of their only entity, so each of them answered `[]`). The sensor
examples are published to a private Mosquitto and must all become entities (issue 11: the
ChirpStack uplink had no group provisioned, so it was silently set aside).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.broker_process import Broker, free_port
from tests.mqtt_fixtures import own_mosquitto

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"
RECORDING_CURL = r"""
n=0
curl() {
  n=$((n+1))
  args=()
  for a in "$@"; do [ "$a" = "-i" ] || args+=("$a"); done
  printf '%s\n' "$*" > "$OUT/$n.args"
  command curl -sS -o "$OUT/$n.body" -w '%{http_code}' "${args[@]}" > "$OUT/$n.status"
}
"""


def shell_blocks(first: str, until: str | None = None) -> list[str]:
    """The ``sh`` blocks from the heading ``first`` to ``until`` (default: the next heading)."""
    text = README.read_text()
    start = text.index(first)
    end = text.index(until) if until else text.find("\n## ", start + len(first))
    section = text[start : end if end >= 0 else len(text)]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [b for b in blocks if "pip install" not in b]  # the install-and-run line


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    running = Broker(tmp_path / "data")
    running.start()
    yield running
    running.stop()


def test_the_quick_start_and_query_examples_work_as_written(broker: Broker, tmp_path: Path) -> None:
    out = tmp_path / "calls"
    out.mkdir()
    host = broker.url.removeprefix("http://")
    script = RECORDING_CURL + "\n".join(
        block.replace("localhost:1026", host)
        for block in shell_blocks("## Quick start", "## Subscriptions and notifications")
    )
    subprocess.run(
        ["bash", "-c", script], check=True, env={"OUT": str(out), "PATH": "/usr/bin:/bin"}
    )
    calls = sorted(out.glob("*.status"), key=lambda p: int(p.stem))
    assert len(calls) >= 15
    for status_file in calls:
        n = status_file.stem
        args = (out / f"{n}.args").read_text().strip()
        status = int(status_file.read_text())
        assert status < 400, f"{args} -> {status}: {(out / f'{n}.body').read_text()}"
        if " -G " in f" {args} " or "entityOperations/query" in args:
            found = json.loads((out / f"{n}.body").read_text())
            assert found, f"the README query found nothing: curl {args}"


def test_the_sensor_examples_arrive_as_written(tmp_path: Path) -> None:
    with own_mosquitto(tmp_path / "mosquitto") as mqtt:
        broker = Broker(tmp_path / "data", {"TOSHI_MQTT__URL": mqtt.url})
        broker.start()
        try:
            host = broker.url.removeprefix("http://")
            blocks = shell_blocks("## Sensors: MQTT and LoRaWAN ingest")
            script = "\n".join(
                block.replace("localhost:1026", host)
                .replace("mosquitto_pub ", f"mosquitto_pub -h {mqtt.host} -p {mqtt.port} ")
                .replace('"port": 1883', f'"port": {mqtt.port}')
                for block in blocks
                if "toshi serve" not in block
            )
            subprocess.run(["bash", "-ec", script], check=True, capture_output=True)
            expected = {
                ("towna", "urn:ngsi-ld:WaterObserved:towna:gauge-07"): ("height", 2.60),
                ("towna", "urn:ngsi-ld:WeatherObserved:ws-01"): ("temperature", 12.3),
                ("towna", "urn:ngsi-ld:WaterObserved:gauge-07"): ("height", 2.41),
            }
            with httpx.Client(base_url=broker.url) as http:
                for (tenant, entity_id), (attr, value) in expected.items():
                    found = None
                    for _ in range(100):
                        answer = http.get(
                            f"/ngsi-ld/v1/entities/{entity_id}",
                            params={"options": "keyValues"},
                            headers={"NGSILD-Tenant": tenant},
                        )
                        found = answer.json() if answer.status_code == 200 else None
                        if found is not None and found.get(attr) == value:
                            break
                        time.sleep(0.1)
                    assert found is not None and found.get(attr) == value, (entity_id, found)
        finally:
            broker.stop()


def test_the_sharing_walkthrough_works_as_written(tmp_path: Path) -> None:
    (block,) = shell_blocks("## Sharing between towns")
    port = free_port()
    script = block.replace("localhost:1026", f"127.0.0.1:{port}")
    bin_dir = Path(sys.executable).parent
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "TOSHI_PORT": str(port),
        "TOSHI_LOG_LEVEL": "warning",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        ["bash", "-ec", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    codes = [line for line in done.stdout.splitlines() if re.fullmatch(r"\d{3}", line)]
    assert codes == ["403", "404", "403", "403"]
    shared = next(line for line in done.stdout.splitlines() if "kasuga-1" in line and "[" in line)
    assert json.loads(shared) == [
        {"id": "urn:ngsi-ld:RiverGauge:kasuga-1", "type": "RiverGauge", "level": 1.8}
    ]
    assert '"typeList":["RiverGauge"]}' in done.stdout.replace(" ", "")
