"""The dashboard's compact form of an entity: what its page draws, and nothing else.

A page asks its stream for entity types and the attributes it uses (a layer's level attribute,
its location, the name and description it labels a marker or an alert with). Each change is
shown as the entity now is, restricted to those attributes: ``id``, ``type``, ``modifiedAt`` and
per attribute its ``type``, value member (``value``, ``object``, ``languageMap``, ...),
``observedAt``, ``unitCode`` and ``datasetId`` (the members of the normalized representation,
GS CIM 009 v1.8.1 §4.5.2, without sub-attributes or per-attribute system times). An attribute
the entity no longer has is absent, so the page replaces what it holds of the attributes it
asked for. A deleted entity is ``id``, ``type`` and ``deletedAt``.

Pure: documents in, JSON-ready dicts out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.ngsild.entity import EntityDoc, Instance
from broker.ngsild.terms import TermTable

_SHOWN = frozenset(
    {"type", "value", "object", "languageMap", "json", "valueList", "objectList"}
    | {"observedAt", "unitCode", "datasetId"}
)
"""Instance members shown (``vocab`` is compacted, so apart)."""


@dataclass(frozen=True, slots=True)
class StreamView:
    """What one stream shows.

    Attributes:
        types: Expanded entity types the page shows.
        attrs: Expanded attribute IRI → the name the page asked it by; None shows all.
        terms: Compacts entity types (and attribute names when ``attrs`` is None).
    """

    types: frozenset[str]
    attrs: dict[str, str] | None
    terms: TermTable

    def shows(self, doc: EntityDoc | None) -> bool:
        """Whether ``doc`` is of a type the stream shows."""
        return doc is not None and not self.types.isdisjoint(doc["type"])

    @property
    def key(self) -> tuple[object, ...]:
        """Streams of equal keys are sent the same rendering."""
        attrs = None if self.attrs is None else tuple(sorted(self.attrs.items()))
        return self.types, attrs, id(self.terms)


def compact_entity(doc: EntityDoc, view: StreamView) -> dict[str, Any]:
    """``doc`` as the page draws it."""
    terms = view.terms
    out: dict[str, Any] = {"id": doc["id"], "type": _types(doc, terms)}
    if "modifiedAt" in doc:
        out["modifiedAt"] = doc["modifiedAt"]
    attrs = doc["attrs"]
    names = view.attrs
    for iri, instances in attrs.items():
        if names is None:
            name = terms.compact(iri)
        elif iri in names:
            name = names[iri]
        else:
            continue
        if len(instances) == 1 and "datasetId" not in instances[0]:
            out[name] = _instance(instances[0], terms)
        else:
            out[name] = [_instance(instance, terms) for instance in instances]
    return out


def deleted_entity(doc: EntityDoc, view: StreamView, now: str) -> dict[str, Any]:
    """The page's notice that ``doc`` is gone (deleted, or no longer shown to it)."""
    return {"id": doc["id"], "type": _types(doc, view.terms), "deletedAt": now}


def _types(doc: EntityDoc, terms: TermTable) -> Any:
    types = [terms.compact(name) for name in doc["type"]]
    return types[0] if len(types) == 1 else types


def _instance(instance: Instance, terms: TermTable) -> dict[str, Any]:
    out = {member: value for member, value in instance.items() if member in _SHOWN}
    if "vocab" in instance:
        vocab = instance["vocab"]
        out["vocab"] = (
            [terms.compact(item) for item in vocab]
            if isinstance(vocab, list)
            else terms.compact(vocab)
        )
    return out
