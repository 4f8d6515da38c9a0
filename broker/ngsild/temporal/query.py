"""Temporal query parameters → one ``TemporalQuery`` (GS CIM 009 v1.8.1 §4.11, §5.7.3, §5.7.4,
§6.3.10, §6.3.19).

The same grammar arrives as URL parameters (``timerel``, ``timeAt``, ``endTimeAt``,
``timeproperty``, ``lastN``, ``aggrMethods``, ``aggrPeriodDuration``) and as the ``temporalQ`` and
``aggrParams`` members of a Query body (§5.2.23); both become ``TemporalQuery``. Time ranges are
half-open: ``before`` is ``t < timeAt``, ``after`` is ``t >= timeAt``, ``between`` is
``timeAt <= t < endTimeAt`` — so consecutive ranges never count an instance twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from broker.ngsild.errors import BadRequestData
from broker.ngsild.temporal.times import Duration, parse_duration, to_micros

TIME_PROPERTIES: Final = ("observedAt", "createdAt", "modifiedAt", "deletedAt")
AGGREGATION_METHODS: Final = (
    "totalCount",
    "distinctCount",
    "sum",
    "avg",
    "min",
    "max",
    "stddev",
    "sumsq",
)
_TIMERELS: Final = ("before", "after", "between")
WHOLE_RANGE: Final = Duration(0, 0)


@dataclass(frozen=True, slots=True)
class Aggregation:
    """``aggregatedValues``: which methods, over periods of which length (zero: one period)."""

    methods: tuple[str, ...]
    period: Duration = WHOLE_RANGE


@dataclass(frozen=True, slots=True)
class TemporalQuery:
    """Which instances of the selected attributes a temporal request asks for.

    Attributes:
        timeproperty: the instance member the time range applies to.
        start: first instant in range (microseconds, inclusive), ``None``: unbounded.
        end: instant the range stops before (exclusive), ``None``: unbounded.
        last_n: keep only the latest N instances of each attribute (``lastN``).
        aggregation: aggregate instead of listing instances.
    """

    timeproperty: str = "observedAt"
    start: int | None = None
    end: int | None = None
    last_n: int | None = None
    aggregation: Aggregation | None = None

    def contains(self, moment: int) -> bool:
        """Whether ``moment`` is within the time range."""
        return (self.start is None or moment >= self.start) and (
            self.end is None or moment < self.end
        )


def parse_temporal_query(
    params: Mapping[str, Any], *, aggregated: bool = False, required: bool = False
) -> TemporalQuery:
    """The temporal parameters of a request (URL parameters or ``temporalQ`` + ``aggrParams``).

    Args:
        params: parameter name → value (text from a URL; JSON values from a body).
        aggregated: ``options=aggregatedValues`` was given, so ``aggrMethods`` is required.
        required: ``timerel`` is mandatory (Query Temporal Evolution without ``lastN`` in v1.8).
    """
    timeproperty = params.get("timeproperty") or "observedAt"
    if timeproperty not in TIME_PROPERTIES:
        raise BadRequestData(f"timeproperty must be one of {', '.join(TIME_PROPERTIES)}")
    start, end = _time_range(params, required)
    return TemporalQuery(
        timeproperty=timeproperty,
        start=start,
        end=end,
        last_n=_last_n(params.get("lastN")),
        aggregation=_aggregation(params, aggregated),
    )


def _time_range(params: Mapping[str, Any], required: bool) -> tuple[int | None, int | None]:
    timerel, time_at, end_time_at = (params.get(k) for k in ("timerel", "timeAt", "endTimeAt"))
    if timerel is None:
        if time_at is not None or end_time_at is not None:
            raise BadRequestData("timeAt and endTimeAt need timerel")
        if required:
            raise BadRequestData("a temporal query needs timerel and timeAt")
        return None, None
    if timerel not in _TIMERELS:
        raise BadRequestData(f"timerel must be one of {', '.join(_TIMERELS)}, got {timerel!r}")
    if time_at is None:
        raise BadRequestData(f"timerel={timerel} needs timeAt")
    at = _instant(time_at, "timeAt")
    if timerel == "before":
        return None, at
    if timerel == "after":
        return at, None
    if end_time_at is None:
        raise BadRequestData("timerel=between needs endTimeAt")
    end = _instant(end_time_at, "endTimeAt")
    if end <= at:
        raise BadRequestData("endTimeAt must be after timeAt")
    return at, end


def _instant(value: Any, name: str) -> int:
    if not isinstance(value, str):
        raise BadRequestData(f"{name} must be a DateTime")
    try:
        return to_micros(value)
    except BadRequestData:
        raise BadRequestData(f"{name} must be a DateTime, got {value!r}") from None


def _last_n(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequestData(f"lastN must be a positive integer, got {value!r}")
    return value


def _aggregation(params: Mapping[str, Any], aggregated: bool) -> Aggregation | None:
    methods = params.get("aggrMethods")
    period = params.get("aggrPeriodDuration")
    if not aggregated:
        return None
    if methods is None:
        raise BadRequestData("options=aggregatedValues needs aggrMethods")
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",")]
    if not isinstance(methods, list) or not methods:
        raise BadRequestData("aggrMethods must be a non-empty list of methods")
    unknown = [m for m in methods if m not in AGGREGATION_METHODS]
    if unknown:
        raise BadRequestData(
            f"unknown aggrMethods {unknown!r}; known: {', '.join(AGGREGATION_METHODS)}"
        )
    return Aggregation(
        tuple(dict.fromkeys(methods)),
        WHOLE_RANGE if period is None else parse_duration(period),
    )


@dataclass(frozen=True, slots=True)
class HistorySelection:
    """What a store reads of the history of some entities: which attributes and datasetIds
    (``None``: all; ``@none`` names the default instance) and which instances."""

    query: TemporalQuery
    attrs: frozenset[str] | None = None
    dataset_ids: frozenset[str] | None = None
    limit: int | None = None
    """Most instances to read per attribute and datasetId (in the query's direction), so a
    capped response (``paging.cap``) never reads a long history in full."""
