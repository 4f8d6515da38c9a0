"""The fast lane answers exactly as FastAPI does (broker/api/fastlane.py).

Two brokers on their own SQLite stores get the same writes; one serves the hot routes through
the fast lane (the default), the other through FastAPI alone. Every request below, valid or
not, must get the same status, the same body and the same headers from both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from broker.api.entities import router as entities_router
from broker.api.fastlane import FastLane, UnsupportedRoute, build_lanes

from tests.conftest import broker_client, gauge, make_settings

E = "/ngsi-ld/v1/entities"
ID = "urn:ngsi-ld:RiverGauge:kamo-1"

REQUESTS: list[tuple[str, str, dict[str, str], Any]] = [
    ("GET", f"{E}?type=RiverGauge", {}, None),
    ("GET", f"{E}?type=RiverGauge&limit=1&count=true", {}, None),
    ("GET", f"{E}?type=RiverGauge&count=yes&limit=1&offset=1", {}, None),
    ("GET", f"{E}?type=RiverGauge&count=maybe", {}, None),
    ("GET", f"{E}?type=RiverGauge&limit=abc", {}, None),
    ("GET", f"{E}?type=RiverGauge&limit=-1", {}, None),
    ("GET", f"{E}?type=RiverGauge&limit=", {}, None),
    ("GET", f"{E}?type=Nothing&type=RiverGauge", {}, None),
    ("GET", f"{E}?type=RiverGauge&q=level>2&options=keyValues", {}, None),
    ("GET", f"{E}?type=RiverGauge&pick=level&omit=alert", {}, None),
    ("GET", f"{E}?type=RiverGauge&joinLevel=2&join=inline", {}, None),
    ("GET", f"{E}?type=RiverGauge&unknown=1", {}, None),
    ("GET", f"{E}?type=RiverGauge", {"Accept": "application/geo+json"}, None),
    ("GET", f"{E}?type=RiverGauge", {"Accept": "text/csv"}, None),
    ("GET", f"{E}?type=RiverGauge", {"NGSILD-Tenant": "nowhere"}, None),
    ("GET", f"{E}", {}, None),
    ("GET", f"{E}/{ID}", {}, None),
    ("GET", f"{E}/{ID}?options=sysAttrs,keyValues&attrs=level", {}, None),
    ("GET", f"{E}/{ID}?joinLevel=0", {}, None),
    ("GET", f"{E}/{ID}?joinLevel=11", {}, None),
    ("GET", f"{E}/{ID}?joinLevel=two", {}, None),
    ("GET", f"{E}/{ID}?entityMap=true", {}, None),
    ("GET", f"{E}/{ID}?entityMap=perhaps", {}, None),
    ("GET", f"{E}/{ID}?type=Bridge", {}, None),
    ("GET", f"{E}/{ID}/", {}, None),
    ("GET", f"{E}/not-a-uri", {}, None),
    ("GET", f"{E}/urn:ngsi-ld:RiverGauge:none", {}, None),
    ("GET", f"{E}/{ID}", {"Accept": "application/geo+json"}, None),
    ("HEAD", f"{E}/{ID}", {}, None),
    ("PATCH", f"{E}/{ID}/attrs/level", {}, {"value": 2.5}),
    ("PATCH", f"{E}/{ID}/attrs/level", {}, {"value": 2.5, "observedAt": "yesterday"}),
    ("PATCH", f"{E}/{ID}/attrs/missing", {}, {"value": 1}),
    ("PATCH", f"{E}/{ID}/attrs/level?type=Bridge", {}, {"value": 3}),
    ("PATCH", f"{E}/urn:ngsi-ld:RiverGauge:none/attrs/level", {}, {"value": 1}),
    ("PATCH", f"{E}/{ID}/attrs/level", {"Content-Type": "text/plain"}, {"value": 1}),
    ("GET", f"{E}/{ID}?options=sysAttrs", {}, None),
]

# Headers whose values differ between two brokers for reasons other than the lane.
VOLATILE = {"date", "content-length"}


async def _answer(
    http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], body: Any
) -> tuple[int, dict[str, str], Any]:
    response = await http.request(method, path, headers=headers, json=body)
    kept = {k: v for k, v in response.headers.items() if k not in VOLATILE}
    if "ngsild-entitymap" in kept:  # a new map's id is random: keep where it lives
        kept["ngsild-entitymap"] = kept["ngsild-entitymap"].rsplit(":", 1)[0]
    try:
        content: Any = response.json()
    except ValueError:
        content = response.text
    return response.status_code, kept, _without_times(content)


def _without_times(value: Any) -> Any:
    """Drop system timestamps: the two brokers write at slightly different instants."""
    if isinstance(value, dict):
        return {
            k: _without_times(v) for k, v in value.items() if k not in {"createdAt", "modifiedAt"}
        }
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


@pytest.mark.parametrize("number", range(len(REQUESTS)))
async def test_the_lane_answers_as_fastapi_does(tmp_path: Path, number: int) -> None:
    answers = []
    for lane in (True, False):
        settings = make_settings(tmp_path / f"lane-{lane}", fast_lane=lane)
        async with broker_client(settings) as http:
            for n in range(3):
                entity = gauge(f"urn:ngsi-ld:RiverGauge:kamo-{n + 1}", level=1.0 + n)
                assert (await http.post(E, json=entity)).status_code == 201
            for method, path, headers, body in REQUESTS[: number + 1]:
                answer = await _answer(http, method, path, headers, body)
            answers.append(answer)
    assert answers[0] == answers[1], REQUESTS[number]


def test_a_route_shadowed_by_an_earlier_one_is_refused() -> None:
    from fastapi import APIRouter

    earlier = APIRouter()

    @earlier.get("/entities/{anything}")
    async def shadow(anything: str) -> None: ...

    with pytest.raises(UnsupportedRoute, match="shadowed"):
        build_lanes(
            [("/ngsi-ld/v1", earlier), ("/ngsi-ld/v1", entities_router)],
            frozenset({("GET", "/ngsi-ld/v1/entities/{entityId}")}),
        )


async def test_hot_routes_take_the_lane_and_the_rest_go_to_fastapi(tmp_path: Path) -> None:
    client = broker_client(make_settings(tmp_path / "data"))
    async with client as http:
        assert (await http.post(E, json=gauge())).status_code == 201  # builds the stack
        lane = client.app.middleware_stack
        while not isinstance(lane, FastLane):
            lane = lane.app  # type: ignore[union-attr]
        passed: list[str] = []
        inner = lane.app

        async def fastapi(scope: Any, receive: Any, send: Any) -> None:
            passed.append(f"{scope['method']} {scope['path']}")
            await inner(scope, receive, send)

        lane.app = fastapi
        assert (await http.get(f"{E}?type=RiverGauge")).status_code == 200
        assert (await http.get(f"{E}/{ID}")).status_code == 200
        assert (await http.patch(f"{E}/{ID}/attrs/level", json={"value": 3})).status_code == 204
        assert passed == []
        assert (await http.get(f"{E}/{ID}/")).status_code == 200  # the guard strips the slash
        assert (await http.get("/ngsi-ld/v1/types")).status_code == 200
        assert (await http.patch(f"{E}/{ID}/attrs", json={"level": 4})).status_code == 204
        assert passed == ["GET /ngsi-ld/v1/types", f"PATCH {E}/{ID}/attrs"]
