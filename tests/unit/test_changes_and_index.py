"""Change events → triggers, and the subscription index's candidate lookup."""

from __future__ import annotations

from broker.ngsild.subscriptions.changes import Change, triggers
from broker.ngsild.subscriptions.index import IndexKeys, SubscriptionIndex

X = "https://example.org/"


def doc(types: list[str], **attrs: object) -> dict:
    return {
        "id": "urn:x:1",
        "type": [X + t for t in types],
        "attrs": {X + k: [{"type": "Property", "value": v}] for k, v in attrs.items()},
    }


def test_creation_deletion_and_update_triggers() -> None:
    created = triggers(Change("", None, doc(["Gauge"], level=1)))
    assert created.entity == {"entityCreated"}
    assert created.attributes == {X + "level": "attributeCreated"}
    deleted = triggers(Change("", doc(["Gauge"], level=1), None))
    assert deleted.entity == {"entityDeleted"}
    assert deleted.attributes == {X + "level": "attributeDeleted"}
    before = doc(["Gauge"], level=1, alert="none", gone=0)
    after = doc(["Gauge"], level=2, alert="none", new=1)
    fired = triggers(Change("", before, after))
    assert fired.entity == {"entityUpdated"}
    assert fired.attributes == {
        X + "level": "attributeUpdated",
        X + "new": "attributeCreated",
        X + "gone": "attributeDeleted",
    }
    assert triggers(Change("", before, before)).entity == frozenset()


def test_index_finds_candidates_by_type_and_watched_attribute_per_tenant() -> None:
    index = SubscriptionIndex()
    index.add("kyoto", "s1", IndexKeys(types=frozenset({X + "Gauge"})))
    index.add("kyoto", "s2", IndexKeys(attributes=frozenset({X + "level"})))
    index.add("osaka", "s3", IndexKeys(types=frozenset({X + "Gauge"})))
    for n in range(10_000):  # unrelated subscriptions do not make lookups slower or wider
        index.add("kyoto", f"other{n}", IndexKeys(types=frozenset({X + f"T{n}"})))
    assert index.candidates("kyoto", [X + "Gauge"], []) == {"s1"}
    assert index.candidates("kyoto", [X + "Bridge"], [X + "level"]) == {"s2"}
    assert index.candidates("osaka", [X + "Gauge"], [X + "level"]) == {"s3"}
    index.add("kyoto", "s1", IndexKeys(types=frozenset({X + "Bridge"})))  # re-filed
    assert index.candidates("kyoto", [X + "Gauge"], []) == set()
    index.remove("kyoto", "s1")
    index.remove("kyoto", "never-filed")
    assert index.candidates("kyoto", [X + "Bridge"], []) == set()
    assert len(index) == 10_002


def test_the_index_says_cheaply_whether_any_subscription_could_care() -> None:
    index = SubscriptionIndex()
    assert not index.could_concern("", ["RiverGauge"])
    index.add("", "urn:s:1", IndexKeys(types=frozenset({"RiverGauge"})))
    assert index.could_concern("", ["Bridge", "RiverGauge"])
    assert not index.could_concern("", ["Bridge"])
    assert not index.could_concern("kyoto", ["RiverGauge"])
    index.add("kyoto", "urn:s:2", IndexKeys(attributes=frozenset({"level"})))
    assert index.could_concern("kyoto", ["Anything"])  # no type: any entity may notify it
    index.add("kyoto", "urn:s:3", IndexKeys())  # no selectors, no watched attributes
    index.remove("kyoto", "urn:s:2")
    assert index.could_concern("kyoto", ["Anything"])
    index.remove("kyoto", "urn:s:3")
    assert not index.could_concern("kyoto", ["Anything"])
