"""Leases and ownership between the replicas of one installation (pure decisions, no I/O).

Theory of operation. Some work must be done by one replica at a time: sending a throttled
subscription's notification when its period ends, a periodic (``timeInterval``) subscription's
notification, replaying the journal entries of a replica that died. A *lease* names such a job;
the database holds one record per lease, ``{_id: name, holder, expires, token}``, and a replica
takes or renews it with one atomic conditional update (``mongo_leases``). This module decides
what that update may do and what a replica may conclude from it:

* **Taking.** A lease can be taken by its holder (a renewal) or by anyone once it has expired.
  Expiry is judged by the *database's* clock (``$$NOW``), so replicas' clocks need not agree.
* **Fencing.** ``token`` grows every time the lease changes hands (or its holder takes it again
  after it expired), so work stamped with a token can be refused once a newer one exists.
* **Knowing.** A replica never reads the database's clock. It counts its lease from the moment
  it *sent* the request, on its own monotonic clock, minus a safety margin: the database granted
  the lease no earlier than that, so the replica believes it holds the lease for less time than
  it does, as long as clock rates differ by less than the margin allows (a few ppm in practice).
* **Ownership of journal entries.** Each replica also keeps a lease on itself
  (``replica:<id>``) while it runs. A journal entry names the replica that committed it; it is
  *orphaned* when that replica's lease has expired, and then exactly one other replica claims it
  by an update conditional on the old owner, and replays it (at-least-once, as after a restart).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

REPLICA_PREFIX: Final = "replica:"
_EPOCH: Final = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as the database holds it (``expires`` in the database's milliseconds)."""

    name: str
    holder: str
    expires: int
    token: int


def may_take(current: Lease | None, me: str, now: int) -> bool:
    """Whether ``me`` may take or renew the lease at database time ``now``."""
    return current is None or current.holder == me or current.expires <= now


def taken(current: Lease | None, name: str, me: str, now: int, ttl: int) -> Lease:
    """The lease after ``me`` took it at ``now`` for ``ttl`` ms (only when ``may_take``)."""
    if not may_take(current, me, now):
        raise ValueError(f"lease {name} is held by {current.holder if current else '?'}")
    if current is None:
        return Lease(name, me, now + ttl, 1)
    renewal = current.holder == me and current.expires > now
    return Lease(name, me, now + ttl, current.token if renewal else current.token + 1)


def released(current: Lease, me: str, now: int) -> Lease:
    """The lease after ``me`` gave it up (expired at once; unchanged if not ``me``'s)."""
    if current.holder != me:
        return current
    return Lease(current.name, current.holder, min(current.expires, now), current.token)


@dataclass(frozen=True, slots=True)
class Held:
    """What a replica knows of a lease it was granted, on its own monotonic clock (seconds)."""

    token: int
    sent_at: float
    ttl: float

    def valid_until(self, margin: float) -> float:
        """Until when the replica may act as the holder: the grant cannot be older than the
        request, and ``margin`` absorbs clock-rate differences and the replica's pauses."""
        return self.sent_at + self.ttl - margin

    def holds(self, now: float, margin: float) -> bool:
        """Whether the replica may still act as the holder at local time ``now``."""
        return now < self.valid_until(margin)

    def renew_due(self, now: float) -> bool:
        """Whether to renew now: once a third of the term has passed, so that two renewals
        can fail before the lease is lost."""
        return now >= self.sent_at + self.ttl / 3


def replica_lease(replica: str) -> str:
    """The name of the lease a running replica keeps on itself."""
    return REPLICA_PREFIX + replica


def orphaned(owner: str | None, leases: dict[str, Lease], now: int) -> bool:
    """Whether a journal entry committed by ``owner`` needs another replica to take it over.

    Entries without an owner were written before replicas were told apart (or by a single
    broker) and belong to whoever starts; an owner without a lease never announced itself."""
    if owner is None:
        return True
    lease = leases.get(replica_lease(owner))
    return lease is None or lease.expires <= now


def take_filter(name: str, me: str) -> dict[str, Any]:
    """The condition of the atomic update that takes lease ``name`` (``may_take``, with the
    database's clock as ``now``)."""
    return {
        "_id": name,
        "$expr": {"$or": [{"$eq": ["$holder", me]}, {"$lte": ["$expires", "$$NOW"]}]},
    }


def blank_update() -> dict[str, Any]:
    """Creates a lease record that has expired and never had a holder, if there is none.

    Taking is a conditional update with ``$expr`` (the database's clock), which MongoDB
    refuses in an upsert (error 224), so a lease's record is created first with this plain
    ``$setOnInsert`` upsert and then taken like any other."""
    return {"$setOnInsert": {"holder": None, "expires": _EPOCH, "token": 0}}


def take_update(me: str, ttl: int) -> list[dict[str, Any]]:
    """The pipeline update that takes the lease (``taken``): every expression reads the record
    as it was, so ``token`` compares the old holder and expiry."""
    renewal = {"$and": [{"$eq": ["$holder", me]}, {"$gt": ["$expires", "$$NOW"]}]}
    return [
        {
            "$set": {
                "token": {"$cond": [renewal, "$token", {"$add": [{"$ifNull": ["$token", 0]}, 1]}]},
                "holder": me,
                "expires": {"$add": ["$$NOW", ttl]},
            }
        }
    ]


def release_update() -> list[dict[str, Any]]:
    """The pipeline update that gives a lease up (applied with ``{_id, holder: me}``)."""
    return [{"$set": {"expires": {"$min": ["$expires", "$$NOW"]}}}]


def claim_filter(key: dict[str, Any], owner: str | None) -> dict[str, Any]:
    """The condition under which a journal entry still belongs to ``owner``: of the replicas
    that try to claim it, the first update wins and the others match nothing."""
    return {"_id": key, "owner": owner}
