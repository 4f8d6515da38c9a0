"""The notification egress guard: endpoint URLs checked against the ``EgressPolicy``.

Two moments matter. When a subscription is created or changed, ``check_endpoint`` resolves the
endpoint's host name and refuses it if ANY address it resolves to is refused, so the client gets
a 400 at once. But a name can resolve elsewhere later (DNS rebinding, or just a changed record),
so the senders also call ``check_address`` with the address they actually connected to, before
sending anything; that check is pure and costs no lookup.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Final
from urllib.parse import urlsplit

from broker.auth.egress_policy import (
    DEFAULT_DENY,
    EgressPolicy,
    EgressRules,
    IPAddress,
    Refusal,
)
from broker.settings import EgressSettings

_PORTS: Final = {"http": 80, "https": 443, "mqtt": 1883, "mqtts": 8883}

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""Host name and port → the addresses it resolves to."""


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to for a TCP connection (the event loop's getaddrinfo)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class EgressGuard:
    """Decides whether notifications of a tenant may go to an endpoint.

    Args:
        policy: the platform's and tenants' rules.
        resolve_timeout: seconds a creation-time check waits for DNS.
        resolver: how host names are resolved (tests can substitute their own).
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolve_timeout: float = 2.0,
        resolver: Resolver = resolve,
    ) -> None:
        self.policy = policy
        self._timeout = resolve_timeout
        self._resolve = resolver

    @classmethod
    def from_settings(cls, settings: EgressSettings) -> EgressGuard:
        """The guard ``TOSHI_AUTH__EGRESS__*`` describes (``ValueError`` on a bad rule)."""
        deny = [*(DEFAULT_DENY if settings.default_deny else ()), *settings.deny]
        tenants = {
            name.strip().lower(): EgressRules.parse(rules.allow, rules.deny)
            for name, rules in settings.tenants.items()
        }
        policy = EgressPolicy(EgressRules.parse(settings.allow, deny), tenants)
        return cls(policy, resolve_timeout=settings.resolve_timeout)

    def set_tenant_rules(self, tenant: str, rules: EgressRules | None) -> None:
        """Replace ``tenant``'s rules (None: the platform's alone), e.g. from an admin API."""
        tenants = dict(self.policy.tenants)
        if rules is None:
            tenants.pop(tenant, None)
        else:
            tenants[tenant] = rules
        self.policy = replace(self.policy, tenants=tenants)

    def check_address(
        self, ip: str | IPAddress | None, host: str | None, tenant: str
    ) -> Refusal | None:
        """For senders, with the address they connected to: None, or why not to send."""
        return self.policy.check_address(ip, host, tenant)

    async def check_endpoint(self, url: str, tenant: str) -> Refusal | None:
        """For subscription creation: None if every address ``url``'s host resolves to may be
        reached (a host that does not resolve now is left to the check at delivery)."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _PORTS:
            return Refusal("scheme", f"notification endpoint scheme {scheme!r} is not allowed")
        try:
            port = parts.port or _PORTS[scheme]
        except ValueError:
            return Refusal("port", "the notification endpoint's port is not a number")
        host = parts.hostname
        if not host:
            return Refusal("host", "the notification endpoint has no host")
        try:
            literal = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return await self._check_name(host, port, tenant)
        return self.policy.check_address(literal, None, tenant)

    async def _check_name(self, host: str, port: int, tenant: str) -> Refusal | None:
        refusal = self.policy.check_name(host, tenant)
        if refusal is not None:
            return refusal
        try:
            async with asyncio.timeout(self._timeout):
                addresses = await self._resolve(host, port)
        except (OSError, TimeoutError):
            addresses = []
        # A name not (yet) in DNS is accepted: what it resolves to is checked at every delivery,
        # and refusing it would turn a receiver's DNS outage into a client error.
        for address in addresses:
            refusal = self.policy.check_address(address, host, tenant)
            if refusal is not None:
                return refusal
        return None
