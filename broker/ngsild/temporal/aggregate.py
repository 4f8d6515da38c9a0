"""Aggregated temporal representation (GS CIM 009 v1.8.1 §4.5.19, §6.3.19): per attribute,
the instances in each period of ``aggrPeriodDuration`` reduced by each of ``aggrMethods``.

Theory of operation: a store reduces each period to a ``PeriodStats`` (count, distinct values,
and count/sum/min/max/sum of squares of the numeric values) in its own query language, so no
instance travels to Python; ``method_values`` turns the stats into what each method reports.
``reference`` computes the same stats from plain instances, defining the expected answer for
tests. Periods start at ``timeAt`` when the query has one, else at the attribute's first
instance, and follow each other without gaps; only periods holding instances are reported.
Deletion instances are not values and are left out. ``stddev`` is the population standard
deviation; ``sum``/``avg``/``min``/``max``/``stddev``/``sumsq`` consider numeric values only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

from broker.ngsild.temporal.query import Aggregation, TemporalQuery
from broker.ngsild.temporal.times import Duration

MAX_PERIODS = 100_000
"""Calendar periods (months, years) are enumerated; this bounds the enumeration."""


class PeriodStats(NamedTuple):
    """What a store computes for one period of one attribute (``start`` inclusive, ``end``
    exclusive, both in microseconds). A tuple: a long aggregation makes thousands."""

    start: int
    end: int
    size: int
    """How many instances (``totalCount``)."""
    distinct: int
    numbers: int
    total: float | None
    low: float | None
    high: float | None
    squares: float | None


def is_number(value: Any) -> bool:
    """Whether ``value`` takes part in numeric aggregation (booleans do not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def distinct_key(value: Any) -> Any:
    """The identity ``distinctCount`` compares values by (numbers by value, others by JSON)."""
    if is_number(value):
        return float(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def period_of(moment: int, origin: int, period: Duration) -> tuple[int, int] | None:
    """The period ``[start, end)`` of fixed length ``period`` that holds ``moment``."""
    if period.months or period.zero:
        return None
    index = (moment - origin) // period.micros
    start = origin + index * period.micros
    return start, start + period.micros


def calendar_periods(origin: int, period: Duration, until: int) -> list[tuple[int, int]]:
    """Consecutive periods from ``origin`` covering every instant before ``until``."""
    bounds: list[tuple[int, int]] = []
    start = origin
    while start <= until and len(bounds) < MAX_PERIODS:
        end = period.after(start)
        bounds.append((start, end))
        start = end
    return bounds


def method_values(stats: PeriodStats, methods: Iterable[str]) -> dict[str, Any]:
    """Each method's result for one period; methods without a result (no numbers) are absent."""
    out: dict[str, Any] = {}
    mean = None if not stats.numbers or stats.total is None else stats.total / stats.numbers
    for method in methods:
        if method == "totalCount":
            out[method] = stats.size
        elif method == "distinctCount":
            out[method] = stats.distinct
        elif not stats.numbers:
            continue
        elif method == "sum":
            out[method] = float(stats.total or 0.0)
        elif method == "avg":
            out[method] = mean
        elif method == "min":
            out[method] = None if stats.low is None else float(stats.low)
        elif method == "max":
            out[method] = None if stats.high is None else float(stats.high)
        elif method == "sumsq":
            out[method] = float(stats.squares or 0.0)
        elif method == "stddev" and mean is not None:
            variance = (stats.squares or 0.0) / stats.numbers - mean * mean
            out[method] = math.sqrt(max(variance, 0.0))
    return out


ABSENT: Any = object()
"""What ``method_column`` gives for a period without a result for the method."""


def method_column(periods: list[PeriodStats], method: str) -> list[Any]:
    """``method_values(stats, [method])[method]`` of each period, ``ABSENT`` where it has none:
    the same results a column at a time, as an aggregated response of many periods is built."""
    if method == "totalCount":
        return [stats.size for stats in periods]
    if method == "distinctCount":
        return [stats.distinct for stats in periods]
    if method == "max":
        return [
            ABSENT if not s.numbers else None if s.high is None else float(s.high) for s in periods
        ]
    if method == "min":
        return [
            ABSENT if not s.numbers else None if s.low is None else float(s.low) for s in periods
        ]
    if method == "avg":
        return [
            ABSENT if not s.numbers else None if s.total is None else s.total / s.numbers
            for s in periods
        ]
    return [method_values(stats, (method,)).get(method, ABSENT) for stats in periods]


def reference(
    points: list[tuple[int, Any]], query: TemporalQuery, aggregation: Aggregation
) -> list[PeriodStats]:
    """The stats of each non-empty period, from ``(time, value)`` points in range (tests)."""
    if not points:
        return []
    origin = query.start if query.start is not None else min(t for t, _ in points)
    period = aggregation.period
    buckets: dict[tuple[int, int], list[Any]] = {}
    if period.zero:
        last = query.end if query.end is not None else max(t for t, _ in points)
        buckets[(origin, last)] = [value for _, value in points]
    elif period.months:
        bounds = calendar_periods(origin, period, max(t for t, _ in points))
        for t, value in points:
            for start, end in bounds:
                if start <= t < end:
                    buckets.setdefault((start, end), []).append(value)
    else:
        for t, value in points:
            key = period_of(t, origin, period)
            assert key is not None  # a fixed, non-zero period
            buckets.setdefault(key, []).append(value)
    return [_stats(start, end, values) for (start, end), values in sorted(buckets.items())]


def _stats(start: int, end: int, values: list[Any]) -> PeriodStats:
    numbers = [float(v) for v in values if is_number(v)]
    return PeriodStats(
        start=start,
        end=end,
        size=len(values),
        distinct=len({distinct_key(v) for v in values}),
        numbers=len(numbers),
        total=sum(numbers) if numbers else None,
        low=min(numbers) if numbers else None,
        high=max(numbers) if numbers else None,
        squares=sum(n * n for n in numbers) if numbers else None,
    )
