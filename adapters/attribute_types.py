"""IoT Agent attribute types → NGSI-LD attribute shapes, for values a device sent.

The table is node-lib's ``convertAttrNGSILD`` (ingest-formats.md a, "Type mapping"), matched
case-insensitively; a type it does not know passes the value through as a Property, as node-lib
does. Two deliberate differences: ``Boolean`` accepts only booleans, ``"true"``/``"false"`` and
0/1 (node-lib's ``!!value`` makes the string ``"false"`` true), and every converted value is
checked against what ``broker.ngsild.entity`` accepts, so a value that would make the whole
entity fail is refused here, alone (``Unfit``).

Coordinates. NGSI-LD positions are GeoJSON ``[lon, lat(, alt)]`` (RFC 7946 §3.1.1). A
``geo:point`` string or array is NGSI-v2's ``"lat,lon"`` and is swapped; every other geo type
takes strings and arrays as ``lon,lat`` already, like node-lib's ``getLngLats``. An LPP
``{latitude, longitude, altitude}`` names its axes and is never ambiguous. A position off the
Earth (|lat| > 90, |lon| > 180) is ``out_of_range``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Final, Literal

import orjson
from broker.ngsild.errors import BadRequestData
from broker.ngsild.geojson import check_geometry
from broker.ngsild.names import (
    GEO_PROPERTY,
    JSON_PROPERTY,
    LANGUAGE_PROPERTY,
    LIST_PROPERTY,
    LIST_RELATIONSHIP,
    NGSI_LD_NULL,
    PROPERTY,
    RELATIONSHIP,
    VOCAB_PROPERTY,
    contains_null,
    is_uri,
)

from adapters.formats.errors import DecodeError
from adapters.formats.uplink import utc_timestamp

RejectReason = Literal["out_of_range", "bad_name"]

GEO_KINDS: Final = frozenset(
    {"geo:json", "geo:point", "geoproperty", "point", "linestring", "polygon"}
    | {"multipoint", "multilinestring", "multipolygon"}
)
"""Lower-cased IoT Agent types that become a GeoProperty."""

# The stores encode with orjson, whose limit is 255 levels for the whole entity document.
_MAX_DEPTH: Final = 64
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|@none")


class Unfit(Exception):
    """A value (or name) that cannot become the attribute asked for; ``str()`` says why."""

    def __init__(self, detail: str, reason: RejectReason = "out_of_range") -> None:
        super().__init__(detail)
        self.reason: RejectReason = reason


def convert(kind: str, value: Any) -> dict[str, Any]:
    """``value`` as an attribute (``type`` and value member) of IoT Agent type ``kind``.

    Raises:
        Unfit: ``value`` cannot be that type, or could not be stored at all.
    """
    if value is None:
        raise Unfit("null is no value")
    lowered = kind.lower()
    if lowered in GEO_KINDS:
        attribute_type, member, converted = GEO_PROPERTY, "value", _geometry(lowered, value)
    else:
        attribute_type, member, conversion = _CONVERTERS.get(lowered, (PROPERTY, "value", _as_is))
        converted = conversion(value)
    if _too_deep(converted, _MAX_DEPTH):
        raise Unfit(f"values nested more than {_MAX_DEPTH} levels deep are not stored")
    if contains_null(converted):
        raise Unfit("the NGSI-LD Null cannot be a measured value")
    return {"type": attribute_type, member: converted}


def _too_deep(value: Any, room: int) -> bool:
    # Bounded by `room`, so it cannot exhaust the stack the way a deep JSON value could.
    items = list(value.values()) if isinstance(value, dict) else value
    if isinstance(items, list):
        return room == 0 or any(_too_deep(item, room - 1) for item in items)
    return False


def _as_is(value: Any) -> Any:
    return value


def _number(value: Any) -> int | float:
    if isinstance(value, str) and len(value) <= 64 and _NUMBER.fullmatch(value.strip()):
        text = value.strip()
        value = int(text) if text.lstrip("+-").isdigit() else float(text)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unfit(f"{value!r:.80} is not a number")
    # JSON (and the stores' encoder) has no NaN or infinity, and no integers beyond 64 bits.
    if not (-(2**63) <= value < 2**64 if isinstance(value, int) else math.isfinite(value)):
        raise Unfit(f"{value!r:.80} is out of range for a number")
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
        raise Unfit(f"{value!r:.80} cannot be written as text") from exc


def _boolean(value: Any) -> bool:
    # Stricter than node-lib's `!!value`, which makes the string "false" true.
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise Unfit(f"{value!r:.80} is not a boolean")


def _datetime(value: Any) -> dict[str, str]:
    # node-lib normalises DateTime, Date and Time alike to a UTC date-time; a date alone is
    # taken as its first instant in UTC. §4.6.3: typed as DateTime so queries compare instants.
    if not isinstance(value, str):
        raise Unfit(f"{value!r:.80} is not a date-time")
    text = value.strip()
    try:
        stamp = utc_timestamp(text + "T00:00:00Z" if _DATE.fullmatch(text) else text)
    except DecodeError as exc:
        raise Unfit(str(exc)) from None
    return {"@type": "DateTime", "@value": stamp}


def _parsed(value: Any) -> Any:
    """A JSON string's content (devices send compound values as text); anything else as is."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise Unfit(f"{value!r:.80} is not JSON") from None


def _uri(value: Any) -> str:
    if not is_uri(value) or value == NGSI_LD_NULL:
        raise Unfit(f"{value!r:.80} is not a URI")
    return str(value)


def _relationship_object(value: Any) -> str | list[str]:
    if isinstance(value, list) and value:
        return [_uri(item) for item in value]
    return _uri(value)


def _object_list(value: Any) -> list[dict[str, str]]:
    items = _list(value)
    return [
        {"object": _uri(item.get("object") if isinstance(item, dict) else item)} for item in items
    ]


def _list(value: Any) -> list[Any]:
    parsed = _parsed(value)
    if not isinstance(parsed, list):
        raise Unfit(f"{value!r:.80} is not an array")
    return parsed


def _json_objects(value: Any) -> Any:
    parsed = _parsed(value)
    items = parsed if isinstance(parsed, list) else [parsed]
    if not all(isinstance(item, dict) for item in items):
        raise Unfit(f"{value!r:.80} is not a JSON object or an array of objects")
    return parsed


def _vocab(value: Any) -> Any:
    terms = value if isinstance(value, list) and value else [value]
    if not all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in terms):
        raise Unfit(f"{value!r:.80} is not a vocabulary term or a list of them")
    return value


def _language_map(value: Any) -> dict[str, Any]:
    language_map = {"@none": value} if isinstance(value, str) else value
    if not isinstance(language_map, dict) or not language_map:
        raise Unfit(f"{value!r:.80} is not a language map")
    for tag, text in language_map.items():
        texts = text if isinstance(text, list) else [text]
        tagged = isinstance(tag, str) and _LANGUAGE_TAG.fullmatch(tag)
        if not tagged or not all(isinstance(t, str) for t in texts):
            raise Unfit(f"{tag!r:.40}: {text!r:.40} is not a language tag and its text")
    return language_map


_Converter = tuple[str, str, Callable[[Any], Any]]
_CONVERTERS: Final[dict[str, _Converter]] = {
    "property": (PROPERTY, "value", _as_is),
    "text": (PROPERTY, "value", _text),
    "string": (PROPERTY, "value", _text),
    "number": (PROPERTY, "value", _number),
    "float": (PROPERTY, "value", _number),
    "integer": (PROPERTY, "value", _number),
    "boolean": (PROPERTY, "value", _boolean),
    "datetime": (PROPERTY, "value", _datetime),
    "date": (PROPERTY, "value", _datetime),
    "time": (PROPERTY, "value", _datetime),
    "object": (PROPERTY, "value", _parsed),
    "array": (PROPERTY, "value", _parsed),
    "relationship": (RELATIONSHIP, "object", _relationship_object),
    "languageproperty": (LANGUAGE_PROPERTY, "languageMap", _language_map),
    "vocabproperty": (VOCAB_PROPERTY, "vocab", _vocab),
    "jsonproperty": (JSON_PROPERTY, "json", _json_objects),
    "listproperty": (LIST_PROPERTY, "valueList", _list),
    "listrelationship": (LIST_RELATIONSHIP, "objectList", _object_list),
}
"""Lower-cased IoT Agent type → (attribute type, value member, conversion); others: as is."""


def _geometry(kind: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str) and value.lstrip().startswith("{"):
        value = _parsed(value)
    if isinstance(value, dict) and {"latitude", "longitude"} <= value.keys():
        axes = [value["longitude"], value["latitude"], value.get("altitude")]
        geometry: Any = {
            "type": "Point",
            "coordinates": _numbers([a for a in axes if a is not None]),
        }
    elif isinstance(value, dict) and isinstance(value.get("type"), str):
        geometry = value  # (check_geometry looks "type" up in a set: it must be hashable)
    elif isinstance(value, dict):
        raise Unfit(f"{value!r:.80} is not GeoJSON")
    else:
        numbers = _numbers(value.split(",") if isinstance(value, str) else value)
        if kind == "geo:point" and len(numbers) >= 2:
            numbers[0], numbers[1] = numbers[1], numbers[0]  # NGSI-v2 "lat,lon"
        geometry = _shape(kind, numbers)
    try:
        return check_geometry(geometry, "position")
    except BadRequestData as exc:
        raise Unfit(str(exc)) from None


def _numbers(values: Any) -> list[int | float]:
    if not isinstance(values, list):
        raise Unfit(f"{values!r:.80} is neither GeoJSON nor coordinates")
    return [_number(item) for item in values]


def _shape(kind: str, numbers: list[int | float]) -> dict[str, Any]:
    pairs = [numbers[at : at + 2] for at in range(0, len(numbers), 2)]
    if kind == "linestring":
        return {"type": "LineString", "coordinates": pairs}
    if kind == "multipoint":
        return {"type": "MultiPoint", "coordinates": pairs}
    if kind == "polygon":
        return {"type": "Polygon", "coordinates": [pairs]}
    return {"type": "Point", "coordinates": numbers}
