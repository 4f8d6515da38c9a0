"""How each write operation changes a stored entity (GS CIM 009 v1.8.1 §5.5.8, §5.5.12, §5.6).

Every function takes the current document and returns ``(new_document, UpdateResult)`` without
touching the input: changed parts are copied, unchanged parts are shared. Stores call these inside
their atomic read-modify-write, and change events can still compare before and after. A function
that changes nothing returns its input document itself, so the store knows not to write.

The operations differ in what they do with an attribute instance (matched by name + datasetId):

=================  ===================  ==================  =======================
operation          existing instance    new instance        NGSI-LD Null instance
=================  ===================  ==================  =======================
append             replace (or keep     add                 (rejected by parsing)
                   with noOverwrite)
update attrs       replace              add                 delete
partial update     overwrite members    404                 delete
merge              merge members and    add                 delete
                   compound values
=================  ===================  ==================  =======================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.ngsild.entity import EntityDoc, Fragment, Instance, is_deletion
from broker.ngsild.errors import BadRequestData, ResourceNotFound
from broker.ngsild.geojson import is_geometry
from broker.ngsild.names import EXPIRES_AT, NGSI_LD_NULL, VALUE_MEMBER

SCOPE = "scope"
"""Pseudo attribute name under which results report changes to an entity's scope."""


@dataclass(slots=True)
class UpdateResult:
    """Which attributes an operation changed and which it left alone, and why (§5.2.18).

    Names are attribute IRIs, or ``scope``; the API compacts them for the response.
    """

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)
    touched: bool = False

    @property
    def changed(self) -> bool:
        """Whether anything was written."""
        return self.touched or bool(self.updated)


def new_entity(doc: EntityDoc, *, now: str) -> EntityDoc:
    """A parsed entity stamped with its creation time, as Create Entity stores it (§5.6.1)."""
    attrs = {
        iri: [_stamp(i, now, None) for i in instances] for iri, instances in doc["attrs"].items()
    }
    return {**doc, "createdAt": now, "modifiedAt": now, "attrs": attrs}


def replace_entity(
    entity: EntityDoc, replacement: EntityDoc, *, now: str
) -> tuple[EntityDoc, UpdateResult]:
    """Replace Entity (§5.6.18): new type and attributes, same identity and creation time."""
    new = new_entity(replacement, now=now)
    new["createdAt"] = entity["createdAt"]
    return new, UpdateResult(updated=list(new["attrs"]), touched=True)


def append_attributes(
    entity: EntityDoc, fragment: Fragment, *, now: str, no_overwrite: bool = False
) -> tuple[EntityDoc, UpdateResult]:
    """Append Entity Attributes (§5.6.3): add attributes, overwrite unless ``noOverwrite``."""
    new, result = _copy(entity), UpdateResult()
    _add_types(new, fragment, result)
    if fragment.scope is not None:
        old_scope = entity.get("scope")
        if no_overwrite and old_scope:
            new["scope"] = list(dict.fromkeys([*old_scope, *fragment.scope]))
        else:
            new["scope"] = fragment.scope
        result.updated.append(SCOPE)
    _set_expiry(new, fragment, result)
    for iri, instances in fragment.attrs.items():
        for instance in instances:
            index = _find(new["attrs"].get(iri, []), instance.get("datasetId"))
            if index is not None and no_overwrite:
                result.not_updated.append((iri, "the attribute exists and noOverwrite was given"))
                continue
            _put(new, iri, index, _stamp(instance, now, _at(new, iri, index)))
            _note(result.updated, iri)
    return _touched(new, result, now, entity)


def update_attributes(
    entity: EntityDoc, fragment: Fragment, *, now: str
) -> tuple[EntityDoc, UpdateResult]:
    """Update Entity Attributes (§5.6.2, §5.5.8): replace whole attributes; Null deletes."""
    new, result = _copy(entity), UpdateResult()
    _add_types(new, fragment, result)
    if fragment.scope is not None:
        if entity.get("scope"):
            new["scope"] = fragment.scope
            result.updated.append(SCOPE)
        else:
            result.not_updated.append((SCOPE, "the entity has no scope to update"))
    for iri, instances in fragment.attrs.items():
        for instance in instances:
            dataset_id = instance.get("datasetId")
            index = _find(new["attrs"].get(iri, []), dataset_id)
            if is_deletion(instance):
                if index is None:
                    result.not_updated.append((iri, _missing(dataset_id)))
                    continue
                _remove(new, iri, index)
            else:
                _put(new, iri, index, _stamp(instance, now, _at(new, iri, index)))
            _note(result.updated, iri)
    return _touched(new, result, now, entity)


def partial_update(
    entity: EntityDoc, iri: str, fragment: Instance, *, now: str, name: str
) -> tuple[EntityDoc, UpdateResult]:
    """Partial Attribute Update (§5.6.4, §5.5.8): overwrite only the members given."""
    current = entity["attrs"].get(iri, [])
    index = _find(current, fragment.get("datasetId"))
    if index is None:
        raise ResourceNotFound(
            f"entity {entity['id']} has no attribute {name!r}"
            + _dataset_suffix(fragment.get("datasetId"))
        )
    old = current[index]
    if "type" in fragment and fragment["type"] != old["type"]:
        raise BadRequestData(f"{name} is a {old['type']}, not a {fragment['type']}")
    new = _copy(entity)
    if is_deletion(fragment):
        _remove(new, iri, index)
    else:
        merged = {**old, "modifiedAt": now}
        for key, value in fragment.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        _put(new, iri, index, merged)
    return _touched(new, UpdateResult(updated=[iri]), now, entity)


def replace_attribute(
    entity: EntityDoc, iri: str, instance: Instance, *, now: str, name: str
) -> tuple[EntityDoc, UpdateResult]:
    """Replace Attribute (§5.6.19): the attribute (instance) must exist and is swapped whole."""
    index = _find(entity["attrs"].get(iri, []), instance.get("datasetId"))
    if index is None:
        raise ResourceNotFound(
            f"entity {entity['id']} has no attribute {name!r}"
            + _dataset_suffix(instance.get("datasetId"))
        )
    new = _copy(entity)
    _put(new, iri, index, _stamp(instance, now, _at(new, iri, index)))
    return _touched(new, UpdateResult(updated=[iri]), now, entity)


def delete_attribute(
    entity: EntityDoc,
    iri: str,
    *,
    now: str,
    name: str,
    dataset_id: str | None = None,
    delete_all: bool = False,
) -> tuple[EntityDoc, UpdateResult]:
    """Delete Attribute (§5.6.5): the default instance, one ``datasetId``, or all instances."""
    new = _copy(entity)
    if iri == SCOPE:
        if not entity.get("scope"):
            raise ResourceNotFound(f"entity {entity['id']} has no scope")
        del new["scope"]
        return _touched(new, UpdateResult(updated=[SCOPE]), now, entity)
    current = entity["attrs"].get(iri)
    if not current:
        raise ResourceNotFound(f"entity {entity['id']} has no attribute {name!r}")
    if delete_all:
        del new["attrs"][iri]
    else:
        index = _find(current, dataset_id)
        if index is None:
            raise ResourceNotFound(
                f"entity {entity['id']} has no attribute {name!r}" + _dataset_suffix(dataset_id)
            )
        _remove(new, iri, index)
    return _touched(new, UpdateResult(updated=[iri]), now, entity)


def drop_attributes(
    entity: EntityDoc,
    *,
    now: str,
    keep: frozenset[str] | None = None,
    drop: frozenset[str] = frozenset(),
) -> tuple[EntityDoc, UpdateResult]:
    """Purge's attribute projection (§5.6.21): remove ``drop``, or everything but ``keep``."""
    doomed = [
        iri for iri in entity["attrs"] if (iri not in keep if keep is not None else iri in drop)
    ]
    if not doomed:
        return entity, UpdateResult()
    new = _copy(entity)
    for iri in doomed:
        del new["attrs"][iri]
    return _touched(new, UpdateResult(updated=doomed), now, entity)


def merge_entity(
    entity: EntityDoc, fragment: Fragment, *, now: str
) -> tuple[EntityDoc, UpdateResult]:
    """Merge Entity (§5.6.17, §5.5.12): merge-patch; the NGSI-LD Null deletes."""
    new, result = _copy(entity), UpdateResult()
    _add_types(new, fragment, result)
    if fragment.delete_scope and "scope" in new:
        del new["scope"]
        result.updated.append(SCOPE)
    elif fragment.scope is not None:
        new["scope"] = fragment.scope
        result.updated.append(SCOPE)
    _set_expiry(new, fragment, result)
    for iri, instances in fragment.attrs.items():
        for instance in instances:
            index = _find(new["attrs"].get(iri, []), instance.get("datasetId"))
            if is_deletion(instance):
                if index is None:
                    continue
                _remove(new, iri, index)
            elif index is None:
                _put(new, iri, None, _stamp(_without_nulls(instance), now, None))
            else:
                merged = _merge_instance(new["attrs"][iri][index], instance)
                merged["modifiedAt"] = now
                _put(new, iri, index, merged)
            _note(result.updated, iri)
    return _touched(new, result, now, entity)


def _merge_instance(old: Instance, patch: Instance) -> Instance:
    merged = dict(old)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif ":" in key and isinstance(merged.get(key), dict):
            merged[key] = _merge_instance(merged[key], value)
        elif key in ("value", "languageMap") and _mergeable(merged.get(key), value):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = _without_nulls(value) if isinstance(value, dict) else value
    return merged


def _mergeable(old: Any, new: Any) -> bool:
    return isinstance(old, dict) and isinstance(new, dict) and not is_geometry(new)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge-patch, with the NGSI-LD Null (or JSON null) removing a key."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None or value == NGSI_LD_NULL:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _without_nulls(instance: Instance) -> Instance:
    return {k: v for k, v in instance.items() if v is not None}


def _add_types(new: EntityDoc, fragment: Fragment, result: UpdateResult) -> None:
    if fragment.types:
        types = list(dict.fromkeys([*new["type"], *fragment.types]))
        if types != new["type"]:
            new["type"] = types
            result.touched = True


def _set_expiry(new: EntityDoc, fragment: Fragment, result: UpdateResult) -> None:
    # §4.22: an entity-level expiresAt in a merged or appended fragment makes the entity
    # transient, or moves its end.
    if fragment.expires_at is not None and fragment.expires_at != new.get(EXPIRES_AT):
        new[EXPIRES_AT] = fragment.expires_at
        result.touched = True
    elif fragment.delete_expiry and EXPIRES_AT in new:
        del new[EXPIRES_AT]
        result.touched = True


def _copy(entity: EntityDoc) -> EntityDoc:
    return {**entity, "attrs": dict(entity["attrs"])}


def _find(instances: list[Instance], dataset_id: str | None) -> int | None:
    for index, instance in enumerate(instances):
        if instance.get("datasetId") == dataset_id:
            return index
    return None


def _at(entity: EntityDoc, iri: str, index: int | None) -> Instance | None:
    return None if index is None else entity["attrs"][iri][index]


def _put(entity: EntityDoc, iri: str, index: int | None, instance: Instance) -> None:
    instances = list(entity["attrs"].get(iri, ()))
    if index is None:
        instances.append(instance)
    else:
        instances[index] = instance
    entity["attrs"][iri] = instances


def _remove(entity: EntityDoc, iri: str, index: int) -> None:
    remaining = [i for n, i in enumerate(entity["attrs"][iri]) if n != index]
    if remaining:
        entity["attrs"][iri] = remaining
    else:
        del entity["attrs"][iri]


def _stamp(instance: Instance, now: str, previous: Instance | None) -> Instance:
    created = now if previous is None else previous.get("createdAt", now)
    return {**instance, "createdAt": created, "modifiedAt": now}


def _touched(
    new: EntityDoc, result: UpdateResult, now: str, old: EntityDoc
) -> tuple[EntityDoc, UpdateResult]:
    if not result.changed:
        return old, result
    new["modifiedAt"] = now
    return new, result


def _note(names: list[str], iri: str) -> None:
    if iri not in names:
        names.append(iri)


def _missing(dataset_id: str | None) -> str:
    return "the attribute does not exist" + _dataset_suffix(dataset_id)


def _dataset_suffix(dataset_id: str | None) -> str:
    return f" with datasetId {dataset_id}" if dataset_id else ""


def value_member(instance: Instance) -> str:
    """The name of the member carrying an instance's value."""
    return VALUE_MEMBER.get(instance.get("type", ""), "value")
