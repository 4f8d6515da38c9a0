"""The installation id: made once per store, kept across restarts, different for another store."""

from __future__ import annotations

import re
from pathlib import Path

from broker.services.installation import installation_id
from broker.store.sqlite import SqliteStore


async def opened(directory: Path) -> SqliteStore:
    store = SqliteStore(directory, "normal")
    await store.start()
    return store


async def test_the_installation_id_is_made_once_and_kept_across_restarts(tmp_path: Path) -> None:
    store = await opened(tmp_path / "data")
    try:
        first = await installation_id(store)
        assert re.fullmatch(r"[0-9a-f]{12}", first)
        assert await installation_id(store) == first
    finally:
        await store.close()
    restarted = await opened(tmp_path / "data")
    other = await opened(tmp_path / "other-data")
    try:
        assert await installation_id(restarted) == first
        assert await installation_id(other) != first
    finally:
        await restarted.close()
        await other.close()
