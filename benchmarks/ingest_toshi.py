"""Talking to the Toshi under test for ``ingest.py``: provisioning, ``/metrics``, checking the
entities, and the notification lag with its HTTP baseline.

* Provisioning is FIWARE IoT Agent style, as an operator would do it: one group (the river gauge
  of ``ingest-formats.md``: ``lvl`` -> ``height`` in metres, ``bat`` -> ``batteryVoltage``) and
  the devices, 100 per ``POST /iot/devices``, in the default tenant (no ``Fiware-Service``), so
  the plain HTTP clients of ``harness`` reach the entities.
* Progress is read from ``GET /metrics``: ``toshi_ingest_updates_total`` counts entity updates
  *committed*, which is the end of the path being measured.
* Lag: a subscription to every WaterObserved, notified in keyValues with only ``height``, goes
  to a raw HTTP sink (``notify_sink``); the measures carry their publish time in ``lvl``, so the
  sink reads the publish time from the ``height`` it receives. The notification hop is part of
  that lag, so the same sink also times ``PATCH …/attrs/height`` stamped the same way, at the
  same rate: the HTTP write -> notification lag, which the MQTT figure is read against.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from harness import API, HOST, Request, Result
from ingest_publish import device_id
from notify_load import open_loop, send_all, subscription
from notify_sink import Recorder

ENTITY_TYPE = "WaterObserved"
_STAMP = b'"height":'


def entity_id(device: int) -> str:
    return f"urn:ngsi-ld:{ENTITY_TYPE}:bench-{device_id(device)}"


def provisioning(apikey: str, devices: int) -> list[tuple[str, str, bytes]]:
    """The requests that provision the gauge group and ``devices`` devices under ``apikey``."""
    group = {
        "apikey": apikey,
        "resource": "/iot/json",
        "entity_type": ENTITY_TYPE,
        "timestamp": True,
        "autoprovision": False,
        "attributes": [
            {
                "object_id": "lvl",
                "name": "height",
                "type": "Number",
                "metadata": {"unitCode": {"type": "Text", "value": "MTR"}},
            },
            {"object_id": "bat", "name": "batteryVoltage", "type": "Number"},
        ],
    }
    requests = [("POST", "/iot/groups", json.dumps({"groups": [group]}).encode())]
    for first in range(0, devices, 100):
        batch = [
            {
                "device_id": device_id(n),
                "apikey": apikey,
                "entity_name": entity_id(n),
                "entity_type": ENTITY_TYPE,
            }
            for n in range(first, min(devices, first + 100))
        ]
        requests.append(("POST", "/iot/devices", json.dumps({"devices": batch}).encode()))
    return requests


async def provision(port: int, apikey: str, devices: int) -> list[str]:
    """Provision over HTTP; the failures, if any."""
    group, *batches = provisioning(apikey, devices)
    result = Result("toshi", "provisioning", 0)
    await send_all(port, [group], 201, result, clients=1)
    await send_all(port, batches, 201, result, clients=4)
    return [f"provisioning: {result.errors} failed, first {result.first_error}"] * bool(
        result.errors
    )


async def subscribe_heights(port: int, sink_url: str) -> list[str]:
    """The lag subscription; the failures, if any."""
    result = Result("toshi", "subscription", 0)
    request = subscription(
        "urn:ngsi-ld:Subscription:ingest-lag",
        sink_url,
        {"type": ENTITY_TYPE},
        watched=("height",),
        attributes=("height",),
    )
    await send_all(port, [request], 201, result, clients=1)
    return [f"subscription: {result.first_error}"] * bool(result.errors)


async def metrics(http: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """Every sample of ``GET /metrics``, by name with its labels as printed."""
    async with http.get(f"http://{HOST}:{port}/metrics") as response:
        text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def family_total(samples: dict[str, float], family: str) -> float:
    """The sum of a family's samples (0 when it has none)."""
    return sum(v for k, v in samples.items() if k == family or k.startswith(family + "{"))


async def wrong_values(
    http: aiohttp.ClientSession, port: int, expected: dict[int, float]
) -> list[str]:
    """The devices whose entity does not show ``height`` == the last level they published."""
    wrong = []
    for device, level in expected.items():
        async with http.get(f"http://{HOST}:{port}{API}/entities/{entity_id(device)}") as answer:
            body: dict[str, Any] = await answer.json() if answer.status == 200 else {}
        shown = body.get("height", {}).get("value")
        if shown != level or body.get("height", {}).get("unitCode") != "MTR":
            wrong.append(f"{device_id(device)}: published {level}, GET shows {shown}")
    return wrong


class HeightRecorder(Recorder):
    """``notify_sink``'s recorder, reading the publish time from ``height`` instead of ``seq``."""

    def note(self, arrived: float, body: bytes) -> None:
        super().note(arrived, body.replace(_STAMP, b'"seq":', 1))


def stamped_height(entity: str) -> Request:
    """``PATCH …/attrs/height`` with the time it is sent, as ``HeightRecorder`` reads it."""
    return "PATCH", f"{API}/entities/{entity}/attrs/height", b'{"value":%r}' % time.time()


async def patch_loop(
    port: int, devices: Sequence[int], rate: float, duration: float, result: Result
) -> int:
    """``stamped_height`` updates, ``rate``/s for ``duration`` s, open loop; returns how many
    were answered 204."""
    entities = [entity_id(device) for device in devices]
    return await open_loop(port, entities, rate, duration, result, stamped_height)
