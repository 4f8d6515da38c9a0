"""Spherical covers of planar boxes: how the MongoDB store uses a ``2dsphere`` index soundly.

Theory of operation. NGSI-LD geometries are GeoJSON, whose edges are straight lines in
longitude/latitude (RFC 7946 §3.1.1), and ``broker.ngsild.query.geo`` evaluates them that way.
MongoDB's ``2dsphere`` index and ``$geoIntersects`` draw every edge as a great-circle arc
instead. An edge along a parallel is not a great circle: the arc between two points of the same
latitude bulges towards the nearer pole. Handing MongoDB the query's shapes as they are would
therefore drop true matches near the poleward side of an edge.

So the index only ever sees *covers*: for each stored geometry and for the query's search box, a
spherical polygon that contains the planar bounding box. Meridian edges are great circles, so
they stay; each parallel edge is cut into arcs at most ``_STEP`` degrees wide and, where its arcs
would bulge into the box, moved away from it by exactly the bulge: the arc between two points at
latitude φ' whose longitudes differ by Δλ peaks at latitude atan(tan φ' / cos(Δλ/2)), so
φ' = atan(tan φ · cos(Δλ/2)) peaks at φ. Every box is first grown by ``_EPSILON`` so that nothing
is degenerate and float rounding cannot move a boundary inwards.

Then, if a stored geometry meets the query's geometry in the plane, their planar boxes meet, a
point of both boxes lies in both covers, and ``$geoIntersects`` between the covers holds: the
index never loses a match, and the exact evaluator decides the rest. Points are their own
cover. A box too wide (over ``_MAX_WIDTH`` degrees of longitude) or too close to a pole for a
small polygon has no cover: stored geometries without one are listed in ``geoWide`` and always
kept as candidates; a query without one narrows only by the GeoProperty's presence.
"""

from __future__ import annotations

import math
from typing import Any, Final

from broker.ngsild.query.geodesy import BBox, bounds

_EPSILON: Final = 1e-6
"""Degrees (about 0.1 m) every box is grown by."""
_STEP: Final = 1.0
"""Widest arc of a parallel edge, in degrees: its bulge is at most ~0.0025° at 80° latitude."""
_MAX_WIDTH: Final = 90.0
_MAX_LATITUDE: Final = 80.0
"""Covers stay well inside one hemisphere (MongoDB reads a polygon as the smaller of the two
regions its ring bounds) and away from the poles, where longitudes converge."""


def geometry_cover(geometry: dict[str, Any]) -> dict[str, Any] | None:
    """The indexed stand-in for a stored GeoJSON geometry, or None if it has none."""
    try:
        if geometry.get("type") == "Point":
            lon, lat = (float(c) for c in geometry["coordinates"][:2])
            if -180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0:
                return {"type": "Point", "coordinates": [lon, lat]}
            return None
        return box_cover(bounds(geometry))
    except (KeyError, IndexError, TypeError, ValueError):
        return None  # not a geometry this broker validated; the evaluator judges it


def box_cover(box: BBox) -> dict[str, Any] | None:
    """A GeoJSON Polygon whose spherical interior contains the planar ``box``, or None."""
    west, south, east, north = (
        box[0] - _EPSILON,
        box[1] - _EPSILON,
        box[2] + _EPSILON,
        box[3] + _EPSILON,
    )
    if not all(math.isfinite(edge) for edge in (west, south, east, north)):
        return None
    if west < -180.0 or east > 180.0 or east - west > _MAX_WIDTH:
        return None
    if south < -_MAX_LATITUDE or north > _MAX_LATITUDE:
        return None
    arcs = max(1, math.ceil((east - west) / _STEP))
    width = (east - west) / arcs
    # Only an edge on the equator's side of the box bulges into it: lower a southern edge in
    # the northern hemisphere, raise a northern edge in the southern one.
    low = _flattened(south, width) - _EPSILON if south > 0 else south
    high = _flattened(north, width) + _EPSILON if north < 0 else north
    longitudes = [west + width * i for i in range(arcs)] + [east]
    ring = [[lon, low] for lon in longitudes]
    ring += [[lon, high] for lon in reversed(longitudes)]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def _flattened(latitude: float, width: float) -> float:
    """The latitude whose great-circle arcs ``width`` degrees wide peak at ``latitude``."""
    half = math.radians(width) / 2
    return math.degrees(math.atan(math.tan(math.radians(latitude)) * math.cos(half)))
