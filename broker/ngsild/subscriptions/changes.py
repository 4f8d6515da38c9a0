"""Change events: what a committed write did to an entity, as subscriptions see it (§5.8).

Every write the entity service commits yields a ``Change`` with the document before and after
(``None`` for a creation or a deletion). ``triggers`` derives the notification triggers it fires
(v1.8 ``notificationTrigger``): ``entityCreated``, ``entityUpdated`` or ``entityDeleted`` for the
entity, and ``attributeCreated``, ``attributeUpdated`` or ``attributeDeleted`` per attribute.
Pure code: the matcher and the tests use it without a broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from broker.ngsild.entity import EntityDoc, Instance

ENTITY_CREATED: Final = "entityCreated"
ENTITY_UPDATED: Final = "entityUpdated"
ENTITY_DELETED: Final = "entityDeleted"
ATTRIBUTE_CREATED: Final = "attributeCreated"
ATTRIBUTE_UPDATED: Final = "attributeUpdated"
ATTRIBUTE_DELETED: Final = "attributeDeleted"
TRIGGERS: Final = frozenset(
    {
        ENTITY_CREATED,
        ENTITY_UPDATED,
        ENTITY_DELETED,
        ATTRIBUTE_CREATED,
        ATTRIBUTE_UPDATED,
        ATTRIBUTE_DELETED,
    }
)


@dataclass(frozen=True, slots=True)
class Change:
    """One committed change of one entity in one tenant."""

    tenant: str
    before: EntityDoc | None
    after: EntityDoc | None

    @property
    def entity_id(self) -> str:
        doc = self.after if self.after is not None else self.before
        assert doc is not None  # a change has at least one side
        return str(doc["id"])

    @property
    def types(self) -> frozenset[str]:
        """Entity types before and after (a type change is seen by subscriptions on either)."""
        found: set[str] = set()
        for doc in (self.before, self.after):
            if doc is not None:
                found.update(doc["type"])
        return frozenset(found)


@dataclass(frozen=True, slots=True)
class Fired:
    """The triggers a change fires: entity-level ones, and per attribute IRI the attribute ones."""

    entity: frozenset[str]
    attributes: dict[str, str]

    @property
    def changed_attributes(self) -> frozenset[str]:
        return frozenset(self.attributes)


def triggers(change: Change) -> Fired:
    """What ``change`` fires. An attribute counts as updated when any of its instances differ."""
    before, after = change.before, change.after
    if before is None and after is not None:
        return Fired(frozenset({ENTITY_CREATED}), dict.fromkeys(after["attrs"], ATTRIBUTE_CREATED))
    if after is None and before is not None:
        return Fired(frozenset({ENTITY_DELETED}), dict.fromkeys(before["attrs"], ATTRIBUTE_DELETED))
    assert before is not None  # a change has at least one side
    assert after is not None
    attributes: dict[str, str] = {}
    for attr, instances in after["attrs"].items():
        previous = before["attrs"].get(attr)
        if previous is None:
            attributes[attr] = ATTRIBUTE_CREATED
        elif previous is not instances and previous != instances:
            attributes[attr] = _instances_changed(previous, instances)
    for attr in before["attrs"].keys() - after["attrs"].keys():
        attributes[attr] = ATTRIBUTE_DELETED
    entity_changed = bool(attributes) or any(
        before.get(member) != after.get(member) for member in ("type", "scope")
    )
    return Fired(frozenset({ENTITY_UPDATED}) if entity_changed else frozenset(), attributes)


def _instances_changed(before: list[Instance], after: list[Instance]) -> str:
    """Deleting some datasetId instances of an attribute is an attribute deletion (§4.5.5)."""
    kept = {instance.get("datasetId"): instance for instance in after}
    unchanged_or_gone = all(kept.get(i.get("datasetId"), i) == i for i in before)
    if unchanged_or_gone and len(kept) < len(before):
        return ATTRIBUTE_DELETED
    return ATTRIBUTE_UPDATED
