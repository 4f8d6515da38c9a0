"""Which changes notify which subscriptions: selectors, triggers, watched attributes, q, geoQ."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from broker.contexts import builtin_documents
from broker.ngsild.entity import parse_entity
from broker.ngsild.patch import new_entity
from broker.ngsild.subscriptions.changes import Change, triggers
from broker.ngsild.subscriptions.index import SubscriptionIndex
from broker.ngsild.subscriptions.matching import index_keys, notifies
from broker.ngsild.subscriptions.subscription import parse_filters, parse_subscription
from broker.ngsild.terms import build_term_table
from hypothesis import given
from hypothesis import strategies as st

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
TERMS = build_term_table(None, CORE, builtin_documents())
NOW = "2026-11-23T00:00:00Z"
ENDPOINT = {"endpoint": {"uri": "http://127.0.0.1:9/notify"}}


def sub(**members: Any) -> Any:
    body = {"type": "Subscription", "notification": ENDPOINT, **members}
    return parse_subscription(body, TERMS, now=NOW, context=None)


def gauge(level: float, *, lon: float = 135.77, kind: str = "RiverGauge", **extra: Any) -> dict:
    body = {
        "id": "urn:ngsi-ld:RiverGauge:kamo",
        "type": kind,
        "level": {"type": "Property", "value": level},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, 35.0]}},
        **extra,
    }
    return new_entity(parse_entity(body, TERMS), now=NOW)


def fires(subscription: Any, before: dict | None, after: dict | None) -> bool:
    change = Change("", before, after)
    return notifies(subscription, parse_filters(subscription, TERMS), change, triggers(change), NOW)


def test_default_triggers_are_attribute_creations_and_updates() -> None:
    s = sub(entities=[{"type": "RiverGauge"}])
    assert fires(s, None, gauge(1.0))  # created attributes
    assert fires(s, gauge(1.0), gauge(2.0))
    assert not fires(s, gauge(1.0), None)  # deletions need an explicit trigger
    assert not fires(s, gauge(1.0), gauge(1.0, kind="Bridge"))  # no longer selected


def test_watched_attributes_and_explicit_triggers() -> None:
    watching_alert = sub(entities=[{"type": "RiverGauge"}], watchedAttributes=["alert"])
    assert not fires(watching_alert, gauge(1.0), gauge(2.0))
    alert = {"alert": {"type": "Property", "value": "warning"}}
    assert fires(watching_alert, gauge(1.0), gauge(1.0, **alert))
    deletions = sub(entities=[{"type": "RiverGauge"}], notificationTrigger=["entityDeleted"])
    assert fires(deletions, gauge(1.0), None)
    assert not fires(deletions, gauge(1.0), gauge(2.0))


def test_q_and_geo_decide_on_the_entity_after_the_change() -> None:
    above = sub(entities=[{"type": "RiverGauge"}], q="level>2")
    assert not fires(above, gauge(1.0), gauge(1.5))
    assert fires(above, gauge(1.0), gauge(2.5))
    near = sub(
        entities=[{"type": "RiverGauge"}],
        geoQ={
            "geometry": "Point",
            "coordinates": [135.77, 35.0],
            "georel": "near;maxDistance==1000",
        },
    )
    assert fires(near, gauge(1.0), gauge(2.0))
    assert not fires(near, gauge(1.0, lon=135.9), gauge(2.0, lon=135.9))


def test_paused_expired_and_periodic_subscriptions_are_not_change_driven() -> None:
    assert not fires(sub(entities=[{"type": "RiverGauge"}], isActive=False), None, gauge(1.0))
    periodic = sub(entities=[{"type": "RiverGauge"}], timeInterval=60)
    assert not fires(periodic, None, gauge(1.0))


def test_index_keys_file_subscriptions_where_changes_find_them() -> None:
    index = SubscriptionIndex()
    by_type = sub(entities=[{"type": "RiverGauge"}, {"type": "Bridge"}])
    by_attribute = sub(watchedAttributes=["level"])
    index.add("", by_type.id, index_keys(by_type))
    index.add("", by_attribute.id, index_keys(by_attribute))
    level = TERMS.expand("level")
    assert index.candidates("", [TERMS.expand("Bridge")], []) == {by_type.id}
    assert index.candidates("", [TERMS.expand("Camera")], [level]) == {by_attribute.id}


@given(
    selected=st.lists(st.sampled_from(["RiverGauge", "Bridge", "Road"]), min_size=1, max_size=3),
    before_type=st.sampled_from(["RiverGauge", "Bridge", "Road", "Sign"]),
    after_type=st.sampled_from(["RiverGauge", "Bridge", "Road", "Sign", None]),
)
def test_the_fast_path_for_plain_type_selectors_agrees_with_the_evaluator(
    selected: list[str], before_type: str, after_type: str | None
) -> None:
    s = sub(
        entities=[{"type": name} for name in selected],
        notificationTrigger=["attributeUpdated", "entityDeleted", "entityUpdated"],
    )
    fast = parse_filters(s, TERMS)
    assert fast.plain_types is not None
    general = replace(fast, plain_types=None)
    before = gauge(1.0, kind=before_type)
    after = None if after_type is None else gauge(2.0, kind=after_type)
    change = Change("", before, after)
    fired = triggers(change)
    assert notifies(s, fast, change, fired, NOW) == notifies(s, general, change, fired, NOW)


def test_selectors_with_ids_or_combined_types_take_the_general_path() -> None:
    with_id = sub(entities=[{"type": "RiverGauge", "id": "urn:ngsi-ld:RiverGauge:kamo"}])
    assert parse_filters(with_id, TERMS).plain_types is None
    combined = sub(entities=[{"type": "RiverGauge;Bridge"}])
    assert parse_filters(combined, TERMS).plain_types is None
