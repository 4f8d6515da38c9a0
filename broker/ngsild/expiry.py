"""Transient entities and attributes: what ``expiresAt`` hides and what the sweep removes.

GS CIM 009 v1.9.1 §4.22: an Entity, or an attribute instance (Property, Relationship, any
attribute type, and sub-attributes), that carries ``expiresAt`` is stored only until that instant;
afterwards it is invalid and the broker deletes it, which "will always lag the expiresAt
timestamp to a certain extent". Toshi makes the lag invisible to readers: reads pass documents
through ``live`` (an expired entity is absent, expired instances are dropped), and a background
sweep (``broker.services.expiry``) deletes them for good with ``expire``, through the ordinary
write path, so subscribers are told as for any other deletion.

Stores index each entity by ``earliest`` (the first instant anything in it expires) to find the
entities due without reading the others. The entity service also keeps that instant in the
document itself, under ``STAMP`` (``None`` for a durable entity; renderers show only NGSI-LD
members, so it never leaves the broker): reading it is what lets ``live`` pass a durable entity
through without looking at its attributes, on every read. A document without the stamp (written
before it existed) is scanned.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from broker.ngsild.entity import EntityDoc, Instance
from broker.ngsild.names import EXPIRES_AT
from broker.ngsild.patch import UpdateResult

STAMP: Final = "@expiry"
"""Document member holding ``earliest`` of the document (a JSON-LD-style name: no NGSI-LD term
can be spelt so)."""


def instant(text: str) -> float:
    """An NGSI-LD DateTime (validated on input: UTC, ``Z``) as POSIX seconds."""
    return datetime.fromisoformat(text).timestamp()


def earliest(doc: EntityDoc | None) -> float | None:
    """When the first part of ``doc`` expires (POSIX seconds), ``None`` if nothing ever does."""
    if doc is None:
        return None
    found: float | None = None
    own = doc.get(EXPIRES_AT)
    if isinstance(own, str):
        found = instant(own)
    for instances in doc["attrs"].values():
        for instance in instances:
            at = _instance_earliest(instance)
            if at is not None and (found is None or at < found):
                found = at
    return found


def _instance_earliest(instance: Instance) -> float | None:
    found: float | None = None
    own = instance.get(EXPIRES_AT)
    if isinstance(own, str):
        found = instant(own)
    for key, member in instance.items():
        # Sub-attributes are the members named by an IRI (core members never contain ":").
        if ":" in key and isinstance(member, dict):
            at = _instance_earliest(member)
            if at is not None and (found is None or at < found):
                found = at
    return found


def when(doc: EntityDoc | None) -> float | None:
    """``earliest(doc)``, from the document's stamp where it has one."""
    if doc is None:
        return None
    if STAMP in doc:
        stamp: float | None = doc[STAMP]
        return stamp
    return earliest(doc)


def stamped(doc: EntityDoc) -> EntityDoc:
    """``doc`` with its stamp brought up to date (the same object if it already was)."""
    at = earliest(doc)
    if STAMP in doc and doc[STAMP] == at:
        return doc
    return {**doc, STAMP: at}


def entity_expired(doc: EntityDoc, now: float) -> bool:
    """Whether the entity itself is past its ``expiresAt``."""
    own = doc.get(EXPIRES_AT)
    return isinstance(own, str) and instant(own) <= now


def live(doc: EntityDoc | None, now: float) -> EntityDoc | None:
    """``doc`` as readers may see it at ``now``: ``None`` once the entity expired, else without
    its expired instances and sub-attributes (the same object when nothing in it expired)."""
    if doc is None:
        return None
    at = when(doc)
    if at is None or at > now:
        return doc
    if entity_expired(doc, now):
        return None
    return _without_expired(doc, now)[0]


def expire(doc: EntityDoc, *, now: float, stamp: str) -> tuple[EntityDoc, UpdateResult]:
    """The sweep's write rule for an entity that lives on: remove what expired at ``now``.

    ``stamp`` becomes the entity's ``modifiedAt`` when something is removed. Returns the input
    itself when nothing expired (a concurrent write renewed it), so the store writes nothing.
    """
    new, removed = _without_expired(doc, now)
    if not removed:
        return doc, UpdateResult()
    new["modifiedAt"] = stamp
    return new, UpdateResult(updated=removed)


def gone(before: EntityDoc, after: EntityDoc) -> list[tuple[str, str]]:
    """The attribute instances ``expire`` removed, as ``(attribute, datasetId or "")``.

    Their history goes with them: ``expiresAt`` bounds the storage of the attribute
    (§4.22, §5.2.5), its temporal evolution included, whereas an expired entity's attributes
    keep their history, as after Delete Entity (§5.6.6).
    """
    found: list[tuple[str, str]] = []
    for iri, instances in before["attrs"].items():
        kept = {i.get("datasetId") for i in after["attrs"].get(iri, ())}
        found.extend(
            (iri, instance.get("datasetId") or "")
            for instance in instances
            if instance.get("datasetId") not in kept
        )
    return found


def _without_expired(doc: EntityDoc, now: float) -> tuple[EntityDoc, list[str]]:
    attrs: dict[str, list[Instance]] = {}
    changed: list[str] = []
    for iri, instances in doc["attrs"].items():
        kept = [
            _pruned(instance, now) for instance in instances if not _instance_expired(instance, now)
        ]
        if len(kept) != len(instances) or any(
            a is not b for a, b in zip(kept, instances, strict=True)
        ):
            changed.append(iri)
        if kept:
            attrs[iri] = kept
    if not changed:
        return doc, []
    return {**doc, "attrs": attrs}, changed


def _instance_expired(instance: dict[str, Any], now: float) -> bool:
    own = instance.get(EXPIRES_AT)
    return isinstance(own, str) and instant(own) <= now


def _pruned(instance: Instance, now: float) -> Instance:
    """``instance`` without its expired sub-attributes (the same object if it has none)."""
    doomed = [
        key
        for key, member in instance.items()
        if ":" in key and isinstance(member, dict) and _instance_expired(member, now)
    ]
    nested = {
        key: pruned
        for key, member in instance.items()
        if ":" in key
        and isinstance(member, dict)
        and key not in doomed
        and (pruned := _pruned(member, now)) is not member
    }
    if not doomed and not nested:
        return instance
    kept = {key: value for key, value in instance.items() if key not in doomed}
    kept.update(nested)
    return kept
