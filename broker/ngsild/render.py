"""Internal documents → what clients read: normalized, concise, simplified, GeoJSON.

GS CIM 009 v1.8.1 §4.5 (representations), §4.15 (``lang``), §4.21 (``pick``/``omit``),
§4.5.16 (GeoJSON). Names are compacted with the request's term table; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from broker.ngsild.entity import EntityDoc, Instance
from broker.ngsild.language import pick_language
from broker.ngsild.names import (
    JSON_PROPERTY,
    LANGUAGE_PROPERTY,
    LIST_RELATIONSHIP,
    PROPERTY,
    VALUE_MEMBER,
    VOCAB_PROPERTY,
)
from broker.ngsild.terms import TermTable

NORMALIZED = "normalized"
CONCISE = "concise"
SIMPLIFIED = "simplified"
FORMATS = (NORMALIZED, CONCISE, SIMPLIFIED)

_EXPANDED_MEMBERS = frozenset({"vocab", "previousVocab", "objectType", "entityTypeSealed"})
_SYSTEM = ("createdAt", "modifiedAt", "expiresAt", "deletedAt")
"""Members shown only with ``options=sysAttrs`` (§6.3.11)."""


SHOWN_MEMBERS: Final = frozenset({"id", "type", "scope"})
"""Entity members a response shows unless ``pick``/``omit`` say otherwise."""


@dataclass(frozen=True, slots=True)
class View:
    """What to show of an entity, decided from the request's parameters.

    Attributes:
        format: ``normalized``, ``concise`` or ``simplified`` (keyValues).
        sys_attrs: include ``createdAt``/``modifiedAt``.
        attrs: attribute IRIs to show; ``None`` shows all.
        omitted: attribute IRIs never to show.
        members: entity members to show among ``id``, ``type``, ``scope``.
        lang: a language preference list (``lang`` parameter); LanguageProperties collapse to one
            string per attribute when it is set.
        linked: per Relationship IRI, the view of the entities it links to (``pick``/``omit``
            with braces, §4.21); others are shown with this view's format and no projection.
        dataset_ids: show only attribute instances with these ``datasetId``s (``@none`` is the
            default instance); ``None`` shows all.
    """

    format: str = NORMALIZED
    sys_attrs: bool = False
    attrs: frozenset[str] | None = None
    omitted: frozenset[str] = frozenset()
    members: frozenset[str] = SHOWN_MEMBERS
    lang: str | None = None
    linked: Mapping[str, View] = field(default_factory=dict)
    dataset_ids: frozenset[str] | None = None

    def for_linked(self, iri: str) -> View:
        """The view for entities linked through attribute ``iri``."""
        nested = self.linked.get(iri)
        if nested is not None:
            return nested
        return replace(self, attrs=None, omitted=frozenset(), members=SHOWN_MEMBERS, linked={})


def visible_attributes(doc: EntityDoc, view: View) -> list[str]:
    """The IRIs of the attributes of ``doc`` that ``view`` shows."""
    return [
        iri
        for iri in doc["attrs"]
        if (view.attrs is None or iri in view.attrs) and iri not in view.omitted
    ]


def render_entity(doc: EntityDoc, terms: TermTable, view: View) -> dict[str, Any]:
    """One entity in the representation ``view`` asks for."""
    out: dict[str, Any] = {}
    if "id" in view.members:
        out["id"] = doc["id"]
    if "type" in view.members:
        out["type"] = _one_or_many([terms.compact(t) for t in doc["type"]])
    if "scope" in view.members and doc.get("scope"):
        out["scope"] = _one_or_many(doc["scope"])
    out.update(_system_members(doc, view))
    for iri in visible_attributes(doc, view):
        instances = doc["attrs"][iri]
        if view.dataset_ids is not None:
            instances = [i for i in instances if i.get("datasetId", "@none") in view.dataset_ids]
            if not instances:
                continue
        rendered = [render_instance(instance, terms, view) for instance in instances]
        if len(rendered) == 1 and "datasetId" not in instances[0]:
            out[terms.compact(iri)] = rendered[0]
        elif view.format == SIMPLIFIED:
            # §4.5.4: several instances become a map keyed by datasetId ("@none": default).
            datasets = [instance.get("datasetId", "@none") for instance in instances]
            out[terms.compact(iri)] = {"dataset": dict(zip(datasets, rendered, strict=True))}
        else:
            out[terms.compact(iri)] = rendered[0] if len(rendered) == 1 else rendered
    return out


def _system_members(doc: EntityDoc, view: View) -> dict[str, Any]:
    if view.sys_attrs:
        return {member: doc[member] for member in _SYSTEM if member in doc}
    # Only notifications of a deletion have it, and they show it whatever sysAttrs says.
    return {"deletedAt": doc["deletedAt"]} if "deletedAt" in doc else {}


def shows_anything(doc: EntityDoc, view: View) -> bool:
    """Whether ``view`` leaves anything of ``doc`` to show (else Retrieve Entity answers 404).

    Asking by ``attrs``/``pick`` for attributes the entity does not have finds nothing, even
    though ``id`` and ``type`` would still be there.
    """
    visible = visible_attributes(doc, view)
    if view.attrs and not visible:
        return False
    members = {m for m in view.members if m != "scope" or doc.get("scope")}
    return bool(visible or members)


def render_feature(
    doc: EntityDoc, terms: TermTable, view: View, geometry_iri: str
) -> dict[str, Any]:
    """One entity as a GeoJSON Feature (§4.5.16); geometry from ``geometry_iri``."""
    properties = render_entity(doc, terms, view)
    properties.pop("id", None)
    geometry = None
    for instance in doc["attrs"].get(geometry_iri, ()):
        if instance.get("type") == "GeoProperty" and "datasetId" not in instance:
            geometry = instance["value"]
    return {"id": doc["id"], "type": "Feature", "geometry": geometry, "properties": properties}


def render_instance(instance: Instance, terms: TermTable, view: View) -> Any:
    """One attribute instance (sub-attributes included) in the view's format."""
    kind = instance["type"]
    if view.lang is not None and kind == LANGUAGE_PROPERTY:
        instance = _collapse_language(instance, view.lang)
        kind = PROPERTY
    if view.format == SIMPLIFIED:
        return _simplified_value(instance, kind, terms)
    out: dict[str, Any] = {"type": kind} if view.format == NORMALIZED else {}
    for key, value in instance.items():
        if key == "type" or (key in _SYSTEM and not view.sys_attrs):
            continue
        if ":" in key:
            out[terms.compact(key)] = render_instance(value, terms, view)
        elif key in _EXPANDED_MEMBERS:
            out[key] = _compact_vocab(value, terms)
        else:
            out[key] = value
    if view.format == CONCISE and kind == PROPERTY and len(out) == 1 and "value" in out:
        value = out["value"]
        if not isinstance(value, dict):
            return value
    return out


_WRAPPED_IN_SIMPLIFIED = frozenset({LANGUAGE_PROPERTY, JSON_PROPERTY, VOCAB_PROPERTY})


def _simplified_value(instance: Instance, kind: str, terms: TermTable) -> Any:
    # §4.5.4: bare values, except the kinds whose value would be mistaken for a plain
    # Property's, which keep their value member as a one-key object.
    member = VALUE_MEMBER[kind]
    value = instance[member]
    if kind == VOCAB_PROPERTY:
        value = _compact_vocab(value, terms)
    elif kind == LIST_RELATIONSHIP:
        value = [item["object"] for item in value]
    return {member: value} if kind in _WRAPPED_IN_SIMPLIFIED else value


def _collapse_language(instance: Instance, lang: str) -> Instance:
    chosen = pick_language(instance["languageMap"], lang)
    collapsed = {k: v for k, v in instance.items() if k != "languageMap"}
    collapsed["type"] = PROPERTY
    collapsed["value"] = chosen[1] if chosen else None
    if chosen:
        collapsed["lang"] = chosen[0]
    return collapsed


def _compact_vocab(value: Any, terms: TermTable) -> Any:
    if isinstance(value, list):
        return [terms.compact(item) for item in value]
    return terms.compact(value)


def _one_or_many(items: list[Any]) -> Any:
    return items[0] if len(items) == 1 else items
