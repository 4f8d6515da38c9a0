"""Client JSON → the broker's internal entity documents, with NGSI-LD validation.

Internal shape (what stores keep, one document per entity)::

    {"id": "urn:…", "type": [<type IRI>, …], "scope": [...]?,
     "createdAt": "…Z", "modifiedAt": "…Z",
     "attrs": {<attribute IRI>: [<instance>, …]}}       # one instance per datasetId

    instance = {"type": "Property", "value": …, "observedAt"?: …, "datasetId"?: …,
                "createdAt": …, "modifiedAt": …, <sub-attribute IRI>: <instance>, …}

Both normalized and concise input are accepted (GS CIM 009 v1.8.1 §4.5): an attribute without
``type`` is typed by the member that carries its value. Where ``Nulls`` allows it (updates,
merges), an instance whose value member is the NGSI-LD Null is kept as a deletion request and
``patch`` carries it out; a sub-attribute given as the NGSI-LD Null is kept as ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from broker.ngsild.errors import BadRequestData, InvalidRequest
from broker.ngsild.geojson import is_geometry
from broker.ngsild.names import (
    ALLOWED_MEMBERS,
    CORE_MEMBERS,
    ENTITY_MEMBERS,
    EXPIRES_AT,
    GEO_PROPERTY,
    KIND_OF_VALUE_MEMBER,
    NGSI_LD_NULL,
    PROOF_NAMES,
    PROPERTY,
    SEALED_MEMBERS,
    SYSTEM_MEMBERS,
    VALUE_MEMBER,
    check_datetime,
    check_name,
    check_uri,
    is_null_value,
)
from broker.ngsild.terms import TermTable
from broker.ngsild.values import NO_NULLS, Nulls, check_member

Instance = dict[str, Any]
AttrMap = dict[str, list[Instance]]
"""Attribute IRI → instances (one per datasetId)."""
EntityDoc = dict[str, Any]

GEO_ATTRIBUTES: Final = frozenset(
    "https://uri.etsi.org/ngsi-ld/" + name
    for name in ("location", "observationSpace", "operationSpace")
)
"""Core attributes that are GeoProperties by definition (§4.7.1)."""

_SCOPE = re.compile(r"^(?:/[^\W\d_]\w*)+\Z")

# What a partial fragment without a type may carry (computed once: it is asked per attribute).
_ANY_MEMBERS: frozenset[str] = frozenset().union(*ALLOWED_MEMBERS.values())


def parse_entity(body: Any, terms: TermTable, *, entity_id: str | None = None) -> EntityDoc:
    """A complete entity (create, replace, upsert) → internal document without system times.

    ``entity_id`` is the id from the URL, for operations that have one: the body may then omit
    its ``id``, and must not contradict it.
    """
    body = entity_body(body)
    raw_id = body.get("id", body.get("@id", entity_id))
    if entity_id is not None and raw_id != entity_id:
        raise BadRequestData(f"the body's id {raw_id!r} differs from {entity_id!r}")
    if raw_id is None:
        raise BadRequestData("an entity needs an 'id'")
    raw_type = body.get("type", body.get("@type"))
    if raw_type is None:
        raise BadRequestData("an entity needs a 'type'")
    doc: EntityDoc = {
        "id": check_uri(raw_id, "entity id"),
        "type": parse_types(raw_type, terms),
        "attrs": parse_attributes(body, terms),
    }
    if "scope" in body:
        doc["scope"] = parse_scope(body["scope"])
    if EXPIRES_AT in body:
        doc[EXPIRES_AT] = check_datetime(body[EXPIRES_AT], EXPIRES_AT)
    return doc


def entity_body(body: Any) -> dict[str, Any]:
    """The body of an entity or fragment request: a non-empty JSON object."""
    if not isinstance(body, dict) or not [key for key in body if key != "@context"]:
        raise InvalidRequest("the body must be a non-empty JSON object")
    return body


def parse_types(raw: Any, terms: TermTable) -> list[str]:
    """Entity type(s) → list of distinct type IRIs, in the order given."""
    names = raw if isinstance(raw, list) else [raw]
    if not names:
        raise BadRequestData("an entity needs at least one type")
    types: list[str] = []
    for name in names:
        iri = terms.expand(check_name(name, "entity type"))
        if iri.startswith("@"):
            # e.g. "type", which the core context aliases to the @type keyword
            raise BadRequestData(f"{name!r} is a JSON-LD keyword here, not an entity type")
        if iri not in types:
            types.append(iri)
    return types


def parse_scope(raw: Any) -> list[str]:
    """Scopes (§4.18): paths like ``/Japan/Kyoto``; each level starts with a letter."""
    scopes = raw if isinstance(raw, list) else [raw]
    for scope in scopes:
        if not isinstance(scope, str) or not _SCOPE.match(scope):
            raise BadRequestData(f"a scope is a path like '/Japan/Kyoto', got {scope!r}")
    return list(dict.fromkeys(scopes))


def parse_attributes(body: Any, terms: TermTable, *, nulls: Nulls = NO_NULLS) -> AttrMap:
    """Every non-core member of an entity or fragment → attribute IRI → instances."""
    if not isinstance(body, dict):
        raise BadRequestData("attributes must be given as a JSON object")
    attrs: AttrMap = {}
    for name, raw in body.items():
        if name in ENTITY_MEMBERS:
            continue
        if name in CORE_MEMBERS:
            raise BadRequestData(f"{name!r} is a core NGSI-LD term and cannot name an attribute")
        iri = terms.expand(check_name(name, "attribute name"))
        instances = attrs.get(iri, []) + parse_attribute(raw, terms, nulls=nulls, name=name)
        _check_dataset_ids(instances, name)
        if iri in GEO_ATTRIBUTES:
            _check_geo(instances, name)
        attrs[iri] = instances
    return attrs


def parse_attribute(
    raw: Any, terms: TermTable, *, nulls: Nulls = NO_NULLS, name: str = "attribute"
) -> list[Instance]:
    """One attribute (a single instance, or an array of instances with distinct datasetIds)."""
    if isinstance(raw, list) and raw and all(_looks_like_instance(item) for item in raw):
        return [parse_instance(item, terms, nulls=nulls, name=name) for item in raw]
    return [parse_instance(raw, terms, nulls=nulls, name=name)]


def parse_instance(
    raw: Any,
    terms: TermTable,
    *,
    nulls: Nulls = NO_NULLS,
    partial: bool = False,
    name: str = "attribute",
) -> Instance:
    """One attribute instance, normalized or concise.

    ``partial`` parses a fragment for Partial Attribute Update, where type and value may be
    missing because the stored attribute supplies them.
    """
    if raw is None:
        raise BadRequestData(f"{name}: null is not a valid attribute value")
    if not isinstance(raw, dict) or "@value" in raw or (is_geometry(raw) and "value" not in raw):
        raw = {"value": raw}
    kind = raw.get("type")
    if kind is None:
        kind = _infer_kind(raw, partial, name)
    elif not isinstance(kind, str) or kind not in VALUE_MEMBER:
        raise BadRequestData(f"{name}: unknown attribute type {kind!r:.100}")
    instance: Instance = {} if kind is None else {"type": kind}
    allowed = _allowed_members(kind, name)
    for key, value in raw.items():
        if key == "type" or key in SYSTEM_MEMBERS:
            continue
        if key in CORE_MEMBERS:
            if key not in allowed:
                raise BadRequestData(f"{name}: {key!r} is not allowed in a {kind or 'attribute'}")
            if key == "datasetId" and value == "@none":
                continue  # §4.5.5: "@none" names the default instance
            instance[key] = check_member(kind, key, value, terms, name, nulls)
        elif nulls.members and value == NGSI_LD_NULL:
            instance[terms.expand(check_name(key, "sub-attribute name"))] = None
        else:
            sub_iri = terms.expand(check_name(key, "sub-attribute name"))
            instance[sub_iri] = parse_instance(value, terms, nulls=nulls, name=key)
    if kind is not None and not partial and VALUE_MEMBER[kind] not in instance:
        raise BadRequestData(f"{name}: a {kind} needs a {VALUE_MEMBER[kind]!r} member")
    _check_proof(instance, name)
    return instance


def _allowed_members(kind: str | None, name: str) -> frozenset[str]:
    allowed = ALLOWED_MEMBERS.get(kind or "", _ANY_MEMBERS)
    return allowed | SEALED_MEMBERS if name in PROOF_NAMES else allowed


def _check_proof(instance: Instance, name: str) -> None:
    # v1.9 §4.5.2.2: the value of ngsildproof is a W3C Data Integrity proof object.
    if name in PROOF_NAMES and "value" in instance and not isinstance(instance["value"], dict):
        raise BadRequestData(f"{name}: the value of ngsildproof must be a proof object")


def is_deletion(instance: Instance) -> bool:
    """Whether an instance of an update/merge fragment asks to delete its target (§5.2.1)."""
    return any(
        is_null_value(member, instance[member])
        for member in set(VALUE_MEMBER.values())
        if member in instance
    )


def _infer_kind(raw: dict[str, Any], partial: bool, name: str) -> str | None:
    for member, kind in KIND_OF_VALUE_MEMBER.items():
        if member in raw:
            return kind
    if "value" in raw:
        return GEO_PROPERTY if is_geometry(raw["value"]) else PROPERTY
    if partial:
        return None
    raise BadRequestData(
        f"{name}: an attribute needs one of value, object, languageMap, vocab, json, valueList "
        "or objectList (a compound value goes under 'value')"
    )


def _looks_like_instance(item: Any) -> bool:
    return isinstance(item, dict) and (
        item.get("type") in VALUE_MEMBER or any(member in item for member in VALUE_MEMBER.values())
    )


def _check_dataset_ids(instances: list[Instance], name: str) -> None:
    seen: set[str | None] = set()
    for instance in instances:
        dataset_id = instance.get("datasetId")
        if dataset_id in seen:
            which = f"datasetId {dataset_id}" if dataset_id else "no datasetId (default)"
            raise BadRequestData(f"attribute {name!r} has two instances with {which}")
        seen.add(dataset_id)


def _check_geo(instances: list[Instance], name: str) -> None:
    for instance in instances:
        if instance.get("type", GEO_PROPERTY) != GEO_PROPERTY:
            raise BadRequestData(f"{name!r} is a GeoProperty by definition")


@dataclass(slots=True)
class Fragment:
    """An entity fragment (append, update, merge): attributes plus entity-level members.

    Attributes:
        attrs: the attributes, as ``parse_attributes`` returns them.
        types: entity types to add.
        scope: the scope given, if any.
        delete_scope: the fragment sets scope to the NGSI-LD Null (merge only).
        expires_at: the entity-level ``expiresAt`` given, if any (merge sets it, §4.22).
        delete_expiry: the fragment gives ``expiresAt`` as the NGSI-LD Null: the entity becomes
            durable (§5.5.4: a Null in a Fragment removes the member).
    """

    attrs: AttrMap
    types: list[str] | None = None
    scope: list[str] | None = None
    delete_scope: bool = False
    expires_at: str | None = None
    delete_expiry: bool = False


def parse_fragment(
    body: Any, terms: TermTable, *, nulls: Nulls = NO_NULLS, entity_id: str | None = None
) -> Fragment:
    """An entity fragment → ``Fragment``; an ``id`` in it must name the target entity."""
    body = entity_body(body)
    given_id = body.get("id", body.get("@id"))
    if given_id is not None and entity_id is not None and given_id != entity_id:
        raise BadRequestData(f"the fragment's id {given_id!r} differs from {entity_id!r}")
    raw_type = body.get("type", body.get("@type"))
    fragment = Fragment(
        attrs=parse_attributes(body, terms, nulls=nulls),
        types=None if raw_type is None else parse_types(raw_type, terms),
    )
    if "scope" in body:
        if nulls.members and body["scope"] == NGSI_LD_NULL:
            fragment.delete_scope = True
        else:
            fragment.scope = parse_scope(body["scope"])
    if EXPIRES_AT in body:
        if nulls.members and body[EXPIRES_AT] == NGSI_LD_NULL:
            fragment.delete_expiry = True
        else:
            fragment.expires_at = check_datetime(body[EXPIRES_AT], EXPIRES_AT)
    return fragment
