"""A town's grant on a type covers that type's history, and no more (issues 12 and 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import API, gauge
from tests.towns import NEIGHBOUR, OWNER, Platform, platform


@pytest.fixture
async def towns(tmp_path: Path) -> AsyncIterator[Platform]:
    async with platform(tmp_path / "data") as running:
        yield running


async def test_a_grant_on_a_type_covers_its_history(towns: Platform) -> None:
    editor = towns.member(OWNER, "editor")
    shelter = {"id": "urn:ngsi-ld:Shelter:s1", "type": "Shelter", "capacity": 300}
    for body in (gauge("urn:ngsi-ld:RiverGauge:g1", 1.5), shelter):
        assert (
            await towns.http.post(f"{API}/entities", json=body, headers=editor)
        ).status_code == 201
    patched = await towns.http.patch(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:g1/attrs/level",
        json={"value": 2.5, "observedAt": "2026-11-23T02:00:00Z"},
        headers=editor,
    )
    assert patched.status_code == 204
    await towns.share(
        {"grantee": {"tenant": NEIGHBOUR}, "types": ["RiverGauge"], "attrs": ["level"]}
    )
    neighbour = towns.as_(f"{NEIGHBOUR}:reader", tenant=OWNER)
    found = await towns.http.get(
        f"{API}/temporal/entities", params={"type": "RiverGauge,Shelter"}, headers=neighbour
    )
    assert found.status_code == 200
    (only,) = found.json()
    assert only["id"] == "urn:ngsi-ld:RiverGauge:g1"
    assert [i["value"] for i in only["level"]] == [1.5, 2.5]
    assert "alert" not in only  # an attribute outside the grant has no visible history
    hidden = await towns.http.get(
        f"{API}/temporal/entities/urn:ngsi-ld:Shelter:s1", headers=neighbour
    )
    assert hidden.status_code == 404
    refused = await towns.http.delete(
        f"{API}/temporal/entities/urn:ngsi-ld:RiverGauge:g1", headers=neighbour
    )
    assert refused.status_code == 403
