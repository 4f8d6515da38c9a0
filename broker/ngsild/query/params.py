"""Query parameters of ``GET /entities`` (and bodies of ``POST /entityOperations/query``)
→ ``EntityQuery`` (GS CIM 009 v1.8.1 §6.4.3.2, §5.2.23).

Names are expanded with the request's @context here, once; the model and the evaluator only see
IRIs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from broker.ngsild.errors import BadRequestData, TooManyResults
from broker.ngsild.names import SYSTEM_MEMBERS, check_name, check_uri
from broker.ngsild.params import expand_names, split_list
from broker.ngsild.query.geo import parse_geo_query
from broker.ngsild.query.model import EntityQuery, Selector, compile_pattern
from broker.ngsild.query.qlang import QExpr, attributes_of, expand_values, parse_q
from broker.ngsild.query.scopeq import parse_scope_query
from broker.ngsild.query.types import TypeExpr, is_plain, parse_type_expression, type_names
from broker.ngsild.terms import TermTable


@dataclass(frozen=True, slots=True)
class Paging:
    """``limit``/``offset``/``count`` as given, with the broker's limits."""

    limit: int | None = None
    offset: int | None = None
    count: bool = False
    default_limit: int = 20
    max_limit: int = 1000


@dataclass(frozen=True, slots=True)
class Filters:
    """The filter parameters of a query, as text (``None`` when absent)."""

    types: str | None = None
    ids: str | None = None
    id_pattern: str | None = None
    attrs: str | None = None
    q: str | None = None
    scope_q: str | None = None
    georel: str | None = None
    geometry: str | None = None
    coordinates: Any = None
    geoproperty: str | None = None
    expand_values: str | None = None


WILDCARD = "*"
"""``type=*``: every entity type (§4.17, v1.9)."""


def parse_entity_query(terms: TermTable, filters: Filters, paging: Paging) -> EntityQuery:
    """Validate and expand the parameters (``too_wide`` decides whether they narrow enough)."""
    geo = parse_geo_query(
        filters.georel, filters.geometry, filters.coordinates, filters.geoproperty, terms.expand
    )
    wildcard = filters.types == WILDCARD
    type_expr = None if filters.types is None or wildcard else parse_types(filters.types, terms)
    id_list = split_list(filters.ids)
    attr_names = split_list(filters.attrs)
    if filters.id_pattern is not None:
        compile_pattern(filters.id_pattern)
    query = EntityQuery(
        types=None if type_expr is None else type_names(type_expr),
        type_expr=None if type_expr is None or is_plain(type_expr) else type_expr,
        ids=None if id_list is None else tuple(check_uri(i, "entity id") for i in id_list),
        id_pattern=filters.id_pattern,
        attrs=None if attr_names is None else attribute_names(attr_names, terms),
        q=None if filters.q is None else _parse_q(filters, terms),
        scope=None if filters.scope_q is None else parse_scope_query(filters.scope_q),
        geo=geo,
    )
    return with_paging(query, paging)


def _parse_q(filters: Filters, terms: TermTable) -> QExpr:
    assert filters.q is not None  # only called with a q
    return _parsed_q(filters.q, filters.expand_values, terms)


# Clients repeat the same few queries, so each text is parsed once per term table (the parsed
# forms are immutable; a text that fails to parse raises again every time).
@lru_cache(maxsize=256)
def _parsed_q(text: str, expand_values_text: str | None, terms: TermTable) -> QExpr:
    q = parse_q(text, terms.expand)
    names = split_list(expand_values_text)
    if names is None:
        return q
    # expandValues (v1.9 §4.9): compared string values of these attributes are terms too.
    return expand_values(q, expand_names(names, terms), terms.expand)


def with_paging(query: EntityQuery, paging: Paging) -> EntityQuery:
    """``query`` with validated ``limit``/``offset``/``count``."""
    page_size = paging.default_limit if paging.limit is None else paging.limit
    offset = paging.offset or 0
    if page_size < 0 or offset < 0:
        raise BadRequestData("limit and offset must not be negative")
    if page_size > paging.max_limit:
        raise TooManyResults(f"limit {page_size} is over the maximum of {paging.max_limit}")
    if page_size == 0 and not paging.count:
        raise BadRequestData("limit=0 is only allowed together with options=count")
    return replace(query, limit=page_size, offset=offset, count=paging.count)


@lru_cache(maxsize=256)
def parse_types(text: str, terms: TermTable) -> TypeExpr:
    """A ``type`` parameter (a list or an expression) with expanded names."""
    return parse_type_expression(text, lambda name: terms.expand(check_name(name, "entity type")))


def parse_selectors(raw: Any, terms: TermTable) -> tuple[Selector, ...]:
    """The ``entities`` member of a ``Query`` body: a non-empty list of selectors."""
    if not isinstance(raw, list) or not raw:
        raise BadRequestData("'entities' must be a non-empty array of entity selectors")
    selectors = []
    for item in raw:
        if not isinstance(item, dict) or "type" not in item or not isinstance(item["type"], str):
            raise BadRequestData("each entity selector needs a 'type' (a string)")
        ids = _selector_ids(item.get("id"))
        pattern = item.get("idPattern")
        if pattern is not None:
            if not isinstance(pattern, str):
                raise BadRequestData("'idPattern' must be a string")
            compile_pattern(pattern)
        # §5.2.33: when both are given, id wins and idPattern is ignored.
        selectors.append(Selector(parse_types(item["type"], terms), ids, None if ids else pattern))
    return tuple(selectors)


def _selector_ids(raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, str) for item in items):
        raise BadRequestData("a selector's 'id' must be a URI or a non-empty array of URIs")
    return tuple(check_uri(item, "entity id") for item in items)


def narrow_by_selectors(query: EntityQuery, selectors: tuple[Selector, ...]) -> EntityQuery:
    """Add selectors; a single one becomes plain fields, which stores can index."""
    if len(selectors) > 1:
        names = {name for s in selectors if s.types is not None for name in type_names(s.types)}
        return replace(query, types=tuple(sorted(names)), selectors=selectors)
    (selector,) = selectors
    types = selector.types
    return replace(
        query,
        types=None if types is None else type_names(types),
        type_expr=None if types is None or is_plain(types) else types,
        ids=selector.ids,
        id_pattern=selector.id_pattern,
    )


def attribute_names(names: list[str], terms: TermTable) -> tuple[str, ...]:
    """Attribute names as sorted IRIs; ``id``, ``type`` and the like are not attributes."""
    members = [
        name for name in names if terms.expand(check_name(name, "attribute")).startswith("@")
    ]
    if members:
        raise BadRequestData(
            f"{', '.join(members)}: entity members, not attributes, cannot be listed in attrs"
        )
    return tuple(sorted(expand_names(names, terms)))


def too_wide(query: EntityQuery, terms: TermTable, *, wildcard: bool = False) -> bool:
    """§5.7.2.4 / §5.6.21.4: whether a query fails to narrow the entities it reaches.

    A type (``*`` included), a geo-query, a ``scopeQ``, or a non-system attribute named in
    ``attrs`` or ``q`` narrows; ids or an idPattern alone, or only system attributes, do not.
    """
    system = {terms.expand(name) for name in SYSTEM_MEMBERS}
    named = set(query.attrs or ()) | (set() if query.q is None else set(attributes_of(query.q)))
    narrowed = query.types is not None or query.geo is not None or query.scope is not None
    return not (wildcard or narrowed or named - system)
