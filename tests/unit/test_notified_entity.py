"""What a notification shows of a change: deletions as the NGSI-LD Null, previous values."""

from __future__ import annotations

from typing import Any

from broker.contexts import builtin_documents
from broker.ngsild.entity import parse_entity
from broker.ngsild.patch import new_entity
from broker.ngsild.subscriptions.changes import Change, triggers
from broker.ngsild.subscriptions.notification import notification_body
from broker.ngsild.subscriptions.notified_entity import notified_entity
from broker.ngsild.subscriptions.subscription import parse_subscription
from broker.ngsild.terms import build_term_table

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
TERMS = build_term_table(None, CORE, builtin_documents())
NOW = "2026-11-23T00:00:00Z"
LATER = "2026-11-23T00:05:00Z"
NULL = "urn:ngsi-ld:null"


ALL_TRIGGERS = ["attributeUpdated", "attributeDeleted", "entityDeleted"]


def sub(trigger: list[str] = ALL_TRIGGERS, **notification: Any) -> Any:
    body = {
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notificationTrigger": trigger,
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}, **notification},
    }
    return parse_subscription(body, TERMS, now=NOW, context=None)


def gauge(**attrs: Any) -> dict[str, Any]:
    body = {"id": "urn:ngsi-ld:RiverGauge:kamo", "type": "RiverGauge", **attrs}
    return new_entity(parse_entity(body, TERMS), now=NOW)


def shown(subscription: Any, before: Any, after: Any) -> dict[str, Any]:
    change = Change("", before, after)
    doc = notified_entity(subscription, change, triggers(change), LATER)
    entity: dict[str, Any] = notification_body(subscription, [doc], TERMS, now=LATER)["data"][0]
    return entity


LEVEL = {"level": {"type": "Property", "value": 2.0}}
BRIDGE = {"bridge": {"type": "Relationship", "object": "urn:ngsi-ld:Bridge:sanjo"}}
NAME = {"name": {"type": "LanguageProperty", "languageMap": {"ja": "鴨川", "en": "Kamo"}}}


def test_a_deleted_attribute_is_shown_as_the_ngsi_ld_null() -> None:
    entity = shown(sub(), gauge(**LEVEL, **BRIDGE, **NAME), gauge(**LEVEL))
    assert entity["level"] == {"type": "Property", "value": 2.0}
    assert entity["bridge"] == {"type": "Relationship", "object": NULL}
    assert entity["name"] == {"type": "LanguageProperty", "languageMap": {"@none": NULL}}
    keyvalues = shown(sub(format="keyValues"), gauge(**LEVEL, **BRIDGE), gauge(**LEVEL))
    assert keyvalues["bridge"] == NULL


def test_a_deleted_dataset_instance_is_listed_beside_the_remaining_ones() -> None:
    german = {"type": "Property", "value": 3.0, "datasetId": "urn:ngsi-ld:Dataset:de"}
    before = gauge(level=[{"type": "Property", "value": 2.0}, german])
    entity = shown(sub(), before, gauge(**LEVEL))
    assert entity["level"] == [
        {"type": "Property", "value": 2.0},
        {"type": "Property", "datasetId": "urn:ngsi-ld:Dataset:de", "value": NULL},
    ]


def test_show_changes_adds_the_previous_value_of_what_changed_only() -> None:
    before = gauge(**LEVEL, **BRIDGE, **NAME)
    after = gauge(
        level={"type": "Property", "value": 2.5},
        bridge={"type": "Relationship", "object": "urn:ngsi-ld:Bridge:shijo"},
        **NAME,
    )
    entity = shown(sub(showChanges=True), before, after)
    assert entity["level"] == {"type": "Property", "value": 2.5, "previousValue": 2.0}
    assert entity["bridge"]["previousObject"] == "urn:ngsi-ld:Bridge:sanjo"
    assert "previousLanguageMap" not in entity["name"]
    assert "previousValue" not in shown(sub(), before, after)["level"]


def test_a_deleted_entity_shows_its_deletion_time_and_with_show_changes_its_last_values() -> None:
    before = gauge(**LEVEL, **NAME)
    assert shown(sub(["entityDeleted"]), before, None) == {
        "id": "urn:ngsi-ld:RiverGauge:kamo",
        "type": "RiverGauge",
        "deletedAt": LATER,
    }
    entity = shown(sub(showChanges=True), before, None)
    assert entity["level"] == {"type": "Property", "value": NULL, "previousValue": 2.0}
    assert entity["name"]["previousLanguageMap"] == {"ja": "鴨川", "en": "Kamo"}
    with_sys = shown(sub(showChanges=True, sysAttrs=True), before, None)
    assert with_sys["level"]["deletedAt"] == LATER
    assert with_sys["level"]["createdAt"] == NOW


def test_watching_attribute_deletions_shows_only_those_attributes_of_a_deleted_entity() -> None:
    body = {
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "watchedAttributes": ["level"],
        "notificationTrigger": ["attributeDeleted"],
        "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify"}},
    }
    watching = parse_subscription(body, TERMS, now=NOW, context=None)
    entity = shown(watching, gauge(**LEVEL, **NAME), None)
    assert entity["level"] == {"type": "Property", "value": NULL}
    assert "name" not in entity


def test_deleting_one_dataset_instance_fires_attribute_deleted() -> None:
    german = {"type": "Property", "value": 3.0, "datasetId": "urn:ngsi-ld:Dataset:de"}
    before = gauge(level=[{"type": "Property", "value": 2.0}, german])
    fired = triggers(Change("", before, gauge(**LEVEL)))
    assert set(fired.attributes.values()) == {"attributeDeleted"}
    changed = gauge(level=[{"type": "Property", "value": 2.5}])
    assert set(triggers(Change("", before, changed)).attributes.values()) == {"attributeUpdated"}


def test_an_attribute_deleted_with_all_its_instances_is_shown_once() -> None:
    german = {"type": "Property", "value": 3.0, "datasetId": "urn:ngsi-ld:Dataset:de"}
    before = gauge(level=[{"type": "Property", "value": 2.0}, german], **NAME)
    entity = shown(sub(showChanges=True), before, gauge(**NAME))
    assert entity["level"] == {"type": "Property", "value": NULL, "previousValue": 2.0}


def test_pick_and_omit_project_the_notified_entity() -> None:
    # v1.8 §5.2.14 notification.pick/omit, applied like the query parameters (§4.21).
    before, after = gauge(**LEVEL), gauge(**LEVEL, **BRIDGE, **NAME)
    picked = shown(sub(format="normalized", pick=["id", "level", "bridge"]), before, after)
    assert set(picked) == {"id", "level", "bridge"}
    omitted = shown(sub(format="normalized", omit=["type", "name"]), before, after)
    assert set(omitted) == {"id", "level", "bridge"}
