"""``EntityQuery`` → a MongoDB filter over the fields of ``mongo_fields`` (pure, no I/O).

Theory of operation. The filter is a *narrowing*: every entity that ``broker.ngsild.query.matches``
accepts also satisfies it, and when the plan is not ``exact`` the store hands the candidates, in
``ORDER``, to ``broker.ngsild.query.page`` to decide exactly. Each part of a query compiles to a
condition that only rejects what the evaluator rejects, and parts that cannot be expressed that
way compile to no condition (``None``); a conjunction keeps its parts' conditions and a
disjunction only holds one if every alternative has one, which keeps the whole a superset.

* Selectors: ``types``, ``ids``, ``attrs`` are exact (``$in`` on ``types``, ``_id``,
  ``attrNames``); a type expression is an ``$or`` of ``$all``; ``idPattern`` (RE2) is never
  handed to MongoDB's backtracking ``$regex``.
* ``q`` (GS CIM 009 v1.8.1 §4.9): a term on an attribute requires the attribute; a comparison
  of a plain attribute with numbers or strings also becomes a condition on its ``vals`` entry
  (``$elemMatch`` on the attribute and the value), or-ed with "has no ``vals`` entry" so that
  attributes the index cannot judge stay candidates. Strings starting with a digit are left to
  the evaluator, which compares date-times and times temporally, not as text.
* ``geoQ`` (§4.10): the GeoProperty is required (even ``disjoint`` needs one); when
  ``geo.search_box`` bounds the matches, ``$geoIntersects`` with the box's spherical cover
  (``mongo_geo``) on ``geo.g`` keeps every entity whose geometry can meet it, plus ``geoWide``.
* ``scopeQ``, ``orderBy`` and distance ordering are left to the evaluator and the collector.

``tests/contract/test_mongo_translation.py`` checks this against an independent evaluation of
MongoDB's query semantics over the documents ``mongo_fields`` stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from broker.ngsild.query import EntityQuery
from broker.ngsild.query.geo import GeoQuery, search_box
from broker.ngsild.query.model import Selector
from broker.ngsild.query.qlang import (
    ENTITY_MEMBERS,
    And,
    Comparison,
    Exists,
    Or,
    Path,
    QExpr,
    Range,
    Scalar,
    Value,
)
from broker.ngsild.query.types import TypeExpr
from broker.store.mongo_fields import is_indexable
from broker.store.mongo_geo import box_cover

Filter = dict[str, Any]

ORDER: Final = (("seq", 1), ("_id", 1))
"""Insertion order: ``seq`` comes from each replica's clock (``mongo_seq``); ``_id`` breaks the
ties two replicas could make."""

_ORDERING: Final = {">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}


@dataclass(frozen=True, slots=True)
class MongoPlan:
    """The filter of a query, and whether it is the exact answer (then MongoDB pages it)."""

    filter: Filter
    exact: bool


def compile_query(query: EntityQuery) -> MongoPlan:
    """The candidates of ``query`` as a MongoDB filter."""
    conditions: list[Filter | None] = []
    if query.types is not None:
        conditions.append({"types": {"$in": list(query.types)}})
    if query.type_expr is not None:
        conditions.append(_types(query.type_expr))
    if query.ids is not None:
        conditions.append({"_id": {"$in": list(query.ids)}})
    if query.selectors is not None:
        conditions.append(_any_of([_selector(s) for s in query.selectors]))
    if query.attrs is not None:
        conditions.append({"attrNames": {"$in": list(query.attrs)}})
    if query.q is not None:
        conditions.append(q_filter(query.q))
    if query.geo is not None:
        conditions.append(geo_filter(query.geo))
    after = query.keyset
    if after is not None:
        # Keyset paging: from the position on in ``ORDER``, so the ``order`` index is entered
        # there instead of skipping ``offset`` matches.
        seq, entity_id = after
        conditions.append({"$or": [{"seq": {"$gt": seq}}, {"seq": seq, "_id": {"$gt": entity_id}}]})
    exact = not query.has_expressions and query.id_pattern is None
    return MongoPlan(_all_of(conditions) or {}, exact)


def q_filter(expr: QExpr) -> Filter | None:
    """A condition every entity satisfying ``expr`` meets, or None if there is none to give."""
    if isinstance(expr, And):
        return _all_of([q_filter(item) for item in expr.items])
    if isinstance(expr, Or):
        return _any_of([q_filter(item) for item in expr.items])
    attr = expr.path.via[0][0] if expr.path.via else expr.path.attr
    if attr in ENTITY_MEMBERS:
        return None
    if isinstance(expr, Exists):
        # ``!attr`` also holds for an entity whose attribute has no value member: no condition.
        return None if expr.negated else {"attrNames": attr}
    value = _value_condition(expr)
    if value is None:
        return {"attrNames": attr}
    return {
        "$or": [
            {"vals": {"$elemMatch": {"a": attr, "v": value}}},
            {"attrNames": attr, "vals.a": {"$ne": attr}},
        ]
    }


def geo_filter(geo: GeoQuery) -> Filter:
    """A condition every entity satisfying ``geo`` meets (GS CIM 009 v1.8.1 §4.10)."""
    present: Filter = {"attrNames": geo.geoproperty}
    box = search_box(geo)
    region = None if box is None else box_cover(box)
    if region is None:
        return present
    near = {"geo.g": {"$geoIntersects": {"$geometry": region}}}
    return {"$and": [present, {"$or": [near, {"geoWide": geo.geoproperty}]}]}


def _value_condition(term: Comparison) -> Filter | None:
    """The condition on the ``vals`` value equivalent to ``term`` for indexed values."""
    if term.path != Path(term.path.attr) or ":" not in term.path.attr:
        return None
    value = term.value
    if not _pushable(value):
        return None
    if term.op in _ORDERING:
        if isinstance(value, tuple | Range):
            return None  # the evaluator never orders against lists or ranges: left to it
        return {_ORDERING[term.op]: value}
    if term.op == "==":
        return _equals(value)
    if term.op == "!=":
        if isinstance(value, Range) and isinstance(value.low, str):
            # A stored date-time may sort inside a text range yet is never "within" it for the
            # evaluator (incomparable), so it satisfies != there: left to the evaluator.
            return None
        return {"$not": _equals(value)}
    return None  # ~= and !~= are RE2 patterns: the evaluator decides


def _equals(value: Value) -> Filter:
    if isinstance(value, Range):
        return {"$gte": value.low, "$lte": value.high}
    if isinstance(value, tuple):
        return {"$in": list(value)}
    return {"$eq": value}


def _pushable(value: Value) -> bool:
    if isinstance(value, Range):
        low, high = value.low, value.high
        same_kind = isinstance(low, str) == isinstance(high, str)
        return same_kind and _scalar(low) and _scalar(high)
    if isinstance(value, tuple):
        return all(_scalar(item) for item in value)
    return _scalar(value)


def _scalar(value: Scalar) -> bool:
    if isinstance(value, str):
        # Date-times, dates and times all start with a digit; they compare temporally.
        return not value[:1].isdigit()
    return is_indexable(value)


def _types(expr: TypeExpr) -> Filter:
    return _any_of([{"types": {"$all": sorted(alternative)}} for alternative in expr]) or {}


def _selector(selector: Selector) -> Filter | None:
    conditions: list[Filter | None] = []
    if selector.types is not None:
        conditions.append(_types(selector.types))
    if selector.ids is not None:
        conditions.append({"_id": {"$in": list(selector.ids)}})
    return _all_of(conditions)


def _all_of(conditions: list[Filter | None]) -> Filter | None:
    kept = [condition for condition in conditions if condition]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else {"$and": kept}


def _any_of(conditions: list[Filter | None]) -> Filter | None:
    if not conditions or any(not condition for condition in conditions):
        return None
    return conditions[0] if len(conditions) == 1 else {"$or": conditions}
