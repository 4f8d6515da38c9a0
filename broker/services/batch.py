"""Batch entity use cases (GS CIM 009 v1.8.1 §5.6.7-§5.6.10, §5.6.20), on top of ``EntityService``.

Theory of operation. Each member of a batch is one ordinary single-entity operation, so the
rules (and later the notifications) are exactly those of the single-entity API. The members run
concurrently: their writes reach the store's writer queue together, and the SQLite writer
commits everything queued in one transaction (group commit), so a batch of a hundred costs
about one commit, not a hundred. Members naming the same entity are the exception: they form a
chain that runs in array order (§5.5.11), each link starting when the previous one finished.

A member's failure is its own (``Outcome`` with the error); only a tenant that does not exist
fails the whole request, as it would for the single-entity operations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from broker.ngsild.batch import BatchResult, Entry, Outcome, Refused, not_overwritten
from broker.ngsild.entity import EntityDoc, Fragment
from broker.ngsild.errors import NgsiLdError, NonexistentTenant
from broker.services.entities import EntityService

T = TypeVar("T")
Members = Sequence[Entry[T] | Refused]
Operation = Callable[[Entry[T]], Awaitable[Outcome]]


class BatchService:
    """Create, upsert, update, merge and delete many entities of one tenant at once."""

    def __init__(self, entities: EntityService) -> None:
        self._entities = entities

    async def create(self, tenant: str, members: Members[EntityDoc]) -> BatchResult:
        """Batch Entity Creation (§5.6.7); creating in a new tenant creates the tenant."""

        async def create(entry: Entry[EntityDoc]) -> Outcome:
            await self._entities.create(tenant, entry.payload)
            return Outcome(entry.entity_id, created=True)

        return await _run(members, create)

    async def upsert(
        self, tenant: str, members: Members[EntityDoc], *, replace: bool = True
    ) -> BatchResult:
        """Batch Entity Upsert (§5.6.8): create what is missing, replace or update the rest.

        ``replace`` (the default) swaps an existing entity for the member (§5.6.18); otherwise
        the member's attributes are appended to it (§5.6.3).
        """

        ids = [member.entity_id for member in members if isinstance(member, Entry)]
        known = await self._entities.existing(tenant, ids)

        async def upsert(entry: Entry[EntityDoc]) -> Outcome:
            created = await self._entities.upsert(
                tenant, entry.payload, replace=replace, exists=entry.entity_id in known
            )
            return Outcome(entry.entity_id, created=created)

        return await _run(members, upsert)

    async def update(
        self, tenant: str, members: Members[Fragment], *, no_overwrite: bool = False
    ) -> BatchResult:
        """Batch Entity Update (§5.6.9): append each fragment to its existing entity (§5.6.3).

        With ``no_overwrite``, an entity whose existing attributes were kept is reported as an
        error naming them; its new attributes are added all the same.
        """

        async def update(entry: Entry[Fragment]) -> Outcome:
            committed = await self._entities.append(
                tenant, entry.entity_id, entry.payload, no_overwrite=no_overwrite
            )
            if committed.result.not_updated:
                error = not_overwritten(entry.entity_id, committed.result, entry.terms)
                return Outcome(entry.entity_id, error)
            return Outcome(entry.entity_id)

        return await _run(members, update)

    async def merge(self, tenant: str, members: Members[Fragment]) -> BatchResult:
        """Batch Entity Merge (§5.6.20): merge each fragment into its entity (§5.6.17)."""

        async def merge(entry: Entry[Fragment]) -> Outcome:
            await self._entities.merge(tenant, entry.entity_id, entry.payload)
            return Outcome(entry.entity_id)

        return await _run(members, merge)

    async def delete(self, tenant: str, members: Members[None]) -> BatchResult:
        """Batch Entity Delete (§5.6.10)."""

        async def delete(entry: Entry[None]) -> Outcome:
            await self._entities.delete(tenant, entry.entity_id)
            return Outcome(entry.entity_id)

        return await _run(members, delete)


async def _run(members: Members[T], operation: Operation[T]) -> BatchResult:
    """Run ``operation`` on every member: concurrently, but in order for the same entity."""
    outcomes: list[Outcome] = [Outcome(None)] * len(members)
    chains: dict[str, list[tuple[int, Entry[T]]]] = {}
    for index, member in enumerate(members):
        if isinstance(member, Refused):
            outcomes[index] = Outcome(member.entity_id, member.error)
        else:
            chains.setdefault(member.entity_id, []).append((index, member))

    async def chain(links: list[tuple[int, Entry[T]]]) -> None:
        for index, entry in links:
            try:
                outcomes[index] = await operation(entry)
            except NgsiLdError as error:
                outcomes[index] = Outcome(entry.entity_id, error)

    done = await asyncio.gather(
        *(chain(links) for links in chains.values()), return_exceptions=True
    )
    for failure in done:
        if isinstance(failure, BaseException):
            raise failure  # our own bug or a store failure, not the client's fault
    result = BatchResult.of(outcomes)
    for error in result.failures:
        if isinstance(error, NonexistentTenant):
            raise error
    return result
