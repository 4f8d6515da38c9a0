"""The in-process sink and the transient subscriptions it is fed by."""

from __future__ import annotations

from dataclasses import replace

from broker.contexts import ContextLoader
from broker.dashboard.sink import Sinks
from broker.ngsild.subscriptions.subscription import parse_filters, parse_subscription
from broker.notify.dispatcher import Delivery, Dispatcher, Outcome
from broker.notify.journal import Entry
from broker.notify.registry import Held, Registry
from broker.settings import ContextSettings


async def test_a_stream_that_falls_behind_is_told_to_take_a_snapshot() -> None:
    sinks = Sinks()
    stream = sinks.open(capacity=3)
    for n in range(3):
        assert sinks.hand_over(stream.endpoint, b"%d" % n)
    assert await stream.take(1) == [b"0", b"1", b"2"]
    for n in range(4):
        sinks.hand_over(stream.endpoint, b"%d" % n)
    assert await stream.take(1) == []
    assert stream.overflowed
    stream.overflowed = False  # the page was told
    assert await stream.take(0.01) is None  # nothing new: a keep-alive


async def test_a_closed_stream_refuses_what_comes_after() -> None:
    sinks = Sinks()
    stream = sinks.open(capacity=10)
    stream.close()
    assert not sinks.hand_over(stream.endpoint, b"late")
    assert await sinks.post(stream.endpoint, b"late", {}, 1.0) == 410


async def test_the_dispatcher_hands_over_to_a_sink_at_once() -> None:
    sinks = Sinks()
    stream = sinks.open(capacity=10)
    dispatcher = Dispatcher(senders={"sink": sinks})
    await dispatcher.start()
    outcomes: list[Outcome] = []
    delivery = Delivery(stream.endpoint, b"{}", {}, "s1", outcomes.append, tenant="t")
    assert dispatcher.submit(delivery)
    assert outcomes == [Outcome(ok=True, attempts=1, status=200)]  # no queue, no worker
    assert dispatcher.active_origins == frozenset()
    assert await stream.take(1) == [b"{}"]
    await dispatcher.close()


def test_a_change_only_a_sink_is_notified_of_is_not_journaled() -> None:
    terms = ContextLoader(ContextSettings()).core
    body = {
        "type": "Subscription",
        "entities": [{"type": "WaterObserved"}],
        "notification": {"endpoint": {"uri": "http://dashboard.invalid/"}},
    }
    registry = Registry()
    for sub_id, uri in (("urn:s:sink", "sink://abc:1/"), ("urn:s:http", "http://r.example/")):
        sub = parse_subscription(
            {**body, "id": sub_id}, terms, now="2026-01-01T00:00:00Z", context=None
        )
        endpoint = replace(sub.notification.endpoint, uri=uri)
        sub = replace(sub, notification=replace(sub.notification, endpoint=endpoint))
        registry.put("t", Held(sub, parse_filters(sub, terms), terms))
    assert not registry.owes_record("t", ["urn:s:sink"])
    assert registry.owes_record("t", ["urn:s:sink", "urn:s:http"])
    assert [sub.id for sub in registry.of_tenant("t")] == ["urn:s:http"]


def test_streams_do_not_count_against_the_subscription_quota() -> None:
    terms = ContextLoader(ContextSettings()).core
    body = {
        "type": "Subscription",
        "entities": [{"type": "WaterObserved"}],
        "notification": {"endpoint": {"uri": "http://dashboard.invalid/"}},
    }
    registry = Registry()
    sub = parse_subscription(body, terms, now="2026-01-01T00:00:00Z", context=None)
    endpoint = replace(sub.notification.endpoint, uri="sink://abc:1/")
    sub = replace(sub, notification=replace(sub.notification, endpoint=endpoint))
    registry.put("t", Held(sub, parse_filters(sub, terms), terms))
    assert registry.has_tenant("t")  # its writes are matched
    assert registry.count("t") == 0
    registry.remove("t", sub.id)
    assert not registry.has_tenant("t")


def test_with_only_streams_the_matching_leaves_the_write_transaction() -> None:
    terms = ContextLoader(ContextSettings()).core
    body = {
        "type": "Subscription",
        "entities": [{"type": "WaterObserved"}],
        "notification": {"endpoint": {"uri": "http://dashboard.invalid/"}},
    }
    registry = Registry()
    sub = parse_subscription(body, terms, now="2026-01-01T00:00:00Z", context=None)
    endpoint = replace(sub.notification.endpoint, uri="sink://abc:1/")
    sub = replace(sub, notification=replace(sub.notification, endpoint=endpoint))
    registry.put("t", Held(sub, parse_filters(sub, terms), terms))
    gauge = terms.expand("WaterObserved")
    height = terms.expand("height")
    before = {"id": "urn:g", "type": [gauge], "attrs": {height: [{"type": "Property", "value": 1}]}}
    after = {"id": "urn:g", "type": [gauge], "attrs": {height: [{"type": "Property", "value": 2}]}}
    entry = Entry("t", registry)
    assert entry(before, after) is None  # nothing saved with the write...
    assert entry.subscriptions == []  # ...and nothing matched inside it
    entry.matched()  # after the commit, on the event loop
    assert entry.subscriptions == [sub.id]
