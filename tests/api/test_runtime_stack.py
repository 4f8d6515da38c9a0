"""The broker's parts start and stop as one stack (issue 11, point 5), in process."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from broker.app import open_runtime
from broker.settings import Settings


def store_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("sqlite-")]


async def test_a_failing_part_unwinds_every_part_started_before_it(tmp_path: Path) -> None:
    before = store_threads()
    settings = Settings(store=f"sqlite:///{tmp_path}", mqtt={"url": "mqtt://127.0.0.1:99999"})
    with pytest.raises(ValueError, match="bad port"):
        async with open_runtime(settings):
            pytest.fail("the broker started with an unusable MQTT URL")
    await asyncio.sleep(0)
    assert store_threads() == before  # the store's writer and reader threads were stopped
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftovers == []  # no dispatcher worker, journal flusher or status saver left


async def test_stopping_stops_every_part(tmp_path: Path) -> None:
    before = store_threads()
    async with open_runtime(Settings(store=f"sqlite:///{tmp_path}")) as runtime:
        assert runtime.store.describe()["backend"] == "sqlite"
        assert len(store_threads()) > len(before)
    await asyncio.sleep(0)
    assert store_threads() == before
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
