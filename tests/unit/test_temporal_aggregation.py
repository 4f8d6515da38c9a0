"""Each aggregation method against values computed by hand in the test (§4.5.19)."""

from __future__ import annotations

import math
import statistics

import pytest
from broker.ngsild.temporal.aggregate import ABSENT, method_column, method_values, reference
from broker.ngsild.temporal.query import Aggregation, TemporalQuery
from broker.ngsild.temporal.times import Duration
from hypothesis import given
from hypothesis import strategies as st

HOUR = 3_600_000_000
POINTS = [(0, 3), (10, 5.5), (HOUR - 1, 3), (HOUR, 10), (HOUR + 5, "ten"), (3 * HOUR, True)]
METHODS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")


def _by_period(points: list[tuple[int, object]], query: TemporalQuery, period: Duration) -> list:
    aggregation = Aggregation(METHODS, period)
    return [
        (stats.start, stats.end, method_values(stats, METHODS))
        for stats in reference(points, query, aggregation)
    ]


def test_hourly_periods_from_the_first_instance() -> None:
    first, second, fourth = _by_period(POINTS, TemporalQuery(), Duration(0, HOUR))
    assert first[:2] == (0, HOUR)
    values = [3, 5.5, 3]
    assert first[2]["totalCount"] == 3
    assert first[2]["distinctCount"] == 2
    assert first[2]["sum"] == pytest.approx(11.5)
    assert first[2]["avg"] == pytest.approx(11.5 / 3)
    assert (first[2]["min"], first[2]["max"]) == (3.0, 5.5)
    assert first[2]["stddev"] == pytest.approx(statistics.pstdev(values))
    assert first[2]["sumsq"] == pytest.approx(9 + 30.25 + 9)
    # a string counts but takes no part in numeric methods
    assert second[2]["totalCount"] == 2 and second[2]["sum"] == 10.0
    # only booleans: counted, no numeric results; the empty third hour is not reported
    assert fourth[:2] == (3 * HOUR, 4 * HOUR)
    assert fourth[2] == {"totalCount": 1, "distinctCount": 1}


def test_periods_start_at_time_at() -> None:
    periods = _by_period(POINTS, TemporalQuery(start=-30 * 60_000_000), Duration(0, HOUR))
    assert [p[0] for p in periods] == [-30 * 60_000_000, 30 * 60_000_000, 150 * 60_000_000]


def test_whole_range() -> None:
    (only,) = _by_period(POINTS[:4], TemporalQuery(), Duration(0, 0))
    assert only[:2] == (0, HOUR)
    assert only[2]["totalCount"] == 4
    assert only[2]["max"] == 10.0
    assert only[2]["stddev"] == pytest.approx(math.sqrt(statistics.pvariance([3, 5.5, 3, 10])))


def test_calendar_periods() -> None:
    day = 24 * HOUR
    jan31 = 1_580_428_800_000_000  # 2020-01-31T00:00:00Z
    points = [(jan31, 1), (jan31 + 5 * day, 2), (jan31 + 40 * day, 4)]
    periods = _by_period(points, TemporalQuery(), Duration(1, 0))
    assert [p[2]["sum"] for p in periods] == [3.0, 4.0]
    assert periods[0][1] == jan31 + 29 * day  # to 2020-02-29


@given(
    st.lists(
        st.tuples(
            st.integers(0, 5 * HOUR),
            st.one_of(st.integers(-5, 5), st.floats(-1e6, 1e6), st.booleans(), st.text(max_size=2)),
        ),
        max_size=40,
    )
)
def test_a_column_of_periods_reports_what_each_period_reports(points: list) -> None:
    periods = reference(points, TemporalQuery(), Aggregation(METHODS, Duration(0, HOUR)))
    for method in METHODS:
        column = method_column(periods, method)
        each = [method_values(stats, (method,)).get(method, ABSENT) for stats in periods]
        assert column == each, method
