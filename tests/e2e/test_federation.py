"""A prefecture and two towns as three real `toshi serve` processes (issue 14).

Each town keeps its own river gauges and registers them with the prefecture; an app asks the
prefecture only. Town B's gauges are registered ``exclusive`` for their ``level`` (the town
owns that data), so a batch upsert of levels sent to the prefecture lands in town B.
"""

from __future__ import annotations

import http.client
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

pytestmark = pytest.mark.e2e
API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
TIMEOUT_MS = 800


def gauge(entity_id: str, level: float) -> dict:
    return {
        "id": entity_id,
        "type": "RiverGauge",
        "level": {"type": "Property", "value": level, "observedAt": "2026-06-01T00:00:00Z"},
    }


def register(at: Broker, source: Broker, reg_id: str, **members: object) -> None:
    body = {
        "id": reg_id,
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "RiverGauge"}]}],
        "endpoint": source.url,
        "management": {"timeout": TIMEOUT_MS},
        **members,
    }
    answer = httpx.post(f"{at.url}{API}/csourceRegistrations", json=body, headers=JSON)
    assert answer.status_code == 201, answer.text


@pytest.fixture
def region(tmp_path: Path) -> Iterator[tuple[Broker, Broker, Broker]]:
    brokers = [Broker(tmp_path / name, log=tmp_path / f"{name}.log") for name in "pab"]
    for broker in brokers:
        broker.start()
    prefecture, town_a, town_b = brokers
    yield prefecture, town_a, town_b
    for broker in brokers:
        if broker.process is not None and broker.process.poll() is None:
            broker.stop()


def ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return sorted(entity["id"] for entity in answer.json())


def test_prefecture_answers_for_the_region_and_survives_a_town_going_down(
    region: tuple[Broker, Broker, Broker],
) -> None:
    prefecture, town_a, town_b = region
    httpx.post(f"{prefecture.url}{API}/entities", json=gauge("urn:g:p1", 1.0), headers=JSON)
    httpx.post(f"{town_a.url}{API}/entities", json=gauge("urn:g:a1", 2.0), headers=JSON)
    httpx.post(f"{town_b.url}{API}/entities", json=gauge("urn:g:b1", 3.0), headers=JSON)
    register(prefecture, town_a, "urn:reg:a")
    register(
        prefecture,
        town_b,
        "urn:reg:b",
        mode="exclusive",
        information=[
            {"entities": [{"type": "RiverGauge", "id": "urn:g:b1"}], "propertyNames": ["level"]}
        ],
        operations=["retrieveOps", "upsertBatch", "queryBatch"],
    )
    query = f"{prefecture.url}{API}/entities"
    assert ids(httpx.get(query, params={"type": "RiverGauge"})) == [
        "urn:g:a1",
        "urn:g:b1",
        "urn:g:p1",
    ]
    local = httpx.get(query, params={"type": "RiverGauge", "local": "true"})
    assert ids(local) == ["urn:g:p1"]
    retrieved = httpx.get(f"{query}/urn:g:b1")
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.json()["level"]["value"] == 3.0

    upsert = httpx.post(
        f"{prefecture.url}{API}/entityOperations/upsert",
        json=[gauge("urn:g:b1", 4.5), gauge("urn:g:p2", 0.5)],
        headers=JSON,
    )
    assert upsert.status_code in (201, 204), upsert.text
    owner = httpx.get(f"{town_b.url}{API}/entities/urn:g:b1").json()
    assert owner["level"]["value"] == 4.5  # forwarded to the town that owns it
    assert (
        httpx.get(f"{prefecture.url}{API}/entities/urn:g:p2", params={"local": "true"}).status_code
        == 200
    )

    town_a.stop()
    started = time.monotonic()
    answer = httpx.get(query, params={"type": "RiverGauge"}, timeout=10)
    elapsed = time.monotonic() - started
    assert ids(answer) == ["urn:g:b1", "urn:g:p1", "urn:g:p2"]
    assert elapsed < TIMEOUT_MS / 1000 + 1.0
    assert answer.headers["NGSILD-Warning"].startswith("199 urn:reg:a ")  # §6.3.17
    status = httpx.get(f"{prefecture.url}{API}/csourceRegistrations/urn:reg:a").json()
    assert status["status"] == "failed"


def test_a_registration_loop_is_detected(region: tuple[Broker, Broker, Broker]) -> None:
    prefecture, town_a, _ = region
    httpx.post(f"{prefecture.url}{API}/entities", json=gauge("urn:g:p1", 1.0), headers=JSON)
    httpx.post(f"{town_a.url}{API}/entities", json=gauge("urn:g:a1", 2.0), headers=JSON)
    register(prefecture, town_a, "urn:reg:a")
    register(town_a, prefecture, "urn:reg:p")  # A registers B, B registers A
    started = time.monotonic()
    answer = httpx.get(f"{prefecture.url}{API}/entities", params={"type": "RiverGauge"}, timeout=10)
    assert ids(answer) == ["urn:g:a1", "urn:g:p1"]
    assert time.monotonic() - started < TIMEOUT_MS / 1000
    # The query came back to the prefecture through the town, which the prefecture refused
    # (508): the town counted its registration of the prefecture as failed.
    status = httpx.get(f"{town_a.url}{API}/csourceRegistrations/urn:reg:p").json()
    assert status["status"] == "failed"
    looped = httpx.get(
        f"{prefecture.url}{API}/entities",
        params={"type": "RiverGauge"},
        headers={"Via": f"1.1 elsewhere, {via_of(prefecture)}"},
    )
    assert looped.status_code == 508


def via_of(broker: Broker) -> str:
    """The Via hop a broker adds, as its registrations' sources see it."""
    info = httpx.get(f"{broker.url}{API}/info/sourceIdentity").json()
    return f"1.1 {info['contextSourceAlias']}"


def test_the_readme_federation_example_works_as_written(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("## Federation") : text.index("## Tests")]
    (block,) = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    ports = {str(p): str(free_port()) for p in (1026, 1027, 1028)}
    for old, new in ports.items():
        block = block.replace(old, new)
    for town in ("pref", "kamo", "uji"):
        block = block.replace(f"sqlite:///tmp/{town}", f"sqlite:///{tmp_path / town}")
    script = "set -euo pipefail\ntoshi() { exec " + sys.executable + ' -m broker "$@"; }\n' + block
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    answers = [line for line in done.stdout.splitlines() if line.startswith("[") or "{" in line]
    everything = json.loads(answers[0])
    assert sorted(e["id"].rsplit(":", 1)[1] for e in everything) == ["kamo-1", "pref-1", "uji-1"]
    assert [e["id"] for e in json.loads(answers[1])] == ["urn:ngsi-ld:RiverGauge:pref-1"]
    assert json.loads(answers[2])["level"] == 0.9  # the update reached Uji


def test_created_answers_spell_location_canonically(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "data")
    broker.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", broker.port, timeout=10)
        body = (
            '{"type": "ContextSourceRegistration", "endpoint": "http://town.example",'
            ' "information": [{"entities": [{"type": "RiverGauge"}]}]}'
        )
        connection.request("POST", f"{API}/csourceRegistrations", body, JSON)
        answer = connection.getresponse()
        assert answer.status == 201
        names = [name for name, _ in answer.getheaders()]
        assert "Location" in names  # exact spelling, as naive clients look it up
        connection.close()
    finally:
        broker.stop()
