"""A store that is away answers 503 with Retry-After, not a 500 that looks like our bug."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.conftest import API

JSON_LD = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("path", "patch"),
    [
        ("/attrs", {"height": {"type": "Property", "value": 2.0}}),
        ("/attrs/height", {"type": "Property", "value": 2.0}),  # served by the fast lane
    ],
)
async def test_a_write_to_a_locked_store_is_a_503_the_client_may_retry(
    client: httpx.AsyncClient, tmp_path: Path, path: str, patch: dict[str, object]
) -> None:
    gauge = {
        "id": "urn:ngsi-ld:WaterObserved:g1",
        "type": "WaterObserved",
        "height": {"type": "Property", "value": 1.0},
    }
    assert (await client.post(f"{API}/entities", json=gauge, headers=JSON_LD)).status_code == 201
    holder = sqlite3.connect(tmp_path / "data" / "default.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        patch = {"height": {"type": "Property", "value": 2.0}}
        got = await client.patch(f"{API}/entities/{gauge['id']}/attrs", json=patch, headers=JSON_LD)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert got.status_code == 503
    assert got.headers["Retry-After"] == "1"
    assert got.json()["type"].endswith("StoreUnavailable")
    again = await client.patch(f"{API}/entities/{gauge['id']}{path}", json=patch, headers=JSON_LD)
    assert again.status_code == 204
