"""Subscription bodies → validated subscriptions → what a client retrieves (§5.2.12, §5.8.1-5.8.3).

Bodies are modelled on the ETSI conformance suite's data/subscriptions files.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from broker.contexts import builtin_documents
from broker.ngsild.errors import BadRequestData
from broker.ngsild.subscriptions.documents import from_doc, render_subscription, to_doc
from broker.ngsild.subscriptions.subscription import (
    DEFAULT_TRIGGERS,
    Subscription,
    apply_patch,
    parse_filters,
    parse_subscription,
    status,
)
from broker.ngsild.terms import build_term_table

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
SUITE = "https://ngsi-ld-test-suite/context#"
CONTEXT = {
    name: SUITE + name
    for name in ("Building", "Tower", "Vehicle", "airQualityLevel", "name", "subCategory")
}
TERMS = build_term_table(CONTEXT, CORE, builtin_documents())
CORE_TERMS = build_term_table(None, CORE, builtin_documents())
NOW = "2026-01-01T00:00:00Z"
LATER = "2026-06-01T00:00:00Z"
SUB_ID = "urn:ngsi-ld:Subscription:1"


def body(**members: Any) -> dict[str, Any]:
    """The suite's subscription.jsonld without @context, with members replaced (None drops)."""
    base: dict[str, Any] = {
        "id": SUB_ID,
        "type": "Subscription",
        "entities": [{"type": "Building"}],
        "notification": {
            "format": "keyValues",
            "endpoint": {"uri": "http://localhost:1111/notify", "accept": "application/json"},
        },
    }
    base.update(members)
    return {name: value for name, value in base.items() if value is not None}


def endpoint(**members: Any) -> dict[str, Any]:
    return {"endpoint": {"uri": "http://localhost:1111/notify", **members}}


def parse(raw: Any, terms: Any = TERMS) -> Subscription:
    return parse_subscription(raw, terms, now=NOW, context=CONTEXT)


ROUND_TRIPS = {
    "timeInterval": body(timeInterval=5),
    "watched + q": body(
        isActive=True,
        watchedAttributes=["airQualityLevel"],
        q='name=="Eiffel%20Tower"',
        notification={"endpoint": {"uri": "http://localhost:1111/notify"}},
    ),
    "receiverInfo": body(
        notification={
            "format": "normalized",
            **endpoint(
                accept="application/json",
                receiverInfo=[{"key": "X-Additional-Key", "value": "Value"}],
                notifierInfo=[{"key": "MQTT-QoS", "value": "1"}],
            ),
        }
    ),
    "type expression and triggers": body(
        entities=[{"type": "Building|Tower"}],
        notificationTrigger=["entityCreated"],
        notification=endpoint(),
    ),
    "datasetId": body(
        datasetId=["urn:ngsi-ld:Dataset:french-name"],
        notification={"format": "normalized", **endpoint(accept="application/ld+json")},
    ),
    "pick": body(notification={**endpoint(), "pick": ["id", "name"]}),
    "join + sysAttrs": body(
        notification={**endpoint(), "join": "flat", "joinLevel": 1, "sysAttrs": True}
    ),
    "everything else": body(
        entities=[
            {"id": "urn:ngsi-ld:Building:1", "type": "Building"},
            {"idPattern": "^urn:ngsi-ld:Vehicle:", "type": "Vehicle"},
        ],
        subscriptionName="air",
        description="air quality",
        geoQ={"georel": "near;maxDistance==2000", "geometry": "Point", "coordinates": [2, 48]},
        scopeQ="/Paris/#",
        csf="provider==acme",
        lang="fr",
        throttling=15,
        expiresAt=LATER,
        isActive=False,
        jsonldContext="https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
        notification={
            "attributes": ["airQualityLevel"],
            "format": "concise",
            "showChanges": True,
            "sysAttrs": False,
            **endpoint(accept="application/ld+json"),
        },
    ),
}


@pytest.mark.parametrize("raw", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_retrieval_with_the_same_context_gives_back_what_was_sent(raw: dict[str, Any]) -> None:
    shown = render_subscription(parse(raw), TERMS, now=NOW)
    assert shown.pop("status") == ("paused" if raw.get("isActive") is False else "active")
    assert shown == {
        "notificationTrigger": ["attributeCreated", "attributeUpdated"],
        **raw,
    }  # no counters before the first delivery attempt


def test_type_expressions_are_shown_in_disjunctive_normal_form() -> None:
    raw = body(entities=[{"type": "(Building|Tower);Vehicle"}])
    shown = render_subscription(parse(raw), TERMS, now=NOW)
    assert shown["entities"] == [{"type": "Building;Vehicle|Tower;Vehicle"}]


@pytest.mark.parametrize("raw", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_store_documents_round_trip_through_json(raw: dict[str, Any]) -> None:
    sub = parse(raw)
    assert from_doc(json.loads(json.dumps(to_doc(sub)))) == sub


def test_defaults_of_table_5_2_12() -> None:
    sub = parse(body(id=None, notification=endpoint()))
    assert sub.id.startswith("urn:ngsi-ld:Subscription:")
    assert sub.triggers == DEFAULT_TRIGGERS == {"attributeCreated", "attributeUpdated"}
    assert sub.is_active
    assert sub.notification.format == "normalized"
    assert sub.notification.endpoint.accept == "application/json"
    assert not sub.notification.sys_attrs
    assert not sub.notification.show_changes
    assert (sub.created_at, sub.modified_at, sub.context) == (NOW, NOW, CONTEXT)
    assert parse(body(id=None)).id != sub.id


def test_names_are_stored_expanded_and_compacted_per_request_context() -> None:
    sub = parse(
        body(
            watchedAttributes=["name", "subCategory"],
            notification={**endpoint(), "attributes": ["airQualityLevel"]},
        )
    )
    assert sub.entities is not None
    assert sub.entities[0].types == (frozenset({SUITE + "Building"}),)
    assert sub.watched == frozenset({SUITE + "name", SUITE + "subCategory"})
    assert sub.notification.attributes == (SUITE + "airQualityLevel",)
    shown = render_subscription(sub, CORE_TERMS, now=NOW)
    assert shown["entities"] == [{"type": SUITE + "Building"}]
    assert shown["watchedAttributes"] == [SUITE + "name", SUITE + "subCategory"]


def test_read_only_and_unknown_members_are_ignored() -> None:
    raw = body(
        __context="http://localhost:1111/hijacked.jsonld",
        status="expired",
        createdAt="2000-01-01T00:00:00Z",
        notification={**endpoint(), "timesSent": 42, "status": "failed"},
    )
    shown = render_subscription(parse(raw), TERMS, now=NOW)
    assert "hijacked" not in json.dumps(shown)
    assert shown["status"] == "active"
    assert "timesSent" not in shown["notification"]  # never sent: a client cannot set it
    assert "status" not in shown["notification"]
    assert "createdAt" not in shown


INVALID = {
    "not an object": [],
    "empty body": {},
    "no type": body(type=None),
    "wrong type": body(type="Entity"),
    "invalid id": body(id="invalidId"),
    "empty id": body(id=""),
    "no notification": body(notification=None),
    "neither entities nor watchedAttributes": body(entities=None),
    "empty entities": body(entities=[]),
    "selector without type": body(entities=[{"id": "urn:ngsi-ld:Building:1"}]),
    "empty watchedAttributes": body(watchedAttributes=[]),
    "watchedAttributes not strings": body(watchedAttributes=[1]),
    "watchedAttributes with timeInterval": body(watchedAttributes=["name"], timeInterval=5),
    "throttling with timeInterval": body(timeInterval=10, throttling=30),
    "negative throttling": body(throttling=-30),
    "zero timeInterval": body(timeInterval=0),
    "boolean throttling": body(throttling=True),
    "unknown trigger": body(notificationTrigger=["entityChanged"]),
    "empty triggers": body(notificationTrigger=[]),
    "invalid q": body(q="name=="),
    "invalid csf": body(csf="(("),
    "invalid scopeQ": body(scopeQ="/Paris;;/Lyon"),
    "geoQ not an object": body(geoQ="near"),
    "incomplete geoQ": body(geoQ={"georel": "within", "geometry": "Polygon"}),
    "past expiresAt": body(expiresAt="2000-01-01T00:00:00Z"),
    "expiresAt now": body(expiresAt=NOW),
    "expiresAt not a date-time": body(expiresAt="tomorrow"),
    "isActive not boolean": body(isActive="false"),
    "empty name": body(subscriptionName=""),
    "datasetId not URIs": body(datasetId=["french"]),
    "invalid jsonldContext": body(jsonldContext="unknownContext"),
    "notification not an object": body(notification="http://x"),
    "no endpoint": body(notification={"format": "keyValues"}),
    "relative uri": body(notification={"endpoint": {"uri": "/notify"}}),
    "ftp uri": body(notification={"endpoint": {"uri": "ftp://example.org/x"}}),
    "uri without host": body(notification={"endpoint": {"uri": "http:notify"}}),
    "unknown accept": body(notification=endpoint(accept="text/plain")),
    "unknown format": body(notification={**endpoint(), "format": "compact"}),
    "empty attributes": body(notification={**endpoint(), "attributes": []}),
    "entity member in attributes": body(notification={**endpoint(), "attributes": ["id"]}),
    "sysAttrs not boolean": body(notification={**endpoint(), "sysAttrs": "true"}),
    "showChanges with keyValues": body(
        notification={**endpoint(), "format": "keyValues", "showChanges": True}
    ),
    "showChanges with simplified": body(
        notification={**endpoint(), "format": "simplified", "showChanges": True}
    ),
    "empty pick": body(notification={**endpoint(), "pick": []}),
    "empty omit": body(notification={**endpoint(), "omit": []}),
    "same member in pick and omit": body(
        notification={**endpoint(), "pick": ["id"], "omit": ["id"]}
    ),
    "pick with attributes": body(
        notification={**endpoint(), "pick": ["name"], "attributes": ["name"]}
    ),
    "omit with attributes": body(
        notification={**endpoint(), "omit": ["name"], "attributes": ["name"]}
    ),
    "unknown join": body(notification={**endpoint(), "join": "deep"}),
    "zero joinLevel": body(notification={**endpoint(), "joinLevel": 0}),
    "numeric receiverInfo value": body(
        notification=endpoint(receiverInfo=[{"key": "K", "value": 42}])
    ),
    "object notifierInfo value": body(
        notification=endpoint(notifierInfo=[{"key": "K", "value": {"a": 1}}])
    ),
    "pair without value": body(notification=endpoint(receiverInfo=[{"key": "K"}])),
    "numeric key": body(notification=endpoint(receiverInfo=[{"key": 5, "value": "v"}])),
    "empty receiverInfo": body(notification=endpoint(receiverInfo=[])),
}


@pytest.mark.parametrize("raw", INVALID.values(), ids=INVALID.keys())
def test_invalid_subscriptions_are_bad_request_data(raw: Any) -> None:
    with pytest.raises(BadRequestData):
        parse(raw)


VALID = {
    "mqtt endpoint": body(notification={"endpoint": {"uri": "mqtt://broker:1883/topic"}}),
    "mqtts endpoint": body(notification={"endpoint": {"uri": "mqtts://broker/topic"}}),
    "geo+json accept": body(notification=endpoint(accept="application/geo+json")),
    "showChanges with normalized": body(
        notification={**endpoint(), "format": "normalized", "showChanges": True}
    ),
    "all six triggers": body(
        notificationTrigger=[
            "entityCreated",
            "entityUpdated",
            "entityDeleted",
            "attributeCreated",
            "attributeUpdated",
            "attributeDeleted",
        ]
    ),
    "watchedAttributes only": body(entities=None, watchedAttributes=["name"]),
    "string key-value pairs": body(
        notification=endpoint(
            receiverInfo=[{"key": "Authorization", "value": "Bearer abc"}],
            notifierInfo=[{"key": "Prefer", "value": "body=json"}],
        )
    ),
}


@pytest.mark.parametrize("raw", VALID.values(), ids=VALID.keys())
def test_valid_variants_are_accepted(raw: dict[str, Any]) -> None:
    assert parse(raw).id == SUB_ID


def test_filters_are_parsed_with_the_subscription_context() -> None:
    sub = parse(
        body(
            q="airQualityLevel>3",
            geoQ={"georel": "within", "geometry": "Point", "coordinates": [2, 48]},
            scopeQ="/Paris",
        )
    )
    filters = parse_filters(sub, TERMS)
    assert filters.q is not None
    assert filters.geo is not None
    assert filters.geo.geoproperty == "https://uri.etsi.org/ngsi-ld/location"
    assert filters.scope is not None
    assert filters.csf is None
    assert "airQualityLevel" in json.dumps(render_subscription(sub, TERMS, now=NOW)["q"])


def test_status_is_expired_once_expires_at_has_passed() -> None:
    sub = parse(body(expiresAt=LATER))
    assert status(sub, NOW) == "active"
    assert status(sub, "2026-05-31T23:59:59.999Z") == "active"
    assert status(sub, LATER) == "expired"
    assert render_subscription(sub, TERMS, now="2027-01-01T00:00:00Z")["status"] == "expired"
    paused = parse(body(expiresAt=LATER, isActive=False))
    assert status(paused, NOW) == "paused"
    assert status(paused, "2027-01-01T00:00:00Z") == "expired"


def test_sys_attrs_adds_created_and_modified_at() -> None:
    shown = render_subscription(parse(body()), TERMS, now=NOW, sys_attrs=True)
    assert (shown["createdAt"], shown["modifiedAt"]) == (NOW, NOW)


DELIVERY = {
    "never sent": ({}, {}),
    "last attempt succeeded": (
        {"times_sent": 2, "last_notification": LATER, "last_success": LATER},
        {"lastNotification": LATER, "lastSuccess": LATER, "status": "ok"},
    ),
    "last attempt failed": (
        {
            "times_sent": 3,
            "times_failed": 1,
            "last_notification": LATER,
            "last_success": NOW,
            "last_failure": LATER,
        },
        {"lastNotification": LATER, "lastSuccess": NOW, "lastFailure": LATER, "status": "failed"},
    ),
}


@pytest.mark.parametrize(("kept", "shown"), DELIVERY.values(), ids=DELIVERY.keys())
def test_delivery_status_is_shown_in_the_notification(
    kept: dict[str, Any], shown: dict[str, Any]
) -> None:
    from dataclasses import replace

    sub = replace(parse(body()), **kept)
    notification = render_subscription(sub, TERMS, now=NOW)["notification"]
    counters = {"timesSent": kept.get("times_sent", 0), "timesFailed": kept.get("times_failed", 0)}
    expected = {name: count for name, count in counters.items() if count}
    assert {k: notification[k] for k in [*expected, *shown]} == {**expected, **shown}
    assert set(notification) - {"format", "endpoint"} == {*expected, *shown}


def patch(sub: Subscription, fragment: Any, at: str = LATER) -> Subscription:
    return apply_patch(sub, fragment, TERMS, now=at)


def test_patch_replaces_the_given_members_and_keeps_the_others() -> None:
    sub = parse(body(timeInterval=5, subscriptionName="old"))
    updated = patch(
        sub,
        {
            "type": "Subscription",
            "notification": {
                "format": "keyValues",
                "endpoint": {
                    "uri": "http://my.second.endpoint.org/notify",
                    "accept": "application/json",
                },
            },
        },
        at="2026-02-01T00:00:00Z",
    )
    shown = render_subscription(updated, TERMS, now="2026-02-01T00:00:00Z", sys_attrs=True)
    assert shown["notification"]["endpoint"]["uri"] == "http://my.second.endpoint.org/notify"
    assert (shown["timeInterval"], shown["subscriptionName"]) == (5, "old")
    assert (shown["createdAt"], shown["modifiedAt"]) == (NOW, "2026-02-01T00:00:00Z")


def test_patch_expands_names_with_the_request_context() -> None:
    updated = patch(parse(body()), {"type": "Subscription", "entities": [{"type": "Vehicle"}]})
    assert render_subscription(updated, TERMS, now=NOW)["entities"] == [{"type": "Vehicle"}]
    assert render_subscription(updated, CORE_TERMS, now=NOW)["entities"] == [
        {"type": SUITE + "Vehicle"}
    ]


def test_patch_null_removes_an_optional_member() -> None:
    sub = parse(body(throttling=15, q="name==1"))
    updated = patch(sub, {"throttling": None, "q": None})
    assert (updated.throttling, updated.q) == (None, None)
    assert "throttling" not in render_subscription(updated, TERMS, now=NOW)


def test_patch_isactive_pauses_and_resumes() -> None:
    sub = parse(body())
    paused = patch(sub, {"type": "Subscription", "isActive": False})
    assert render_subscription(paused, TERMS, now=NOW)["status"] == "paused"
    resumed = patch(paused, {"type": "Subscription", "isActive": True})
    assert render_subscription(resumed, TERMS, now=NOW)["status"] == "active"
    assert (
        render_subscription(patch(resumed, {"isActive": None}), TERMS, now=NOW).get("isActive")
        is None
    )


def test_patch_future_expires_at_reactivates_an_expired_subscription() -> None:
    sub = parse(body(expiresAt="2026-01-01T00:00:05Z"))
    assert status(sub, "2026-01-01T00:00:10Z") == "expired"
    updated = patch(sub, {"type": "Subscription", "expiresAt": "2030-08-01T22:07:00Z"}, at=NOW)
    assert status(updated, "2026-01-01T00:00:10Z") == "active"


def test_patch_leaves_the_original_untouched() -> None:
    sub = parse(body())
    before = copy.deepcopy(to_doc(sub))
    patch(sub, {"isActive": False})
    assert to_doc(sub) == before


INVALID_PATCHES = {
    "not an object": [],
    "notification without endpoint": {"notification": {"format": "keyValues"}},
    "null endpoint": {
        "type": "Subscription",
        "notification": {"format": "keyValues", "endpoint": None},
    },
    "null notification": {"notification": None},
    "wrong type": {"type": "Entity"},
    "other id": {"id": "urn:ngsi-ld:Subscription:2"},
    "past expiresAt": {"type": "Subscription", "expiresAt": "2020-08-01T22:07:00Z"},
    "watchedAttributes with existing timeInterval": {"watchedAttributes": ["name"]},
    "throttling with existing timeInterval": {"throttling": 5},
    "removing the only selector": {"entities": None},
    "invalid q": {"q": "(("},
    "unknown trigger": {"notificationTrigger": ["entityChanged"]},
}


@pytest.mark.parametrize("fragment", INVALID_PATCHES.values(), ids=INVALID_PATCHES.keys())
def test_invalid_patches_are_bad_request_data(fragment: Any) -> None:
    with pytest.raises(BadRequestData):
        patch(parse(body(timeInterval=5)), fragment)
