"""GeoJSON geometry validation (RFC 7946), as GeoProperty values and geoQ geometries need it.

Only structure and ranges are checked here: positions are [longitude, latitude(, altitude)] with
finite numbers, longitude in [-180, 180] and latitude in [-90, 90] (WGS84, RFC 7946 §4); a
LineString has at least two positions; a Polygon ring at least four, the last equal to the first
(§3.1.6); a Multi* geometry at least one member. Exact spatial relations belong to the geoQ
evaluator (``broker.ngsild.query.geo``), which uses shapely.
"""

from __future__ import annotations

import math
from typing import Any

from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import GEO_TYPES


def is_geometry(value: object) -> bool:
    """Whether ``value`` looks like a GeoJSON geometry object (type + coordinates/geometries)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and value["type"] in GEO_TYPES
        and "coordinates" in value
    )


def check_geometry(value: Any, what: str = "GeoProperty value") -> dict[str, Any]:
    """Return ``value`` if it is a valid GeoJSON geometry, else raise ``BadRequestData``."""
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("type"), str)
        or (value["type"] not in GEO_TYPES)
    ):
        raise BadRequestData(
            f"{what} must be a GeoJSON Point, MultiPoint, LineString, MultiLineString, Polygon "
            f"or MultiPolygon (GS CIM 009 §4.7.1), got {value!r:.200}"
        )
    kind = value["type"]
    try:
        _CHECKS[kind](value.get("coordinates"))
        if len(_dimensions(value["coordinates"])) > 1:
            # Geometry libraries (GEOS via shapely) cannot build such a shape.
            raise _Invalid("all positions must have the same dimension (2 or 3 numbers)")
    except _Invalid as exc:
        raise BadRequestData(f"{what}: invalid {kind} coordinates: {exc}") from None
    return value


def _dimensions(coordinates: list[Any]) -> set[int]:
    """The lengths of the positions in structurally valid coordinates."""
    if not coordinates or not isinstance(coordinates[0], list):
        return {len(coordinates)}
    return set().union(*(_dimensions(item) for item in coordinates))


class _Invalid(Exception):
    pass


def _position(pos: Any) -> None:
    if not isinstance(pos, list) or not 2 <= len(pos) <= 3:
        raise _Invalid(f"a position is [longitude, latitude(, altitude)], got {pos!r:.80}")
    for number in pos:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise _Invalid(f"coordinates must be numbers, got {number!r:.40}")
        if not math.isfinite(number):
            raise _Invalid(f"coordinates must be finite numbers, got {number!r}")
    if not -180 <= pos[0] <= 180:
        raise _Invalid(f"longitude must be within [-180, 180] in {pos!r}")
    if not -90 <= pos[1] <= 90:
        raise _Invalid(f"latitude must be within [-90, 90] in {pos!r}")


def _positions(seq: Any, minimum: int, what: str) -> None:
    if not isinstance(seq, list) or len(seq) < minimum:
        raise _Invalid(f"{what} needs an array of at least {minimum} positions")
    for pos in seq:
        _position(pos)


def _ring(seq: Any) -> None:
    _positions(seq, 4, "a polygon ring")
    if seq[0] != seq[-1]:
        raise _Invalid("a polygon ring must be closed (first position == last position)")


def _polygon(rings: Any) -> None:
    if not isinstance(rings, list) or not rings:
        raise _Invalid("a Polygon needs at least one linear ring")
    for ring in rings:
        _ring(ring)


def _line(seq: Any) -> None:
    _positions(seq, 2, "a line")


def _each(check: Any) -> Any:
    # An empty Multi* geometry locates nothing; RFC 7946 lets processors treat it as null, and
    # an NGSI-LD GeoProperty or query needs a location.
    def run(items: Any) -> None:
        if not isinstance(items, list) or not items:
            raise _Invalid("expected a non-empty array of members")
        for item in items:
            check(item)

    return run


_CHECKS: dict[str, Any] = {
    "Point": _position,
    "MultiPoint": _each(_position),
    "LineString": _line,
    "MultiLineString": _each(_line),
    "Polygon": _polygon,
    "MultiPolygon": _each(_polygon),
}
