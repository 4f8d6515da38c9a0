"""Instants and durations of the Temporal API as integers, so stores can index and bucket them.

Instants are microseconds since the Unix epoch (UTC); they render back to the shortest exact
DateTime text (no fraction, milliseconds or microseconds), so ``2020-08-01T12:03:00Z`` comes back
as it was given. Durations are ISO 8601 (``aggrPeriodDuration``, §6.3.19): months and years have
no fixed length, so a ``Duration`` keeps months apart from the fixed part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from broker.ngsild.errors import BadRequestData

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NAIVE_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - arithmetic only; the text says Z
_MICROS = {"W": 604_800_000_000, "D": 86_400_000_000, "H": 3_600_000_000, "M": 60_000_000}
_DURATION = re.compile(
    r"^P(?:(?P<Y>\d+)Y)?(?:(?P<Mo>\d+)M)?(?:(?P<W>\d+)W)?(?:(?P<D>\d+)D)?"
    r"(?:T(?:(?P<H>\d+)H)?(?:(?P<Mi>\d+)M)?(?:(?P<S>\d+(?:\.\d+)?)S)?)?\Z"
)


def to_micros(text: str) -> int:
    """A DateTime (``Z`` or an offset) → microseconds since the epoch."""
    if not isinstance(text, str) or "T" not in text:
        raise BadRequestData(f"{text!r} is not a DateTime (a date alone is not)")
    try:
        moment = datetime.fromisoformat(text)  # Python 3.11 reads a trailing Z
    except ValueError:
        raise BadRequestData(f"{text!r} is not a DateTime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


@lru_cache(maxsize=1 << 16)
def from_micros(micros: int) -> str:
    """Microseconds since the epoch → the shortest exact ``…Z`` DateTime text.

    Cached: a response lists the same period bounds for every entity it aggregates.
    """
    text = (_NAIVE_EPOCH + timedelta(microseconds=micros)).isoformat()
    fraction = micros % 1_000_000
    if fraction and fraction % 1000 == 0:
        return text[:23] + "Z"  # milliseconds are enough
    return text + "Z"


@dataclass(frozen=True, slots=True)
class Duration:
    """An ISO 8601 duration: calendar months plus a fixed number of microseconds."""

    months: int
    micros: int

    @property
    def zero(self) -> bool:
        """Whether this is ``PT0S``: one period spanning the whole time range."""
        return self.months == 0 and self.micros == 0

    def after(self, start: int) -> int:
        """The instant one duration after ``start`` (months move the calendar date)."""
        if self.months:
            moment = _EPOCH + timedelta(microseconds=start)
            month = moment.month - 1 + self.months
            year, month = moment.year + month // 12, month % 12 + 1
            day = min(moment.day, _days_in(year, month))
            start = to_micros(moment.replace(year=year, month=month, day=day).isoformat())
        return start + self.micros


def parse_duration(text: str) -> Duration:
    """``aggrPeriodDuration`` → ``Duration``; a malformed one is BadRequestData.

    A zero duration (``PT0S``, the default) means one period over the whole time range.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise BadRequestData(f"aggrPeriodDuration must be an ISO 8601 duration, got {text!r}")
    parts = {key: value for key, value in match.groupdict().items() if value is not None}
    months = int(parts.get("Y", 0)) * 12 + int(parts.get("Mo", 0))
    micros = round(float(parts.get("S", 0)) * 1_000_000)
    micros += int(parts.get("Mi", 0)) * _MICROS["M"]
    for unit in ("W", "D", "H"):
        micros += int(parts.get(unit, 0)) * _MICROS[unit]
    return Duration(months, micros)


def _days_in(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return (following - timedelta(days=1)).day
