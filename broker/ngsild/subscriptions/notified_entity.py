"""The entity a notification shows for one change (GS CIM 009 v1.8.1 §5.8.6, §5.2.14 showChanges).

A notification normally shows the entity as it is after the change. Two things are not in that
document and have to be added from the one before it:

- What was deleted. A deleted attribute instance is shown with the NGSI-LD Null as its value
  (``"urn:ngsi-ld:null"``, or ``{"@none": "urn:ngsi-ld:null"}`` for a languageMap, §5.2.1) and a
  ``deletedAt`` system member; a deleted entity is shown with its own ``deletedAt``. For a deleted
  entity, only the attributes the receiver asked to hear about are listed: every attribute when
  it wants ``showChanges``, else those whose ``attributeDeleted`` trigger it watches.
- With ``showChanges``, the previous value of each instance that changed, in the member named
  after its value member (``previousValue``, ``previousObject``, ``previousLanguageMap``,
  ``previousJson``, ``previousVocab``, ...).

Pure: the result is an entity document that ``render.render_entity`` shows like any other.
"""

from __future__ import annotations

from typing import Final

from broker.ngsild.entity import EntityDoc, Instance
from broker.ngsild.names import LANGUAGE_PROPERTY, NGSI_LD_NULL, VALUE_MEMBER
from broker.ngsild.subscriptions.changes import ATTRIBUTE_DELETED, Change, Fired
from broker.ngsild.subscriptions.subscription import Subscription

PREVIOUS_MEMBER: Final = {
    member: "previous" + member[0].upper() + member[1:] for member in set(VALUE_MEMBER.values())
}
"""Value member → the member that carries its previous value (``value`` → ``previousValue``)."""


def notified_entity(sub: Subscription, change: Change, fired: Fired, now: str) -> EntityDoc:
    """The document to render for ``sub``'s receiver; ``now`` stamps deletions."""
    before, after = change.before, change.after
    show_changes = sub.notification.show_changes
    if after is None:
        assert before is not None  # a change has at least one side
        return _deleted_entity(sub, before, fired, now)
    if before is None:
        return after
    attrs: dict[str, list[Instance]] = {}
    for iri, instances in after["attrs"].items():
        old = _by_dataset(before["attrs"].get(iri, []))
        shown = [_with_previous(i, old.get(_dataset(i))) if show_changes else i for i in instances]
        kept = {_dataset(i) for i in instances}
        shown += [_nulled(i, now, show_changes) for d, i in old.items() if d not in kept]
        attrs[iri] = shown
    for iri in before["attrs"].keys() - after["attrs"].keys():
        attrs[iri] = _whole_attribute_deleted(before["attrs"][iri], now, show_changes)
    return {**after, "attrs": attrs}


def _deleted_entity(sub: Subscription, before: EntityDoc, fired: Fired, now: str) -> EntityDoc:
    if sub.notification.show_changes:
        names = list(before["attrs"])
    else:
        names = [
            iri
            for iri, trigger in fired.attributes.items()
            if trigger == ATTRIBUTE_DELETED
            and ATTRIBUTE_DELETED in sub.triggers
            and (sub.watched is None or iri in sub.watched)
        ]
    attrs = {
        iri: _whole_attribute_deleted(before["attrs"][iri], now, sub.notification.show_changes)
        for iri in names
    }
    return {**before, "deletedAt": now, "attrs": attrs}


def _whole_attribute_deleted(
    instances: list[Instance], now: str, show_changes: bool
) -> list[Instance]:
    """An attribute deleted with all its instances is shown once, as the NGSI-LD Null."""
    if len(instances) == 1:
        return [_nulled(instances[0], now, show_changes)]
    default = next((i for i in instances if "datasetId" not in i), instances[0])
    gone = _nulled(default, now, show_changes)
    gone.pop("datasetId", None)
    return [gone]


def _nulled(instance: Instance, now: str, show_changes: bool) -> Instance:
    kind = instance["type"]
    member = VALUE_MEMBER[kind]
    gone: Instance = {"type": kind}
    if "datasetId" in instance:
        gone["datasetId"] = instance["datasetId"]
    gone[member] = {"@none": NGSI_LD_NULL} if kind == LANGUAGE_PROPERTY else NGSI_LD_NULL
    if show_changes:
        gone[PREVIOUS_MEMBER[member]] = instance[member]
    for stamp in ("createdAt", "modifiedAt"):
        if stamp in instance:
            gone[stamp] = instance[stamp]
    gone["deletedAt"] = now
    return gone


def _with_previous(instance: Instance, old: Instance | None) -> Instance:
    if old is None or old == instance:
        return instance
    member = VALUE_MEMBER[old["type"]]
    if member not in old:
        return instance
    return {**instance, PREVIOUS_MEMBER[member]: old[member]}


def _dataset(instance: Instance) -> str | None:
    dataset: str | None = instance.get("datasetId")
    return dataset


def _by_dataset(instances: list[Instance]) -> dict[str | None, Instance]:
    return {_dataset(i): i for i in instances}
