"""Sharing grants kept: create, list, show, revoke, and find those that apply to a principal.

Grants are records of kind ``grant`` in the owner tenant's store (so they go with the tenant),
held in memory by owner while the broker runs: ``applicable`` is what every shared read asks,
and it does no I/O. The grants of one owner are replaced as a whole on every change, so
``applicable`` may be called from any thread.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Final

from broker.auth import grant_docs
from broker.auth.grants import Grant, Grantee, Permission, Selection, applicable
from broker.auth.principal import Principal
from broker.clock import Clock, timestamp, utc_now
from broker.ngsild.errors import BadRequestData, NgsiLdError, ResourceNotFound
from broker.store.base import RecordChange, Store
from broker.store.everywhere import records_everywhere

_log = logging.getLogger(__name__)
GRANT: Final = "grant"
"""Record kind of grants in the owner tenant's store."""


class GrantService:
    """The grants of every tenant."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock
        self._by_owner: defaultdict[str, dict[str, Grant]] = defaultdict(dict)
        self.revoked: list[Callable[[str], None]] = []
        """Told the owner tenant when another replica revoked one of its grants."""

    async def start(self) -> None:
        """Load every tenant's grants."""
        async for tenant, doc in records_everywhere(self._store, GRANT):
            try:
                grant = grant_docs.from_doc(doc)
            except (KeyError, TypeError, ValueError, NgsiLdError):  # one broken record
                _log.exception("grant %r of tenant %r not loaded", doc.get("id"), tenant)
                continue
            self._by_owner[grant.owner][grant.id] = grant

    kinds = (GRANT,)

    async def changed(self, change: RecordChange) -> None:
        """Another replica made or revoked a grant: hold what the store holds (replaced whole,
        as ``create`` does, since matching reads grants from the writer thread)."""
        owner = change.tenant
        grants = dict(self._by_owner.get(owner, {}))
        if change.doc is None:
            if grants.pop(change.key, None) is None:
                return
            self._by_owner[owner] = grants
            for listener in self.revoked:
                listener(owner)
            return
        try:
            grant = grant_docs.from_doc(change.doc)
        except (KeyError, TypeError, ValueError, NgsiLdError):
            _log.exception("grant %r of tenant %r not followed", change.key, owner)
            return
        grants[grant.id] = grant
        self._by_owner[owner] = grants

    def held_keys(self, kind: str) -> set[tuple[str, str]]:
        return {(owner, key) for owner, grants in self._by_owner.items() for key in grants}

    async def create(
        self,
        owner: str,
        grantee: Grantee,
        permissions: frozenset[Permission],
        selection: Selection,
        created_by: str,
    ) -> Grant:
        """A new grant of ``owner`` (parse the request with ``grant_docs.parse_request``).

        Raises:
            BadRequestData: the grantee is the owner tenant itself.
        """
        if grantee.tenant == owner:
            raise BadRequestData("a tenant cannot share its entities with itself")
        grant = Grant(
            f"urn:toshi:grant:{uuid.uuid4()}",
            owner,
            grantee,
            permissions,
            selection,
            created_by,
            timestamp(self._clock),
        )
        store = await self._store.tenant(owner, create=True)
        await store.save_record(GRANT, grant.id, grant_docs.to_doc(grant))
        # Replaced, never changed in place: notification matching reads grants from the store's
        # writer thread while requests change them on the event loop.
        self._by_owner[owner] = {**self._by_owner.get(owner, {}), grant.id: grant}
        return grant

    def get(self, owner: str, grant_id: str) -> Grant:
        """One grant of ``owner``."""
        grant = self._by_owner.get(owner, {}).get(grant_id)
        if grant is None:
            raise ResourceNotFound(f"there is no grant {grant_id!r}")
        return grant

    async def revoke(self, owner: str, grant_id: str) -> None:
        """Delete a grant of ``owner``; its grantee sees nothing more through it."""
        grant = self.get(owner, grant_id)
        kept = {key: value for key, value in self._by_owner[owner].items() if key != grant.id}
        self._by_owner[owner] = kept
        await (await self._store.tenant(owner)).delete_record(GRANT, grant.id)

    def applicable(self, owner: str, principal: Principal, permission: Permission) -> list[Grant]:
        """The grants of ``owner`` that let ``principal`` use ``permission`` (empty: none)."""
        return applicable(self._by_owner.get(owner, {}).values(), owner, principal, permission)

    def received(self, principal: Principal) -> list[Grant]:
        """Every grant ``principal`` may read through, whoever the owner (for "shared with me")."""
        return [
            grant
            for owner, grants in self._by_owner.items()
            for grant in applicable(grants.values(), owner, principal, Permission.READ)
        ]

    async def forget_tenant(self, tenant: str) -> None:
        """A tenant was deleted: forget its grants, and revoke those made to it."""
        self._by_owner.pop(tenant, None)
        for owner, grants in list(self._by_owner.items()):
            for grant in grants.values():
                if grant.grantee.tenant == tenant:
                    await self.revoke(owner, grant.id)

    def list(self, owner: str) -> list[Grant]:
        """The grants ``owner`` made, oldest first."""
        return [*self._by_owner.get(owner, {}).values()]
