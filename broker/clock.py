"""The broker's one wall clock.

NGSI-LD times are UTC (GS CIM 009 v1.8.1 §4.6.3), so there is no local time anywhere. Services
take a ``Clock`` argument defaulting to ``utc_now``, which is how tests fix the time; nothing else
reads ``datetime.now``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from broker.ngsild.names import format_timestamp

Clock = Callable[[], datetime]
"""A source of aware UTC datetimes."""


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


def timestamp(clock: Clock = utc_now) -> str:
    """``clock``'s time as the NGSI-LD DateTime text stored in system attributes."""
    return format_timestamp(clock())
