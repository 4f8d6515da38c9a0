"""The type/attribute catalogue behind discovery (GS CIM 009 v1.8.1 §5.7.5–5.7.10).

Stores keep, per tenant, how many entities have each (entity type, attribute, attribute type)
combination, and how many entities have each type. They update these counts on every write from
``catalogue_delta`` (a partial update that changes no names changes nothing), so discovery reads a
small table instead of scanning every entity.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from broker.ngsild.entity import EntityDoc

NO_ATTRIBUTE = ""
"""The ``attr`` and ``kind`` of the row that counts entities of a type."""
ANY_TYPE = ""
"""The ``type`` (and ``kind``) of the row that counts entities having an attribute."""


class CatalogueRow(NamedTuple):
    """``entities`` entities of ``type`` have ``attr`` with an instance of attribute type ``kind``.

    Rows with ``attr == kind == NO_ATTRIBUTE`` count the entities of ``type``; rows with
    ``type == kind == ANY_TYPE`` count the entities that have ``attr``, whatever their types.
    """

    type: str
    attr: str
    kind: str
    entities: int


Key = tuple[str, str, str]


def catalogue_keys(doc: EntityDoc | None) -> frozenset[Key]:
    """What one entity contributes to the catalogue (one count per key)."""
    if doc is None:
        return frozenset()
    kinds = {
        (attr, instance["type"])
        for attr, instances in doc["attrs"].items()
        for instance in instances
    }
    keys = {(type_, NO_ATTRIBUTE, NO_ATTRIBUTE) for type_ in doc["type"]}
    keys.update((type_, attr, kind) for type_ in doc["type"] for attr, kind in kinds)
    keys.update((ANY_TYPE, attr, ANY_TYPE) for attr in doc["attrs"])
    return frozenset(keys)


def catalogue_delta(before: EntityDoc | None, after: EntityDoc | None) -> Counter[Key]:
    """The count changes when ``before`` becomes ``after`` (``None`` = absent)."""
    old, new = catalogue_keys(before), catalogue_keys(after)
    delta: Counter[Key] = Counter(dict.fromkeys(new - old, 1))
    delta.update(dict.fromkeys(old - new, -1))
    return delta
