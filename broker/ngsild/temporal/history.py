"""What a write adds to history: attribute instances derived from the documents before and after.

GS CIM 009 v1.8.1 §4.5.7: the temporal evolution of an attribute is the sequence of its
instances. Every committed change of an attribute instance (one per ``datasetId``) appends the
new instance, stamped with the time of the change (its ``modifiedAt``); an instance that is gone
afterwards (attribute deleted, entity deleted) appends a *deletion* instance whose value is the
NGSI-LD Null and whose ``deletedAt`` is the time of the write (§4.5.8). These functions are pure
and run inside the store's write transaction, so a write and its history commit together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker.ngsild.entity import AttrMap, EntityDoc, Instance, is_deletion
from broker.ngsild.names import NGSI_LD_NULL, VALUE_MEMBER

SCOPE = "scope"
"""The history key of the entity's scope (a core member, so it never clashes with an IRI)."""

TYPES = "type"
"""The history key of the types an entity had when it went (deleted or expired): its history
outlives it and is served under them (§5.7.3). Never served as an attribute."""


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One instance to append to an attribute's history.

    Attributes:
        attr: the attribute IRI.
        dataset_id: the instance's ``datasetId`` (``None``: the default instance).
        instance: the instance as stored in entities (members, sub-attributes, ``observedAt``),
            without ``createdAt``/``modifiedAt``, which ``recorded`` replaces.
        recorded: when it was added to history (its ``createdAt`` there), a DateTime.
        deleted: whether this is a deletion instance (``recorded`` is then its ``deletedAt``).
    """

    attr: str
    dataset_id: str | None
    instance: Instance
    recorded: str
    deleted: bool = False


History = Callable[[EntityDoc | None, EntityDoc | None], list[HistoryRow]]
"""Called in a write's transaction with the documents before and after it; the rows to append."""


def changes(before: EntityDoc | None, after: EntityDoc | None, *, now: str) -> list[HistoryRow]:
    """The history a write appends: each new or changed instance, and a deletion for each gone."""
    old: AttrMap = {} if before is None else before["attrs"]
    new: AttrMap = {} if after is None else after["attrs"]
    rows: list[HistoryRow] = []
    for attr, instances in new.items():
        was = old.get(attr)
        if was is instances:
            continue  # the patch rules share the instance lists a write leaves alone
        for instance in instances:
            dataset_id = instance.get("datasetId")
            if was is None or _of_dataset(was, dataset_id) != instance:
                recorded = instance.get("modifiedAt", now)
                rows.append(HistoryRow(attr, dataset_id, _without_times(instance), recorded))
    if (None if before is None else before.get("scope")) != (
        None if after is None else after.get("scope")
    ):
        rows.extend(_scope_change(before, after, now))
    if after is None and before is not None:
        rows.append(HistoryRow(TYPES, None, {"type": "Property", "value": before["type"]}, now))
    for attr, instances in old.items():
        remaining = new.get(attr)
        if remaining is instances:
            continue
        rows.extend(
            deletion(attr, instance, now)
            for instance in instances
            if remaining is None or _of_dataset(remaining, instance.get("datasetId")) is None
        )
    return rows


def _of_dataset(instances: list[Instance], dataset_id: Any) -> Instance | None:
    for instance in instances:
        if instance.get("datasetId") == dataset_id:
            return instance
    return None


def _scope_change(before: EntityDoc | None, after: EntityDoc | None, now: str) -> list[HistoryRow]:
    """§4.18, §5.7.3: ``scope`` has a temporal evolution too, as a Property named scope."""
    old = None if before is None else before.get("scope")
    new = None if after is None else after.get("scope")
    if old == new:
        return []
    if new:
        recorded = now if after is None else after.get("modifiedAt", now)
        # §4.5.6: a change from the Core API is observed when it is made.
        instance = {**scope_instance(new), "observedAt": recorded}
        return [HistoryRow(SCOPE, None, instance, recorded)]
    gone: Instance = {"type": "Property", "value": []}
    return [HistoryRow(SCOPE, None, gone, now, deleted=True)]


def scope_instance(scope: list[str]) -> Instance:
    """The instance that records a value of ``scope``."""
    return {"type": "Property", "value": list(scope)}


def deletion(attr: str, instance: Instance, now: str) -> HistoryRow:
    """The deletion instance of ``instance`` (§4.5.8: its value member is the NGSI-LD Null)."""
    kind = instance.get("type", "Property")
    member = VALUE_MEMBER.get(kind, "value")
    gone: Instance = {"type": kind, member: _null_of(kind)}
    if "datasetId" in instance:
        gone["datasetId"] = instance["datasetId"]
    return HistoryRow(attr, instance.get("datasetId"), gone, now, deleted=True)


def given(rows: list[HistoryRow]) -> History:
    """A ``History`` that appends ``rows`` whatever the write changed (temporal provision)."""

    def explicit(before: EntityDoc | None, after: EntityDoc | None) -> list[HistoryRow]:
        return rows

    return explicit


def representation_rows(attrs: dict[str, list[Instance]], now: str) -> list[HistoryRow]:
    """The instances of a temporal representation's attributes (§5.6.11, §5.6.12), as rows."""
    return [
        HistoryRow(attr, instance.get("datasetId"), _without_times(instance), now)
        for attr, instances in attrs.items()
        for instance in instances
    ]


def latest_instances(attrs: dict[str, list[Instance]]) -> AttrMap:
    """The current state a temporal representation implies: per attribute and ``datasetId``,
    the instance observed last (the last given, among those without ``observedAt``)."""
    current: AttrMap = {}
    for attr, instances in attrs.items():
        chosen: dict[Any, Instance] = {}
        for instance in instances:
            if is_deletion(instance):
                continue  # a deleted instance is history, never current state
            dataset_id = instance.get("datasetId")
            held = chosen.get(dataset_id)
            if held is None or instance.get("observedAt", "") >= held.get("observedAt", ""):
                chosen[dataset_id] = instance
        if chosen:
            current[attr] = list(chosen.values())
    return current


def _without_times(instance: Instance) -> Instance:
    kept = dict(instance)
    kept.pop("createdAt", None)
    kept.pop("modifiedAt", None)
    return kept


def _null_of(kind: str) -> Any:
    if kind == "LanguageProperty":
        return {"@none": NGSI_LD_NULL}
    if kind in ("ListProperty", "ListRelationship"):
        return [NGSI_LD_NULL]
    return NGSI_LD_NULL
