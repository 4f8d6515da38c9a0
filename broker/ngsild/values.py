"""Validation of the core members of an attribute (value, object, observedAt, …).

Each checker returns the value to store: IRIs in ``vocab``/``objectType`` are expanded, list
relationships are normalised to ``[{"object": uri}, …]``, a GeoJSON geometry sent as a JSON string
becomes an object (§4.7.2); everything else is kept as given.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from broker.ngsild.errors import BadRequestData
from broker.ngsild.geojson import check_geometry
from broker.ngsild.names import (
    GEO_PROPERTY,
    LANGUAGE_PROPERTY,
    NGSI_LD_NULL,
    VALUE_MEMBER,
    check_datetime,
    check_uri,
    contains_null,
    is_null_value,
)
from broker.ngsild.terms import TermTable

_LANGUAGE_TAG = re.compile(r"^(?:[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|@none)\Z")
_VALUE_MEMBERS = frozenset(VALUE_MEMBER.values())


@dataclass(frozen=True, slots=True)
class Nulls:
    """Where the NGSI-LD Null may appear in the input being parsed.

    Attributes:
        members: as a whole value member or sub-attribute (updates and merges: deletes it).
        nested: inside a compound value (merges only: RFC 7396 removal of that key).
    """

    members: bool = False
    nested: bool = False


NO_NULLS = Nulls()
UPDATE_NULLS = Nulls(members=True)
MERGE_NULLS = Nulls(members=True, nested=True)


def check_member(
    kind: str | None, key: str, value: Any, terms: TermTable, name: str, nulls: Nulls
) -> Any:
    """Validate core member ``key`` of an attribute of type ``kind`` (None: not known yet)."""
    if value is None:
        raise BadRequestData(f"{name}: {key} must not be null")
    if key in _VALUE_MEMBERS:
        if is_null_value(key, value):
            if nulls.members:
                return value
            raise BadRequestData(f"{name}: the NGSI-LD Null is only allowed in updates")
        if key == "value" and kind == GEO_PROPERTY:
            return _geometry(value, name)
    elif value == NGSI_LD_NULL:
        raise BadRequestData(f"{name}: {key} cannot be set to the NGSI-LD Null")
    if key == "valueType" and kind == LANGUAGE_PROPERTY and value != "langString":
        raise BadRequestData(f"{name}: the valueType of a LanguageProperty is langString")
    checker = _CHECKERS.get(key)
    checked = value if checker is None else checker(value, terms, f"{name}: {key}")
    if key == "value" and not nulls.nested and contains_null(checked):
        raise BadRequestData(f"{name}: the NGSI-LD Null may not appear inside a value here")
    return checked


def _geometry(value: Any, name: str) -> Any:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise BadRequestData(f"{name}: {value!r:.80} is not a GeoJSON geometry") from None
    return check_geometry(value, f"{name}: GeoProperty value")


def _object(value: Any, terms: TermTable, what: str) -> Any:
    if isinstance(value, list):
        if not value:
            raise BadRequestData(f"{what} must name at least one entity")
        return [check_uri(item, what) for item in value]
    return check_uri(value, what)


def _object_list(value: Any, terms: TermTable, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise BadRequestData(f"{what} must be an array")
    items = []
    for item in value:
        target = item.get("object") if isinstance(item, dict) else item
        items.append({"object": check_uri(target, what)})
    return items


def _language_map(value: Any, terms: TermTable, what: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise BadRequestData(f"{what} must be a non-empty object of language tag -> text")
    for tag, text in value.items():
        if not _LANGUAGE_TAG.match(tag):
            raise BadRequestData(f"{what}: {tag!r} is not a language tag")
        texts = text if isinstance(text, list) else [text]
        if not all(isinstance(item, str) and item != NGSI_LD_NULL for item in texts):
            raise BadRequestData(f"{what}: the text for {tag!r} must be a string or strings")
    return value


def _json(value: Any, terms: TermTable, what: str) -> Any:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) for item in items):
        raise BadRequestData(f"{what} must be a JSON object or an array of objects")
    return value


def _vocab(value: Any, terms: TermTable, what: str) -> str | list[str]:
    # Vocab values are terms of a vocabulary ("non-commercial"), not attribute names: any
    # non-empty string without spaces, expanded with the @context like a type name.
    if isinstance(value, list):
        if not value:
            raise BadRequestData(f"{what} must not be empty")
        return [_vocab_term(item, terms, what) for item in value]
    return _vocab_term(value, terms, what)


def _vocab_term(value: Any, terms: TermTable, what: str) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise BadRequestData(f"{what}: {value!r} is not a vocabulary term or IRI")
    return terms.expand(value)


def _list(value: Any, terms: TermTable, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise BadRequestData(f"{what} must be an array")
    return value


def _text(value: Any, terms: TermTable, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequestData(f"{what} must be a non-empty string")
    return value


_CHECKERS: dict[str, Callable[[Any, TermTable, str], Any]] = {
    "json": _json,
    "object": _object,
    "objectList": _object_list,
    "languageMap": _language_map,
    "vocab": _vocab,
    "objectType": _vocab,
    "entityIdSealed": lambda value, terms, what: check_uri(value, what),
    "entityTypeSealed": lambda value, terms, what: _vocab_term(value, terms, what),
    "valueList": _list,
    "observedAt": lambda value, terms, what: check_datetime(value, what),
    "expiresAt": lambda value, terms, what: check_datetime(value, what),
    "datasetId": lambda value, terms, what: check_uri(value, what),
    "unitCode": _text,
    "valueType": _text,
}
