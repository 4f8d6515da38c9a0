"""Temporal pagination: one cut instant for the whole response (§6.3.10)."""

from __future__ import annotations

from broker.ngsild.temporal.paging import cap
from broker.ngsild.temporal.query import TemporalQuery
from broker.ngsild.temporal.render import AttributeHistory
from broker.ngsild.temporal.times import from_micros

MINUTE = 60_000_000


def series(attr: str, minutes: range) -> AttributeHistory:
    instances = [
        {"value": m, "observedAt": from_micros(m * MINUTE), "createdAt": from_micros(0)}
        for m in minutes
    ]
    return AttributeHistory(attr, None, instances)


def values(found: dict[str, list[AttributeHistory]]) -> dict[str, list[int]]:
    return {s.attr: [i["value"] for i in s.instances] for s in found["e"]}


def test_under_the_cap_nothing_is_cut() -> None:
    found = {"e": [series("a", range(3))]}
    assert cap(found, TemporalQuery(), 3) == (found, None)


def test_forwards_cut_is_shared_by_every_attribute() -> None:
    found = {"e": [series("a", range(10)), series("b", range(100, 110))]}
    kept, cut = cap(found, TemporalQuery(start=0), 12)
    assert values(kept) == {"a": list(range(10)), "b": [100, 101]}
    assert cut is not None
    assert cut.header() == f"date-time {from_micros(0)}-{from_micros(101 * MINUTE)}/*"


def test_backwards_cut_with_last_n() -> None:
    found = {"e": [series("a", range(10)), series("b", range(100, 110))]}
    kept, cut = cap(found, TemporalQuery(last_n=10, end=200 * MINUTE), 5)
    assert values(kept) == {"a": [], "b": [105, 106, 107, 108, 109]}
    assert cut is not None
    assert cut.header() == f"date-time {from_micros(200 * MINUTE)}-{from_micros(105 * MINUTE)}/10"
