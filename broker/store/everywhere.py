"""What every tenant keeps of one kind: how services load their records at start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from broker.ngsild.tenants import DEFAULT_TENANT
from broker.store.base import Store


async def every_tenant(store: Store) -> list[str]:
    """The default tenant and every other existing tenant."""
    return [DEFAULT_TENANT, *await store.tenants()]


async def records_everywhere(store: Store, kind: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(tenant, record) for every record of ``kind`` in every tenant, oldest first per tenant."""
    for tenant in await every_tenant(store):
        tenant_store = await store.tenant(tenant, create=tenant == DEFAULT_TENANT)
        for doc in await tenant_store.records(kind):
            yield tenant, doc
