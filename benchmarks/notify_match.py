"""Matching cost per event, measured in this process on the broker's pure matcher.

What the subscription service does for each committed change before rendering anything:
``triggers`` (what the change fired), ``SubscriptionIndex.candidates`` (which subscriptions could
care) and ``matching.notifies`` on each candidate (the exact test). The figure is the time of
those three per change, so it is a little stricter than candidates + notifies alone. It runs on
the load generator's core, without HTTP or SQLite, so it isolates the matcher from everything
``notify.py``'s phase (b) measures around it.

The subscription set is that of phase (b) (subscriptions on entity type ``OtherType``, which a
``BenchSensor`` change never concerns) plus ``matching`` subscriptions on ``BenchSensor`` watching
``seq``, so every event has exactly that many matches; the targets (PERFORMANCE.md) are for at
most 10 matches: ≤ 20 µs at 1,000 subscriptions, ≤ 50 µs at 10,000, ≤ 200 µs at 100,000.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from broker.contexts import builtin_documents
from broker.ngsild.entity import parse_entity
from broker.ngsild.patch import new_entity, partial_update
from broker.ngsild.subscriptions.changes import Change, triggers
from broker.ngsild.subscriptions.index import SubscriptionIndex
from broker.ngsild.subscriptions.matching import index_keys, notifies
from broker.ngsild.subscriptions.subscription import (
    Filters,
    Subscription,
    parse_filters,
    parse_subscription,
)
from broker.ngsild.terms import TermTable, build_term_table

from notify_load import BENCH_TYPE, bench_entity
from query import CORE

NOW = "2026-11-23T03:00:00Z"
MATCH_TARGETS_US = {1_000: 20.0, 10_000: 50.0, 100_000: 200.0}
EVENTS = 20_000


@dataclass
class SubscriptionSet:
    """Subscriptions filed as the service files them: the index and the parsed filters."""

    terms: TermTable
    index: SubscriptionIndex
    held: dict[str, tuple[Subscription, Filters]]


def subscription_set(total: int, matching: int = 10) -> SubscriptionSet:
    """``total`` subscriptions, ``matching`` of them on BenchSensor, the rest on OtherType."""
    terms = build_term_table(None, CORE, builtin_documents())
    index = SubscriptionIndex()
    held: dict[str, tuple[Subscription, Filters]] = {}
    for n in range(total):
        body = {
            "id": f"urn:ngsi-ld:Subscription:match-{n}",
            "type": "Subscription",
            "entities": [{"type": BENCH_TYPE if n < matching else "OtherType"}],
            "watchedAttributes": ["seq"],
            "notification": {
                "endpoint": {"uri": "http://127.0.0.1:9/notify"},
                "format": "keyValues",
                "attributes": ["seq"],
            },
        }
        sub = parse_subscription(body, terms, now=NOW, context=None)
        held[sub.id] = (sub, parse_filters(sub, terms))
        index.add("", sub.id, index_keys(sub))
    return SubscriptionSet(terms, index, held)


def changes(terms: TermTable, entity_type: str, count: int = 64) -> list[Change]:
    """``count`` partial updates of ``seq`` on one entity, as the entity service makes them."""
    body = {**bench_entity("urn:ngsi-ld:BenchSensor:m", 1), "type": entity_type}
    before = new_entity(parse_entity(body, terms), now=NOW)
    seq = terms.expand("seq")
    made = []
    for n in range(count):
        after, _ = partial_update(before, seq, {"value": float(n + 1)}, now=NOW, name="seq")
        made.append(Change("", before, after))
    return made


def cost_per_event_us(
    subs: SubscriptionSet, events: int, entity_type: str = BENCH_TYPE
) -> tuple[float, int]:
    """Mean µs per change of triggers + candidates + notifies, and the matches per change.

    Changes of an ``entity_type`` no subscription names show the cost of finding that there is
    nothing to do, i.e. whether it grows with the number of subscriptions.
    """
    sample = changes(subs.terms, entity_type)
    index, held = subs.index, subs.held
    matched = 0
    started = time.perf_counter_ns()
    for n in range(events):
        change = sample[n % len(sample)]
        fired = triggers(change)
        for sub_id in index.candidates("", change.types, fired.changed_attributes):
            sub, filters = held[sub_id]
            if notifies(sub, filters, change, fired, NOW):
                matched += 1
    elapsed_ns = time.perf_counter_ns() - started
    return elapsed_ns / events / 1000, matched // events


def measure_matching(cache: dict[int, SubscriptionSet], metrics: dict[str, list[float]]) -> None:
    """Time 10 matches and 0 matches per event at each size of ``MATCH_TARGETS_US``, into
    ``metrics``; the sets are built once into ``cache`` (100,000 take a few seconds)."""
    for total in MATCH_TARGETS_US:
        subs = cache.get(total) or cache.setdefault(total, subscription_set(total))
        cost_per_event_us(subs, EVENTS // 10)  # warm-up
        for entity_type, key in ((BENCH_TYPE, "10"), ("Unsubscribed", "0")):
            cost, matches = cost_per_event_us(subs, EVENTS, entity_type)
            metrics[f"b_match_{total}_{key}"].append(cost)
            print(
                f"  matcher, {total:>7,} subscriptions: {cost:6.1f} µs per event, {matches} matches"
            )
