"""Geo-queries (GS CIM 009 v1.8.1 §4.10): parse ``georel``/``geometry``/``coordinates``/
``geoproperty``, evaluate them exactly, and bound them for spatial indexes.

Theory of operation. A geo-query relates the *target* geometry (an entity's GeoProperty,
``location`` by default) to the *reference* geometry of the query. The topological relations are
the OGC Simple Features ones (DE-9IM), evaluated by shapely on longitude/latitude, which is exact
for GeoJSON because RFC 7946 §3.1.1 draws edges as straight lines in those coordinates. The
direction matters: ``within`` matches when the target lies within the reference, ``contains``
when the target contains the reference. ``near`` compares the geodesic distance (WGS84, metres,
see ``geodesy``) from the reference to the closest point of the target: ``maxDistance`` keeps
targets at most that far, ``minDistance`` targets strictly farther (disjoint from the buffer).

An entity with several instances of the GeoProperty (several datasetIds) matches when any
instance does; an entity without the GeoProperty never matches, not even ``disjoint``
(§4.10, last sentence).

``search_box`` lets a store narrow candidates with a bounding-box index: every target geometry
that can satisfy the query has a bounding box that meets the search box, and ``evaluate_geo``
then decides exactly. Reference shapes are parsed once and shared (shapely geometries are
immutable); they are deliberately not *prepared*, because GEOS prepared geometries build their
indexes lazily and are not safe to share between threads (libgeos/geos#825).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import orjson
import shapely  # type: ignore[import-untyped]
from shapely.errors import GEOSException  # type: ignore[import-untyped]
from shapely.geometry import shape  # type: ignore[import-untyped]

from broker.ngsild.errors import BadRequestData
from broker.ngsild.geojson import check_geometry, is_geometry
from broker.ngsild.names import GEO_TYPES
from broker.ngsild.query import geodesy
from broker.ngsild.query.geodesy import BBox

__all__ = [
    "GEORELS",
    "LOCATION",
    "BBox",
    "GeoQuery",
    "distance_m",
    "evaluate_geo",
    "geo_to_params",
    "geometry_box",
    "parse_geo_object",
    "parse_geo_query",
    "search_box",
]

LOCATION: Final = "https://uri.etsi.org/ngsi-ld/location"
GEORELS: Final = ("near", "within", "contains", "intersects", "equals", "disjoint", "overlaps")

# RFC 8259 §6 number without the minus sign (§4.10 PositiveNumber); zero is refused after parsing.
_POSITIVE_NUMBER = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_DISTANCES: Final = ("maxDistance", "minDistance")
_GEOMETRY_NAMES: Final = ", ".join(sorted(GEO_TYPES))


@dataclass(frozen=True, slots=True)
class GeoQuery:
    """One validated geo-query.

    Attributes:
        georel: one of ``GEORELS``.
        geometry: the reference GeoJSON geometry ``{"type": ..., "coordinates": ...}``.
        geoproperty: expanded IRI of the entity's GeoProperty to test.
        max_distance: for ``near``: the largest geodesic distance in metres that matches.
        min_distance: for ``near``: matches are strictly farther than this, in metres.
    """

    georel: str
    geometry: dict[str, Any]
    geoproperty: str = LOCATION
    max_distance: float | None = None
    min_distance: float | None = None


def parse_geo_query(
    georel: str | None,
    geometry: str | None,
    coordinates: str | Any | None,
    geoproperty: str | None,
    expand: Callable[[str], str],
) -> GeoQuery | None:
    """The geo-query of URL parameters (or of a geoQ object's members), or None if there is none.

    ``coordinates`` is the JSON text of the URL parameter or an already parsed JSON array;
    ``geoproperty`` a term that ``expand`` turns into an IRI. Raises ``BadRequestData`` when the
    parameters are incomplete or break the §4.10 grammar or RFC 7946.
    """
    given = {"georel": georel, "geometry": geometry, "coordinates": coordinates}
    if all(value is None for value in given.values()):
        if geoproperty is None:
            return None
        raise BadRequestData("geoproperty is only allowed with georel, geometry and coordinates")
    missing = [name for name, value in given.items() if value is None]
    if missing:
        raise BadRequestData(
            "a geo-query needs georel, geometry and coordinates together (GS CIM 009 §4.10); "
            f"missing: {', '.join(missing)}"
        )
    relation, max_distance, min_distance = _parse_georel(georel)
    return GeoQuery(
        georel=relation,
        geometry=_parse_geometry(geometry, coordinates),
        geoproperty=LOCATION if geoproperty is None else _expand_name(geoproperty, expand),
        max_distance=max_distance,
        min_distance=min_distance,
    )


def parse_geo_object(obj: Any, expand: Callable[[str], str]) -> GeoQuery:
    """The geo-query of a JSON ``geoQ`` member (subscriptions, POST /entityOperations/query)."""
    if not isinstance(obj, dict):
        raise BadRequestData(f"geoQ must be a JSON object, got {obj!r:.100}")
    query = parse_geo_query(
        obj.get("georel"),
        obj.get("geometry"),
        obj.get("coordinates"),
        obj.get("geoproperty"),
        expand,
    )
    if query is None:
        raise BadRequestData("geoQ needs georel, geometry and coordinates")
    return query


def geo_to_params(query: GeoQuery, compact: Callable[[str], str]) -> dict[str, str]:
    """The query as parameters/geoQ members again (``geoproperty`` only if not the default)."""
    params = {
        "georel": _render_georel(query),
        "geometry": str(query.geometry["type"]),
        "coordinates": orjson.dumps(query.geometry["coordinates"]).decode(),
    }
    if query.geoproperty != LOCATION:
        params["geoproperty"] = compact(query.geoproperty)
    return params


def evaluate_geo(query: GeoQuery, doc: dict[str, Any]) -> bool:
    """Whether any instance of the entity's target GeoProperty satisfies the query."""
    if query.georel == "near":
        fast = _point_distances(query, doc)
        if fast is not None:
            return any(_within_distance(query, metres) for metres in fast)
    targets = _target_shapes(query, doc)
    if not targets:
        return False
    reference = _reference_shape(query.geometry)
    if query.georel == "near":
        box = search_box(query)
        return any(_near(query, reference, target, box) for target in targets)
    return any(_relate(query.georel, reference, target) for target in targets)


def near_distance(query: GeoQuery, doc: dict[str, Any]) -> float | None:
    """For a ``near`` query: the entity's distance (closest instance) when some instance
    satisfies the query, else ``None`` — matching and ranking from one computation."""
    fast = _point_distances(query, doc)
    if fast is None:
        return distance_m(query, doc) if evaluate_geo(query, doc) else None
    if not any(_within_distance(query, metres) for metres in fast):
        return None
    return min(fast)


def distance_m(query: GeoQuery, doc: dict[str, Any]) -> float | None:
    """Geodesic distance in metres from the reference geometry to the entity's target geometry
    (the closest instance), for ordering ``near`` results; None if the entity has none."""
    fast = _point_distances(query, doc)
    if fast is not None:
        return min(fast, default=None)
    targets = _target_shapes(query, doc)
    if not targets:
        return None
    reference = _reference_shape(query.geometry)
    return min(geodesy.distance(reference, target) for target in targets)


def search_box(query: GeoQuery) -> BBox | None:
    """A box that the bounding box of every matching target geometry meets, or None if no box
    can narrow the search (``disjoint``, ``near;minDistance``)."""
    if query.georel == "disjoint":
        return None
    box = geodesy.bounds(query.geometry)
    if query.georel != "near":
        # within/contains/intersects/equals/overlaps all need the two geometries to touch.
        return box
    if query.max_distance is None:
        return None
    return geodesy.grown_box(box, query.max_distance)


def geometry_box(geometry: dict[str, Any]) -> BBox:
    """The bounding box of a stored GeoJSON geometry, for a spatial index."""
    return geodesy.bounds(geometry)


def _parse_georel(text: Any) -> tuple[str, float | None, float | None]:
    if not isinstance(text, str):
        raise BadRequestData(f"georel must be a string, got {text!r:.100}")
    relation, *modifiers = (part.strip() for part in text.split(";"))
    if relation not in GEORELS:
        raise BadRequestData(f"unknown georel {text!r:.100}; expected one of {', '.join(GEORELS)}")
    if relation != "near":
        if modifiers:
            raise BadRequestData(f"georel {relation} takes no modifiers, got {text!r:.100}")
        return relation, None, None
    # §4.10: nearRel = nearOp andOp distance equal PositiveNumber: exactly one modifier.
    if len(modifiers) != 1:
        raise BadRequestData(
            "near needs exactly one distance: near;maxDistance==<metres> or "
            f"near;minDistance==<metres>, got {text!r:.100}"
        )
    name, equal, number = modifiers[0].partition("==")
    if not equal or name not in _DISTANCES:
        raise BadRequestData(
            f"near needs maxDistance==<metres> or minDistance==<metres>, got {text!r:.100}"
        )
    metres = _positive_number(number, name)
    if name == "maxDistance":
        return relation, metres, None
    return relation, None, metres


def _positive_number(text: str, name: str) -> float:
    value = float(text) if _POSITIVE_NUMBER.fullmatch(text) else 0.0
    if not 0 < value < float("inf"):
        raise BadRequestData(f"{name} must be a finite number of metres above 0, got {text!r:.50}")
    return value


def _parse_geometry(geometry: Any, coordinates: Any) -> dict[str, Any]:
    if not isinstance(geometry, str) or geometry not in GEO_TYPES:
        raise BadRequestData(
            f"geometry must be one of {_GEOMETRY_NAMES} (RFC 7946, GeometryCollection excluded), "
            f"got {geometry!r:.100}"
        )
    if isinstance(coordinates, str | bytes):
        try:
            coordinates = orjson.loads(coordinates)
        except orjson.JSONDecodeError:
            raise BadRequestData(
                f"coordinates must be a JSON array such as [8,40], got {coordinates!r:.100}"
            ) from None
    reference = {"type": geometry, "coordinates": coordinates}
    return check_geometry(reference, "geo-query reference geometry")


def _expand_name(name: Any, expand: Callable[[str], str]) -> str:
    if not isinstance(name, str) or not name:
        raise BadRequestData(f"geoproperty must be an attribute name, got {name!r:.100}")
    return expand(name)


def _render_georel(query: GeoQuery) -> str:
    if query.georel != "near":
        return query.georel
    if query.max_distance is not None:
        return f"near;maxDistance=={_number(query.max_distance)}"
    return f"near;minDistance=={_number(query.min_distance or 0.0)}"


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _target_shapes(query: GeoQuery, doc: dict[str, Any]) -> list[Any]:
    instances = doc.get("attrs", {}).get(query.geoproperty) or ()
    shapes = []
    for instance in instances:
        value = instance.get("value") if isinstance(instance, dict) else None
        if is_geometry(value):
            try:
                shapes.append(shape(value))
            except (ValueError, TypeError, GEOSException):
                continue  # a stored value this broker did not validate; it locates nothing
    return shapes


def _reference_shape(geometry: dict[str, Any]) -> Any:
    return _cached_reference(orjson.dumps(geometry))


@lru_cache(maxsize=128)
def _cached_reference(geojson: bytes) -> Any:
    return shape(orjson.loads(geojson))


def _point_distances(query: GeoQuery, doc: dict[str, Any]) -> list[float] | None:
    """Point-to-Point distances (the common ``near`` case) straight from pyproj, without
    building shapely geometries; ``None`` when any geometry is not a Point."""
    if query.geometry.get("type") != "Point":
        return None
    lon, lat = query.geometry["coordinates"][:2]
    found = []
    for instance in doc.get("attrs", {}).get(query.geoproperty) or ():
        value = instance.get("value") if isinstance(instance, dict) else None
        if not isinstance(value, dict) or value.get("type") != "Point":
            return None
        try:
            found.append(geodesy.point_distance(lon, lat, *value["coordinates"][:2]))
        except (TypeError, ValueError):
            return None  # not a position this broker validated: leave it to the general path
    return found


def _within_distance(query: GeoQuery, metres: float) -> bool:
    if query.max_distance is not None and metres > query.max_distance:
        return False
    return query.min_distance is None or metres > query.min_distance


def _near(query: GeoQuery, reference: Any, target: Any, box: BBox | None) -> bool:
    if box is not None and not _boxes_meet(box, shapely.bounds(target)):
        return False
    metres = geodesy.distance(reference, target)
    if query.max_distance is not None and metres > query.max_distance:
        return False
    return query.min_distance is None or metres > query.min_distance


def _boxes_meet(box: BBox, other: Any) -> bool:
    west, south, east, north = (float(edge) for edge in other)
    return box[0] <= east and west <= box[2] and box[1] <= north and south <= box[3]


# Each predicate reads (reference, target): "target within reference" is "reference contains
# target", and the other way round.
_PREDICATES: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "within": shapely.contains,
    "contains": shapely.within,
    "intersects": shapely.intersects,
    "equals": shapely.equals,
    "disjoint": shapely.disjoint,
    "overlaps": shapely.overlaps,
}


def _relate(georel: str, reference: Any, target: Any) -> bool:
    predicate = _PREDICATES[georel]
    try:
        return bool(predicate(reference, target))
    except GEOSException:
        # GEOS may refuse invalid (e.g. self-intersecting) polygons; judge their repaired forms.
        return bool(predicate(shapely.make_valid(reference), shapely.make_valid(target)))
