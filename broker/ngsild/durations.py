"""ISO 8601 durations as NGSI-LD parameters carry them (``entityMapLifetime``, v1.9 Table
6.4.3.2-1): ``PnW`` or ``PnYnMnDTnHnMnS`` with integer or decimal counts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

from broker.ngsild.errors import BadRequestData

_DURATION: Final = re.compile(
    r"P(?:(?P<weeks>\d+(?:\.\d+)?)W|"
    r"(?:(?P<years>\d+(?:\.\d+)?)Y)?(?:(?P<months>\d+(?:\.\d+)?)M)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?)"
)
_SECONDS: Final = {
    "weeks": 7 * 86400,
    # A calendar year or month has no fixed length; a lifetime needs only an upper bound.
    "years": 365 * 86400,
    "months": 30 * 86400,
    "days": 86400,
    "hours": 3600,
    "minutes": 60,
    "seconds": 1,
}


def parse_duration(text: str, what: str) -> timedelta:
    """``text`` as a duration; anything else (or ``P``/``PT`` alone) is BadRequestData."""
    match = _DURATION.fullmatch(text)
    if match is None or text.endswith(("P", "T")):
        raise BadRequestData(f"{what} must be an ISO 8601 duration like PT1H, got {text!r}")
    seconds = sum(float(v) * _SECONDS[k] for k, v in match.groupdict().items() if v is not None)
    return timedelta(seconds=seconds)
