"""A bounded memory of verified tokens, so a busy client pays for its signature check once.

Entries are keyed by the SHA-256 of the token, so the cache holds no usable credential, and
carry the time the token stops being valid: a hit past it is a miss (and the entry goes), so a
cached token can never outlive its ``exp``. Least recently used entries go first when full.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


def token_digest(token: str) -> bytes:
    """The cache key of ``token``."""
    return hashlib.sha256(token.encode()).digest()


class TokenCache(Generic[V]):
    """At most ``size`` values, each valid until its own deadline (seconds, any clock)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str, now: float) -> V | None:
        """The value kept for ``token`` if its deadline has not passed at ``now``."""
        key = token_digest(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline, value = entry
        if now >= deadline:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, token: str, value: V, deadline: float) -> None:
        """Keep ``value`` for ``token`` until ``deadline``."""
        if self._size <= 0:
            return
        key = token_digest(token)
        self._entries[key] = (deadline, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every token (e.g. after an issuer's keys were revoked)."""
        self._entries.clear()
