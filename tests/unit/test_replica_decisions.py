"""Who notifies what among replicas, and how another replica's change reaches a cache: the pure
decisions of ``broker.notify.replicas``, ``broker.services.following`` and
``broker.store.mongo_changes`` (docs/design.md, "Several replicas")."""

from __future__ import annotations

import orjson
from broker.notify.replicas import (
    RETRY_MAX,
    RETRY_MIN,
    orphans,
    periodic_lease,
    periodic_term,
    start_plan,
    throttle_lease,
    throttle_retry,
)
from broker.services.following import same_definition, settle, wanted
from broker.services.subscriptions import STATUS_MEMBERS
from broker.store.base import RecordChange
from broker.store.leases import Lease, replica_lease
from broker.store.mongo_changes import record_change
from hypothesis import given
from hypothesis import strategies as st

NOW = 100_000


def alive(name: str) -> Lease:
    return Lease(replica_lease(name), name, NOW + 5_000, 1)


def lapsed(name: str) -> Lease:
    return Lease(replica_lease(name), name, NOW - 1, 1)


def test_a_starting_replica_replays_its_own_records_and_claims_only_those_of_the_gone() -> None:
    leases = {replica_lease("b"): alive("b"), replica_lease("c"): lapsed("c")}
    # "owners" lists the records of other replicas; "k1" is this replica's own.
    others = {"k2": "b", "k3": "c", "k4": None, "k5": "never-announced"}
    plan = start_plan(["k1", "k2", "k3", "k4", "k5"], others, leases, NOW)
    assert plan.replay == ["k1"]
    assert plan.claim == [("k3", "c"), ("k4", None), ("k5", "never-announced")]


def test_a_record_is_orphaned_exactly_when_its_owners_lease_has_lapsed() -> None:
    lease = Lease(replica_lease("b"), "b", NOW, 3)
    assert orphans({"k": "b"}, {lease.name: lease}, NOW - 1) == []
    assert orphans({"k": "b"}, {lease.name: lease}, NOW) == [("k", "b")]  # expiry inclusive


@given(
    owners=st.dictionaries(st.text(min_size=1), st.sampled_from(["a", "b", "c", None])),
    expiries=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 2 * NOW)),
)
def test_no_record_is_both_left_alone_and_claimed(
    owners: dict[str, str | None], expiries: dict[str, int]
) -> None:
    leases = {replica_lease(n): Lease(replica_lease(n), n, at, 1) for n, at in expiries.items()}
    plan = start_plan(sorted(owners), owners, leases, NOW)
    claimed = {key for key, _ in plan.claim}
    assert plan.replay == []  # every key here belongs to another replica
    for key, owner in owners.items():
        live = owner is not None and owner in expiries and expiries[owner] > NOW
        assert (key in claimed) is not live


def test_lease_names_tell_tenants_and_kinds_apart() -> None:
    names = {
        throttle_lease("kyoto", "urn:s:1"),
        periodic_lease("kyoto", "urn:s:1"),
        throttle_lease("", "urn:s:1"),
        replica_lease("kyoto"),
    }
    assert len(names) == 4


@given(st.floats(0.001, 86_400))
def test_a_periodic_lease_outlives_the_holders_next_tick(interval: float) -> None:
    term = periodic_term(interval)
    assert term > interval + 0.5  # renewed at the next tick, with room for a slow query
    assert term <= 1.5 * interval + 1.0  # taken over within one and a half periods and a second


@given(st.floats(0.001, 86_400))
def test_a_closed_throttle_is_asked_again_within_its_period(period: float) -> None:
    retry = throttle_retry(period)
    assert RETRY_MIN <= retry <= RETRY_MAX
    assert retry <= max(period / 4, RETRY_MIN)


def test_a_status_save_is_no_new_definition() -> None:
    held = {"id": "s", "q": "level>1", "times_sent": 3, "last_success": "t1"}
    counted = {**held, "times_sent": 9, "last_success": "t2", "last_notification": "t2"}
    assert same_definition(held, counted, STATUS_MEMBERS)
    assert not same_definition(held, {**counted, "q": "level>2"}, STATUS_MEMBERS)


def test_a_replica_skips_only_what_it_saved_itself() -> None:
    mine = RecordChange("", "subscription", "s", {"id": "s"}, origin="a")
    theirs = RecordChange("", "subscription", "s", {"id": "s"}, origin="b")
    unknown = RecordChange("", "subscription", "s", None)
    assert not wanted(mine, "a")
    assert wanted(theirs, "a") and wanted(unknown, "a")


def test_a_deletion_means_what_the_store_holds_now() -> None:
    deleted = RecordChange("t", "grant", "g", None)
    assert settle(deleted, None, None) == deleted
    # Deleted and saved again since: the cache takes the record as it is now.
    again = settle(deleted, {"id": "g"}, "b")
    assert again == RecordChange("t", "grant", "g", {"id": "g"}, "b")


def _event(operation: str, full: dict[str, object] | None) -> dict[str, object]:
    return {
        "operationType": operation,
        "ns": {"db": "toshi", "coll": "records"},
        "documentKey": {"_id": {"k": "subscription", "n": "s1"}},
        "fullDocument": full,
    }


def test_a_change_event_names_the_replica_that_saved_the_record() -> None:
    tenants = {"toshi": ""}
    full = {"doc": orjson.dumps({"id": "s1"}), "by": "replica-b"}
    assert record_change(_event("update", full), tenants) == RecordChange(
        "", "subscription", "s1", {"id": "s1"}, "replica-b"
    )
    older = {"doc": orjson.dumps({"id": "s1"})}  # saved by a version that did not say
    assert record_change(_event("insert", older), tenants) == RecordChange(
        "", "subscription", "s1", {"id": "s1"}, None
    )
    assert record_change(_event("delete", None), tenants) == RecordChange(
        "", "subscription", "s1", None, None
    )
