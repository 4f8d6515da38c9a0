"""Discovery responses (GS CIM 009 v1.8.1 §5.7.5–5.7.10, data types §5.2.24–5.2.29).

Pure functions of the catalogue rows (``broker.ngsild.catalogue``) and a ``compact`` function for
the request's @context. Lists are sorted by compacted name, so responses are stable.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from broker.ngsild.catalogue import ANY_TYPE, NO_ATTRIBUTE, CatalogueRow

Compact = Callable[[str], str]
Json = dict[str, Any]


def entity_type_list(rows: list[CatalogueRow], compact: Compact) -> Json:
    """``EntityTypeList``: the names of all types with at least one entity."""
    return {
        "id": f"urn:ngsi-ld:EntityTypeList:{uuid.uuid4()}",
        "type": "EntityTypeList",
        "typeList": sorted(compact(type_) for type_ in _types(rows)),
    }


def entity_types(rows: list[CatalogueRow], compact: Compact) -> list[Json]:
    """``EntityType`` for every type: its name and the names of its entities' attributes."""
    attributes = _attributes_by_type(rows)
    found = [
        {
            "id": type_,
            "type": "EntityType",
            "typeName": compact(type_),
            "attributeNames": sorted(compact(attr) for attr in attributes[type_]),
        }
        for type_ in _types(rows)
    ]
    return sorted(found, key=lambda item: item["typeName"])


def entity_type_info(rows: list[CatalogueRow], type_iri: str, compact: Compact) -> Json | None:
    """``EntityTypeInfo`` of one type, or ``None`` when no entity has it."""
    counts = [row.entities for row in rows if row.type == type_iri and row.attr == NO_ATTRIBUTE]
    if not counts:
        return None
    kinds: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.type == type_iri and row.attr != NO_ATTRIBUTE:
            kinds[row.attr].add(row.kind)
    details = [
        {
            "id": attr,
            "type": "Attribute",
            "attributeName": compact(attr),
            "attributeTypes": sorted(attr_kinds),
        }
        for attr, attr_kinds in kinds.items()
    ]
    return {
        "id": type_iri,
        "type": "EntityTypeInfo",
        "typeName": compact(type_iri),
        "entityCount": counts[0],
        "attributeDetails": sorted(details, key=lambda item: item["attributeName"]),
    }


def attribute_list(rows: list[CatalogueRow], compact: Compact) -> Json:
    """``AttributeList``: the names of all attributes some entity has."""
    return {
        "id": f"urn:ngsi-ld:AttributeList:{uuid.uuid4()}",
        "type": "AttributeList",
        "attributeList": sorted(compact(attr) for attr in _attribute_counts(rows)),
    }


def attributes(rows: list[CatalogueRow], compact: Compact) -> list[Json]:
    """``Attribute`` for every attribute, with the types of the entities that have it."""
    found = [_attribute(rows, attr, compact, count=None) for attr in _attribute_counts(rows)]
    return sorted(found, key=lambda item: item["attributeName"])


def attribute_info(rows: list[CatalogueRow], attr_iri: str, compact: Compact) -> Json | None:
    """``Attribute`` of one attribute with its count and attribute types, or ``None``."""
    count = _attribute_counts(rows).get(attr_iri)
    return None if count is None else _attribute(rows, attr_iri, compact, count=count)


def _attribute(rows: list[CatalogueRow], attr: str, compact: Compact, *, count: int | None) -> Json:
    typed = [row for row in rows if row.attr == attr and row.type != ANY_TYPE]
    result: Json = {"id": attr, "type": "Attribute", "attributeName": compact(attr)}
    if count is not None:
        result["attributeCount"] = count
        result["attributeTypes"] = sorted({row.kind for row in typed})
    result["typeNames"] = sorted({compact(row.type) for row in typed})
    return result


def _types(rows: list[CatalogueRow]) -> list[str]:
    return [row.type for row in rows if row.attr == NO_ATTRIBUTE and row.type != ANY_TYPE]


def _attributes_by_type(rows: list[CatalogueRow]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.type != ANY_TYPE and row.attr != NO_ATTRIBUTE:
            found[row.type].add(row.attr)
    return found


def _attribute_counts(rows: list[CatalogueRow]) -> dict[str, int]:
    return {row.attr: row.entities for row in rows if row.type == ANY_TYPE}
