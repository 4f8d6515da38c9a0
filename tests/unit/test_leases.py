"""Leases between replicas (``broker.store.leases``): the pure decisions, and mutual exclusion
under message delays and clocks that drift, simulated without a database."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from broker.store.leases import (
    Held,
    Lease,
    blank_update,
    claim_filter,
    may_take,
    orphaned,
    released,
    replica_lease,
    take_filter,
    take_update,
    taken,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

TTL = 10_000  # ms
MARGIN = 0.5  # s


def test_a_free_lease_is_taken_and_renewed_by_its_holder_only() -> None:
    first = taken(None, "throttle:s1", "a", now=1_000, ttl=TTL)
    assert first == Lease("throttle:s1", "a", 11_000, 1)
    assert not may_take(first, "b", now=10_999)
    renewed = taken(first, "throttle:s1", "a", now=5_000, ttl=TTL)
    assert renewed.expires == 15_000 and renewed.token == 1  # same holder, same term
    with pytest.raises(ValueError, match="held by a"):
        taken(renewed, "throttle:s1", "b", now=14_000, ttl=TTL)


def test_an_expired_lease_changes_hands_with_a_new_fencing_token() -> None:
    lease = taken(None, "periodic:s2", "a", now=0, ttl=TTL)
    assert may_take(lease, "b", now=TTL)  # expiry is inclusive
    moved = taken(lease, "periodic:s2", "b", now=TTL, ttl=TTL)
    assert moved.holder == "b" and moved.token == 2
    # Taken again by its old holder after it expired: a new term, a new token.
    back = taken(moved, "periodic:s2", "b", now=3 * TTL, ttl=TTL)
    assert back.token == 3


def test_release_expires_only_the_holders_lease() -> None:
    lease = taken(None, "x", "a", now=0, ttl=TTL)
    assert released(lease, "b", now=10) == lease
    gone = released(lease, "a", now=10)
    assert gone.expires == 10 and may_take(gone, "b", now=10)


def test_a_replica_believes_in_its_lease_for_less_than_it_is_granted() -> None:
    held = Held(token=4, sent_at=100.0, ttl=10.0)
    assert held.holds(109.4, MARGIN) and not held.holds(109.5, MARGIN)
    assert not held.renew_due(103.0) and held.renew_due(103.4)


def test_journal_entries_of_a_replica_whose_lease_expired_are_orphaned() -> None:
    alive = taken(None, replica_lease("r1"), "r1", now=0, ttl=TTL)
    leases = {alive.name: alive}
    assert not orphaned("r1", leases, now=TTL - 1)
    assert orphaned("r1", leases, now=TTL)
    assert orphaned("r2", leases, now=0)  # never announced itself
    assert orphaned(None, leases, now=0)  # written before replicas were told apart
    assert claim_filter({"k": "change", "n": "7"}, "r1") == {
        "_id": {"k": "change", "n": "7"},
        "owner": "r1",
    }


def test_the_database_update_encodes_the_same_decision() -> None:
    # The atomic update's condition is may_take (holder, or expired by the database's clock);
    # its token expression keeps the token only for a live renewal, as taken() does.
    condition = take_filter("x", "a")
    assert condition["_id"] == "x"
    assert condition["$expr"] == {
        "$or": [{"$eq": ["$holder", "a"]}, {"$lte": ["$expires", "$$NOW"]}]
    }
    (stage,) = take_update("a", TTL)
    token = stage["$set"]["token"]["$cond"]
    assert token[0] == {"$and": [{"$eq": ["$holder", "a"]}, {"$gt": ["$expires", "$$NOW"]}]}
    assert token[1] == "$token" and stage["$set"]["expires"] == {"$add": ["$$NOW", TTL]}


@dataclass
class Replica:
    name: str
    offset: float  # s
    rate: float  # local seconds per database second
    beliefs: list[tuple[float, float]] = field(default_factory=list)

    def local(self, now_ms: float) -> float:
        return self.offset + now_ms / 1000 * self.rate

    def database_time(self, local: float) -> float:
        return (local - self.offset) / self.rate * 1000


attempts = st.lists(
    st.tuples(
        st.integers(0, 2),  # which replica
        st.integers(0, 60).map(lambda n: n * 500),  # when it sends (database ms)
        st.sampled_from([0, 100, 1_000, 3_000]),  # delay to the database
        st.sampled_from([0, 100, 1_000, 3_000]),  # delay of the answer
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@example(events=[(0, 0, 0, 3_000), (1, TTL, 0, 0)], clocks=[(0.0, 1.0)] * 3)  # a slow answer
@given(
    events=attempts,
    clocks=st.lists(
        st.tuples(st.floats(-1e5, 1e5), st.floats(1 - 1e-4, 1 + 1e-4)), min_size=3, max_size=3
    ),
)
def test_no_two_replicas_ever_believe_they_hold_the_lease_at_once(
    events: list[tuple[int, int, int, int]], clocks: list[tuple[float, float]]
) -> None:
    replicas = [Replica(f"r{i}", offset, rate) for i, (offset, rate) in enumerate(clocks)]
    lease: Lease | None = None
    # The database applies requests in arrival order; the replica acts as the holder from the
    # moment the answer reaches it until its Held says so.
    for arrival, sent, back, index in sorted(
        (sent + there, sent, back, index) for index, sent, there, back in events
    ):
        replica = replicas[index]
        if not may_take(lease, replica.name, arrival):
            continue
        lease = taken(lease, "job", replica.name, arrival, TTL)
        held = Held(lease.token, replica.local(sent), TTL / 1000)
        start = replica.database_time(replica.local(arrival + back))
        end = replica.database_time(held.valid_until(MARGIN))
        if end > start:
            replica.beliefs.append((start, end))
    for replica in replicas:
        for other in replicas:
            if other is replica:
                continue
            for start, end in replica.beliefs:
                for other_start, other_end in other.beliefs:
                    assert end <= other_start or other_end <= start, (replica.name, other.name)


def test_a_lease_record_is_created_expired_without_an_upsert_of_the_condition() -> None:
    # MongoDB refuses $expr in an upsert's filter (error 224): the record is created by a plain
    # $setOnInsert first, already expired and without a holder, so anyone may then take it.
    blank = blank_update()["$setOnInsert"]
    assert blank["holder"] is None and blank["token"] == 0
    assert blank["expires"].timestamp() == 0
    assert "$expr" in take_filter("x", "a")
