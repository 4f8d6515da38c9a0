"""Everything ``broker.auth`` offers the app, built from ``AuthSettings`` in one call.

``create_app`` builds an ``AuthServices`` with ``build_auth(settings.auth, store)``, awaits
``start()`` in its lifespan after the store has started (it loads API keys, role bindings and
grants) and ``close()`` before the store closes.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from broker.auth.apikeys import ApiKeyService
from broker.auth.authenticator import Authenticator
from broker.auth.bindings import RoleBindings
from broker.auth.claims import RoleRule
from broker.auth.egress import EgressGuard
from broker.auth.grant_service import GrantService
from broker.auth.grants import Grant, Permission
from broker.auth.jwks import KeySource, RemoteKeys, StaticKeys
from broker.auth.principal import Principal
from broker.auth.tokens import TokenVerifier, TrustedIssuer
from broker.clock import Clock, utc_now
from broker.ngsild.tenants import tenant_from_header
from broker.settings import AuthSettings, IssuerSettings
from broker.store.base import Store


@dataclass(slots=True)
class AuthServices:
    """The authentication, authorization and egress services of one broker.

    Attributes:
        enabled: whether requests must authenticate (``TOSHI_AUTH__ENABLED``).
        authenticator: ``Authorization`` header → ``Principal``.
        tokens: the JWT verifier, None when no issuer is trusted.
        api_keys: API keys, None when they are switched off.
        bindings: roles bound by tenant admins.
        grants: sharing grants.
        egress: where notifications may be sent (applies whether or not ``enabled``).
    """

    enabled: bool
    authenticator: Authenticator
    tokens: TokenVerifier | None
    api_keys: ApiKeyService | None
    bindings: RoleBindings
    grants: GrantService
    egress: EgressGuard
    http: httpx.AsyncClient

    async def start(self) -> None:
        """Load API keys, role bindings and grants from the (started) store."""
        if self.api_keys is not None:
            await self.api_keys.start()
        await self.bindings.start()
        await self.grants.start()

    async def drop_tenant(self, tenant: str) -> None:
        """Forget a deleted tenant's keys, role bindings and grants, and the grants others
        made to it (a new tenant of the same name inherits nothing)."""
        if self.api_keys is not None:
            self.api_keys.forget_tenant(tenant)
        self.bindings.forget_tenant(tenant)
        await self.grants.forget_tenant(tenant)

    def egress_refusal(self, ip: str, host: str, tenant: str) -> str | None:
        """Why a notification may not go to ``ip`` (reached for ``host``), or None."""
        refusal = self.egress.check_address(ip, host, tenant)
        return None if refusal is None else refusal.message

    def subscribable(self, owner: str, grantee: Principal) -> list[Grant]:
        """The grants of ``owner`` that let ``grantee`` subscribe there now."""
        return self.grants.applicable(owner, grantee, Permission.SUBSCRIBE)

    def readable(self, owner: str, grantee: Principal) -> list[Grant]:
        """The grants of ``owner`` that let ``grantee`` read there now."""
        return self.grants.applicable(owner, grantee, Permission.READ)

    async def close(self) -> None:
        """Release the HTTP client that fetches issuers' keys."""
        await self.http.aclose()


def build_auth(settings: AuthSettings, store: Store, clock: Clock = utc_now) -> AuthServices:
    """The services ``settings`` describe, over ``store`` (not started yet).

    Raises:
        ValueError: an egress rule is not valid.
        OSError: a configured keys file cannot be read.
    """
    http = httpx.AsyncClient(timeout=settings.jwks_timeout, follow_redirects=False)
    issuers = [(_trusted(item), _keys(item, settings, http)) for item in settings.issuers]
    tokens = (
        TokenVerifier(issuers, leeway=settings.leeway, cache_size=settings.token_cache_size)
        if issuers
        else None
    )
    api_keys = ApiKeyService(store, clock) if settings.api_keys else None
    bindings = RoleBindings(store, clock)
    return AuthServices(
        enabled=settings.enabled,
        authenticator=Authenticator(tokens, api_keys, bindings),
        tokens=tokens,
        api_keys=api_keys,
        bindings=bindings,
        grants=GrantService(store, clock),
        egress=EgressGuard.from_settings(settings.egress),
        http=http,
    )


def _trusted(item: IssuerSettings) -> TrustedIssuer:
    default = None if item.default_tenant is None else tenant_from_header(item.default_tenant)
    return TrustedIssuer(
        issuer=item.issuer,
        audiences=frozenset(item.audiences),
        algorithms=tuple(item.algorithms),
        roles=RoleRule(item.roles_claim, item.roles_format, default),
    )


def _keys(item: IssuerSettings, settings: AuthSettings, http: httpx.AsyncClient) -> KeySource:
    if item.keys_file is not None:
        return StaticKeys.from_file(item.keys_file)
    return RemoteKeys(
        http,
        item.issuer,
        item.jwks_url,
        refetch_interval=settings.jwks_refetch_interval,
        max_age=settings.jwks_max_age,
        timeout=settings.jwks_timeout,
        max_bytes=settings.jwks_max_bytes,
    )
