"""What NGSI-LD reserves, and what a valid identifier, name or timestamp is.

Stored entities keep core members (``value``, ``observedAt``, …) under their short names, since the
core @context is protected and they can never mean anything else, and keep user-defined names
(attributes, sub-attributes) as expanded IRIs. Core names never contain ``:``, IRIs always do; so
one look at a key tells which kind it is.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any, Final

from broker.ngsild.errors import BadRequestData

NGSI_LD_NULL: Final = "urn:ngsi-ld:null"
"""The NGSI-LD Null: in updates and merges it deletes what it replaces (GS CIM 009 §5.2.1)."""

PROPERTY: Final = "Property"
RELATIONSHIP: Final = "Relationship"
GEO_PROPERTY: Final = "GeoProperty"
LANGUAGE_PROPERTY: Final = "LanguageProperty"
VOCAB_PROPERTY: Final = "VocabProperty"
JSON_PROPERTY: Final = "JsonProperty"
LIST_PROPERTY: Final = "ListProperty"
LIST_RELATIONSHIP: Final = "ListRelationship"

VALUE_MEMBER: Final[dict[str, str]] = {
    PROPERTY: "value",
    GEO_PROPERTY: "value",
    RELATIONSHIP: "object",
    LANGUAGE_PROPERTY: "languageMap",
    VOCAB_PROPERTY: "vocab",
    JSON_PROPERTY: "json",
    LIST_PROPERTY: "valueList",
    LIST_RELATIONSHIP: "objectList",
}
"""Attribute type → the member that carries its value."""

KIND_OF_VALUE_MEMBER: Final[dict[str, str]] = {
    "object": RELATIONSHIP,
    "languageMap": LANGUAGE_PROPERTY,
    "vocab": VOCAB_PROPERTY,
    "json": JSON_PROPERTY,
    "valueList": LIST_PROPERTY,
    "objectList": LIST_RELATIONSHIP,
}
"""Concise input: a value member alone says which attribute type is meant."""

SYSTEM_MEMBERS: Final = frozenset({"createdAt", "modifiedAt", "deletedAt"})
"""Maintained by the broker; ignored on input."""

EXPIRES_AT: Final = "expiresAt"
"""v1.9 system temporal member a client may set on an entity or an attribute (§4.5.x, §6.3.11)."""

_COMMON: Final = frozenset({"type", "observedAt", "datasetId", EXPIRES_AT}) | SYSTEM_MEMBERS
ALLOWED_MEMBERS: Final[dict[str, frozenset[str]]] = {
    PROPERTY: _COMMON | {"value", "unitCode", "valueType"},
    GEO_PROPERTY: _COMMON | {"value"},
    RELATIONSHIP: _COMMON | {"object", "objectType"},
    LANGUAGE_PROPERTY: _COMMON | {"languageMap", "valueType"},
    VOCAB_PROPERTY: _COMMON | {"vocab"},
    JSON_PROPERTY: _COMMON | {"json"},
    LIST_PROPERTY: _COMMON | {"valueList", "unitCode", "valueType"},
    LIST_RELATIONSHIP: _COMMON | {"objectList", "objectType"},
}
"""Members each attribute type may carry on input (GS CIM 009 §4.5.2-§4.5.24)."""

SEALED_MEMBERS: Final = frozenset({"entityIdSealed", "entityTypeSealed"})
"""v1.9 §4.5.2.2: members only the ``ngsildproof`` Property may carry (as plain strings)."""
PROOF_NAMES: Final = frozenset({"ngsildproof", "https://uri.etsi.org/ngsi-ld/ngsildproof"})
"""How a request names the ``ngsildproof`` Property (term, or its core IRI)."""

CORE_MEMBERS: Final = frozenset().union(*ALLOWED_MEMBERS.values()) | {
    "id",
    "scope",
    "lang",
    "instanceId",
    "entity",
    "@context",
    "@id",
    "@type",
    "previousValue",
    "previousObject",
    "previousLanguageMap",
    "previousVocab",
    "previousJson",
    "previousValueList",
    "previousObjectList",
    "entityIdSealed",
    "entityTypeSealed",
}
"""Core terms; inside an attribute they are members, never sub-attribute names."""

ENTITY_MEMBERS: Final = frozenset({"id", "type", "scope", "@context", "@id", "@type", EXPIRES_AT})
"""Core members of an entity; every other key of an entity is an attribute (or an error)."""

GEO_TYPES: Final = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
"""GeoJSON geometries a GeoProperty may hold (GeometryCollection excluded, §4.7.1)."""

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+\Z")
# §4.6.2: name = unicodeLetter *(letter / digit / "_"); compact IRIs and IRIs are allowed too.
_TERM = re.compile(r"^[^\W\d_]\w*\Z")  # \Z: "$" would accept a trailing newline
_IRI_NAME = re.compile(r"^[^\s<>\"'=;()\\{}|^`,]+:[^\s<>\"'=;()\\{}|^`,]+\Z")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z\Z")
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def _invisible(char: str) -> bool:
    # Characters that make two ids look identical (RFC 3987 excludes most of them).
    code = ord(char)
    if char in _FILLERS or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF:
        return True
    if (code & 0xFFFE) == 0xFFFE or 0xFDD0 <= code <= 0xFDEF:
        return True
    return unicodedata.category(char)[0] in "CZ"


def is_uri(text: object) -> bool:
    """Whether ``text`` is an absolute URI/IRI without invisible or ambiguous characters."""
    if not isinstance(text, str) or len(text) > 2048 or _URI.match(text) is None:
        return False
    return text.isascii() or not any(_invisible(char) for char in text)


def check_uri(text: object, what: str) -> str:
    """Return ``text`` if it is an absolute URI, else raise ``BadRequestData``."""
    if not is_uri(text) or text == NGSI_LD_NULL:
        raise BadRequestData(f"{what} must be a URI, got {text!r}")
    return text  # type: ignore[return-value]


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it can name an attribute or type (§4.6.2), else raise BadRequestData."""
    if isinstance(name, str) and len(name) <= 512 and (_TERM.match(name) or _IRI_NAME.match(name)):
        return name
    raise BadRequestData(
        f"{what} {name!r} is not a valid NGSI-LD name: start with a letter and use letters, "
        "digits and '_' (or give a full IRI)"
    )


def check_datetime(text: object, what: str) -> str:
    """Return ``text`` if it is a UTC ISO 8601 date-time ending in ``Z`` (§4.6.3)."""
    if isinstance(text, str) and _DATETIME.match(text):
        try:
            datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return text
    raise BadRequestData(f"{what} must be a UTC date-time like 2026-01-31T09:30:00Z, got {text!r}")


def contains_null(value: Any) -> bool:
    """Whether the NGSI-LD Null occurs anywhere in ``value`` (a compound value, say)."""
    if value == NGSI_LD_NULL:
        return True
    if isinstance(value, dict):
        return any(contains_null(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_null(item) for item in value)
    return False


def is_null_value(member: str, value: Any) -> bool:
    """Whether ``value`` of value member ``member`` is the NGSI-LD Null for it (§5.2.1)."""
    if member == "languageMap":
        return bool(value == {"@none": NGSI_LD_NULL})
    if member in ("valueList", "objectList"):
        return bool(value == [NGSI_LD_NULL])
    return bool(value == NGSI_LD_NULL)


def format_timestamp(moment: datetime) -> str:
    """The broker's own timestamps: UTC, milliseconds, ``Z`` (like the spec's examples)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
