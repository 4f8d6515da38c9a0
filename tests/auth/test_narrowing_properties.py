"""Narrowing is exact where it says so, and finishing always gives the definition's answer.

Random entities, grants and grantee queries: the union of the narrowed queries (evaluated as the
stores define them, by ``matches``), finished, equals filtering every entity with the visibility
predicate and the grantee's query on its projection. The narrowing is never narrower than the
answer, and when it claims to be exact it is the answer before finishing.
"""

from __future__ import annotations

from typing import Any

from broker.auth.grants import Grant, Grantee, Permission, Selection, shared_view
from broker.auth.narrowing import narrow
from broker.ngsild.query import EntityQuery, matches
from broker.ngsild.query.geo import LOCATION, GeoQuery, parse_geo_query
from broker.ngsild.query.qlang import And, Comparison, Exists, Or, Path, QExpr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TYPES = ("urn:t:Gauge", "urn:t:Pump", "urn:t:Sensor")
ATTRS = ("https://x.example/level", "https://x.example/status", "https://x.example/owner")
SQUARE = "[[[0,0],[2,0],[2,2],[0,2],[0,0]]]"
GEO: tuple[GeoQuery, ...] = tuple(
    query
    for query in (
        parse_geo_query("within", "Polygon", SQUARE, None, str),
        parse_geo_query("near;maxDistance==200000", "Point", "[3,3]", None, str),
        parse_geo_query("disjoint", "Polygon", SQUARE, None, str),
    )
    if query is not None
)

names = st.sampled_from(ATTRS)
type_sets = st.frozensets(st.sampled_from(TYPES), min_size=1)


def leaf() -> st.SearchStrategy[QExpr]:
    compare = st.builds(
        Comparison,
        st.builds(Path, names),
        st.sampled_from(["==", "!=", ">", "<="]),
        st.integers(0, 3),
    )
    exists = st.builds(Exists, st.builds(Path, names), st.booleans())
    return st.one_of(compare, exists)


q_exprs: st.SearchStrategy[QExpr] = st.recursive(
    leaf(),
    lambda inner: st.one_of(
        st.builds(And, st.tuples(inner, inner)), st.builds(Or, st.tuples(inner, inner))
    ),
    max_leaves=4,
)


@st.composite
def entities(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 12))
    docs = []
    for number in range(count):
        attrs: dict[str, Any] = {
            name: [{"type": "Property", "value": draw(st.integers(0, 3))}]
            for name in draw(st.frozensets(names))
        }
        if draw(st.booleans()):
            point = [draw(st.integers(-1, 4)), draw(st.integers(-1, 4))]
            geometry = {"type": "Point", "coordinates": point}
            attrs[LOCATION] = [{"type": "GeoProperty", "value": geometry}]
        types = sorted(draw(type_sets))
        docs.append({"id": f"urn:e:{number}", "type": types, "attrs": attrs})
    return docs


@st.composite
def grants(draw: st.DrawFn) -> list[Grant]:
    made = []
    for number in range(draw(st.integers(0, 3))):
        shared = draw(st.none() | st.frozensets(st.sampled_from((*ATTRS, LOCATION))))
        selection = Selection(
            types=draw(type_sets),
            attrs=shared,
            q=draw(st.none() | q_exprs),
            geo=draw(st.none() | st.sampled_from(GEO)),
        )
        grantee = Grantee(tenant="kagawa")
        permissions = frozenset({Permission.READ})
        made.append(Grant(f"urn:g:{number}", "takamatsu", grantee, permissions, selection, "", ""))
    return made


@st.composite
def queries(draw: st.DrawFn) -> EntityQuery:
    types = draw(st.none() | st.lists(st.sampled_from(TYPES), min_size=1, unique=True))
    both = draw(st.booleans()) and types is not None and len(types) > 1
    return EntityQuery(
        types=None if types is None else tuple(sorted(types)),
        type_expr=(frozenset(types),) if both and types is not None else None,
        attrs=draw(st.none() | st.lists(names, min_size=1, unique=True).map(tuple)),
        q=draw(st.none() | q_exprs),
        geo=draw(st.none() | st.sampled_from(GEO)),
    )


def answer(query: EntityQuery, granted: list[Grant], docs: list[dict]) -> dict[str, dict]:
    """The definition: visible entities, projected, that the grantee's query matches."""
    found = {}
    for doc in docs:
        view = shared_view(doc, granted)
        if view is not None and matches(query, view):
            found[doc["id"]] = view
    return found


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=queries(), granted=grants(), docs=entities())
def test_narrowed_queries_finished_are_the_definition(query, granted, docs) -> None:
    expected = answer(query, granted, docs)
    narrowing = narrow(query, granted)

    union = [doc for doc in docs if any(matches(q, doc) for q in narrowing.queries)]
    assert {doc["id"] for doc in union} >= set(expected)
    if narrowing.exact:
        assert {doc["id"] for doc in union} == set(expected)
    finished = {doc["id"]: narrowing.finish(doc) for doc in union}
    assert {key: view for key, view in finished.items() if view is not None} == expected

    if narrowing.combined is None:
        assert expected == {} and narrowing.queries == ()
        return
    covered = [doc for doc in docs if matches(narrowing.combined, doc)]
    assert {doc["id"] for doc in covered} >= set(expected)
    views = {doc["id"]: narrowing.finish(doc) for doc in covered}
    assert {key: view for key, view in views.items() if view is not None} == expected
