"""``orderBy`` (GS CIM 009 v1.9.1 §4.23): ordering query results by attribute values or distance.

``orderBy=name;asc,address[city];desc`` or ``location;dist-asc`` with ``orderFrom=[lon,lat]``.
Paths are the ``q`` language's (``a.b``, ``a[b]``, ``a.observedAt``) plus ``id``, ``type``,
``createdAt`` and ``modifiedAt``. Values rank numbers < strings < booleans < anything else, and
an entity without the value comes last whatever the direction.

Collation: strings compare by code point unless ``collation`` names a BCP 47 tag; then they
compare as the Unicode root collation does at its first levels (accents and case only break ties:
"A" < "á" < "b"). Language-specific tailorings (``de-u-co-phonebk``) are not implemented; a
well-formed tag gets the root order, a malformed one is refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from broker.ngsild.errors import BadRequestData
from broker.ngsild.query.geo import GeoQuery, distance_m, parse_geo_query
from broker.ngsild.query.qeval import values_at
from broker.ngsild.query.qlang import Exists, Path, parse_q

_DIRECTIONS: Final = ("asc", "desc", "dist-asc", "dist-desc")
_MEMBERS: Final = frozenset({"id", "type", "createdAt", "modifiedAt"})
_BCP47: Final = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*\Z")
_MAX_KEYS: Final = 10


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One ``orderBy`` item."""

    path: Path
    descending: bool = False
    distance: bool = False


@dataclass(frozen=True, slots=True)
class Ordering:
    """A parsed ``orderBy`` with what distance ordering and collation need."""

    keys: tuple[OrderKey, ...]
    origin: dict[str, Any] | None = None
    collation: str | None = None


def parse_ordering(
    order_by: Any,
    expand: Callable[[str], str],
    *,
    coordinates: Any = None,
    geometry: Any = None,
    collation: Any = None,
) -> Ordering:
    """``orderBy`` text (or a list of items, from a query body) → ``Ordering``."""
    items = order_by if isinstance(order_by, list) else str(order_by).split(",")
    if not items or len(items) > _MAX_KEYS or not all(isinstance(i, str) and i for i in items):
        raise BadRequestData(f"orderBy needs 1 to {_MAX_KEYS} items like 'name;asc'")
    keys = tuple(_key(item.strip(), expand) for item in items)
    origin = None
    if any(key.distance for key in keys):
        origin = _origin(coordinates, geometry)
    elif geometry is not None and not isinstance(geometry, str):
        raise BadRequestData("geometry must be a string such as 'Point'")
    if collation is not None and (not isinstance(collation, str) or not _BCP47.match(collation)):
        raise BadRequestData(f"collation {collation!r} is not a BCP 47 language tag")
    return Ordering(keys, origin, collation)


def order(ordering: Ordering, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``docs`` sorted by ``ordering``; ties keep their order (insertion order)."""
    for key in reversed(ordering.keys):
        ranked = [(_sort_value(ordering, key, doc), doc) for doc in docs]
        present = [item for item in ranked if item[0] is not None]
        present.sort(key=lambda item: item[0], reverse=key.descending)
        docs = [doc for _, doc in present] + [doc for value, doc in ranked if value is None]
    return docs


def _key(item: str, expand: Callable[[str], str]) -> OrderKey:
    text, _, direction = item.partition(";")
    direction = direction or "asc"
    if direction not in _DIRECTIONS:
        raise BadRequestData(f"orderBy direction must be one of {', '.join(_DIRECTIONS)}")
    distance = direction.startswith("dist-")
    if text in _MEMBERS:
        path = Path(text)
    else:
        parsed = parse_q(text, expand)
        if not isinstance(parsed, Exists) or parsed.negated:
            raise BadRequestData(f"orderBy item {text!r} is not an attribute path")
        path = parsed.path
    if distance and (path.subs or path.keys or path.member):
        raise BadRequestData("distance ordering needs a GeoProperty name, e.g. location;dist-asc")
    return OrderKey(path, direction.endswith("desc"), distance)


def _origin(coordinates: Any, geometry: Any) -> dict[str, Any]:
    if coordinates is None:
        raise BadRequestData("distance ordering needs the reference coordinates (orderFrom)")
    if geometry is not None and not isinstance(geometry, str):
        raise BadRequestData("geometry must be a string such as 'Point'")
    geometry = geometry or "Point"
    if not isinstance(coordinates, list | str):
        raise BadRequestData("coordinates must be a JSON array such as [8, 40]")
    if isinstance(coordinates, str) and not coordinates.strip().startswith("["):
        raise BadRequestData("coordinates must be a JSON array such as [8, 40]")
    parsed = parse_geo_query("intersects", geometry, coordinates, None, lambda name: name)
    assert parsed is not None  # georel, geometry and coordinates were all given
    return parsed.geometry


def _sort_value(ordering: Ordering, key: OrderKey, doc: dict[str, Any]) -> Any:
    if key.distance:
        assert ordering.origin is not None  # parse_ordering sets it for distance keys
        found = distance_m(GeoQuery("near", ordering.origin, key.path.attr), doc)
        return None if found is None else (0, found)
    if key.path.attr in _MEMBERS:
        found = doc.get(key.path.attr)
        values = [found] if isinstance(found, str) else list(found or ())
    else:
        values = [value for value in _flat(values_at(key.path, doc)) if value is not None]
    if not values:
        return None
    value = values[0]
    if isinstance(value, bool):
        return (2, value)
    if isinstance(value, int | float):
        return (0, value)
    if isinstance(value, str):
        return (1, _collate(value) if ordering.collation else value)
    return (3, repr(value))


def _flat(values: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


def _collate(text: str) -> tuple[str, str, str]:
    """Root-collation-like key: base letters first, then accents, then case."""
    decomposed = unicodedata.normalize("NFD", text)
    base = "".join(char for char in decomposed if not unicodedata.combining(char))
    return base.casefold(), decomposed.casefold(), text
