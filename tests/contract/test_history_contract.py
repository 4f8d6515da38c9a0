"""The store contract for attribute history, held by every backend (Temporal API, issue 13).

The differential test writes random histories through the write path (``history=`` of
``create``/``update``/``delete``) and asks random temporal questions; the store's answer must
equal a plain-Python evaluation over every instance written (``reference`` below, which uses
``broker.ngsild.temporal.aggregate.reference`` for periods).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import pytest
from broker.ngsild.errors import BadRequestData, ResourceNotFound
from broker.ngsild.temporal.aggregate import method_values, reference
from broker.ngsild.temporal.history import HistoryRow, changes, given
from broker.ngsild.temporal.query import (
    AGGREGATION_METHODS,
    Aggregation,
    HistorySelection,
    TemporalQuery,
)
from broker.ngsild.temporal.times import Duration, from_micros, to_micros
from broker.store.base import Store
from broker.store.history import HistoryStore
from hypothesis import HealthCheck, settings
from hypothesis import given as hypothesis_given
from hypothesis import strategies as st

LEVEL = "https://example.org/level"
NAME = "https://example.org/name"
T0 = to_micros("2026-01-01T00:00:00Z")
MINUTE = 60_000_000


def entity(entity_id: str, value: Any, at: int, attr: str = LEVEL) -> dict[str, Any]:
    instance = {
        "type": "Property",
        "value": value,
        "observedAt": from_micros(at),
        "createdAt": from_micros(at),
        "modifiedAt": from_micros(at),
    }
    return {
        "id": entity_id,
        "type": ["https://example.org/Gauge"],
        "createdAt": from_micros(T0),
        "modifiedAt": from_micros(at),
        "attrs": {attr: [instance]},
    }


async def history_of(store: Store) -> tuple[Any, HistoryStore]:
    tenant = await store.tenant(f"t{uuid.uuid4().hex[:12]}", create=True)
    assert isinstance(tenant, HistoryStore)
    return tenant, tenant


async def test_writes_append_history_in_their_transaction(store: Store) -> None:
    tenant, history = await history_of(store)
    record = partial(changes, now=from_micros(T0 + 99 * MINUTE))
    await tenant.create(entity("urn:e:1", 1.0, T0), history=record)
    for n in range(1, 4):
        after = entity("urn:e:1", float(n + 1), T0 + n * MINUTE)
        await tenant.update("urn:e:1", lambda _d, a=after: (a, None), history=record)
    # a mutation that changes nothing appends nothing
    await tenant.update("urn:e:1", lambda d: (d, None), history=record)
    found = await history.history(["urn:e:1"], HistorySelection(TemporalQuery()))
    (series,) = found["urn:e:1"]
    assert [i["value"] for i in series.instances] == [1.0, 2.0, 3.0, 4.0]
    assert len({i["instanceId"] for i in series.instances}) == 4
    await tenant.delete("urn:e:1", history=record)
    deleted = await history.history(["urn:e:1"], HistorySelection(TemporalQuery("deletedAt")))
    (gone,) = deleted["urn:e:1"]
    assert gone.instances[0]["deletedAt"] == from_micros(T0 + 99 * MINUTE)


async def test_a_failed_write_appends_no_history(store: Store) -> None:
    tenant, history = await history_of(store)
    await tenant.create(entity("urn:e:1", 1.0, T0), history=partial(changes, now="x"))
    rows = [HistoryRow(LEVEL, None, {"type": "Property", "value": 2}, from_micros(T0))]
    with pytest.raises(ResourceNotFound):
        await tenant.update("urn:e:missing", lambda d: (d, None), history=given(rows))

    def failing(doc: dict[str, Any]) -> tuple[dict[str, Any], None]:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        await tenant.update("urn:e:1", failing, history=given(rows))
    found = await history.history(["urn:e:1"], HistorySelection(TemporalQuery()))
    assert [i["value"] for i in found["urn:e:1"][0].instances] == [1.0]


async def test_instances_can_be_edited_deleted_and_trimmed(store: Store) -> None:
    tenant, history = await history_of(store)
    rows = [
        HistoryRow(
            LEVEL,
            None,
            {"type": "Property", "value": v, "observedAt": from_micros(T0 + v * MINUTE)},
            from_micros(T0 + v * MINUTE),
        )
        for v in range(5)
    ]
    await tenant.create(entity("urn:e:1", 4, T0 + 4 * MINUTE), history=given(rows))
    (series,) = (await history.history(["urn:e:1"], HistorySelection(TemporalQuery())))["urn:e:1"]
    first = series.instances[0]["instanceId"]
    edited = {"type": "Property", "value": 10, "observedAt": from_micros(T0)}
    assert await history.replace_instance("urn:e:1", LEVEL, first, edited, from_micros(T0 + MINUTE))
    stored = await history.instance("urn:e:1", LEVEL, first)
    assert stored is not None and stored["value"] == 10
    assert stored["createdAt"] == from_micros(T0) and stored["modifiedAt"] == from_micros(
        T0 + MINUTE
    )
    assert await history.delete_instance("urn:e:1", LEVEL, first)
    assert not await history.delete_instance("urn:e:1", LEVEL, first)
    assert await history.trim_history(T0 + 3 * MINUTE, 100) == 2
    (series,) = (await history.history(["urn:e:1"], HistorySelection(TemporalQuery())))["urn:e:1"]
    assert [i["value"] for i in series.instances] == [3, 4]
    assert await history.delete_history("urn:e:1", LEVEL) == 1
    assert await history.history(["urn:e:1"], HistorySelection(TemporalQuery())) == {}


def reading(attr: str, value: Any, at: str) -> HistoryRow:
    return HistoryRow(attr, None, {"type": "Property", "value": value, "observedAt": at}, at)


async def test_a_write_undone_halfway_leaves_no_series_behind(store: Store) -> None:
    """Series created by a write that then failed must not be reused by later writes."""
    tenant, history = await history_of(store)
    at = from_micros(T0)
    broken = [reading(LEVEL, 1, at), reading(NAME, "x", "not a time")]
    with pytest.raises(BadRequestData):
        await tenant.create(entity("urn:e:1", 1, T0), history=given(broken))
    await tenant.create(entity("urn:e:2", 2, T0, NAME), history=given([reading(NAME, 2, at)]))
    await tenant.create(entity("urn:e:1", 1, T0), history=given([reading(LEVEL, 1, at)]))
    found = await history.history(["urn:e:1", "urn:e:2"], HistorySelection(TemporalQuery()))
    assert {
        e: [(s.attr, [i["value"] for i in s.instances]) for s in v] for e, v in found.items()
    } == {
        "urn:e:1": [(LEVEL, [1])],
        "urn:e:2": [(NAME, [2])],
    }


async def test_an_observation_moved_by_an_edit_is_replaced_when_observed_again(
    store: Store,
) -> None:
    tenant, history = await history_of(store)
    rows = [reading(LEVEL, v, from_micros(T0 + v * MINUTE)) for v in range(3)]
    await tenant.create(entity("urn:e:1", 2, T0 + 2 * MINUTE), history=given(rows))
    (series,) = (await history.history(["urn:e:1"], HistorySelection(TemporalQuery())))["urn:e:1"]
    later = from_micros(T0 + 10 * MINUTE)
    moved = {"type": "Property", "value": 10, "observedAt": later}
    first = series.instances[0]["instanceId"]
    assert await history.replace_instance("urn:e:1", LEVEL, first, moved, later)
    again = given([reading(LEVEL, 11, later)])
    await tenant.update(
        "urn:e:1", lambda d: (entity("urn:e:1", 11, T0 + 10 * MINUTE), None), history=again
    )
    (series,) = (await history.history(["urn:e:1"], HistorySelection(TemporalQuery())))["urn:e:1"]
    assert [i["value"] for i in series.instances] == [1, 2, 11]


async def test_history_deleted_and_written_again_is_the_new_one_only(store: Store) -> None:
    tenant, history = await history_of(store)
    at = from_micros(T0)
    await tenant.create(entity("urn:e:1", 1, T0), history=given([reading(LEVEL, 1, at)]))
    assert await history.delete_history("urn:e:1") == 1
    await tenant.create(entity("urn:e:2", 2, T0), history=given([reading(NAME, 2, at)]))
    update = given([reading(LEVEL, 3, from_micros(T0 + MINUTE))])
    await tenant.update("urn:e:1", lambda d: ({**d, "modifiedAt": "x"}, None), history=update)
    found = await history.history(["urn:e:1", "urn:e:2"], HistorySelection(TemporalQuery()))
    assert {
        e: [(s.attr, [i["value"] for i in s.instances]) for s in v] for e, v in found.items()
    } == {
        "urn:e:1": [(LEVEL, [3])],
        "urn:e:2": [(NAME, [2])],
    }


values = st.one_of(
    st.integers(-50, 50),
    st.floats(-100, 100, allow_nan=False, allow_infinity=False).map(lambda x: round(x, 3)),
    st.sampled_from(["low", "high", "ok"]),
    st.booleans(),
)
histories = st.lists(
    st.tuples(st.sampled_from([LEVEL, NAME]), st.integers(0, 600), values), max_size=40
)
# bounds on the hour too, so that the SQLite store's hourly summaries are exercised
bounds = st.one_of(st.none(), st.integers(-10, 610), st.sampled_from([0, 60, 120, 300]))
periods = st.sampled_from(
    [
        Duration(0, 0),
        Duration(0, 1),
        Duration(0, 7 * MINUTE),
        Duration(0, 60 * MINUTE),
        Duration(0, 120 * MINUTE),
    ]
)


@st.composite
def temporal_queries(draw: st.DrawFn) -> TemporalQuery:
    start, end = draw(bounds), draw(bounds)
    if start is not None and end is not None and end <= start:
        start, end = end, start + 1 if end == start else start
    numeric = [m for m in AGGREGATION_METHODS if not m.endswith("Count")]
    choices = (
        st.sampled_from(AGGREGATION_METHODS) if draw(st.booleans()) else st.sampled_from(numeric)
    )
    methods = draw(st.lists(choices, min_size=1, unique=True))
    aggregation = Aggregation(tuple(methods), draw(periods)) if draw(st.booleans()) else None
    return TemporalQuery(
        start=None if start is None else T0 + start * MINUTE,
        end=None if end is None else T0 + end * MINUTE,
        last_n=draw(st.one_of(st.none(), st.integers(1, 8))) if aggregation is None else None,
        aggregation=aggregation,
    )


def expected(points: dict[str, list[tuple[int, Any]]], query: TemporalQuery) -> dict[str, Any]:
    """The plain-Python answer: per attribute, the values (or period results) asked for."""
    out: dict[str, Any] = {}
    for attr, series in points.items():
        inside = [(t, v) for t, v in sorted(series, key=lambda p: p[0]) if query.contains(t)]
        if not inside:
            continue
        if query.aggregation is None:
            chosen = inside[-query.last_n :] if query.last_n else inside
            out[attr] = [(t, v) for t, v in chosen]
        else:
            methods = query.aggregation.methods
            # a period where no method has a result shows nowhere in the representation
            out[attr] = [
                (p.start, p.end, method_values(p, methods))
                for p in reference(inside, query, query.aggregation)
                if method_values(p, methods)
            ]
    return out


def answered(found: dict[str, Any], query: TemporalQuery) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for series in found.get("urn:e:1", []):
        if query.aggregation is None:
            out[series.attr] = [(to_micros(i["observedAt"]), i["value"]) for i in series.instances]
        else:
            methods = query.aggregation.methods
            out[series.attr] = [
                (p.start, p.end, method_values(p, methods))
                for p in series.periods
                if method_values(p, methods)
            ]
    return out


def normalise(answer: dict[str, Any]) -> dict[str, Any]:
    """Floats compared to 9 significant digits (SQL and Python sum in different orders)."""

    def one(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.9g}")
        if isinstance(value, dict):
            return {k: one(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [one(v) for v in value]
        return value

    return one(answer)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@hypothesis_given(history=histories, query=temporal_queries())
async def test_history_answers_equal_a_plain_evaluation(
    store: Store, history: list[tuple[str, int, Any]], query: TemporalQuery
) -> None:
    tenant, reader = await history_of(store)
    points: dict[str, list[tuple[int, Any]]] = {}
    rows = []
    for attr, minute, value in history:
        at = T0 + minute * MINUTE
        # one instance per observedAt: a repeated observation replaces the earlier one
        points[attr] = [p for p in points.get(attr, []) if p[0] != at] + [(at, value)]
        instance = {"type": "Property", "value": value, "observedAt": from_micros(at)}
        rows.append(HistoryRow(attr, None, instance, from_micros(at)))
    await tenant.create(entity("urn:e:1", 0, T0), history=given(rows))
    selection = HistorySelection(query)
    if query.aggregation is None:
        found = await reader.history(["urn:e:1"], selection)
    else:
        found = await reader.aggregate(["urn:e:1"], selection)
    assert normalise(answered(found, query)) == normalise(expected(points, query))


async def test_hourly_aggregates_follow_edits_deletions_and_trims(store: Store) -> None:
    tenant, history = await history_of(store)
    points = {m: float(m % 17) for m in range(0, 300, 7)}
    rows = [
        HistoryRow(
            LEVEL,
            None,
            {"type": "Property", "value": v, "observedAt": from_micros(T0 + m * MINUTE)},
            from_micros(T0 + m * MINUTE),
        )
        for m, v in points.items()
    ]
    await tenant.create(entity("urn:e:1", 0, T0), history=given(rows))
    query = TemporalQuery(
        start=T0,
        end=T0 + 300 * MINUTE,
        aggregation=Aggregation(("sum", "max", "avg"), Duration(0, 60 * MINUTE)),
    )

    async def check() -> None:
        found = await history.aggregate(["urn:e:1"], HistorySelection(query))
        got = [
            (p.start, method_values(p, ("sum", "max", "avg"))) for p in found["urn:e:1"][0].periods
        ]
        series = [(T0 + m * MINUTE, v) for m, v in sorted(points.items())]
        want = [
            (p.start, method_values(p, ("sum", "max", "avg")))
            for p in reference(series, query, query.aggregation)
        ]  # type: ignore[arg-type]
        assert normalise({"x": got}) == normalise({"x": want})

    await check()
    (series,) = (await history.history(["urn:e:1"], HistorySelection(TemporalQuery())))["urn:e:1"]
    by_minute = {
        (to_micros(i["observedAt"]) - T0) // MINUTE: i["instanceId"] for i in series.instances
    }
    # an edit moves a value; a deletion removes the hour's maximum; a resend replaces one
    edited = {"type": "Property", "value": 99.0, "observedAt": from_micros(T0 + 14 * MINUTE)}
    await history.replace_instance("urn:e:1", LEVEL, by_minute[14], edited, from_micros(T0))
    points[14] = 99.0
    await history.delete_instance("urn:e:1", LEVEL, by_minute[112])
    del points[112]
    resend = [
        HistoryRow(
            LEVEL,
            None,
            {"type": "Property", "value": -5.0, "observedAt": from_micros(T0 + 210 * MINUTE)},
            from_micros(T0 + 400 * MINUTE),  # recorded later: retention keeps it
        )
    ]
    await tenant.update("urn:e:1", lambda d: (dict(d), None), history=given(resend))
    points[210] = -5.0
    await check()
    assert await history.trim_history(T0 + 100 * MINUTE, 1000) > 0
    points = {m: v for m, v in points.items() if m >= 100 or m == 14}
    # the edited instance kept its createdAt (T0 + 14 min) and was trimmed with the others
    points.pop(14)
    await check()


async def test_hourly_aggregates_before_1970_fall_in_their_own_hours(store: Store) -> None:
    tenant, history = await history_of(store)
    points = {m: float(m % 13) for m in range(-170, 50, 11)}
    rows = [reading(LEVEL, v, from_micros(m * MINUTE)) for m, v in points.items()]
    await tenant.create(entity("urn:e:1", 0, 0), history=given(rows))
    methods = ("sum", "max", "min")
    query = TemporalQuery(
        start=-180 * MINUTE,
        end=60 * MINUTE,
        aggregation=Aggregation(methods, Duration(0, 60 * MINUTE)),
    )

    async def check() -> None:
        found = await history.aggregate(["urn:e:1"], HistorySelection(query))
        got = [(p.start, method_values(p, methods)) for p in found["urn:e:1"][0].periods]
        series = [(m * MINUTE, v) for m, v in sorted(points.items())]
        want = [
            (p.start, method_values(p, methods))
            for p in reference(series, query, query.aggregation)  # type: ignore[arg-type]
        ]
        assert normalise({"x": got}) == normalise({"x": want})

    await check()
    (series,) = (await history.history(["urn:e:1"], HistorySelection(TemporalQuery())))["urn:e:1"]
    by_minute = {to_micros(i["observedAt"]) // MINUTE: i["instanceId"] for i in series.instances}
    await history.delete_instance("urn:e:1", LEVEL, by_minute[-5])
    del points[-5]
    await check()
