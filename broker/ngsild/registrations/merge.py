"""One entity from the answers of several sources (GS CIM 009 v1.8.1 §4.3.6.2, §5.7.1.4,
§5.7.2.4).

Each source's version of an entity is an internal document (``broker.ngsild.entity``). The
merged entity has the union of their types and attributes. Where two sources hold an instance
of the same attribute with the same ``datasetId`` (none counts as one dataset, the default),
one instance is kept: the most recent ``observedAt`` wins; without one to compare, the earlier
source in precedence order wins, and the order is: the local broker, then exclusive, redirect
and inclusive sources (as they answered), then auxiliary ones — an auxiliary source only fills
in what nobody else has (§4.3.6.2: "auxiliary ... never overrides").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from broker.ngsild.entity import EntityDoc, Instance
from broker.ngsild.registrations.registration import AUXILIARY

LOCAL: Final = "local"
_RANK: Final = {LOCAL: 0, AUXILIARY: 2}


def precedence(mode: str) -> int:
    """Sort key of a source by mode: local first, auxiliary last."""
    return _RANK.get(mode, 1)


def merge_entities(versions: Iterable[tuple[str, EntityDoc]]) -> EntityDoc | None:
    """The merged entity of ``(mode, document)`` pairs, or ``None`` when there is none."""
    ordered = sorted(versions, key=lambda pair: precedence(pair[0]))
    if not ordered:
        return None
    first = ordered[0][1]
    merged: EntityDoc = {key: value for key, value in first.items() if key != "attrs"}
    types = list(first.get("type", []))
    attrs: dict[str, list[Instance]] = {
        name: list(instances) for name, instances in first.get("attrs", {}).items()
    }
    for _, doc in ordered[1:]:
        types.extend(t for t in doc.get("type", []) if t not in types)
        for name, instances in doc.get("attrs", {}).items():
            attrs[name] = _merge_instances(attrs.get(name, []), instances)
        for key in ("scope",):
            if key in doc and key not in merged:
                merged[key] = doc[key]
    merged["type"] = types
    merged["attrs"] = attrs
    return merged


def merge_lists(answers: Iterable[tuple[str, list[EntityDoc]]]) -> list[EntityDoc]:
    """Query answers of several sources as one list: entities merged by id, in the order
    their ids first appear (the local answer first)."""
    by_id: dict[str, list[tuple[str, EntityDoc]]] = {}
    for mode, docs in sorted(answers, key=lambda pair: precedence(pair[0])):
        for doc in docs:
            by_id.setdefault(doc["id"], []).append((mode, doc))
    merged = (merge_entities(versions) for versions in by_id.values())
    return [doc for doc in merged if doc is not None]


def _merge_instances(kept: list[Instance], incoming: list[Instance]) -> list[Instance]:
    result = list(kept)
    for instance in incoming:
        dataset = instance.get("datasetId")
        index = next((i for i, old in enumerate(result) if old.get("datasetId") == dataset), None)
        if index is None:
            result.append(instance)
        elif _newer(instance, result[index]):
            result[index] = instance
    return result


def _newer(candidate: Instance, kept: Instance) -> bool:
    new: Any = candidate.get("observedAt")
    old: Any = kept.get("observedAt")
    return isinstance(new, str) and isinstance(old, str) and new > old
