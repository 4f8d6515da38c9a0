"""A grantee's query, narrowed to what grants share, as queries stores answer with indexes (pure).

Theory of operation. The answer to grantee query ``Q`` under grants ``G`` is, by definition
(``Narrowing.finish``), every entity ``E`` of the owner some grant selects, projected to its
visible attributes, where ``Q`` matches that projection. ``narrow`` rewrites this as ordinary
``EntityQuery`` values. Grants with the same ``q`` and geo-query form one group; the group's
query is ``Q`` AND (one of the group's types) AND the grant ``q`` AND the grant geo-query. The
union of the groups' queries is then exactly the answer, provided that evaluating ``Q`` on the
whole entity and on its projection agree, which holds when every attribute ``Q`` looks at is
shared by every grant of the group.

Where that cannot be guaranteed, the query is widened, never narrowed, and ``exact`` is False:

- a top-level conjunct of ``Q.q`` on an attribute some grant of the group does not share, or
  with a linked-entity path, is left out (a conjunct less is a superset);
- ``Q.attrs`` or ``Q.geo`` on such an attribute is kept as is (on the whole entity they match a
  superset of what they match on the projection);
- when ``Q`` and the grants both have a geo-query the query holds only ``Q``'s (one slot), and a
  grant's ``near`` is never put in the slot (it would reorder the results by distance);
- a type expression whose combination with the grants' types would be too large keeps ``Q``'s
  types only.

``orderBy`` keys on attributes that not every applicable grant shares are dropped, so that the
order of the results never reveals hidden values (for the grantee such an attribute is absent,
and absent values all tie).

Then every result must go through ``finish``, which also projects; after an exact narrowing it
never rejects anything, so calling it always is simplest. ``single`` is set when one exact query
answers it all: the store can then page and count it. Otherwise ``combined`` is one query
covering the union (the grants' types, without their ``q`` and geo-query), to be paged by
finishing its results until a page is full.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from broker.auth.grants import Grant, Selection, shared_view
from broker.ngsild.entity import EntityDoc
from broker.ngsild.query import EntityQuery, matches
from broker.ngsild.query.geo import GeoQuery
from broker.ngsild.query.ordering import Ordering
from broker.ngsild.query.qlang import And, QExpr, attributes_of, link_depth
from broker.ngsild.query.types import TypeExpr

_MAX_TYPE_ALTERNATIVES = 256
_ENTITY_MEMBERS = frozenset({"id", "type", "createdAt", "modifiedAt"})


@dataclass(frozen=True, slots=True)
class Narrowing:
    """The narrowed queries for one grantee query, and how to finish their results.

    Attributes:
        query: the grantee's query.
        grants: the grants that apply (see ``grants.applicable``).
        queries: queries whose union contains the answer (empty: nothing is visible).
        exact: whether the union is exactly the answer, before projection.
        combined: one query containing the answer, None when nothing is visible.
    """

    query: EntityQuery
    grants: tuple[Grant, ...]
    queries: tuple[EntityQuery, ...]
    exact: bool
    combined: EntityQuery | None

    @property
    def single(self) -> EntityQuery | None:
        """The one exact query, when there is one: stores can page and count it themselves."""
        return self.queries[0] if self.exact and len(self.queries) == 1 else None

    def finish(self, doc: EntityDoc) -> EntityDoc | None:
        """What the grantee sees of ``doc``, or None if it is not part of the answer."""
        view = shared_view(doc, self.grants)
        if view is None or not matches(self.query, view):
            return None
        return view


def narrow(query: EntityQuery, grants: Sequence[Grant]) -> Narrowing:
    """The narrowing of grantee query ``query`` under ``grants`` (see the module docstring)."""
    if query.ordering is not None:
        query = replace(query, ordering=_visible_ordering(query.ordering, _shared_by_all(grants)))
    groups = _groups([grant.selection for grant in grants])
    built = [_group_query(query, *group) for group in groups]
    queries = tuple(narrowed for narrowed, _ in built)
    exact = all(is_exact for _, is_exact in built)
    combined: EntityQuery | None = None
    if len(built) == 1:
        combined = queries[0]
    elif built:
        everything = frozenset().union(*(s.selection.types for s in grants))
        combined, _ = _group_query(query, everything, None, None, _shared_by_all(grants))
    return Narrowing(query, tuple(grants), queries, exact, combined)


_Group = tuple[frozenset[str], QExpr | None, GeoQuery | None, frozenset[str] | None]


def _groups(selections: Sequence[Selection]) -> list[_Group]:
    """Selections with equal ``q`` and geo-query merged: their types united, the attributes
    every one of them shares intersected."""
    groups: list[_Group] = []
    for selection in selections:
        for index, (types, q, geo, attrs) in enumerate(groups):
            if q == selection.q and geo == selection.geo:
                groups[index] = (types | selection.types, q, geo, _both(attrs, selection.attrs))
                break
        else:
            groups.append((selection.types, selection.q, selection.geo, selection.attrs))
    return groups


def _both(left: frozenset[str] | None, right: frozenset[str] | None) -> frozenset[str] | None:
    if left is None:
        return right
    return left if right is None else left & right


def _shared_by_all(grants: Sequence[Grant]) -> frozenset[str] | None:
    shared: frozenset[str] | None = None
    for grant in grants:
        shared = _both(shared, grant.selection.attrs)
    return shared


def _visible_ordering(ordering: Ordering, shared: frozenset[str] | None) -> Ordering | None:
    if shared is None:
        return ordering
    keys = tuple(
        key
        for key in ordering.keys
        if not key.path.via and (key.path.attr in _ENTITY_MEMBERS or key.path.attr in shared)
    )
    return replace(ordering, keys=keys) if keys else None


def _group_query(
    query: EntityQuery,
    types: frozenset[str],
    grant_q: QExpr | None,
    grant_geo: GeoQuery | None,
    shared: frozenset[str] | None,
) -> tuple[EntityQuery, bool]:
    narrowed, exact = _with_types(query, types)
    kept, q_exact = _kept_conjuncts(query.q, shared)
    parts = [*kept, *([] if grant_q is None else [grant_q])]
    q = None if not parts else parts[0] if len(parts) == 1 else And(tuple(parts))
    geo, geo_exact = _geo_slot(query.geo, grant_geo, shared)
    attrs_exact = query.attrs is None or shared is None or set(query.attrs) <= shared
    narrowed = replace(narrowed, q=q, geo=geo)
    return narrowed, exact and q_exact and geo_exact and attrs_exact


def _with_types(query: EntityQuery, types: frozenset[str]) -> tuple[EntityQuery, bool]:
    if query.types is None:
        return replace(query, types=tuple(sorted(types))), True
    wanted: TypeExpr = query.type_expr or tuple(frozenset({name}) for name in query.types)
    if len(wanted) * len(types) > _MAX_TYPE_ALTERNATIVES:
        return query, False
    # (a|b) AND (c|d) in disjunctive normal form: a;c | a;d | b;c | b;d.
    product = tuple(dict.fromkeys(left | {name} for left in wanted for name in sorted(types)))
    return replace(query, type_expr=product), True


def _kept_conjuncts(q: QExpr | None, shared: frozenset[str] | None) -> tuple[list[QExpr], bool]:
    if q is None:
        return [], True
    conjuncts = list(q.items) if isinstance(q, And) else [q]
    kept = [
        item
        for item in conjuncts
        if link_depth(item) == 0 and (shared is None or attributes_of(item) <= shared)
    ]
    return kept, len(kept) == len(conjuncts)


def _geo_slot(
    asked: GeoQuery | None, granted: GeoQuery | None, shared: frozenset[str] | None
) -> tuple[GeoQuery | None, bool]:
    if asked is not None:
        visible = shared is None or asked.geoproperty in shared
        return asked, visible and granted is None
    if granted is None:
        return None, True
    if granted.georel == "near":
        return None, False
    return granted, True
