"""Tenants: which exist, what they are called, and what each may use (issue 12).

Theory of operation. Each municipality on the platform is a tenant with its own database. With
*explicit* tenants (the default whenever authentication is on) a tenant exists once an operator
has created it; a request naming any other tenant gets ``404 NonexistentTenant`` instead of
silently creating one. Without them (development, the conformance suite) a write to a new
tenant creates it, as before, and a read from a tenant never written still gets 404.

Registrations are records of kind ``tenant`` in the default tenant's store, held in memory
while the broker runs: a display name in any languages (``{"ja": "高松市", "en": "Takamatsu"}``),
quotas, and who created it when. Quotas fall back to the platform's defaults
(``TOSHI_TENANTS__*``): entities and subscriptions are counted when one is created, requests per
second by a token bucket per tenant with bursts of two seconds' worth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from broker.clock import Clock, timestamp, utc_now
from broker.ngsild.errors import AlreadyExists, BadRequestData, NonexistentTenant
from broker.ngsild.tenants import DEFAULT_TENANT, tenant_from_header
from broker.settings import TenantSettings
from broker.store.base import RecordChange, Store

_log = logging.getLogger(__name__)
KIND: Final = "tenant"
"""Record kind of tenant registrations (in the default tenant's store)."""
_BURST_SECONDS: Final = 2.0


@dataclass(frozen=True, slots=True)
class Quotas:
    """Limits of one tenant; 0 means no limit."""

    max_entities: int = 0
    max_subscriptions: int = 0
    requests_per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """Whether a tenant keeps attribute history (Temporal API) and for how long.

    Attributes:
        enabled: record history; ``None`` follows the platform default.
        retention_days: drop instances recorded longer ago; 0 follows the platform default.
    """

    enabled: bool | None = None
    retention_days: float = 0.0


@dataclass(frozen=True, slots=True)
class Tenant:
    """A registered tenant."""

    name: str
    display_name: dict[str, str]
    quotas: Quotas
    created_by: str | None
    created_at: str
    history: HistoryPolicy = HistoryPolicy()

    def as_json(self) -> dict[str, Any]:
        return {
            "history": {
                "enabled": self.history.enabled,
                "retentionDays": self.history.retention_days,
            },
            "name": self.name,
            "displayName": self.display_name,
            "quotas": {
                "maxEntities": self.quotas.max_entities,
                "maxSubscriptions": self.quotas.max_subscriptions,
                "requestsPerSecond": self.quotas.requests_per_second,
            },
            "createdBy": self.created_by,
            "createdAt": self.created_at,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Tenant:
        quotas = doc.get("quotas") or {}
        return cls(
            doc["name"],
            dict(doc.get("displayName") or {}),
            Quotas(
                int(quotas.get("maxEntities", 0)),
                int(quotas.get("maxSubscriptions", 0)),
                float(quotas.get("requestsPerSecond", 0.0)),
            ),
            doc.get("createdBy"),
            doc["createdAt"],
            _history(doc.get("history") or {}, HistoryPolicy()),
        )


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float = field(default_factory=time.monotonic)


class TenantService:
    """Create, list, show, change and delete tenants; their quotas and request rates."""

    def __init__(
        self, store: Store, settings: TenantSettings, *, explicit: bool, clock: Clock = utc_now
    ) -> None:
        self._store = store
        self._defaults = Quotas(
            settings.max_entities, settings.max_subscriptions, settings.requests_per_second
        )
        self.explicit = explicit
        self._clock = clock
        self._known: dict[str, Tenant] = {}
        self._buckets: dict[str, _Bucket] = {}
        self.monotonic: Callable[[], float] = time.monotonic

    async def start(self) -> None:
        default = await self._store.tenant(DEFAULT_TENANT, create=True)
        for doc in await default.records(KIND):
            tenant = Tenant.from_json(doc)
            self._known[tenant.name] = tenant

    kinds = (KIND,)

    async def changed(self, change: RecordChange) -> None:
        """Another replica created, changed or deleted a tenant (records of the default
        tenant, by name): know what the store now holds."""
        if change.doc is None:
            self._known.pop(change.key, None)
            return
        try:
            self._known[change.key] = Tenant.from_json(change.doc)
        except Exception:  # one broken record must not stop the following
            _log.exception("tenant record %r not followed", change.key)

    def held_keys(self, kind: str) -> set[tuple[str, str]]:
        return {(DEFAULT_TENANT, name) for name in self._known}

    def require(self, name: str) -> None:
        """Raise ``NonexistentTenant`` when tenants are explicit and ``name`` was not created."""
        if self.explicit and name != DEFAULT_TENANT and name not in self._known:
            raise NonexistentTenant(f"tenant {name!r} does not exist")

    def list(self) -> list[Tenant]:
        return sorted(self._known.values(), key=lambda t: t.name)

    def get(self, name: str) -> Tenant:
        found = self._known.get(name)
        if found is None:
            raise NonexistentTenant(f"tenant {name!r} does not exist")
        return found

    async def create(self, body: Any, created_by: str | None) -> Tenant:
        """Register the tenant ``body`` describes (``name``, ``displayName``, ``quotas``)."""
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise BadRequestData("a tenant needs a 'name' (1-63 letters, digits, '-', '_')")
        name = tenant_from_header(body["name"])
        if name == DEFAULT_TENANT:
            raise BadRequestData("the default tenant always exists")
        if name in self._known:
            raise AlreadyExists(f"tenant {name!r} already exists")
        tenant = Tenant(
            name,
            _display_name(body.get("displayName", {})),
            _quotas(body.get("quotas", {}), Quotas()),
            created_by,
            timestamp(self._clock),
            _history(body.get("history", {}), HistoryPolicy()),
        )
        await self._save(tenant)
        await self._store.tenant(name, create=True)
        return tenant

    async def update(self, name: str, body: Any) -> Tenant:
        """Change a tenant's ``displayName`` or ``quotas`` (merge-patch semantics)."""
        tenant = self.get(name)
        if not isinstance(body, dict):
            raise BadRequestData("a tenant update is a JSON object")
        if "displayName" in body:
            tenant = replace(tenant, display_name=_display_name(body["displayName"]))
        if "quotas" in body:
            tenant = replace(tenant, quotas=_quotas(body["quotas"], tenant.quotas))
        if "history" in body:
            tenant = replace(tenant, history=_history(body["history"], tenant.history))
        await self._save(tenant)
        return tenant

    async def forget(self, name: str) -> None:
        """Drop the registration of ``name`` (its data is dropped by the caller)."""
        self.get(name)
        default = await self._store.tenant(DEFAULT_TENANT)
        await default.delete_record(KIND, name)
        self._known.pop(name, None)
        self._buckets.pop(name, None)

    def quotas(self, name: str) -> Quotas:
        """The tenant's quotas: its own where set, else the platform's defaults."""
        own = self._known[name].quotas if name in self._known else Quotas()
        return Quotas(
            own.max_entities or self._defaults.max_entities,
            own.max_subscriptions or self._defaults.max_subscriptions,
            own.requests_per_second or self._defaults.requests_per_second,
        )

    def history(self, name: str) -> HistoryPolicy:
        """The tenant's own history policy (defaults are the temporal service's to apply)."""
        return self._known[name].history if name in self._known else HistoryPolicy()

    def admit(self, name: str) -> float | None:
        """Take one request from the tenant's budget; seconds to wait when it is spent."""
        rate = self.quotas(name).requests_per_second
        if not rate:
            return None
        now = self.monotonic()
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(rate * _BURST_SECONDS, now)
        bucket.tokens = min(rate * _BURST_SECONDS, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / rate

    async def _save(self, tenant: Tenant) -> None:
        default = await self._store.tenant(DEFAULT_TENANT, create=True)
        await default.save_record(KIND, tenant.name, tenant.as_json())
        self._known[tenant.name] = tenant


def _display_name(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        return {"@none": value}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BadRequestData("displayName is a text or a map of language tag to text")
    return dict(value)


def _quotas(value: Any, current: Quotas) -> Quotas:
    if not isinstance(value, dict):
        raise BadRequestData(
            "quotas is an object: maxEntities, maxSubscriptions, requestsPerSecond"
        )
    try:
        quotas = Quotas(
            int(value.get("maxEntities", current.max_entities)),
            int(value.get("maxSubscriptions", current.max_subscriptions)),
            float(value.get("requestsPerSecond", current.requests_per_second)),
        )
    except (TypeError, ValueError):
        raise BadRequestData("quotas must be numbers") from None
    if min(quotas.max_entities, quotas.max_subscriptions, quotas.requests_per_second) < 0:
        raise BadRequestData("quotas must not be negative (0 means no limit)")
    return quotas


def _history(value: Any, current: HistoryPolicy) -> HistoryPolicy:
    """A ``history`` member: ``{"enabled": bool|null, "retentionDays": number}``."""
    if not isinstance(value, dict):
        raise BadRequestData("history is an object: enabled, retentionDays")
    enabled = value.get("enabled", current.enabled)
    days = value.get("retentionDays", current.retention_days)
    if enabled is not None and not isinstance(enabled, bool):
        raise BadRequestData("history.enabled is true, false or null")
    if isinstance(days, bool) or not isinstance(days, int | float) or days < 0:
        raise BadRequestData("history.retentionDays is a number of days, 0 for the default")
    return HistoryPolicy(enabled, float(days))
