"""Transient entities and attributes (GS CIM 009 v1.9.1 §4.22): the pure rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from broker.ngsild.expiry import STAMP, earliest, entity_expired, expire, live, stamped, when

D = "https://example.org/"
BEFORE = "2026-05-01T11:59:59Z"
AT = "2026-05-01T12:00:00Z"
AFTER = "2026-05-01T12:00:00.500Z"
NOW = datetime.fromisoformat("2026-05-01T12:00:00Z").timestamp()


def instance(value: Any, **members: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value, **members}


def doc(**attrs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "urn:ngsi-ld:T:1",
        "type": [D + "T"],
        "attrs": {D + k: v for k, v in attrs.items()},
    }


def test_a_durable_entity_never_expires_and_is_served_as_it_is() -> None:
    durable = doc(level=[instance(1)])
    assert earliest(durable) is None
    assert live(durable, NOW) is durable
    assert expire(durable, now=NOW, stamp=AT)[0] is durable


def test_earliest_is_the_first_instant_anything_expires_at_any_depth() -> None:
    nested = instance(1, expiresAt=AFTER, **{D + "sub": instance(2, expiresAt=BEFORE)})
    entity = {**doc(level=[nested]), "expiresAt": "2027-01-01T00:00:00Z"}
    assert earliest(entity) == datetime.fromisoformat(BEFORE).timestamp()


def test_an_entity_is_gone_at_its_expiry_not_before() -> None:
    entity = {**doc(level=[instance(1)]), "expiresAt": AT}
    assert entity_expired(entity, NOW)
    assert live(entity, NOW) is None
    early = datetime.fromisoformat(BEFORE).timestamp()
    assert live(entity, early) is entity


def test_expired_instances_and_sub_attributes_vanish_their_siblings_stay() -> None:
    speed = [instance(10), instance(20, datasetId="urn:d:1", expiresAt=AT)]
    flagged = instance(5, **{D + "note": instance("x", expiresAt=BEFORE), D + "keep": instance(1)})
    entity = doc(speed=speed, gone=[instance(0, expiresAt=AT)], kept=[flagged])
    seen = live(entity, NOW)
    assert seen is not None
    assert seen["attrs"][D + "speed"] == [instance(10)]
    assert D + "gone" not in seen["attrs"]
    assert seen["attrs"][D + "kept"] == [instance(5, **{D + "keep": instance(1)})]
    assert D + "note" in entity["attrs"][D + "kept"][0], "the input is left alone"


def test_the_sweep_rule_reports_what_it_removed_and_stamps_the_entity() -> None:
    entity = {**doc(gone=[instance(0, expiresAt=AT)], level=[instance(1)]), "modifiedAt": BEFORE}
    after, result = expire(entity, now=NOW, stamp=AFTER)
    assert result.updated == [D + "gone"]
    assert after["modifiedAt"] == AFTER
    assert list(after["attrs"]) == [D + "level"]


def test_the_stamp_carries_earliest_and_lets_durable_entities_through_unread() -> None:
    durable = stamped(doc(level=[instance(1)]))
    assert durable[STAMP] is None and stamped(durable) is durable
    assert live(durable, NOW) is durable
    transient = stamped({**doc(level=[instance(1)]), "expiresAt": AT})
    assert transient[STAMP] == NOW and when(transient) == NOW
    assert live(transient, NOW) is None
    # Without a stamp (written before it existed) the document is scanned.
    assert when({**doc(level=[instance(1, expiresAt=AT)])}) == NOW
