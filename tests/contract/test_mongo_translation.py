"""The MongoDB store's query translation, checked without a server.

For every query the store contract's differential tests generate (and a wider set covering every
``q`` operator, every geo relation and every paging form), the filter ``mongo_filters`` compiles
is evaluated by ``mongo_model`` — an independent model of MongoDB's documented query semantics —
over the very documents ``mongo_fields`` would store. The filter must keep every entity the
reference evaluator ``matches`` accepts; where the plan says it is exact it must keep nothing
else, and MongoDB's own sort/skip/limit/count must then give the page. Otherwise the page comes
from the same collector the store runs over the candidates. Documents and filters must also be
encodable as BSON, and covers valid GeoJSON polygons as MongoDB requires them.

``mongoquery`` (PyPI) was considered as the model: it is not in this project's package index
and has no geospatial operators, so the model is written here from the manual instead.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import bson
import orjson
import pytest
import shapely
from broker.ngsild.query import EntityQuery, matches
from broker.ngsild.query.geo import GEORELS, GeoQuery, distance_m
from broker.ngsild.query.model import Selector
from broker.ngsild.query.ordering import order, parse_ordering
from broker.ngsild.query.page import select_page
from broker.ngsild.query.qlang import And, Exists, Or, QExpr, Range, parse_q
from broker.ngsild.query.scopeq import parse_scope_query
from broker.store.mongo_fields import searchable
from broker.store.mongo_filters import ORDER, compile_query
from broker.store.mongo_geo import box_cover
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.contract import mongo_model
from tests.contract.test_store_contract import (
    LOCATION,
    NAMES,
    T0,
    TYPES,
    D,
    eid,
    entity_specs,
    expand_term,
    expression_queries,
    located,
    located_doc,
    optional_tuple,
    queries,
    spec_doc,
    type_lists,
)

Doc = dict[str, Any]


def stored(docs: list[Doc]) -> list[Doc]:
    """What the store keeps for ``docs`` inserted in this order (``seq`` ascending)."""
    return [
        {**searchable(doc), "_id": doc["id"], "seq": 1_000 + n, "version": 0}
        for n, doc in enumerate(docs)
    ]


def expected_page(query: EntityQuery, docs: list[Doc]) -> tuple[list[str], int]:
    found = [doc for doc in docs if matches(query, doc)]
    if query.ordering is not None:
        found = order(query.ordering, found)
    elif query.by_distance:
        assert query.geo is not None
        found.sort(key=lambda doc: distance_m(query.geo, doc) or 0.0)
    ids = [doc["id"] for doc in found]
    return ids[query.offset : query.offset + query.limit], len(ids)


def check_translation(query: EntityQuery, docs: list[Doc]) -> None:
    records = stored(docs)
    plan = compile_query(query)
    bson.encode(plan.filter)  # MongoDB can be sent this filter
    for record in records:
        bson.encode(record)
        check_field_names(record)
        check_covers(record)
    candidates = mongo_model.find(records, plan.filter, ORDER)
    kept = {record["_id"] for record in candidates}
    accepted = [doc["id"] for doc in docs if matches(query, doc)]
    assert set(accepted) <= kept, "the filter dropped entities the evaluator accepts"
    page, total = expected_page(query, docs)
    if plan.exact:
        assert [record["_id"] for record in candidates] == accepted
        got = []
        if query.limit > 0:
            got = mongo_model.find(records, plan.filter, ORDER, query.offset, query.limit)
        assert [record["_id"] for record in got] == page
        assert mongo_model.count(records, plan.filter) == total
    else:
        loaded = (orjson.loads(record["doc"]) for record in candidates)
        entities, counted = select_page(loaded, query)
        assert [doc["id"] for doc in entities] == page
        assert counted == (total if query.count else None)


def check_field_names(value: Any) -> None:
    """IRIs are values, never field names: no dots, no ``$`` (MongoDB paths read both)."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert "." not in key and not key.startswith("$"), key
            check_field_names(item)
    elif isinstance(value, list):
        for item in value:
            check_field_names(item)


def check_covers(record: Doc) -> None:
    """Each indexed geometry is one MongoDB's 2dsphere index accepts."""
    for entry in record["geo"]:
        cover = entry["g"]
        if cover["type"] == "Point":
            lon, lat = cover["coordinates"]
            assert -180 <= lon <= 180 and -90 <= lat <= 90
            continue
        (ring,) = cover["coordinates"]
        assert cover["type"] == "Polygon" and len(ring) >= 4 and ring[0] == ring[-1]
        assert all(-180 <= lon <= 180 and -90 <= lat <= 90 for lon, lat in ring)
        assert all(a != b for a, b in itertools.pairwise(ring)), "duplicate vertices"
        assert shapely.Polygon(ring).is_valid, "self-intersecting ring"


# --- the store contract's own generators -----------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(specs=entity_specs, query=queries)
def test_selector_queries_of_the_contract_translate(
    specs: list[tuple[str, list[str], list[str]]], query: EntityQuery
) -> None:
    check_translation(query, [spec_doc(*spec) for spec in specs])


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(located, max_size=10, unique_by=lambda spec: spec[0]), query=expression_queries
)
def test_expression_queries_of_the_contract_translate(
    specs: list[tuple[Any, ...]], query: EntityQuery
) -> None:
    check_translation(query, [located_doc(spec) for spec in specs])


# --- every q operator, geo relation and paging form ------------------------------------------

Q_ALL = [
    "level>2",
    "level>=2.5",
    "level<1",
    "level<=3",
    "level==3",
    "level!=3",
    "level==1..3",
    "level!=1..3",
    'level==1,3,"x"',
    "level!=1,4",
    "level>9007199254740993",
    'status=="ok"',
    'status!="ok"',
    'status>"ng"',
    'status<="ok"',
    'status>="o"',
    'status<"p"',
    'status=="ng","ok"',
    'status=="a".."p"',
    'status!="a".."p"',
    'status!="+".."z"',
    'status=="3"',
    'status>"2026-01-01"',
    'status=="2026-01-02T00:00:00Z"',
    'status~="^o"',
    'status!~="k$"',
    "status==true",
    "status",
    "!status",
    "level>2|status",
    "(level<1;status)|!level",
    "level<1;!status",
    'level.observedAt>="2026-01-01"',
    "level.sub==1",
    "level[0]>2",
    'createdAt>"2025-01-01"',
    "rel{T:level}>1",
]
# Values around the constants of Q_ALL, so that boundaries (==, >= at equality) are hit often.
LEVELS: list[Any] = [0, 1, 2, 2.5, 3, 4, 1.0, -0.0, 2**60, "3", "x", True, [1, 5], {"k": 1}]
STATUSES: list[Any] = ["ok", "ng", "o", "p", "a", "ab", "", "é", "3", 7, True]
STATUSES += ["2026-01-02T00:00:00Z", "2026-01-02T09:00:00+09:00", "2025-12-31"]
VALUES = {"level": st.sampled_from(LEVELS), "status": st.sampled_from(STATUSES)}
BASES = [(-75.0, 10.0), (-45.0, -120.0), (0.0, 0.0), (45.0, 139.7), (60.0, 25.0), (79.0, -60.0)]


@st.composite
def geometries(draw: Any, base: tuple[float, float]) -> Doc:
    lat0, lon0 = base
    kind = draw(st.sampled_from(["Point", "Point", "LineString", "Polygon", "Wide"]))
    lat = lat0 + draw(st.integers(-8, 8)) / 4
    lon = lon0 + draw(st.integers(-12, 12)) / 2
    size = draw(st.sampled_from([0.001, 0.3, 2.0, 9.0]))
    if kind == "Point":
        return {"type": "Point", "coordinates": [lon, lat]}
    if kind == "LineString":
        return {"type": "LineString", "coordinates": [[lon, lat], [lon + size, lat + size / 3]]}
    if kind == "Wide":  # wider than any cover: kept in geoWide
        return {"type": "LineString", "coordinates": [[lon - 60, lat], [lon + 60, lat]]}
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size / 2], [lon, lat + size / 2]]
    return {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}


def instance(value: Any, kind: str = "Property") -> Doc:
    member = "object" if kind == "Relationship" else "value"
    return {"type": kind, member: value, "observedAt": "2026-01-02T00:00:00Z", "createdAt": T0}


@st.composite
def rich_docs(draw: Any, base: tuple[float, float]) -> list[Doc]:
    docs = []
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=8, unique=True)):
        doc = spec_doc(name, draw(type_lists), [])
        doc["createdAt"] = draw(st.sampled_from([T0, "2024-06-01T00:00:00.000Z"]))
        attrs = doc["attrs"]
        for attr, values in VALUES.items():
            shape = draw(st.sampled_from(["one", "one", "one", "none", "two", "other", "sub"]))
            if shape == "one":
                attrs[D + attr] = [instance(draw(values))]
            elif shape == "two":  # two datasetIds: never indexed
                first, second = instance(draw(values)), instance(draw(values))
                attrs[D + attr] = [first, {**second, "datasetId": "urn:ngsi-ld:Dataset:b"}]
            elif shape == "other":  # not a Property: never indexed
                attrs[D + attr] = [instance(eid("a"), "Relationship")]
            elif shape == "sub":
                attrs[D + attr] = [{**instance(draw(values)), D + "sub": instance(1)}]
        for attr in (LOCATION, D + "area"):
            for _ in range(draw(st.integers(0, 2))):
                attrs.setdefault(attr, []).append(instance(draw(geometries(base)), "GeoProperty"))
        if draw(st.booleans()):
            doc["scope"] = [draw(st.sampled_from(["/a", "/a/c", "/b"]))]
        docs.append(doc)
    return docs


@st.composite
def geo_queries(draw: Any, base: tuple[float, float], georel: str | None = None) -> GeoQuery:
    georel = georel or draw(st.sampled_from(GEORELS))
    reference = draw(geometries(base))
    maximum = minimum = None
    if georel == "near":  # §4.10: near takes a Point and exactly one distance
        position = reference["coordinates"]
        while isinstance(position[0], list):
            position = position[0]
        reference = {"type": "Point", "coordinates": position}
        distance = draw(st.sampled_from([50.0, 20_000.0, 300_000.0]))
        if draw(st.booleans()):
            maximum = distance
        else:
            minimum = distance
    geoproperty = draw(st.sampled_from([LOCATION, D + "area"]))
    return GeoQuery(georel, reference, geoproperty, max_distance=maximum, min_distance=minimum)


@st.composite
def rich_cases(draw: Any) -> tuple[EntityQuery, list[Doc]]:
    base = draw(st.sampled_from(BASES))
    docs = draw(rich_docs(base))
    query = EntityQuery(
        types=draw(optional_tuple([D + t for t in TYPES])),
        type_expr=draw(st.none() | st.just((frozenset({D + "A", D + "B"}), frozenset({D + "C"})))),
        ids=draw(optional_tuple([eid(name) for name in NAMES[:5]])),
        id_pattern=draw(st.none() | st.sampled_from(["a", "[0-9]$"])),
        selectors=draw(
            st.none()
            | st.just((Selector(types=((frozenset({D + "A"}),))), Selector(ids=(eid("b"),))))
            | st.just((Selector(types=((frozenset({D + "B"}),))), Selector(id_pattern="1")))
        ),
        attrs=draw(optional_tuple([D + "level", D + "status", LOCATION])),
        q=draw(st.none() | st.sampled_from(Q_ALL).map(lambda text: parse_q(text, expand_term))),
        scope=draw(st.none() | st.sampled_from(["/a/#", "/b"]).map(parse_scope_query)),
        geo=draw(st.none() | geo_queries(base)),
        ordering=draw(
            st.none()
            | st.sampled_from(["level;desc", "status,id;desc"]).map(
                lambda text: parse_ordering(text, expand_term, coordinates="[0, 0]")
            )
        ),
        limit=draw(st.integers(0, 5)),
        offset=draw(st.integers(0, 4)),
        count=draw(st.booleans()),
    )
    return query, docs


@settings(max_examples=600, deadline=None)
@given(case=rich_cases())
def test_every_operator_relation_and_paging_form_translates(
    case: tuple[EntityQuery, list[Doc]],
) -> None:
    query, docs = case
    check_translation(query, docs)


@pytest.mark.parametrize("text", Q_ALL)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_every_q_operator_translates(text: str, data: st.DataObject) -> None:
    docs = data.draw(rich_docs(data.draw(st.sampled_from(BASES))))
    query = EntityQuery(q=parse_q(text, expand_term), limit=4, count=data.draw(st.booleans()))
    check_translation(query, docs)


@pytest.mark.parametrize("georel", GEORELS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_every_geo_relation_translates(georel: str, data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(BASES))
    docs = data.draw(rich_docs(base))
    geo = data.draw(geo_queries(base, georel))
    query = EntityQuery(geo=geo, limit=data.draw(st.integers(0, 4)), count=True)
    check_translation(query, docs)


def operators(expr: QExpr) -> set[str]:
    if isinstance(expr, And | Or):
        found = {type(expr).__name__}
        return found.union(*(operators(item) for item in expr.items))
    if isinstance(expr, Exists):
        return {"!exists" if expr.negated else "exists"}
    kind = "range" if isinstance(expr.value, Range) else type(expr.value).__name__
    return {expr.op, f"{expr.op} {kind}"}


def test_the_cases_cover_every_q_operator_and_geo_relation() -> None:
    seen = set().union(*(operators(parse_q(text, expand_term)) for text in Q_ALL))
    for op in ("==", "!=", ">", ">=", "<", "<=", "~=", "!~="):
        assert op in seen, op
    for form in ("== range", "!= range", "== tuple", "!= tuple", "== str", "> str", "== bool"):
        assert form in seen, form
    assert {"And", "Or", "exists", "!exists"} <= seen
    assert set(GEORELS) == {
        "near",
        "within",
        "contains",
        "intersects",
        "equals",
        "disjoint",
        "overlaps",
    }


@pytest.mark.parametrize(
    ("south", "north"), [(-79.0, -70.0), (-1.0, 1.0), (40.0, 41.0), (70.0, 79.0)]
)
@pytest.mark.parametrize("width", [0.0, 0.5, 10.0, 89.0])
def test_a_cover_holds_its_planar_box_on_the_sphere(
    south: float, north: float, width: float
) -> None:
    west = -30.0
    box = (west, south, west + width, north)
    cover = box_cover(box)
    assert cover is not None
    steps = 12
    for i in range(steps + 1):
        lon = west + width * i / steps
        for lat in (south, north, (south + north) / 2):
            assert mongo_model.spherical_contains(cover, lon, lat), (lon, lat)


def test_the_model_sees_why_covers_are_needed() -> None:
    # A box drawn with its own four corners: on the sphere its southern edge bulges north and
    # leaves out points of the planar box. The model must see this, or it could not check covers.
    naive = {"type": "Polygon", "coordinates": [[[0, 60], [40, 60], [40, 61], [0, 61], [0, 60]]]}
    assert not mongo_model.spherical_contains(naive, 20.0, 60.1)
    cover = box_cover((0.0, 60.0, 40.0, 61.0))
    assert cover is not None and mongo_model.spherical_contains(cover, 20.0, 60.0)


def test_boxes_a_small_polygon_cannot_cover_have_none() -> None:
    assert box_cover((-100.0, 0.0, 100.0, 1.0)) is None  # wider than 90°
    assert box_cover((0.0, 80.5, 1.0, 85.0)) is None  # too near a pole
    assert box_cover((0.0, 0.0, 1.0, math.inf)) is None


def test_the_model_follows_mongodb_type_bracketing_and_array_semantics() -> None:
    doc = {"v": [1, "b"], "n": 2, "flag": True, "sub": [{"a": "x", "v": 3}, {"a": "y", "v": "z"}]}
    assert mongo_model.matches(doc, {"v": 1}) and mongo_model.matches(doc, {"v": "b"})
    assert mongo_model.matches(doc, {"n": {"$eq": 2.0}})
    assert not mongo_model.matches(doc, {"flag": 1})  # a boolean is not a number
    assert not mongo_model.matches(doc, {"n": {"$gt": "a"}})  # no order across types
    assert mongo_model.matches(doc, {"missing": {"$ne": 1}})
    assert mongo_model.matches(doc, {"missing": {"$not": {"$gt": 1}}})
    assert mongo_model.matches(doc, {"sub.a": "y", "sub.v": 3})  # different elements
    assert not mongo_model.matches(doc, {"sub": {"$elemMatch": {"a": "y", "v": 3}}})
    assert mongo_model.matches(doc, {"sub": {"$elemMatch": {"a": "x", "v": {"$gte": 3}}}})
    assert not mongo_model.matches(doc, {"sub.a": {"$ne": "x"}})
    with pytest.raises(NotImplementedError):
        mongo_model.matches(doc, {"v": {"$regex": "b"}})


def test_a_query_only_counting_sends_no_page() -> None:
    query = EntityQuery(types=(D + "A",), limit=0, count=True)
    plan = compile_query(query)
    assert plan.exact and plan.filter == {"types": {"$in": [D + "A"]}}
    assert compile_query(EntityQuery(limit=0)).filter == {}
