"""Lease-bound notification work between replicas, in one process: two ``Throttle``s and two
``Replicas`` whose lease stores share one table (``LocalLeases``, the same decisions as the
database's), standing for two replicas of one installation."""

from __future__ import annotations

import asyncio
import itertools
import time

from broker.notify.journal import Entry
from broker.notify.replicas import Replicas, orphans, throttle_retry
from broker.notify.throttle import Throttle
from broker.store.leases import Lease
from broker.store.local_replication import LocalLeases, LocalReplication

PERIOD = 0.3


def replica(name: str, table: dict[str, Lease], term: float = 0.3) -> Replicas:
    replication = LocalReplication(name)
    replication.leases = LocalLeases(name, table)
    return Replicas(replication, term, margin=0.05)


async def test_two_replicas_throttling_one_subscription_send_a_period_apart() -> None:
    table: dict[str, Lease] = {}
    sent: list[tuple[float, str, list[str]]] = []
    throttles = []
    for name in ("a", "b"):
        gate = replica(name, table).throttle_gate("", "urn:s:1", PERIOD)

        def send(docs: list[dict], entries: list[Entry], name: str = name) -> None:
            sent.append((time.monotonic(), name, [doc["v"] for doc in docs]))

        throttles.append(Throttle(PERIOD, send, lambda _: None, gate, throttle_retry(PERIOD)))
    for n in range(60):  # both replicas commit changes of one entity, 20 ms apart
        throttles[n % 2].offer({"id": "e", "v": n}, Entry(""))
        await asyncio.sleep(0.02)
    await asyncio.sleep(2 * PERIOD + 0.2)
    times = [at for at, _, _ in sent]
    assert len(sent) >= 3
    assert {name for _, name, _ in sent} <= {"a", "b"}
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= PERIOD - 0.02, sent
    # Nothing is lost: each replica's newest state is sent in the end.
    last = {name: values[-1] for _, name, values in sent}
    assert last.get("a") == 58 and last.get("b") == 59  # a took the even changes


async def test_a_periodic_lease_stays_with_its_holder_and_moves_once_it_stops() -> None:
    table: dict[str, Lease] = {}
    interval = 0.1
    first = replica("a", table).periodic_gate("", "urn:s:2", interval)
    second = replica("b", table).periodic_gate("", "urn:s:2", interval)
    assert await first() and not await second()
    for _ in range(5):  # the holder renews at every tick; the other never gets it
        await asyncio.sleep(interval)
        assert await first() and not await second()
    await asyncio.sleep(1.3)  # the holder stopped: the lease lapses within its term
    assert await second() and not await first()


async def test_a_stopped_replica_leaves_its_journal_to_the_others_at_once() -> None:
    table: dict[str, Lease] = {}
    a, b = replica("a", table, term=5.0), replica("b", table, term=5.0)
    await a.start()
    await b.start()
    leases = b.replication.leases
    owned = {"k1": "a", "k2": "b"}
    assert orphans(owned, await leases.all(), await leases.now()) == []
    await a.close()
    assert orphans(owned, await leases.all(), await leases.now()) == [("k1", "a")]
    await b.close()


async def test_a_crashed_replica_is_orphaned_after_its_term() -> None:
    table: dict[str, Lease] = {}
    a, b = replica("a", table, term=0.3), replica("b", table, term=0.3)
    await a.start()
    await b.start()
    assert a._task is not None
    a._task.cancel()  # it stops renewing, as a killed process does, without giving the lease up
    leases = b.replication.leases
    assert orphans({"k": "a"}, await leases.all(), await leases.now()) == []
    await asyncio.sleep(0.45)
    assert orphans({"k": "a"}, await leases.all(), await leases.now()) == [("k", "a")]
    assert orphans({"k": "b"}, await leases.all(), await leases.now()) == []  # b renews
    await b.close()


async def test_a_single_process_store_replays_every_record_at_start() -> None:
    only = Replicas(LocalReplication(), 5.0, 0.5)
    assert await only.at_start("", "change", ["k1", "k2"]) == ["k1", "k2"]
    assert await only.orphaned("", "change") == []
