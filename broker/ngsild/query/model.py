"""The entity query model and its reference evaluator.

One ``EntityQuery`` carries everything a query can ask (GS CIM 009 v1.8.1 §5.7.2): entity
selectors, ``attrs``, ``q``, ``scopeQ``, ``geoQ`` and paging. Stores narrow candidates with their
indexes and finish with ``matches``, which is the definition of the answer; the contract tests
compare every store with it on random data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.ngsild.query.geo import evaluate_geo
from broker.ngsild.query.patterns import compile_pattern
from broker.ngsild.query.qeval import Linked, evaluate_q
from broker.ngsild.query.qlang import required_attributes
from broker.ngsild.query.scopeq import evaluate_scope
from broker.ngsild.query.types import TypeExpr, matches_types

if TYPE_CHECKING:
    from broker.ngsild.query.geo import GeoQuery
    from broker.ngsild.query.ordering import Ordering
    from broker.ngsild.query.qlang import QExpr
    from broker.ngsild.query.scopeq import ScopeExpr

__all__ = ["EntityQuery", "Position", "Resume", "Selector", "compile_pattern", "matches"]

# A place in a store's stable (insertion) order: a number and, for stores whose numbers may tie
# (MongoDB's per-replica clocks), the entity id that breaks the tie.
Position = tuple[int, str]


@dataclass(frozen=True, slots=True)
class Selector:
    """One entry of a query's ``entities`` list: an entity matches if it satisfies all members."""

    types: TypeExpr | None = None
    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    """Where an earlier page of the same query ended: its ``offset``-th match (the last one
    it showed) is at ``position`` in the store's order, so the next page may start right after
    it instead of skipping ``offset`` matches again (keyset paging behind ``rel="next"``)."""

    offset: int
    position: Position


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """Which entities to return, and which page of them.

    Attributes:
        types: type IRIs for indexes: every matching entity has at least one of them.
        type_expr: the exact type expression, when it is more than a list of alternatives.
        ids: entity ids; an entity matches if its id is one of them.
        id_pattern: a regular expression (RE2 syntax, searched) the id must match.
        selectors: alternative selectors (``POST /entityOperations/query`` with several
            ``entities``); an entity must satisfy one of them as well as the fields above.
        attrs: attribute IRIs; an entity matches if it has at least one of them.
        q: a parsed ``q`` expression.
        scope: a parsed ``scopeQ`` expression.
        geo: a geo-query; ``near`` results are ordered by distance unless ``ordering`` says
            otherwise.
        ordering: ``orderBy``; without it results come in insertion order.
        limit: page size; 0 asks only for the count.
        offset: how many matching entities to skip, in the store's stable order.
        count: whether to compute the total number of matches.
        resume: where the page before this one ended (``keyset``); changes nothing in the
            answer, only how a store may reach it.
    """

    types: tuple[str, ...] | None = None
    type_expr: TypeExpr | None = None
    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None
    selectors: tuple[Selector, ...] | None = None
    attrs: tuple[str, ...] | None = None
    q: QExpr | None = None
    scope: ScopeExpr | None = None
    geo: GeoQuery | None = None
    ordering: Ordering | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False
    resume: Resume | None = None

    @property
    def keyset(self) -> Position | None:
        """The position to start after instead of skipping ``offset`` matches, when ``resume``
        stands for exactly this offset and the order is the store's own: with ``orderBy`` or
        distance ordering the position says nothing, and a count needs every match anyway. A
        layer that changes the offset without clearing ``resume`` thus only loses the shortcut.
        """
        resume = self.resume
        if resume is None or resume.offset != self.offset or self.offset == 0:
            return None
        return resume.position if self.resumable else None

    @property
    def resumable(self) -> bool:
        """Whether a next page could start after a position: in the store's own order and
        without a count. Only then does a next link carry a cursor."""
        return not self.count and self.ordering is None and not self.by_distance

    @property
    def has_expressions(self) -> bool:
        """Whether the query has filters that need the evaluator (not just index lookups)."""
        return not (
            self.q is None
            and self.scope is None
            and self.geo is None
            and self.type_expr is None
            and self.selectors is None
            and self.ordering is None
        )

    @property
    def by_distance(self) -> bool:
        """Whether results are ordered by distance rather than by insertion."""
        return self.ordering is None and self.geo is not None and self.geo.georel == "near"

    @property
    def required_attributes(self) -> frozenset[str]:
        """Attribute IRIs every matching entity has (for attribute indexes)."""
        if self.q is None:
            return frozenset()
        found = required_attributes(self.q)
        if self.geo is not None and self.geo.georel != "disjoint":
            found = found | {self.geo.geoproperty}
        return found


def matches(query: EntityQuery, doc: dict[str, Any], linked: Linked | None = None) -> bool:
    """Whether ``doc`` satisfies the query's filters (paging aside); ``linked`` holds the
    entities linked-entity paths in ``q`` may reach."""
    if query.types is not None and not set(query.types).intersection(doc["type"]):
        return False
    if query.type_expr is not None and not matches_types(query.type_expr, doc["type"]):
        return False
    if query.ids is not None and doc["id"] not in query.ids:
        return False
    if query.id_pattern is not None and not compile_pattern(query.id_pattern).search(doc["id"]):
        return False
    if query.selectors is not None and not any(_selects(s, doc) for s in query.selectors):
        return False
    if query.attrs is not None and not any(attr in doc["attrs"] for attr in query.attrs):
        return False
    return _matches_expressions(query, doc, linked)


def _selects(selector: Selector, doc: dict[str, Any]) -> bool:
    if selector.types is not None and not matches_types(selector.types, doc["type"]):
        return False
    if selector.ids is not None and doc["id"] not in selector.ids:
        return False
    return selector.id_pattern is None or bool(
        compile_pattern(selector.id_pattern).search(doc["id"])
    )


def _matches_expressions(query: EntityQuery, doc: dict[str, Any], linked: Linked | None) -> bool:
    if query.q is not None and not evaluate_q(query.q, doc, linked):
        return False
    if query.scope is not None and not evaluate_scope(query.scope, doc.get("scope")):
        return False
    if query.geo is not None:
        return evaluate_geo(query.geo, doc)
    return True
