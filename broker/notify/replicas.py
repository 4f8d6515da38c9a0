"""This replica among the others sharing the store: who notifies what (several replicas).

Theory of operation. Each change is notified by the replica that committed it: its journal
record names that replica as ``owner`` (``broker.store.base.Replication``), and no other replica
sees it while the owner lives. Every running replica keeps a lease on itself
(``replica:<name>``), renewed every third of ``lease_term``. At start a replica replays its own
records (it is the same replica after a restart) and leaves alone those of replicas whose lease
holds; every ``lease_term`` it looks for records whose owner's lease has lapsed (a replica that
died, or was scaled away) and claims each with an update conditional on the old owner, which
only one replica wins, then replays it as after a restart: at least once, never by two.

Work that is not tied to a change is tied to a lease: a throttled subscription sends only while
holding ``throttle:<tenant>:<id>``, taken for one period, so two replicas' notifications are a
period apart as from one broker; a periodic subscription sends only while holding
``periodic:<tenant>:<id>``, renewed at every interval, so one replica sends each period and
another takes over within ``periodic_term`` once it stops. The decisions are the pure functions
below; a store only one process opens has no ``Replicas`` at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from broker.store.base import Replication
from broker.store.leases import Held, Lease, orphaned, replica_lease

_log = logging.getLogger(__name__)
Gate = Callable[[], Awaitable[bool]]
"""Asks whether this replica may do a lease-bound piece of work now."""
RETRY_MIN: Final = 0.05
RETRY_MAX: Final = 2.0


def throttle_lease(tenant: str, subscription_id: str) -> str:
    """The lease a throttled subscription's notifications are sent under."""
    return f"throttle:{tenant}:{subscription_id}"


def periodic_lease(tenant: str, subscription_id: str) -> str:
    """The lease a periodic subscription's notifications are sent under."""
    return f"periodic:{tenant}:{subscription_id}"


def periodic_term(interval: float) -> float:
    """How long a periodic lease lasts: past the holder's next tick (renewed there), so it
    keeps the lease while it lives, and lapses within 1.5 intervals and a second once it died."""
    return 1.5 * interval + 1.0


def throttle_retry(period: float) -> float:
    """When to ask again for a throttle lease another replica holds (it lasts one period)."""
    return min(max(period / 4, RETRY_MIN), RETRY_MAX)


@dataclass(frozen=True, slots=True)
class StartPlan:
    """What a starting replica does with the journal records it finds in one tenant."""

    replay: list[str]
    """Its own (or nobody else's): replay them."""
    claim: list[tuple[str, str | None]]
    """(key, owner) of records whose owner's lease lapsed: claim, then replay those won."""


def start_plan(
    keys: list[str], others: dict[str, str | None], leases: dict[str, Lease], now: int
) -> StartPlan:
    """Sort ``keys`` by owner: ``others`` are the keys owned by other replicas (``owners``)."""
    replay = [key for key in keys if key not in others]
    return StartPlan(replay, orphans(others, leases, now))


def orphans(
    others: dict[str, str | None], leases: dict[str, Lease], now: int
) -> list[tuple[str, str | None]]:
    """The records among ``others`` (key → owner) whose owner is gone (``leases.orphaned``)."""
    return [(key, owner) for key, owner in others.items() if orphaned(owner, leases, now)]


class Replicas:
    """This replica's lease on itself, its lease gates, and the takeover of orphaned records.

    Args:
        replication: The shared store's replication.
        term: Seconds this replica's own lease lasts.
        margin: Seconds before its end a lease is no longer counted on.
    """

    def __init__(self, replication: Replication, term: float, margin: float) -> None:
        self.replication = replication
        self.term = term
        self.margin = margin
        self._held: Held | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def me(self) -> str:
        return self.replication.replica

    async def start(self) -> None:
        """Announce this replica (its lease), and keep renewing it."""
        self._held = await self.replication.leases.announce(self.term)
        self._task = asyncio.create_task(self._renew(), name="replica-lease")

    async def close(self) -> None:
        """Stop renewing and give the lease up: what this replica still owes is taken over
        at once by the others (or by itself, when it comes back under the same name)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.replication.leases.release(replica_lease(self.me))
        except Exception:  # it lapses by itself within a term
            _log.exception("giving up the lease of replica %s failed", self.me)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.term / 3)
            try:
                self._held = await self.replication.leases.announce(self.term)
            except Exception:
                _log.exception("renewing the lease of replica %s failed", self.me)

    def throttle_gate(self, tenant: str, subscription_id: str, period: float) -> Gate:
        name = throttle_lease(tenant, subscription_id)

        async def gate() -> bool:
            return await self.replication.leases.take(name, period) is not None

        return gate

    def periodic_gate(self, tenant: str, subscription_id: str, interval: float) -> Gate:
        name = periodic_lease(tenant, subscription_id)
        term = periodic_term(interval)

        async def gate() -> bool:
            return await self.replication.leases.take(name, term) is not None

        return gate

    async def at_start(self, tenant: str, kind: str, keys: list[str]) -> list[str]:
        """The keys among ``keys`` this replica replays at start (orphans claimed first)."""
        others = await self.replication.owners(tenant, kind)
        leases = self.replication.leases
        plan = start_plan(keys, others, await leases.all(), await leases.now())
        won = [key for key, owner in plan.claim if await self._claim(tenant, kind, key, owner)]
        return plan.replay + won

    async def orphaned(self, tenant: str, kind: str) -> list[dict[str, object]]:
        """Claim the records of ``kind`` in ``tenant`` that a lapsed replica left; their docs."""
        others = await self.replication.owners(tenant, kind)
        if not others:
            return []
        leases = self.replication.leases
        claimed = []
        for key, owner in orphans(others, await leases.all(), await leases.now()):
            doc = await self.replication.claim(tenant, kind, key, owner)
            if doc is not None:
                claimed.append(doc)
        return claimed

    async def _claim(self, tenant: str, kind: str, key: str, owner: str | None) -> bool:
        return await self.replication.claim(tenant, kind, key, owner) is not None
