"""The dashboard's streams, the feed that fills them, and the transient subscriptions that
make writes reach it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
from broker.auth.grants import Grant, Grantee, Permission, Selection
from broker.auth.principal import Principal
from broker.contexts import ContextLoader
from broker.dashboard.compact import StreamView
from broker.dashboard.sink import Sinks
from broker.ngsild.entity import EntityDoc
from broker.ngsild.subscriptions.changes import Change
from broker.ngsild.subscriptions.subscription import parse_filters, parse_subscription
from broker.ngsild.terms import TermTable
from broker.notify.journal import Entry
from broker.notify.registry import Held, Registry
from broker.settings import ContextSettings

TERMS = ContextLoader(ContextSettings()).core
GAUGE = TERMS.expand("WaterObserved")
HEIGHT = TERMS.expand("height")
NAME = TERMS.expand("name")
WINDOW = 0.02


def gauge(entity_id: str, height: float, **extra: Any) -> EntityDoc:
    attrs = {HEIGHT: [{"type": "Property", "value": height}]}
    attrs |= {TERMS.expand(k): [{"type": "Property", "value": v}] for k, v in extra.items()}
    return {"id": entity_id, "type": [GAUGE], "attrs": attrs, "modifiedAt": f"t{height}"}


def view(attrs: list[str] | None = None, terms: TermTable = TERMS) -> StreamView:
    shown = None if attrs is None else {terms.expand(name): name for name in attrs}
    return StreamView(frozenset({GAUGE}), shown, terms)


async def batches(stream_take: Any) -> list[list[dict[str, Any]]]:
    await asyncio.sleep(WINDOW * 3)
    taken = await stream_take(0.01)
    return [orjson.loads(event) for event in taken or []]


async def test_changes_of_a_window_come_as_one_event_with_the_latest_state_of_each() -> None:
    sinks = Sinks(WINDOW)
    stream = sinks.open("t", view(["height"]), None, capacity=10)
    sinks.changed(Change("t", gauge("urn:a", 1), gauge("urn:a", 2, name="A")))
    sinks.changed(Change("t", gauge("urn:b", 1), gauge("urn:b", 4)))
    sinks.changed(Change("t", gauge("urn:a", 2), gauge("urn:a", 3, name="A")))
    sinks.changed(Change("other", None, gauge("urn:c", 1)))  # another tenant's
    assert await batches(stream.take) == [
        [
            {
                "id": "urn:a",
                "type": "WaterObserved",
                "modifiedAt": "t3",
                "height": {"type": "Property", "value": 3},
            },
            {
                "id": "urn:b",
                "type": "WaterObserved",
                "modifiedAt": "t4",
                "height": {"type": "Property", "value": 4},
            },
        ]
    ]


async def test_a_deletion_and_a_type_change_leave_the_page() -> None:
    sinks = Sinks(WINDOW)
    stream = sinks.open("t", view(), None, capacity=10)
    sinks.changed(Change("t", gauge("urn:a", 1), None))
    moved = {**gauge("urn:b", 1), "type": [TERMS.expand("Alert")]}
    sinks.changed(Change("t", gauge("urn:b", 1), moved))
    sinks.changed(Change("t", None, moved))  # never of a shown type: nothing
    ((gone_a, gone_b),) = await batches(stream.take)
    assert gone_a["id"] == "urn:a" and "deletedAt" in gone_a
    assert gone_b["id"] == "urn:b" and "deletedAt" in gone_b


async def test_the_latest_change_of_a_window_wins_even_a_deletion() -> None:
    sinks = Sinks(WINDOW)
    stream = sinks.open("t", view(), None, capacity=10)
    sinks.changed(Change("t", None, gauge("urn:a", 1)))
    sinks.changed(Change("t", gauge("urn:a", 1), None))
    sinks.changed(Change("t", None, {**gauge("urn:a", 1), "type": ["urn:other"]}))  # unseen
    ((gone,),) = await batches(stream.take)
    assert gone["id"] == "urn:a" and "deletedAt" in gone


async def test_a_viewer_through_grants_sees_what_the_grants_to_read_share_now() -> None:
    viewer = Principal(subject="neighbour", issuer="https://idp.example")
    selection = Selection(types=frozenset({GAUGE}), attrs=frozenset({HEIGHT}))
    grant = Grant(
        "urn:g",
        "t",
        Grantee(tenant="n"),
        frozenset({Permission.READ}),
        selection,
        "admin",
        "2026-01-01T00:00:00Z",
    )
    grants: list[Grant] = [grant]

    def readable(owner: str, who: Principal) -> list[Grant]:
        assert (owner, who) == ("t", viewer)
        return grants

    sinks = Sinks(WINDOW, readable)
    shared = sinks.open("t", view(), viewer, capacity=10)
    own = sinks.open("t", view(), None, capacity=10)
    sinks.changed(Change("t", gauge("urn:a", 1), gauge("urn:a", 2, name="A")))
    (([seen],), ([whole],)) = (await batches(shared.take), await batches(own.take))
    assert set(seen) == {"id", "type", "modifiedAt", "height"}  # the grant shares only height
    assert set(whole) == {"id", "type", "modifiedAt", "height", "name"}
    grants.clear()  # revoked
    sinks.changed(Change("t", gauge("urn:a", 2), gauge("urn:a", 3)))
    assert await batches(shared.take) == []
    assert shared.ended  # the page is let go (and refused when it comes back)
    assert len(await batches(own.take)) == 1


async def test_streams_shown_alike_are_sent_one_rendering() -> None:
    sinks = Sinks(WINDOW)
    first = sinks.open("t", view(["height"]), None, capacity=10)
    second = sinks.open("t", view(["height"]), None, capacity=10)
    sinks.changed(Change("t", None, gauge("urn:a", 1)))
    await asyncio.sleep(WINDOW * 3)
    (a,), (b,) = await first.take(0.01) or [], await second.take(0.01) or []
    assert a is b


async def test_a_stream_that_falls_behind_is_told_to_take_a_snapshot() -> None:
    sinks = Sinks(0)
    stream = sinks.open("t", view(), None, capacity=3)
    for n in range(3):
        sinks.changed(Change("t", None, gauge(f"urn:{n}", n)))
        await asyncio.sleep(0.001)
    assert len(await stream.take(1) or []) == 3
    for n in range(4):
        sinks.changed(Change("t", None, gauge(f"urn:{n}", n)))
        await asyncio.sleep(0.001)
    assert await stream.take(1) == []
    assert stream.overflowed
    stream.overflowed = False  # the page was told
    assert await stream.take(0.01) is None  # nothing new: a keep-alive


async def test_a_closed_stream_is_fed_no_more() -> None:
    sinks = Sinks(WINDOW)
    stream = sinks.open("t", view(), None, capacity=10)
    stream.close()
    assert sinks.open_streams == 0
    sinks.changed(Change("t", None, gauge("urn:a", 1)))
    assert await stream.take(WINDOW * 3) is None


def sink_subscription(registry: Registry, sub_id: str, uri: str) -> None:
    body = {
        "id": sub_id,
        "type": "Subscription",
        "entities": [{"type": "WaterObserved"}],
        "notification": {"endpoint": {"uri": "http://dashboard.invalid/"}},
    }
    sub = parse_subscription(body, TERMS, now="2026-01-01T00:00:00Z", context=None)
    endpoint = replace(sub.notification.endpoint, uri=uri)
    sub = replace(sub, notification=replace(sub.notification, endpoint=endpoint))
    registry.put("t", Held(sub, parse_filters(sub, TERMS), TERMS))


def test_a_stream_s_subscription_is_never_matched_nor_journaled() -> None:
    registry = Registry()
    sink_subscription(registry, "urn:s:sink", "sink://abc:1/")
    sink_subscription(registry, "urn:s:http", "http://r.example/")
    assert not registry.owes_record("t", ["urn:s:sink"])
    assert [sub.id for sub in registry.of_tenant("t")] == ["urn:s:http"]
    change = Change("t", gauge("urn:g", 1), gauge("urn:g", 2))
    assert registry.match(change, "2026-01-01T00:00:01Z")[1] == ["urn:s:http"]


def test_streams_do_not_count_against_the_subscription_quota() -> None:
    registry = Registry()
    sink_subscription(registry, "urn:s:sink", "sink://abc:1/")
    assert registry.has_tenant("t")  # its writes reach the engine
    assert registry.count("t") == 0
    registry.remove("t", "urn:s:sink")
    assert not registry.has_tenant("t")


def test_with_only_streams_a_write_does_no_matching_and_keeps_the_change() -> None:
    registry = Registry()
    sink_subscription(registry, "urn:s:sink", "sink://abc:1/")
    entry = Entry("t", registry)
    assert entry(gauge("urn:g", 1), gauge("urn:g", 2)) is None  # nothing saved with the write
    assert entry.subscriptions == []
    assert entry.fired is None  # not even the triggers are worked out
    assert entry.change is not None  # for the engine's feed, after the commit
