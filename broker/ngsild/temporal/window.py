"""Filters of a temporal query judged on the time window (GS CIM 009 v1.9.1 §5.7.4.4).

``q`` and ``geoQ`` of a temporal query are checked "against all the Attribute instances
resulting from the initial filtering performed by the temporal query": an entity matches when
the instances of its attributes inside the window satisfy them, not its current state. Each
term may be satisfied by a different instance (``speed>25;heading<90`` needs some fast instance
and some instance heading east, as with several ``datasetId`` instances of an entity). The
evaluators are the entity query's own, run on a document whose attributes are the windowed
instances. ``scopeQ`` follows the scope's validity over time instead: the entity matches while a
matching scope was valid within the window, and only its instances of those times are shown.
"""

from __future__ import annotations

from dataclasses import replace

from broker.ngsild.entity import EntityDoc, Instance
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.geo import evaluate_geo
from broker.ngsild.query.qeval import evaluate_q
from broker.ngsild.query.scopeq import ScopeExpr, evaluate_scope
from broker.ngsild.temporal.history import SCOPE
from broker.ngsild.temporal.paging import instant
from broker.ngsild.temporal.render import AttributeHistory


def window_doc(doc: EntityDoc, series: list[AttributeHistory]) -> EntityDoc:
    """``doc`` with its attributes replaced by their instances in the window."""
    attrs: dict[str, list[dict[str, object]]] = {}
    for item in series:
        if item.attr != SCOPE:
            attrs.setdefault(item.attr, []).extend(
                i for i in item.instances if "deletedAt" not in i
            )
    return {**doc, "attrs": attrs}


def window_matches(query: EntityQuery, doc: EntityDoc, series: list[AttributeHistory]) -> bool:
    """Whether the windowed instances of ``doc`` satisfy the query's ``q`` and ``geoQ``."""
    windowed = window_doc(doc, series)
    if query.q is not None and not evaluate_q(query.q, windowed):
        return False
    return query.geo is None or evaluate_geo(query.geo, windowed)


Interval = tuple[int, int | None]
"""``[start, end)`` in microseconds; ``end`` ``None``: still valid."""


def scope_intervals(
    scopes: list[Instance], expr: ScopeExpr, start: int | None, end: int | None
) -> list[Interval]:
    """When, within ``[start, end)``, the entity had a scope matching ``expr`` (§4.18: a scope
    is valid from when it was set until it was replaced or removed; §5.7.4.4 S4)."""
    timeline = sorted(((instant(i, "observedAt"), i) for i in scopes), key=lambda pair: pair[0])
    found: list[Interval] = []
    for n, (since, instance) in enumerate(timeline):
        until = timeline[n + 1][0] if n + 1 < len(timeline) else None
        if "deletedAt" in instance or not evaluate_scope(expr, instance.get("value") or None):
            continue
        low = since if start is None else max(since, start)
        high = until if end is None else (end if until is None else min(until, end))
        if high is None or low < high:
            found.append((low, high))
    return found


def restrict(
    series: list[AttributeHistory], intervals: list[Interval], timeproperty: str
) -> list[AttributeHistory]:
    """Only the instances of the attributes (scope aside) that fall in one of ``intervals``."""

    def inside(instance: Instance) -> bool:
        moment = instant(instance, timeproperty)
        return any(low <= moment and (high is None or moment < high) for low, high in intervals)

    return [
        s if s.attr == SCOPE else replace(s, instances=[i for i in s.instances if inside(i)])
        for s in series
    ]
