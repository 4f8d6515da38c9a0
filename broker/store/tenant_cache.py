"""Open each tenant's store once, however many requests ask for it at the same moment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

S = TypeVar("S")


class TenantCache(Generic[S]):
    """Tenant name → its open store; opening is serialised so a tenant is opened once."""

    def __init__(self) -> None:
        self._open: dict[str, S] = {}
        self._lock = asyncio.Lock()

    async def get(self, name: str, opener: Callable[[], Awaitable[S]]) -> S:
        """The open store of ``name``, calling ``opener`` (which may raise) the first time."""
        store = self._open.get(name)
        if store is not None:
            return store
        async with self._lock:
            store = self._open.get(name)
            if store is None:
                store = await opener()
                self._open[name] = store
        return store

    def pop(self, name: str) -> S | None:
        """Forget the open store of ``name`` and return it, for closing."""
        return self._open.pop(name, None)

    def drain(self) -> list[S]:
        """Forget every open store and return them, for closing."""
        stores, self._open = list(self._open.values()), {}
        return stores
