"""Insertion order without a round trip: each replica numbers its own writes from its clock.

The SQLite store orders entities by their primary key. The MongoDB store used to take a number
from a shared counter (``$inc``) before every insert, one extra round trip per write. Instead,
``seq`` is now the replica's clock in microseconds, forced to increase: ``take`` returns
``max(previous + n, now)``. Writes from one replica are therefore numbered in the order they
were made, even if its clock steps back; the clock starts past the largest ``seq`` the tenant
already holds (``advance_past``), so a restart or a clock set back never numbers a new entity
before an old one. Between replicas, order follows their clocks: two entities created on
different replicas less than their clock skew apart may be listed in either order (such writes
are concurrent anyway), and equal numbers are ordered by ``_id`` (``mongo_filters.ORDER``).
Numbers from the old counter (small integers) all sort before clock numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

MICROSECONDS: Final = 1_000_000


def _now_us() -> int:
    return time.time_ns() // 1000


class InsertionClock:
    """Increasing ``seq`` numbers for one tenant's writes from this replica."""

    def __init__(self, now_us: Callable[[], int] = _now_us) -> None:
        self._now_us = now_us
        self._last = 0

    def advance_past(self, seq: int) -> None:
        """Never hand out ``seq`` or anything below it again."""
        self._last = max(self._last, seq)

    def take(self, block: int = 1) -> int:
        """Reserve ``block`` consecutive numbers; returns the last of them."""
        if block < 1:
            raise ValueError("a block holds at least one number")
        self._last = max(self._last + block, self._now_us())
        return self._last
