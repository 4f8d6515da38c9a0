"""EntityMaps (v1.9 §5.14): which source holds each entity a client is paging through.

A broker without registered context sources holds every entity itself, so each map entry is
``["@none"]`` (the local source). Maps are short-lived by design (they carry ``expiresAt``); they
are kept in memory per tenant, bounded in number, and do not survive a restart — a client that
presents an unknown or expired map simply gets a new one, as §5.7.1.4 prescribes.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broker.clock import Clock, utc_now
from broker.ngsild.names import format_timestamp

LOCAL_SOURCE = "@none"


@dataclass(slots=True)
class EntityMap:
    """One map: its id, when it expires, and entity id → sources."""

    id: str
    expires_at: datetime
    entries: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """The EntityMap data type (§5.2.39)."""
        return {
            "id": self.id,
            "type": "EntityMap",
            "expiresAt": format_timestamp(self.expires_at),
            "entityMap": dict(self.entries),
        }


class EntityMapService:
    """Create, find and drop EntityMaps, per tenant."""

    def __init__(
        self,
        ttl: timedelta = timedelta(hours=1),
        max_maps: int = 10_000,
        clock: Clock = utc_now,
        max_ttl: timedelta = timedelta(days=1),
    ) -> None:
        self._ttl = ttl
        self._max_ttl = max_ttl
        """The longest a map lives, whatever a client asks for (v1.9 Table 6.4.3.2-1: the
        broker sets the actual expiry, "possibly overriding the requested duration")."""
        self._max = max_maps
        self._clock = clock
        self._maps: OrderedDict[tuple[str, str], EntityMap] = OrderedDict()

    def get(self, tenant: str, map_id: str) -> EntityMap | None:
        """The live map ``map_id`` of ``tenant``, or ``None`` if unknown or expired."""
        found = self._maps.get((tenant, map_id))
        if found is not None and found.expires_at <= self._clock():
            del self._maps[(tenant, map_id)]
            return None
        return found

    def record(self, tenant: str, map_id: str | None, entity_ids: list[str]) -> EntityMap:
        """Add ``entity_ids`` to the live map ``map_id``, or to a new map if it is not live."""
        found = None if map_id is None else self.get(tenant, map_id)
        if found is None:
            found = self._create(tenant)
        for entity_id in entity_ids:
            found.entries.setdefault(entity_id, [LOCAL_SOURCE])
        return found

    def create(
        self, tenant: str, entity_ids: list[str], lifetime: timedelta | None = None
    ) -> EntityMap:
        """A new map of ``entity_ids``, living ``lifetime`` (bounded), else the default."""
        created = self._create(tenant, lifetime)
        for entity_id in entity_ids:
            created.entries[entity_id] = [LOCAL_SOURCE]
        return created

    def expire_at(self, tenant: str, map_id: str, when: datetime) -> bool:
        """Update EntityMap (§5.14.2): move its expiry to ``when`` (bounded); whether it was
        live. A time in the past ends it."""
        found = self.get(tenant, map_id)
        if found is None:
            return False
        found.expires_at = min(when, self._clock() + self._max_ttl)
        return True

    def prune(self, tenant: str, map_id: str, gone: set[str]) -> None:
        """Drop entities that no longer fit the map's query (§5.5.9.3)."""
        found = self.get(tenant, map_id)
        if found is not None:
            for entity_id in gone:
                found.entries.pop(entity_id, None)

    def delete(self, tenant: str, map_id: str) -> bool:
        """Drop a map; whether it existed."""
        return self._maps.pop((tenant, map_id), None) is not None

    def _create(self, tenant: str, lifetime: timedelta | None = None) -> EntityMap:
        expires = self._clock() + min(lifetime or self._ttl, self._max_ttl)
        created = EntityMap(f"urn:ngsi-ld:entitymap:{uuid.uuid4()}", expires)
        self._maps[(tenant, created.id)] = created
        while len(self._maps) > self._max:
            self._maps.popitem(last=False)  # the oldest map goes first
        return created
