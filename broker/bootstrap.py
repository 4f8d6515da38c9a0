"""Setting a platform up before anyone can log in: API keys made on the store directly."""

from __future__ import annotations

from broker.auth.apikeys import ApiKeyService
from broker.auth.roles import Role
from broker.settings import Settings
from broker.store import open_store


async def create_api_key(
    settings: Settings, tenant: str, name: str, role: Role | None, *, operator: bool = False
) -> tuple[str, str]:
    """Create an API key in the configured store; (its id, the key). A running broker loads
    keys at start, so restart it (or create further keys through ``/admin/apikeys``)."""
    store = open_store(settings)
    await store.start()
    try:
        keys = ApiKeyService(store)
        await keys.start()
        key, secret = await keys.create(tenant, name, role, "toshi keys", operator=operator)
        return key.id, secret
    finally:
        await store.close()
