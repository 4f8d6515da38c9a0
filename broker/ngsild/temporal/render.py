"""Temporal representations of an entity (GS CIM 009 v1.8.1 §4.5.7 normalized, §4.5.9
simplified ``temporalValues``, §4.5.19 ``aggregatedValues``).

Normalized: each attribute is an array of its instances, each with its ``instanceId``.
Simplified: one object per attribute and ``datasetId`` whose plural value member (``values``,
``objects``, ``languageMaps``, …) lists ``[value, time]`` pairs. Aggregated: one object per
attribute and ``datasetId`` with, per method, ``[result, periodStart, periodEnd]`` triples.
Several ``datasetId``s of one attribute make an array of such objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from broker.ngsild.entity import EntityDoc, Instance
from broker.ngsild.names import NGSI_LD_NULL, VALUE_MEMBER
from broker.ngsild.render import View, render_instance
from broker.ngsild.temporal.aggregate import ABSENT, PeriodStats, is_number, method_column
from broker.ngsild.temporal.times import from_micros
from broker.ngsild.terms import TermTable

_PLURAL: Final = {
    "Property": "values",
    "GeoProperty": "values",
    "Relationship": "objects",
    "LanguageProperty": "languageMaps",
    "JsonProperty": "jsons",
    "VocabProperty": "vocabs",
    "ListProperty": "valueLists",
    "ListRelationship": "objectLists",
}
_BARE: Final = frozenset(
    {"Property", "GeoProperty", "Relationship", "ListProperty", "ListRelationship"}
)
"""Kinds whose simplified pairs hold the bare value; the others wrap it in its member."""


@dataclass(frozen=True, slots=True)
class AttributeHistory:
    """The instances of one attribute and ``datasetId`` a store found, oldest first; each
    carries ``instanceId``, ``createdAt``, ``modifiedAt`` and, for deletions, ``deletedAt``."""

    attr: str
    dataset_id: str | None
    instances: list[Instance] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AttributeAggregate:
    """The aggregated periods of one attribute and ``datasetId``."""

    attr: str
    dataset_id: str | None
    kind: str
    periods: list[PeriodStats] = field(default_factory=list)


def render_temporal(
    doc: EntityDoc,
    history: list[AttributeHistory],
    terms: TermTable,
    view: View,
    *,
    simplified: bool = False,
    timeproperty: str = "observedAt",
) -> dict[str, Any]:
    """An entity's temporal representation, normalized or simplified (``temporalValues``)."""
    out = _head(doc, terms, view)
    grouped: dict[str, list[Any]] = {}
    for series in history:
        if not _shown(series.attr, view):
            continue
        name = terms.compact(series.attr)
        if simplified:
            grouped.setdefault(name, []).append(_simplified(series, timeproperty, terms))
        else:
            grouped.setdefault(name, []).extend(
                _normalized(instance, terms, view) for instance in series.instances
            )
    for name, items in grouped.items():
        out[name] = items[0] if simplified and len(items) == 1 else items
    return out


def render_aggregated(
    doc: EntityDoc,
    aggregates: list[AttributeAggregate],
    terms: TermTable,
    view: View,
    methods: tuple[str, ...],
) -> dict[str, Any]:
    """An entity's aggregated temporal representation (``aggregatedValues``)."""
    out = _head(doc, terms, view)
    grouped: dict[str, list[Any]] = {}
    for series in aggregates:
        if not _shown(series.attr, view):
            continue
        item: dict[str, Any] = {"type": series.kind}
        if series.dataset_id is not None:
            item["datasetId"] = series.dataset_id
        starts = [from_micros(stats.start) for stats in series.periods]
        ends = [from_micros(stats.end) for stats in series.periods]
        for method in methods:
            column = method_column(series.periods, method)
            triples = zip(column, starts, ends, strict=True)
            if any(value is ABSENT for value in column):
                item[method] = [list(t) for t in triples if t[0] is not ABSENT]
            else:  # the usual case, built without a Python step per period
                item[method] = list(map(list, triples))
        grouped.setdefault(terms.compact(series.attr), []).append(item)
    for name, items in grouped.items():
        out[name] = items[0] if len(items) == 1 else items
    return out


def _head(doc: EntityDoc, terms: TermTable, view: View) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "id" in view.members:
        out["id"] = doc["id"]
    if "type" in view.members:
        types = [terms.compact(t) for t in doc["type"]]
        out["type"] = types[0] if len(types) == 1 else types
    if "scope" in view.members and doc.get("scope"):
        out["scope"] = doc["scope"][0] if len(doc["scope"]) == 1 else doc["scope"]
    if view.sys_attrs:
        out.update({m: doc[m] for m in ("createdAt", "modifiedAt") if m in doc})
    return out


def _shown(attr: str, view: View) -> bool:
    return (view.attrs is None or attr in view.attrs) and attr not in view.omitted


def _normalized(instance: Instance, terms: TermTable, view: View) -> dict[str, Any]:
    shown = dict(render_instance(instance, terms, view))
    shown["type"] = instance.get("type", "Property")
    if "deletedAt" in instance:
        shown["deletedAt"] = instance["deletedAt"]
    shown["instanceId"] = instance["instanceId"]
    return shown


def _simplified(series: AttributeHistory, timeproperty: str, terms: TermTable) -> dict[str, Any]:
    kind = series.instances[-1].get("type", "Property") if series.instances else "Property"
    member = VALUE_MEMBER.get(kind, "value")
    pairs = []
    for instance in series.instances:
        value = instance.get(member, NGSI_LD_NULL)
        if kind == "VocabProperty":
            value = _compact(value, terms)
        elif kind == "ListRelationship" and isinstance(value, list):
            value = [item.get("object") if isinstance(item, dict) else item for item in value]
        # §4.5.9: numbers are listed as JSON numbers with a fraction (as peers do).
        value = (float(value) if is_number(value) else value) if kind in _BARE else {member: value}
        pairs.append([value, instance.get(_time_member(instance, timeproperty))])
    item: dict[str, Any] = {"type": kind}
    if series.dataset_id is not None:
        item["datasetId"] = series.dataset_id
    item[_PLURAL.get(kind, "values")] = pairs
    return item


def _time_member(instance: Instance, timeproperty: str) -> str:
    if "deletedAt" in instance:
        return "deletedAt"
    return timeproperty if timeproperty in instance else "createdAt"


def _compact(value: Any, terms: TermTable) -> Any:
    if isinstance(value, list):
        return [terms.compact(item) for item in value]
    return terms.compact(value)
