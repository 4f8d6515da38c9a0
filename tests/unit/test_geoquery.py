"""Geo-queries (GS CIM 009 v1.8.1 §4.10): parsing, exact evaluation, distances, search boxes."""

from __future__ import annotations

import contextlib
import itertools
import math
from typing import Any

import orjson
import pytest
from broker.ngsild.errors import BadRequestData
from broker.ngsild.query.geo import (
    LOCATION,
    GeoQuery,
    distance_m,
    evaluate_geo,
    geo_to_params,
    geometry_box,
    parse_geo_object,
    parse_geo_query,
    search_box,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

NS = "https://example.org/ns/"
OBSERVATION_SPACE = NS + "observationSpace"
WGS84 = Geod(ellps="WGS84")


def expand(term: str) -> str:
    return LOCATION if term == "location" else NS + term


def compact(iri: str) -> str:
    return "location" if iri == LOCATION else iri.removeprefix(NS)


def query(georel: str, geometry: str, coordinates: Any, geoproperty: str | None = None) -> GeoQuery:
    parsed = parse_geo_query(georel, geometry, coordinates, geoproperty, expand)
    assert parsed is not None
    return parsed


def entity(*values: dict[str, Any], attr: str = LOCATION) -> dict[str, Any]:
    instances = [{"type": "GeoProperty", "value": value} for value in values]
    return {"id": "urn:ngsi-ld:Thing:1", "type": [NS + "Thing"], "attrs": {attr: instances}}


def point(lon: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def square(west: float, south: float, east: float, north: float) -> list[list[float]]:
    return [[west, south], [east, south], [east, north], [west, north], [west, south]]


# --- parsing -------------------------------------------------------------------------------------


def test_no_geo_parameters_means_no_geo_query() -> None:
    assert parse_geo_query(None, None, None, None, expand) is None


def test_near_query_from_url_parameters() -> None:
    parsed = query("near;maxDistance==2000", "Point", "[8,40]", "observationSpace")
    assert parsed == GeoQuery("near", point(8, 40), OBSERVATION_SPACE, max_distance=2000.0)


def test_min_distance_and_default_geoproperty() -> None:
    parsed = query("near;minDistance==10.5", "Point", "[8.0, 40.0]")
    assert (parsed.min_distance, parsed.max_distance, parsed.geoproperty) == (10.5, None, LOCATION)


def test_already_parsed_coordinates_are_accepted() -> None:
    parsed = query("within", "Polygon", [square(0, 0, 1, 1)])
    assert parsed.geometry == {"type": "Polygon", "coordinates": [square(0, 0, 1, 1)]}


def test_geo_q_object_of_subscriptions_and_query_bodies() -> None:
    obj = {
        "georel": "near;maxDistance==10",
        "geometry": "Point",
        "coordinates": [-8.52, 41.2],
        "geoproperty": "location",
    }
    assert parse_geo_object(obj, expand) == GeoQuery(
        "near", point(-8.52, 41.2), LOCATION, max_distance=10.0
    )


@pytest.mark.parametrize(
    "obj",
    [
        "near;maxDistance==10",
        {},
        {"georel": "within", "geometry": "Point"},
        {"georel": 3, "geometry": "Point", "coordinates": [1, 2]},
        {"georel": "within", "geometry": ["Point"], "coordinates": [1, 2]},
        {"georel": "within", "geometry": "Point", "coordinates": {"lon": 1, "lat": 2}},
        {"georel": "within", "geometry": "Point", "coordinates": [1, 2], "geoproperty": 7},
    ],
)
def test_invalid_geo_q_objects_are_rejected(obj: Any) -> None:
    with pytest.raises(BadRequestData):
        parse_geo_object(obj, expand)


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "geoproperty", "message"),
    [
        ("within", None, "[8,40]", None, "missing: geometry"),
        (None, "Point", "[8,40]", None, "missing: georel"),
        ("within", "Point", None, None, "missing: coordinates"),
        (None, None, None, "location", "geoproperty is only allowed"),
        ("touches", "Point", "[8,40]", None, "unknown georel"),
        ("near", "Point", "[8,40]", None, "exactly one distance"),
        ("near;maxDistance==5;minDistance==1", "Point", "[8,40]", None, "exactly one distance"),
        ("near;maxDistance=5", "Point", "[8,40]", None, "maxDistance==<metres>"),
        ("near;distance==5", "Point", "[8,40]", None, "maxDistance==<metres>"),
        ("near;maxDistance==0", "Point", "[8,40]", None, "above 0"),
        ("near;maxDistance==0.0", "Point", "[8,40]", None, "above 0"),
        ("near;maxDistance==-100", "Point", "[8,40]", None, "above 0"),
        ("near;maxDistance==inf", "Point", "[8,40]", None, "above 0"),
        ("near;maxDistance==1e400", "Point", "[8,40]", None, "above 0"),
        ("near;minDistance==abc", "Point", "[8,40]", None, "above 0"),
        ("within;maxDistance==5", "Point", "[8,40]", None, "takes no modifiers"),
        ("within", "GeometryCollection", "[]", None, "geometry must be one of"),
        ("within", "point", "[8,40]", None, "geometry must be one of"),
        ("within", "Point", "8,40", None, "JSON array"),
        ("within", "Point", "[181,40]", None, "longitude must be within [-180, 180]"),
        ("within", "Point", "[8,-91]", None, "latitude must be within [-90, 90]"),
        ("within", "Point", "[8]", None, "a position is [longitude, latitude"),
        ("within", "Point", '["8",40]', None, "must be numbers"),
        ("within", "LineString", "[[8,40]]", None, "at least 2 positions"),
        ("within", "Polygon", "[[[0,0],[1,0],[0,0]]]", None, "at least 4 positions"),
        ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", None, "must be closed"),
        ("within", "Polygon", "[]", None, "at least one linear ring"),
        ("within", "MultiPoint", "[]", None, "non-empty array"),
        ("within", "Point", "[8,40]", "", "geoproperty must be an attribute name"),
    ],
)
def test_invalid_geo_queries_are_rejected_with_a_reason(
    georel: str | None,
    geometry: str | None,
    coordinates: str | None,
    geoproperty: str | None,
    message: str,
) -> None:
    with pytest.raises(BadRequestData) as caught:
        parse_geo_query(georel, geometry, coordinates, geoproperty, expand)
    assert message in caught.value.detail


@pytest.mark.parametrize(
    ("georel", "geometry", "coordinates", "geoproperty"),
    [
        ("near;maxDistance==2000", "Point", "[8,40]", "observationSpace"),
        ("near;minDistance==0.25", "Point", "[8.5,40.25]", None),
        ("within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1],[0,0]]]", None),
        ("overlaps", "MultiLineString", "[[[0,0],[1,1]],[[2,2],[3,3]]]", None),
    ],
)
def test_parameters_render_back_to_the_same_query(
    georel: str, geometry: str, coordinates: str, geoproperty: str | None
) -> None:
    parsed = query(georel, geometry, coordinates, geoproperty)
    params = geo_to_params(parsed, compact)
    assert params["georel"] == georel
    assert params["coordinates"] == coordinates
    assert ("geoproperty" in params) == (geoproperty is not None)
    again = parse_geo_query(
        params["georel"],
        params["geometry"],
        params["coordinates"],
        params.get("geoproperty"),
        expand,
    )
    assert again == parsed


@given(st.floats(min_value=1e-6, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_any_positive_distance_survives_rendering(metres: float) -> None:
    parsed = GeoQuery("near", point(8, 40), max_distance=metres)
    params = geo_to_params(parsed, compact)
    assert query(params["georel"], params["geometry"], params["coordinates"]) == parsed


@given(st.text(max_size=40))
def test_any_georel_text_is_accepted_or_rejected_cleanly(georel: str) -> None:
    with contextlib.suppress(BadRequestData):
        parse_geo_query(georel, "Point", "[8,40]", None, expand)


numbers = st.one_of(
    st.integers(min_value=-200, max_value=200), st.floats(min_value=-200, max_value=200)
)
positions = st.lists(numbers, min_size=1, max_size=4)
json_coordinates = st.recursive(
    st.one_of(positions, numbers, st.text(max_size=3), st.none()),
    lambda inner: st.lists(inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    georel=st.sampled_from(["near;maxDistance==1000", "near;minDistance==5", "within", "overlaps"]),
    geometry=st.sampled_from(
        ["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon", "X"]
    ),
    coordinates=json_coordinates,
)
def test_any_coordinates_are_rejected_cleanly_or_evaluate(
    georel: str, geometry: str, coordinates: Any
) -> None:
    try:
        parsed = query(georel, geometry, coordinates)
    except BadRequestData:
        return
    west, south, east, north = geometry_box(parsed.geometry)
    assert -180 <= west <= east <= 180 and -90 <= south <= north <= 90
    assert evaluate_geo(parsed, entity(point(0, 0))) in (True, False)
    assert distance_m(parsed, entity(point(0, 0))) is not None


# --- relations -----------------------------------------------------------------------------------

SQUARE = {"type": "Polygon", "coordinates": [square(0, 0, 10, 10)]}
HOLED = {"type": "Polygon", "coordinates": [square(0, 0, 10, 10), square(4, 4, 6, 6)]}
INSIDE_LINE = {"type": "LineString", "coordinates": [[1, 1], [2, 3], [3, 2]]}
CROSSING_LINE = {"type": "LineString", "coordinates": [[5, 5], [15, 5]]}
FAR_LINE = {"type": "LineString", "coordinates": [[20, 20], [30, 30]]}
INSIDE_MULTILINE = {"type": "MultiLineString", "coordinates": [[[1, 1], [2, 2]], [[7, 7], [8, 9]]]}
INSIDE_MULTIPOINT = {"type": "MultiPoint", "coordinates": [[1, 1], [9, 9]]}
SPLIT_MULTIPOINT = {"type": "MultiPoint", "coordinates": [[1, 1], [19, 19]]}
SMALL_SQUARE = {"type": "Polygon", "coordinates": [square(2, 2, 3, 3)]}
SHIFTED_SQUARE = {"type": "Polygon", "coordinates": [square(5, 5, 15, 15)]}
BIG_SQUARE = {"type": "Polygon", "coordinates": [square(-1, -1, 11, 11)]}
TWO_SQUARES = {
    "type": "MultiPolygon",
    "coordinates": [[square(1, 1, 2, 2)], [square(7, 7, 8, 8)]],
}
# The same square as SQUARE, drawn from another vertex in the other direction.
SQUARE_REDRAWN = {
    "type": "Polygon",
    "coordinates": [[[10, 10], [10, 0], [0, 0], [0, 10], [10, 10]]],
}


@pytest.mark.parametrize(
    ("georel", "reference", "target", "expected"),
    [
        # within: the entity's geometry lies within the reference geometry.
        ("within", SQUARE, point(5, 5), True),
        ("within", SQUARE, point(10, 5), False),  # on the boundary, not within
        ("within", SQUARE, point(15, 5), False),
        ("within", HOLED, point(5, 5), False),  # in the hole
        ("within", HOLED, point(2, 2), True),
        ("within", SQUARE, INSIDE_MULTIPOINT, True),
        ("within", SQUARE, SPLIT_MULTIPOINT, False),
        ("within", SQUARE, INSIDE_LINE, True),
        ("within", SQUARE, CROSSING_LINE, False),
        ("within", SQUARE, INSIDE_MULTILINE, True),
        ("within", SQUARE, SMALL_SQUARE, True),
        ("within", SQUARE, TWO_SQUARES, True),
        ("within", SMALL_SQUARE, SQUARE, False),
        # contains: the entity's geometry contains the reference geometry.
        ("contains", point(5, 5), SQUARE, True),
        ("contains", point(5, 5), HOLED, False),
        ("contains", SMALL_SQUARE, SQUARE, True),
        ("contains", SQUARE, SMALL_SQUARE, False),
        ("contains", point(1.5, 1.5), TWO_SQUARES, True),
        ("contains", point(2, 3), INSIDE_LINE, True),
        ("contains", {"type": "LineString", "coordinates": [[1, 1], [2, 3]]}, INSIDE_LINE, True),
        ("contains", point(1, 1), INSIDE_MULTIPOINT, True),
        ("contains", point(5, 5), point(5, 5), True),
        # intersects
        ("intersects", SQUARE, CROSSING_LINE, True),
        ("intersects", SQUARE, point(10, 10), True),
        ("intersects", SQUARE, FAR_LINE, False),
        ("intersects", SQUARE, SPLIT_MULTIPOINT, True),
        ("intersects", CROSSING_LINE, INSIDE_MULTILINE, False),
        ("intersects", HOLED, SMALL_SQUARE, True),
        ("intersects", TWO_SQUARES, point(7.5, 7.5), True),
        # equals is topological: vertex order and start do not matter.
        ("equals", SQUARE, SQUARE_REDRAWN, True),
        ("equals", SQUARE, BIG_SQUARE, False),
        ("equals", point(8, 40), point(8, 40), True),
        ("equals", point(8, 40), point(8, 40.0001), False),
        (
            "equals",
            INSIDE_MULTIPOINT,
            {"type": "MultiPoint", "coordinates": [[9, 9], [1, 1]]},
            True,
        ),
        # disjoint
        ("disjoint", SQUARE, FAR_LINE, True),
        ("disjoint", SQUARE, point(10, 10), False),  # touching is not disjoint
        ("disjoint", HOLED, point(5, 5), True),
        ("disjoint", point(8, 40), point(8, 40), False),
        # overlaps: same dimension, each has a part outside the other.
        ("overlaps", SQUARE, SHIFTED_SQUARE, True),
        ("overlaps", SQUARE, SMALL_SQUARE, False),
        ("overlaps", SQUARE, FAR_LINE, False),
        ("overlaps", {"type": "LineString", "coordinates": [[0, 0], [2, 0]]}, CROSSING_LINE, False),
        (
            "overlaps",
            {"type": "LineString", "coordinates": [[0, 5], [10, 5]]},
            CROSSING_LINE,
            True,
        ),
        ("overlaps", INSIDE_MULTIPOINT, SPLIT_MULTIPOINT, True),
    ],
)
def test_topological_relations(
    georel: str, reference: dict[str, Any], target: dict[str, Any], expected: bool
) -> None:
    coordinates = orjson.dumps(reference["coordinates"]).decode()
    assert evaluate_geo(query(georel, reference["type"], coordinates), entity(target)) is expected


def test_a_self_intersecting_reference_polygon_is_still_judged() -> None:
    bow_tie = [[[0, 0], [10, 10], [10, 0], [0, 10], [0, 0]]]
    assert evaluate_geo(query("within", "Polygon", bow_tie), entity(point(8, 5)))
    assert not evaluate_geo(query("within", "Polygon", bow_tie), entity(point(5, 8)))


@pytest.mark.parametrize(
    "georel",
    [
        "near;maxDistance==1000",
        "near;minDistance==1",
        "within",
        "contains",
        "intersects",
        "equals",
        "disjoint",
        "overlaps",
    ],
)
def test_entities_without_the_geoproperty_never_match(georel: str) -> None:
    reference = query(georel, "Polygon", [square(0, 0, 10, 10)])
    elsewhere = entity(point(50, 50), attr=OBSERVATION_SPACE)
    assert not evaluate_geo(reference, elsewhere)
    assert not evaluate_geo(reference, {"id": "urn:x", "type": [], "attrs": {}})
    assert distance_m(reference, elsewhere) is None


def test_any_instance_of_the_geoproperty_can_match() -> None:
    two_places = entity(point(50, 50), point(5, 5))
    assert evaluate_geo(query("within", "Polygon", [square(0, 0, 10, 10)]), two_places)
    assert evaluate_geo(query("disjoint", "Polygon", [square(0, 0, 10, 10)]), two_places)
    assert not evaluate_geo(query("within", "Polygon", [square(20, 20, 30, 30)]), two_places)


def test_geoproperty_selects_the_target_geometry() -> None:
    doc = entity(point(5, 5))
    doc["attrs"][OBSERVATION_SPACE] = [{"type": "GeoProperty", "value": point(8, 40)}]
    near_8_40 = "near;maxDistance==2000"
    assert evaluate_geo(query(near_8_40, "Point", "[8,40]", "observationSpace"), doc)
    assert not evaluate_geo(query(near_8_40, "Point", "[8,40]"), doc)


# --- near and distances --------------------------------------------------------------------------

TOKYO_STATION = (139.767125, 35.681236)
SHINJUKU_STATION = (139.700258, 35.690921)
SHIBUYA_STATION = (139.701636, 35.658034)
IKEBUKURO_STATION = (139.710893, 35.729503)
UENO_STATION = (139.777043, 35.713790)


def haversine_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance on the IUGG mean sphere: an independent check, good to ~0.5 %."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_008.8 * math.asin(math.sqrt(h))


def test_tokyo_station_to_shinjuku_is_about_six_kilometres() -> None:
    near_tokyo = query("near;maxDistance==10000", "Point", list(TOKYO_STATION))
    metres = distance_m(near_tokyo, entity(point(*SHINJUKU_STATION)))
    assert metres is not None
    assert metres == pytest.approx(haversine_m(TOKYO_STATION, SHINJUKU_STATION), rel=5e-3)
    assert metres == pytest.approx(6_148, abs=50)
    assert evaluate_geo(near_tokyo, entity(point(*SHINJUKU_STATION)))
    assert not evaluate_geo(
        query("near;maxDistance==6000", "Point", list(TOKYO_STATION)),
        entity(point(*SHINJUKU_STATION)),
    )


def test_near_results_order_by_distance() -> None:
    stations = {
        "Shinjuku": SHINJUKU_STATION,
        "Shibuya": SHIBUYA_STATION,
        "Ikebukuro": IKEBUKURO_STATION,
        "Ueno": UENO_STATION,
    }
    near_tokyo = query("near;maxDistance==7000", "Point", list(TOKYO_STATION))
    docs = {name: entity(point(*where)) for name, where in stations.items()}
    matching = [name for name, doc in docs.items() if evaluate_geo(near_tokyo, doc)]
    ordered = sorted(matching, key=lambda name: distance_m(near_tokyo, docs[name]) or 0.0)
    assert ordered == ["Ueno", "Shinjuku", "Shibuya"]  # Ikebukuro is ~7.4 km away


def test_distance_is_the_smallest_over_instances() -> None:
    near_tokyo = query("near;maxDistance==8000", "Point", list(TOKYO_STATION))
    both = entity(point(*SHINJUKU_STATION), point(*UENO_STATION))
    assert distance_m(near_tokyo, both) == distance_m(near_tokyo, entity(point(*UENO_STATION)))


def test_min_distance_keeps_only_farther_entities() -> None:
    far_from_tokyo = query("near;minDistance==7000", "Point", list(TOKYO_STATION))
    assert evaluate_geo(far_from_tokyo, entity(point(*IKEBUKURO_STATION)))
    assert not evaluate_geo(far_from_tokyo, entity(point(*SHINJUKU_STATION)))
    assert not evaluate_geo(far_from_tokyo, entity(point(*TOKYO_STATION)))


def test_near_measures_to_the_closest_point_of_an_extended_reference() -> None:
    parallel = [[0, 60], [10, 60]]
    probe = entity(point(10, 60.009))  # ~1 km north of the line's east end
    assert evaluate_geo(query("near;maxDistance==2000", "LineString", parallel), probe)
    assert not evaluate_geo(
        query("near;maxDistance==2000", "LineString", [[0, 61], [10, 61]]), probe
    )
    assert distance_m(query("near;maxDistance==2000", "LineString", parallel), probe) == (
        pytest.approx(WGS84.inv(10, 60, 10, 60.009)[2], abs=1)
    )


def test_near_picks_the_metrically_closest_point_at_high_latitude() -> None:
    # From [0,85], 1° of longitude is ~9.7 km and 0.6° of latitude ~67 km: the nearest point of
    # this line is near its east end, which a planar lon/lat search would not find.
    line = entity({"type": "LineString", "coordinates": [[0.0, 85.6], [1.0, 85.0]]})
    assert evaluate_geo(query("near;maxDistance==20000", "Point", "[0,85]"), line)
    assert not evaluate_geo(query("near;maxDistance==5000", "Point", "[0,85]"), line)
    assert distance_m(query("near;maxDistance==5000", "Point", "[0,85]"), line) == (
        pytest.approx(9_620, abs=30)
    )


def test_near_a_polygon_is_zero_inside_and_the_edge_distance_outside() -> None:
    reference = query("near;maxDistance==1000", "Polygon", [square(0, 0, 1, 1)])
    assert distance_m(reference, entity(point(0.5, 0.5))) == 0.0
    assert distance_m(reference, entity(point(1.01, 0.5))) == pytest.approx(
        WGS84.inv(1, 0.5, 1.01, 0.5)[2], abs=0.5
    )
    assert evaluate_geo(reference, entity(point(0.5, 1.005)))
    assert not evaluate_geo(reference, entity(point(0.5, 1.01)))


@pytest.mark.parametrize(
    "target",
    [
        {"type": "MultiPoint", "coordinates": [[3, 3], [1.02, 0.5]]},
        {"type": "LineString", "coordinates": [[1.02, -5], [1.02, 5]]},
        {"type": "MultiLineString", "coordinates": [[[3, 3], [4, 4]], [[1.02, -5], [1.02, 5]]]},
        {"type": "Polygon", "coordinates": [square(1.02, -5, 2, 5)]},
        {"type": "MultiPolygon", "coordinates": [[square(3, 3, 4, 4)], [square(1.02, -5, 2, 5)]]},
    ],
)
def test_near_works_for_every_target_geometry_type(target: dict[str, Any]) -> None:
    # Every target comes closest to the square at longitude 1.02, ~2.2 km east of it.
    gap = WGS84.inv(1, 0.5, 1.02, 0.5)[2]
    reference = query("near;maxDistance==2500", "Polygon", [square(0, 0, 1, 1)])
    assert distance_m(reference, entity(target)) == pytest.approx(gap, rel=1e-3)
    assert evaluate_geo(reference, entity(target))
    assert not evaluate_geo(
        query("near;maxDistance==2000", "Polygon", [square(0, 0, 1, 1)]), entity(target)
    )


def brute_force_distance(first: list[list[float]], second: list[list[float]]) -> float:
    """Smallest geodesic distance between vertices of two lines densified every ~10 m."""

    def dense(line: list[list[float]]) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for (x1, y1), (x2, y2) in itertools.pairwise(line):
            steps = 2000
            out += [(x1 + (x2 - x1) * i / steps, y1 + (y2 - y1) * i / steps) for i in range(steps)]
        return [*out, (line[-1][0], line[-1][1])]

    a, b = dense(first), dense(second)
    best = math.inf
    for lon, lat in a[::50]:
        best = min(best, min(WGS84.inv(lon, lat, x, y)[2] for x, y in b[::50]))
    # refine around the coarse optimum
    return min(
        best,
        min(WGS84.inv(lon, lat, x, y)[2] for lon, lat in a for x, y in b[::25]),
    )


def test_distance_between_two_lines_matches_a_brute_force_search() -> None:
    first = [[10.0, 50.0], [10.2, 50.1]]
    second = [[10.3, 50.0], [10.25, 50.2]]
    reference = query("near;maxDistance==20000", "LineString", first)
    metres = distance_m(reference, entity({"type": "LineString", "coordinates": second}))
    assert metres is not None
    assert metres == pytest.approx(brute_force_distance(first, second), abs=15)


# --- search boxes --------------------------------------------------------------------------------


def in_box(box: tuple[float, float, float, float], lon: float, lat: float) -> bool:
    return box[0] <= lon <= box[2] and box[1] <= lat <= box[3]


def test_search_box_of_relations_is_the_reference_box() -> None:
    for georel in ("within", "contains", "intersects", "equals", "overlaps"):
        assert search_box(query(georel, "Polygon", [square(1, 2, 3, 4)])) == (1, 2, 3, 4)


def test_no_search_box_narrows_disjoint_or_min_distance() -> None:
    assert search_box(query("disjoint", "Point", "[8,40]")) is None
    assert search_box(query("near;minDistance==10", "Point", "[8,40]")) is None


def test_near_search_box_grows_by_the_distance() -> None:
    box = search_box(query("near;maxDistance==10000", "Point", "[8,40]"))
    assert box is not None
    west, south, east, north = box
    assert 0.09 < 40 - south < 0.1 and 0.09 < north - 40 < 0.1  # 10 km ≈ 0.09° of latitude
    assert 0.11 < 8 - west < 0.13 and 0.11 < east - 8 < 0.13  # ≈ 0.117° of longitude at 40°


def test_near_search_box_spans_all_longitudes_across_the_antimeridian_and_poles() -> None:
    east = search_box(query("near;maxDistance==50000", "Point", "[179.9,10]"))
    assert east is not None and east[::2] == (-180, 180)
    polar = search_box(query("near;maxDistance==50000", "Point", "[20,89.9]"))
    assert polar is not None and polar[::2] == (-180, 180) and polar[3] == 90


def test_geometry_box_of_every_type() -> None:
    assert geometry_box(point(8, 40)) == (8, 40, 8, 40)
    assert geometry_box(INSIDE_MULTIPOINT) == (1, 1, 9, 9)
    assert geometry_box(INSIDE_LINE) == (1, 1, 3, 3)
    assert geometry_box(INSIDE_MULTILINE) == (1, 1, 8, 9)
    assert geometry_box(HOLED) == (0, 0, 10, 10)
    assert geometry_box(TWO_SQUARES) == (1, 1, 8, 8)
    assert geometry_box({"type": "Point", "coordinates": [8, 40, 120]}) == (8, 40, 8, 40)


longitudes = st.floats(min_value=-180, max_value=180)
latitudes = st.floats(min_value=-89.5, max_value=89.5)


@settings(max_examples=300, deadline=None)
@given(
    lon=longitudes,
    lat=latitudes,
    max_distance=st.floats(min_value=1, max_value=3_000_000),
    fraction=st.floats(min_value=0, max_value=0.999),
    azimuth=st.floats(min_value=-180, max_value=180),
)
def test_search_box_never_excludes_a_point_near_a_point(
    lon: float, lat: float, max_distance: float, fraction: float, azimuth: float
) -> None:
    near = GeoQuery("near", point(lon, lat), max_distance=max_distance)
    to_lon, to_lat, _ = WGS84.fwd(lon, lat, azimuth, fraction * max_distance)
    assert evaluate_geo(near, entity(point(to_lon, to_lat)))
    box = search_box(near)
    assert box is not None and in_box(box, to_lon, to_lat)


@settings(max_examples=200, deadline=None)
@given(
    start=st.tuples(
        st.floats(min_value=-179, max_value=179), st.floats(min_value=-80, max_value=80)
    ),
    step=st.tuples(st.floats(min_value=-1, max_value=1), st.floats(min_value=-1, max_value=1)),
    along=st.floats(min_value=0, max_value=1),
    max_distance=st.floats(min_value=100, max_value=500_000),
    fraction=st.floats(min_value=0, max_value=0.99),
    azimuth=st.floats(min_value=-180, max_value=180),
)
def test_search_box_never_excludes_a_point_near_a_line(
    start: tuple[float, float],
    step: tuple[float, float],
    along: float,
    max_distance: float,
    fraction: float,
    azimuth: float,
) -> None:
    end = (start[0] + step[0], start[1] + step[1])
    line = {"type": "LineString", "coordinates": [list(start), list(end)]}
    near = GeoQuery("near", line, max_distance=max_distance)
    # A point of the line (straight in lon/lat, RFC 7946), then a geodesic step away from it.
    on_line = (start[0] + along * step[0], start[1] + along * step[1])
    to_lon, to_lat, _ = WGS84.fwd(*on_line, azimuth, fraction * max_distance)
    assert evaluate_geo(near, entity(point(to_lon, to_lat)))
    box = search_box(near)
    assert box is not None and in_box(box, to_lon, to_lat)


@settings(max_examples=200, deadline=None)
@given(
    corner=st.tuples(
        st.floats(min_value=-170, max_value=160), st.floats(min_value=-80, max_value=70)
    ),
    size=st.floats(min_value=0.001, max_value=10),
    offset=st.tuples(st.floats(min_value=-1, max_value=2), st.floats(min_value=-1, max_value=2)),
    georel=st.sampled_from(["within", "intersects", "equals", "overlaps", "contains"]),
)
def test_search_box_never_excludes_a_related_point(
    corner: tuple[float, float], size: float, offset: tuple[float, float], georel: str
) -> None:
    west, south = corner
    reference = {"type": "Polygon", "coordinates": [square(west, south, west + size, south + size)]}
    where = (west + offset[0] * size, south + offset[1] * size)
    relation = GeoQuery(georel, reference)
    box = search_box(relation)
    assert box is not None
    assert evaluate_geo(relation, entity(point(*where))) <= in_box(box, *where)


@settings(max_examples=200, deadline=None)
@given(
    lon=st.floats(-179, 179),
    lat=st.floats(-80, 80),
    d_lon=st.floats(-0.5, 0.5),
    d_lat=st.floats(-0.5, 0.5),
)
def test_point_fast_path_agrees_with_the_general_one(
    lon: float, lat: float, d_lon: float, d_lat: float
) -> None:
    # A one-point MultiPoint takes the general (shapely) path; a Point the direct one.
    reference = {"type": "Point", "coordinates": [lon, lat]}
    here = [lon + d_lon, lat + d_lat]
    fast = distance_m(GeoQuery("near", reference), entity({"type": "Point", "coordinates": here}))
    general = distance_m(
        GeoQuery("near", reference), entity({"type": "MultiPoint", "coordinates": [here]})
    )
    assert fast is not None and general is not None
    assert math.isclose(fast, general, rel_tol=1e-9, abs_tol=1e-6)


def test_positions_of_mixed_dimensions_are_refused_not_crashed_on() -> None:
    # Found by the Hypothesis test above: shapely cannot build such a geometry (a 500 before).
    with pytest.raises(BadRequestData, match="dimension"):
        query("near;maxDistance==1000", "LineString", [[0, 0], [0, 0, 0]])
