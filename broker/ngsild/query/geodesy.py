"""Geodesic distances between GeoJSON geometries on WGS84, and boxes that bound them.

Theory of operation. NGSI-LD measures ``near`` distances in metres (GS CIM 009 v1.8.1 §4.10),
while GeoJSON draws every edge as a straight line in longitude/latitude (RFC 7946 §3.1.1). So the
shapes are planar in degrees but the metric is the ellipsoid's. Distances use pyproj's ``Geod``
(Karney's geodesic algorithms on WGS84, accurate to nanometres) rather than a spherical formula,
whose error reaches 0.5 %.

The distance from a *point* to a shape is computed in the azimuthal equidistant projection
centred on that point, built from ``Geod.inv`` itself (a vertex lands at its geodesic distance
and azimuth from the centre), where distances from the centre are exact. Edges are first
densified in degrees, because an edge that is straight in degrees is curved in that projection.
Point to shape is the common case: one of the two geometries is nearly always a Point. For two
extended shapes the centre starts at the planar nearest point and is moved, a few times, to the
projected nearest point on the reference; each step gives an exact distance from a point of the
reference, so the result is an upper bound that converges on the true minimum. Shapes wider than
a hemisphere around the centre are outside what the projection can represent.

``grown_box`` bounds, in degrees, every position within some metres of a box, rigorously: on
WGS84 every radius of curvature is at least 6 335 439 m, so a path of length ``d`` spans at most
``d / R`` radians of arc on the unit sphere with the same latitudes and longitudes; the haversine
formula then bounds the longitude difference by ``2 asin(sin(σ/2) / cos φ*)`` where ``φ*`` is the
largest latitude involved. Near the poles or across the antimeridian the box widens to every
longitude instead of wrapping: it may admit more candidates, never fewer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Final

import numpy as np
import shapely  # type: ignore[import-untyped]
from pyproj import Geod
from shapely.errors import GEOSException  # type: ignore[import-untyped]
from shapely.ops import nearest_points  # type: ignore[import-untyped]

BBox = tuple[float, float, float, float]
"""(min_lon, min_lat, max_lon, max_lat) in degrees."""

WORLD: Final[BBox] = (-180.0, -90.0, 180.0, 90.0)

_GEOD: Final = Geod(ellps="WGS84")
# A little under WGS84's smallest radius of curvature (the meridian's at the equator), so that
# metres → arc conversions overestimate the arc; the margins cover float rounding and the
# densification error of the evaluator.
_MIN_RADIUS_M: Final = 6_335_000.0
_MARGIN_M: Final = 10.0
_MAX_SEGMENT_DEG: Final = 0.01  # ~1 km: chord error under a metre even near the poles
_MAX_VERTICES: Final = 20_000
_REFINEMENTS: Final = 4


def bounds(geometry: dict[str, Any]) -> BBox:
    """The bounding box of a (validated, non-empty) GeoJSON geometry, in degrees."""
    lons: list[float] = []
    lats: list[float] = []
    for position in _positions(geometry["coordinates"]):
        lons.append(position[0])
        lats.append(position[1])
    if not lons:
        raise ValueError("an empty geometry has no bounding box")
    return (min(lons), min(lats), max(lons), max(lats))


def _positions(coordinates: Any) -> Iterator[list[float]]:
    if coordinates and not isinstance(coordinates[0], list):
        yield coordinates
        return
    for member in coordinates:
        yield from _positions(member)


def grown_box(box: BBox, metres: float) -> BBox:
    """A box holding every position within ``metres`` (geodesic) of a position of ``box``."""
    arc = (metres * (1 + 1e-6) + _MARGIN_M) / _MIN_RADIUS_M
    if arc >= math.pi / 2:
        return WORLD
    dlat = math.degrees(arc)
    south = max(-90.0, box[1] - dlat)
    north = min(90.0, box[3] + dlat)
    cos_max_lat = math.cos(math.radians(max(abs(south), abs(north))))
    ratio = math.sin(arc / 2) / cos_max_lat if cos_max_lat > 1e-12 else math.inf
    if ratio >= 1:
        return (-180.0, south, 180.0, north)
    dlon = math.degrees(2 * math.asin(ratio))
    west, east = box[0] - dlon, box[2] + dlon
    if west < -180 or east > 180:
        # The box would wrap over the antimeridian; a box that does not wrap must span it all.
        return (-180.0, south, 180.0, north)
    return (west, south, east, north)


def distance(reference: Any, target: Any) -> float:
    """Geodesic distance in metres between two shapely geometries in lon/lat degrees."""
    if shapely.intersects(reference, target):
        return 0.0
    if _is_points(reference) and _is_points(target):
        return _points_distance(reference, target)
    if _is_points(target):
        return min(_from_centre(lon, lat, reference) for lon, lat in _point_coords(target))
    if _is_points(reference):
        return min(_from_centre(lon, lat, target) for lon, lat in _point_coords(reference))
    return _between_shapes(reference, target)


def point_distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Geodesic distance in metres between two positions (WGS84)."""
    _, _, metres = _GEOD.inv(float(lon1), float(lat1), float(lon2), float(lat2))
    return float(metres)


def _is_points(geom: Any) -> bool:
    return geom.geom_type in ("Point", "MultiPoint")


def _point_coords(geom: Any) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in shapely.get_coordinates(geom)]


def _points_distance(first: Any, second: Any) -> float:
    a = shapely.get_coordinates(first)
    b = shapely.get_coordinates(second)
    lon1 = np.repeat(a[:, 0], len(b))
    lat1 = np.repeat(a[:, 1], len(b))
    lon2 = np.tile(b[:, 0], len(a))
    lat2 = np.tile(b[:, 1], len(a))
    _, _, dist = _GEOD.inv(lon1, lat1, lon2, lat2)
    return float(np.min(dist))


def _from_centre(lon: float, lat: float, shape: Any) -> float:
    """Exact distance from (lon, lat) to a shape that does not contain it."""
    projected = _project(_outline(_densify(shape)), lon, lat)
    return float(shapely.distance(shapely.Point(0.0, 0.0), projected))


def _between_shapes(reference: Any, target: Any) -> float:
    reference = _outline(_densify(reference))
    target = _outline(_densify(target))
    centre = nearest_points(reference, target)[0]
    lon, lat = float(centre.x), float(centre.y)
    best = math.inf
    for _ in range(_REFINEMENTS):
        ref_p = _project(reference, lon, lat)
        tgt_p = _project(target, lon, lat)
        best = min(best, float(shapely.distance(shapely.Point(0.0, 0.0), tgt_p)))
        nearest = nearest_points(ref_p, tgt_p)[0]
        moved = math.hypot(nearest.x, nearest.y)
        if moved < 0.01:
            break
        azimuth = math.degrees(math.atan2(nearest.x, nearest.y))
        lon, lat, _ = _GEOD.fwd(lon, lat, azimuth, moved)
    return best


def _outline(shape: Any) -> Any:
    # Outside a polygon the nearest point is on its rings; projecting rings rather than areas
    # keeps a distorted projected polygon from wrongly swallowing the centre.
    if shape.geom_type in ("Polygon", "MultiPolygon"):
        return shape.boundary
    return shape


def _densify(shape: Any) -> Any:
    if shape.geom_type in ("Point", "MultiPoint"):
        return shape
    length = float(shapely.length(shape))
    if length == 0:
        # A line or ring drawn on one spot (valid GeoJSON) is just that spot.
        return shapely.multipoints(shapely.get_coordinates(shape))
    try:
        return shapely.segmentize(shape, max(_MAX_SEGMENT_DEG, length / _MAX_VERTICES))
    except GEOSException:
        return shape  # a member drawn on one spot; its vertices are still exact


def _project(shape: Any, lon: float, lat: float) -> Any:
    """``shape`` in the azimuthal equidistant projection centred on (lon, lat), in metres."""

    def to_plane(coords: Any) -> Any:
        count = len(coords)
        azimuth, _, dist = _GEOD.inv(
            np.full(count, lon), np.full(count, lat), coords[:, 0], coords[:, 1]
        )
        angle = np.radians(azimuth)
        return np.column_stack((dist * np.sin(angle), dist * np.cos(angle)))

    return shapely.transform(shape, to_plane)
