"""Client JSON of a temporal representation → attribute instances (§4.5.7, §5.6.11).

Each attribute is an instance or an array of instances; unlike an entity, an array may hold
several instances of the same ``datasetId`` (its evolution). Instances are validated exactly as
entity attributes are (``broker.ngsild.entity.parse_instance``).
"""

from __future__ import annotations

from typing import Any

from broker.ngsild.entity import (
    GEO_ATTRIBUTES,
    Instance,
    entity_body,
    parse_instance,
    parse_scope,
    parse_types,
)
from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import (
    CORE_MEMBERS,
    ENTITY_MEMBERS,
    EXPIRES_AT,
    check_datetime,
    check_name,
    check_uri,
)
from broker.ngsild.terms import TermTable
from broker.ngsild.values import UPDATE_NULLS


def parse_temporal_attributes(body: Any, terms: TermTable) -> dict[str, list[Instance]]:
    """Every attribute member of a temporal representation → attribute IRI → instances."""
    if not isinstance(body, dict):
        raise BadRequestData("a temporal representation is a JSON object")
    attrs: dict[str, list[Instance]] = {}
    for name, raw in body.items():
        if name in ENTITY_MEMBERS:
            continue
        if name in CORE_MEMBERS:
            raise BadRequestData(f"{name!r} is a core NGSI-LD term and cannot name an attribute")
        iri = terms.expand(check_name(name, "attribute name"))
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            raise BadRequestData(f"attribute {name!r} has no instances")
        # §4.5.7, §5.5.4: a deleted instance (its value the NGSI-LD Null) is temporal input.
        instances = [parse_instance(item, terms, nulls=UPDATE_NULLS, name=name) for item in items]
        if iri in GEO_ATTRIBUTES and any(i["type"] != "GeoProperty" for i in instances):
            raise BadRequestData(f"{name!r} is a GeoProperty by definition")
        attrs.setdefault(iri, []).extend(instances)
    return attrs


def parse_scope_instances(raw: Any) -> list[Instance]:
    """The ``scope`` of a temporal representation: plain scopes (``"/A/B"``, a list of them) or
    its temporal evolution, Property instances whose value is the scope (§4.18, C.5.16)."""
    items = raw if isinstance(raw, list) else [raw]
    if not items or not all(isinstance(item, dict) for item in items):
        return [{"type": "Property", "value": parse_scope(raw)}]
    instances = []
    for item in items:
        if item.get("type", "Property") != "Property" or "value" not in item:
            raise BadRequestData("a scope instance is a Property whose value is the scope")
        instance: Instance = {"type": "Property", "value": parse_scope(item["value"])}
        if "observedAt" in item:
            instance["observedAt"] = check_datetime(item["observedAt"], "observedAt")
        instances.append(instance)
    return instances


def parse_temporal_entity(
    body: Any, terms: TermTable
) -> tuple[str, list[str], dict[str, list[Instance]], list[Instance] | None]:
    """A temporal representation to create → (id, types, attributes' instances, scope
    instances)."""
    body = entity_body(body)
    raw_id = body.get("id", body.get("@id"))
    if raw_id is None:
        raise BadRequestData("a temporal representation needs an 'id'")
    raw_type = body.get("type", body.get("@type"))
    if raw_type is None:
        raise BadRequestData("a temporal representation needs a 'type'")
    scope = parse_scope_instances(body["scope"]) if "scope" in body else None
    if EXPIRES_AT in body:
        # The Null is no deletion marker at the first level of a representation (§5.5.4).
        check_datetime(body[EXPIRES_AT], EXPIRES_AT)
    return (
        check_uri(raw_id, "entity id"),
        parse_types(raw_type, terms),
        parse_temporal_attributes(body, terms),
        scope,
    )
