"""Replicas of one installation sharing one MongoDB (docs/design.md, "Several replicas").

Run by ``.github/workflows/mongodb.yml`` against a replica set; skipped here (no server).
"""

from __future__ import annotations

import asyncio
from typing import Any

from broker.ngsild.query import EntityQuery
from broker.store.leases import orphaned
from broker.store.mongo_changes import RecordChange
from broker.store.mongo_leases import claim

from tests.contract.test_store_contract import D, eid, entity, ids, set_value
from tests.replicas.conftest import Replicas


async def started(replicas: Replicas, count: int) -> list[Any]:
    stores = [replicas() for _ in range(count)]
    for store in stores:
        await store.start()
    return stores


async def test_what_one_replica_writes_the_others_read_at_once(replicas: Replicas) -> None:
    first, second = await started(replicas, 2)
    a, b = await first.tenant(""), await second.tenant("")
    await a.create(entity("x", speed=1))
    assert (await b.get(eid("x")))["attrs"][D + "speed"][0]["value"] == 1
    await b.update(eid("x"), set_value(D + "speed", 2))
    assert (await a.get(eid("x")))["attrs"][D + "speed"][0]["value"] == 2
    await second.tenant("kyoto", create=True)
    assert await first.tenants() == ["kyoto"]  # a tenant created elsewhere is found


async def test_concurrent_updates_from_two_replicas_lose_nothing(replicas: Replicas) -> None:
    first, second = await started(replicas, 2)
    a, b = await first.tenant(""), await second.tenant("")
    await a.create(entity("n", count=0))

    def bump(doc: dict[str, Any]) -> tuple[dict[str, Any], None]:
        value = doc["attrs"][D + "count"][0]["value"]
        return set_value(D + "count", value + 1)(doc)[0], None

    await asyncio.gather(*(store.update(eid("n"), bump) for store in [a, b] * 20))
    assert (await a.get(eid("n")))["attrs"][D + "count"][0]["value"] == 40


async def test_entities_created_in_turn_on_two_replicas_page_in_that_order(
    replicas: Replicas,
) -> None:
    first, second = await started(replicas, 2)
    a, b = await first.tenant(""), await second.tenant("")
    names = [f"e{n:02d}" for n in range(10)]
    for n, name in enumerate(names):
        await (a if n % 2 else b).create(entity(name))
    page = await b.query(EntityQuery(limit=20))
    assert ids(page) == [eid(name) for name in names]


async def test_only_one_replica_holds_a_lease_until_it_expires(replicas: Replicas) -> None:
    first, second = await started(replicas, 2)
    one, two = first.leases("r1"), second.leases("r2")
    results = await asyncio.gather(one.take("throttle:s", 2.0), two.take("throttle:s", 2.0))
    winners = [held for held in results if held is not None]
    assert len(winners) == 1
    loser = two if results[0] is not None else one
    assert await loser.take("throttle:s", 2.0) is None
    await asyncio.sleep(2.5)
    taken = await loser.take("throttle:s", 2.0)
    assert taken is not None and taken.token == winners[0].token + 1


async def test_an_orphaned_journal_entry_is_claimed_by_exactly_one_replica(
    replicas: Replicas,
) -> None:
    first, second = await started(replicas, 2)
    await first.leases("dead").announce(1.0)
    records = (await first.tenant("")).database["records"]
    key = {"k": "change", "n": "1"}
    await records.insert_one({"_id": key, "doc": b"{}", "seq": 1, "owner": "dead"})
    await asyncio.sleep(1.5)
    survivor = second.leases("r2")
    assert orphaned("dead", await survivor.all(), await survivor.now())
    claims = await asyncio.gather(
        claim(records, key, "dead", "r2"), claim(records, key, "dead", "r3")
    )
    assert sorted(claims) == [False, True]


async def test_a_replica_sees_the_records_another_one_saves_and_deletes(
    replicas: Replicas,
) -> None:
    first, second = await started(replicas, 2)
    changes = second.record_changes(["subscription"])
    seen: list[Any] = []

    async def follow() -> None:
        async for change, _token in changes:
            seen.append(change)
            if len(seen) == 2:
                return

    follower = asyncio.create_task(follow())
    await asyncio.sleep(1.0)  # the stream is open before the changes are made
    tenant = await first.tenant("kyoto", create=True)
    await tenant.save_record("subscription", "s1", {"id": "s1"})
    await tenant.delete_record("subscription", "s1")
    await asyncio.wait_for(follower, 30)
    assert seen == [
        RecordChange("kyoto", "subscription", "s1", {"id": "s1"}, origin=first.replica),
        RecordChange("kyoto", "subscription", "s1", None),
    ]
