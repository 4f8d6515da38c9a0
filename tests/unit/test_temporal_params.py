"""The temporal parameter grammar and time/duration arithmetic (broker.ngsild.temporal)."""

from __future__ import annotations

import pytest
from broker.ngsild.errors import BadRequestData
from broker.ngsild.temporal.query import parse_temporal_query
from broker.ngsild.temporal.times import Duration, from_micros, parse_duration, to_micros

T0 = "2020-08-01T12:00:00Z"
T1 = "2020-08-01T13:00:00Z"


def test_times_round_trip_exactly() -> None:
    for text in ("2020-08-01T12:03:00Z", "2024-12-11T15:19:24.696152Z", "2020-01-01T00:00:00.500Z"):
        assert from_micros(to_micros(text)) == text
    assert to_micros("1970-01-01T00:00:01Z") == 1_000_000
    assert to_micros("2020-08-01T14:00:00+02:00") == to_micros(T0)


@pytest.mark.parametrize(
    ("text", "months", "micros"),
    [
        ("PT1H", 0, 3_600_000_000),
        ("P1D", 0, 86_400_000_000),
        ("P1W", 0, 7 * 86_400_000_000),
        ("P1Y2M", 14, 0),
        ("PT1M30.5S", 0, 90_500_000),
        ("PT0S", 0, 0),
    ],
)
def test_durations(text: str, months: int, micros: int) -> None:
    assert parse_duration(text) == Duration(months, micros)


@pytest.mark.parametrize("text", ["bogus", "P", "PT", "P1DT", "1H", "PT1X"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(BadRequestData):
        parse_duration(text)


def test_calendar_months_move_the_date() -> None:
    start = to_micros("2020-01-31T00:00:00Z")
    assert from_micros(Duration(1, 0).after(start)) == "2020-02-29T00:00:00Z"
    assert from_micros(Duration(12, 0).after(start)) == "2021-01-31T00:00:00Z"


def test_timerel_ranges_are_half_open() -> None:
    before = parse_temporal_query({"timerel": "before", "timeAt": T0})
    assert (before.start, before.end) == (None, to_micros(T0))
    after = parse_temporal_query({"timerel": "after", "timeAt": T0})
    assert (after.start, after.end) == (to_micros(T0), None)
    between = parse_temporal_query({"timerel": "between", "timeAt": T0, "endTimeAt": T1})
    assert between.contains(to_micros(T0)) and not between.contains(to_micros(T1))


@pytest.mark.parametrize(
    "params",
    [
        {"timerel": "during", "timeAt": T0},
        {"timerel": "after"},
        {"timerel": "after", "timeAt": "yesterday"},
        {"timerel": "between", "timeAt": T0},
        {"timerel": "between", "timeAt": T1, "endTimeAt": T0},
        {"timeAt": T0},
        {"timeproperty": "seenAt"},
        {"lastN": "0"},
        {"lastN": 2.5},
        {"lastN": "-1"},
    ],
)
def test_bad_parameters(params: dict[str, object]) -> None:
    with pytest.raises(BadRequestData):
        parse_temporal_query(params)


def test_timerel_may_be_required() -> None:
    with pytest.raises(BadRequestData):
        parse_temporal_query({}, required=True)


def test_aggregation_parameters() -> None:
    query = parse_temporal_query(
        {"aggrMethods": "avg,max,avg", "aggrPeriodDuration": "PT1H"}, aggregated=True
    )
    assert query.aggregation is not None
    assert query.aggregation.methods == ("avg", "max")
    assert query.aggregation.period == Duration(0, 3_600_000_000)
    body = parse_temporal_query({"aggrMethods": ["sum"]}, aggregated=True)
    assert body.aggregation is not None and body.aggregation.period.zero
    assert parse_temporal_query({"aggrMethods": "avg"}).aggregation is None
    for bad in ({"aggrMethods": "median"}, {}, {"aggrMethods": "avg", "aggrPeriodDuration": "x"}):
        with pytest.raises(BadRequestData):
            parse_temporal_query(bad, aggregated=True)


def test_last_n_and_timeproperty() -> None:
    query = parse_temporal_query({"lastN": "3", "timeproperty": "modifiedAt"})
    assert (query.last_n, query.timeproperty) == (3, "modifiedAt")
