"""Query Context Source Registrations (GS CIM 009 v1.8.1 §5.10.2, CSourceQuery §5.2.31).

The entity part of the query (``id``, ``type``, ``idPattern``, ``attrs``) is matched against
each RegistrationInfo (``matching.Target``). ``q`` and ``csf`` are NGSI-LD queries over the
registration's own members — the context source properties and the members the spec defines
(``endpoint``, ``mode``, ...) — ``geoQ`` is evaluated against its ``location`` (or the named
GeoProperty), ``scopeQ`` against its ``scope`` and the temporal query against its
``observationInterval`` (``timeproperty=observedAt``, the default) or ``managementInterval``
(``createdAt``/``modifiedAt``). To reuse the query evaluator unchanged, a registration is seen
as an entity whose attributes are those members (``as_entity``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import check_datetime
from broker.ngsild.query.model import EntityQuery, matches
from broker.ngsild.query.qlang import QExpr, parse_q
from broker.ngsild.registrations.matching import Target, registration_matches
from broker.ngsild.registrations.registration import GEO_MEMBERS, Registration
from broker.ngsild.terms import TermTable

_TIMERELS: Final = ("before", "after", "between")
_ATTRIBUTE_TYPES: Final = ("Property", "Relationship", "GeoProperty", "LanguageProperty")
_INTERVAL_OF: Final = {
    "observedAt": "observation_interval",
    "createdAt": "management_interval",
    "modifiedAt": "management_interval",
}


@dataclass(frozen=True, slots=True)
class TemporalQuery:
    """``timerel``/``timeAt``/``endTimeAt``/``timeproperty`` (§4.11)."""

    timerel: str
    time_at: str
    end_time_at: str | None = None
    timeproperty: str = "observedAt"


@dataclass(frozen=True, slots=True)
class CSourceQuery:
    """A parsed registration query."""

    entities: EntityQuery
    csf: QExpr | None = None
    temporal: TemporalQuery | None = None


def parse_temporal(
    timerel: str | None, time_at: str | None, end_time_at: str | None, timeproperty: str | None
) -> TemporalQuery | None:
    """The temporal query of URL parameters, or ``None`` when there is none."""
    if timerel is None and time_at is None and end_time_at is None:
        return None
    if timerel not in _TIMERELS:
        raise BadRequestData(f"timerel must be one of {', '.join(_TIMERELS)}")
    if time_at is None:
        raise BadRequestData("a temporal query needs timeAt")
    check_datetime(time_at, "timeAt")
    if timerel == "between":
        if end_time_at is None:
            raise BadRequestData("timerel=between needs endTimeAt")
        check_datetime(end_time_at, "endTimeAt")
    prop = timeproperty or "observedAt"
    if prop not in _INTERVAL_OF:
        raise BadRequestData("timeproperty must be observedAt, createdAt or modifiedAt")
    return TemporalQuery(timerel, time_at, end_time_at, prop)


def parse_csf(text: str | None, terms: TermTable) -> QExpr | None:
    """``csf``: a query over context source properties (§4.9 grammar)."""
    return None if text is None else parse_q(text, terms.expand)


def query_matches(query: CSourceQuery, reg: Registration, expand: Callable[[str], str]) -> bool:
    """Whether ``reg`` answers ``query``; ``expand`` expands core member names as the query's
    @context does."""
    entities = query.entities
    target = Target(
        ids=entities.ids,
        id_pattern=entities.id_pattern,
        types=None if entities.types is None else frozenset(entities.types),
        attrs=None if entities.attrs is None else frozenset(entities.attrs),
    )
    if not registration_matches(reg, target):
        return False
    needs_doc = entities.q is not None or entities.scope is not None or entities.geo is not None
    if needs_doc or query.csf is not None:
        doc = as_entity(reg, expand)
        bare = EntityQuery(q=entities.q, scope=entities.scope, geo=entities.geo)
        if needs_doc and not matches(bare, doc):
            return False
        if query.csf is not None and not matches(EntityQuery(q=query.csf), doc):
            return False
    return query.temporal is None or _in_time(query.temporal, reg)


def as_entity(reg: Registration, expand: Callable[[str], str]) -> dict[str, Any]:
    """``reg`` seen as an entity: its members as Properties, its geometries as
    GeoProperties, its scope as scope."""
    members: dict[str, Any] = {
        "endpoint": reg.endpoint,
        "mode": reg.effective_mode,
        "registrationName": reg.name,
        "description": reg.description,
        "tenant": reg.tenant,
        "expiresAt": reg.expires_at,
    }
    attrs: dict[str, list[dict[str, Any]]] = {
        expand(name): [{"type": "Property", "value": value}]
        for name, value in members.items()
        if value is not None
    }
    for name in GEO_MEMBERS:
        if name in reg.geo:
            attrs[expand(name)] = [{"type": "GeoProperty", "value": reg.geo[name]}]
    for name, value in reg.extra.items():
        # A member written as an NGSI-LD Property ({"type": "Property", "value": ...}) is one.
        is_attribute = isinstance(value, dict) and value.get("type") in _ATTRIBUTE_TYPES
        attrs[name] = [value if is_attribute else {"type": "Property", "value": value}]
    return {"id": reg.id, "type": [], "attrs": attrs, "scope": list(reg.scope or ())}


def _in_time(query: TemporalQuery, reg: Registration) -> bool:
    interval = getattr(reg, _INTERVAL_OF[query.timeproperty])
    if interval is None:
        return False
    start, end = interval.get("startAt"), interval.get("endAt")
    if query.timerel == "before":
        return bool(start < query.time_at)
    if query.timerel == "after":
        return end is None or bool(end > query.time_at)
    assert query.end_time_at is not None  # checked by parse_temporal
    return bool(start < query.end_time_at) and (end is None or bool(end > query.time_at))
