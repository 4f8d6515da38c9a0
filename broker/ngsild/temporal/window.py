"""Filters of a temporal query judged on the time window (GS CIM 009 v1.9.1 §5.7.4.4).

``q`` and ``geoQ`` of a temporal query are checked "against all the Attribute instances
resulting from the initial filtering performed by the temporal query": an entity matches when
the instances of its attributes inside the window satisfy them, not its current state. Each
term may be satisfied by a different instance (``speed>25;heading<90`` needs some fast instance
and some instance heading east, as with several ``datasetId`` instances of an entity). The
evaluators are the entity query's own, run on a document whose attributes are the windowed
instances.
"""

from __future__ import annotations

from broker.ngsild.entity import EntityDoc
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.geo import evaluate_geo
from broker.ngsild.query.qeval import evaluate_q
from broker.ngsild.temporal.history import SCOPE
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
