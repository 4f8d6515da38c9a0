"""An independent model of MongoDB's query semantics, for checking filters without a server.

Written from the MongoDB manual's description of query predicates, not from Toshi's compiler
(``broker.store.mongo_filters``), which it is used to check:

* A dotted path descends into embedded documents and, through arrays, into every element
  (``geo.g`` reaches the ``g`` of each element of ``geo``). A condition on a field that holds
  an array holds if it holds for the array itself or for any element.
* ``$eq``/``$in``: some reached value equals (one of) the operand(s); ``$ne``/``$nin`` are their
  negations, so they hold for a missing field. Equality is by BSON type: numbers compare by
  value whatever their type (``1 == 1.0``), booleans are not numbers, strings are strings.
* ``$gt``/``$gte``/``$lt``/``$lte`` only compare values of the operand's type class
  ("type bracketing"): a number is never greater than a string.
* ``$all``: the array holds every operand; ``$elemMatch``: some element of the array satisfies
  the embedded query; ``$not``: the operator expression does not hold (missing fields
  included); ``$and``/``$or`` as in logic; ``$exists``.
* ``$geoIntersects`` uses spherical geometry: every edge of a GeoJSON line or polygon is the
  shorter great-circle arc between its vertices, and shared boundaries count as intersecting.
  It is evaluated here in the gnomonic projection, which maps great circles to straight lines,
  so that the planar test there is exactly the spherical one.
* ``find`` sorts by the given keys (ascending), then skips and limits; ``limit`` 0 means none.

Any operator outside this list raises, so a compiler that starts using one is noticed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import shapely
from shapely.geometry import shape

Doc = dict[str, Any]
_MISSING: Any = object()
_FIELD_OPERATORS = {"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$all"}
_FIELD_OPERATORS |= {"$elemMatch", "$not", "$exists", "$geoIntersects"}


def find(
    documents: Iterable[Doc],
    query: Doc,
    sort: Sequence[tuple[str, int]] = (),
    skip: int = 0,
    limit: int = 0,
) -> list[Doc]:
    """``collection.find(query).sort(sort).skip(skip).limit(limit)``."""
    found = [doc for doc in documents if matches(doc, query)]
    for key, direction in reversed(sort):
        assert direction == 1, "only ascending sorts are modelled"
        found.sort(key=lambda doc, key=key: _sort_key(doc.get(key)))
    found = found[skip:]
    return found[:limit] if limit else found


def count(documents: Iterable[Doc], query: Doc) -> int:
    """``collection.count_documents(query)``."""
    return sum(1 for doc in documents if matches(doc, query))


def matches(doc: Doc, query: Doc) -> bool:
    """Whether ``doc`` satisfies the query document ``query``."""
    for key, condition in query.items():
        if key == "$and":
            held = all(matches(doc, part) for part in condition)
        elif key == "$or":
            held = any(matches(doc, part) for part in condition)
        elif key.startswith("$"):
            raise NotImplementedError(f"query operator {key} is not modelled")
        else:
            held = _field_holds(_reach(doc, key.split(".")), condition)
        if not held:
            return False
    return True


def _reach(value: Any, parts: list[str]) -> list[Any]:
    """The values a dotted path reaches (empty: the field is missing)."""
    if not parts:
        return [value]
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict):
        return _reach(value[head], rest) if head in value else []
    if isinstance(value, list):
        return [found for item in value if isinstance(item, dict) for found in _reach(item, parts)]
    return []


def _field_holds(reached: list[Any], condition: Any) -> bool:
    if isinstance(condition, dict) and condition and all(k.startswith("$") for k in condition):
        return all(_operator_holds(reached, op, operand) for op, operand in condition.items())
    return _equal_somewhere(reached, condition)


def _operator_holds(reached: list[Any], op: str, operand: Any) -> bool:
    if op not in _FIELD_OPERATORS:
        raise NotImplementedError(f"field operator {op} is not modelled")
    if op == "$eq":
        return _equal_somewhere(reached, operand)
    if op == "$ne":
        return not _equal_somewhere(reached, operand)
    if op == "$in":
        return any(_equal_somewhere(reached, option) for option in operand)
    if op == "$nin":
        return not any(_equal_somewhere(reached, option) for option in operand)
    if op == "$not":
        return not _field_holds(reached, operand)
    if op == "$exists":
        return bool(reached) == bool(operand)
    if op == "$all":
        arrays = [value for value in reached if isinstance(value, list)]
        return any(all(_equal_somewhere([array], item) for item in operand) for array in arrays)
    if op == "$elemMatch":
        return any(
            _element_matches(item, operand)
            for value in reached
            if isinstance(value, list)
            for item in value
        )
    if op == "$geoIntersects":
        reference = operand["$geometry"]
        return any(geo_intersects(value, reference) for value in _flat(reached))
    return any(_ordered(value, op, operand) for value in _flat(reached))


def _element_matches(item: Any, query: Doc) -> bool:
    if all(key.startswith("$") for key in query):
        return _field_holds([item], query)
    return isinstance(item, dict) and matches(item, query)


def _flat(reached: list[Any]) -> list[Any]:
    """Reached values with arrays opened one level (what comparisons look at)."""
    return [item for value in reached for item in (value if isinstance(value, list) else [value])]


def _equal_somewhere(reached: list[Any], operand: Any) -> bool:
    candidates = [
        *reached,
        *(item for value in reached if isinstance(value, list) for item in value),
    ]
    return any(_bson_equal(value, operand) for value in candidates)


def _type_class(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bytes):
        return "binary"
    return type(value).__name__


def _bson_equal(left: Any, right: Any) -> bool:
    if _type_class(left) != _type_class(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(_bson_equal(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_bson_equal, left, right))
    return bool(left == right)


def _ordered(value: Any, op: str, operand: Any) -> bool:
    if _type_class(value) != _type_class(operand) or _type_class(value) not in ("number", "string"):
        return False
    if isinstance(value, str):
        # MongoDB compares strings by their UTF-8 bytes when no collation is given.
        value, operand = value.encode(), operand.encode()
    if op == "$gt":
        return bool(value > operand)
    if op == "$gte":
        return bool(value >= operand)
    if op == "$lt":
        return bool(value < operand)
    return bool(value <= operand)


def _sort_key(value: Any) -> tuple[int, Any]:
    order = {"number": 1, "string": 2}
    kind = _type_class(value)
    return order.get(kind, 9), value.encode() if isinstance(value, str) else value


# --- spherical geometry ----------------------------------------------------------------------


def _vector(lon: float, lat: float) -> tuple[float, float, float]:
    lam, phi = math.radians(lon), math.radians(lat)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


def _positions(coordinates: Any) -> list[list[float]]:
    if coordinates and not isinstance(coordinates[0], list):
        return [coordinates]
    return [position for member in coordinates for position in _positions(member)]


def _gnomonic(centre: tuple[float, float, float]) -> Any:
    cx, cy, cz = centre
    # East and north unit vectors of the tangent plane at the centre.
    east = (-cy, cx, 0.0)
    norm = math.hypot(*east)
    if norm < 1e-12:
        east, norm = (0.0, 1.0, 0.0), 1.0
    east = (east[0] / norm, east[1] / norm, 0.0)
    north = (cy * east[2] - cz * east[1], cz * east[0] - cx * east[2], cx * east[1] - cy * east[0])

    def project(lon: float, lat: float) -> tuple[float, float]:
        v = _vector(lon, lat)
        depth = v[0] * cx + v[1] * cy + v[2] * cz
        if depth <= 1e-9:
            raise ValueError("geometry too spread out for this model (beyond 90° of its centre)")
        x = (v[0] * east[0] + v[1] * east[1] + v[2] * east[2]) / depth
        y = (v[0] * north[0] + v[1] * north[1] + v[2] * north[2]) / depth
        return (x, y)

    return project


def _projected(geometry: Doc, project: Any) -> Any:
    def convert(coordinates: Any) -> Any:
        if coordinates and not isinstance(coordinates[0], list):
            return list(project(coordinates[0], coordinates[1]))
        return [convert(member) for member in coordinates]

    return shape({"type": geometry["type"], "coordinates": convert(geometry["coordinates"])})


def geo_intersects(first: Any, second: Doc) -> bool:
    """Whether two GeoJSON geometries with great-circle edges share a point.

    Both are projected from the centre of ``second``'s vertices. ``second`` (a query's shape,
    smaller than a hemisphere) lies in the open hemisphere around that centre, and so does
    every arc between two of its points, so a Point of ``first`` outside that hemisphere
    cannot meet it; other shapes reaching beyond it are outside what this model handles.
    """
    if not isinstance(first, dict) or "coordinates" not in first:
        return False
    vectors = [_vector(p[0], p[1]) for p in _positions(second["coordinates"])]
    total = [sum(v[i] for v in vectors) for i in range(3)]
    length = math.sqrt(sum(c * c for c in total))
    project = _gnomonic((total[0] / length, total[1] / length, total[2] / length))
    reference = _projected(second, project)
    try:
        target = _projected(first, project)
    except ValueError:
        if first["type"] == "Point":
            return False
        raise
    return bool(shapely.intersects(target, reference))


def spherical_contains(polygon: Doc, lon: float, lat: float) -> bool:
    """Whether the point lies inside or on the spherical polygon."""
    return geo_intersects({"type": "Point", "coordinates": [lon, lat]}, polygon)
